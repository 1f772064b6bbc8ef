/* Resolution binning (tables, nearest bucket, bilinear resize + crop) and the
 * PNG output (numpy_to_pil rounding, encoder/decoder, text chunks, atomic
 * writes), against diffusers/torch reference data (data/binning/) and files
 * made by numpy/Pillow (data/png/, tools/gen_png_fixture.py). */
#include "testutil.h"
#include "src/pipeline/binning.h"
#include "src/pipeline/png.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static px_json *load_json(const char *rel)
{
    px_json *j = px_json_load_file(px_test_data(rel));
    if (!j) ck_abort_msg("%s", px_last_error());
    return j;
}

// ---------------------------------------------------------------------------
// binning

START_TEST(bin_tables_match_diffusers)
{
    px_json *j = load_json("binning/binning.json");
    const px_json *tabs = px_json_get(j, "tables");
    ck_assert_ptr_nonnull(tabs);
    static const struct {
        const char *name;
        int sample_size;
    } t[] = {{"1024", 128}, {"512", 64}, {"256", 32}};
    for (int k = 0; k < 3; k++) {
        const px_json *ref = px_json_get(tabs, t[k].name);
        ck_assert_ptr_nonnull(ref);
        int n;
        const px_ar_bin *bins = px_ar_bin_table(t[k].sample_size, &n);
        ck_assert_ptr_nonnull(bins);
        ck_assert_int_eq(n, (int)ref->count);
        for (int i = 0; i < n; i++) { // same keys, same order, same sizes
            ck_assert_str_eq(bins[i].key, ref->keys[i]);
            const px_json *v = ref->items[i];
            ck_assert_int_eq(v->count, 2);
            ck_assert_int_eq(bins[i].height, (int)v->items[0]->number);
            ck_assert_int_eq(bins[i].width, (int)v->items[1]->number);
        }
    }
    int n = 7;
    ck_assert_ptr_null(px_ar_bin_table(8, &n)); // pipe_small: diffusers raises "Invalid sample size"
    ck_assert_int_eq(n, 0);
    px_json_free(j);
}
END_TEST

START_TEST(bin_classify_matches_diffusers)
{
    px_json *j = load_json("binning/binning.json");
    const px_json *res = px_json_get(px_json_get(j, "classify_height_width_bin"), "results");
    ck_assert_ptr_nonnull(res);
    ck_assert_int_ge(res->count, 12);
    static const struct {
        const char *name;
        int sample_size;
    } t[] = {{"1024", 128}, {"512", 64}, {"256", 32}};
    for (size_t c = 0; c < res->count; c++) {
        const px_json *r = res->items[c];
        int hq = (int)px_json_get(r, "height")->number, wq = (int)px_json_get(r, "width")->number;
        for (int k = 0; k < 3; k++) {
            int n, bh, bw;
            const px_ar_bin *bins = px_ar_bin_table(t[k].sample_size, &n);
            ck_assert_int_eq(px_classify_height_width_bin(hq, wq, bins, n, &bh, &bw), 0);
            const px_json *want = px_json_get(r, t[k].name);
            ck_assert_msg(bh == (int)want->items[0]->number && bw == (int)want->items[1]->number,
                          "%dx%d with the %s table: got %dx%d, diffusers %gx%g", hq, wq, t[k].name, bh, bw,
                          want->items[0]->number, want->items[1]->number);
        }
    }
    int bh, bw, n;
    const px_ar_bin *bins = px_ar_bin_table(128, &n);
    ck_assert_int_eq(px_classify_height_width_bin(0, 10, bins, n, &bh, &bw), -1);
    ck_assert_int_eq(px_classify_height_width_bin(10, 10, NULL, 0, &bh, &bw), -1);
    px_json_free(j);
}
END_TEST

/* PixArtSigmaPipeline: sample_size 256 -> ASPECT_RATIO_2048_BIN (same keys rule);
 * the smaller sizes use the alpha tables. */
