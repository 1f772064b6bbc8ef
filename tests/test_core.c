/* Foundation tests: JSON parser, half-precision conversion, safetensors
 * reader/writer (round trip, shards, corrupted files), .npy I/O. */
#include "testutil.h"
#include "tensor/error.h"
#include "tensor/half.h"
#include "tensor/json.h"
#include "tensor/npy.h"
#include "tensor/outfile.h"
#include "model/weights.h"
#include "tensor/memstat.h"
#include "tensor/safetensors.h"
#include "src/tokenizer/spm.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <limits.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static void setup(void) { px_test_tmpdir_make(tmpdir, sizeof tmpdir, "core"); }
static void teardown(void) { px_test_tmpdir_remove(tmpdir); }

static const char *tpath(const char *name)
{
    static char b[4][4400]; // room for a NAME_MAX name (out_check)
    static int k;
    char *p = b[k++ & 3];
    snprintf(p, sizeof b[0], "%s/%s", tmpdir, name);
    return p;
}

/* ---- JSON -------------------------------------------------------------- */

START_TEST(json_python_tokens)
{
    const char *s = "{\"a\": -Infinity, \"b\": Infinity, \"c\": NaN, \"d\": [1, 2.5, -3e2], "
                    "\"e\": \"x\\u00e9\\ud83d\\ude00\\n\", \"f\": null, \"g\": true, "
                    "\"h\": 18446744073709551615, \"a\": 7}";
    px_json *j = px_json_parse(s, strlen(s), "t.json");
    ck_assert_msg(j != NULL, "%s", px_last_error());
    double a;
    ck_assert_int_eq(px_json_opt_number(j, "a", &a, "t.json"), 0);
    ck_assert(a == 7); /* last duplicate wins, like Python */
    const px_json *b = px_json_get(j, "b"), *c = px_json_get(j, "c"), *d = px_json_get(j, "d");
    ck_assert(isinf(b->number) && b->number > 0);
    ck_assert(isnan(c->number));
    ck_assert_uint_eq(d->count, 3);
    ck_assert(d->items[0]->is_integer && d->items[0]->integer == 1);
    ck_assert(!d->items[1]->is_integer && d->items[1]->number == 2.5);
    ck_assert(d->items[2]->number == -300);
    const char *e;
    ck_assert_int_eq(px_json_opt_string(j, "e", &e, "t.json"), 0);
    ck_assert_str_eq(e, "x\xc3\xa9\xf0\x9f\x98\x80\n");
    int g = 0;
    ck_assert_int_eq(px_json_opt_bool(j, "g", &g, "t.json"), 0);
    ck_assert_int_eq(g, 1);
    int64_t v = 5;
    ck_assert_int_eq(px_json_opt_int(j, "f", &v, "t.json"), 1); /* null = absent */
    ck_assert_int_eq(px_json_opt_int(j, "zz", &v, "t.json"), 1);
    ck_assert_int_eq(v, 5);
    const px_json *h = px_json_get(j, "h");
    ck_assert(h->is_integer && h->uinteger == UINT64_MAX && h->int_overflow);
    ck_assert_int_eq(px_json_opt_int(j, "g", &v, "t.json"), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "'g'"));
    px_json_free(j);
    double neg_inf;
    px_json *k = px_json_parse("{\"x\":-Infinity}", 15, "k");
    ck_assert_int_eq(px_json_req_number(k, "x", &neg_inf, "k"), 0);
    ck_assert(isinf(neg_inf) && neg_inf < 0);
    ck_assert_int_eq(px_json_req_number(k, "y", &neg_inf, "k"), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "required field 'y'"));
    px_json_free(k);
}
END_TEST

START_TEST(json_rejects_malformed)
{
    const char *bad[] = { "", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"abc", "\"\\x\"", "01",
                          "[1] x", "{\"a\":tru}", "\"\\ud800\"", "-", "1.", "1e", "[\"\x01\"]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        px_json *j = px_json_parse(bad[i], strlen(bad[i]), "bad.json");
        ck_assert_msg(j == NULL, "accepted malformed JSON #%zu '%s'", i, bad[i]);
        ck_assert_ptr_nonnull(strstr(px_last_error(), "bad.json"));
    }
    /* nesting bomb */
    char deep[300];
    memset(deep, '[', sizeof deep);
    ck_assert_ptr_null(px_json_parse(deep, sizeof deep, "deep.json"));
}
END_TEST

/* ---- half precision ---------------------------------------------------- */

/* Values and torch's conversions of them, produced by
 * tools/gen_core_fixture.py (torch 1.13) into data/core/half.safetensors. */
