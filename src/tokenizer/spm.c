/* SentencePiece unigram tokenizer (google/sentencepiece v0.1.97:
 * SentencePieceProcessor::Encode = normalizer.cc Normalize + unigram_model.cc
 * EncodeOptimized + PopulateSentencePieceText), reimplemented from the spec:
 * normalization and the Viterbi search. The model file is read by
 * spm_model.c. */
#include "src/tokenizer/spm_internal.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"

// ---------------------------------------------------------------------------
// Normalizer (normalizer.cc)

/* darts-clone unit accessors */
static inline int da_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t da_value(uint32_t u) { return u & ((1u << 31) - 1); }
static inline uint32_t da_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline uint32_t da_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Longest match of the charsmap trie at s (Darts commonPrefixSearch, keeping
 * the longest result). Every index is bounds-checked: a hostile array simply
 * stops matching. Returns the match length (0 = none) and its value. */
static size_t charsmap_longest(const px_spm *m, const uint8_t *s, size_t len, uint32_t *value)
{
    const uint32_t *a = m->da;
    size_t n = m->n_da;
    if (n == 0) return 0;
    size_t best = 0;
    size_t pos = da_offset(a[0]); /* node 0 is the root */
    for (size_t i = 0; i < len; i++) {
        pos ^= s[i];
        if (pos >= n) break;
        uint32_t u = a[pos];
        if (da_label(u) != s[i]) break;
        pos ^= da_offset(u);
        if (da_has_leaf(u)) {
            if (pos >= n) break;
            best = i + 1;
            *value = da_value(a[pos]);
        }
    }
    return best;
}

