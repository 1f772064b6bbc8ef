#!/usr/bin/python3
"""Expected outputs for the tokenizer tests (data/tok/*.jsonl).

Run with Debian's python3 (3.11.2) and python3-sentencepiece (0.1.97), the
versions that made the shared reference set; see data/tok/README.md.

transformers is not installed here, so the T5Tokenizer(legacy=True) layer is
emulated below (t5_encode) from transformers' rules: added tokens split out of
the raw text, extra ids strip Python whitespace on both sides, each remaining
chunk goes through SentencePiece and its pieces through piece_to_id, </s> is
appended unless already last, truncation keeps max_length-1 ids. Before it
writes anything, the script checks the emulation against the reference cases
made by the real transformers (--reference, default ../shared/reference): it
must reproduce every `ids`, `mask`, `sp_ids` and `preprocessed` exactly.

    cd data/tok && /usr/bin/python3 make_cases.py [--reference DIR]
"""

import argparse
import json
import os
import re
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))


class T5Legacy:
    def __init__(self, model_file, extra_ids=100):
        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        n = self.sp.get_piece_size()
        self.added = {}
        for name in ("</s>", "<pad>", "<unk>"):
            assert self.sp.piece_to_id(name) != self.sp.unk_id() or name == "<unk>", name
            self.added[name] = self.sp.piece_to_id(name)
        self.strip = set()
        for i in range(extra_ids):
            tok = "<extra_id_%d>" % i
            self.added[tok] = n + extra_ids - 1 - i
            self.strip.add(tok)
        self.eos = self.added["</s>"]
        self.pad = self.added["<pad>"]
        # No added token is a prefix of another and none can overlap another
        # ('<' and '>' only at their ends), so leftmost regex matching splits
        # exactly like transformers' Trie.split.
        self.pattern = re.compile("|".join(re.escape(t) for t in self.added))

    def tokenize_ids(self, text):
        parts = []
        pos = 0
        for m in self.pattern.finditer(text):
            if m.start() > pos:
                parts.append([False, text[pos:m.start()]])
            parts.append([True, m.group()])
            pos = m.end()
        if pos < len(text):
            parts.append([False, text[pos:]])
        for i, (is_added, s) in enumerate(parts):
            if is_added and s in self.strip:
                if i + 1 < len(parts) and parts[i + 1][1]:
                    parts[i + 1][1] = parts[i + 1][1].lstrip()
                if i > 0 and parts[i - 1][1]:
                    parts[i - 1][1] = parts[i - 1][1].rstrip()
        ids = []
        for is_added, s in parts:
            if not s:
                continue
            if is_added:
                ids.append(self.added[s])
                continue
            for piece in self.sp.encode(s, out_type=str):
                ids.append(self.added[piece] if piece in self.added else self.sp.piece_to_id(piece))
        return ids

    def encode(self, text, max_length=None):
        ids = self.tokenize_ids(text)
        if max_length is not None and len(ids) + 1 > max_length:
            remove = len(ids) + 1 - max_length
            if len(ids) > remove:
                ids = ids[:-remove]
        if not ids or ids[-1] != self.eos:
            ids = ids + [self.eos]
        mask = [1] * len(ids)
        if max_length is not None and len(ids) < max_length:
            pad = max_length - len(ids)
            ids = ids + [self.pad] * pad
            mask = mask + [0] * pad
        return ids, mask


def preprocess(text):
    return text.lower().strip()  # PixArt _text_preprocessing, clean_caption=False


def verify_reference(ref_dir):
    model = os.path.join(ref_dir, "t5", "spiece.model")
    cases = os.path.join(ref_dir, "t5", "tokenizer_cases.jsonl")
    if not os.path.exists(model):
        raise SystemExit("reference %s is absent: cannot verify the emulation" % model)
    tok = T5Legacy(model)
    n = 0
    for line in open(cases, encoding="utf-8"):
        c = json.loads(line)
        assert preprocess(c["text"]) == c["preprocessed"], c["index"]
        assert tok.sp.encode(c["preprocessed"]) == c["sp_ids"], c["index"]
        ids, mask = tok.encode(c["preprocessed"], 120)
        assert ids == c["ids"] and mask == c["mask"], c["index"]
        assert len(tok.encode(c["preprocessed"])[0]) == c["num_tokens_untruncated"], c["index"]
        n += 1
    print("emulation matches all %d reference cases" % n, file=sys.stderr)


