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

#endif
