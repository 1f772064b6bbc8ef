/* Progress bar / log lines on stderr for `pixart generate` (see progress.h). */
#include "src/cli/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct px_progress {
    FILE *f;
    int quiet, tty;
    int bar_open;     /* a bar line is on screen without its newline */
    double step_sum;  /* seconds of the steps so far */
    int steps_done;
};

px_progress *px_progress_new(FILE *f, int quiet, int tty)
{
    px_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->f = f;
    p->quiet = quiet;
    p->tty = tty < 0 ? isatty(fileno(f)) : tty;
    return p;
}

void px_progress_free(px_progress *p)
{
    if (p && p->bar_open) fputc('\n', p->f);
    free(p);
}

const char *px_format_seconds(double s, char *buf, size_t size)
{
    if (s < 0) s = 0;
    if (s < 10) snprintf(buf, size, "%.2f s", s);
    else if (s < 60) snprintf(buf, size, "%.1f s", s);
    else {
        long t = (long)(s + 0.5);
        if (t < 3600) snprintf(buf, size, "%ld min %02ld s", t / 60, t % 60);
        else snprintf(buf, size, "%ld h %02ld min", t / 3600, (t % 3600) / 60);
    }
    return buf;
}

static void close_bar(px_progress *p)
{
    if (p->bar_open) {
        fputc('\n', p->f);
        p->bar_open = 0;
    }
}

int px_progress_callback(void *user, const px_progress_event *ev)
{
    px_progress *p = user;
    if (!p || p->quiet) return 0;
    char a[32], b[32];
    switch (ev->kind) {
    case PX_EVENT_LATENTS: return 0;
    case PX_EVENT_BEGIN:
        if (ev->stage == PX_STAGE_DENOISE) {
            p->step_sum = 0;
            p->steps_done = 0;
        } else if (!p->tty) {
            fprintf(p->f, "%s ...\n", px_stage_name(ev->stage));
        } else {
            close_bar(p);
            fprintf(p->f, "%s ...", px_stage_name(ev->stage));
            p->bar_open = 1;
        }
        break;
    case PX_EVENT_END:
        if (ev->stage == PX_STAGE_DENOISE) {
            close_bar(p);
        } else if (p->tty) {
            fprintf(p->f, "\r%s: %s\033[K\n", px_stage_name(ev->stage), px_format_seconds(ev->seconds, a, sizeof a));
            p->bar_open = 0;
        }
        break;
    case PX_EVENT_STEP: {
        p->step_sum += ev->seconds;
        p->steps_done++;
        double per = p->step_sum / p->steps_done;
        int n = ev->num_steps, i = ev->step + 1;
        double eta = per * (n - i);
        px_format_seconds(per, a, sizeof a);
        px_format_seconds(eta, b, sizeof b);
        if (p->tty) {
            enum { W = 30 };
            char bar[W + 1];
            int fill = n > 0 ? (int)((long)W * i / n) : W;
            for (int k = 0; k < W; k++) bar[k] = k < fill ? '#' : '.';
            bar[W] = 0;
            fprintf(p->f, "\rdenoise [%s] %d/%d  %s/step  ETA %s\033[K", bar, i, n, a, b);
            p->bar_open = 1;
        } else {
            fprintf(p->f, "step %d/%d  t=%lld  %s/step  ETA %s\n", i, n, (long long)ev->timestep, a, b);
        }
        break;
    }
    }
    fflush(p->f);
    return 0;
}

void px_progress_summary(px_progress *p, const double *stage_seconds)
{
    if (!p || p->quiet) return;
    close_bar(p);
    char a[32];
    double total = 0;
    fprintf(p->f, "time:");
    int first = 1;
    for (int s = 0; s < PX_STAGE_COUNT; s++) {
        if (stage_seconds[s] <= 0) continue;
        total += stage_seconds[s];
        fprintf(p->f, "%s %s %s", first ? "" : ",", px_stage_name(s), px_format_seconds(stage_seconds[s], a, sizeof a));
        first = 0;
    }
    fprintf(p->f, "%s total %s; peak RSS %.2f GiB\n", first ? "" : ";", px_format_seconds(total, a, sizeof a),
            (double)px_peak_rss_bytes() / (1 << 30));
    fflush(p->f);
}
