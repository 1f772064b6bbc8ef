/* libFuzzer harness: the .npy reader (tensor/npy.c). */
#include "fuzz_util.h"
#include "tensor/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_tensor *t = px_npy_load(fuzz_write("fuzz.npy", data, size));
    fuzz_expect_message(t == NULL);
    if (t) {
        size_t nb = (size_t)px_numel(t) * px_dtype_size(t->dtype);
        volatile unsigned char s = 0;
        for (size_t k = 0; k < nb; k++) s ^= ((unsigned char *)t->data)[k];
        (void)s;
        px_tensor_free(t);
    }
    return 0;
}
