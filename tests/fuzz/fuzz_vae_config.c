/* libFuzzer harness: the VAE's config.json (model/vae.c). */
#include "fuzz_util.h"
#include "model/vae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_vae_config c;
    int rc = px_vae_config_load(&c, fuzz_write("config.json", data, size));
    fuzz_expect_message(rc != 0);
    return 0;
}
