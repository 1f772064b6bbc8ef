# model/: the three models (T5 encoder, PixArt DiT, VAE) and what they share:
# the weight layer (checked lookups by checkpoint name, the unused-tensor
# report) and the module wrappers that record their own dump activations.
libpx_core_la_SOURCES += model/weights.c model/weights.h model/module.c model/module.h

# T5 v1.1 encoder (transformers T5EncoderModel).
libpx_core_la_SOURCES += model/t5.c model/t5.h
if HAVE_CHECK
check_PROGRAMS += tests/test_t5
TESTS += tests/test_t5
tests_test_t5_SOURCES = tests/test_t5.c tests/testutil.c tests/testutil.h
tests_test_t5_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_t5_LDADD = $(PX_TEST_LIBS)
endif

# PixArt DiT (diffusers PixArtTransformer2DModel).
libpx_core_la_SOURCES += model/dit.c model/dit.h
if HAVE_CHECK
check_PROGRAMS += tests/test_dit
TESTS += tests/test_dit
tests_test_dit_SOURCES = tests/test_dit.c tests/testutil.c tests/testutil.h
tests_test_dit_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_dit_LDADD = $(PX_TEST_LIBS)
endif

# The VAE (diffusers AutoencoderKL: decoder, encoder, tiled decoding).
libpx_core_la_SOURCES += model/vae.c model/vae.h model/vae_tiled.c model/vae_tiled.h
if HAVE_CHECK
check_PROGRAMS += tests/test_vae
TESTS += tests/test_vae
tests_test_vae_SOURCES = tests/test_vae.c tests/testutil.c tests/testutil.h
tests_test_vae_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_vae_LDADD = $(PX_TEST_LIBS)
endif
