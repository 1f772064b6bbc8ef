#!/bin/sh
# The pixart(1) man page against the program and the sources, as TAP:
#  1. the built doc/pixart.1 is what doc/gen-man.sh makes from this pixart now;
#  2. every command of 'pixart --help' has its section, and no other;
#  3. every option of every 'pixart COMMAND --help' is in its command's section;
#  4. groff formats the page without warnings, and the formatted text has every option;
#  5. every option a --help lists is accepted by the command (not "unknown");
#  6. every option string in src/cli/cmd_COMMAND.c is listed by its --help;
#  7. ENVIRONMENT names every variable the library and program read with getenv()
#     (src/ ops/ model/ tensor/ sched/ include/), and only PIXART_* ones they read;
#  8. gen-man.sh on a stand-in program with a new command (batch) documents it
#     (commands are discovered, not listed).
# Options are taken from the help text independently of gen-man.sh: every
# -x / --long-name on an option line (two spaces and a dash).
bin=${PIXART_BIN:-./pixart}
srcdir=${srcdir:-.}
builddir=$(dirname "$bin")
page=$builddir/doc/pixart.1
AWK=${AWK:-awk}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pixart-man-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

n=0
report() { # ok|fail description [diagnostics file]
    n=$((n + 1))
    if [ "$1" = ok ]; then echo "ok $n - $2"; else
        [ -n "${3:-}" ] && [ -s "$3" ] && sed 's/^/# /' "$3"
        echo "not ok $n - $2"
    fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

# the option part of the option lines of a help text ("  --opt ARG  text" -> "--opt ARG")
help_specs() { grep '^  -' "$1" | sed 's/^  //; s/  .*//'; }
# the options of a help text: each -x / --long-name of the option parts
help_options() { help_specs "$1" | tr ',|' '  ' | tr -s ' ' '\n' | grep -E -- '^--?[A-Za-z][A-Za-z0-9-]*$' | sort -u; }
# roff -> text for searching: \- -> -, font changes and \& dropped
unroff() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' -e 's/\\e/\\/g' "$@"; }
# the lines of one command's .SS section of the page
section() { "$AWK" -v h=".SS \"pixart $1\"" '$0 == h { on = 1; next } /^\.S[HS]/ { on = 0 } on' "$page"; }

echo "1..8"
if [ ! -f "$page" ]; then
    echo "# $page is absent: make builds it (man_MANS); not built when cross-compiling"
    echo "Bail out! no man page"
    exit 1
fi
"$bin" --help </dev/null >"$tmp/top" 2>/dev/null
"$AWK" '/^commands:$/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' "$tmp/top" >"$tmp/commands"
for c in $(cat "$tmp/commands"); do "$bin" "$c" --help </dev/null >"$tmp/help-$c" 2>/dev/null; done

# 1. up to date
if AWK=$AWK sh "$srcdir/doc/gen-man.sh" "$bin" "$srcdir/doc/pixart.1.in" \
        "$(sed -n 's/^\.TH PIXART 1 "[^"]*" "pixart \([^"]*\)".*/\1/p' "$page")" >"$tmp/now.1" 2>"$tmp/err" &&
    cmp -s "$tmp/now.1" "$page"; then
    report ok "doc/pixart.1 is what gen-man.sh makes from this pixart"
else
    diff "$page" "$tmp/now.1" >>"$tmp/err" 2>&1
    report fail "doc/pixart.1 is what gen-man.sh makes from this pixart" "$tmp/err"
fi

# 2. the commands
grep '^\.SS "pixart ' "$page" | sed 's/^\.SS "pixart \(.*\)"$/\1/' | sort >"$tmp/sections"
sort "$tmp/commands" >"$tmp/commands.sorted"
if [ -s "$tmp/commands" ] && cmp -s "$tmp/sections" "$tmp/commands.sorted"; then
    report ok "one section per command: $(tr '\n' ' ' <"$tmp/commands")"
else
    diff "$tmp/commands.sorted" "$tmp/sections" >"$tmp/err" 2>&1
    report fail "one section per command" "$tmp/err"
fi

