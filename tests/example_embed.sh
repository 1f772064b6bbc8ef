#!/bin/sh
# examples/embed on the tiny pipeline in data/, as TAP: it runs, writes
# three PNG files (the models kept loaded between the calls), and gives the
# same bytes when run again.
bin=${PIXART_EXAMPLES:-examples}/embed
data=${PIXART_DATA:-data}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pixart-example-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
echo "1..3"
if "$bin" "$data/pipe_small" "$tmp/a" >"$tmp/log" 2>&1; then echo "ok 1 - embed runs"; else
    sed 's/^/# /' "$tmp/log"; echo "not ok 1 - embed runs"; fi
ok=ok
for i in 0 1 2; do
    head -c 8 "$tmp/a-$i.png" 2>/dev/null | od -An -tx1 | tr -d ' \n' | grep -qx 89504e470d0a1a0a || ok="not ok"
done
echo "$ok 2 - three PNG files written"
"$bin" "$data/pipe_small" "$tmp/b" >/dev/null 2>&1
ok=ok
for i in 0 1 2; do cmp -s "$tmp/a-$i.png" "$tmp/b-$i.png" || ok="not ok"; done
cmp -s "$tmp/a-0.png" "$tmp/a-1.png" && ok="not ok" # different seeds, different images
echo "$ok 3 - the same bytes on a second run, different images for different seeds"
