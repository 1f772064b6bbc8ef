# bench/: benchmarks (make bench), never run by make check.

# T5 v1.1 XXL encoder shape with random weights (F32 and BF16).
EXTRA_PROGRAMS += bench/bench_t5
BENCHES += bench/bench_t5
bench_bench_t5_SOURCES = bench/bench_t5.c
bench_bench_t5_LDADD = $(PX_BENCH_LIBS)

# VAE decoder, sd-vae-ft-ema shape with random weights, untiled and tiled.
EXTRA_PROGRAMS += bench/bench_vae
BENCHES += bench/bench_vae
bench_bench_vae_SOURCES = bench/bench_vae.c
bench_bench_vae_LDADD = $(PX_BENCH_LIBS)

# PixArt-XL-2 DiT with random weights: 512 / 1024 px, batch 2, F32 and BF16.
EXTRA_PROGRAMS += bench/bench_dit
BENCHES += bench/bench_dit
bench_bench_dit_SOURCES = bench/bench_dit.c
bench_bench_dit_LDADD = $(PX_BENCH_LIBS)

# Operators: px_linear vs raw cblas_sgemm on the DiT shapes, attention time and
# memory, per-kernel SIMD speedups (doc/performance.md).
EXTRA_PROGRAMS += bench/bench_ops
BENCHES += bench/bench_ops
bench_bench_ops_SOURCES = bench/bench_ops.c
bench_bench_ops_LDADD = $(PX_BENCH_LIBS)

# A full-size random-weight checkpoint folder in the published layout (float32
# T5 in two shards with its index), for memory and end-to-end measurements.
# (a tool, not a benchmark: `make bench` builds it without running it)
EXTRA_PROGRAMS += bench/make_checkpoint
bench_make_checkpoint_SOURCES = bench/make_checkpoint.c
bench_make_checkpoint_LDADD = $(PX_BENCH_LIBS)

# JSON parser time and peak RSS on one file (bench/json_memory.sh makes the
# hostile inputs of issue 17, finding 10, and runs it on each).
EXTRA_PROGRAMS += bench/bench_json
bench_bench_json_SOURCES = bench/bench_json.c
bench_bench_json_LDADD = $(PX_BENCH_LIBS)

# Tiled vs untiled decode on the reference data (doc/vae.md, "Tiling"); fast.
EXTRA_PROGRAMS += bench/vae_tiling_diff
BENCHES += bench/vae_tiling_diff
bench_vae_tiling_diff_SOURCES = bench/vae_tiling_diff.c
bench_vae_tiling_diff_LDADD = $(PX_BENCH_LIBS)
bench_vae_tiling_diff_CPPFLAGS = $(AM_CPPFLAGS) -DPX_DATA_DIR='"$(abs_top_srcdir)/data"'