# 3. every option in its command's section
: >"$tmp/err"
count=0
for c in $(cat "$tmp/commands"); do
    section "$c" | unroff >"$tmp/sec"
    for o in $(help_options "$tmp/help-$c"); do
        count=$((count + 1))
        grep -q -e "$o" "$tmp/sec" || echo "pixart $c: $o is not in its section" >>"$tmp/err"
    done
done
if [ ! -s "$tmp/err" ] && [ "$count" -gt 0 ]; then report ok "all $count options in their sections"; else
    report fail "every option in its command's section" "$tmp/err"; fi

# 4. groff
if command -v groff >/dev/null 2>&1; then
    groff -man -ww -z "$page" >"$tmp/err" 2>&1
    groff -man -Tascii -P-c -P-b -P-u "$page" 2>/dev/null >"$tmp/text"
    for c in $(cat "$tmp/commands"); do
        for o in $(help_options "$tmp/help-$c"); do
            grep -q -e "$o" "$tmp/text" || echo "formatted page: no $o (pixart $c)" >>"$tmp/err"
        done
    done
    grep -q "pixart generate" "$tmp/text" || echo "formatted page: no 'pixart generate'" >>"$tmp/err"
    if [ -s "$tmp/err" ]; then report fail "groff formats the page without warnings, options visible" "$tmp/err"; else
        report ok "groff formats the page without warnings, options visible"; fi
else
    skip "groff formats the page" "groff is not installed"
fi

# 5. every listed option is accepted: 'pixart CMD OPT [1]' must not say "unknown"
: >"$tmp/err"
to=""
command -v timeout >/dev/null 2>&1 && to="timeout 30"
for c in $(cat "$tmp/commands"); do
    help_specs "$tmp/help-$c" | tr ',|' '  ' | "$AWK" '
        { for (i = 1; i <= NF; i++) if ($i ~ /^-/) { v = (i < NF && $(i + 1) !~ /^-/) ? 1 : 0; print $i, v } }' |
        while read -r o v; do
            case $o in -h | --help) continue ;; esac
            if [ "$v" = 1 ]; then $to "$bin" "$c" "$o" 1 </dev/null >/dev/null 2>"$tmp/out"
            else $to "$bin" "$c" "$o" </dev/null >/dev/null 2>"$tmp/out"; fi
            if grep -q -i "unknown \(option\|argument\)" "$tmp/out"; then
                echo "pixart $c $o: $(grep -i -m1 unknown "$tmp/out")" >>"$tmp/err"
            fi
        done
done
if [ -s "$tmp/err" ]; then report fail "every option a --help lists is accepted" "$tmp/err"; else
    report ok "every option a --help lists is accepted"; fi

# 6. every option string of src/cli/cmd_CMD.c is listed by pixart CMD --help
: >"$tmp/err"
checked=""
for c in $(cat "$tmp/commands"); do
    f=$srcdir/src/cli/cmd_$c.c
    [ -f "$f" ] || { echo "# no $f: pixart $c not checked"; continue; }
    checked="$checked $c"
    help_options "$tmp/help-$c" >"$tmp/listed"
    for o in $(grep -o '"--\?[a-z][a-z0-9-]*"' "$f" | tr -d '"' | sort -u); do
        grep -qx -e "$o" "$tmp/listed" || echo "src/cli/cmd_$c.c accepts $o; pixart $c --help does not list it" >>"$tmp/err"
    done
done
if [ -s "$tmp/err" ] || [ -z "$checked" ]; then report fail "every option in the sources is in --help" "$tmp/err"; else
    report ok "every option in the sources is in --help:$checked"; fi

# 7. ENVIRONMENT <-> getenv()
: >"$tmp/vars"
for d in src ops model tensor sched include; do
    [ -d "$srcdir/$d" ] || continue
    find "$srcdir/$d" -name '*.[ch]' | while read -r f; do
        # getenv("NAME"), and getenv(MACRO) with #define MACRO "NAME" in the same file
        grep -o 'getenv("[A-Za-z0-9_]*")' "$f" | sed 's/getenv("\(.*\)")/\1/'
        grep -o 'getenv([^)]*)' "$f" | grep -v 'getenv("[A-Za-z0-9_]*")' | grep -v 'getenv([A-Z][A-Z0-9_]*)' |
            sed "s|^|?|; s|\$|@$f|" # a name this test cannot resolve
        for m in $(grep -o 'getenv([A-Z][A-Z0-9_]*)' "$f" | sed 's/getenv(\(.*\))/\1/'); do
            v=$(sed -n "s/^#define $m \"\([A-Za-z0-9_]*\)\".*/\1/p" "$f")
            if [ -n "$v" ]; then echo "$v"; else echo "?$m@$f"; fi
        done
    done >>"$tmp/vars"
