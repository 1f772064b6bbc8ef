/* SentencePiece unigram tokenizer (google/sentencepiece v0.1.97:
 * SentencePieceProcessor::Encode = normalizer.cc Normalize + unigram_model.cc
 * EncodeOptimized + PopulateSentencePieceText), reimplemented from the spec.
 * The model file is a protobuf ModelProto, parsed here by hand and treated as
 * hostile input. */
#include "src/spm.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"
#include "tensor/lfs.h"

#define PX_SPM_MAX_FILE ((size_t)1 << 30) /* refuse model files over 1 GiB */

// ---------------------------------------------------------------------------
// A byte trie over piece strings (children of a node are contiguous and sorted
// by label), used for the Viterbi prefix search and for piece -> id lookups.

typedef struct {
    uint32_t first_child; /* index of the first child in nodes[] */
    uint16_t n_children;  /* 0..256 */
    uint8_t label;        /* byte on the edge from the parent */
    int32_t value;        /* piece id, or -1 */
} trie_node;

typedef struct {
    trie_node *nodes;
    size_t n_nodes;
} px_trie;

typedef struct {
    const uint8_t *s;
    uint32_t len;
    int32_t value;
} trie_key;

static int trie_key_cmp(const void *a, const void *b)
{
    const trie_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void trie_free(px_trie *t)
{
    free(t->nodes);
    t->nodes = NULL;
    t->n_nodes = 0;
}

/* Build from keys (sorted in place). A duplicate key is an error; *dup gets its
 * value. Breadth-first: each node is created with the key range sharing its
 * prefix, so children of one node come out contiguous and sorted. */
static int trie_build(px_trie *t, trie_key *keys, size_t n, int32_t *dup)
{
    *dup = -1;
    qsort(keys, n, sizeof *keys, trie_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (trie_key_cmp(&keys[i - 1], &keys[i]) == 0) { *dup = keys[i].value; return -1; }
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += keys[i].len;
    t->nodes = px_calloc(cap, sizeof *t->nodes, "sentencepiece trie");
    size_t *lo = px_calloc(cap, sizeof *lo, "sentencepiece trie build");
    size_t *hi = px_calloc(cap, sizeof *hi, "sentencepiece trie build");
    uint32_t *depth = px_calloc(cap, sizeof *depth, "sentencepiece trie build");
    if (!t->nodes || !lo || !hi || !depth) {
        free(lo); free(hi); free(depth); trie_free(t);
        return -2;
    }
    size_t count = 1;
    t->nodes[0].value = -1;
    lo[0] = 0; hi[0] = n; depth[0] = 0;
    for (size_t q = 0; q < count; q++) {
        size_t a = lo[q], b = hi[q];
        uint32_t d = depth[q];
        trie_node *nd = &t->nodes[q];
        if (a < b && keys[a].len == d) { nd->value = keys[a].value; a++; }
        nd->first_child = (uint32_t)count;
        while (a < b) {
            uint8_t c = keys[a].s[d];
            size_t e = a + 1;
            while (e < b && keys[e].s[d] == c) e++;
            trie_node *ch = &t->nodes[count];
            ch->label = c;
            ch->value = -1;
            lo[count] = a; hi[count] = e; depth[count] = d + 1;
            count++;
            nd->n_children++;
            a = e;
        }
    }
    free(lo); free(hi); free(depth);
    t->n_nodes = count;
    return 0;
}

/* Child of node labelled c, or -1. */
static inline long trie_child(const px_trie *t, size_t node, uint8_t c)
{
    const trie_node *nd = &t->nodes[node];
    size_t lo = nd->first_child, hi = lo + nd->n_children;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint8_t l = t->nodes[mid].label;
        if (l == c) return (long)mid;
        if (l < c) lo = mid + 1; else hi = mid;
    }
    return -1;
}

static int32_t trie_exact(const px_trie *t, const uint8_t *s, size_t len)
{
    if (!t->nodes) return -1;
    size_t node = 0;
    for (size_t i = 0; i < len; i++) {
        long ch = trie_child(t, node, s[i]);
        if (ch < 0) return -1;
        node = (size_t)ch;
    }
    return t->nodes[node].value;
}

/* Length of the longest key that is a prefix of s[0..len), 0 if none. */
static size_t trie_longest_prefix(const px_trie *t, const uint8_t *s, size_t len)
{
    if (!t->nodes) return 0;
    size_t node = 0, best = 0;
    for (size_t i = 0; i < len; i++) {
        long ch = trie_child(t, node, s[i]);
        if (ch < 0) break;
        node = (size_t)ch;
        if (t->nodes[node].value >= 0) best = i + 1;
    }
    return best;
}

// ---------------------------------------------------------------------------
// The model

typedef struct {
    const uint8_t *str; /* into px_spm.file */
    uint32_t len;
    float score;
    int type;
} spm_piece;

struct px_spm {
    char *name;            /* path, for messages */
    uint8_t *file;         /* the serialized ModelProto (pieces point into it) */
    size_t file_size;

    spm_piece *pieces;
    int n_pieces;

    /* trainer_spec */
    int model_type, unk_id_field, bos_id, eos_id, pad_id;
    int byte_fallback, treat_ws_as_suffix;
    /* normalizer_spec */
    char *norm_name;
    const uint8_t *charsmap;
    size_t charsmap_size;
    int add_dummy_prefix, remove_extra_ws, escape_ws;

    /* precompiled charsmap, decoded: darts-clone double array + replacement strings */
    uint32_t *da;          /* double-array units (host order) */
    size_t n_da;
    char *norm_strings;    /* the normalized-string blob plus a NUL guard byte */
    size_t norm_strings_size; /* without the guard */

    /* derived */
    int unk;               /* index of the UNKNOWN piece (ModelInterface::unk_id_) */
    float min_score, max_score;
    px_trie normal;        /* NORMAL, USER_DEFINED, UNUSED pieces (unigram trie_) */
    px_trie reserved;      /* CONTROL, UNKNOWN, BYTE pieces (reserved_id_map_) */
    px_trie user;          /* USER_DEFINED pieces (normalizer PrefixMatcher) */
    int byte_ids[256];     /* byte fallback: id of <0xXX> */
};

// ---------------------------------------------------------------------------
// Protobuf wire format

typedef struct {
    const uint8_t *p, *end;
} pb_buf;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_SGROUP = 3, PB_EGROUP = 4, PB_I32 = 5 };

