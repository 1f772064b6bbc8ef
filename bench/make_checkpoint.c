/* make_checkpoint: writes a full-size, random-weight PixArt checkpoint folder in
 * the exact layout of the published diffusers checkpoints
 * (PixArt-alpha/PixArt-XL-2-512x512, PixArt-XL-2-1024-MS), so that memory and
 * time of whole generations can be measured without downloading 22 GB.
 *
 *   bench/make_checkpoint [options] CONFIG_DIR OUT_DIR
 *
 * CONFIG_DIR holds the real configuration files (data/configs/<name>/ are
 * copies of them); every JSON file in it is copied, and the weights are
 * derived from the configs:
 *
 *   text_encoder/model-00001-of-00002.safetensors, -00002-of-00002, and
 *     model.safetensors.index.json: T5EncoderModel (t5-v1_1-xxl) in float32,
 *     sharded as transformers' save_pretrained does with max_shard_size
 *     "10GB" (state-dict order, a new shard when the next tensor would not
 *     fit); only `shared.weight` is stored (encoder.embed_tokens is tied to it)
 *   transformer/diffusion_pytorch_model.safetensors: PixArtTransformer2DModel
 *   vae/diffusion_pytorch_model.safetensors: AutoencoderKL (encoder + decoder)
 *   tokenizer/spiece.model: the T5 SentencePiece model (--spiece; not in data/,
 *     as it is third-party: the reference set's t5/spiece.model by default)
 *
 * Inside each file tensors are sorted by name, as the safetensors writer does
 * for tensors of one dtype. Parameter counts are checked against PARAMS.json
 * when CONFIG_DIR has one (counted on the modules instantiated by diffusers).
 * Values are uniform noise scaled like torch's default initialisation (linear
 * and conv weights U(+-1/sqrt(fan_in)), norm weights 1 +- 0.1), so activations
 * stay finite; the images are noise. Not part of `make check`. */
#include "tensor/error.h"
#include "tensor/half.h"
#include "tensor/json.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// tensor lists

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    float base, a; /* values base + U(-a, a) */
} wspec;

typedef struct {
    wspec *w;
    int n, cap;
} wlist;

