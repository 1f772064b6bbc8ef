/* Tokenizer tests: PixArt prompt preprocessing (Python lower().strip()), the
 * SentencePiece reader/encoder (three small models trained for data/tok with
 * Debian's spm_train, expected ids from python3-sentencepiece), the
 * T5Tokenizer(legacy=True) layer, hostile model files, the `pixart tokenize`
 * command, and - when the shared reference set is present - the 40 reference
 * cases made with the real T5 vocabulary and transformers. */
#include "testutil.h"
#include "src/tokenizer/spm.h"
#include "src/tokenizer/t5_tokenizer.h"
#include "src/tokenizer/unicode.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// helpers

/* Parses a .jsonl file into an array of objects. */
static px_json **read_jsonl(const char *path, size_t *count)
{
    size_t n;
    char *text = px_test_read_text(path, &n);
    px_json **items = NULL;
    size_t k = 0;
    for (char *line = text; line < text + n;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        if (end > line) {
            px_json *j = px_json_parse(line, (size_t)(end - line), path);
            ck_assert_msg(j != NULL, "%s", px_last_error());
            items = realloc(items, (k + 1) * sizeof *items);
            items[k++] = j;
        }
        line = end + 1;
    }
    free(text);
    *count = k;
    return items;
}

static void free_jsonl(px_json **items, size_t n)
{
    for (size_t i = 0; i < n; i++) px_json_free(items[i]);
    free(items);
}

static const px_json *member(const px_json *o, const char *key, px_json_type type)
{
    const px_json *v = px_json_get(o, key);
    ck_assert_msg(v != NULL && v->type == type, "case member '%s' missing or of the wrong type", key);
    return v;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* 1 if got[0..n) equals the JSON integer array want; prints both otherwise. */
static int ids_equal(const char *what, const char *ctx, const int32_t *got, size_t n, const px_json *want)
{
    int ok = want->count == n;
    for (size_t i = 0; ok && i < n; i++) ok = want->items[i]->is_integer && want->items[i]->integer == got[i];
    if (!ok) {
        fprintf(stderr, "MISMATCH %s for %s\n", what, ctx);
        print_ids("got ", got, n);
        int32_t *w = malloc((want->count + 1) * sizeof *w);
        for (size_t i = 0; i < want->count; i++) w[i] = (int32_t)want->items[i]->integer;
        print_ids("want", w, want->count);
        free(w);
    }
    return ok;
}

static char *hex_decode(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    char *b = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (char)v;
    }
    b[len] = 0;
    *n = len;
    return b;
}

// ---------------------------------------------------------------------------
// preprocessing: Python 3.11.2 text.lower().strip()

START_TEST(preprocess_matches_python)
{
    size_t n;
    px_json **cases = read_jsonl(px_test_data("tok/preprocess_cases.jsonl"), &n);
    ck_assert_uint_ge(n, 60);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const px_json *text = member(cases[i], "text", PX_JSON_STRING);
        const px_json *want = member(cases[i], "preprocessed", PX_JSON_STRING);
        char *got;
        size_t gl;
        ck_assert_int_eq(px_pixart_preprocess_n(text->string, text->len, &got, &gl), 0);
        if (gl != want->len || memcmp(got, want->string, gl) != 0) {
            fprintf(stderr, "preprocess case %zu: got '%s' want '%s'\n", i, got, want->string);
            bad++;
        }
        free(got);
    }
    free_jsonl(cases, n);
    ck_assert_msg(bad == 0, "%d preprocessing cases differ from Python", bad);
}
END_TEST

START_TEST(unicode_tables_and_utf8)
{
    ck_assert_str_eq(px_uc_unicode_version, "14.0.0");
    ck_assert_str_eq(px_uc_python_version, "3.11.2");
    /* str.isspace(): exactly the table, and nothing outside it */
    size_t spaces = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) spaces += (size_t)px_uc_isspace(cp);
    ck_assert_uint_eq(spaces, px_uc_space_table_len);
    ck_assert(px_uc_isspace(0x3000) && px_uc_isspace(0x85) && px_uc_isspace(0x1C) && !px_uc_isspace(0x200B));
    uint32_t out[3];
    ck_assert_int_eq(px_uc_tolower_full(0x130, out), 2); /* 'İ' -> 'i' + U+0307 */
    ck_assert_uint_eq(out[0], 0x69);
    ck_assert_uint_eq(out[1], 0x307);
    ck_assert_int_eq(px_uc_tolower_full('a', out), 1);
    ck_assert_uint_eq(out[0], 'a');
    /* UTF-8: overlongs, surrogates, > U+10FFFF and truncations are rejected */
    uint32_t cp;
    ck_assert_int_eq(px_utf8_decode((const unsigned char *)"\xC0\x80", 2, &cp), 0);
    ck_assert_int_eq(px_utf8_decode((const unsigned char *)"\xED\xA0\x80", 3, &cp), 0);
    ck_assert_int_eq(px_utf8_decode((const unsigned char *)"\xF4\x90\x80\x80", 4, &cp), 0);
    ck_assert_int_eq(px_utf8_decode((const unsigned char *)"\xE6\x97", 2, &cp), 0);
    ck_assert_int_eq(px_utf8_decode((const unsigned char *)"\xF0\x9F\x98\x80", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0x1F600);
    unsigned char buf[4];
    for (uint32_t c = 0; c <= 0x10FFFF; c += 0x101) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        int k = px_utf8_encode(c, buf);
        ck_assert_int_eq(px_utf8_decode(buf, (size_t)k, &cp), k);
        ck_assert_uint_eq(cp, c);
    }
    /* bytes that are not UTF-8 pass through lower() unchanged */
    char *low;
    size_t ll;
    ck_assert_int_eq(px_py_lower("A\xFF\xC3" "B\xCE\xA3", 6, &low, &ll), 0);
    ck_assert_uint_eq(ll, 6);
    ck_assert_int_eq(memcmp(low, "a\xFF\xC3" "b\xCF\x82", 6), 0); /* Σ after cased 'b' is final */
    free(low);
    char *pp;
    ck_assert_int_eq(px_pixart_preprocess("  \xE3\x80\x80Hello\xC2\xA0", &pp), 0);
    ck_assert_str_eq(pp, "hello");
    free(pp);
}
END_TEST

