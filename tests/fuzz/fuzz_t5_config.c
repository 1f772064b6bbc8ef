/* libFuzzer harness: the T5 encoder's config.json (model/t5.c). */
#include "fuzz_util.h"
#include "model/t5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_t5_config c;
    int rc = px_t5_config_load(&c, fuzz_write("config.json", data, size));
    fuzz_expect_message(rc != 0);
    return 0;
}