START_TEST(bin_sigma_2048_matches_diffusers)
{
    px_json *j = load_json("binning/sigma_2048.json");
    const px_json *ref = px_json_get(px_json_get(j, "tables"), "2048");
    ck_assert_ptr_nonnull(ref);
    int n;
    const px_ar_bin *bins = px_ar_bin_table_sigma(256, &n);
    ck_assert_ptr_nonnull(bins);
    ck_assert_int_eq(n, (int)ref->count);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(bins[i].key, ref->keys[i]);
        ck_assert_int_eq(bins[i].height, (int)ref->items[i]->items[0]->number);
        ck_assert_int_eq(bins[i].width, (int)ref->items[i]->items[1]->number);
    }
    const px_json *res = px_json_get(px_json_get(j, "classify_height_width_bin"), "results");
    ck_assert_ptr_nonnull(res);
    ck_assert_int_ge(res->count, 12);
    for (size_t c = 0; c < res->count; c++) {
        const px_json *r = res->items[c];
        int hq = (int)px_json_get(r, "height")->number, wq = (int)px_json_get(r, "width")->number, bh, bw;
        ck_assert_int_eq(px_classify_height_width_bin(hq, wq, bins, n, &bh, &bw), 0);
        const px_json *want = px_json_get(r, "2048");
        ck_assert_msg(bh == (int)want->items[0]->number && bw == (int)want->items[1]->number,
                      "%dx%d with the 2048 table: got %dx%d, diffusers %gx%g", hq, wq, bh, bw,
                      want->items[0]->number, want->items[1]->number);
    }
    int m;
    const int sizes[3] = { 128, 64, 32 };
    for (int k = 0; k < 3; k++) ck_assert_ptr_eq(px_ar_bin_table_sigma(sizes[k], &m), px_ar_bin_table(sizes[k], &n));
    ck_assert_ptr_null(px_ar_bin_table(256, &n)); // PixArtAlphaPipeline has no 2048 table
    ck_assert_ptr_null(px_ar_bin_table_sigma(8, &n));
    px_json_free(j);
}
END_TEST

START_TEST(bin_resize_and_crop_bit_exact)
{
    px_json *j = load_json("binning/binning.json");
    const px_json *cases = px_json_get(px_json_get(j, "resize_and_crop_tensor"), "cases");
    ck_assert_ptr_nonnull(cases);
    ck_assert_int_ge(cases->count, 5);
    px_st_file *f = px_test_open(px_test_data("binning/resize_and_crop.safetensors"));
    for (size_t c = 0; c < cases->count; c++) {
        const px_json *cs = cases->items[c];
        const px_json *is = px_json_get(cs, "in_shape");
        int B = (int)is->items[0]->number, C = (int)is->items[1]->number, H = (int)is->items[2]->number,
            W = (int)is->items[3]->number;
        int nh = (int)px_json_get(cs, "new_height")->number, nw = (int)px_json_get(cs, "new_width")->number;
        size_t nin, nout;
        float *in = px_test_get_f32(f, px_json_get(cs, "in_key")->string, &nin);
        float *want = px_test_get_f32(f, px_json_get(cs, "out_key")->string, &nout);
        ck_assert_uint_eq(nin, (size_t)B * C * H * W);
        ck_assert_uint_eq(nout, (size_t)B * C * nh * nw);
        float *got = malloc(sizeof(float) * nout);
        ck_assert_int_eq(px_resize_and_crop(got, in, B, C, H, W, nh, nw), 0);
        // torch's float32 kernel reproduced operation for operation: bit-exact
        assert_close(got, want, nout, 0, 0, px_json_get(cs, "out_key")->string);
        free(in);
        free(want);
        free(got);
    }
    px_st_close(f);
    px_json_free(j);
}
END_TEST