done
sort -u "$tmp/vars" -o "$tmp/vars"
"$AWK" '/^\.SH ENVIRONMENT/ { on = 1; next } /^\.SH/ { on = 0 } on' "$srcdir/doc/pixart.1.in" | unroff >"$tmp/env"
: >"$tmp/err"
for v in $(cat "$tmp/vars"); do
    grep -qx "\.B $v" "$tmp/env" || echo "getenv $v: not an entry (.TP / .B $v) of ENVIRONMENT in doc/pixart.1.in" >>"$tmp/err"
done
for v in $(sed -n 's/^\.B \(PIXART_[A-Z0-9_]*\)$/\1/p' "$tmp/env"); do
    grep -qx "$v" "$tmp/vars" || echo "ENVIRONMENT documents $v, which no getenv() in the sources reads" >>"$tmp/err"
done
if [ -s "$tmp/vars" ] && [ ! -s "$tmp/err" ]; then
    report ok "ENVIRONMENT names every getenv() variable: $(tr '\n' ' ' <"$tmp/vars")"
else
    report fail "ENVIRONMENT names every getenv() variable, and no PIXART_ variable that is not read" "$tmp/err"
fi

# 8. a new command appears by itself
cat >"$tmp/fake" <<'EOF'
#!/bin/sh
if [ "$1" = --help ]; then
    printf 'usage: pixart COMMAND [OPTIONS]\n\ncommands:\n  randn      random numbers\n  batch      many images\n\nmore text\n'
elif [ "$1 $2" = "randn --help" ]; then
    printf 'usage: pixart randn --seed S\n\noptions:\n  --seed S  the seed\n'
elif [ "$1 $2" = "batch --help" ]; then
    printf 'usage: pixart batch --prompts FILE\n             -o DIR\n\nMany images.\n\noptions:\n'
    printf '  --prompts FILE      JSON Lines\n  --resume-from-a-long-name N\n                      continues\n'
    printf '  -j, --jobs N        parallel jobs\n  --strict            stop at a bad line\n.dot line\n'
else exit 2; fi
EOF
chmod +x "$tmp/fake"
printf '.TH PIXART 1 "" "pixart @VERSION@"\n@COMMANDS@\n.SH END\n' >"$tmp/t.in"
: >"$tmp/err"
if AWK=$AWK sh "$srcdir/doc/gen-man.sh" "$tmp/fake" "$tmp/t.in" 9.9 >"$tmp/fake.1" 2>>"$tmp/err"; then
    page=$tmp/fake.1
    section batch | unroff >"$tmp/sec"
    for o in --prompts --resume-from-a-long-name -j --jobs --strict; do
        grep -q -e "$o" "$tmp/sec" || echo "batch: $o missing" >>"$tmp/err"
    done
    [ "$(grep -c '^\.TP$' "$tmp/fake.1")" = 5 ] || echo "expected 5 .TP entries" >>"$tmp/err"
    grep -q '^\\&\.dot line$' "$tmp/fake.1" || echo "a text line starting with '.' is not escaped" >>"$tmp/err"
    grep -q '^\.TH PIXART 1 "" "pixart 9.9"$' "$tmp/fake.1" || echo "@VERSION@ not replaced" >>"$tmp/err"
    grep -q '^\.SS "pixart randn"$' "$tmp/fake.1" || echo "randn missing" >>"$tmp/err"
else
    echo "gen-man.sh failed on the stand-in program" >>"$tmp/err"
fi
if [ -s "$tmp/err" ]; then cat "$tmp/fake.1" >>"$tmp/err" 2>/dev/null; report fail "a new command is documented by itself" "$tmp/err"; else
    report ok "a new command is documented by itself (stand-in program with 'batch')"; fi