static void add(wlist *l, float base, float a, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(wlist *l, float base, float a, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 512;
        l->w = realloc(l->w, (size_t)l->cap * sizeof *l->w);
        if (!l->w) { fprintf(stderr, "make_checkpoint: out of memory\n"); exit(1); }
    }
    wspec *s = &l->w[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->ndim = ndim;
    memcpy(s->shape, shape, (size_t)ndim * sizeof(int64_t));
    s->base = base;
    s->a = a;
}

static int64_t numel(const wspec *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static int64_t count_params(const wlist *l)
{
    int64_t n = 0;
    for (int i = 0; i < l->n; i++) n += numel(&l->w[i]);
    return n;
}

#define S1(a) 1, (int64_t[]){ (a) }
#define S2(a, b) 2, (int64_t[]){ (a), (b) }
#define S4(a, b, c, d) 4, (int64_t[]){ (a), (b), (c), (d) }

/* nn.Linear(K -> N) with bias */
static void linear(wlist *l, int64_t N, int64_t K, int bias, const char *prefix)
{
    const float a = 1.0f / sqrtf((float)K);
    add(l, 0, a, S2(N, K), "%s.weight", prefix);
    if (bias) add(l, 0, a, S1(N), "%s.bias", prefix);
}

static void conv(wlist *l, int64_t cin, int64_t cout, int64_t k, const char *prefix)
{
    const float a = 1.0f / sqrtf((float)(cin * k * k));
    add(l, 0, a, S4(cout, cin, k, k), "%s.weight", prefix);
    add(l, 0, a, S1(cout), "%s.bias", prefix);
}

static void norm(wlist *l, int64_t c, const char *prefix)
{
    add(l, 1.0f, 0.1f, S1(c), "%s.weight", prefix);
    add(l, 0, 0.1f, S1(c), "%s.bias", prefix);
}

// ----------------------------------------------------------------------------
// config readers (only what the tensor shapes need)

static int64_t cfg_int(const px_json *c, const char *key, const char *path)
{
    int64_t v;
    if (px_json_req_int(c, key, &v, path)) {
        fprintf(stderr, "make_checkpoint: %s\n", px_last_error());
        exit(1);
    }
    return v;
}

/* transformers T5EncoderModel (t5-v1_1: gated-gelu, no biases, relative
 * attention bias in block 0 only) */
static void t5_tensors(wlist *l, const px_json *c, const char *path)
{
    const int64_t D = cfg_int(c, "d_model", path), F = cfg_int(c, "d_ff", path);
    const int64_t H = cfg_int(c, "num_heads", path), dkv = cfg_int(c, "d_kv", path);
    const int64_t V = cfg_int(c, "vocab_size", path), layers = cfg_int(c, "num_layers", path);
    const int64_t buckets = cfg_int(c, "relative_attention_num_buckets", path);
    const int64_t In = H * dkv;
    const float aD = 1.0f / sqrtf((float)D), aI = 1.0f / sqrtf((float)In), aF = 1.0f / sqrtf((float)F);
    /* state-dict order of T5EncoderModel (it decides the shard boundaries) */
    add(l, 0, 1.0f, S2(V, D), "shared.weight");
    for (int64_t i = 0; i < layers; i++) {
        const char *b = "encoder.block";
        add(l, 0, aD, S2(In, D), "%s.%lld.layer.0.SelfAttention.q.weight", b, (long long)i);
        add(l, 0, aD, S2(In, D), "%s.%lld.layer.0.SelfAttention.k.weight", b, (long long)i);
        add(l, 0, aD, S2(In, D), "%s.%lld.layer.0.SelfAttention.v.weight", b, (long long)i);
        add(l, 0, aI, S2(D, In), "%s.%lld.layer.0.SelfAttention.o.weight", b, (long long)i);
        if (i == 0) add(l, 0, 1.0f, S2(buckets, H), "%s.0.layer.0.SelfAttention.relative_attention_bias.weight", b);
        add(l, 1.0f, 0.1f, S1(D), "%s.%lld.layer.0.layer_norm.weight", b, (long long)i);
        add(l, 0, aD, S2(F, D), "%s.%lld.layer.1.DenseReluDense.wi_0.weight", b, (long long)i);
        add(l, 0, aD, S2(F, D), "%s.%lld.layer.1.DenseReluDense.wi_1.weight", b, (long long)i);
        add(l, 0, aF, S2(D, F), "%s.%lld.layer.1.DenseReluDense.wo.weight", b, (long long)i);
        add(l, 1.0f, 0.1f, S1(D), "%s.%lld.layer.1.layer_norm.weight", b, (long long)i);
    }
    add(l, 1.0f, 0.1f, S1(D), "encoder.final_layer_norm.weight");
}

/* diffusers PixArtTransformer2DModel (Transformer2DModel with ada_norm_single) */
static void transformer_tensors(wlist *l, const px_json *c, const char *path)
{
    const int64_t heads = cfg_int(c, "num_attention_heads", path), hd = cfg_int(c, "attention_head_dim", path);
    const int64_t C = heads * hd, layers = cfg_int(c, "num_layers", path);
    const int64_t in = cfg_int(c, "in_channels", path), p = cfg_int(c, "patch_size", path);
    const int64_t cap = cfg_int(c, "caption_channels", path), sample = cfg_int(c, "sample_size", path);
    int64_t out = in, cross = C;
    px_json_opt_int(c, "out_channels", &out, path);
    px_json_opt_int(c, "cross_attention_dim", &cross, path);
    /* use_additional_conditions: the config value, or sample_size == 128 when absent/null */
    int micro = sample == 128;
    px_json_opt_bool(c, "use_additional_conditions", &micro, path);
    const int64_t TCH = 256; /* Timesteps(256) -> TimestepEmbedding */
    char pre[128];

    conv(l, in, C, p, "pos_embed.proj");
    linear(l, C, TCH, 1, "adaln_single.emb.timestep_embedder.linear_1");
    linear(l, C, C, 1, "adaln_single.emb.timestep_embedder.linear_2");
    if (micro) {
        linear(l, C / 3, TCH, 1, "adaln_single.emb.resolution_embedder.linear_1");
        linear(l, C / 3, C / 3, 1, "adaln_single.emb.resolution_embedder.linear_2");
        linear(l, C / 3, TCH, 1, "adaln_single.emb.aspect_ratio_embedder.linear_1");
        linear(l, C / 3, C / 3, 1, "adaln_single.emb.aspect_ratio_embedder.linear_2");
    }
    linear(l, 6 * C, C, 1, "adaln_single.linear");
    linear(l, C, cap, 1, "caption_projection.linear_1");
    linear(l, C, C, 1, "caption_projection.linear_2");
    for (int64_t i = 0; i < layers; i++) {
        add(l, 0, 1.0f / sqrtf((float)C), S2(6, C), "transformer_blocks.%lld.scale_shift_table", (long long)i);
        const char *self[4] = { "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0" };
        for (int k = 0; k < 4; k++) {
            snprintf(pre, sizeof pre, "transformer_blocks.%lld.%s", (long long)i, self[k]);
            linear(l, C, C, 1, pre);
        }
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.attn2.to_q", (long long)i);
        linear(l, C, C, 1, pre);
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.attn2.to_k", (long long)i);
        linear(l, C, cross, 1, pre);
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.attn2.to_v", (long long)i);
        linear(l, C, cross, 1, pre);
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.attn2.to_out.0", (long long)i);
        linear(l, C, C, 1, pre);
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.ff.net.0.proj", (long long)i);
        linear(l, 4 * C, C, 1, pre);
        snprintf(pre, sizeof pre, "transformer_blocks.%lld.ff.net.2", (long long)i);
        linear(l, C, 4 * C, 1, pre);
    }
    add(l, 0, 1.0f / sqrtf((float)C), S2(2, C), "scale_shift_table");
    linear(l, p * p * out, C, 1, "proj_out");
}

static void resnet(wlist *l, int64_t cin, int64_t cout, const char *p)
{
    char n[160];
    snprintf(n, sizeof n, "%s.norm1", p); norm(l, cin, n);
    snprintf(n, sizeof n, "%s.conv1", p); conv(l, cin, cout, 3, n);
    snprintf(n, sizeof n, "%s.norm2", p); norm(l, cout, n);
    snprintf(n, sizeof n, "%s.conv2", p); conv(l, cout, cout, 3, n);
    if (cin != cout) { snprintf(n, sizeof n, "%s.conv_shortcut", p); conv(l, cin, cout, 1, n); }
}

static void vae_mid(wlist *l, int64_t C, const char *coder)
{
    char n[160];
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", coder); resnet(l, C, C, n);
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", coder); resnet(l, C, C, n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", coder); norm(l, C, n);
    const char *lin[4] = { "to_q", "to_k", "to_v", "to_out.0" };
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s", coder, lin[i]);
        linear(l, C, C, 1, n);
    }
}

