/* libFuzzer harness: the transformer's config.json (model/dit.c) next to
 * the weights of data/pipe_small/transformer, through px_dit_load. */
#include "fuzz_util.h"
#include "model/dit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int linked;
    if (!linked) {
        const char *w = fuzz_path("diffusion_pytorch_model.safetensors");
        unlink(w);
        if (symlink(fuzz_data("pipe_small/transformer/diffusion_pytorch_model.safetensors"), w)) abort();
        linked = 1;
    }
    fuzz_write("config.json", data, size);
    px_dit *m = px_dit_load(fuzz_dir(), NULL);
    fuzz_expect_message(m == NULL);
    px_dit_free(m);
    return 0;
}
