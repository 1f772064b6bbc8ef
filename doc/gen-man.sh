#!/bin/sh
# Builds the pixart(1) man page from the template doc/pixart.1.in and the
# built program's help, so that the page lists exactly the commands and
# options the program has:
#   - the commands are the lines of the "commands:" list of 'pixart --help'
#     (a command added to src/cli/main.c appears without editing anything here);
#   - each command gets a .SS with its summary, its usage lines, its
#     description and one .TP per option line of 'pixart COMMAND --help'.
# The template's line @COMMANDS@ is replaced by that section, @VERSION@ by
# VERSION. Needs only sh and awk (POSIX; tested with mawk and busybox awk).
#
# usage: doc/gen-man.sh PIXART TEMPLATE VERSION > pixart.1
#
# What it expects of a --help text (src/cli/cmd_*.c all follow it):
#   usage lines first, up to the first empty line;
#   then description paragraphs;
#   option lines start with two spaces and '-': "  --opt ARG   description",
#   descriptions aligned in one column (a continuation line is indented to it);
#   a line ending in ':' right before an option line heads a group of options;
#   text after the options is a closing paragraph.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: $0 PIXART TEMPLATE VERSION > pixart.1" >&2
    exit 2
fi
bin=$1
template=$2
version=$3
AWK=${AWK:-awk}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pixart-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# the program's stderr (e.g. its OpenBLAS restart notice) is shown only on failure
run_help() { # out-file args...
    out=$1
    shift
    if ! "$bin" "$@" --help </dev/null >"$out" 2>"$tmp/stderr"; then
        cat "$tmp/stderr" >&2
        echo "$0: '$bin $* --help' failed" >&2
        exit 1
    fi
}

run_help "$tmp/top"
"$AWK" '/^commands:$/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print }' "$tmp/top" >"$tmp/commands"
if [ ! -s "$tmp/commands" ]; then
    echo "$0: no 'commands:' list in '$bin --help'" >&2
    exit 1
fi

# One command's --help -> roff (name and summary as variables).
HELP2ROFF='
function esc(s) {
    gsub(/\\/, "\\\\e", s)
    gsub(/-/, "\\\\-", s)
    if (s ~ /^[.\047]/) s = "\\&" s
    return s
}
# "--opt ARG, -o|--other X" -> option names bold, arguments italic
function spec(s,   n, a, i, t, tail, out) {
    n = split(s, a, " ")
    out = ""
    for (i = 1; i <= n; i++) {
        t = a[i]
        tail = ""
        if (t ~ /,$/) { tail = ","; t = substr(t, 1, length(t) - 1) }
        if (out != "") out = out " "
        if (t == "|") out = out "|"
        else if (t ~ /^-/) out = out "\\fB" esc(t) "\\fR" tail
        else out = out "\\fI" esc(t) "\\fR" tail
    }
    return out
}
function is_option(l) { return l ~ /^  -/ }
function is_heading(i) { return L[i] ~ /:$/ && L[i] !~ /^ / && (i + 1) in L && is_option(L[i + 1]) }
{ L[NR] = $0 }
END {
    print ".SS \"pixart " name "\""
    print esc(summary)
    # usage lines, as printed
    print ".PP"
    print ".nf"
    for (i = 1; i <= NR && L[i] != ""; i++) {
        l = L[i]
        if (i == 1) sub(/^usage: /, "", l)
        else if (substr(l, 1, 7) == "       ") l = substr(l, 8)
        print esc(l)
    }
    print ".fi"
    # the description column: the most common start of an option line text
    best = 0
    for (j = i; j <= NR; j++)
        if (is_option(L[j]) && match(L[j], /[^ ]  +[^ ]/)) {
            c = RSTART + RLENGTH - 1
            cnt[c]++
            if (cnt[c] > cnt[best] || best == 0) best = c
        }
    state = "text"  # text: description paragraphs; opts: option list; after: closing text
    para = 1
    prev_indented = 0
    for (; i <= NR; i++) {
        l = L[i]
        if (l == "") {
            if (state == "opts") state = "after"
            para = 1
            continue
        }
        if (state != "after" && is_heading(i)) {
            print ".PP"
            print "\\fI" esc(substr(l, 1, length(l) - 1)) "\\fR:"
            state = "opts"
            para = 0
            continue
        }
        if (state != "after" && is_option(l)) {
            state = "opts"
            para = 0
            s = l
            d = ""
            if (best > 0 && length(l) >= best && substr(l, best - 1, 1) == " " && substr(l, best, 1) != " ") {
                s = substr(l, 1, best - 1)
                d = substr(l, best)
            } else if (match(l, /[^ ]  +[^ ]/)) {
                s = substr(l, 1, RSTART)
                d = substr(l, RSTART + RLENGTH - 1)
            }
            sub(/^ +/, "", s)
            sub(/ +$/, "", s)
            print ".TP"
            print spec(s)
            if (d != "") print esc(d)
            continue
        }
        if (state == "opts" && l ~ /^   /) { # continuation of an option description
            sub(/^ +/, "", l)
            print esc(l)
            continue
        }
        if (state == "opts") { state = "after"; para = 1 }
        if (para) { print ".PP"; para = 0; prev_indented = 0 }
        if (l ~ /^ /) { print ".br"; print esc(l); prev_indented = 1 }
        else {
            if (prev_indented) print ".br"
            print esc(l)
            prev_indented = 0
        }
    }
}'

{
    echo ".SH COMMANDS"
    while read -r name summary; do
        run_help "$tmp/help" "$name"
        "$AWK" -v name="$name" -v summary="$summary" "$HELP2ROFF" "$tmp/help"
    done <"$tmp/commands"
} >"$tmp/commands.roff"

"$AWK" -v version="$version" -v section="$tmp/commands.roff" '
$0 == "@COMMANDS@" { while ((getline l < section) > 0) print l; found = 1; next }
{ gsub(/@VERSION@/, version); print }
END { if (!found) { print "gen-man.sh: no @COMMANDS@ line in the template" > "/dev/stderr"; exit 1 } }
' "$template"
