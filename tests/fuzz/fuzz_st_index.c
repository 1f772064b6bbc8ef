/* libFuzzer harness: a sharded safetensors set (px_st_set_open): the input
 * is model.safetensors.index.json, optionally followed by a NUL byte and the
 * bytes of a shard a.safetensors (else a small valid shard is written). */
#include "fuzz_util.h"
#include "tensor/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char shard[] = "\x40\0\0\0\0\0\0\0"
                                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}          "
                                         "\0\0\x80\x3f\0\0\0\x40";
    const uint8_t *nul = memchr(data, 0, size);
    size_t ni = nul ? (size_t)(nul - data) : size;
    fuzz_write("model.safetensors.index.json", data, ni);
    if (nul) fuzz_write("a.safetensors", nul + 1, size - ni - 1);
    else fuzz_write("a.safetensors", shard, sizeof shard - 1);
    px_st_set *s = px_st_set_open(fuzz_dir(), "model", NULL);
    fuzz_expect_message(s == NULL);
    if (s) {
        if (!px_st_set_find(s, "w")) px_clear_error();
        px_st_set_close(s);
    }
    px_clear_error();
    return 0;
}