// ---------------------------------------------------------------------------
// small SentencePiece models (data/tok) against python3-sentencepiece and the
// verified transformers emulation

static void run_small_model(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tok/%s.model", name);
    px_t5tok *tok = px_t5tok_load(px_test_data(rel));
    ck_assert_msg(tok != NULL, "%s", px_last_error());
    const px_spm *spm = px_t5tok_spm(tok);
    px_spm_info info;
    px_spm_get_info(spm, &info);
    snprintf(rel, sizeof rel, "tok/%s_cases.jsonl", name);
    size_t n;
    px_json **cases = read_jsonl(px_test_data(rel), &n);
    ck_assert_uint_ge(n, 40);
    int bad = 0, t5_cases = 0;
    for (size_t i = 0; i < n; i++) {
        const px_json *c = cases[i];
        char ctx[160];
        const px_json *text = px_json_get(c, "text");
        char *bytes = NULL;
        const char *s;
        size_t len;
        if (text) {
            ck_assert_int_eq(text->type, PX_JSON_STRING);
            s = text->string;
            len = text->len;
        } else {
            bytes = hex_decode(member(c, "text_hex", PX_JSON_STRING)->string, &len);
            s = bytes;
        }
        snprintf(ctx, sizeof ctx, "%s case %zu", name, i);

        int32_t *sp;
        size_t nsp;
        ck_assert_msg(px_spm_encode(spm, s, len, &sp, &nsp) == 0, "%s", px_last_error());
        bad += !ids_equal("sp_ids", ctx, sp, nsp, member(c, "sp_ids", PX_JSON_ARRAY));
        free(sp);

        if (text && !info.byte_fallback) {
            /* the normalized text is the concatenation of the pieces */
            const px_json *pieces = member(c, "sp_pieces", PX_JSON_ARRAY);
            char *norm;
            size_t nl;
            ck_assert_int_eq(px_spm_normalize(spm, s, len, &norm, &nl), 0);
            size_t off = 0;
            int ok = 1;
            for (size_t k = 0; k < pieces->count && ok; k++) {
                const px_json *p = pieces->items[k];
                ok = off + p->len <= nl && memcmp(norm + off, p->string, p->len) == 0;
                off += p->len;
            }
            if (!ok || off != nl) {
                fprintf(stderr, "MISMATCH normalized text for %s: '%s'\n", ctx, norm);
                bad++;
            }
            free(norm);
        }

        if (px_json_get(c, "ids")) {
            t5_cases++;
            int64_t ml;
            ck_assert_int_eq(px_json_req_int(c, "max_length", &ml, ctx), 0);
            int32_t ids[64], mask[64];
            int nreal = -1;
            ck_assert(ml >= 2 && ml <= 64);
            ck_assert_msg(px_t5tok_encode_n(tok, s, len, (int)ml, ids, mask, &nreal) == 0, "%s", px_last_error());
            bad += !ids_equal("ids", ctx, ids, (size_t)ml, member(c, "ids", PX_JSON_ARRAY));
            bad += !ids_equal("mask", ctx, mask, (size_t)ml, member(c, "mask", PX_JSON_ARRAY));
            int ones = 0;
            for (int k = 0; k < ml; k++) ones += mask[k];
            ck_assert_int_eq(ones, nreal);
            int32_t *full;
            size_t nfull;
            ck_assert_int_eq(px_t5tok_tokenize(tok, s, len, &full, &nfull), 0);
            bad += !ids_equal("ids_untruncated", ctx, full, nfull, member(c, "ids_untruncated", PX_JSON_ARRAY));
            free(full);
        }
        free(bytes);
    }
    free_jsonl(cases, n);
    px_t5tok_free(tok);
    ck_assert_int_ge(t5_cases, 30);
    ck_assert_msg(bad == 0, "%s: %d mismatches (see above)", name, bad);
}

START_TEST(small_model_nmt_nfkc)
{
    run_small_model("t5mini");
}
END_TEST

START_TEST(small_model_bytes_user_defined)
{
    run_small_model("bytes_ud");
}
END_TEST

START_TEST(small_model_whitespace_suffix)
{
    run_small_model("suffix_ws");
}
END_TEST