START_TEST(bin_resize_sizes)
{
    // ms_binning_300x400: 832x1152 decoded, resized to 300x415 (int() truncation), cropped to 300x400
    int rh, rw;
    px_resize_crop_size(832, 1152, 300, 400, &rh, &rw);
    ck_assert_int_eq(rh, 300);
    ck_assert_int_eq(rw, 415);
    px_resize_crop_size(64, 64, 64, 64, &rh, &rw);
    ck_assert_int_eq(rh, 64);
    ck_assert_int_eq(rw, 64);
    // 48x104 binned to 176x368: ratio = 104/368, and 368 * (104/368) is
    // 103.99999999999999 in float64 (Python: int() gives 103, a pixel short of
    // the crop; diffusers then returns a 1-pixel-wide image). Found by fuzz_cli_args.
    px_resize_crop_size(176, 368, 48, 104, &rh, &rw);
    ck_assert_int_eq(rh, 49); // int(176 * 104/368) = int(49.739...)
    ck_assert_int_eq(rw, 104);
    float big[176 * 368], small[48 * 104];
    for (int i = 0; i < 176 * 368; i++) big[i] = (float)(i % 368);
    ck_assert_msg(px_resize_and_crop(small, big, 1, 1, 176, 368, 48, 104) == 0, "%s", px_last_error());
    float x[4] = {1, 2, 3, 4}, y[4];
    ck_assert_int_eq(px_resize_and_crop(y, x, 1, 1, 2, 2, 0, 2), -1);
    ck_assert_int_eq(px_resize_and_crop(y, x, 1, 1, 2, 2, 2, 2), 0); // same size: a copy
    assert_close(y, x, 4, 0, 0, "identity");
}
END_TEST

// ---------------------------------------------------------------------------
// PNG

START_TEST(png_rounding_like_numpy)
{
    px_json *j = load_json("png/round_cases.json");
    const px_json *xs = px_json_get(j, "x"), *us = px_json_get(j, "u8");
    ck_assert_int_eq(xs->count, us->count);
    ck_assert_int_gt(xs->count, 50);
    int halves = 0;
    for (size_t i = 0; i < xs->count; i++) {
        float x = (float)xs->items[i]->number;
        uint8_t u;
        px_image_to_u8(&u, &x, 1);
        ck_assert_msg(u == (int)us->items[i]->number, "x = %.9g: got %d, numpy %d", x, u, (int)us->items[i]->number);
        float p = x * 255.0f;
        halves += p - floorf(p) == 0.5f;
    }
    ck_assert_int_gt(halves, 20); // the fixture does exercise round-half-to-even
    float odd[3] = {NAN, -0.5f, 2.0f};
    uint8_t u[3];
    px_image_to_u8(u, odd, 3);
    ck_assert_int_eq(u[0], 0);
    ck_assert_int_eq(u[1], 0);
    ck_assert_int_eq(u[2], 255);
    px_json_free(j);
}
END_TEST

