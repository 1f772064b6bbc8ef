# doc/: the pixart(1) man page. doc/gen-man.sh makes it from the template
# doc/pixart.1.in and the built program's 'pixart --help' and 'pixart COMMAND
# --help' (every command and option, so the page cannot drift from the
# program); tests/man_page.sh checks it against the program and the sources.
# It is built in the build tree; the distribution has the template and the
# script (doc/ is in EXTRA_DIST) but not a built page (dist-hook). A cross
# build cannot run the program, so it installs no man page.
if !CROSS_COMPILING
man_MANS = doc/pixart.1
endif
doc/pixart.1: $(srcdir)/doc/pixart.1.in $(srcdir)/doc/gen-man.sh pixart$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) doc && \
	AWK='$(AWK)' $(SHELL) $(srcdir)/doc/gen-man.sh ./pixart$(EXEEXT) $(srcdir)/doc/pixart.1.in \
		'$(PACKAGE_VERSION)' >$@.tmp && mv -f $@.tmp $@
CLEANFILES += doc/pixart.1 doc/pixart.1.tmp
dist-hook: dist-man-hook
dist-man-hook:
	rm -f $(distdir)/doc/pixart.1 $(distdir)/doc/pixart.1.tmp
.PHONY: dist-man-hook

if HAVE_CHECK
if !CROSS_COMPILING
TESTS += tests/man_page.sh
endif
endif
EXTRA_DIST += tests/man_page.sh