typedef struct {
    uint32_t field;
    int wt;
    uint64_t v;         /* VARINT value, I32/I64 raw bits */
    const uint8_t *data; /* LEN payload */
    size_t len;
} pb_field;

static int pb_read_varint(pb_buf *b, uint64_t *v, const char *name, const char *where, const char *what)
{
    uint64_t r = 0;
    for (int i = 0; i < 10; i++) {
        if (b->p >= b->end)
            return px_fail("%s: %s: truncated varint (%s)", name, where, what);
        uint8_t c = *b->p++;
        if (i == 9 && c > 1)
            return px_fail("%s: %s: varint overflows 64 bits (%s)", name, where, what);
        r |= (uint64_t)(c & 0x7F) << (7 * i);
        if (!(c & 0x80)) { *v = r; return 0; }
    }
    return px_fail("%s: %s: varint longer than 10 bytes (%s)", name, where, what);
}

/* Read one field of the message in b. `where` names the message. */
static int pb_next(pb_buf *b, pb_field *f, const char *name, const char *where)
{
    uint64_t key;
    if (pb_read_varint(b, &key, name, where, "field key") != 0) return -1;
    if (key > 0xFFFFFFFFu || (key >> 3) == 0)
        return px_fail("%s: %s: invalid field number %llu", name, where, (unsigned long long)(key >> 3));
    f->field = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    f->v = 0;
    size_t left = (size_t)(b->end - b->p);
    switch (f->wt) {
    case PB_VARINT:
        return pb_read_varint(b, &f->v, name, where, "field value");
    case PB_I64:
        if (left < 8)
            return px_fail("%s: %s: field %u: 8-byte value truncated (%zu bytes left)", name, where, f->field, left);
        for (int k = 7; k >= 0; k--) f->v = (f->v << 8) | b->p[k];
        b->p += 8;
        return 0;
    case PB_I32:
        if (left < 4)
            return px_fail("%s: %s: field %u: 4-byte value truncated (%zu bytes left)", name, where, f->field, left);
        for (int k = 3; k >= 0; k--) f->v = (f->v << 8) | b->p[k];
        b->p += 4;
        return 0;
    case PB_LEN: {
        uint64_t n;
        if (pb_read_varint(b, &n, name, where, "length") != 0) return -1;
        left = (size_t)(b->end - b->p);
        if (n > left)
            return px_fail("%s: %s: field %u: length %llu runs past the end of the message (%zu bytes left)",
                           name, where, f->field, (unsigned long long)n, left);
        f->data = b->p;
        f->len = (size_t)n;
        b->p += n;
        return 0;
    }
    case PB_SGROUP:
    case PB_EGROUP:
        return px_fail("%s: %s: field %u uses the deprecated group wire type (not supported)", name, where, f->field);
    default:
        return px_fail("%s: %s: field %u has invalid wire type %d", name, where, f->field, f->wt);
    }
}

