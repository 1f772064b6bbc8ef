/* transformers T5Tokenizer (slow, legacy=True, extra_ids=100) over the
 * SentencePiece model: PreTrainedTokenizer.tokenize (added-token split with
 * lstrip/rstrip), convert_tokens_to_ids, T5Tokenizer.build_inputs_with_special_tokens
 * (_add_eos_if_not_present), prepare_for_model truncation and max_length padding. */
#include "pixart/pixart.h" /* the exported entry points */
#include "src/tokenizer/t5_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/tokenizer/unicode.h"
#include "tensor/error.h"

#define T5_EXTRA_IDS 100

struct px_t5tok {
    px_spm *spm;
    int n_pieces;
    int eos_id, pad_id, unk_id;
};

px_t5tok *px_t5tok_load(const char *path)
{
    px_spm *spm = px_spm_load(path);
    if (!spm) return NULL;
    static const char *names[3] = {"</s>", "<pad>", "<unk>"};
    int ids[3];
    for (int k = 0; k < 3; k++) {
        if (!px_spm_has_piece(spm, names[k], strlen(names[k]))) {
            px_fail("%s: no piece \"%s\" in the vocabulary (a T5 tokenizer needs </s>, <pad> and <unk>)", path,
                    names[k]);
            px_spm_free(spm);
            return NULL;
        }
        ids[k] = px_spm_piece_to_id(spm, names[k], strlen(names[k]));
    }
    px_t5tok *t = px_calloc(1, sizeof *t, "T5 tokenizer");
    if (!t) { px_spm_free(spm); return NULL; }
    t->spm = spm;
    t->n_pieces = px_spm_piece_count(spm);
    t->eos_id = ids[0];
    t->pad_id = ids[1];
    t->unk_id = ids[2];
    return t;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

px_t5tok *px_t5tok_load_path(const char *path)
{
    if (!is_dir(path)) return px_t5tok_load(path);
    static const char *subs[2] = {"tokenizer/spiece.model", "spiece.model"};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(path) + strlen(subs[k]) + 2;
        char *p = px_malloc(n, "tokenizer path");
        if (!p) return NULL;
        snprintf(p, n, "%s/%s", path, subs[k]);
        if (is_file(p)) {
            px_t5tok *t = px_t5tok_load(p);
            free(p);
            return t;
        }
        free(p);
    }
    px_fail("%s: a folder without tokenizer/spiece.model or spiece.model", path);
    return NULL;
}

void px_t5tok_free(px_t5tok *t)
{
    if (!t) return;
    px_spm_free(t->spm);
    free(t);
}

const px_spm *px_t5tok_spm(const px_t5tok *t) { return t->spm; }
int px_t5tok_eos_id(const px_t5tok *t) { return t->eos_id; }
int px_t5tok_pad_id(const px_t5tok *t) { return t->pad_id; }
int px_t5tok_vocab_size(const px_t5tok *t) { return t->n_pieces + T5_EXTRA_IDS; }

// ---------------------------------------------------------------------------
// Added tokens. None of them contains '<' or '>' except as its first and last
// character, so two matches can never overlap and the leftmost match is the
// one transformers' Trie.split finds.

/* Length of the added token at s (0 if none); its id and whether it strips
 * whitespace around it (the extra ids: AddedToken(lstrip=True, rstrip=True)). */
static size_t match_added(const px_t5tok *t, const char *s, size_t len, int32_t *id, int *strip)
{
    *strip = 0;
    if (len >= 4 && memcmp(s, "</s>", 4) == 0) { *id = t->eos_id; return 4; }
    if (len >= 5 && memcmp(s, "<pad>", 5) == 0) { *id = t->pad_id; return 5; }
    if (len >= 5 && memcmp(s, "<unk>", 5) == 0) { *id = t->unk_id; return 5; }
    static const char pre[] = "<extra_id_";
    const size_t pl = sizeof pre - 1;
    if (len < pl + 2 || memcmp(s, pre, pl) != 0) return 0;
    /* "<extra_id_N>" for N = 0..99 written without leading zeros */
    size_t i = pl;
    int v = 0, digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 3) { v = v * 10 + (s[i] - '0'); i++; digits++; }
    if (digits == 0 || digits > 2 || i >= len || s[i] != '>') return 0;
    if (digits == 2 && s[pl] == '0') return 0;
    /* transformers: id = vocab_size - 1 - N */
    *id = t->n_pieces + T5_EXTRA_IDS - 1 - v;
    *strip = 1;
    return i + 1;
}

typedef struct {
    int32_t *p;
    size_t n, cap;
} idvec;