START_TEST(small_model_specs)
{
    /* what data/tok/README.md's spm_train commands asked for */
    px_spm *m = px_spm_load(px_test_data("tok/t5mini.model"));
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_spm_info in;
    px_spm_get_info(m, &in);
    ck_assert_str_eq(in.normalizer_name, "nmt_nfkc");
    ck_assert_uint_gt(in.charsmap_size, 100000);
    ck_assert(in.add_dummy_prefix && in.remove_extra_whitespaces && in.escape_whitespaces);
    ck_assert_int_eq(in.model_type, 1);
    ck_assert_int_eq(in.pad_id, 0);
    ck_assert_int_eq(in.eos_id, 1);
    ck_assert_int_eq(in.unk_id, 2);
    ck_assert_int_eq(in.bos_id, -1);
    ck_assert_int_eq(px_spm_unk_id(m), 2);
    ck_assert_int_eq(px_spm_piece_type(m, 0), PX_SPM_CONTROL);
    ck_assert_int_eq(px_spm_piece_type(m, 2), PX_SPM_UNKNOWN);
    ck_assert_int_eq(px_spm_piece_to_id(m, "</s>", 4), 1);
    ck_assert_int_eq(px_spm_piece_to_id(m, "no such piece", 13), 2);
    for (int id = 0; id < px_spm_piece_count(m); id++) { /* piece -> id -> piece round trip */
        size_t len;
        const char *p = px_spm_piece(m, id, &len);
        ck_assert_int_eq(px_spm_piece_to_id(m, p, len), id);
    }
    px_spm_free(m);

    m = px_spm_load(px_test_data("tok/bytes_ud.model"));
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_spm_get_info(m, &in);
    ck_assert(in.byte_fallback && !in.remove_extra_whitespaces);
    ck_assert_str_eq(in.normalizer_name, "identity");
    ck_assert_int_eq(px_spm_piece_type(m, px_spm_piece_to_id(m, "pixart", 6)), PX_SPM_USER_DEFINED);
    ck_assert_int_eq(px_spm_piece_type(m, px_spm_piece_to_id(m, "<0xFF>", 6)), PX_SPM_BYTE);
    px_spm_free(m);

    m = px_spm_load(px_test_data("tok/suffix_ws.model"));
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_spm_get_info(m, &in);
    ck_assert(in.treat_whitespace_as_suffix && !in.add_dummy_prefix);
    ck_assert_int_eq(in.bos_id, 3);
    px_spm_free(m);
}
END_TEST

// ---------------------------------------------------------------------------
// hand-made models: a tiny protobuf writer

typedef struct {
    uint8_t b[1 << 16];
    size_t n;
} pbw;

static void w_raw(pbw *w, const void *p, size_t n)
{
    ck_assert_uint_le(w->n + n, sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_varint(pbw *w, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) c |= 0x80;
        w_raw(w, &c, 1);
    } while (v);
}

static void w_key(pbw *w, unsigned field, unsigned wt) { w_varint(w, (uint64_t)field << 3 | wt); }
static void w_uint(pbw *w, unsigned field, uint64_t v) { w_key(w, field, 0); w_varint(w, v); }

static void w_bytes(pbw *w, unsigned field, const void *p, size_t n)
{
    w_key(w, field, 2);
    w_varint(w, n);
    w_raw(w, p, n);
}