START_TEST(half_matches_torch)
{
    px_st_file *f = px_test_open(px_test_data("core/half.safetensors"));
    const px_tensor *x = px_st_find(f, "f32"), *b = px_st_find(f, "bf16"), *h = px_st_find(f, "f16");
    ck_assert(x && b && h && x->dtype == PX_F32 && b->dtype == PX_BF16 && h->dtype == PX_F16);
    int64_t n = px_numel(x);
    ck_assert_int_gt(n, 100);
    const float *xf = x->data;
    const uint16_t *bb = b->data, *hh = h->data;
    for (int64_t i = 0; i < n; i++) {
        uint16_t gb = px_f32_to_bf16(xf[i]), gh = px_f32_to_f16(xf[i]);
        ck_assert_msg(gb == bb[i], "bf16(%.9g): got %04x torch %04x", xf[i], gb, bb[i]);
        ck_assert_msg(gh == hh[i], "f16(%.9g): got %04x torch %04x", xf[i], gh, hh[i]);
    }
    /* widening: every one of the 65536 bit patterns round-trips through F32 */
    for (uint32_t u = 0; u < 65536; u++) {
        float fb = px_bf16_to_f32((uint16_t)u), fh = px_f16_to_f32((uint16_t)u);
        if (!isnan(fb)) ck_assert_uint_eq(px_f32_to_bf16(fb), u);
        if (!isnan(fh)) ck_assert_uint_eq(px_f32_to_f16(fh), u);
    }
    /* torch's widened values of the stored halves */
    const px_tensor *bw = px_st_find(f, "bf16_as_f32"), *hw = px_st_find(f, "f16_as_f32");
    ck_assert(bw && hw);
    for (int64_t i = 0; i < n; i++) {
        float wb = ((const float *)bw->data)[i], wh = ((const float *)hw->data)[i];
        float gb = px_bf16_to_f32(bb[i]), gh = px_f16_to_f32(hh[i]);
        ck_assert(memcmp(&wb, &gb, 4) == 0 || (isnan(wb) && isnan(gb)));
        ck_assert(memcmp(&wh, &gh, 4) == 0 || (isnan(wh) && isnan(gh)));
    }
    px_st_close(f);
}
END_TEST

/* ---- safetensors ------------------------------------------------------- */

START_TEST(st_roundtrip)
{
    px_st_writer *w = px_st_writer_new();
    float a[6] = { 1, -2, 3.5f, 4, 5, 6 };
    int64_t ids[3] = { 7, -1, 1LL << 40 };
    ck_assert_int_eq(px_st_writer_add(w, "a.weight", PX_F32, 2, (int64_t[]){ 2, 3 }, a), 0);
    ck_assert_int_eq(px_st_writer_add(w, "ids", PX_I64, 1, (int64_t[]){ 3 }, ids), 0);
    ck_assert_int_eq(px_st_writer_add_f32_as(w, "b", PX_BF16, 1, (int64_t[]){ 6 }, a), 0);
    ck_assert_int_eq(px_st_writer_add_f32_as(w, "h", PX_F16, 2, (int64_t[]){ 3, 2 }, a), 0);
    ck_assert_int_eq(px_st_writer_add(w, "empty", PX_F32, 2, (int64_t[]){ 0, 4 }, a), 0);
    ck_assert_int_eq(px_st_writer_add(w, "a.weight", PX_F32, 1, (int64_t[]){ 1 }, a), -1);
    ck_assert_int_eq(px_st_writer_set_metadata(w, "format", "pt"), 0);
    ck_assert_int_eq(px_st_writer_save(w, tpath("rt.safetensors")), 0);
    px_st_writer_free(w);

    px_st_file *f = px_test_open(tpath("rt.safetensors"));
    ck_assert_uint_eq(f->n, 5);
    const px_tensor *t = px_st_find(f, "a.weight");
    ck_assert(t && t->dtype == PX_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    ck_assert(memcmp(t->data, a, sizeof a) == 0);
    t = px_st_find(f, "ids");
    ck_assert(t && t->dtype == PX_I64 && memcmp(t->data, ids, sizeof ids) == 0);
    t = px_st_find(f, "b");
    for (int i = 0; i < 6; i++) ck_assert(px_tensor_get_f32(t, i) == a[i]);
    t = px_st_find(f, "h");
    ck_assert(t->shape[0] == 3 && px_tensor_get_f32(t, 2) == 3.5f);
    ck_assert_ptr_null(px_st_find(f, "nope"));
    ck_assert_ptr_nonnull(f->metadata);
    const char *fmt;
    ck_assert_int_eq(px_json_opt_string(f->metadata, "format", &fmt, "meta"), 0);
    ck_assert_str_eq(fmt, "pt");
    px_st_close(f);

    /* the weight layer over it: checks name the file and the tensor */
    px_weights *wt = px_weights_open(tmpdir, "rt", NULL, "test");
    ck_assert_msg(wt != NULL, "%s", px_last_error());
    ck_assert_ptr_nonnull(px_weights_get(wt, 2, (int64_t[]){ 2, 3 }, "a.weight"));
    ck_assert_ptr_null(px_weights_get(wt, 2, (int64_t[]){ 3, 2 }, "a.weight"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "rt.safetensors: tensor 'a.weight'"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "(3, 2)"));
    ck_assert_ptr_null(px_weights_get(wt, 1, (int64_t[]){ 1 }, "blocks.%d.w", 3));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "'blocks.3.w' is missing"));
    ck_assert_ptr_null(px_weights_get(wt, 1, (int64_t[]){ 3 }, "ids")); /* not a float weight */
    ck_assert_ptr_nonnull(strstr(px_last_error(), "dtype I64"));
    /* F32 vectors come straight from the mapping, half ones as float32 copies */
    const float *fa = px_weights_f32(wt, 2, (int64_t[]){ 2, 3 }, "a.weight");
    ck_assert_ptr_eq(fa, px_weights_get(wt, 2, (int64_t[]){ 2, 3 }, "a.weight")->data);
    const float *fb = px_weights_f32(wt, 1, (int64_t[]){ 6 }, "b");
    const float *fh = px_weights_f32(wt, 2, (int64_t[]){ 3, 2 }, "h");
    ck_assert(fb && fh);
    for (int i = 0; i < 6; i++) ck_assert(fb[i] == a[i] && fh[i] == a[i]); /* exact in BF16 and F16 */
    /* what no lookup took: 'empty' is left (the refused ids were looked up) */
    ck_assert_int_eq(px_weights_check_unused(wt), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "rt.safetensors: 1 tensor is not used by this configuration"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "'empty'"));
    px_weights_tied(wt, "empty");
    ck_assert_int_eq(px_weights_check_unused(wt), 0);
    px_weights_close(wt);
}
END_TEST