/* diffusers AutoencoderKL (DownEncoderBlock2D / UpDecoderBlock2D, mid-block attention) */
static void vae_tensors(wlist *l, const px_json *c, const char *path)
{
    const px_json *bo = px_json_get(c, "block_out_channels");
    if (!bo || bo->type != PX_JSON_ARRAY || bo->count < 1 || bo->count > 8) {
        fprintf(stderr, "make_checkpoint: %s: 'block_out_channels' missing or not a list of 1..8\n", path);
        exit(1);
    }
    const int n = (int)bo->count;
    int64_t ch[8];
    for (int i = 0; i < n; i++) ch[i] = bo->items[i]->integer;
    const int64_t lpb = cfg_int(c, "layers_per_block", path), lc = cfg_int(c, "latent_channels", path);
    const int64_t cin = cfg_int(c, "in_channels", path), cout = cfg_int(c, "out_channels", path);
    const int64_t top = ch[n - 1];
    char name[160];

    conv(l, cin, ch[0], 3, "encoder.conv_in");
    int64_t out = ch[0];
    for (int i = 0; i < n; i++) {
        const int64_t prev = out;
        out = ch[i];
        for (int64_t r = 0; r < lpb; r++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%lld", i, (long long)r);
            resnet(l, r == 0 ? prev : out, out, name);
        }
        if (i != n - 1) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            conv(l, out, out, 3, name);
        }
    }
    vae_mid(l, top, "encoder");
    norm(l, top, "encoder.conv_norm_out");
    conv(l, top, 2 * lc, 3, "encoder.conv_out");
    conv(l, 2 * lc, 2 * lc, 1, "quant_conv");
    conv(l, lc, lc, 1, "post_quant_conv");
    conv(l, lc, top, 3, "decoder.conv_in");
    vae_mid(l, top, "decoder");
    out = top;
    for (int i = 0; i < n; i++) {
        const int64_t prev = out;
        out = ch[n - 1 - i];
        for (int64_t r = 0; r <= lpb; r++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%lld", i, (long long)r);
            resnet(l, r == 0 ? prev : out, out, name);
        }
        if (i != n - 1) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            conv(l, out, out, 3, name);
        }
    }
    norm(l, ch[0], "decoder.conv_norm_out");
    conv(l, ch[0], cout, 3, "decoder.conv_out");
}