static int32_t pb_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

static float pb_float(uint64_t v)
{
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ModelProto.SentencePiece */
static int parse_piece(px_spm *m, const uint8_t *data, size_t len, int index)
{
    char where[64];
    snprintf(where, sizeof where, "ModelProto.pieces[%d]", index);
    spm_piece pc = {NULL, 0, 0.0f, PX_SPM_NORMAL};
    pb_buf b = {data, data + len};
    pb_field f;
    while (b.p < b.end) {
        if (pb_next(&b, &f, m->name, where) != 0) return -1;
        if (f.field == 1 && f.wt == PB_LEN) {
            if (f.len > UINT32_MAX)
                return px_fail("%s: %s.piece: too long", m->name, where);
            pc.str = f.data;
            pc.len = (uint32_t)f.len;
        } else if (f.field == 2 && f.wt == PB_I32) {
            pc.score = pb_float(f.v);
        } else if (f.field == 3 && f.wt == PB_VARINT) {
            int32_t t = pb_int32(f.v);
            /* proto2: an unknown enum value leaves the field unset */
            if (t >= PX_SPM_NORMAL && t <= PX_SPM_BYTE) pc.type = t;
        }
    }
    if (pc.len == 0)
        return px_fail("%s: %s.piece: piece must not be empty", m->name, where);
    if (memchr(pc.str, 0, pc.len))
        return px_fail("%s: %s.piece: contains a NUL byte (not supported)", m->name, where);
    if (m->n_pieces == INT32_MAX)
        return px_fail("%s: ModelProto.pieces: too many pieces", m->name);
    m->pieces[m->n_pieces++] = pc;
    return 0;
}

static int parse_trainer_spec(px_spm *m, const uint8_t *data, size_t len)
{
    const char *where = "ModelProto.trainer_spec";
    pb_buf b = {data, data + len};
    pb_field f;
    while (b.p < b.end) {
        if (pb_next(&b, &f, m->name, where) != 0) return -1;
        if (f.wt != PB_VARINT) continue;
        int32_t v = pb_int32(f.v);
        switch (f.field) {
        case 3: if (v >= 1 && v <= 4) m->model_type = v; break;
        case 24: m->treat_ws_as_suffix = f.v != 0; break;
        case 35: m->byte_fallback = f.v != 0; break;
        case 40: m->unk_id_field = v; break;
        case 41: m->bos_id = v; break;
        case 42: m->eos_id = v; break;
        case 43: m->pad_id = v; break;
        default: break;
        }
    }
    return 0;
}

static int parse_normalizer_spec(px_spm *m, const uint8_t *data, size_t len)
{
    const char *where = "ModelProto.normalizer_spec";
    pb_buf b = {data, data + len};
    pb_field f;
    while (b.p < b.end) {
        if (pb_next(&b, &f, m->name, where) != 0) return -1;
        if (f.field == 1 && f.wt == PB_LEN) {
            char *s = px_malloc(f.len + 1, "normalizer_spec.name");
            if (!s) return -1;
            memcpy(s, f.data, f.len);
            s[f.len] = 0;
            free(m->norm_name);
            m->norm_name = s;
        } else if (f.field == 2 && f.wt == PB_LEN) {
            m->charsmap = f.data;
            m->charsmap_size = f.len;
        } else if (f.wt == PB_VARINT) {
            if (f.field == 3) m->add_dummy_prefix = f.v != 0;
            else if (f.field == 4) m->remove_extra_ws = f.v != 0;
            else if (f.field == 5) m->escape_ws = f.v != 0;
        }
    }
    return 0;
}

static int parse_model_proto(px_spm *m)
{
    const char *where = "ModelProto";
    /* first pass: count pieces so the array is allocated once */
    size_t n_pieces = 0;
    pb_buf b = {m->file, m->file + m->file_size};
    pb_field f;
    while (b.p < b.end) {
        if (pb_next(&b, &f, m->name, where) != 0) return -1;
        if (f.field == 1 && f.wt == PB_LEN) n_pieces++;
    }
    m->pieces = px_calloc(n_pieces ? n_pieces : 1, sizeof *m->pieces, "sentencepiece pieces");
    if (!m->pieces) return -1;
    b.p = m->file;
    while (b.p < b.end) {
        if (pb_next(&b, &f, m->name, where) != 0) return -1;
        if (f.wt != PB_LEN) continue;
        int rc = 0;
        switch (f.field) {
        case 1: rc = parse_piece(m, f.data, f.len, m->n_pieces); break;
        case 2: rc = parse_trainer_spec(m, f.data, f.len); break;
        case 3: rc = parse_normalizer_spec(m, f.data, f.len); break;
        default: break; /* self_test_data, denormalizer_spec, extensions */
        }
        if (rc != 0) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Checks and derived data (ModelInterface::InitializePieces, unigram::Model,
// Normalizer::Init)

static int byte_piece_value(const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *h = memchr(hex, s[3], 16), *l = memchr(hex, s[4], 16);
    if (!h || !l || !s[3] || !s[4]) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

static int build_vocab(px_spm *m)
{
    if (m->model_type != 1)
        return px_fail("%s: ModelProto.trainer_spec.model_type: %d is not supported (only UNIGRAM = 1)",
                       m->name, m->model_type);
    if (m->n_pieces == 0)
        return px_fail("%s: ModelProto.pieces: no pieces", m->name);
    size_t n = (size_t)m->n_pieces;
    trie_key *kn = px_calloc(n, sizeof *kn, "sentencepiece keys");
    trie_key *kr = px_calloc(n, sizeof *kr, "sentencepiece keys");
    trie_key *ku = px_calloc(n, sizeof *ku, "sentencepiece keys");
    if (!kn || !kr || !ku) { free(kn); free(kr); free(ku); return -1; }
    size_t nn = 0, nr = 0, nu = 0;
    int rc = -1;
    int byte_found = 0;
    unsigned char byte_seen[256] = {0};
    m->unk = -1;
    for (int i = 0; i < 256; i++) m->byte_ids[i] = -1;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN; /* sic: sentencepiece starts from FLT_MIN, not -FLT_MAX */
    for (int i = 0; i < m->n_pieces; i++) {
        const spm_piece *p = &m->pieces[i];
        trie_key k = {p->str, p->len, i};
        if (p->type == PX_SPM_NORMAL || p->type == PX_SPM_USER_DEFINED || p->type == PX_SPM_UNUSED)
            kn[nn++] = k;
        else
            kr[nr++] = k;
        if (p->type == PX_SPM_USER_DEFINED) ku[nu++] = k;
        if (p->type == PX_SPM_NORMAL) {
            if (p->score < m->min_score) m->min_score = p->score;
            if (p->score > m->max_score) m->max_score = p->score;
        }
        if (p->type == PX_SPM_UNKNOWN) {
            if (m->unk >= 0) {
                px_fail("%s: ModelProto.pieces[%d]: a second UNKNOWN piece (the first is %d)", m->name, i, m->unk);
                goto out;
            }
            m->unk = i;
        }
        if (p->type == PX_SPM_BYTE) {
            if (!m->byte_fallback) {
                px_fail("%s: ModelProto.pieces[%d]: BYTE piece although trainer_spec.byte_fallback is false", m->name, i);
                goto out;
            }
            int v = byte_piece_value(p->str, p->len);
            if (v < 0) {
                px_fail("%s: ModelProto.pieces[%d]: invalid BYTE piece (want <0xXX>)", m->name, i);
                goto out;
            }
            if (!byte_seen[v]) { byte_seen[v] = 1; byte_found++; }
        }
    }
    if (m->unk < 0) {
        px_fail("%s: ModelProto.pieces: no UNKNOWN piece (unk is not defined)", m->name);
        goto out;
    }
    if (m->byte_fallback && byte_found != 256) {
        px_fail("%s: ModelProto.pieces: %d of the 256 byte pieces although trainer_spec.byte_fallback is true",
                m->name, byte_found);
        goto out;
    }
    if (nn == 0) {
        px_fail("%s: ModelProto.pieces: no NORMAL/USER_DEFINED/UNUSED pieces are loaded", m->name);
        goto out;
    }
    int32_t dup;
    int b = trie_build(&m->normal, kn, nn, &dup);
    if (b == -1) { px_fail("%s: ModelProto.pieces[%d]: piece is already defined", m->name, dup); goto out; }
    if (b != 0) goto out;
    if (nr) {
        b = trie_build(&m->reserved, kr, nr, &dup);
        if (b == -1) { px_fail("%s: ModelProto.pieces[%d]: piece is already defined", m->name, dup); goto out; }
        if (b != 0) goto out;
    }
    if (nu) {
        b = trie_build(&m->user, ku, nu, &dup);
        if (b != 0) goto out; /* duplicates were caught by the normal trie */
    }
    if (m->byte_fallback) {
        for (int v = 0; v < 256; v++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", v);
            m->byte_ids[v] = px_spm_piece_to_id(m, name, 6);
        }
    }
    rc = 0;
out:
    free(kn); free(kr); free(ku);
    return rc;
}

static int decode_charsmap(px_spm *m)
{
    if (m->charsmap_size == 0) return 0;
    const char *where = "ModelProto.normalizer_spec.precompiled_charsmap";
    const uint8_t *blob = m->charsmap;
    size_t size = m->charsmap_size;
    if (size <= 4)
        return px_fail("%s: %s: %zu bytes, too short for its 4-byte trie size", m->name, where, size);
    uint32_t trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
    if ((size_t)trie_size >= size)
        return px_fail("%s: %s: trie size %u exceeds the blob (%zu bytes)", m->name, where, trie_size, size);
    if (trie_size > size - 4)
        return px_fail("%s: %s: trie size %u runs past the blob (%zu bytes after the size)", m->name, where,
                       trie_size, size - 4);
    m->n_da = trie_size / 4;
    m->da = px_malloc((m->n_da ? m->n_da : 1) * sizeof *m->da, "precompiled_charsmap trie");
    if (!m->da) return -1;
    const uint8_t *t = blob + 4;
    for (size_t i = 0; i < m->n_da; i++)
        m->da[i] = (uint32_t)t[4 * i] | (uint32_t)t[4 * i + 1] << 8 | (uint32_t)t[4 * i + 2] << 16 |
                   (uint32_t)t[4 * i + 3] << 24;
    m->norm_strings_size = size - 4 - trie_size;
    m->norm_strings = px_malloc(m->norm_strings_size + 1, "precompiled_charsmap strings");
    if (!m->norm_strings) return -1;
    memcpy(m->norm_strings, blob + 4 + trie_size, m->norm_strings_size);
    m->norm_strings[m->norm_strings_size] = 0; /* guard: every value offset ends in a NUL */
    return 0;
}

static px_spm *spm_init(px_spm *m)
{
    m->model_type = 1;
    m->unk_id_field = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->add_dummy_prefix = 1;
    m->remove_extra_ws = 1;
    m->escape_ws = 1;
    if (px_is_lfs_pointer(m->file, m->file_size)) px_fail("%s: %s", m->name, PX_LFS_MESSAGE);
    if (px_is_lfs_pointer(m->file, m->file_size) || parse_model_proto(m) != 0 || build_vocab(m) != 0 || decode_charsmap(m) != 0) {
        px_spm_free(m);
        return NULL;
    }
    return m;
}

px_spm *px_spm_load_bytes(const void *data, size_t size, const char *name)
{
    px_spm *m = px_calloc(1, sizeof *m, "sentencepiece model");
    if (!m) return NULL;
    m->name = strdup(name ? name : "(memory)");
    m->file = px_malloc(size ? size : 1, "sentencepiece model bytes");
    if (!m->name || !m->file) {
        if (!m->name) px_fail("out of memory");
        px_spm_free(m);
        return NULL;
    }
    if (size) memcpy(m->file, data, size);
    m->file_size = size;
    return spm_init(m);
}

px_spm *px_spm_load(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        px_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= PX_SPM_MAX_FILE) {
                fclose(fp);
                free(buf);
                px_fail("%s: larger than 1 GiB, not a sentencepiece model", path);
                return NULL;
            }
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                fclose(fp);
                free(buf);
                px_fail("%s: out of memory reading the file", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        px_fail("%s: read error", path);
        return NULL;
    }
    if (n == 0) {
        free(buf);
        px_fail("%s: empty file, not a sentencepiece model", path);
        return NULL;
    }
    px_spm *m = px_calloc(1, sizeof *m, "sentencepiece model");
    if (!m) { free(buf); return NULL; }
    m->name = strdup(path);
    m->file = buf;
    m->file_size = n;
    if (!m->name) {
        px_fail("out of memory");
        px_spm_free(m);
        return NULL;
    }
    return spm_init(m);
}

void px_spm_free(px_spm *m)
{
    if (!m) return;
    trie_free(&m->normal);
    trie_free(&m->reserved);
    trie_free(&m->user);
    free(m->da);
    free(m->norm_strings);
    free(m->norm_name);
    free(m->pieces);
    free(m->file);
    free(m->name);
    free(m);
}

// ---------------------------------------------------------------------------
// Vocabulary queries

int px_spm_piece_count(const px_spm *m) { return m->n_pieces; }
int px_spm_unk_id(const px_spm *m) { return m->unk; }

const char *px_spm_piece(const px_spm *m, int id, size_t *len)
{
    if (id < 0 || id >= m->n_pieces) return NULL;
    if (len) *len = m->pieces[id].len;
    return (const char *)m->pieces[id].str;
}

float px_spm_piece_score(const px_spm *m, int id)
{
    return (id >= 0 && id < m->n_pieces) ? m->pieces[id].score : 0.0f;
}

int px_spm_piece_type(const px_spm *m, int id)
{
    return (id >= 0 && id < m->n_pieces) ? m->pieces[id].type : 0;
}

int px_spm_piece_to_id(const px_spm *m, const char *piece, size_t len)
{
    int32_t id = trie_exact(&m->reserved, (const uint8_t *)piece, len);
    if (id >= 0) return id;
    id = trie_exact(&m->normal, (const uint8_t *)piece, len);
    return id >= 0 ? id : m->unk;
}

int px_spm_has_piece(const px_spm *m, const char *piece, size_t len)
{
    return trie_exact(&m->reserved, (const uint8_t *)piece, len) >= 0 ||
           trie_exact(&m->normal, (const uint8_t *)piece, len) >= 0;
}

void px_spm_get_info(const px_spm *m, px_spm_info *info)
{
    info->model_type = m->model_type;
    info->unk_id = m->unk_id_field;
    info->bos_id = m->bos_id;
    info->eos_id = m->eos_id;
    info->pad_id = m->pad_id;
    info->byte_fallback = m->byte_fallback;
    info->treat_whitespace_as_suffix = m->treat_ws_as_suffix;
    info->normalizer_name = m->norm_name ? m->norm_name : "";
    info->add_dummy_prefix = m->add_dummy_prefix;
    info->remove_extra_whitespaces = m->remove_extra_ws;
    info->escape_whitespaces = m->escape_ws;
    info->charsmap_size = m->charsmap_size;
}

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
    size_t ul = trie_longest_prefix(&m->user, s, len);
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
            long ch = trie_child(t, node, s[k]);
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
