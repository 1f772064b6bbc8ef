/* SentencePiece (google/sentencepiece v0.1.97) in C: reads a `spiece.model`
 * (protobuf ModelProto) and encodes text exactly as
 * SentencePieceProcessor.encode(text) does for unigram models: the normalizer
 * (precompiled_charsmap double-array trie, whitespace handling, dummy prefix),
 * the optimized unigram Viterbi of unigram_model.cc, and the merging of
 * consecutive unknown pieces of sentencepiece_processor.cc. See doc/tokenizer.md. */
#ifndef PX_SPM_H
#define PX_SPM_H

#include <stddef.h>
#include <stdint.h>

typedef struct px_spm px_spm;

/* ModelProto.SentencePiece.Type */
enum {
    PX_SPM_NORMAL = 1,
    PX_SPM_UNKNOWN = 2,
    PX_SPM_CONTROL = 3,
    PX_SPM_USER_DEFINED = 4,
    PX_SPM_UNUSED = 5,
    PX_SPM_BYTE = 6
};

/* Load a model file. NULL (px_fail message naming the path and the field) on
 * any malformed or unsupported input. Only model_type UNIGRAM is supported. */
px_spm *px_spm_load(const char *path);
/* Same, from a serialized ModelProto in memory (`name` is used in messages). */
px_spm *px_spm_load_bytes(const void *data, size_t size, const char *name);
void px_spm_free(px_spm *m);

/* SentencePieceProcessor.encode(text) (out_type=int): *ids is malloc'ed (free()
 * it; it may be NULL when *n == 0). Returns 0 or -1 (px_fail). */
int px_spm_encode(const px_spm *m, const char *utf8, size_t len, int32_t **ids, size_t *n);

/* The same with the piece behind each id: tokens[i] covers bytes
 * [begin, end) of the normalized text (*normalized, malloc'ed, NUL-terminated;
 * pass NULL if not wanted). A run of unknown pieces is one token covering the
 * whole run (its piece string is that surface, as in encode(out_type=str)).
 * With byte_fallback an unknown piece becomes one <0xXX> token per byte, each
 * with begin == end except the last. */
typedef struct {
    int32_t id;
    size_t begin, end;
} px_spm_token;
int px_spm_encode_tokens(const px_spm *m, const char *utf8, size_t len, px_spm_token **tokens, size_t *n,
                         char **normalized, size_t *normalized_len);

/* The normalized form of the text (normalizer.cc Normalize): U+2581 for spaces,
 * dummy prefix, NFKC etc. *out is malloc'ed and NUL-terminated. */
int px_spm_normalize(const px_spm *m, const char *utf8, size_t len, char **out, size_t *out_len);

/* Vocabulary. */
int px_spm_piece_count(const px_spm *m);
/* Piece string (not NUL-terminated: use *len) and metadata of id, or NULL. */
const char *px_spm_piece(const px_spm *m, int id, size_t *len);
float px_spm_piece_score(const px_spm *m, int id);
int px_spm_piece_type(const px_spm *m, int id);
/* SentencePieceProcessor.piece_to_id: control/unknown/byte pieces first, then
 * normal/user-defined/unused; unknown strings give the unk id. */
int px_spm_piece_to_id(const px_spm *m, const char *piece, size_t len);
/* Returns 1 if the piece string exists in the vocabulary (any type). */
int px_spm_has_piece(const px_spm *m, const char *piece, size_t len);
/* The id of the UNKNOWN piece. */
int px_spm_unk_id(const px_spm *m);

/* trainer_spec / normalizer_spec facts, for diagnostics and tests. */
typedef struct {
    int model_type;                 /* 1 = UNIGRAM */
    int unk_id, bos_id, eos_id, pad_id; /* trainer_spec values (defaults 0, 1, 2, -1) */
    int byte_fallback;
    int treat_whitespace_as_suffix;
    const char *normalizer_name;    /* "" when absent */
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    size_t charsmap_size;           /* bytes of precompiled_charsmap (0 = none) */
} px_spm_info;
void px_spm_get_info(const px_spm *m, px_spm_info *info);

#endif