/* Releasing a tensor's pages drops them from the process, not from the
 * file: its values read back unchanged, and pread returns the same bytes. */
START_TEST(st_release_and_read)
{
    enum { N = 5000 }; /* 20 kB: several pages */
    float *big = malloc(N * sizeof *big);
    for (int i = 0; i < N; i++) big[i] = (float)i * 0.25f - 7;
    float small[3] = { 1, 2, 3 };
    px_st_writer *w = px_st_writer_new();
    ck_assert_int_eq(px_st_writer_add(w, "big", PX_F32, 1, (int64_t[]){ N }, big), 0);
    ck_assert_int_eq(px_st_writer_add(w, "small", PX_F32, 1, (int64_t[]){ 3 }, small), 0);
    ck_assert_int_eq(px_st_writer_save(w, tpath("rel.safetensors")), 0);
    px_st_writer_free(w);

    px_st_set *s = px_st_set_open_file(tpath("rel.safetensors"));
    ck_assert_ptr_nonnull(s);
    const px_tensor *tb = px_st_set_find(s, "big"), *ts = px_st_set_find(s, "small");
    ck_assert_ptr_eq(px_st_set_file_of(s, tb), s->files[0]);
    const px_tensor outside = *tb;
    ck_assert_ptr_null(px_st_set_file_of(s, &outside)); /* a copy is not one of the set's tensors */
    const px_st_file *f = s->files[0];
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);

    ck_assert(memcmp(tb->data, big, sizeof(float) * N) == 0); /* now resident */
    px_st_prefetch(f, tb);
    size_t rel = px_st_release(f, tb);
    ck_assert_uint_ge(rel, sizeof(float) * N); /* rounded outward to whole pages */
    ck_assert_uint_le(rel, sizeof(float) * N + 2 * page);
    ck_assert_uint_eq(rel % page, 0);
    ck_assert(memcmp(tb->data, big, sizeof(float) * N) == 0); /* read again from the file */
    ck_assert_uint_gt(px_st_release(f, ts), 0);
    ck_assert(memcmp(ts->data, small, sizeof small) == 0);

    float *got = calloc(N, sizeof *got);
    ck_assert_int_eq(px_st_read(f, tb, got), 0);
    ck_assert(memcmp(got, big, sizeof(float) * N) == 0);
    ck_assert_int_eq(px_st_read(f, ts, got), 0);
    ck_assert(memcmp(got, small, sizeof small) == 0);
    free(got);
    free(big);
    px_st_set_close(s);
}
END_TEST

/* Touching 64 MB shows in the current and the peak resident set. */
START_TEST(rss_counts_touched_memory)
{
    const size_t n = 64u << 20;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    // one volatile store per page: a compiler may drop a memset of memory that is
    // only freed (clang does), and then nothing becomes resident
    volatile char *v = p;
    for (size_t i = 0; i < n; i += 4096) v[i] = 1;
    uint64_t rss = px_rss_bytes(), peak = px_peak_rss_bytes();
    ck_assert_int_eq(v[n - 4096], 1);
    ck_assert_uint_ge(peak, n);
    if (rss) { /* 0 without /proc */
        ck_assert_uint_ge(rss, n);
        ck_assert_uint_ge(peak, rss);
    }
    free(p);
}
END_TEST

