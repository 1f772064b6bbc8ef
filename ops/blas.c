/* OpenBLAS's kernel choice, and the fix when it is older than the CPU.
 *
 * A DYNAMIC_ARCH OpenBLAS picks its kernels once, in a load-time
 * constructor, from the CPU model, or from OPENBLAS_CORETYPE when set. A
 * build older than the CPU does not know the model and falls back to old
 * kernels: Debian's 0.3.21 calls an Emerald Rapids Xeon (family 6, model
 * 207, AVX-512) "Prescott" and runs sgemm with SSE3 kernels at a fifth of
 * the speed of its SkylakeX ones (doc/performance.md). The choice cannot be
 * changed once the library is loaded, so px_blas_fix_core re-executes the
 * program with OPENBLAS_CORETYPE set, before it has done any work. */
#include "config.h"
#include "ops.h"
#include "pixart/pixart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* OpenBLAS extension (declared in OpenBLAS's cblas.h). */
char *openblas_get_corename(void);

/* set by px_blas_fix_core in the environment of the re-executed program */
#define REEXEC_MARK "PIXART_BLAS_REEXEC"

/* the kernel choice was reported on stderr (once per process) */
static int reported;

const char *px_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}

static int core_in(const char *core, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(core, *list)) return 1;
    return 0;
}

const char *px_blas_wanted_core(void)
{
    static const char *const avx512_cores[] = { "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    static const char *const avx2_cores[] = { "Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    const char *core = px_blas_core();
    if (px_isa_supported(PX_ISA_AVX512)) return core_in(core, avx512_cores) ? NULL : "SkylakeX";
    if (px_isa_supported(PX_ISA_AVX2)) {
        if (core_in(core, avx2_cores)) return NULL;
#if defined(__GNUC__) && defined(PX_HOST_X86)
        __builtin_cpu_init();
        if (__builtin_cpu_is("amd")) return "Zen";
#endif
        return "Haswell";
    }
    return NULL;
}

void px_blas_fix_core(char **argv)
{
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *mark = getenv(REEXEC_MARK);
    const char *want = px_blas_wanted_core();
    if (mark) {
        /* the re-executed program: say nothing more unless it did not help */
        reported = 1;
        if (want)
            fprintf(stderr, "pixart: OpenBLAS still runs its %s kernels with OPENBLAS_CORETYPE=%s; products left "
                            "to it run several times slower\n", px_blas_core(), user ? user : "");
        unsetenv(REEXEC_MARK);
        return;
    }
    if (!want || (user && *user)) return; /* a user-set OPENBLAS_CORETYPE always wins */
    reported = 1;
    const char *isa = px_isa_supported(PX_ISA_AVX512) ? "AVX-512" : "AVX2";
#ifdef __linux__
    fprintf(stderr, "pixart: OpenBLAS chose its %s kernels on this %s CPU; restarting with OPENBLAS_CORETYPE=%s "
                    "(set OPENBLAS_CORETYPE yourself to choose)\n", px_blas_core(), isa, want);
    fflush(stderr);
    if (setenv("OPENBLAS_CORETYPE", want, 1) == 0 && setenv(REEXEC_MARK, "1", 1) == 0)
        execv("/proc/self/exe", argv);
    /* only returns on failure */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARK);
    fprintf(stderr, "pixart: restarting failed; continuing with OpenBLAS's %s kernels\n", px_blas_core());
#else
    fprintf(stderr, "pixart: OpenBLAS chose its %s kernels on this %s CPU; set OPENBLAS_CORETYPE=%s for "
                    "full speed\n", px_blas_core(), isa, want);
#endif
}

void px_blas_warn_core(void)
{
    const char *want = px_blas_wanted_core(), *user = getenv("OPENBLAS_CORETYPE");
    if (!want || reported || (user && *user)) return; /* the user's choice, silently */
    reported = 1;
    fprintf(stderr, "pixart: OpenBLAS runs its %s kernels on this %s CPU; the products left to it (up to 256 "
                    "rows, stride-2 convolutions) run slower than they could (Prescott: ~5x). Start the program "
                    "with OPENBLAS_CORETYPE=%s for full speed (the pixart command does this itself).\n",
            px_blas_core(), px_isa_supported(PX_ISA_AVX512) ? "AVX-512" : "AVX2", want);
}
