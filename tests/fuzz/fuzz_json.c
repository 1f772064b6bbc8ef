/* libFuzzer harness: the JSON reader (tensor/json.c) on arbitrary bytes,
 * plain and with the limits of a safetensors header (px_json_parse_limits),
 * which may only refuse more: what it accepts, the plain parser accepts with
 * the same shape. */
#include "fuzz_util.h"
#include "tensor/json.h"

/* walks the tree so every node is read */
static size_t walk(const px_json *j)
{
    size_t n = 1;
    if (j->type == PX_JSON_STRING) n += j->len ? (unsigned char)j->string[j->len - 1] : 0;
    if (j->type == PX_JSON_ARRAY || j->type == PX_JSON_OBJECT)
        for (size_t i = 0; i < j->count; i++) {
            n += walk(j->items[i]);
            if (j->type == PX_JSON_OBJECT) n += strlen(j->keys[i]);
        }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_json *j = px_json_parse((const char *)data, size, "fuzz.json");
    fuzz_expect_message(j == NULL);
    if (j) {
        volatile size_t n = walk(j);
        (void)n;
        if (j->type == PX_JSON_OBJECT) {
            double d;
            int64_t i;
            int b;
            const char *s;
            px_json_opt_number(j, "a", &d, "fuzz");
            px_json_opt_int(j, "b", &i, "fuzz");
            px_json_opt_bool(j, "c", &b, "fuzz");
            px_json_opt_string(j, "d", &s, "fuzz");
        }
    }
    static const px_json_limits lim = { .max_array_items = 4, .string_map_member = "__metadata__" };
    px_json *k = px_json_parse_limits((const char *)data, size, "fuzz.safetensors", &lim);
    fuzz_expect_message(k == NULL);
    if (k) {
        if (!j || walk(j) != walk(k)) abort(); /* the limits accepted what the plain parser refused */
        px_json_free(k);
    }
    px_json_free(j);
    px_clear_error();
    return 0;
}