# Texts for the small models: whitespace runs, tabs/newlines, NFKC characters,
# characters outside the vocabularies (unknown runs), added tokens in the text
# with and without Unicode whitespace around them, truncation boundaries.
TEXTS = [
    "A painting of a squirrel eating a burger",
    "a photo of an astronaut riding a horse on mars",
    "",
    "   ",
    "  leading and trailing  ",
    "multiple    spaces     inside",
    "tabs\tand\nnewlines\r\nmixed",
    "Ｆｕｌｌ－ｗｉｄｔｈ　ｔｅｘｔ　１２３",
    "ﬁne ﬂower ﬀ ﬃ ligatures",
    "½ cup and ㎏ and x² and H₂O and Ⅻ ™ №",
    "Café déjà vu, naïve façade, Ångström, Zürich",
    "é combining accent",
    "東京タワーの夜景 一只猫 한국어",
    "emoji 😀🎉 test 👍🏽 end",
    "unknown run ☃☄★ and ξψ and ⅋",
    "\u00a0nbsp\u00a0inside\u00a0",
    "\u3000ideographic\u3000space\u3000",
    "zero\u200bwidth\u200djoiner",
    "control\x01char and \x7f del",
    "▁literal ▁▁ meta ▁",
    "a dog </s> and a cat",
    "a dog<extra_id_5>a cat",
    "<pad> <unk> literal special tokens",
    "<extra_id_99> first and <extra_id_0> last",
    "<extra_id_100> is not special, nor <extra_id_05> or <extra_id_-1>",
    "</s></s>",
    "x\u3000<extra_id_1>\u3000y",
    "x\u00a0\u2028<extra_id_2>\x1c\x1dy",
    "x\u0085<extra_id_3>\u0085y and x\u0085</s>\u0085y",
    "<extra_id_7><extra_id_8>  <extra_id_9>",
    "unclosed <extra_id_1 and <pad and </s",
    "pixart ΣΣ sigma pixartpixart",
    "split digits 1234567890 and 3.14159",
    "one two three four five six seven eight nine ten eleven twelve thirteen",
    "one two three four five six seven eight nine ten eleven twelve </s>",
    "one two three four five six seven eight nine ten eleven </s> twelve",
    "A highly detailed digital painting of an ancient library hidden inside a giant "
    "hollow tree, with spiral staircases, glowing lanterns, floating books, stained "
    "glass windows, moss-covered shelves, and a curious owl perched on a reading desk",
    "\ufffd replacement \ufffd",
]

# Byte strings that are not valid UTF-8 (a Python str cannot hold them, so only
# SentencePiece sees them: malformed bytes become U+FFFD one byte at a time).
BYTE_TEXTS = [
    b"\xff\xfe abc \xe2\x96",
    b"a\x00b nul",
    b"\xc0\x80 overlong \xed\xa0\x80 surrogate \xf4\x90\x80\x80 big",
    b"trunc \xe6\x97",
    b"\x80\x80 cont \xf0\x9f\x98\x80 ok",
]

# Strings for lower()/strip(): special casing, final sigma contexts, titlecase
# digraphs, Unicode whitespace (including what sentencepiece keeps).
PRE_TEXTS = [
    "A Painting Of A Squirrel",
    "  ΟΔΟΣ  ",
    "ΟΔΟΣ.",
    "ΟΔΟΣ'Α",
    "Σ",
    "ΑΣ",
    "ΣΑ",
    "Α\u0345Σ",
    "ΑΣ\u0345",
    "Α'Σ'",
    "Α'Σ'Β",
    "ʰΣ",
    "1Σ",
    "ΑΣ1",
    "ΜΆΪΟΣ ΣΟΦΙΑ",
    "İstanbul İ",
    "ẞ ß ǅ ǈ ǋ Ǳ",
    "ᾈ ᾼ ῌ ῼ",
    "Ω K Å ℮",
    "ＡＢＣ Ⅻ ⓐⒶ",
    "𐐀𐐁 𞤀",
    "\u0130\u0307",
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f text \x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000",
    "\u200b not space \u200b",
    "\u180e mongolian vowel separator \u180e",
    "\ufeffbom\ufeff",
    "",
    "   ",
    "mixed CASE with ÄÖÜ and ÀÉÎ",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=os.path.join(HERE, "..", "..", "..", "shared", "reference"))
    args = ap.parse_args()
    verify_reference(args.reference)

    texts = TEXTS
    for name, max_length in (("t5mini", 16), ("bytes_ud", 16), ("suffix_ws", 16)):
        tok = T5Legacy(os.path.join(HERE, name + ".model"))
        with open(os.path.join(HERE, name + "_cases.jsonl"), "w", encoding="utf-8") as out:
            for t in texts:
                ids, mask = tok.encode(t, max_length)
                rec = {
                    "text": t,
                    "sp_ids": tok.sp.encode(t),
                    "sp_pieces": tok.sp.encode(t, out_type=str),
                    "max_length": max_length,
                    "ids": ids,
                    "mask": mask,
                    "ids_untruncated": tok.encode(t)[0],
                }
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            for b in BYTE_TEXTS:
                rec = {
                    "text_hex": b.hex(),
                    "sp_ids": tok.sp.encode(b),
                }
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(os.path.join(HERE, "preprocess_cases.jsonl"), "w", encoding="utf-8") as out:
        for t in PRE_TEXTS + TEXTS:
            out.write(json.dumps({"text": t, "preprocessed": preprocess(t)}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