// ----------------------------------------------------------------------------
// writing

/* Uniform in [-1, 1) from a counter-based hash of (seed, i). */
static inline float unit(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) * (2.0 / 16777216.0) - 1.0);
}

static uint64_t name_seed(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a */
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const wspec *)a)->name, ((const wspec *)b)->name);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One safetensors file holding w[0..n) (sorted by name here), written to
 * path.tmp and renamed when complete. */
static int write_safetensors(const char *path, wspec *w, int n, px_dtype dt, uint64_t seed)
{
    qsort(w, (size_t)n, sizeof *w, by_name);
    const size_t es = px_dtype_size(dt);
    size_t cap = 1 << 16, len = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        const wspec *s = &w[i];
        while (cap - len < 512) h = realloc(h, cap *= 2);
        const uint64_t bytes = (uint64_t)numel(s) * es;
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s->name,
                                px_dtype_name(dt));
        for (int d = 0; d < s->ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)s->shape[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) { fprintf(stderr, "make_checkpoint: %s: %s\n", tmp, strerror(errno)); free(h); return -1; }
    const uint64_t hl = len;
    int ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h, 1, len, f) == len;
    free(h);
    const int64_t CH = 1 << 22;
    float *buf = malloc((size_t)CH * sizeof(float));
    uint16_t *hb = malloc((size_t)CH * sizeof(uint16_t));
    const double t0 = now();
    for (int i = 0; i < n && ok; i++) {
        const wspec *s = &w[i];
        const int64_t cnt = numel(s);
        const uint64_t sd = name_seed(seed, s->name);
        for (int64_t i0 = 0; i0 < cnt && ok; i0 += CH) {
            const int64_t m = cnt - i0 < CH ? cnt - i0 : CH;
#pragma omp parallel for schedule(static)
            for (int64_t j = 0; j < m; j++) buf[j] = s->base + s->a * unit(sd, (uint64_t)(i0 + j));
            if (dt == PX_F32) {
                ok = fwrite(buf, sizeof(float), (size_t)m, f) == (size_t)m;
            } else {
                for (int64_t j = 0; j < m; j++) hb[j] = dt == PX_BF16 ? px_f32_to_bf16(buf[j]) : px_f32_to_f16(buf[j]);
                ok = fwrite(hb, sizeof(uint16_t), (size_t)m, f) == (size_t)m;
            }
        }
    }
    free(buf);
    free(hb);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "make_checkpoint: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fprintf(stderr, "  %s: %d tensors, %.2f GB, %.1f s\n", path, n, (double)(8 + hl + off) / 1e9, now() - t0);
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb");
    if (!a) return -1;
    FILE *b = fopen(to, "wb");
    if (!b) { fclose(a); return -1; }
    char buf[65536];
    size_t k;
    int ok = 1;
    while ((k = fread(buf, 1, sizeof buf, a)) > 0) ok &= fwrite(buf, 1, k, b) == k;
    ok &= !ferror(a);
    fclose(a);
    ok &= fclose(b) == 0;
    return ok ? 0 : -1;
}

