/* transformers' slow T5Tokenizer (legacy=True, extra_ids=100) on top of the
 * SentencePiece model, as PixArtAlphaPipeline.encode_prompt calls it:
 *   tokenizer(text, padding="max_length", max_length=120, truncation=True,
 *             add_special_tokens=True)
 * Added tokens (</s>, <pad>, <unk>, <extra_id_0..99>) are split out of the raw
 * text first; each remaining chunk is SentencePiece-encoded on its own;
 * </s> is appended unless the ids already end with it; truncation keeps the
 * first max_length-1 ids; padding with <pad> and a 0/1 attention mask. */
#ifndef PX_T5_TOKENIZER_H
#define PX_T5_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "src/tokenizer/spm.h"

typedef struct px_t5tok px_t5tok;

/* Load spiece.model. The model must contain the pieces "</s>", "<pad>" and
 * "<unk>" (their ids become eos/pad/unk, as in transformers). */
px_t5tok *px_t5tok_load(const char *spiece_path);
/* Resolve PATH as a spiece.model file or a checkpoint folder containing
 * tokenizer/spiece.model (or spiece.model directly), then load it. */
px_t5tok *px_t5tok_load_path(const char *path);
void px_t5tok_free(px_t5tok *t);

const px_spm *px_t5tok_spm(const px_t5tok *t);
/* Piece string of id (public API, include/pixart/pixart.h). */
const char *px_t5tok_piece(const px_t5tok *t, int32_t id, size_t *len, int *extra);
int px_t5tok_eos_id(const px_t5tok *t);
int px_t5tok_pad_id(const px_t5tok *t);
/* vocab_size of the tokenizer: sentencepiece pieces + 100 extra ids. */
int px_t5tok_vocab_size(const px_t5tok *t);

/* Untruncated, unpadded ids (tokenize + convert_tokens_to_ids +
 * build_inputs_with_special_tokens): *ids malloc'ed, *n >= 1. */
int px_t5tok_tokenize(const px_t5tok *t, const char *text, size_t len, int32_t **ids, size_t *n);

/* The full call: ids[max_length] and mask[max_length] (either may be NULL)
 * filled, padding with the pad id / 0; *n_real (optional) = number of real
 * tokens (mask ones). max_length must be >= 2 (transformers does not truncate
 * at all for max_length 1, which cannot fit a fixed buffer). */
int px_t5tok_encode(const px_t5tok *t, const char *text, int max_length, int32_t *ids, int32_t *mask,
                    int *n_real);
/* Same for text that may contain NUL bytes. */
int px_t5tok_encode_n(const px_t5tok *t, const char *text, size_t len, int max_length, int32_t *ids,
                      int32_t *mask, int *n_real);

#endif
