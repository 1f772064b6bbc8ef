/* SentencePiece ModelProto loading (google/sentencepiece v0.1.97
 * sentencepiece_model.proto, model_interface.cc, unigram_model.cc's tries,
 * normalizer.cc's precompiled charsmap): the protobuf is parsed here by hand
 * and treated as hostile input. Encoding is spm.c. */
#include "src/tokenizer/spm_internal.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"
#include "tensor/lfs.h"

#define PX_SPM_MAX_FILE ((size_t)1 << 30) /* refuse model files over 1 GiB */

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
    px_trie_key *kn = px_calloc(n, sizeof *kn, "sentencepiece keys");
    px_trie_key *kr = px_calloc(n, sizeof *kr, "sentencepiece keys");
    px_trie_key *ku = px_calloc(n, sizeof *ku, "sentencepiece keys");
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
        px_trie_key k = {p->str, p->len, i};
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
    int b = px_trie_build(&m->normal, kn, nn, &dup);
    if (b == -1) { px_fail("%s: ModelProto.pieces[%d]: piece is already defined", m->name, dup); goto out; }
    if (b != 0) goto out;
    if (nr) {
        b = px_trie_build(&m->reserved, kr, nr, &dup);
        if (b == -1) { px_fail("%s: ModelProto.pieces[%d]: piece is already defined", m->name, dup); goto out; }
        if (b != 0) goto out;
    }
    if (nu) {
        b = px_trie_build(&m->user, ku, nu, &dup);
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
    if (px_is_lfs_pointer(m->file, m->file_size) || parse_model_proto(m) != 0 || build_vocab(m) != 0 ||
        decode_charsmap(m) != 0) {
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
    px_trie_free(&m->normal);
    px_trie_free(&m->reserved);
    px_trie_free(&m->user);
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
    int32_t id = px_trie_exact(&m->reserved, (const uint8_t *)piece, len);
    if (id >= 0) return id;
    id = px_trie_exact(&m->normal, (const uint8_t *)piece, len);
    return id >= 0 ? id : m->unk;
}

int px_spm_has_piece(const px_spm *m, const char *piece, size_t len)
{
    return px_trie_exact(&m->reserved, (const uint8_t *)piece, len) >= 0 ||
           px_trie_exact(&m->normal, (const uint8_t *)piece, len) >= 0;
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
