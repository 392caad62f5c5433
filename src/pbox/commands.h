/* commands.h — the subcommands of the pbox CLI (commands.c), the state
 * they share with main.c (the global options and the lazily made client),
 * and what cp.c shares with them: option parsing, usage errors, sizes. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"

/* Exit status of a failure on the CLI's side (bad usage, connection, API
 * error): 125 for exec and run, whose own status is the command's (like
 * docker), 1 for everything else. */
#define PBOX_EXIT_FAILURE 1
#define PBOX_EXIT_EXEC_FAILURE 125
/* Exit status of exec and run when the command timed out (like timeout(1)). */
#define PBOX_EXIT_TIMEOUT 124

struct pbox_cli {
        const char *url_opt;           /* --url */
        const char *token_file_opt;    /* --token-file */
        bool client_ready;
        struct pbox_client client;
};

struct pbox_cmd;
typedef int (*pbox_cmd_fn)(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv);

struct pbox_cmd {
        const char *name;        /* "ls", "image load", ... */
        const char *synopsis;    /* what follows "pbox NAME" in the usage line */
        const char *summary;     /* one line for the command list */
        const char *description; /* more lines for NAME --help, or NULL */
        const char *options;     /* option lines for NAME --help, or NULL */
        pbox_cmd_fn fn;
        int fail_status;
};

extern const struct pbox_cmd pbox_cmds[];
extern const size_t pbox_cmds_count;

/* Prints "Usage: ..." and the options of cmd to f. */
void pbox_cmd_help(const struct pbox_cmd *cmd, FILE *f);

/* Prints "pbox: <message>" on standard error; returns cmd->fail_status. */
int pbox_cmd_fail(const struct pbox_cmd *cmd, const struct pbox_error *err);
/* Prints "pbox: NAME: <message>" and a usage hint; returns cmd->fail_status. */
int pbox_cmd_usage(const struct pbox_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The client of cli, made on first use from --url/$PBOX_URL and (with
 * need_token) the token (--token-file, $PBOX_TOKEN_FILE, $PBOX_TOKEN). */
int pbox_cli_connect(struct pbox_cli *cli, bool need_token, struct pbox_error *err);

/* Handles one option of a command: c is what getopt_long returned, arg its
 * argument (NULL without one).  Returns 0 when it took the option,
 * PBOX_OPT_OTHER when c is not one of its options, or a negative errno with
 * err set for a bad value (reported as a usage error). */
#define PBOX_OPT_OTHER 1
typedef int (*pbox_opt_fn)(void *ctx, int c, const char *arg, struct pbox_error *err);

/* Runs getopt_long over argv.  shortopts NULL: made from the one-character
 * vals of opts, starting with "+:" (options stop at the first operand);
 * a shortopts without "+" lets options follow operands.  -h/--help
 * (which opts must list, as 'h') prints the help; fn (may be NULL) gets
 * every other option.  Returns PBOX_OPTS_DONE when all options were taken
 * (optind is at the first operand), else the status the command must exit
 * with (0 after the help; cmd->fail_status after a usage error, printed). */
#define PBOX_OPTS_DONE (-1)
/* As shortopts: made from opts like NULL, but options may follow operands
 * (for commands whose operands are not a command line, such as create). */
#define PBOX_OPTS_ANYWHERE ""
int pbox_cmd_options(const struct pbox_cmd *cmd, int argc, char **argv, const char *shortopts,
                     const struct option *opts, pbox_opt_fn fn, void *ctx);

/* Parses a duration: digits followed by "ms", "s", "m" or "h"; a bare number
 * is seconds.  Returns milliseconds (at most INT32_MAX) or -EINVAL/-ERANGE. */
int pbox_parse_duration(const char *s, int64_t *ret_ms);

/* Parses a size: digits, optionally followed by K, M, G or T (powers of
 * 1024; "Ki", "KiB", "KB", lower case too).  Returns -EINVAL or -ERANGE
 * (above INT64_MAX). */
int pbox_parse_size(const char *s, int64_t *ret);
