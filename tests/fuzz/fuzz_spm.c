/* libFuzzer harness: the SentencePiece model reader (src/spm.c) on arbitrary
 * bytes as spiece.model; a model that loads then encodes a fixed text. */
#include "fuzz_util.h"
#include "src/tokenizer/spm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_spm *m = px_spm_load_bytes(data, size, "fuzz/spiece.model");
    fuzz_expect_message(m == NULL);
    if (!m) return 0;
    static const char text[] = "A photo of an astronaut, riding a horse \xe2\x80\x94 1234 \xc3\xa9t\xc3\xa9!";
    int32_t *ids = NULL;
    size_t n = 0;
    if (px_spm_encode(m, text, sizeof text - 1, &ids, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            size_t len;
            if (ids[i] < 0 || ids[i] >= px_spm_piece_count(m)) abort();
            (void)px_spm_piece(m, ids[i], &len);
        }
    }
    free(ids);
    px_spm_free(m);
    px_clear_error();
    return 0;
}
