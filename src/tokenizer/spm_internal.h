/* The loaded SentencePiece model, shared by spm_model.c (loading the
 * ModelProto) and spm.c (normalizing and encoding). Not a public header. */
#ifndef PX_SPM_INTERNAL_H
#define PX_SPM_INTERNAL_H

#include "src/tokenizer/spm.h"
#include "src/tokenizer/trie.h"

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

#endif