static void mkdirs(const char *out, const char *sub)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", out, sub);
    if (mkdir(p, 0755) && errno != EEXIST) {
        fprintf(stderr, "make_checkpoint: mkdir %s: %s\n", p, strerror(errno));
        exit(1);
    }
}

static px_json *load(const char *dir, const char *rel, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", dir, rel);
    px_json *j = px_json_load_file(path);
    if (!j) { fprintf(stderr, "make_checkpoint: %s\n", px_last_error()); exit(1); }
    return j;
}

/* PARAMS.json (when present) holds the parameter counts of the modules diffusers
 * instantiates for these configs: the tensor lists must add up to them. */
static void check_count(const px_json *params, const char *key, int64_t got, const char *what)
{
    int64_t want;
    if (!params || px_json_opt_int(params, key, &want, "PARAMS.json") != 0) return;
    if (want != got) {
        fprintf(stderr, "make_checkpoint: %s has %lld parameters, PARAMS.json says %lld\n", what, (long long)got,
                (long long)want);
        exit(1);
    }
    fprintf(stderr, "  %s: %lld parameters (as PARAMS.json)\n", what, (long long)got);
}

/* transformers' shard_checkpoint: walk the state dict in order; start a new
 * shard when the next tensor would push the current one past max_bytes. */
static int write_t5(const char *out, wlist *l, uint64_t seed)
{
    const uint64_t max_bytes = 10000000000ull; /* "10GB" */
    int start[16], nsh = 0;
    uint64_t cur = 0, total = 0;
    for (int i = 0; i < l->n; i++) {
        const uint64_t b = (uint64_t)numel(&l->w[i]) * 4;
        if (i == 0 || (cur + b > max_bytes && cur > 0)) {
            if (nsh == 16) return -1;
            start[nsh++] = i;
            cur = 0;
        }
        cur += b;
        total += b;
    }
    start[nsh] = l->n;
    char path[4200], fn[64];
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors.index.json", out);
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "make_checkpoint: %s: %s\n", path, strerror(errno)); return -1; }
    fprintf(f, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {", (unsigned long long)total);
    wlist sorted = { .w = malloc((size_t)l->n * sizeof(wspec)), .n = l->n };
    int *shard_of = malloc((size_t)l->n * sizeof(int));
    for (int s = 0; s < nsh; s++)
        for (int i = start[s]; i < start[s + 1]; i++) { sorted.w[i] = l->w[i]; shard_of[i] = s; }
    /* the index lists names sorted, like transformers' json.dumps(sort_keys=True) */
    int *ord = malloc((size_t)l->n * sizeof(int));
    for (int i = 0; i < l->n; i++) ord[i] = i;
    for (int i = 1; i < l->n; i++) /* insertion sort: a few hundred names */
        for (int j = i; j > 0 && strcmp(l->w[ord[j - 1]].name, l->w[ord[j]].name) > 0; j--) {
            int t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t;
        }
    for (int i = 0; i < l->n; i++)
        fprintf(f, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", i ? "," : "", l->w[ord[i]].name,
                shard_of[ord[i]] + 1, nsh);
    fprintf(f, "\n  }\n}\n");
    free(ord);
    int rc = fclose(f) ? -1 : 0;
    for (int s = 0; s < nsh && rc == 0; s++) {
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", s + 1, nsh);
        snprintf(path, sizeof path, "%s/text_encoder/%s", out, fn);
        rc = write_safetensors(path, sorted.w + start[s], start[s + 1] - start[s], PX_F32, seed);
    }
    free(sorted.w);
    free(shard_of);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: make_checkpoint [options] CONFIG_DIR OUT_DIR\n"
            "Writes a random-weight diffusers PixArt checkpoint (float32 T5 in two shards,\n"
            "transformer, VAE) in the layout of the published ones, from the real configs.\n"
            "  CONFIG_DIR  e.g. data/configs/PixArt-XL-2-512x512 or data/configs/PixArt-XL-2-1024-MS\n"
            "options:\n"
            "  --spiece FILE       T5 SentencePiece model (default $PIXART_REFERENCE/t5/spiece.model,\n"
            "                      PIXART_REFERENCE defaulting to ../shared/reference)\n"
            "  --transformer-dtype f32|bf16|f16   (default f32, as published)\n"
            "  --only LIST         comma list of text_encoder,transformer,vae (default all)\n"
            "  --seed N            (default 0)\n");
}

