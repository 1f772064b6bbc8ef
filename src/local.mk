# src/: the library's front half and the command, in three folders:
#   src/tokenizer/  prompt text -> T5 token ids (library)
#   src/pipeline/   PixArtAlphaPipeline over the models, binning, PNG (library)
#   src/cli/        the pixart command (a program linking the library)
pixart_SOURCES += src/cli/main.c src/cli/parse.c src/cli/cli.h
pixart_SOURCES += src/cli/cmd_tokenize.c
pixart_SOURCES += src/cli/cmd_generate.c src/cli/cmd_encode.c src/cli/progress.c src/cli/progress.h
pixart_SOURCES += src/cli/cmd_randn.c
# pixart batch (doc/batch.md); MPI only in batch_mpi.c (a stub without it)
pixart_SOURCES += src/cli/cmd_batch.c src/cli/batch.h src/cli/batch_jobs.c src/cli/batch_manifest.c \
	src/cli/batch_mpi.c src/cli/batch_mpi.h
pixart_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS)
pixart_LDADD += $(MPI_LIBS)

# Tokenizer: SentencePiece unigram + transformers T5Tokenizer + prompt preprocessing.
libpx_core_la_SOURCES += \
	src/tokenizer/spm.c src/tokenizer/spm.h src/tokenizer/spm_internal.h src/tokenizer/spm_model.c \
	src/tokenizer/trie.c src/tokenizer/trie.h \
	src/tokenizer/t5_tokenizer.c src/tokenizer/t5_tokenizer.h \
	src/tokenizer/unicode.c src/tokenizer/unicode.h src/tokenizer/unicode_tables.c

if HAVE_CHECK
check_PROGRAMS += tests/test_tokenizer
TESTS += tests/test_tokenizer
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c tests/testutil.c tests/testutil.h
tests_test_tokenizer_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_tokenizer_LDADD = $(PX_TEST_LIBS)
endif

# The pipeline (diffusers PixArtAlphaPipeline), resolution binning, PNG output.
libpx_core_la_SOURCES += \
	src/pipeline/pipeline.c src/pipeline/pipeline.h src/pipeline/internal.h \
	src/pipeline/generate.c src/pipeline/denoise.c src/pipeline/io.c \
	src/pipeline/binning.c src/pipeline/binning.h \
	src/pipeline/png.c src/pipeline/png.h

if HAVE_CHECK
check_PROGRAMS += tests/test_image
TESTS += tests/test_image
tests_test_image_SOURCES = tests/test_image.c tests/testutil.c tests/testutil.h
tests_test_image_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_image_LDADD = $(PX_TEST_LIBS)
check_PROGRAMS += tests/test_pipeline
TESTS += tests/test_pipeline
tests_test_pipeline_SOURCES = tests/test_pipeline.c tests/testutil.c tests/testutil.h
tests_test_pipeline_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_pipeline_LDADD = $(PX_TEST_LIBS)
check_PROGRAMS += tests/test_cli
TESTS += tests/test_cli
tests_test_cli_SOURCES = tests/test_cli.c tests/testutil.c tests/testutil.h src/cli/progress.c src/cli/progress.h
tests_test_cli_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_cli_LDADD = $(PX_TEST_LIBS)
endif
if HAVE_CHECK
check_PROGRAMS += tests/test_pipeline_options
TESTS += tests/test_pipeline_options
tests_test_pipeline_options_SOURCES = tests/test_pipeline_options.c tests/testutil.c tests/testutil.h
tests_test_pipeline_options_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_pipeline_options_LDADD = $(PX_TEST_LIBS)
endif
