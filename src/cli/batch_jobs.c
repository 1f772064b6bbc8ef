/* The prompt file of `pixart batch`: JSON Lines (one job per line, the
 * arguments of PixArtAlphaPipeline.__call__ that vary per image) or plain
 * text (one prompt per line). Every line is checked before any work starts;
 * a bad one is reported with its line number and skipped.
 *
 * The JSON reader is the library's own (tensor/json.h), the one exception to
 * "the CLI includes only pixart/pixart.h" (doc/api.md): the pixart program
 * links the internal library, and a second JSON parser would be worse. */
#include "src/cli/batch.h"
#include "tensor/json.h"
#include "pixart/pixart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_FILE_MAX (256 << 20) /* bytes: a million prompts fit */
#define LINE_MAX_BYTES (1 << 20)

int px_batch_utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p++;
        if (c == 0) return 0;
        if (c < 0x80) continue;
        int more = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;
        if (more < 0 || e - p < more) return 0;
        unsigned cp = c & (0x3f >> more);
        for (int k = 0; k < more; k++) {
            if ((p[k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[k] & 0x3f);
        }
        // overlong forms, surrogates, > U+10FFFF
        if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += more;
    }
    return 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static void job_free(px_batch_job *j)
{
    free(j->prompt);
    free(j->negative);
    free(j->seeds);
    memset(j, 0, sizeof *j);
}

void px_batch_jobs_free(px_batch_jobs *js)
{
    for (int i = 0; i < js->n; i++) job_free(&js->jobs[i]);
    free(js->jobs);
    memset(js, 0, sizeof *js);
}

// ---------------------------------------------------------------------------
// One JSON line

/* A name is a file stem: 1..100 of [A-Za-z0-9._+-], not starting with '.'
 * or '-' (no path, no hidden file, no option look-alike). */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > PX_BATCH_NAME_MAX || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '+'))
            return 0;
    }
    return 1;
}

static int int_field(const px_json *v, const char *key, long long lo, long long hi, int *out, char *why, size_t wn)
{
    if (v->type != PX_JSON_NUMBER || !v->is_integer || v->int_overflow || v->integer < lo || v->integer > hi) {
        snprintf(why, wn, "'%s' must be an integer in [%lld, %lld]", key, lo, hi);
        return -1;
    }
    *out = (int)v->integer;
    return 0;
}

static int seed_value(const px_json *v, uint64_t *out)
{
    // unsigned 64-bit like generate's --seed: the exact literal, not a double
    // (tensor/json.c: uinteger holds it up to 2^64 - 1, int_overflow beyond 2^63 - 1)
    if (v->type != PX_JSON_NUMBER || !v->is_integer || v->number < 0) return -1;
    if (v->int_overflow && !v->uinteger) return -1; // > 2^64 - 1
    *out = v->uinteger;
    return 0;
}

static int seed_field(const px_json *v, px_batch_job *j, char *why, size_t wn)
{
    int n = v->type == PX_JSON_ARRAY ? (int)v->count : 1;
    if (v->type == PX_JSON_ARRAY && (v->count < 1 || v->count > PX_BATCH_MAX_IMAGES)) goto bad;
    j->seeds = malloc(sizeof(uint64_t) * (size_t)n);
    if (!j->seeds) {
        snprintf(why, wn, "out of memory");
        return -1;
    }
    j->nseeds = n;
    for (int i = 0; i < n; i++)
        if (seed_value(v->type == PX_JSON_ARRAY ? v->items[i] : v, &j->seeds[i])) goto bad;
    return 0;
bad:
    snprintf(why, wn, "'seed' must be an unsigned 64-bit integer or a list of them (one per image)");
    return -1;
}

static int string_field(const px_json *v, const char *key, char **out, char *why, size_t wn)
{
    if (v->type != PX_JSON_STRING) {
        snprintf(why, wn, "'%s' must be a string", key);
        return -1;
    }
    if (!px_batch_utf8_ok(v->string, v->len)) {
        snprintf(why, wn, "'%s' holds a NUL character", key);
        return -1;
    }
    *out = dup_n(v->string, v->len);
    if (!*out) snprintf(why, wn, "out of memory");
    return *out ? 0 : -1;
}

