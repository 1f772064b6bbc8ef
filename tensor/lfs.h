/* Git LFS pointer files: what a clone without git-lfs leaves in place of
 * weights or spiece.model (doc/checkpoints.md). Readers check for one first,
 * so the error says so instead of "header claims 2336927755350992246 bytes"
 * (the ASCII of "version ") or "invalid wire type 6". */
#ifndef PX_LFS_H
#define PX_LFS_H

#include <stddef.h>
#include <string.h>

#define PX_LFS_MAGIC "version https://git-lfs.github.com/spec/"

/* 1 when the first n bytes of a file start like a Git LFS pointer. */
static inline int px_is_lfs_pointer(const void *data, size_t n)
{
    size_t m = sizeof PX_LFS_MAGIC - 1;
    return n >= m && n <= 1024 && memcmp(data, PX_LFS_MAGIC, m) == 0;
}

/* The message, after "PATH: " */
#define PX_LFS_MESSAGE "this is a Git LFS pointer file, not the real file: fetch it with 'git lfs pull' (see doc/checkpoints.md)"

#endif