/* ASCII-to-byte-length table of util.h OneCharLen (high nibble of the lead byte). */
static inline size_t one_char_len(uint8_t c)
{
    static const uint8_t t[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return t[c >> 4];
}

/* util.cc DecodeUTF8 + IsValidDecodeUTF8: length of a valid character at s, or 0. */
static size_t valid_utf8_len(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    uint32_t cp;
    if (len >= 2 && (c & 0xE0) == 0xC0) {
        cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && cp >= 0x80) return 2;
    } else if (len >= 3 && (c & 0xF0) == 0xE0) {
        cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF))
            return 3;
    } else if (len >= 4 && (c & 0xF8) == 0xF0) {
        cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
             (s[3] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 && cp >= 0x10000 &&
            cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

/* Normalizer::NormalizePrefix: the normalized form (*out, *out_len) of the
 * longest prefix rule at s, and how many input bytes it consumes. */
static int normalize_prefix(const px_spm *m, const uint8_t *s, size_t len, const uint8_t **out, size_t *out_len,
                            size_t *consumed)
{
    size_t ul = px_trie_longest_prefix(&m->user, s, len);
    if (ul > 0) { /* user-defined symbols are kept verbatim */
        *out = s;
        *out_len = ul;
        *consumed = ul;
        return 0;
    }
    uint32_t value = 0;
    size_t ml = charsmap_longest(m, s, len, &value);
    if (ml > 0) {
        if ((size_t)value >= m->norm_strings_size)
            return px_fail("%s: ModelProto.normalizer_spec.precompiled_charsmap: replacement offset %u is outside "
                           "the %zu-byte string blob", m->name, value, m->norm_strings_size);
        const char *r = m->norm_strings + value;
        *out = (const uint8_t *)r;
        *out_len = strlen(r); /* NUL-terminated inside the blob or at the guard byte */
        *consumed = ml;
        return 0;
    }
    size_t cl = valid_utf8_len(s, len);
    if (cl == 0) { /* malformed UTF-8: one byte becomes U+FFFD */
        *out = (const uint8_t *)"\xEF\xBF\xBD";
        *out_len = 3;
        *consumed = 1;
    } else {
        *out = s;
        *out_len = cl;
        *consumed = cl;
    }
    return 0;
}

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static int bytes_put(bytes *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->n + n + 1 > cap) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) return px_fail("out of memory (normalized text)");
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static const uint8_t kSpace[3] = {0xE2, 0x96, 0x81}; /* U+2581 */

int px_spm_normalize(const px_spm *m, const char *utf8, size_t len, char **out_s, size_t *out_len)
{
    const uint8_t *in = (const uint8_t *)utf8;
    bytes o = {NULL, 0, 0};
    if (bytes_put(&o, "", 0) != 0) return -1;
    const uint8_t *r;
    size_t rl, used;

    /* drop leading characters that normalize to exactly " " */
    if (m->remove_extra_ws) {
        while (len > 0) {
            if (normalize_prefix(m, in, len, &r, &rl, &used) != 0) goto fail;
            if (!(rl == 1 && r[0] == ' ')) break;
            in += used;
            len -= used;
        }
    }
    if (len == 0) goto done;

    if (!m->treat_ws_as_suffix && m->add_dummy_prefix) {
        if (m->escape_ws ? bytes_put(&o, kSpace, 3) : bytes_put(&o, " ", 1)) goto fail;
    }
    int prev_space = m->remove_extra_ws;
    while (len > 0) {
        if (normalize_prefix(m, in, len, &r, &rl, &used) != 0) goto fail;
        /* collapse: drop leading spaces of this piece after a space */
        while (prev_space && rl > 0 && r[0] == ' ') { r++; rl--; }
        if (rl > 0) {
            for (size_t k = 0; k < rl; k++) {
                if (m->escape_ws && r[k] == ' ') { if (bytes_put(&o, kSpace, 3)) goto fail; }
                else if (bytes_put(&o, &r[k], 1)) goto fail;
            }
            prev_space = r[rl - 1] == ' ';
        }
        in += used;
        len -= used;
        if (!m->remove_extra_ws) prev_space = 0;
    }
    if (m->remove_extra_ws) { /* drop trailing space symbols */
        const uint8_t *sp = m->escape_ws ? kSpace : (const uint8_t *)" ";
        size_t sl = m->escape_ws ? 3 : 1;
        while (o.n >= sl && memcmp(o.p + o.n - sl, sp, sl) == 0) o.n -= sl;
        o.p[o.n] = 0;
    }
    if (m->treat_ws_as_suffix && m->add_dummy_prefix) {
        if (m->escape_ws ? bytes_put(&o, kSpace, 3) : bytes_put(&o, " ", 1)) goto fail;
    }
done:
    *out_s = (char *)o.p;
    if (out_len) *out_len = o.n;
    return 0;
fail:
    free(o.p);
    return -1;
}

// ---------------------------------------------------------------------------
// Unigram Viterbi (unigram_model.cc Model::EncodeOptimized) and the id list of
// SentencePieceProcessor::PopulateSentencePieceText

typedef struct {
    int id;          /* piece id of the best path's last piece ending here */
    float score;     /* best path score ending here */
    long starts_at;  /* byte position where that piece starts, -1 = unset */
} best_node;

#define kUnkPenalty 10.0f

int px_spm_encode_tokens(const px_spm *m, const char *utf8, size_t len, px_spm_token **toks_out, size_t *n_out,
                         char **norm_out, size_t *norm_len_out)
{
    *toks_out = NULL;
    *n_out = 0;
    if (norm_out) *norm_out = NULL;
    if (norm_len_out) *norm_len_out = 0;
    char *norm;
    size_t size;
    if (px_spm_normalize(m, utf8, len, &norm, &size) != 0) return -1;
    if (size == 0) {
        if (norm_out) { *norm_out = norm; if (norm_len_out) *norm_len_out = 0; }
        else free(norm);
        return 0;
    }
    if (size > (size_t)1 << 40) { free(norm); return px_fail("text too long"); }
    const uint8_t *s = (const uint8_t *)norm;

    best_node *best = px_malloc((size + 1) * sizeof *best, "viterbi lattice");
    if (!best) { free(norm); return -1; }
    for (size_t i = 0; i <= size; i++) { best[i].id = -1; best[i].score = 0.0f; best[i].starts_at = -1; }

    const float unk_score = m->min_score - kUnkPenalty;
    const px_trie *t = &m->normal;
    size_t start = 0;
    while (start < size) {
        const float till_here = best[start].score;
        const size_t mblen = one_char_len(s[start]) < size - start ? one_char_len(s[start]) : size - start;
        int has_single = 0;
        size_t node = 0;
        for (size_t k = start; k < size; k++) {
            long ch = px_trie_child(t, node, s[k]);
            if (ch < 0) break;
            node = (size_t)ch;
            int32_t id = t->nodes[node].value;
            if (id < 0) continue;
            const spm_piece *p = &m->pieces[id];
            if (p->type == PX_SPM_UNUSED) continue;
            size_t length = k + 1 - start;
            best_node *tg = &best[k + 1];
            /* sentencepiece computes this in double (the user-defined branch is
             * double), compares with the stored float, and stores a float */
            double score = p->type == PX_SPM_USER_DEFINED ? (double)((float)length * m->max_score) - 0.1
                                                          : (double)p->score;
            double cand = score + (double)till_here;
            if (tg->starts_at == -1 || cand > (double)tg->score) {
                tg->score = (float)cand;
                tg->starts_at = (long)start;
                tg->id = id;
            }
            if (!has_single && length == mblen) has_single = 1;
        }
        if (!has_single) {
            best_node *tg = &best[start + mblen];
            const float cand = unk_score + till_here;
            if (tg->starts_at == -1 || cand > tg->score) {
                tg->score = cand;
                tg->starts_at = (long)start;
                tg->id = m->unk;
            }
        }
        start += mblen;
    }

    /* backtrack: count, then fill in order */
    size_t count = 0;
    for (long e = (long)size; e > 0; e = best[e].starts_at) {
        if (best[e].starts_at < 0 || best[e].starts_at >= e) {
            free(best); free(norm);
            return px_fail("%s: internal error: broken Viterbi path at byte %ld", m->name, e);
        }
        count++;
    }
    int *path = px_malloc(count * sizeof *path, "viterbi path");
    size_t *plen = px_malloc(count * sizeof *plen, "viterbi path");
    if (!path || !plen) { free(path); free(plen); free(best); free(norm); return -1; }
    size_t i = count;
    for (long e = (long)size; e > 0; e = best[e].starts_at) {
        i--;
        path[i] = best[e].id;
        plen[i] = (size_t)(e - best[e].starts_at);
    }
    free(best);

    /* ids: runs of unknown pieces merge into one <unk>; with byte_fallback an
     * unknown piece becomes one <0xXX> piece per byte instead. */
    size_t cap = count;
    if (m->byte_fallback) {
        cap = 0;
        for (size_t k = 0; k < count; k++) cap += path[k] == m->unk ? plen[k] : 1;
    }
    px_spm_token *toks = px_malloc((cap ? cap : 1) * sizeof *toks, "tokens");
    if (!toks) { free(path); free(plen); free(norm); return -1; }
    size_t n = 0, off = 0;
    int prev_unk = 0;
    for (size_t k = 0; k < count; k++) {
        int is_unk = m->pieces[path[k]].type == PX_SPM_UNKNOWN;
        if (is_unk && m->byte_fallback) {
            for (size_t b = 0; b < plen[k]; b++) {
                int bid = m->byte_ids[s[off + b]];
                toks[n].id = bid >= 0 ? bid : m->unk;
                toks[n].begin = b + 1 == plen[k] ? off : off + b;
                toks[n].end = b + 1 == plen[k] ? off + plen[k] : off + b;
                n++;
            }
        } else if (is_unk && prev_unk) {
            toks[n - 1].end = off + plen[k]; /* merge into the previous <unk> */
        } else {
            toks[n].id = path[k];
            toks[n].begin = off;
            toks[n].end = off + plen[k];
            n++;
        }
        off += plen[k];
        prev_unk = is_unk;
    }
    free(path);
    free(plen);
    if (norm_out) { *norm_out = norm; if (norm_len_out) *norm_len_out = size; }
    else free(norm);
    *toks_out = toks;
    *n_out = n;
    return 0;
}

int px_spm_encode(const px_spm *m, const char *utf8, size_t len, int32_t **ids_out, size_t *n_out)
{
    px_spm_token *toks;
    size_t n;
    *ids_out = NULL;
    *n_out = 0;
    if (px_spm_encode_tokens(m, utf8, len, &toks, &n, NULL, NULL) != 0) return -1;
    if (n == 0) { free(toks); return 0; }
    int32_t *ids = px_malloc(n * sizeof *ids, "token ids");
    if (!ids) { free(toks); return -1; }
    for (size_t i = 0; i < n; i++) ids[i] = toks[i].id;
    free(toks);
    *ids_out = ids;
    *n_out = n;
    return 0;
}