START_TEST(st_sharded)
{
    px_st_writer *w = px_st_writer_new();
    float a[4] = { 1, 2, 3, 4 };
    px_st_writer_add(w, "x", PX_F32, 1, (int64_t[]){ 4 }, a);
    ck_assert_int_eq(px_st_writer_save(w, tpath("model-00001-of-00002.safetensors")), 0);
    px_st_writer_free(w);
    w = px_st_writer_new();
    px_st_writer_add(w, "y", PX_F32, 2, (int64_t[]){ 2, 2 }, a);
    px_st_writer_add(w, "z", PX_F32, 1, (int64_t[]){ 1 }, a);
    ck_assert_int_eq(px_st_writer_save(w, tpath("model-00002-of-00002.safetensors")), 0);
    px_st_writer_free(w);
    const char *idx = "{\"metadata\": {\"total_size\": 36}, \"weight_map\": {"
                      "\"x\": \"model-00001-of-00002.safetensors\", "
                      "\"y\": \"model-00002-of-00002.safetensors\", "
                      "\"z\": \"model-00002-of-00002.safetensors\"}}";
    px_test_write_bytes(tpath("model.safetensors.index.json"), idx, strlen(idx));
    px_st_set *s = px_st_set_open(tmpdir, "model", NULL);
    ck_assert_msg(s != NULL, "%s", px_last_error());
    ck_assert_int_eq(s->nfiles, 2);
    ck_assert_ptr_nonnull(px_st_set_find(s, "x"));
    ck_assert_ptr_nonnull(px_st_set_find(s, "y"));
    px_st_set_close(s);
    /* the weight layer tracks use across the shards: 'z' (second shard) is left */
    px_weights *wt = px_weights_open(tmpdir, "model", NULL, "test");
    ck_assert_msg(wt != NULL, "%s", px_last_error());
    ck_assert_ptr_nonnull(px_weights_get(wt, 1, (int64_t[]){ 4 }, "x"));
    ck_assert_ptr_nonnull(px_weights_get(wt, 2, (int64_t[]){ 2, 2 }, "y"));
    ck_assert_int_eq(px_weights_check_unused(wt), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "model.safetensors.index.json: 1 tensor is not used"));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "'z'"));
    ck_assert_ptr_nonnull(px_weights_get(wt, 1, (int64_t[]){ 1 }, "z"));
    ck_assert_int_eq(px_weights_check_unused(wt), 0);
    px_weights_close(wt);

    /* index naming a tensor its shard does not hold */
    const char *bad = "{\"weight_map\": {\"w\": \"model-00001-of-00002.safetensors\"}}";
    px_test_write_bytes(tpath("bad.safetensors.index.json"), bad, strlen(bad));
    ck_assert_ptr_null(px_st_set_open(tmpdir, "bad", NULL));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "'w'"));
    /* index escaping the directory */
    const char *esc = "{\"weight_map\": {\"w\": \"../etc/passwd\"}}";
    px_test_write_bytes(tpath("esc.safetensors.index.json"), esc, strlen(esc));
    ck_assert_ptr_null(px_st_set_open(tmpdir, "esc", NULL));
    /* nothing there at all */
    ck_assert_ptr_null(px_st_set_open(tmpdir, "absent", NULL));
}
END_TEST

/* Builds a file from a header string and n data bytes. */
static const char *make_st(const char *name, const char *hdr, uint64_t claimed_len, size_t ndata)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(claimed_len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < ndata; i++) fputc(0, f);
    fclose(f);
    return p;
}

START_TEST(st_corrupt)
{
    struct { const char *hdr; size_t ndata; const char *msg; } cases[] = {
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the end" },
        { "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12, "need 12" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "overflow" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets" },
        { "{\"a\":[1,2]}", 8, "not an object" },
        { "[1,2]", 8, "not a JSON object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dimensions" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "invalid JSON" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        const char *p = make_st(name, cases[i].hdr, strlen(cases[i].hdr), cases[i].ndata);
        px_st_file *f = px_st_open(p);
        ck_assert_msg(f == NULL, "case %zu accepted", i);
        ck_assert_msg(strstr(px_last_error(), cases[i].msg) && strstr(px_last_error(), name),
                      "case %zu: message '%s' lacks '%s' or the file name", i, px_last_error(), cases[i].msg);
    }
    /* header length larger than the file */
    const char *h = "{}";
    const char *p = make_st("biglen.safetensors", h, 1000, 0);
    ck_assert_ptr_null(px_st_open(p));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "header claims 1000 bytes"));
    /* file shorter than the length field */
    px_test_write_bytes(tpath("tiny.safetensors"), "abc", 3);
    ck_assert_ptr_null(px_st_open(tpath("tiny.safetensors")));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "too short"));
    /* truncated real file: every prefix of a valid file is rejected, never a crash */
    px_st_writer *w = px_st_writer_new();
    float a[8] = { 0 };
    px_st_writer_add(w, "t", PX_F32, 1, (int64_t[]){ 8 }, a);
    px_st_writer_save(w, tpath("ok.safetensors"));
    px_st_writer_free(w);
    FILE *f = fopen(tpath("ok.safetensors"), "rb");
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 0; cut < n; cut++) {
        px_test_write_bytes(tpath("cut.safetensors"), buf, cut);
        ck_assert_msg(px_st_open(tpath("cut.safetensors")) == NULL, "prefix of %zu bytes accepted", cut);
    }
    ck_assert_ptr_null(px_st_open(tpath("does-not-exist.safetensors")));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "cannot open"));
}
END_TEST