static void w_piece_n(pbw *w, const char *s, size_t len, float score, int type)
{
    pbw m = {.n = 0};
    w_bytes(&m, 1, s, len);
    uint32_t u;
    memcpy(&u, &score, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    w_key(&m, 2, 5);
    w_raw(&m, le, 4);
    if (type != PX_SPM_NORMAL) w_uint(&m, 3, (uint64_t)type);
    w_bytes(w, 1, m.b, m.n);
}

static void w_piece(pbw *w, const char *s, float score, int type) { w_piece_n(w, s, strlen(s), score, type); }

/* trainer_spec { model_type, byte_fallback } and normalizer_spec { name, charsmap } */
static void w_specs(pbw *w, int model_type, int byte_fallback, const void *charsmap, size_t charsmap_len)
{
    pbw t = {.n = 0};
    w_uint(&t, 3, (uint64_t)model_type);
    if (byte_fallback) w_uint(&t, 35, 1);
    w_bytes(w, 2, t.b, t.n);
    pbw ns = {.n = 0};
    w_bytes(&ns, 1, "identity", 8);
    if (charsmap) w_bytes(&ns, 2, charsmap, charsmap_len);
    w_bytes(w, 3, ns.b, ns.n);
}

/* A toy vocabulary whose segmentations are worked out by hand below. */
static void w_toy_pieces(pbw *w)
{
    w_piece(w, "<unk>", 0, PX_SPM_UNKNOWN);
    w_piece(w, "</s>", 0, PX_SPM_CONTROL);
    w_piece(w, "<pad>", 0, PX_SPM_CONTROL);
    w_piece(w, "\xE2\x96\x81", -3, PX_SPM_NORMAL); /* 3: "▁" */
    w_piece(w, "a", -1, PX_SPM_NORMAL);            /* 4 */
    w_piece(w, "b", -2, PX_SPM_NORMAL);            /* 5 */
    w_piece(w, "ab", -1.5f, PX_SPM_NORMAL);        /* 6 */
    w_piece(w, "x", -1, PX_SPM_NORMAL);            /* 7 */
    w_piece(w, "y", -1, PX_SPM_NORMAL);            /* 8 */
    w_piece(w, "xy", -2, PX_SPM_NORMAL);           /* 9: ties with x + y */
    w_piece(w, "q", -0.5f, PX_SPM_UNUSED);         /* 10: never used by the encoder */
}

static void expect_encode(const px_spm *m, const char *text, const int32_t *want, size_t nwant)
{
    int32_t *ids;
    size_t n;
    ck_assert_msg(px_spm_encode(m, text, strlen(text), &ids, &n) == 0, "%s", px_last_error());
    int ok = n == nwant;
    for (size_t i = 0; ok && i < n; i++) ok = ids[i] == want[i];
    if (!ok) {
        fprintf(stderr, "encode('%s')\n", text);
        print_ids("got ", ids, n);
        print_ids("want", want, nwant);
    }
    free(ids);
    ck_assert_msg(ok, "encode('%s') differs", text);
}

START_TEST(toy_model_viterbi)
{
    /* Checked by hand and with python3-sentencepiece 0.1.97 on the same bytes. */
    pbw w = {.n = 0};
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, NULL, 0);
    px_spm *m = px_spm_load_bytes(w.b, w.n, "toy.model");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    /* "▁ab▁a": ▁ ab ▁ a (-8.5) beats ▁ a b ▁ a (-10) */
    expect_encode(m, "ab a", (int32_t[]){3, 6, 3, 4}, 4);
    /* tie: x y = xy = -2; the piece starting earlier wins */
    expect_encode(m, "xy", (int32_t[]){3, 9}, 2);
    /* unknown 'c' and 'q' (UNUSED): one <unk> per run */
    expect_encode(m, "abccqc ba", (int32_t[]){3, 6, 0, 3, 5, 4}, 6);
    expect_encode(m, "   ", NULL, 0);
    expect_encode(m, "", NULL, 0);
    /* surrounding/duplicate spaces collapse */
    expect_encode(m, "  a   b  ", (int32_t[]){3, 4, 3, 5}, 4);
    /* malformed UTF-8 byte: U+FFFD, unknown */
    expect_encode(m, "a\xFF", (int32_t[]){3, 4, 0}, 3);
    px_spm_free(m);
}
END_TEST

static void expect_load_error(const void *data, size_t n, const char *name, const char *needle)
{
    px_clear_error();
    px_spm *m = px_spm_load_bytes(data, n, name);
    if (m) px_spm_free(m);
    ck_assert_msg(m == NULL, "%s: loaded although malformed", name);
    const char *e = px_last_error();
    ck_assert_msg(strstr(e, name) != NULL, "error does not name the file: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "%s: error '%s' does not mention '%s'", name, e, needle);
}

START_TEST(malformed_models)
{
    pbw w;
    /* wire format */
    w.n = 0;
    w_key(&w, 1, 2);
    for (int i = 0; i < 11; i++) w_raw(&w, "\xFF", 1);
    expect_load_error(w.b, w.n, "varint11.model", "varint");
    w.n = 0;
    w_key(&w, 1, 2);
    w_raw(&w, "\xFF\xFF", 2); /* ends inside the length */
    expect_load_error(w.b, w.n, "varint_trunc.model", "truncated varint");
    w.n = 0;
    w_key(&w, 1, 2);
    w_varint(&w, 1000);
    w_raw(&w, "abc", 3);
    expect_load_error(w.b, w.n, "length.model", "runs past the end");
    w.n = 0;
    w_key(&w, 1, 2);
    w_varint(&w, UINT64_MAX);
    expect_load_error(w.b, w.n, "length64.model", "runs past the end");
    w.n = 0;
    w_key(&w, 7, 3);
    expect_load_error(w.b, w.n, "group.model", "group");
    w.n = 0;
    w_key(&w, 7, 6);
    expect_load_error(w.b, w.n, "wiretype.model", "wire type");
    w.n = 0;
    w_key(&w, 0, 0);
    w_varint(&w, 1);
    expect_load_error(w.b, w.n, "field0.model", "field number");
    w.n = 0;
    w_key(&w, 9, 5);
    w_raw(&w, "\x01\x02", 2);
    expect_load_error(w.b, w.n, "fixed32.model", "truncated");
    /* inside a piece */
    w.n = 0;
    pbw p = {.n = 0};
    w_key(&p, 1, 2);
    w_varint(&p, 50);
    w_raw(&p, "ab", 2);
    w_bytes(&w, 1, p.b, p.n);
    expect_load_error(w.b, w.n, "piece.model", "ModelProto.pieces[0]");
    expect_load_error("", 0, "empty.model", "no pieces");

    /* semantic checks */
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "", -1, PX_SPM_NORMAL);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "emptypiece.model", "must not be empty");
    w.n = 0;
    w_piece(&w, "a", -1, PX_SPM_NORMAL);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "nounk.model", "UNKNOWN");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "<unk2>", 0, PX_SPM_UNKNOWN);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "twounk.model", "second UNKNOWN");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "ab", -4, PX_SPM_NORMAL);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "dup.model", "already defined");
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 2, 0, NULL, 0);
    expect_load_error(w.b, w.n, "bpe.model", "model_type");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "<0x41>", 0, PX_SPM_BYTE);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "byte.model", "byte_fallback");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "<0x41>", 0, PX_SPM_BYTE);
    w_specs(&w, 1, 1, NULL, 0);
    expect_load_error(w.b, w.n, "bytes255.model", "256");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece(&w, "<0xfg>", 0, PX_SPM_BYTE);
    w_specs(&w, 1, 1, NULL, 0);
    expect_load_error(w.b, w.n, "badbyte.model", "invalid BYTE");
    w.n = 0;
    w_toy_pieces(&w);
    w_piece_n(&w, "c\0d", 3, -1, PX_SPM_NORMAL);
    w_specs(&w, 1, 0, NULL, 0);
    expect_load_error(w.b, w.n, "nul.model", "NUL byte");

    /* precompiled_charsmap */
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, "\x01\x00\x00", 3);
    expect_load_error(w.b, w.n, "charsmap3.model", "too short");
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, "\x64\x00\x00\x00xxxxxx", 10);
    expect_load_error(w.b, w.n, "charsmap_size.model", "trie size");

    /* loading a missing file names it */
    px_clear_error();
    ck_assert_ptr_null(px_spm_load("/nonexistent/dir/spiece.model"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "/nonexistent/dir/spiece.model"));
}
END_TEST

