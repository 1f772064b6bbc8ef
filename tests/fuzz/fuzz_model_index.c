/* libFuzzer harness: model_index.json (px_model_index_check, src/pipeline.c). */
#include "fuzz_util.h"
#include "src/pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("model_index.json", data, size);
    px_model_index mi;
    fuzz_expect_message(px_model_index_check(fuzz_dir(), &mi) != 0);
    return 0;
}
