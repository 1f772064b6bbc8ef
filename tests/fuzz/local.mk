# tests/fuzz/: one libFuzzer harness per parser (doc/fuzzing.md).
# './configure CC=clang --enable-fuzzing' builds them with 'make' (the whole
# library is then instrumented, with AddressSanitizer and UBSan); 'make fuzz
# FUZZ_SECONDS=N' runs each for N seconds (from a normal build it first
# builds a clang copy in fuzz-build/, as check-asan does).
PX_FUZZ_NAMES = cli_args json safetensors st_index npy spm tokenizer sched_config dit_config vae_config t5_config model_index batch_jobs batch_manifest
PX_FUZZ_TARGETS = tests/fuzz/fuzz_cli_args tests/fuzz/fuzz_json tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_st_index tests/fuzz/fuzz_npy tests/fuzz/fuzz_spm tests/fuzz/fuzz_tokenizer tests/fuzz/fuzz_sched_config tests/fuzz/fuzz_dit_config tests/fuzz/fuzz_vae_config tests/fuzz/fuzz_t5_config tests/fuzz/fuzz_model_index tests/fuzz/fuzz_batch_jobs tests/fuzz/fuzz_batch_manifest
EXTRA_PROGRAMS += $(PX_FUZZ_TARGETS)
if ENABLE_FUZZING
noinst_PROGRAMS = $(PX_FUZZ_TARGETS)
endif
PX_FUZZ_CFLAGS = $(AM_CFLAGS) -DPX_FUZZ_DATA='"$(abs_top_srcdir)/data"'
PX_FUZZ_LINK_FLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
EXTRA_DIST += tests/fuzz/run.sh tests/fuzz/seeds tests/fuzz/dict

# the CLI's parsers are static: cmd_generate.c and cmd_randn.c are compiled into it
tests_fuzz_fuzz_cli_args_SOURCES = tests/fuzz/fuzz_cli_args.c tests/fuzz/fuzz_util.h src/cli/parse.c src/cli/progress.c src/cli/progress.h
tests_fuzz_fuzz_cli_args_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_cli_args_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_cli_args_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_json_SOURCES = tests/fuzz/fuzz_json.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_json_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_json_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_json_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_safetensors_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_safetensors_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_st_index_SOURCES = tests/fuzz/fuzz_st_index.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_st_index_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_st_index_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_st_index_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_npy_SOURCES = tests/fuzz/fuzz_npy.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_npy_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_npy_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_npy_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_spm_SOURCES = tests/fuzz/fuzz_spm.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_spm_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_spm_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_spm_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_tokenizer_SOURCES = tests/fuzz/fuzz_tokenizer.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_tokenizer_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_tokenizer_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_sched_config_SOURCES = tests/fuzz/fuzz_sched_config.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_sched_config_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_sched_config_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_sched_config_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_dit_config_SOURCES = tests/fuzz/fuzz_dit_config.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_dit_config_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_dit_config_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_dit_config_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_vae_config_SOURCES = tests/fuzz/fuzz_vae_config.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_vae_config_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_vae_config_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_vae_config_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_t5_config_SOURCES = tests/fuzz/fuzz_t5_config.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_t5_config_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_t5_config_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_t5_config_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_model_index_SOURCES = tests/fuzz/fuzz_model_index.c tests/fuzz/fuzz_util.h
tests_fuzz_fuzz_model_index_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_model_index_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_model_index_LDADD = $(PX_BENCH_LIBS)
# `pixart batch`'s prompt file and manifest readers (src/cli/, compiled in as the CLI is)
tests_fuzz_fuzz_batch_jobs_SOURCES = tests/fuzz/fuzz_batch_jobs.c tests/fuzz/fuzz_util.h src/cli/batch_jobs.c src/cli/batch.h
tests_fuzz_fuzz_batch_jobs_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_batch_jobs_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_batch_jobs_LDADD = $(PX_BENCH_LIBS)
tests_fuzz_fuzz_batch_manifest_SOURCES = tests/fuzz/fuzz_batch_manifest.c tests/fuzz/fuzz_util.h src/cli/batch_manifest.c src/cli/batch.h
tests_fuzz_fuzz_batch_manifest_CFLAGS = $(PX_FUZZ_CFLAGS)
tests_fuzz_fuzz_batch_manifest_LDFLAGS = $(PX_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_batch_manifest_LDADD = $(PX_BENCH_LIBS)
