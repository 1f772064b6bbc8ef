# src/: the pixart command, the tokenizer and the pipeline.
pixart_SOURCES += src/main.c src/cli.h
pixart_SOURCES += src/cmd_tokenize.c
pixart_SOURCES += src/cmd_generate.c src/cmd_encode.c src/progress.c src/progress.h
pixart_SOURCES += src/cmd_randn.c

# Tokenizer: SentencePiece unigram + transformers T5Tokenizer + prompt preprocessing.
libpixart_la_SOURCES += \
	src/spm.c src/spm.h \
	src/t5_tokenizer.c src/t5_tokenizer.h \
	src/unicode.c src/unicode.h src/unicode_tables.c

if HAVE_CHECK
check_PROGRAMS += tests/test_tokenizer
TESTS += tests/test_tokenizer
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c tests/testutil.c tests/testutil.h
tests_test_tokenizer_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_tokenizer_LDADD = $(PX_TEST_LIBS)
endif

# The pipeline (diffusers PixArtAlphaPipeline), resolution binning, PNG output.
libpixart_la_SOURCES += \
	src/pipeline.c src/pipeline.h \
	src/binning.c src/binning.h \
	src/png.c src/png.h

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
tests_test_cli_SOURCES = tests/test_cli.c tests/testutil.c tests/testutil.h src/progress.c src/progress.h
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
