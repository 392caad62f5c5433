/* commands.h — the subcommands of the pbox CLI (commands.c) and the state
 * they share with main.c: the global options and the lazily made client. */
#pragma once

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

/* Parses a duration: digits followed by "ms", "s", "m" or "h"; a bare number
 * is seconds.  Returns milliseconds (at most INT32_MAX) or -EINVAL/-ERANGE. */
int pbox_parse_duration(const char *s, int64_t *ret_ms);
