#!/usr/bin/python3
"""Generate src/tokenizer/unicode_tables.c: the Unicode data behind Python's str.lower()
and str.strip(), as PixArt's prompt preprocessing uses them.

The tables are measured from the running CPython itself (not from the Unicode
data files), so they match exactly what that interpreter's str methods do:

  * lower_map: every code point whose str.lower() differs from itself, with the
    full (possibly multi-code-point) result, e.g. U+0130 -> U+0069 U+0307.
  * case classes for the Final_Sigma rule of CPython's lower(): capital sigma
    U+03A3 becomes final sigma U+03C2 when the nearest non-case-ignorable
    character before it is cased and the nearest non-case-ignorable character
    after it (if any) is not cased. Only two facts matter for that rule: is a
    character case-ignorable, and, for characters that are not, is it cased.
    Both are probed through lower() itself:
        (c + 'Σ').lower()[-1] == 'ς'       <=>  not ignorable(c) and cased(c)
        ('AΣ' + c + 'A').lower()[1] == 'ς'  <=>  not ignorable(c) and not cased(c)
    so ignorable(c) <=> neither probe fires.
  * space: the code points for which str.isspace() is true; str.strip() with no
    argument removes exactly these (CPython's Py_UNICODE_ISSPACE).

The reference data was produced by Debian's Python 3.11.2 (Unicode 14.0.0):
run this with that interpreter:

    /usr/bin/python3 tools/gen_unicode_tables.py > src/tokenizer/unicode_tables.c

The script checks its own tables against str.lower()/str.strip() on generated
strings before printing anything.
"""

import random
import sys
import unicodedata

MAX_CP = 0x10FFFF
SIGMA, FINAL, SMALL = "\u03a3", "\u03c2", "\u03c3"

CLS_OTHER, CLS_CASED, CLS_IGNORABLE = 0, 1, 2


def code_points():
    for cp in range(MAX_CP + 1):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates cannot occur in UTF-8 input
            continue
        yield cp


def measure():
    lower_map = {}
    case_cls = {}
    spaces = []
    for cp in code_points():
        c = chr(cp)
        low = c.lower()
        if low != c:
            lower_map[cp] = [ord(x) for x in low]
        p_cased = (c + SIGMA).lower()[-1] == FINAL
        p_other = ("A" + SIGMA + c + "A").lower()[1] == FINAL
        assert not (p_cased and p_other)
        case_cls[cp] = CLS_CASED if p_cased else CLS_OTHER if p_other else CLS_IGNORABLE
        if c.isspace():
            spaces.append(cp)
    return lower_map, case_cls, spaces


def ranges(case_cls):
    """[(first, last, cls)] runs of CLS_CASED / CLS_IGNORABLE code points."""
    out = []
    for cp in code_points():
        cls = case_cls[cp]
        if cls == CLS_OTHER:
            continue
        if out and out[-1][2] == cls and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        elif out and out[-1][2] == cls and out[-1][1] == 0xD7FF and cp == 0xE000:
            out[-1][1] = cp  # bridge the surrogate gap
        else:
            out.append([cp, cp, cls])
    return out


# ---- independent re-implementation used to check the tables -----------------

def emulate_lower(s, lower_map, case_cls):
    def cls(ch):
        return case_cls.get(ord(ch), CLS_OTHER)

    out = []
    n = len(s)
    for i, ch in enumerate(s):
        if ch == SIGMA:
            j = i - 1
            while j >= 0 and cls(s[j]) == CLS_IGNORABLE:
                j -= 1
            final = j >= 0 and cls(s[j]) == CLS_CASED
            if final and i + 1 < n:
                j = i + 1
                while j < n and cls(s[j]) == CLS_IGNORABLE:
                    j += 1
                final = j == n or cls(s[j]) != CLS_CASED
            out.append(FINAL if final else SMALL)
        else:
            out.extend(chr(x) for x in lower_map.get(ord(ch), [ord(ch)]))
    return "".join(out)


def emulate_strip(s, spaces):
    sp = set(chr(x) for x in spaces)
    a, b = 0, len(s)
    while a < b and s[a] in sp:
        a += 1
    while b > a and s[b - 1] in sp:
        b -= 1
    return s[a:b]


def self_check(lower_map, case_cls, spaces):
    rng = random.Random(1234)
    interesting = [SIGMA, "A", "a", " ", "\u0345", "\u02b0", "'", "\u00ad", "\u0130",
                   "\u1e9e", "1", "\u3000", "\u00a0", "\u0307", ".", "\u1f88", "\u03f4"]
    interesting += [chr(cp) for cp in list(lower_map)[:400]]
    interesting += [chr(cp) for cp, c in case_cls.items() if c == CLS_IGNORABLE][:200]
    interesting += [chr(x) for x in spaces]
    for _ in range(200000):
        k = rng.randint(0, 8)
        s = "".join(rng.choice(interesting) if rng.random() < 0.8
                    else chr(rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, MAX_CP)]))
                    for _ in range(k))
        if emulate_lower(s, lower_map, case_cls) != s.lower():
            raise SystemExit("self-check failed for lower(%r)" % s)
        if emulate_strip(s, spaces) != s.strip():
            raise SystemExit("self-check failed for strip(%r)" % s)


def main():
    lower_map, case_cls, spaces = measure()
    self_check(lower_map, case_cls, spaces)
    rs = ranges(case_cls)
    w = sys.stdout.write
    w("/* GENERATED by tools/gen_unicode_tables.py from Python %s (Unicode %s).\n"
      % (sys.version.split()[0], unicodedata.unidata_version))
    w(" * Do not edit: rerun the generator. Tables for Python's str.lower() and\n")
    w(" * str.strip() (see unicode.c). */\n")
    w('#include "src/tokenizer/unicode.h"\n\n')
    w("const char px_uc_unicode_version[] = \"%s\";\n" % unicodedata.unidata_version)
    w("const char px_uc_python_version[] = \"%s\";\n\n" % sys.version.split()[0])

    w("/* Code points whose str.lower() is not themselves, sorted: {cp, n, {out...}}. */\n")
    w("const px_uc_lower_entry px_uc_lower_table[] = {\n")
    for cp in sorted(lower_map):
        m = lower_map[cp]
        assert 1 <= len(m) <= 3
        outs = ", ".join("0x%04X" % x for x in m + [0] * (3 - len(m)))
        w("    {0x%04X, %d, {%s}},\n" % (cp, len(m), outs))
    w("};\n")
    w("const size_t px_uc_lower_table_len = sizeof px_uc_lower_table / sizeof px_uc_lower_table[0];\n\n")

    w("/* Runs of case-ignorable (%d) and cased, not case-ignorable (%d) code points. */\n"
      % (CLS_IGNORABLE, CLS_CASED))
    w("const px_uc_range px_uc_case_table[] = {\n")
    for a, b, c in rs:
        w("    {0x%04X, 0x%04X, %d},\n" % (a, b, c))
    w("};\n")
    w("const size_t px_uc_case_table_len = sizeof px_uc_case_table / sizeof px_uc_case_table[0];\n\n")

    w("/* str.isspace() code points (what str.strip() removes). */\n")
    w("const uint32_t px_uc_space_table[] = {\n    ")
    w(", ".join("0x%04X" % x for x in spaces))
    w("\n};\n")
    w("const size_t px_uc_space_table_len = sizeof px_uc_space_table / sizeof px_uc_space_table[0];\n")


if __name__ == "__main__":
    main()