/* Issue 17 findings 2 and 4. */
START_TEST(st_hostile_shapes)
{
    /* 2: a 0 dimension made the element count 0, and the strides of the
     * other dimensions overflowed int64 (UB in px_set_contiguous_strides) */
    const char *p = make_st("zero-dim.safetensors",
                            "{\"a\":{\"dtype\":\"U8\",\"shape\":[0,2,4611686018427387904],\"data_offsets\":[0,0]}}",
                            strlen("{\"a\":{\"dtype\":\"U8\",\"shape\":[0,2,4611686018427387904],\"data_offsets\":[0,0]}}"), 0);
    ck_assert_ptr_null(px_st_open(p));
    ck_assert_msg(strstr(px_last_error(), "zero-dim.safetensors: tensor 'a': shape overflows"), "%s", px_last_error());
    /* the same shape through px_tensor_new (the .npy reader's allocator) */
    ck_assert_ptr_null(px_tensor_new(PX_U8, 3, (int64_t[]){ 0, 2, INT64_C(4611686018427387904) }));
    ck_assert_msg(strstr(px_last_error(), "shape overflows"), "%s", px_last_error());
    /* a large but representable empty shape is fine */
    px_tensor *t = px_tensor_new(PX_F32, 3, (int64_t[]){ 0, 1000, 1000 });
    ck_assert_msg(t != NULL, "%s", px_last_error());
    ck_assert_int_eq(t->stride[0], 1000000);
    px_tensor_free(t);

    /* 4: A = [0, 10] and C = [5, 12] overlap; the empty B = [3, 3] sorted
     * between them hid it from the neighbour-only comparison */
    const char *hdr = "{\"A\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                      "\"B\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,3]},"
                      "\"C\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[5,12]}}";
    p = make_st("hidden-overlap.safetensors", hdr, strlen(hdr), 12);
    ck_assert_ptr_null(px_st_open(p));
    ck_assert_msg(strstr(px_last_error(), "hidden-overlap.safetensors: tensors 'A' and 'C' overlap"), "%s",
                  px_last_error());
    /* a long tensor overlapping a later one past a short one: [0,10], [1,2], [5,12] */
    hdr = "{\"A\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
          "\"B\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
          "\"C\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[5,12]}}";
    p = make_st("nested-overlap.safetensors", hdr, strlen(hdr), 12);
    ck_assert_ptr_null(px_st_open(p));
    ck_assert_msg(strstr(px_last_error(), "overlap"), "%s", px_last_error());
    /* adjacent tensors with empty ones at their boundaries and inside are accepted */
    hdr = "{\"A\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[0,5]},"
          "\"B\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]},"
          "\"D\":{\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[7,7]},"
          "\"C\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[5,12]}}";
    p = make_st("adjacent.safetensors", hdr, strlen(hdr), 12);
    px_st_file *f = px_st_open(p);
    ck_assert_msg(f != NULL, "%s", px_last_error());
    ck_assert_uint_eq(f->n, 4);
    px_st_close(f);
}
END_TEST

/* Writes a .npy file: magic, version 1.0, the header dict padded to 64, n zero data bytes. */
static const char *make_npy(const char *name, const char *dict, size_t ndata)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "%s", dict);
    while ((10 + n + 1) % 64) hdr[n++] = ' ';
    hdr[n++] = '\n';
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0 };
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (size_t i = 0; i < ndata; i++) fputc(0, f);
    fclose(f);
    return p;
}

/* Issue 17 finding 3: the array was allocated from the header's shape before
 * the shape was checked against the file's size. */