/* One member of a job object into j. 0, or -1 with why. */
static int job_member(const char *key, const px_json *v, px_batch_job *j, char *why, size_t wn)
{
    if (!strcmp(key, "prompt")) return string_field(v, key, &j->prompt, why, wn);
    if (!strcmp(key, "negative_prompt")) return string_field(v, key, &j->negative, why, wn);
    if (!strcmp(key, "seed")) return seed_field(v, j, why, wn);
    if (!strcmp(key, "steps")) return int_field(v, key, 1, 1000, &j->steps, why, wn);
    if (!strcmp(key, "height")) return int_field(v, key, 8, 65536, &j->height, why, wn);
    if (!strcmp(key, "width")) return int_field(v, key, 8, 65536, &j->width, why, wn);
    if (!strcmp(key, "num_images_per_prompt")) return int_field(v, key, 1, PX_BATCH_MAX_IMAGES, &j->nipp, why, wn);
    if (!strcmp(key, "guidance_scale")) {
        if (v->type != PX_JSON_NUMBER || !(v->number >= -1e6 && v->number <= 1e6)) {
            snprintf(why, wn, "'guidance_scale' must be a number in [-1e6, 1e6]");
            return -1;
        }
        j->guidance = v->number;
        j->has_guidance = 1;
        return 0;
    }
    if (!strcmp(key, "scheduler")) {
        static const char *ok[] = {"dpm", "ddim", "lcm", "sa-solver", NULL};
        for (int k = 0; v->type == PX_JSON_STRING && ok[k]; k++)
            if (!strcmp(v->string, ok[k])) {
                snprintf(j->scheduler, sizeof j->scheduler, "%s", ok[k]);
                return 0;
            }
        snprintf(why, wn, "'scheduler' must be one of dpm, ddim, lcm, sa-solver");
        return -1;
    }
    if (!strcmp(key, "name")) {
        if (v->type != PX_JSON_STRING || !name_ok(v->string, v->len)) {
            snprintf(why, wn, "'name' must be 1 to %d characters of A-Z a-z 0-9 . _ + - (not starting with . or -)",
                     PX_BATCH_NAME_MAX);
            return -1;
        }
        snprintf(j->stem, sizeof j->stem, "%s", v->string);
        return 0;
    }
    snprintf(why, wn, "unknown field '%.40s' (known: prompt, negative_prompt, seed, steps, guidance_scale, height, "
                      "width, num_images_per_prompt, scheduler, name)", key);
    return -1;
}

static int parse_json_line(const char *path, const char *s, size_t n, px_batch_job *j, char *why, size_t wn)
{
    char src[64];
    snprintf(src, sizeof src, "line %d", j->line);
    px_json *o = px_json_parse(s, n, src);
    if (!o) {
        // "line N: invalid JSON at line 1, column C: ..." -> keep what follows "line N: "
        const char *e = px_last_error(), *c = strstr(e, "column");
        snprintf(why, wn, "invalid JSON%s%s", c ? " at " : "", c ? c : "");
        return -1;
    }
    int rc = 0;
    if (o->type != PX_JSON_OBJECT) {
        snprintf(why, wn, "a line must be a JSON object like {\"prompt\": \"...\"}");
        rc = -1;
    }
    for (size_t k = 0; !rc && k < o->count; k++) {
        for (size_t m = k + 1; m < o->count; m++)
            if (!strcmp(o->keys[k], o->keys[m])) {
                snprintf(why, wn, "field '%.40s' appears twice", o->keys[k]);
                rc = -1;
            }
        if (!rc) rc = job_member(o->keys[k], o->items[k], j, why, wn);
    }
    if (!rc && !j->prompt) {
        snprintf(why, wn, "the required field 'prompt' is missing");
        rc = -1;
    }
    if (!rc && j->nseeds > 1 && j->nipp && j->nseeds != j->nipp) {
        snprintf(why, wn, "%d seeds for %d images (give one seed, or one per image)", j->nseeds, j->nipp);
        rc = -1;
    }
    px_json_free(o);
    (void)path;
    return rc;
}