/* A two-unit-path double array: "a" -> replacement string at `value`. */
static size_t make_charsmap(uint8_t *out, uint32_t value, const char *strings, size_t strings_len)
{
    uint32_t units[98] = {0};
    units[0] = 1u << 10;                         /* root, offset 1 */
    units[1 ^ 'a'] = 'a' | 1u << 8 | 1u << 10;   /* label 'a', has leaf, offset 1 */
    units[(1 ^ 'a') ^ 1] = 0x80000000u | value;  /* leaf */
    uint32_t size = sizeof units;
    uint8_t *o = out;
    for (int k = 0; k < 4; k++) *o++ = (uint8_t)(size >> (8 * k));
    for (int i = 0; i < 98; i++)
        for (int k = 0; k < 4; k++) *o++ = (uint8_t)(units[i] >> (8 * k));
    memcpy(o, strings, strings_len);
    return 4 + size + strings_len;
}

START_TEST(charsmap_trie)
{
    uint8_t cm[512];
    size_t n = make_charsmap(cm, 0, "b\0", 2);
    pbw w = {.n = 0};
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, cm, n);
    px_spm *m = px_spm_load_bytes(w.b, w.n, "charsmap.model");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    char *norm;
    size_t nl;
    ck_assert_int_eq(px_spm_normalize(m, "xax a", 5, &norm, &nl), 0);
    ck_assert_str_eq(norm, "\xE2\x96\x81xbx\xE2\x96\x81" "b");
    free(norm);
    px_spm_free(m);

    /* a replacement offset outside the string blob is an error at encode time */
    n = make_charsmap(cm, 1000, "b\0", 2);
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, cm, n);
    m = px_spm_load_bytes(w.b, w.n, "badoffset.model");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    int32_t *ids;
    size_t nid;
    ck_assert_int_eq(px_spm_encode(m, "xa", 2, &ids, &nid), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "badoffset.model"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "precompiled_charsmap"));
    px_spm_free(m);

    /* a string blob without a final NUL is read up to the blob's end */
    n = make_charsmap(cm, 0, "bb", 2);
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, cm, n);
    m = px_spm_load_bytes(w.b, w.n, "nonul.model");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_spm_normalize(m, "a", 1, &norm, &nl), 0);
    ck_assert_str_eq(norm, "\xE2\x96\x81" "bb");
    free(norm);
    px_spm_free(m);

    /* garbage double-array units: matching stops at any out-of-range index */
    uint8_t junk[4 + 400 + 8];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    junk[0] = 144; junk[1] = 1; junk[2] = 0; junk[3] = 0; /* 400 bytes of trie */
    for (size_t i = 4; i < sizeof junk; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        junk[i] = (uint8_t)x;
    }
    w.n = 0;
    w_toy_pieces(&w);
    w_specs(&w, 1, 0, junk, sizeof junk);
    m = px_spm_load_bytes(w.b, w.n, "junk.model");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    for (int t = 0; t < 2000; t++) {
        char text[16];
        for (int k = 0; k < 16; k++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; text[k] = (char)x; }
        int rc = px_spm_encode(m, text, 16, &ids, &nid);
        if (rc == 0) free(ids);
        else ck_assert_ptr_nonnull(strstr(px_last_error(), "junk.model"));
    }
    px_spm_free(m);
}
END_TEST

