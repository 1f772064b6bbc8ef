# examples/: programs that embed the library through include/pixart/pixart.h
# only, linked against the installed library's exports (libpixart.la), so
# that a symbol the public API forgets fails the build. make check runs each
# on the tiny pipeline in data/ (tests/example_embed.sh).
if HAVE_CHECK
check_PROGRAMS += examples/embed
TESTS += tests/example_embed.sh
endif
examples_embed_SOURCES = examples/embed.c
examples_embed_CPPFLAGS = -I$(top_srcdir)/include
examples_embed_LDADD = libpixart.la
EXTRA_DIST += tests/example_embed.sh