static uint8_t *read_bin(const char *rel, size_t n)
{
    FILE *f = fopen(px_test_data(rel), "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *b = malloc(n + 1);
    ck_assert_uint_eq(fread(b, 1, n + 1, f), n);
    fclose(f);
    return b;
}

START_TEST(png_decodes_pillow_files)
{
    uint8_t *rgb;
    int w, h;
    ck_assert_int_eq(px_png_read(px_test_data("png/pil_rgb.png"), &rgb, &w, &h, NULL, NULL), 0);
    ck_assert_int_eq(w, 23);
    ck_assert_int_eq(h, 17);
    uint8_t *want = read_bin("png/pil_rgb.bin", 23 * 17 * 3);
    ck_assert_int_eq(memcmp(rgb, want, 23 * 17 * 3), 0);
    free(rgb);
    free(want);
    ck_assert_int_eq(px_png_read(px_test_data("png/pil_rgba.png"), &rgb, &w, &h, NULL, NULL), 0);
    ck_assert_int_eq(w, 9);
    ck_assert_int_eq(h, 5);
    want = read_bin("png/pil_rgba.bin", 9 * 5 * 3);
    ck_assert_int_eq(memcmp(rgb, want, 9 * 5 * 3), 0);
    free(rgb);
    free(want);
}
END_TEST

static char tmpdir[256];

START_TEST(png_roundtrip_with_text)
{
    px_test_tmpdir_make(tmpdir, sizeof tmpdir, "image");
    const int w = 37, h = 29;
    uint8_t *img = malloc((size_t)w * h * 3);
    float *noise = malloc(sizeof(float) * (size_t)w * h * 3);
    px_test_fill_uniform(noise, (size_t)w * h * 3, 7, 0, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * w + x) * 3 + c;
                // smooth rows, noisy rows and flat rows: different filters win
                img[i] = y < 10 ? (uint8_t)(x * 7 + y * 3 + c * 50) : y < 20 ? (uint8_t)(noise[i] * 255) : 77;
            }
    px_png_text text[3] = {{"prompt", "a cat wearing a tiny hat"},
                           {"negative_prompt", "caf\xc3\xa9, \xe6\x9d\xb1\xe4\xba\xac"}, // UTF-8: iTXt
                           {"seed", "18446744073709551615"}};
    char path[300];
    snprintf(path, sizeof path, "%s/out.png", tmpdir);
    ck_assert_int_eq(px_png_write(path, img, w, h, text, 3), 0);
    ck_assert_int_eq(px_test_count_entries(tmpdir), 1); // no temporary left behind
    uint8_t *back;
    int bw, bh, nt;
    px_png_kv *kv;
    ck_assert_int_eq(px_png_read(path, &back, &bw, &bh, &kv, &nt), 0);
    ck_assert_int_eq(bw, w);
    ck_assert_int_eq(bh, h);
    ck_assert_int_eq(memcmp(back, img, (size_t)w * h * 3), 0);
    ck_assert_int_eq(nt, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(kv[i].key, text[i].key);
        ck_assert_str_eq(kv[i].value, text[i].value);
    }
    px_png_text_free(kv, nt);
    free(back);

    // a bad keyword fails before anything is written
    px_png_text bad = {"", "x"};
    char p2[300];
    snprintf(p2, sizeof p2, "%s/bad.png", tmpdir);
    ck_assert_int_eq(px_png_write(p2, img, w, h, &bad, 1), -1);
    ck_assert_int_eq(px_test_count_entries(tmpdir), 1);
    // an unwritable place: an error naming the path, no file
    snprintf(p2, sizeof p2, "%s/no/such/dir/x.png", tmpdir);
    ck_assert_int_eq(px_png_write(p2, img, w, h, NULL, 0), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "no/such/dir"));
    free(img);
    free(noise);
    px_test_tmpdir_remove(tmpdir);
}
END_TEST

START_TEST(png_rejects_hostile_input)
{
    uint8_t img[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t *png;
    size_t n;
    ck_assert_int_eq(px_png_encode(&png, &n, img, 2, 2, NULL, 0), 0);
    uint8_t *rgb;
    int w, h;
    ck_assert_int_eq(px_png_decode(png, n, "ok", &rgb, &w, &h, NULL, NULL), 0);
    ck_assert_int_eq(memcmp(rgb, img, 12), 0);
    free(rgb);
    // every truncation fails cleanly
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(px_png_decode(png, k, "cut", &rgb, &w, &h, NULL, NULL), -1);
        ck_assert_ptr_null(rgb);
    }
    // every single-byte corruption after the signature is caught (CRC, IHDR checks, zlib)
    for (size_t k = 8; k < n; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, png, n);
        c[k] ^= 0x40;
        int r = px_png_decode(c, n, "flip", &rgb, &w, &h, NULL, NULL);
        if (r == 0) { // a flip inside a length field can only pass if the rest still parses
            ck_abort_msg("corrupting byte %zu went unnoticed", k);
        }
        free(c);
    }
    ck_assert_int_eq(px_png_decode((const uint8_t *)"GIF89a", 6, "gif", &rgb, &w, &h, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "signature"));
    free(png);
    ck_assert_int_eq(px_png_encode(&png, &n, img, 0, 2, NULL, 0), -1);
    ck_assert_ptr_null(png);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("binning");
    tcase_add_test(tc, bin_tables_match_diffusers);
    tcase_add_test(tc, bin_classify_matches_diffusers);
    tcase_add_test(tc, bin_sigma_2048_matches_diffusers);
    tcase_add_test(tc, bin_resize_and_crop_bit_exact);
    tcase_add_test(tc, bin_resize_sizes);
    suite_add_tcase(s, tc);
    tc = tcase_create("png");
    tcase_add_test(tc, png_rounding_like_numpy);
    tcase_add_test(tc, png_decodes_pillow_files);
    tcase_add_test(tc, png_roundtrip_with_text);
    tcase_add_test(tc, png_rejects_hostile_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(suite()); }
