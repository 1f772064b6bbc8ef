#!/bin/bash
# Runs each libFuzzer harness for SECONDS (make fuzz; doc/fuzzing.md).
#   run.sh SECONDS FUZZDIR NAME...    (in the build folder of a --enable-fuzzing build)
# Corpus of NAME: fuzz-out/NAME/corpus (kept between runs), seeded from
# FUZZDIR/seeds/NAME/ (small files, the issue-17 reproducers among them) and
# the data/ files listed in FUZZDIR/seeds/NAME.list; dictionary
# FUZZDIR/dict/NAME.dict. A finding (crash, sanitizer report, leak, timeout,
# out-of-memory) fails the run and prints its reproducer.
set -u
secs=$1; fdir=$2; shift 2
data=${PIXART_DATA:-data}
export PIXART_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0; total=0
for name in "$@"; do
    exe=./tests/fuzz/fuzz_$name
    out=fuzz-out/$name
    mkdir -p "$out/corpus" "$out/findings"
    [ -d "$fdir/seeds/$name" ] && cp -n "$fdir/seeds/$name"/* "$out/corpus/" 2>/dev/null
    if [ -f "$fdir/seeds/$name.list" ]; then
        while read -r rel; do
            [ -n "$rel" ] && [ "${rel#\#}" = "$rel" ] && cp -n "$data/$rel" "$out/corpus/$(echo "$rel" | tr / _)"
        done < "$fdir/seeds/$name.list"
    fi
    dict=(); [ -f "$fdir/dict/$name.dict" ] && dict=(-dict="$fdir/dict/$name.dict")
    start=$(date +%s)
    "$exe" "${dict[@]}" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/findings/" "$out/corpus" > "$out/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
    total=$((total + ${execs:-0}))
    printf '%-14s %10s executions in %4d s, corpus %5d files: ' "$name" "${execs:-?}" $(( $(date +%s) - start )) \
        "$(ls "$out/corpus" | wc -l)"
    if [ $rc -eq 0 ]; then echo ok; continue; fi
    failed=$((failed + 1))
    echo "FINDING (exit $rc)"
    grep -E "ERROR:|SUMMARY:|runtime error|Test unit written" "$out/log" | head -8 | sed 's/^/    /'
    for f in "$out"/findings/*; do
        [ -f "$f" ] || continue
        echo "    reproducer $f ($(stat -c %s "$f") bytes), base64:"
        head -c 4096 "$f" | base64 | sed 's/^/      /'
        echo "    rerun: $exe $f"
    done
    echo "    full log: $out/log"
done
echo "fuzz: $# targets, $total executions, $failed with findings"
[ $failed -eq 0 ]
