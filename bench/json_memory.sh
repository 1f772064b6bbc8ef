#!/bin/bash
# JSON memory on hostile inputs (issue 17, finding 10): generates the files
# (about 430 MB in a temporary folder, removed at the end; none is committed)
# and runs bench/bench_json on each under /usr/bin/time -v, printing the wall
# time and the peak RSS. Run from the build directory after
# `make bench/bench_json`; compare two builds by running it in each.
#
#   bench/json_memory.sh [--keep DIR]     (--keep: generate into DIR, keep it)
#
# The inputs:
#   meta_numbers   safetensors, 100 MB header {"__metadata__":{"a":[0,0,...]}}
#   meta_strings   safetensors, 100 MB header {"__metadata__":{"a":"","a":"",...}}
#   shape_numbers  safetensors, 100 MB header, one tensor whose shape is [1,1,...]
#   members        a 62 MB JSON object {"a":0,"a":0,...}, read as a config
#                  (px_json_load_file) and as an index (64 MB allowed)
#   numbers        a 62 MB JSON array [0,0,...] in an object, read as an index
#   dit_config     pipe_small with a 62 MB transformer/config.json (an extra
#                  member "x":[0,0,...]), read as generate reads it
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
keep=
[ "${1:-}" = --keep ] && keep=$2
tmp=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/pixart-jsonmem-XXXXXX")}
mkdir -p "$tmp"
[ -n "$keep" ] || trap 'rm -rf "$tmp"' EXIT
bench=./bench/bench_json
[ -x "$bench" ] || { echo "json_memory.sh: build bench/bench_json first (make bench/bench_json)" >&2; exit 1; }

# N copies of TEXT, no separator
rep() { yes "$2" | head -n "$1" | tr -d '\n' || [ $? = 141 ]; }
# the 8-byte little-endian length of a safetensors header
le64() {
    local n=$1 i
    for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(( (n >> (8 * i)) & 255 )))"; done
}
# safetensors file from a header text file (padded to 8 bytes) and data bytes
mkst() { # OUT HEADER_FILE DATA_BYTES
    local n pad
    n=$(stat -c %s "$2")
    pad=$(( (8 - n % 8) % 8 ))
    { le64 $(( n + pad )); cat "$2"; printf '%*s' "$pad" ''; head -c "$3" /dev/zero; } > "$1"
}

max=$(( 100 * 1024 * 1024 - 64 ))
if [ ! -e "$tmp/numbers.json" ]; then
    { printf '{"__metadata__":{"a":['; rep $(( (max - 32) / 2 )) '0,'; printf '0]}}'; } > "$tmp/h"
    mkst "$tmp/meta_numbers.safetensors" "$tmp/h" 0
    { printf '{"__metadata__":{'; rep $(( (max - 32) / 7 )) '"a":"",'; printf '"a":""}}'; } > "$tmp/h"
    mkst "$tmp/meta_strings.safetensors" "$tmp/h" 0
    { printf '{"t":{"dtype":"F32","shape":['; rep $(( (max - 64) / 2 )) '1,'; printf '1],"data_offsets":[0,4]}}'; } > "$tmp/h"
    mkst "$tmp/shape_numbers.safetensors" "$tmp/h" 4
    rm -f "$tmp/h"
    { printf '{'; rep $(( 62 * 1000 * 1000 / 6 )) '"a":0,'; printf '"a":0}'; } > "$tmp/members.json"
    { printf '{"a":['; rep $(( 31 * 1000 * 1000 )) '0,'; printf '0]}'; } > "$tmp/numbers.json"
    cp -r "$src/data/pipe_small" "$tmp/pipe"
    cfg="$tmp/pipe/transformer/config.json"
    { head -c -2 "$cfg"; printf ',\n  "x": ['; rep $(( 31 * 1000 * 1000 )) '0,'; printf '0]\n}\n'; } > "$tmp/c"
    mv "$tmp/c" "$cfg"
fi

run() { # NAME MODE PATH
    local out
    out=$( { /usr/bin/time -v "$bench" "$2" "$3" > "$tmp/out" ; } 2>&1 )
    printf '%-14s %8.1f MB input  %6s s  %8.1f MB peak RSS  %s\n' "$1" \
        "$(echo "$(du -sb "$3" | cut -f1) / 1000000" | bc -l)" \
        "$(echo "$out" | sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p')" \
        "$(echo "$(echo "$out" | sed -n 's/.*Maximum resident set size (kbytes): //p') / 1000" | bc -l)" \
        "$(sed 's/.*: \(parsed\|refused\)/\1/' "$tmp/out" | cut -c1-110)"
}
echo "# $(date -u +%FT%TZ) $(uname -n), load: $(cut -d' ' -f1-3 /proc/loadavg)"
run meta_numbers st "$tmp/meta_numbers.safetensors"
run meta_strings st "$tmp/meta_strings.safetensors"
run shape_numbers st "$tmp/shape_numbers.safetensors"
run members json "$tmp/members.json"
run members_index index "$tmp/members.json"
run numbers_index index "$tmp/numbers.json"
run dit_config dit "$tmp/pipe"
