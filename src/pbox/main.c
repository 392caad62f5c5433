/* main.c — entry point of the pbox CLI: global options (--url,
 * --token-file, --help, --version), finding the subcommand (including the
 * two-word "image ..." ones) and the general help.  The commands
 * themselves live in commands.c, the HTTP client in client.c. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "commands.h"
#include "util.h"

static void print_summary_line(const struct pbox_cmd *cmd, FILE *f)
{
        size_t n = strcspn(cmd->summary, "\n");
        fprintf(f, "  %-12s %.*s\n", cmd->name, (int) n, cmd->summary);
}

static void general_help(FILE *f)
{
        fprintf(f,
                "Usage: pbox [--url URL] [--token-file FILE] COMMAND [ARG...]\n"
                "\n"
                "Command-line client of pboxd, the pbox sandbox daemon.\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < pbox_cmds_count; i++)
                print_summary_line(&pbox_cmds[i], f);
        fprintf(f,
                "  %-12s Show the help of a command.\n"
                "\n"
                "Global options:\n"
                "      --url URL            pboxd's address, http://HOST:PORT\n"
                "                           (default: $PBOX_URL, else " PBOX_DEFAULT_URL ")\n"
                "      --token-file FILE    file holding the API token (default: $PBOX_TOKEN_FILE,\n"
                "                           else the token in $PBOX_TOKEN, else\n"
                "                           " PBOX_DEFAULT_TOKEN_FILE ")\n"
                "  -h, --help               show this help\n"
                "      --version            show the version\n"
                "\n"
                "Run 'pbox COMMAND --help' for the options of a command.\n",
                "help");
}

/* Commands of two words: "image load", "tenant add", ... */
static const char *const groups[] = { "image", "tenant", NULL };

static void group_help(const char *group, FILE *f)
{
        size_t gl = strlen(group);
        fprintf(f, "Usage: pbox %s COMMAND [ARG...]\n\nCommands:\n", group);
        for (size_t i = 0; i < pbox_cmds_count; i++)
                if (!strncmp(pbox_cmds[i].name, group, gl) && pbox_cmds[i].name[gl] == ' ')
                        print_summary_line(&pbox_cmds[i], f);
        fprintf(f, "\nRun 'pbox %s COMMAND --help' for the options of a command.\n", group);
}

static const struct pbox_cmd *find_cmd(const char *group, const char *name)
{
        _cleanup_free_ char *full = group ? util_xasprintf("%s %s", group, name) : util_xstrdup(name);
        for (size_t i = 0; i < pbox_cmds_count; i++)
                if (!strcmp(pbox_cmds[i].name, full))
                        return &pbox_cmds[i];
        return NULL;
}

static bool is_help(const char *s)
{
        return !strcmp(s, "-h") || !strcmp(s, "--help");
}

/* Resolves argv[0] (and argv[1] for a group) to a command; *ret_words is
 * how many words the name took.  Returns NULL after printing a message
 * when there is none, with *ret_status set. */
static const struct pbox_cmd *resolve(int argc, char **argv, int *ret_words, int *ret_status)
{
        *ret_status = PBOX_EXIT_FAILURE;
        for (const char *const *g = groups; *g; g++) {
                if (strcmp(argv[0], *g))
                        continue;
                if (argc < 2) {
                        fprintf(stderr, "pbox: %s: missing command\n", *g);
                        group_help(*g, stderr);
                        return NULL;
                }
                if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
                        group_help(*g, stdout);
                        *ret_status = 0;
                        return NULL;
                }
                const struct pbox_cmd *cmd = find_cmd(*g, argv[1]);
                if (!cmd)
                        fprintf(stderr, "pbox: unknown command '%s %s'\nTry 'pbox %s --help'.\n", *g, argv[1], *g);
                *ret_words = 2;
                return cmd;
        }
        const struct pbox_cmd *cmd = find_cmd(NULL, argv[0]);
        if (!cmd)
                fprintf(stderr, "pbox: unknown command '%s'\nTry 'pbox --help'.\n", argv[0]);
        *ret_words = 1;
        return cmd;
}

static int cmd_help(int argc, char **argv)
{
        if (argc == 0) {
                general_help(stdout);
                return 0;
        }
        int words, status;
        const struct pbox_cmd *cmd = resolve(argc, argv, &words, &status);
        if (!cmd)
                return status;
        pbox_cmd_help(cmd, stdout);
        return 0;
}

int main(int argc, char **argv)
{
        enum { OPT_URL = 256, OPT_TOKEN_FILE, OPT_VERSION };
        static const struct option opts[] = {
                { "url", required_argument, NULL, OPT_URL },
                { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        struct pbox_cli cli = { 0 };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case OPT_URL:
                        cli.url_opt = optarg;
                        break;
                case OPT_TOKEN_FILE:
                        cli.token_file_opt = optarg;
                        break;
                case 'h':
                        general_help(stdout);
                        return 0;
                case OPT_VERSION:
                        printf("pbox %s\n", PACKAGE_VERSION);
                        return 0;
                case ':':
                        fprintf(stderr, "pbox: option '%s' needs an argument\nTry 'pbox --help'.\n",
                                argv[optind - 1]);
                        return PBOX_EXIT_FAILURE;
                default:
                        if (optopt)
                                fprintf(stderr, "pbox: unknown option '-%c'\nTry 'pbox --help'.\n", optopt);
                        else
                                fprintf(stderr, "pbox: unknown option '%s'\nTry 'pbox --help'.\n",
                                        argv[optind - 1]);
                        return PBOX_EXIT_FAILURE;
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "pbox: missing command\n");
                general_help(stderr);
                return PBOX_EXIT_FAILURE;
        }
        if (!strcmp(argv[optind], "help"))
                return cmd_help(argc - optind - 1, argv + optind + 1);

        int words, status;
        const struct pbox_cmd *cmd = resolve(argc - optind, argv + optind, &words, &status);
        if (!cmd)
                return status;

        /* The command sees its last name word as argv[0]; optind = 0 makes
         * glibc's getopt start afresh on the new vector. */
        int sub_argc = argc - optind - (words - 1);
        char **sub_argv = argv + optind + (words - 1);
        optind = 0;
        status = cmd->fn(&cli, cmd, sub_argc, sub_argv);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "pbox: cannot write standard output: %s\n", strerror(errno));
                if (status == 0)
                        status = cmd->fail_status;
        }
        if (cli.client_ready)
                pbox_client_done(&cli.client);
        return status;
}
