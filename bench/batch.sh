#!/bin/bash
# `pixart batch` against one `pixart generate` per image, and two MPI ranks
# against one process with two threads, on the tiny PixArt-XL-2-512x512-style
# checkpoint of the tests (data/pipe_small: the real layout and configs,
# 2 layers of width 24; the T5 vocabulary from $PIXART_REFERENCE/t5/spiece.model
# when it is there, else data/tok/t5mini.model). Not part of `make check`.
#
#   bench/batch.sh [--images N] [--steps N] [--size PX]... [--threads T]
#
# 1. N images (20) at each --size (default: 16, the checkpoint's default, and
#    128, whose 64x64 latents give the transformer the 1024 tokens of a real
#    512 px image): `pixart batch` over an N-line prompt file vs N `pixart
#    generate` calls with the same prompts and seeds (the PNGs are compared:
#    they must be the same bytes), both with --threads T (1: on a machine
#    shared with other work, 2 OpenMP threads can be 10x slower than 1, which
#    would swamp what is compared). Target: batch <= 0.6x.
# 2. N images at the largest --size: `mpirun -n 2 pixart batch` (1 thread per
#    rank: the node's 2 cores / 2 ranks) vs `pixart batch --threads 2`.
#    Target: throughput >= 0.9x. Also one process with 1 thread (the unit a
#    rank scales from) and one with 2 threads under OMP_WAIT_POLICY=passive
#    (threads that sleep instead of spinning at barriers). Skipped without
#    mpirun or an MPI build.
# Prints the wall times, the ratios, uptime before and after, and the
# per-job seconds of the manifests (the spread that a static split of the
# jobs over ranks has to absorb).
# Run from the build directory after `make pixart`.
set -euo pipefail
images=20 steps=20 sizes=() threads=1
while [ $# -gt 0 ]; do
    case "$1" in
    --images) images=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --size) sizes+=("$2"); shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,/^# Run from/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "batch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(16 128)
srcdir=$(cd "$(dirname "$0")/.." && pwd)
[ -x ./pixart ] || { echo "batch.sh: run from the build directory after 'make pixart'" >&2; exit 2; }
pixart=$PWD/pixart
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=$work/pipe_small
cp -r "$srcdir/data/pipe_small" "$model"
vocab=${PIXART_REFERENCE:-$srcdir/../shared/reference}/t5/spiece.model
[ -f "$vocab" ] || vocab=$srcdir/data/tok/t5mini.model
cp "$vocab" "$model/tokenizer/spiece.model"
echo "== $(date -u '+%F %T') UTC; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "   vocabulary: $vocab"
echo "   load before: $(uptime | sed 's/.*load average: //')"

subjects=(cactus lighthouse fox teapot castle robot garden violin sailboat owl
          mountain bicycle lantern dragon library comet orchard clock harbor meadow)
prompts=$work/prompts.txt
: > "$prompts"
for ((i = 0; i < images; i++)); do
    echo "a small ${subjects[i % ${#subjects[@]}]} number $i, watercolor" >> "$prompts"
done

now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
job_seconds() { # manifest -> "mean min max" of the jobs' seconds
    grep -o '"seconds": [0-9.]*' "$1" | awk '{ s += $2; if (NR == 1 || $2 < lo) lo = $2; if ($2 > hi) hi = $2 }
        END { printf "mean %.3f s, min %.3f s, max %.3f s over %d jobs", s / NR, lo, hi, NR }'
}

