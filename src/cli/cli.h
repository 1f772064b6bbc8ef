/* The `pixart` command's subcommands. Each returns the process exit status
 * and prints its own --help. */
#ifndef PX_CLI_H
#define PX_CLI_H

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} px_command;

/* Parse an unsigned decimal option value; prints an error naming opt. */
int px_cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
/* A byte count: a number, optionally with K, M, G or T (powers of 1024) and
 * B or iB (3G, 2500M, 1.5GiB). 0 or -1 (message "pixart CMD: OPT: ..." printed). */
int px_cli_parse_size(const char *cmd, const char *opt, const char *s, unsigned long long *out);
/* A finite number in [lo, hi]. 0 or -1 (message "pixart CMD: OPT: ..." printed). */
int px_cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

#endif