int main(int argc, char **argv)
{
    const char *only = "text_encoder,transformer,vae";
    char spiece_def[4200];
    const char *ref = getenv("PIXART_REFERENCE");
    snprintf(spiece_def, sizeof spiece_def, "%s/t5/spiece.model", ref && *ref ? ref : "../shared/reference");
    const char *spiece = spiece_def;
    px_dtype tdt = PX_F32;
    uint64_t seed = 0;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { usage(stdout); return 0; }
        if (a + 1 >= argc) { usage(stderr); return 2; }
        if (!strcmp(argv[a], "--spiece")) spiece = argv[++a];
        else if (!strcmp(argv[a], "--only")) only = argv[++a];
        else if (!strcmp(argv[a], "--seed")) seed = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--transformer-dtype")) {
            const char *d = argv[++a];
            if (!strcmp(d, "f32")) tdt = PX_F32;
            else if (!strcmp(d, "bf16")) tdt = PX_BF16;
            else if (!strcmp(d, "f16")) tdt = PX_F16;
            else { fprintf(stderr, "make_checkpoint: --transformer-dtype %s: want f32, bf16 or f16\n", d); return 2; }
        } else { usage(stderr); return 2; }
    }
    if (argc - a != 2) { usage(stderr); return 2; }
    const char *cfg = argv[a], *out = argv[a + 1];
    char path[4200], to[4200];

    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "make_checkpoint: mkdir %s: %s\n", out, strerror(errno));
        return 1;
    }
    const char *subs[] = { "text_encoder", "transformer", "vae", "scheduler", "tokenizer" };
    for (size_t i = 0; i < 5; i++) mkdirs(out, subs[i]);
    const char *files[] = { "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                            "transformer/config.json", "vae/config.json", "tokenizer/added_tokens.json",
                            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", cfg, files[i]);
        snprintf(to, sizeof to, "%s/%s", out, files[i]);
        if (copy_file(path, to)) { fprintf(stderr, "make_checkpoint: copying %s: %s\n", path, strerror(errno)); return 1; }
    }
    snprintf(to, sizeof to, "%s/tokenizer/spiece.model", out);
    if (copy_file(spiece, to)) {
        fprintf(stderr, "make_checkpoint: copying %s: %s (pass --spiece with the spiece.model of any T5 v1.1 "
                "checkpoint, e.g. PixArt-XL-2-512x512/tokenizer/spiece.model)\n", spiece, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/PARAMS.json", cfg);
    px_json *params = access(path, R_OK) == 0 ? px_json_load_file(path) : NULL;

    int rc = 0;
    if (strstr(only, "text_encoder")) {
        px_json *c = load(cfg, "text_encoder/config.json", path, sizeof path);
        wlist l = { 0 };
        t5_tensors(&l, c, path);
        fprintf(stderr, "text_encoder: %lld parameters\n", (long long)count_params(&l));
        rc = rc ? rc : write_t5(out, &l, seed);
        free(l.w);
        px_json_free(c);
    }
    if (strstr(only, "transformer")) {
        px_json *c = load(cfg, "transformer/config.json", path, sizeof path);
        wlist l = { 0 };
        transformer_tensors(&l, c, path);
        check_count(params, "transformer_parameters", count_params(&l), "transformer");
        snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model.safetensors", out);
        rc = rc ? rc : write_safetensors(path, l.w, l.n, tdt, seed + 1);
        free(l.w);
        px_json_free(c);
    }
    if (strstr(only, "vae")) {
        px_json *c = load(cfg, "vae/config.json", path, sizeof path);
        wlist l = { 0 };
        vae_tensors(&l, c, path);
        check_count(params, "vae_parameters", count_params(&l), "vae");
        snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", out);
        rc = rc ? rc : write_safetensors(path, l.w, l.n, PX_F32, seed + 2);
        free(l.w);
        px_json_free(c);
    }
    px_json_free(params);
    return rc ? 1 : 0;
}