START_TEST(truncated_and_mutated_files)
{
    /* every prefix of a real model either loads (a prefix ending on a field
     * boundary is valid protobuf) or fails with a message naming the file */
    size_t n;
    char *data = px_test_read_text(px_test_data("tok/suffix_ws.model"), &n);
    int failed = 0;
    for (size_t k = 0; k < n; k++) {
        px_clear_error();
        px_spm *m = px_spm_load_bytes(data, k, "prefix.model");
        if (m) {
            int32_t *ids;
            size_t nid;
            if (px_spm_encode(m, "the quick brown fox", 19, &ids, &nid) == 0) free(ids);
            px_spm_free(m);
        } else {
            failed++;
            ck_assert_msg(strstr(px_last_error(), "prefix.model") != NULL, "k=%zu: %s", k, px_last_error());
        }
    }
    ck_assert_int_gt(failed, (int)n / 2);
    free(data);

    /* random byte mutations of the nmt_nfkc model (charsmap included) */
    data = px_test_read_text(px_test_data("tok/t5mini.model"), &n);
    char *mut = malloc(n);
    uint64_t x = 12345;
    for (int round = 0; round < 150; round++) {
        memcpy(mut, data, n);
        for (int k = 0; k < 8; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            /* half the flips hit the small protobuf framing before the charsmap */
            size_t at = (k & 1) ? (size_t)(x % n) : (size_t)(x % 8000);
            mut[at] = (char)(x >> 32);
        }
        px_clear_error();
        px_spm *m = px_spm_load_bytes(mut, n, "mutated.model");
        if (!m) {
            ck_assert_msg(strstr(px_last_error(), "mutated.model") != NULL, "%s", px_last_error());
            continue;
        }
        int32_t *ids;
        size_t nid;
        const char *text = "Ｆｕｌｌ ﬁne ½ caf\xC3\xA9 \xE6\x9D\xB1 \xF0\x9F\x98\x80 a  b\t";
        if (px_spm_encode(m, text, strlen(text), &ids, &nid) == 0) free(ids);
        px_spm_free(m);
    }
    free(mut);
    free(data);
}
END_TEST

// ---------------------------------------------------------------------------
// T5 layer details

START_TEST(t5_layer_api)
{
    px_t5tok *t = px_t5tok_load(px_test_data("tok/t5mini.model"));
    ck_assert_msg(t != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_t5tok_eos_id(t), 1);
    ck_assert_int_eq(px_t5tok_pad_id(t), 0);
    ck_assert_int_eq(px_t5tok_vocab_size(t), px_spm_piece_count(px_t5tok_spm(t)) + 100);
    int32_t ids[8];
    ck_assert_int_eq(px_t5tok_encode(t, "a", 1, ids, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "max_length"));
    int nreal = 0;
    ck_assert_int_eq(px_t5tok_encode(t, "", 2, NULL, NULL, &nreal), 0);
    ck_assert_int_eq(nreal, 1);
    /* <extra_id_N> -> vocab_size - 1 - N */
    ck_assert_int_eq(px_t5tok_encode(t, "<extra_id_0><extra_id_99>", 8, ids, NULL, &nreal), 0);
    ck_assert_int_eq(nreal, 3);
    ck_assert_int_eq(ids[0], px_t5tok_vocab_size(t) - 1);
    ck_assert_int_eq(ids[1], px_t5tok_vocab_size(t) - 100);
    ck_assert_int_eq(ids[2], 1);
    px_t5tok_free(t);

    /* checkpoint folder layout, and errors */
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "tok");
    char sub[300], file[400], cmd[1000];
    snprintf(sub, sizeof sub, "%s/tokenizer", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    px_t5tok *e = px_t5tok_load_path(dir);
    ck_assert_ptr_null(e);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "tokenizer/spiece.model"));
    snprintf(file, sizeof file, "%s/spiece.model", sub);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", px_test_data("tok/t5mini.model"), file);
    ck_assert_int_eq(system(cmd), 0);
    t = px_t5tok_load_path(dir);
    ck_assert_msg(t != NULL, "%s", px_last_error());
    px_t5tok_free(t);
    /* a model without </s> is not a T5 vocabulary */
    pbw w = {.n = 0};
    w_piece(&w, "<unk>", 0, PX_SPM_UNKNOWN);
    w_piece(&w, "a", -1, PX_SPM_NORMAL);
    w_specs(&w, 1, 0, NULL, 0);
    px_test_write_bytes(file, w.b, w.n);
    ck_assert_ptr_null(px_t5tok_load_path(dir));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "</s>"));
    px_test_tmpdir_remove(dir);
}
END_TEST

// ---------------------------------------------------------------------------
// pixart tokenize

