/* libFuzzer harness: one safetensors file (tensor/safetensors.c): header
 * validation, then every tensor's bytes read (ASan catches a view past the
 * mapping) and converted to float. */
#include "fuzz_util.h"
#include "tensor/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_write("fuzz.safetensors", data, size);
    px_st_file *f = px_st_open(p);
    fuzz_expect_message(f == NULL);
    if (!f) return 0;
    volatile unsigned sum = 0;
    for (size_t i = 0; i < f->n; i++) {
        const px_tensor *t = &f->entries[i].t;
        size_t nb = (size_t)px_numel(t) * px_dtype_size(t->dtype);
        const unsigned char *b = t->data;
        for (size_t k = 0; k < nb; k++) sum += b[k];
        if (px_st_find(f, f->entries[i].name) != t) abort();
        if (px_numel(t) > 0 && px_numel(t) <= 4096) {
            float *x = px_tensor_to_f32_alloc(t, "fuzz");
            if (x) sum += (unsigned)(x[0] != x[0]);
            free(x);
        }
    }
    (void)sum;
    px_st_close(f);
    px_clear_error();
    return 0;
}