// ---------------------------------------------------------------------------
// The file

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        px_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= PROMPT_FILE_MAX) {
            px_set_error("%s: larger than %d MB", path, PROMPT_FILE_MAX >> 20);
            free(buf);
            buf = NULL;
            break;
        }
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    if (!buf && !px_last_error()[0]) px_set_error("%s: out of memory", path);
    if (buf && ferror(f)) {
        px_set_error("%s: read error", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* One line into a job (json: a JSON object; else the line is the prompt). */
static int parse_line(const char *path, int json, const char *s, size_t n, px_batch_job *j, char *why, size_t wn)
{
    if (n > LINE_MAX_BYTES) {
        snprintf(why, wn, "longer than %d bytes", LINE_MAX_BYTES);
        return -1;
    }
    if (json) return parse_json_line(path, s, n, j, why, wn);
    if (!px_batch_utf8_ok(s, n)) {
        snprintf(why, wn, "not valid UTF-8 text");
        return -1;
    }
    j->prompt = dup_n(s, n);
    if (!j->prompt) snprintf(why, wn, "out of memory");
    return j->prompt ? 0 : -1;
}

/* Two jobs may not write the same files: of the jobs sharing a stem (a
 * "name", or a name that is another line's number) all but the first are bad
 * lines. Sorting an index keeps this O(n log n) for large files. */
static const px_batch_job *sort_jobs;
static int by_stem(const void *a, const void *b)
{
    const px_batch_job *x = &sort_jobs[*(const int *)a], *y = &sort_jobs[*(const int *)b];
    int c = strcmp(x->stem, y->stem);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int drop_duplicate_stems(const char *path, FILE *err, px_batch_jobs *js)
{
    if (js->n < 2) return 0;
    int *ix = malloc(sizeof(int) * (size_t)js->n);
    int *owner = calloc((size_t)js->n, sizeof(int)); // line of the stem's first job; 0 = not a duplicate
    if (!ix || !owner) {
        free(ix);
        free(owner);
        return px_set_error("%s: out of memory", path);
    }
    for (int i = 0; i < js->n; i++) ix[i] = i;
    sort_jobs = js->jobs;
    qsort(ix, (size_t)js->n, sizeof *ix, by_stem);
    for (int k = 1; k < js->n; k++) {
        const px_batch_job *a = &js->jobs[ix[k - 1]], *b = &js->jobs[ix[k]];
        if (strcmp(a->stem, b->stem)) continue;
        owner[ix[k]] = a->line;
        ix[k] = ix[k - 1]; // report the first owner for a third one too
    }
    int m = 0;
    for (int i = 0; i < js->n; i++) {
        if (!owner[i]) {
            js->jobs[m++] = js->jobs[i];
            continue;
        }
        if (err)
            fprintf(err, "pixart batch: %s:%d: output name '%s' is already used by line %d; line skipped\n", path,
                    js->jobs[i].line, js->jobs[i].stem, owner[i]);
        job_free(&js->jobs[i]);
        js->bad++;
    }
    js->n = m;
    free(ix);
    free(owner);
    return 0;
}

int px_batch_read_jobs(const char *path, FILE *err, px_batch_jobs *out)
{
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return -1;
    int json = -1, line = 0, cap = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        if (n && s[n - 1] == '\r') n--; // CRLF files
        if (line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3, n -= 3; // a UTF-8 BOM
        if (is_blank(s, n)) continue;
        if (json < 0) json = s[strspn(s, " \t")] == '{';
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            px_batch_job *nj = realloc(out->jobs, sizeof *nj * (size_t)cap);
            if (!nj) {
                free(text);
                px_batch_jobs_free(out);
                return px_set_error("%s: out of memory (%d jobs)", path, line);
            }
            out->jobs = nj;
        }
        px_batch_job *j = &out->jobs[out->n];
        memset(j, 0, sizeof *j);
        j->line = line;
        char why[300] = "";
        int rc = parse_line(path, json, s, n, j, why, sizeof why);
        if (!rc && !j->stem[0]) snprintf(j->stem, sizeof j->stem, "%d", line);
        if (rc) {
            if (err) fprintf(err, "pixart batch: %s:%d: %s; line skipped\n", path, line, why);
            job_free(j);
            out->bad++;
            continue;
        }
        out->n++;
    }
    free(text);
    if (drop_duplicate_stems(path, err, out)) {
        px_batch_jobs_free(out);
        return -1;
    }
    return 0;
}