START_TEST(npy_hostile)
{
    const char *p = make_npy("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, 1073741824), }", 0);
    ck_assert_ptr_null(px_npy_load(p));
    ck_assert_msg(strstr(px_last_error(), "huge.npy: .npy header 'shape' needs 4611686018427387904 data bytes but the "
                                          "file has 0"), "%s", px_last_error());
    p = make_npy("overflow.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 2, 4611686018427387904), }", 0);
    ck_assert_ptr_null(px_npy_load(p));
    ck_assert_msg(strstr(px_last_error(), "overflow.npy: .npy header 'shape': shape overflows"), "%s", px_last_error());
    p = make_npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 12);
    ck_assert_ptr_null(px_npy_load(p));
    ck_assert_msg(strstr(px_last_error(), "short.npy: .npy header 'shape' needs 16 data bytes but the file has 12"),
                  "%s", px_last_error());
    p = make_npy("open.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, ", 16);
    ck_assert_ptr_null(px_npy_load(p));
    ck_assert_msg(strstr(px_last_error(), "open.npy"), "%s", px_last_error());
    /* the exact size, and an empty array, load */
    p = make_npy("ok.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16);
    px_tensor *t = px_npy_load(p);
    ck_assert_msg(t && t->ndim == 1 && t->shape[0] == 4, "%s", px_last_error());
    px_tensor_free(t);
    p = make_npy("empty.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0);
    t = px_npy_load(p);
    ck_assert_msg(t && t->ndim == 2 && t->shape[0] == 0, "%s", px_last_error());
    px_tensor_free(t);
}
END_TEST

/* Issue 17 finding 11: a Git LFS pointer in place of a file gave "header
 * claims 2336927755350992246 bytes" (safetensors) or "invalid wire type 6"
 * (spiece.model); every reader now says what it is. */
START_TEST(lfs_pointers)
{
    static const char ptr[] = "version https://git-lfs.github.com/spec/v1\n"
                              "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                              "size 2056312\n";
    const char *names[] = { "model.safetensors", "latents.npy", "config.json", "spiece.model" };
    for (int i = 0; i < 4; i++) {
        const char *p = tpath(names[i]);
        px_test_write_bytes(p, ptr, strlen(ptr));
        int failed;
        switch (i) {
        case 0: failed = px_st_open(p) == NULL; break;
        case 1: failed = px_npy_load(p) == NULL; break;
        case 2: failed = px_json_load_file(p) == NULL; break;
        default: {
            px_spm *m = px_spm_load(p);
            failed = m == NULL;
            px_spm_free(m);
        }
        }
        ck_assert_msg(failed, "%s: LFS pointer accepted", names[i]);
        ck_assert_msg(strstr(px_last_error(), names[i]) && strstr(px_last_error(), "Git LFS pointer") &&
                          strstr(px_last_error(), "git lfs pull"),
                      "%s: message '%s'", names[i], px_last_error());
    }
    /* a pointer inside a sharded set: the message names the shard and the index */
    px_test_write_text(tpath("m.safetensors.index.json"), "{\"weight_map\": {\"w\": \"model.safetensors\"}}");
    ck_assert_ptr_null(px_st_set_open(tmpdir, "m", NULL));
    ck_assert_msg(strstr(px_last_error(), "m.safetensors.index.json") && strstr(px_last_error(), "model.safetensors: this is a Git LFS"),
                  "%s", px_last_error());
}
END_TEST

/* Issue 17 finding 10: running out of memory while parsing JSON named no
 * file. Under an address-space limit, a 4 MB array of 2M numbers (~100 MB of
 * nodes and item pointers) fails with the file in the message. (Not under ASan, which needs
 * the address space for its shadow.) */
START_TEST(json_out_of_memory_names_file)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("SKIP json_out_of_memory_names_file: not under AddressSanitizer\n");
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    printf("SKIP json_out_of_memory_names_file: not under AddressSanitizer\n");
    return;
#endif
#endif
    size_t n = 2u << 20;
    char *text = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(text);
    text[0] = '[';
    for (size_t i = 0; i < n; i++) { text[1 + 2 * i] = '0'; text[2 + 2 * i] = ','; }
    text[2 * n] = ']';
    px_test_write_bytes(tpath("big.json"), text, 2 * n + 1);
    free(text);
    /* this test runs in its own process (Check forks): limit it to what it
     * uses now plus 64 MB */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    ck_assert(f && fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    struct rlimit rl = { (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20), RLIM_INFINITY };
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    px_json *j = px_json_load_file_max(tpath("big.json"), PX_JSON_INDEX_MAX); /* 4 MB + 1: above the config cap */
    ck_assert_ptr_null(j);
    ck_assert_msg(strstr(px_last_error(), "big.json: out of memory"), "%s", px_last_error());
}
END_TEST

/* Issue 17 finding 10: about 40 bytes per value (a 32-byte node and an item
 * pointer, from one arena). A 2 MB array of 1M numbers parses within 80 MB
 * of address space; the old parser (a malloc'd 72-byte node per value and
 * doubling item arrays) needed more than 100 MB. */
START_TEST(json_memory_per_value)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("SKIP json_memory_per_value: not under AddressSanitizer\n");
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    printf("SKIP json_memory_per_value: not under AddressSanitizer\n");
    return;
#endif
#endif
    ck_assert_uint_eq(sizeof(px_json), 32);
    size_t n = 1u << 20;
    char *text = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(text);
    text[0] = '[';
    for (size_t i = 0; i < n; i++) { text[1 + 2 * i] = '7'; text[2 + 2 * i] = ','; }
    text[2 * n] = ']';
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    ck_assert(f && fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    struct rlimit rl = { (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (80u << 20), RLIM_INFINITY };
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    px_json *j = px_json_parse(text, 2 * n + 1, "big");
    ck_assert_msg(j != NULL, "%s", px_last_error());
    ck_assert_uint_eq(j->count, n);
    ck_assert(j->items[n - 1]->is_integer && j->items[n - 1]->integer == 7);
    px_json_free(j);
    free(text);
}
END_TEST

/* px_json_parse_limits: what a safetensors header cannot hold is refused
 * while parsing, naming the place. */
START_TEST(json_limits)
{
    const px_json_limits lim = { .max_array_items = 4, .string_map_member = "__metadata__" };
    static const struct {
        const char *text, *error; /* error NULL: parses */
    } cases[] = {
        { "{\"__metadata__\":{\"a\":\"x\",\"b\":\"\"},\"t\":[1,2,3,4]}", NULL },
        { "{\"t\":{\"__metadata__\":[1]}}", NULL }, /* only the top-level member */
        { "{\"__metadata__\":{}}", NULL },
        { "{\"__metadata__\":{\"a\":[0,0]}}", "the values of '__metadata__' must be strings ('a' is not)" },
        { "{\"__metadata__\":{\"a\":\"x\",\"b\":1}}", "('b' is not)" },
        { "{\"__metadata__\":[\"a\"]}", "'__metadata__' must be an object of strings" },
        { "{\"__metadata__\":\"a\"}", "'__metadata__' must be an object of strings" },
        { "{\"t\":[1,2,3,4,5]}", "line 1, column 15: an array of more than 4 items" },
        { "[[],[],[],[],[]]", "an array of more than 4 items" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        px_json *j = px_json_parse_limits(cases[i].text, strlen(cases[i].text), "h.safetensors", &lim);
        if (!cases[i].error) {
            ck_assert_msg(j != NULL, "%s: %s", cases[i].text, px_last_error());
        } else {
            ck_assert_msg(j == NULL, "%s parsed", cases[i].text);
            ck_assert_msg(strstr(px_last_error(), "h.safetensors: invalid JSON") &&
                              strstr(px_last_error(), cases[i].error),
                          "%s: %s", cases[i].text, px_last_error());
            /* without limits, every one of them is valid JSON */
            j = px_json_parse(cases[i].text, strlen(cases[i].text), "h");
            ck_assert_msg(j != NULL, "%s: %s", cases[i].text, px_last_error());
        }
        px_json_free(j);
    }
    /* configuration files stop at 4 MB (a hostile config.json used to cost
     * gigabytes, read twice); an index may be larger */
    size_t big = PX_JSON_CONFIG_MAX + 1;
    char *text = malloc(big);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', big);
    memcpy(text, "{\"a\":1}", 7);
    px_test_write_bytes(tpath("config.json"), text, big);
    free(text);
    ck_assert_ptr_null(px_json_load_file(tpath("config.json")));
    ck_assert_msg(strstr(px_last_error(), "config.json: 4194305 bytes; pixart reads at most 4 MB"), "%s", px_last_error());
    px_json *j = px_json_load_file_max(tpath("config.json"), PX_JSON_INDEX_MAX);
    ck_assert_msg(j && j->count == 1, "%s", px_last_error());
    px_json_free(j);
    /* in a file: px_st_open names it */
    const char *hdr = "{\"__metadata__\":{\"a\":[0,0,0]}}  ";
    unsigned char b[8 + 64] = { (unsigned char)strlen(hdr) };
    memcpy(b + 8, hdr, strlen(hdr));
    px_test_write_bytes(tpath("m.safetensors"), b, 8 + strlen(hdr));
    ck_assert_ptr_null(px_st_open(tpath("m.safetensors")));
    ck_assert_msg(strstr(px_last_error(), "m.safetensors: invalid JSON") &&
                      strstr(px_last_error(), "must be strings"),
                  "%s", px_last_error());
}
END_TEST

START_TEST(npy_roundtrip)
{
    float a[24];
    for (int i = 0; i < 24; i++) a[i] = (float)i * 0.5f - 3;
    ck_assert_int_eq(px_npy_save(tpath("a.npy"), PX_F32, 3, (int64_t[]){ 2, 3, 4 }, a), 0);
    px_tensor *t = px_npy_load(tpath("a.npy"));
    ck_assert_msg(t != NULL, "%s", px_last_error());
    ck_assert(t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4);
    ck_assert(memcmp(t->data, a, sizeof a) == 0);
    px_tensor_free(t);
    ck_assert_int_eq(px_npy_save(tpath("b.npy"), PX_F32, 1, (int64_t[]){ 5 }, a), 0);
    t = px_npy_load(tpath("b.npy"));
    ck_assert(t && t->ndim == 1 && t->shape[0] == 5);
    px_tensor_free(t);
    /* header is 64-byte aligned as numpy requires */
    FILE *f = fopen(tpath("a.npy"), "rb");
    unsigned char pre[10];
    ck_assert_uint_eq(fread(pre, 1, 10, f), 10);
    fclose(f);
    ck_assert_int_eq((10 + pre[8] + 256 * pre[9]) % 64, 0);
}
END_TEST


/* ---- output files (tensor/outfile.c; issue 17, findings 5-7) ----------- */

/* Entries of tmpdir named like px_out_write's temporaries. */
static int count_temporaries(void)
{
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += !strncmp(e->d_name, ".pixart.tmp.", 12);
    closedir(d);
    return n;
}

static int write_str(const char *path, const char *a, const char *b)
{
    const px_span parts[2] = { { a, strlen(a) }, { b, strlen(b) } };
    return px_out_write(path, parts, 2);
}

static void assert_content(const char *path, const char *want)
{
    char *got = px_test_read_text(path, NULL);
    ck_assert_msg(!strcmp(got, want), "%s holds '%s', expected '%s'", path, got, want);
    free(got);
}

START_TEST(out_targets)
{
    struct stat st;
    /* a new file, then an existing one: replaced, its permission bits kept */
    ck_assert_int_eq(write_str(tpath("n.bin"), "ab", "c"), 0);
    assert_content(tpath("n.bin"), "abc");
    ck_assert_int_eq(chmod(tpath("n.bin"), 0604), 0);
    ck_assert_int_eq(write_str(tpath("n.bin"), "de", ""), 0);
    assert_content(tpath("n.bin"), "de");
    ck_assert_int_eq(stat(tpath("n.bin"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0604);
    /* a symlink (and a chain of two, relative): the target gets the bytes, the links stay */
    ck_assert_int_eq(symlink("n.bin", tpath("l1")), 0);
    ck_assert_int_eq(symlink("l1", tpath("l2")), 0);
    ck_assert_int_eq(write_str(tpath("l2"), "via", "link"), 0);
    ck_assert_int_eq(lstat(tpath("l1"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(lstat(tpath("l2"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    assert_content(tpath("n.bin"), "vialink");
    /* a dangling symlink: its target is created, as the shell's '>' does */
    ck_assert_int_eq(symlink("made.bin", tpath("dangling")), 0);
    ck_assert_int_eq(write_str(tpath("dangling"), "x", ""), 0);
    assert_content(tpath("made.bin"), "x");
    ck_assert_int_eq(lstat(tpath("dangling"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    /* a device is written in place: /dev/null stays a device (it used to be
     * replaced by a regular file when the writer could rename onto it) */
    ck_assert_int_eq(write_str("/dev/null", "gone", ""), 0);
    ck_assert_int_eq(stat("/dev/null", &st), 0);
    ck_assert(S_ISCHR(st.st_mode));
    /* a FIFO too: a reader gets the bytes (no temporary, no rename) */
    ck_assert_int_eq(mkfifo(tpath("fifo"), 0600), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cat '%s' > '%s' &", tpath("fifo"), tpath("fromfifo"));
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(write_str(tpath("fifo"), "through", " the pipe"), 0);
    for (int i = 0; i < 500; i++) { // cat writes when it sees the end of the pipe
        char *got = px_test_read_text(tpath("fromfifo"), NULL);
        int done = !strcmp(got, "through the pipe");
        free(got);
        if (done) break;
        usleep(10000);
    }
    assert_content(tpath("fromfifo"), "through the pipe");
    ck_assert_int_eq(lstat(tpath("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    /* refused: a directory, an empty path, a symlink loop; a write error (ENOSPC) */
    ck_assert_int_eq(write_str(tmpdir, "x", ""), -1);
    ck_assert_msg(strstr(px_last_error(), "is a directory"), "%s", px_last_error());
    ck_assert_int_eq(write_str("", "x", ""), -1);
    ck_assert_msg(strstr(px_last_error(), "empty"), "%s", px_last_error());
    ck_assert_int_eq(symlink("loop2", tpath("loop1")), 0);
    ck_assert_int_eq(symlink("loop1", tpath("loop2")), 0);
    ck_assert_int_eq(write_str(tpath("loop1"), "x", ""), -1);
    ck_assert_msg(strstr(px_last_error(), "symbolic links"), "%s", px_last_error());
    if (access("/dev/full", W_OK) == 0) {
        ck_assert_int_eq(symlink("/dev/full", tpath("full")), 0);
        ck_assert_int_eq(write_str(tpath("full"), "x", ""), -1);
        ck_assert_msg(strstr(px_last_error(), "full") && strstr(px_last_error(), "No space"), "%s",
                      px_last_error());
    }
    ck_assert_int_eq(count_temporaries(), 0);
}
END_TEST

START_TEST(out_check)
{
    ck_assert_int_eq(px_out_check(tpath("new.png")), 0);
    ck_assert_int_eq(px_out_check("/dev/null"), 0);
    ck_assert_int_eq(px_out_check(tmpdir), -1);
    ck_assert_msg(strstr(px_last_error(), "is a directory"), "%s", px_last_error());
    ck_assert_int_eq(px_out_check(""), -1);
    ck_assert_int_eq(px_out_check(tpath("no/such/dir/x.png")), -1);
    ck_assert_msg(strstr(px_last_error(), "no/such/dir"), "%s", px_last_error());
    ck_assert_int_eq(px_out_check(tpath("n.bin/x.png")), -1); // n.bin is not a directory
    /* a name of NAME_MAX bytes is fine; one more is refused up front */
    long name_max = pathconf(tmpdir, _PC_NAME_MAX);
    ck_assert(name_max > 10 && name_max < 4000);
    char name[4096];
    memset(name, 'a', (size_t)name_max);
    name[name_max] = 0;
    ck_assert_msg(px_out_check(tpath(name)) == 0, "%s", px_last_error());
    ck_assert_int_eq(write_str(tpath(name), "long", ""), 0); // the temporary's name is short
    name[name_max] = 'a';
    name[name_max + 1] = 0;
    ck_assert_int_eq(px_out_check(tpath(name)), -1);
    ck_assert_int_eq(count_temporaries(), 0);
}
END_TEST

START_TEST(out_staging)
{
    ck_assert_int_eq(write_str(tpath("a.bin"), "old-a", ""), 0);
    /* staged: nothing replaced until the commit, then everything */
    px_out_stage_begin();
    ck_assert_int_eq(write_str(tpath("a.bin"), "new-a", ""), 0);
    ck_assert_int_eq(write_str(tpath("b.bin"), "new-b", ""), 0);
    assert_content(tpath("a.bin"), "old-a");
    ck_assert_int_eq(access(tpath("b.bin"), F_OK), -1);
    ck_assert_int_eq(count_temporaries(), 2);
    ck_assert_int_eq(px_out_stage_commit(), 0);
    assert_content(tpath("a.bin"), "new-a");
    assert_content(tpath("b.bin"), "new-b");
    ck_assert_int_eq(count_temporaries(), 0);
    /* a failure half-way: discard leaves the old files as they were */
    px_out_stage_begin();
    ck_assert_int_eq(write_str(tpath("a.bin"), "newer-a", ""), 0);
    ck_assert_int_eq(write_str(tmpdir, "x", ""), -1);
    px_out_stage_discard();
    assert_content(tpath("a.bin"), "new-a");
    ck_assert_int_eq(count_temporaries(), 0);
    /* what a signal handler does: the live temporaries disappear */
    px_out_stage_begin();
    ck_assert_int_eq(write_str(tpath("c.bin"), "c", ""), 0);
    ck_assert_int_eq(count_temporaries(), 1);
    px_out_remove_temporaries();
    ck_assert_int_eq(count_temporaries(), 0);
    ck_assert_int_eq(px_out_stage_commit(), -1); // nothing left to rename
    ck_assert_int_eq(access(tpath("c.bin"), F_OK), -1);
    /* not staging any more: written at once */
    ck_assert_int_eq(write_str(tpath("d.bin"), "d", ""), 0);
    assert_content(tpath("d.bin"), "d");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, json_python_tokens);
    tcase_add_test(tc, json_rejects_malformed);
    tcase_add_test(tc, half_matches_torch);
    tcase_add_test(tc, st_roundtrip);
    tcase_add_test(tc, st_sharded);
    tcase_add_test(tc, st_release_and_read);
    tcase_add_test(tc, rss_counts_touched_memory);
    tcase_add_test(tc, st_corrupt);
    tcase_add_test(tc, npy_roundtrip);
    tcase_add_test(tc, st_hostile_shapes);
    tcase_add_test(tc, npy_hostile);
    tcase_add_test(tc, lfs_pointers);
    tcase_add_test(tc, json_out_of_memory_names_file);
    tcase_add_test(tc, json_memory_per_value);
    tcase_add_test(tc, json_limits);
    tcase_add_test(tc, out_targets);
    tcase_add_test(tc, out_check);
    tcase_add_test(tc, out_staging);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(suite()); }
