/* .npy reader/writer (see npy.h). */
#include "npy.h"
#include "error.h"
#include "lfs.h"
#include "outfile.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int px_npy_save(const char *path, px_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    if (dtype != PX_F32 && dtype != PX_I64)
        return px_fail("%s: .npy writer supports F32 and I64 only", path);
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == PX_F32 ? "<f4" : "<i8");
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)shape[i],
                      (ndim > 1 && i < ndim - 1) ? " " : "");
        numel *= (size_t)shape[i];
    }
    if (ndim > 1) n--; /* numpy writes (1, 2, 3) but (3,) */
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* pad with spaces so that magic(6)+version(2)+len(2)+header+'\n' is a multiple of 64 */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    n += (int)pad;
    hdr[n++] = '\n';

    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255),
                              (unsigned char)(n >> 8) };
    const px_span parts[3] = { { pre, 10 }, { hdr, (size_t)n }, { data, numel * px_dtype_size(dtype) } };
    return px_out_write(path, parts, 3);
}

px_tensor *px_npy_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { px_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    unsigned char pre[10];
    char hdr[4096];
    px_tensor *t = NULL;
    size_t got = fread(pre, 1, 10, f);
    if (got == 10 && memcmp(pre, "version ht", 10) == 0) { /* "version https://git-lfs..." */
        px_fail("%s: %s", path, PX_LFS_MESSAGE);
        goto out;
    }
    if (got != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        px_fail("%s: not a .npy file (bad magic)", path);
        goto out;
    }
    if (pre[6] != 1) { px_fail("%s: .npy version %d not supported (1.0 only)", path, pre[6]); goto out; }
    size_t hl = (size_t)pre[8] | ((size_t)pre[9] << 8);
    if (hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl) { px_fail("%s: truncated .npy header", path); goto out; }
    hdr[hl] = 0;
    px_dtype dt;
    if (strstr(hdr, "'descr': '<f4'")) dt = PX_F32;
    else if (strstr(hdr, "'descr': '<i8'")) dt = PX_I64;
    else { px_fail("%s: .npy dtype must be '<f4' or '<i8'", path); goto out; }
    if (!strstr(hdr, "'fortran_order': False")) { px_fail("%s: Fortran-order .npy not supported", path); goto out; }
    const char *s = strstr(hdr, "'shape': (");
    if (!s) { px_fail("%s: .npy header has no shape", path); goto out; }
    s += 10;
    int64_t shape[PX_MAX_DIMS];
    int nd = 0;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *e;
        errno = 0;
        long long v = strtoll(s, &e, 10);
        if (e == s || v < 0 || errno || nd == PX_MAX_DIMS) { px_fail("%s: bad .npy shape", path); goto out; }
        shape[nd++] = v;
        s = e;
    }
    if (*s != ')') { px_fail("%s: .npy header: 'shape' has no closing ')'", path); goto out; }
    /* the data must be in the file before anything is allocated for it: a
     * 20-byte file could otherwise ask for 2^62 bytes */
    uint64_t nbytes;
    if (px_shape_check(nd, shape, px_dtype_size(dt), &nbytes)) {
        px_fail_ctx("%s: .npy header 'shape'", path);
        goto out;
    }
    struct stat st;
    long pos = ftell(f);
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || pos < 0) {
        px_fail("%s: not a regular file", path);
        goto out;
    }
    uint64_t avail = (uint64_t)st.st_size > (uint64_t)pos ? (uint64_t)st.st_size - (uint64_t)pos : 0;
    if (nbytes > avail) {
        px_fail("%s: .npy header 'shape' needs %llu data bytes but the file has %llu after the header", path,
                (unsigned long long)nbytes, (unsigned long long)avail);
        goto out;
    }
    t = px_tensor_new(dt, nd, shape);
    if (!t) goto out;
    size_t numel = (size_t)px_numel(t);
    if (fread(t->data, px_dtype_size(dt), numel, f) != numel) {
        px_fail("%s: .npy data is shorter than its shape says", path);
        px_tensor_free(t);
        t = NULL;
    }
out:
    fclose(f);
    return t;
}
