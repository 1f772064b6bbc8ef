#!/bin/bash
# End-to-end measurement on a full-size random-weight checkpoint folder in the
# published layout (bench/make_checkpoint): `pixart encode` (the T5-XXL stage
# alone) and a whole `pixart generate`, each with wall time and peak RSS
# (/usr/bin/time -v), plus the stage timings the command prints itself.
#
#   bench/e2e.sh [--res 512|1024|2048] [--sigma] [--bf16] [--steps N] [--dir CKPT_ROOT]
#                [--only encode|generate] [--embeds] [--max-memory SIZE] [--cold]
#
# --sigma uses the PixArt-Sigma folders (PixArt-Sigma-XL-2-512-MS, -1024-MS,
# -2K-MS; --res 2048 implies it), made from $PIXART_REFERENCE/configs (default
# ../shared/reference); --bf16 writes the transformer in BF16 when the
# folder is made (its name gets a -bf16 suffix). --embeds runs generate from
# embeddings made by a first `pixart encode`, so its peak RSS excludes the
# text-encoder stage. --max-memory is passed to generate (the VAE decode's
# budget: tiles when the untiled decode would exceed it).
#
# --cold drops the page cache before each command (root only: writes
# /proc/sys/vm/drop_caches), so the time includes reading the weights from
# disk; "File system inputs" is the volume read, in 512-byte blocks.
#
# The folder (about 22 GB: float32 T5 in two shards, transformer, VAE) is made
# on first use under CKPT_ROOT (default $PIXART_CKPT_DIR or /tmp/pixart-ckpt);
# the 1024-MS folder shares the T5 files with the 512 one through hard links.
# Run from the build directory after `make pixart bench/make_checkpoint`.
# Not part of `make check`: a 512 px run takes several minutes on 2 cores.
set -euo pipefail
res=512 steps=20 root=${PIXART_CKPT_DIR:-/tmp/pixart-ckpt} only=all cold=0 sigma=0 bf16=0 embeds=0 maxmem=
while [ $# -gt 0 ]; do
    case "$1" in
    --res) res=$2; shift 2 ;;
    --sigma) sigma=1; shift ;;
    --bf16) bf16=1; shift ;;
    --embeds) embeds=1; shift ;;
    --max-memory) maxmem=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --dir) root=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --cold) cold=1; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "e2e.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$res" = 2048 ] && sigma=1
case "$sigma:$res" in
0:512) name=PixArt-XL-2-512x512 ;;
0:1024) name=PixArt-XL-2-1024-MS ;;
1:512) name=PixArt-Sigma-XL-2-512-MS ;;
1:1024) name=PixArt-Sigma-XL-2-1024-MS ;;
1:2048) name=PixArt-Sigma-XL-2-2K-MS ;;
*) echo "e2e.sh: --res must be 512, 1024 or 2048" >&2; exit 2 ;;
esac
srcdir=$(cd "$(dirname "$0")/.." && pwd)
configs=$srcdir/data/configs
[ $sigma = 1 ] && configs=${PIXART_REFERENCE:-$srcdir/../shared/reference}/configs
mkopts=
[ $bf16 = 1 ] && mkopts="--transformer-dtype bf16"
[ -x ./pixart ] || { echo "e2e.sh: run from the build directory after 'make pixart bench/make_checkpoint'" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "e2e.sh: needs /usr/bin/time (Debian package 'time')" >&2; exit 2; }

mkdir -p "$root"
dir=$root/$name
[ $bf16 = 1 ] && dir=$dir-bf16
if [ ! -f "$dir/vae/diffusion_pytorch_model.safetensors" ]; then
    [ -x bench/make_checkpoint ] || { echo "e2e.sh: $dir is missing: 'make bench/make_checkpoint' first" >&2; exit 2; }
    other=
    for o in "$root"/PixArt-*; do
        [ "$o" != "$dir" ] && [ -f "$o/text_encoder/model-00002-of-00002.safetensors" ] && other=$o && break
    done
    if [ -n "$other" ]; then
        echo "== making $dir (T5 shared with $other)"
        bench/make_checkpoint $mkopts --only transformer,vae "$configs/$name" "$dir"
        for f in "$other"/text_encoder/model*; do ln -f "$f" "$dir/text_encoder/"; done
    else
        echo "== making $dir (about 22 GB)"
        bench/make_checkpoint $mkopts "$configs/$name" "$dir"
    fi
fi

prompt="a small cactus with a happy face in the Sahara desert"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
measure() { # label, command...
    local label=$1; shift
    echo "== $label: $*"
    if [ $cold = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
    /usr/bin/time -v "$@" 2> "$out/time.txt" >/dev/null || { cat "$out/time.txt"; exit 1; }
    grep -v -E "^\s+(Command|Average|Exit|Socket|Signals|Swaps|Page size|Voluntary|Involuntary|Minor|File system outputs|Percent|System time|User time|Major)" "$out/time.txt" \
        | sed -n '/^\s*Elapsed/p;/Maximum resident/p;/File system inputs/p;/^[^\t ]/p'
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1 /proc/loadavg)"
if [ "$only" = all ] || [ "$only" = encode ]; then
    measure "encode ($name)" ./pixart encode --model "$dir" --prompt "$prompt" -o "$out/emb.safetensors"
    md5sum "$out/emb.safetensors" | sed "s|$out/||"
fi
if [ "$only" = all ] || [ "$only" = generate ]; then
    input=(--prompt "$prompt")
    if [ $embeds = 1 ]; then
        [ -f "$out/emb.safetensors" ] || ./pixart encode --model "$dir" --prompt "$prompt" -o "$out/emb.safetensors" --quiet
        input=(--prompt-embeds "$out/emb.safetensors")
    fi
    mm=()
    [ -n "$maxmem" ] && mm=(--max-memory "$maxmem")
    from=prompt
    [ $embeds = 1 ] && from=embeddings
    measure "generate ($(basename "$dir"), $steps steps, from the $from)" ./pixart generate --model "$dir" "${input[@]}" \
        --seed 0 --steps "$steps" "${mm[@]}" -o "$out/image.png"
    md5sum "$out/image.png" | sed "s|$out/||"
fi
