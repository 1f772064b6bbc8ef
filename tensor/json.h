/* A small JSON reader for config.json, model_index.json, scheduler_config.json,
 * tokenizer configs and safetensors headers.
 *
 * It accepts what Python's json module writes, including the non-standard
 * tokens NaN, Infinity and -Infinity (diffusers saves lambda_min_clipped as
 * -Infinity). Input is treated as hostile: depth-limited, every escape checked. */
#ifndef PX_JSON_H
#define PX_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PX_JSON_NULL,
    PX_JSON_BOOL,
    PX_JSON_NUMBER,
    PX_JSON_STRING,
    PX_JSON_ARRAY,
    PX_JSON_OBJECT
} px_json_type;

typedef struct px_json px_json;
/* One node per value: kept small (72 bytes, 80 with malloc's header), as a
 * 100 MB safetensors header can hold 50 M values (issue 17, doc/fuzzing.md). */
struct px_json {
    px_json_type type;
    unsigned char boolean;      /* BOOL */
    unsigned char is_integer;   /* NUMBER: literal had no '.', 'e' or non-finite token */
    unsigned char int_overflow; /* NUMBER: integer literal out of int64 range */
    double number;        /* NUMBER: value as a double */
    int64_t integer;      /* NUMBER: exact value when is_integer and it fits int64 */
    uint64_t uinteger;    /* NUMBER: exact value when is_integer, >= 0 and fits uint64 */
    char *string;         /* STRING: NUL-terminated UTF-8 (may contain NUL: see len) */
    size_t len;           /* STRING: byte length */
    size_t count;         /* ARRAY/OBJECT: number of items */
    px_json **items;      /* ARRAY/OBJECT: values */
    char **keys;          /* OBJECT: keys, same order as in the text */
};

/* Parse `len` bytes. `source` names the input in error messages (a path). */
px_json *px_json_parse(const char *text, size_t len, const char *source);
/* Read and parse a file. NULL (with a message naming the path) on failure. */
px_json *px_json_load_file(const char *path);
void px_json_free(px_json *j);

/* Object member by key (last one wins, like Python), or NULL. */
const px_json *px_json_get(const px_json *obj, const char *key);

/* Optional typed members of an object. Each returns 0 when the key is present
 * and of the right type (value stored), 1 when absent or JSON null (out left
 * untouched), -1 when present with the wrong type (error names ctx and key). */
int px_json_opt_number(const px_json *obj, const char *key, double *out, const char *ctx);
int px_json_opt_int(const px_json *obj, const char *key, int64_t *out, const char *ctx);
int px_json_opt_bool(const px_json *obj, const char *key, int *out, const char *ctx);
int px_json_opt_string(const px_json *obj, const char *key, const char **out, const char *ctx);

/* Required variants: absent is an error too (-1, message names ctx and key). */
int px_json_req_number(const px_json *obj, const char *key, double *out, const char *ctx);
int px_json_req_int(const px_json *obj, const char *key, int64_t *out, const char *ctx);
int px_json_req_string(const px_json *obj, const char *key, const char **out, const char *ctx);

#endif
