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
/* One node per value, 32 bytes: a 100 MB safetensors header can hold 50 M
 * values (issue 17, doc/fuzzing.md). The members of the union are those of
 * the node's type: read them only after checking `type` (count is 0 for
 * scalars, so loops over items need no check). All nodes,
 * item arrays, keys and strings of a document live in one arena that
 * px_json_free releases at once. */
struct px_json {
    unsigned char type;         /* px_json_type */
    unsigned char boolean;      /* BOOL */
    unsigned char is_integer;   /* NUMBER: literal had no '.', 'e' or non-finite token */
    unsigned char int_overflow; /* NUMBER: integer literal out of int64 range */
    union {
        struct {                /* NUMBER */
            double number;      /* the value as a double */
            union {
                int64_t integer;    /* exact value when is_integer and !int_overflow */
                uint64_t uinteger;  /* exact value when is_integer, the literal has no '-'
                                       and it fits uint64 (int_overflow set above INT64_MAX) */
            };
        };
        struct {                /* STRING */
            char *string;       /* NUL-terminated UTF-8 (may contain NUL: see len) */
            size_t len;         /* byte length */
        };
        struct {                /* ARRAY/OBJECT */
            px_json **items;    /* values */
            char **keys;        /* OBJECT: keys, same order as in the text */
        };
    };
    size_t count;               /* ARRAY/OBJECT: number of items; 0 for the other types */
};

/* Limits for hostile formats whose shape is known (a safetensors header). */
typedef struct {
    size_t max_array_items;        /* 0: no limit; else longer arrays are an error */
    const char *string_map_member; /* a member of the top-level object that must be an
                                      object of strings (safetensors' "__metadata__"), or NULL */
} px_json_limits;

/* Parse `len` bytes. `source` names the input in error messages (a path).
 * Memory: about 40 bytes per value (node and item pointer) plus the text of
 * keys and strings; the _limits variant refuses what the format cannot hold
 * as soon as it sees it, before building anything for it. */
px_json *px_json_parse(const char *text, size_t len, const char *source);
px_json *px_json_parse_limits(const char *text, size_t len, const char *source, const px_json_limits *lim);
/* Read and parse a file. NULL (with a message naming the path) on failure.
 * px_json_load_file reads configuration files (config.json,
 * scheduler_config.json, model_index.json: a few kilobytes in every real
 * checkpoint) and refuses files above PX_JSON_CONFIG_MAX, so that a hostile
 * config costs at most ~100 MB and a fraction of a second, however often it
 * is read (the pipeline reads each model's config when it opens the
 * checkpoint and again when it loads the model); _max is for files that
 * grow with the model (a sharded checkpoint's index: PX_JSON_INDEX_MAX). */
#define PX_JSON_CONFIG_MAX (4u << 20)
#define PX_JSON_INDEX_MAX (64u << 20)
px_json *px_json_load_file(const char *path);
px_json *px_json_load_file_max(const char *path, size_t max_bytes);
/* Frees a document: j must be what px_json_parse / px_json_load_file
 * returned (not a value inside it; the values live as long as the document). */
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
