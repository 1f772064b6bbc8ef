/* libFuzzer harness: the T5 tokenizer (src/t5_tokenizer.c, src/unicode.c)
 * on arbitrary prompt bytes, with data/tok/t5mini.model (a T5-style vocabulary
 * with the real normaliser) or, through PIXART_FUZZ_SPIECE, another model. */
#include "fuzz_util.h"
#include "src/tokenizer/t5_tokenizer.h"

static px_t5tok *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) {
        const char *p = getenv("PIXART_FUZZ_SPIECE");
        tok = px_t5tok_load(p && *p ? p : fuzz_data("tok/t5mini.model"));
        if (!tok) { fprintf(stderr, "fuzz_tokenizer: %s\n", px_last_error()); abort(); }
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (px_t5tok_tokenize(tok, (const char *)data, size, &ids, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= px_t5tok_vocab_size(tok)) abort();
    } else {
        fuzz_expect_message(1);
    }
    free(ids);
    int32_t fixed[120], mask[120];
    int n_real = 0;
    if (px_t5tok_encode_n(tok, (const char *)data, size, 120, fixed, mask, &n_real) == 0) {
        if (n_real < 0 || n_real > 120) abort();
    } else {
        fuzz_expect_message(1);
    }
    px_clear_error();
    return 0;
}