for size in "${sizes[@]}"; do
    common="--model $model --steps $steps --seed 1000 --height $size --width $size --no-resolution-binning --quiet"
    common="$common --threads $threads"
    out=$work/batch-$size gen=$work/gen-$size
    mkdir -p "$gen"
    t0=$(now)
    "$pixart" batch $common --prompts "$prompts" -o "$out"
    t1=$(now)
    i=0
    while IFS= read -r p; do
        i=$((i + 1))
        "$pixart" generate $common --prompt "$p" -o "$gen/$i-0.png"
    done < "$prompts"
    t2=$(now)
    for ((i = 1; i <= images; i++)); do cmp -s "$out/$i-0.png" "$gen/$i-0.png" || { echo "image $i differs" >&2; exit 1; }; done
    tb=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    tg=$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')
    printf '== %d images %dx%d, %d steps, %d thread(s): batch %.2f s, %d x generate %.2f s, ratio %s (target <= 0.6); same PNG bytes\n' \
        "$images" "$size" "$size" "$steps" "$threads" "$tb" "$images" "$tg" "$(ratio "$tb" "$tg")"
    echo "   batch jobs: $(job_seconds "$out/manifest.jsonl")"
done

size=${sizes[${#sizes[@]} - 1]}
common="--model $model --steps $steps --seed 1000 --height $size --width $size --no-resolution-binning"
if ! command -v mpirun >/dev/null 2>&1 || "$pixart" batch --help | grep -q 'not built with MPI'; then
    echo "== MPI part skipped: no mpirun, or pixart built without MPI"
else
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    ta=$(now)
    "$pixart" batch $common --threads 1 --quiet --prompts "$prompts" -o "$work/single"
    t0=$(now)
    "$pixart" batch $common --threads 2 --quiet --prompts "$prompts" -o "$work/one"
    t1=$(now)
    mpirun --oversubscribe -n 2 "$pixart" batch $common --prompts "$prompts" -o "$work/two" 2> "$work/mpi.err"
    t2=$(now)
    for ((i = 1; i <= images; i++)); do cmp -s "$work/one/$i-0.png" "$work/two/$i-0.png" || { echo "image $i differs" >&2; exit 1; }; done
    tp0=$(now)
    OMP_WAIT_POLICY=passive "$pixart" batch $common --threads 2 --quiet --prompts "$prompts" -o "$work/passive"
    tp1=$(now)
    t1p=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    t2r=$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')
    printf '== %d images %dx%d: 1 rank x 2 threads %.2f s (%.0f images/h), 2 ranks x 1 thread %.2f s (%.0f images/h): throughput ratio %s (target >= 0.9); same PNG bytes\n' \
        "$images" "$size" "$size" "$t1p" "$(awk -v n="$images" -v t="$t1p" 'BEGIN { print 3600 * n / t }')" \
        "$t2r" "$(awk -v n="$images" -v t="$t2r" 'BEGIN { print 3600 * n / t }')" "$(ratio "$t1p" "$t2r")"
    t11=$(awk -v a="$ta" -v b="$t0" 'BEGIN { print b - a }')
    printf '   1 rank x 1 thread %.2f s (%.0f images/h): 2 ranks x 1 thread give %sx its throughput\n' "$t11" \
        "$(awk -v n="$images" -v t="$t11" 'BEGIN { print 3600 * n / t }')" "$(ratio "$t11" "$t2r")"
    tpp=$(awk -v a="$tp0" -v b="$tp1" 'BEGIN { print b - a }')
    printf '   1 rank x 2 threads, OMP_WAIT_POLICY=passive: %.2f s (%.0f images/h): 2 ranks x 1 thread give %sx its throughput\n' \
        "$tpp" "$(awk -v n="$images" -v t="$tpp" 'BEGIN { print 3600 * n / t }')" "$(ratio "$tpp" "$t2r")"
    echo "   1 rank x 1 thread: $(job_seconds "$work/single/manifest.jsonl")"
    echo "   1 rank x 2 threads: $(job_seconds "$work/one/manifest.jsonl")"
    echo "   1 rank x 2 threads, passive: $(job_seconds "$work/passive/manifest.jsonl")"
    echo "   2 ranks x 1 thread: $(job_seconds "$work/two/manifest.jsonl")"
    grep -E "of the jobs|encoded" "$work/mpi.err" | sed 's/^/   /'
fi
echo "   load after: $(uptime | sed 's/.*load average: //')"