static int idvec_push(idvec *v, int32_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *np = realloc(v->p, cap * sizeof *np);
        if (!np) return px_fail("out of memory (token ids)");
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

/* SentencePiece-encode one text chunk and convert its pieces to ids the way
 * transformers does (sp_model.encode(out_type=str), then piece_to_id). */
static int encode_chunk(const px_t5tok *t, const char *s, size_t len, idvec *out)
{
    if (len == 0) return 0;
    px_spm_token *toks;
    size_t n;
    char *norm;
    if (px_spm_encode_tokens(t->spm, s, len, &toks, &n, &norm, NULL) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int32_t id = toks[i].id;
        /* the piece string of a non-byte piece is its normalized span (for a
         * merged unknown run: the run's surface, which maps to <unk>) */
        if (px_spm_piece_type(t->spm, id) != PX_SPM_BYTE && toks[i].end > toks[i].begin)
            id = px_spm_piece_to_id(t->spm, norm + toks[i].begin, toks[i].end - toks[i].begin);
        rc = idvec_push(out, id);
    }
    free(toks);
    free(norm);
    return rc;
}

/* PreTrainedTokenizer.tokenize + convert_tokens_to_ids: the ids before
 * special tokens are added. */
static int tokenize_body(const px_t5tok *t, const char *text, size_t len, idvec *v)
{
    /* Walk the text: [chunk, pos) is plain text; at each added token, encode
     * the chunk before it (right-stripped if the token strips on its left),
     * emit the token, and left-strip the following chunk if it strips on its
     * right. Stripping is Python's str.lstrip()/rstrip() (Unicode whitespace). */
    size_t chunk = 0, pos = 0;
    int strip_next = 0;
    for (;;) {
        int32_t tid = 0;
        int strip = 0;
        size_t tl = 0;
        if (pos < len && text[pos] == '<') tl = match_added(t, text + pos, len - pos, &tid, &strip);
        if (tl == 0 && pos < len) { pos++; continue; }
        const char *c = text + chunk;
        size_t cl = pos - chunk;
        if (strip_next) { size_t a = px_py_lstrip_len(c, cl); c += a; cl -= a; }
        if (strip) cl = px_py_rstrip_len(c, cl);
        if (encode_chunk(t, c, cl, v) != 0) return -1;
        if (tl == 0) return 0; /* end of text */
        if (idvec_push(v, tid) != 0) return -1;
        strip_next = strip;
        pos += tl;
        chunk = pos;
    }
}

/* T5Tokenizer._add_eos_if_not_present */
static int add_eos(const px_t5tok *t, idvec *v)
{
    if (v->n > 0 && v->p[v->n - 1] == t->eos_id) return 0;
    return idvec_push(v, t->eos_id);
}

int px_t5tok_tokenize(const px_t5tok *t, const char *text, size_t len, int32_t **ids_out, size_t *n_out)
{
    idvec v = {NULL, 0, 0};
    *ids_out = NULL;
    *n_out = 0;
    if (tokenize_body(t, text, len, &v) != 0 || add_eos(t, &v) != 0) {
        free(v.p);
        return -1;
    }
    *ids_out = v.p;
    *n_out = v.n;
    return 0;
}

int px_t5tok_encode_n(const px_t5tok *t, const char *text, size_t len, int max_length, int32_t *ids,
                      int32_t *mask, int *n_real)
{
    if (max_length < 2)
        return px_fail("T5 tokenizer: max_length %d: must be at least 2", max_length);
    idvec v = {NULL, 0, 0};
    if (tokenize_body(t, text, len, &v) != 0) { free(v.p); return -1; }
    /* prepare_for_model: one special token will be added, so a body longer
     * than max_length - 1 loses its tail (truncation_side right) */
    if (v.n + 1 > (size_t)max_length) v.n = (size_t)max_length - 1;
    if (add_eos(t, &v) != 0) { free(v.p); return -1; }
    /* padding="max_length" (right), attention mask from the length */
    for (size_t i = 0; i < (size_t)max_length; i++) {
        if (ids) ids[i] = i < v.n ? v.p[i] : t->pad_id;
        if (mask) mask[i] = i < v.n ? 1 : 0;
    }
    if (n_real) *n_real = (int)v.n;
    free(v.p);
    return 0;
}

int px_t5tok_encode(const px_t5tok *t, const char *text, int max_length, int32_t *ids, int32_t *mask, int *n_real)
{
    return px_t5tok_encode_n(t, text, strlen(text), max_length, ids, mask, n_real);
}

const char *px_t5tok_piece(const px_t5tok *t, int32_t id, size_t *len, int *extra)
{
    const px_spm *spm = px_t5tok_spm(t);
    *extra = -1;
    *len = 0;
    if (id >= 0 && id < px_spm_piece_count(spm)) return px_spm_piece(spm, id, len);
    if (id >= 0 && id < px_t5tok_vocab_size(t)) *extra = px_t5tok_vocab_size(t) - 1 - id; // <extra_id_N>
    return NULL;
}