/* Runs a shell command, returns its stdout (malloc'ed) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

START_TEST(cli_tokenize)
{
    const char *bin = getenv("PIXART_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        px_test_skip("PIXART_BIN is not set to the built pixart program");
        return;
    }
    const char *model = px_test_data("tok/t5mini.model");
    size_t n;
    px_json **cases = read_jsonl(px_test_data("tok/t5mini_cases.jsonl"), &n);
    /* every single-line text case through standard input, one output line each */
    char in_path[] = "/tmp/pixart-test-cli-XXXXXX";
    int fd = mkstemp(in_path);
    ck_assert_int_ge(fd, 0);
    FILE *in = fdopen(fd, "wb");
    size_t used[64], nused = 0;
    for (size_t i = 0; i < n && nused < 64; i++) {
        const px_json *t = px_json_get(cases[i], "text");
        if (!t || !px_json_get(cases[i], "ids") || memchr(t->string, '\n', t->len) || memchr(t->string, 0, t->len))
            continue;
        fwrite(t->string, 1, t->len, in);
        fputc('\n', in);
        used[nused++] = i;
    }
    fclose(in);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' --max-length 16 < '%s'", bin, model, in_path);
    int st;
    char *out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    char *line = out;
    for (size_t k = 0; k < nused; k++) {
        const px_json *c = cases[used[k]];
        const px_json *ids = member(c, "ids", PX_JSON_ARRAY), *mask = member(c, "mask", PX_JSON_ARRAY);
        char want[1024];
        size_t wl = 0;
        for (size_t i = 0; i < ids->count; i++)
            if (mask->items[i]->integer)
                wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", wl ? " " : "",
                                       (long long)ids->items[i]->integer);
        char *end = strchr(line, '\n');
        ck_assert_msg(end != NULL, "output ends early at case %zu", used[k]);
        *end = 0;
        ck_assert_msg(!strcmp(line, want), "case %zu: got '%s' want '%s'", used[k], line, want);
        line = end + 1;
    }
    ck_assert_str_eq(line, "");
    free(out);
    unlink(in_path);
    free_jsonl(cases, n);

    /* arguments, --preprocess, --pieces, --max-length 0 */
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer='%s' --preprocess --pieces '  A Cat  ' ''", bin, model);
    out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    px_spm *spm = px_spm_load(model);
    ck_assert_ptr_nonnull(spm);
    int32_t *ids;
    size_t nid;
    ck_assert_int_eq(px_spm_encode(spm, "a cat", 5, &ids, &nid), 0);
    char want[256];
    size_t wl = 0;
    for (size_t i = 0; i < nid; i++) {
        size_t pl;
        const char *p = px_spm_piece(spm, ids[i], &pl);
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%.*s ", (int)pl, p);
    }
    snprintf(want + wl, sizeof want - wl, "</s>\n</s>\n");
    ck_assert_str_eq(out, want);
    free(ids);
    free(out);
    px_spm_free(spm);

    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' --max-length 0 -- '%s'", bin, model,
             "one two three four five six seven eight nine ten eleven twelve thirteen");
    out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    ck_assert_int_gt((int)strlen(out), 40); /* more than 16 ids */
    free(out);

    /* usage errors and --help */
    snprintf(cmd, sizeof cmd, "'%s' tokenize --help", bin);
    out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    ck_assert_ptr_nonnull(strstr(out, "--max-length"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' tokenize x 2>/dev/null", bin);
    free(run(cmd, &st));
    ck_assert_int_eq(st, 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' --max-length 1 x 2>/dev/null", bin, model);
    free(run(cmd, &st));
    ck_assert_int_eq(st, 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer /nonexistent.model x 2>&1", bin);
    out = run(cmd, &st);
    ck_assert_int_eq(st, 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent.model"));
    free(out);
}
END_TEST

// ---------------------------------------------------------------------------
// the shared reference set (real T5 vocabulary, transformers' outputs)

START_TEST(reference_t5_cases)
{
    if (!px_test_have_ref("t5/tokenizer_cases.jsonl", "reference T5 tokenizer cases")) return;
    if (!px_test_have_ref("t5/spiece.model", "reference T5 tokenizer cases")) return;
    px_t5tok *tok = px_t5tok_load(px_test_ref("t5/spiece.model"));
    ck_assert_msg(tok != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_spm_piece_count(px_t5tok_spm(tok)), 32000);
    size_t n;
    px_json **cases = read_jsonl(px_test_ref("t5/tokenizer_cases.jsonl"), &n);
    ck_assert_uint_eq(n, 40);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const px_json *c = cases[i];
        char ctx[64];
        snprintf(ctx, sizeof ctx, "reference case %zu", i);
        const px_json *text = member(c, "text", PX_JSON_STRING), *pre = member(c, "preprocessed", PX_JSON_STRING);
        char *pp;
        size_t pl;
        ck_assert_int_eq(px_pixart_preprocess_n(text->string, text->len, &pp, &pl), 0);
        if (pl != pre->len || memcmp(pp, pre->string, pl)) {
            fprintf(stderr, "MISMATCH preprocessed for %s: '%s'\n", ctx, pp);
            bad++;
        }
        free(pp);
        int32_t *sp;
        size_t nsp;
        ck_assert_int_eq(px_spm_encode(px_t5tok_spm(tok), pre->string, pre->len, &sp, &nsp), 0);
        bad += !ids_equal("sp_ids", ctx, sp, nsp, member(c, "sp_ids", PX_JSON_ARRAY));
        free(sp);
        int32_t ids[120], mask[120];
        int nreal;
        ck_assert_int_eq(px_t5tok_encode_n(tok, pre->string, pre->len, 120, ids, mask, &nreal), 0);
        bad += !ids_equal("ids", ctx, ids, 120, member(c, "ids", PX_JSON_ARRAY));
        bad += !ids_equal("mask", ctx, mask, 120, member(c, "mask", PX_JSON_ARRAY));
        int32_t *full;
        size_t nfull;
        ck_assert_int_eq(px_t5tok_tokenize(tok, pre->string, pre->len, &full, &nfull), 0);
        int64_t untr;
        ck_assert_int_eq(px_json_req_int(c, "num_tokens_untruncated", &untr, ctx), 0);
        if ((int64_t)nfull != untr) {
            fprintf(stderr, "MISMATCH untruncated length for %s: %zu vs %lld\n", ctx, nfull, (long long)untr);
            bad++;
        }
        free(full);
    }
    free_jsonl(cases, n);
    px_t5tok_free(tok);
    ck_assert_msg(bad == 0, "%d mismatches against the reference tokenizer cases", bad);
}
END_TEST

/* Tokenize prompt(s) of a pipeline call (a string or a list) and compare with
 * the reference ids (B, max_len): 120 for PixArtAlphaPipeline, 300 by default
 * for PixArtSigmaPipeline, or the call's max_sequence_length. */
static int check_prompt_ids(const px_t5tok *tok, const px_json *prompt, const int64_t *want, size_t nwant,
                            size_t max_len, const char *ctx)
{
    size_t b = prompt->type == PX_JSON_ARRAY ? prompt->count : 1;
    if (nwant != b * max_len) {
        fprintf(stderr, "%s: %zu reference ids for %zu prompts\n", ctx, nwant, b);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < b; i++) {
        const px_json *p = prompt->type == PX_JSON_ARRAY ? prompt->items[i] : prompt;
        ck_assert_int_eq(p->type, PX_JSON_STRING);
        char *pp;
        size_t pl;
        ck_assert_int_eq(px_pixart_preprocess_n(p->string, p->len, &pp, &pl), 0);
        int32_t ids[1024];
        ck_assert(max_len <= 1024);
        ck_assert_int_eq(px_t5tok_encode_n(tok, pp, pl, max_len, ids, NULL, NULL), 0);
        for (size_t k = 0; k < max_len; k++)
            if (ids[k] != want[i * max_len + k]) {
                fprintf(stderr, "%s row %zu: id %d at %zu, reference %lld\n", ctx, i, ids[k], k,
                        (long long)want[i * max_len + k]);
                bad++;
                break;
            }
        free(pp);
    }
    return bad;
}

START_TEST(reference_pipeline_prompts)
{
    if (!px_test_have_ref("cases", "pipeline prompt ids")) return;
    if (!px_test_have_ref("pipe_small/tokenizer/spiece.model", "pipeline prompt ids")) return;
    px_t5tok *tok = px_t5tok_load_path(px_test_ref("pipe_small"));
    ck_assert_msg(tok != NULL, "%s", px_last_error());
    DIR *d = opendir(px_test_ref("cases"));
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int checked = 0, bad = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") || !strcmp(e->d_name, "index.json")) continue;
        char rel[300], st_rel[300];
        snprintf(rel, sizeof rel, "cases/%s", e->d_name);
        snprintf(st_rel, sizeof st_rel, "cases/%.*s.safetensors", (int)(l - 5), e->d_name);
        px_json *j = px_json_load_file(px_test_ref(rel));
        ck_assert_msg(j != NULL, "%s", px_last_error());
        const px_json *call = member(j, "call", PX_JSON_OBJECT);
        const px_json *prompt = px_json_get(call, "prompt");
        ck_assert_ptr_nonnull(prompt);
        const px_json *msl = px_json_get(call, "max_sequence_length");
        const size_t max_len = msl && msl->type == PX_JSON_NUMBER ? (size_t)msl->integer : 120;
        px_st_file *f = px_test_open(px_test_ref(st_rel));
        size_t n;
        int64_t *ids = px_test_get_i64(f, "pipeline/prompt_ids", &n);
        bad += check_prompt_ids(tok, prompt, ids, n, max_len, rel);
        free(ids);
        checked++;
        const px_json *neg = px_json_get(call, "negative_prompt");
        if (neg && px_st_find(f, "pipeline/negative_ids")) {
            ids = px_test_get_i64(f, "pipeline/negative_ids", &n);
            size_t b = prompt->type == PX_JSON_ARRAY ? prompt->count : 1;
            if (neg->type == PX_JSON_STRING) {
                for (size_t i = 0; i < b; i++) bad += check_prompt_ids(tok, neg, ids + i * max_len, max_len, max_len, rel);
            } else {
                bad += check_prompt_ids(tok, neg, ids, n, max_len, rel);
            }
            free(ids);
        }
        px_st_close(f);
        px_json_free(j);
    }
    closedir(d);
    px_t5tok_free(tok);
    ck_assert_int_ge(checked, 10);
    ck_assert_msg(bad == 0, "%d prompt rows differ from the pipeline's tokenizer output", bad);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("preprocess");
    tcase_add_test(tc, preprocess_matches_python);
    tcase_add_test(tc, unicode_tables_and_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("sentencepiece");
    tcase_add_test(tc, small_model_nmt_nfkc);
    tcase_add_test(tc, small_model_bytes_user_defined);
    tcase_add_test(tc, small_model_whitespace_suffix);
    tcase_add_test(tc, small_model_specs);
    tcase_add_test(tc, toy_model_viterbi);
    tcase_add_test(tc, charsmap_trie);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, malformed_models);
    tcase_add_test(tc, truncated_and_mutated_files);
    suite_add_tcase(s, tc);
    tc = tcase_create("t5");
    tcase_add_test(tc, t5_layer_api);
    tcase_add_test(tc, cli_tokenize);
    suite_add_tcase(s, tc);
    tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reference_t5_cases);
    tcase_add_test(tc, reference_pipeline_prompts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return px_test_run(tokenizer_suite());
}
