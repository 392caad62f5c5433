/* commands.c — the subcommands of the pbox CLI: option parsing (getopt_long
 * per command), request bodies, and the output (tables, JSON, the raw
 * stdout/stderr bytes of exec).  Text that comes from the server and goes
 * to a terminal (names, messages) is sanitised; command output is not.
 *
 * Execs: without -i a sync exec (the output comes with the result); with
 * -i an async exec with a streamed stdin, followed through its event
 * stream while a second thread POSTs pbox's standard input in chunks
 * (logs and attach follow an existing exec the same way); one-shot runs
 * are one POST /v1/run.  exec_result_status turns a result into pbox's
 * exit status (124 timeout, 128+N signals, 125 pbox's own failures). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "cp.h"
#include "json.h"
#include "util.h"

/* Standard input sent whole (one-shot runs). */
#define STDIN_MAX ((size_t) 1 << 20)
/* Streamed standard input goes in POSTs of at most this much. */
#define STDIN_CHUNK ((size_t) 64 << 10)
/* A --file of a one-shot run. */
#define RUN_FILE_MAX ((size_t) 64 << 20)
#define RUN_FILE_DIR "/work"
/* Attempts, 250 ms apart, to open an event stream while pboxd has none free. */
#define SSE_BUSY_TRIES 120
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)

enum {
        OPT_NAME = 256,
        OPT_HOSTNAME,
        OPT_GRACE,
        OPT_JSON,
        OPT_NO_TRUNC,
        OPT_RM,
        OPT_TTL,
        OPT_IDLE,
        OPT_TIMEOUT,
        OPT_SIGNAL,
        OPT_MAX_OUTPUT,
        OPT_FILE,
        OPT_COMPILE,
        OPT_COMPILE_TIMEOUT,
};

/* ------------------------------------------------------------- helpers */

static int fail(const struct pbox_cmd *cmd, const struct pbox_error *err)
{
        fprintf(stderr, "pbox: %s\n", err->message);
        return cmd->fail_status;
}

static void usage_hint(const struct pbox_cmd *cmd)
{
        fprintf(stderr, "Usage: pbox %s %s\nTry 'pbox %s --help' for more information.\n", cmd->name,
                cmd->synopsis, cmd->name);
}

static int usage_error(const struct pbox_cmd *cmd, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static int usage_error(const struct pbox_cmd *cmd, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "pbox: %s: ", cmd->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        usage_hint(cmd);
        return cmd->fail_status;
}

/* Reports what getopt_long (opterr = 0, optstring starting with "+:")
 * returned for a bad option. */
static int option_error(const struct pbox_cmd *cmd, int c, char **argv)
{
        const char *arg = optind > 0 ? argv[optind - 1] : "";
        bool is_long = arg && !strncmp(arg, "--", 2);
        _cleanup_free_ char *name = is_long ? strndup(arg, strcspn(arg, "=")) : util_xasprintf("-%c", optopt);
        if (!name)
                abort();
        if (c == ':')
                return usage_error(cmd, "option '%s' needs an argument", name);
        return usage_error(cmd, "unknown option '%s'", name);
}

void pbox_cmd_help(const struct pbox_cmd *cmd, FILE *f)
{
        fprintf(f, "Usage: pbox %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
        if (cmd->description)
                fprintf(f, "%s\n", cmd->description);
        fprintf(f, "\nOptions:\n%s  -h, --help               show this help\n", cmd->options ? cmd->options : "");
}

static int show_help(const struct pbox_cmd *cmd)
{
        pbox_cmd_help(cmd, stdout);
        return 0;
}

static int cli_client(struct pbox_cli *cli, struct pbox_error *err)
{
        if (cli->client_ready)
                return 0;
        const char *url = cli->url_opt;
        if (!url) {
                const char *e = getenv("PBOX_URL");
                url = e && *e ? e : PBOX_DEFAULT_URL;
        }
        int r = pbox_url_parse(url, &cli->client.url, err);
        if (r < 0)
                return r;
        r = pbox_token_load(cli->token_file_opt, &cli->client.token, err);
        if (r < 0) {
                pbox_url_done(&cli->client.url);
                return r;
        }
        cli->client_ready = true;
        return 0;
}

int pbox_parse_duration(const char *s, int64_t *ret_ms)
{
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || digits > 12)
                return digits ? -ERANGE : -EINVAL;
        int64_t v = 0;
        for (size_t i = 0; i < digits; i++)
                v = v * 10 + (s[i] - '0');
        const char *unit = s + digits;
        int64_t mult;
        if (!strcmp(unit, "ms"))
                mult = 1;
        else if (!strcmp(unit, "s") || !*unit)
                mult = 1000;
        else if (!strcmp(unit, "m"))
                mult = 60000;
        else if (!strcmp(unit, "h"))
                mult = 3600000;
        else
                return -EINVAL;
        if (v > INT32_MAX / mult)
                return -ERANGE;
        *ret_ms = v * mult;
        return 0;
}

static int check_utf8(const char *s, const char *what, struct pbox_error *err)
{
        if (!util_utf8_valid(s, strlen(s)))
                return pbox_error_set(err, EINVAL, "%s is not valid UTF-8 (the API carries text only)", what);
        return 0;
}

/* Adds "K=V" (or, with from_env, a bare "K" whose value is taken from the
 * environment) to the JSON object obj. */
static int kv_add(json_t *obj, const char *arg, bool from_env, const char *opt, struct pbox_error *err)
{
        const char *eq = strchr(arg, '=');
        _cleanup_free_ char *key = eq ? strndup(arg, (size_t) (eq - arg)) : strdup(arg);
        if (!key)
                abort();
        const char *val = eq ? eq + 1 : NULL;
        if (!*key)
                return pbox_error_set(err, EINVAL, "%s '%s': empty name", opt, arg);
        if (!eq) {
                if (!from_env)
                        return pbox_error_set(err, EINVAL, "%s '%s': expected KEY=VALUE", opt, arg);
                val = getenv(key);
                if (!val)
                        return pbox_error_set(err, EINVAL, "%s %s: not set in the environment", opt, key);
        }
        if (check_utf8(key, "name", err) < 0 || check_utf8(val, "value", err) < 0)
                return pbox_error_prefix(err, "%s %s", opt, key);
        json_object_set_new(obj, key, json_string(val));
        return 0;
}

static int set_string(json_t *obj, const char *key, const char *val, struct pbox_error *err)
{
        int r = check_utf8(val, key, err);
        if (r < 0)
                return r;
        json_object_set_new(obj, key, json_string(val));
        return 0;
}

static const char *rec_str(json_t *rec, const char *key)
{
        json_t *v = json_object_get(rec, key);
        return json_is_string(v) ? json_string_value(v) : "";
}

static char *sandbox_target(const char *id, const char *suffix)
{
        _cleanup_free_ char *e = pbox_uri_escape(id);
        return util_xasprintf("/v1/sandboxes/%s%s", e, suffix);
}

/* Prints a JSON value for machines: indented, ASCII only (so that no
 * control sequence reaches a terminal). */
static int print_json(const json_t *j)
{
        if (json_dumpf(j, stdout, JSON_OUT_FLAGS) < 0)
                return -EIO;
        fputc('\n', stdout);
        return 0;
}

/* Prints the sanitised string field `key` of rec on its own line. */
static void print_field(json_t *rec, const char *key, const char *fallback)
{
        const char *v = rec_str(rec, key);
        _cleanup_free_ char *s = pbox_sanitize(*v ? v : fallback);
        printf("%s\n", s);
}

/* --------------------------------------------------------------- tables */

struct table {
        size_t ncols, nrows;
        char **cells;   /* nrows * ncols sanitised strings */
};

static void table_add(struct table *t, const char *const *row)
{
        t->cells = util_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
        for (size_t i = 0; i < t->ncols; i++)
                t->cells[t->nrows * t->ncols + i] = pbox_sanitize(row[i]);
        t->nrows++;
}

static size_t text_width(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

static void table_print_free(struct table *t)
{
        _cleanup_free_ size_t *w = util_xcalloc(t->ncols, sizeof(size_t));
        for (size_t r = 0; r < t->nrows; r++)
                for (size_t c = 0; c < t->ncols; c++) {
                        size_t l = text_width(t->cells[r * t->ncols + c]);
                        if (l > w[c])
                                w[c] = l;
                }
        for (size_t r = 0; r < t->nrows; r++) {
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        if (c + 1 == t->ncols)
                                printf("%s\n", s);
                        else
                                printf("%s%*s", s, (int) (w[c] - text_width(s) + 3), "");
                }
        }
        for (size_t i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        t->cells = NULL;
        t->nrows = 0;
}

/* "3 minutes ago" for an RFC 3339 time; the text itself when unparsable. */
static char *format_ago(const char *s)
{
        struct tm tm = { 0 };
        const char *p = *s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
        if (!p)
                return util_xstrdup(*s ? s : "-");
        if (*p == '.')
                p += 1 + strspn(p + 1, "0123456789");
        time_t t = timegm(&tm);
        if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
                int off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
                t += p[0] == '+' ? -off : off;
        } else if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0) {
                return util_xstrdup(s);
        }
        int64_t d = (int64_t) time(NULL) - (int64_t) t;
        struct {
                int64_t secs;
                const char *unit;
        } units[] = {
                { 14 * 86400, "week" }, { 2 * 86400, "day" }, { 2 * 3600, "hour" }, { 60, "minute" },
        };
        if (d < 2)
                return util_xstrdup("just now");
        if (d > 60 * 86400) {
                char buf[16];
                strftime(buf, sizeof buf, "%Y-%m-%d", gmtime_r(&t, &tm));
                return util_xstrdup(buf);
        }
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (d >= units[i].secs) {
                        int64_t divisor = i == 0 ? 7 * 86400 : i == 1 ? 86400 : i == 2 ? 3600 : 60;
                        int64_t n = d / divisor;
                        return util_xasprintf("%" PRId64 " %s%s ago", n, units[i].unit, n == 1 ? "" : "s");
                }
        return util_xasprintf("%" PRId64 " seconds ago", d);
}

static char *format_size(json_t *v)
{
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return util_xstrdup("-");
        double x = (double) json_integer_value(v);
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        size_t u = 0;
        while (x >= 1024 && u + 1 < ARRAY_SIZE(units)) {
                x /= 1024;
                u++;
        }
        return u == 0 ? util_xasprintf("%.0f B", x) : util_xasprintf("%.1f %s", x, units[u]);
}

/* GET target and return its array member `key`. */
static int get_list(struct pbox_cli *cli, const char *target, const char *key, json_t **ret_resp,
                    json_t **ret_array, struct pbox_error *err)
{
        int r = cli_client(cli, err);
        if (r < 0)
                return r;
        json_t *resp = NULL;
        r = pbox_client_call(&cli->client, "GET", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, &resp, NULL, err);
        if (r < 0)
                return r;
        json_t *a = json_object_get(resp, key);
        if (!json_is_array(a)) {
                json_decref(resp);
                return pbox_error_set(err, EPROTO, "bad response from %s: no \"%s\" array",
                                      cli->client.url.text, key);
        }
        *ret_resp = resp;
        *ret_array = a;
        return 0;
}

/* --------------------------------------------------------------- images */

static int cmd_image_load(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "name", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *name = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:n:h", opts, NULL)) != -1) {
                switch (c) {
                case 'n': name = optarg; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (argc - optind != 1)
                return usage_error(cmd, "expected exactly one FILE");
        const char *file = argv[optind];
        if (name && !*name)
                return usage_error(cmd, "--name must not be empty");

        _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                pbox_error_sys(&err, errno, "cannot open %s", file);
                return fail(cmd, &err);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                pbox_error_sys(&err, errno, "cannot stat %s", file);
                return fail(cmd, &err);
        }
        if (!S_ISREG(st.st_mode)) {
                pbox_error_set(&err, EINVAL, "%s is not a regular file", file);
                return fail(cmd, &err);
        }
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);

        _cleanup_free_ char *target = NULL;
        if (name) {
                _cleanup_free_ char *e = pbox_uri_escape(name);
                target = util_xasprintf("/v1/images?name=%s", e);
        } else {
                target = util_xstrdup("/v1/images");
        }
        _cleanup_json_ json_t *rec = NULL;
        if (pbox_client_upload(&cli->client, target, fd, (uint64_t) st.st_size, PBOX_TIMEOUT_NONE, &rec,
                               NULL, &err) < 0)
                return fail(cmd, &err);
        print_field(rec, "id", "?");
        return 0;
}

static int cmd_image_ls(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "no-trunc", no_argument, NULL, OPT_NO_TRUNC },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool json = false, quiet = false, no_trunc = false;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:qh", opts, NULL)) != -1) {
                switch (c) {
                case OPT_JSON: json = true; break;
                case 'q': quiet = true; break;
                case OPT_NO_TRUNC: no_trunc = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind != argc)
                return usage_error(cmd, "unexpected argument '%s'", argv[optind]);

        _cleanup_json_ json_t *resp = NULL;
        json_t *images;
        if (get_list(cli, "/v1/images", "images", &resp, &images, &err) < 0)
                return fail(cmd, &err);
        if (json)
                return print_json(images) < 0 ? cmd->fail_status : 0;

        struct table t = { .ncols = 4 };
        if (!quiet)
                table_add(&t, (const char *const[]) { "ID", "NAMES", "SIZE", "CREATED" });
        size_t i;
        json_t *rec;
        json_array_foreach(images, i, rec) {
                _cleanup_free_ char *id = util_xstrdup(rec_str(rec, "id"));
                if (!no_trunc && !quiet && strlen(id) > 12)
                        id[12] = '\0';
                if (quiet) {
                        _cleanup_free_ char *s = pbox_sanitize(id);
                        printf("%s\n", s);
                        continue;
                }
                _cleanup_free_ char *names = NULL;
                json_t *nv = json_object_get(rec, "names"), *n;
                size_t k;
                json_array_foreach(nv, k, n) {
                        if (!json_is_string(n))
                                continue;
                        char *tmp = names ? util_xasprintf("%s,%s", names, json_string_value(n))
                                          : util_xstrdup(json_string_value(n));
                        free(names);
                        names = tmp;
                }
                _cleanup_free_ char *size = format_size(json_object_get(rec, "size"));
                _cleanup_free_ char *created = format_ago(rec_str(rec, "created"));
                table_add(&t, (const char *const[]) { id, names ? names : "<none>", size, created });
        }
        table_print_free(&t);
        return 0;
}

static int cmd_image_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "expected at least one image REF");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);

        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *e = pbox_uri_escape(argv[i]);
                _cleanup_free_ char *target = util_xasprintf("/v1/images/%s", e);
                _cleanup_json_ json_t *resp = NULL;
                if (pbox_client_call(&cli->client, "DELETE", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, &resp,
                                     NULL, &err) < 0) {
                        status = fail(cmd, &err);
                        continue;
                }
                print_field(resp, "removed", argv[i]);
        }
        return status;
}

/* -------------------------------------------------------------- tenants */

static int cmd_tenant_add(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        enum { OPT_MAX_SB = 0x200, OPT_MAX_EX, OPT_IMAGE };
        static const struct option opts[] = {
                { "max-sandboxes", required_argument, NULL, OPT_MAX_SB },
                { "max-execs", required_argument, NULL, OPT_MAX_EX },
                { "image", required_argument, NULL, OPT_IMAGE },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *body = json_object();
        json_t *images = NULL;
        bool as_json = false;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                char *end = NULL;
                unsigned long v;
                switch (c) {
                case OPT_MAX_SB:
                case OPT_MAX_EX:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || !*optarg || *end || v > UINT32_MAX)
                                return usage_error(cmd, "%s needs a number", c == OPT_MAX_SB ? "--max-sandboxes" : "--max-execs");
                        json_object_set_new(body, c == OPT_MAX_SB ? "max_sandboxes" : "max_execs", json_integer((json_int_t) v));
                        break;
                case OPT_IMAGE:
                        if (!images) {
                                images = json_array();
                                json_object_set_new(body, "images", images);
                        }
                        json_array_append_new(images, json_string(optarg));
                        break;
                case 'j': as_json = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind + 1 != argc)
                return usage_error(cmd, "expected one tenant NAME");
        json_object_set_new(body, "name", json_string(argv[optind]));
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        _cleanup_json_ json_t *resp = NULL;
        if (pbox_client_call(&cli->client, "POST", "/v1/tenants", body, PBOX_DEFAULT_TIMEOUT_MS, &resp, NULL, &err) < 0)
                return fail(cmd, &err);
        if (as_json)
                return print_json(resp) < 0 ? cmd->fail_status : 0;
        print_field(resp, "token", "");
        return 0;
}

static int cmd_tenant_ls(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        bool as_json = false;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case 'j': as_json = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind != argc)
                return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        _cleanup_json_ json_t *resp = NULL;
        if (pbox_client_call(&cli->client, "GET", "/v1/tenants", NULL, PBOX_DEFAULT_TIMEOUT_MS, &resp, NULL, &err) < 0)
                return fail(cmd, &err);
        json_t *list = json_object_get(resp, "tenants");
        if (as_json)
                return print_json(list) < 0 ? cmd->fail_status : 0;
        printf("%-24s %-14s %-10s %s\n", "NAME", "MAX SANDBOXES", "MAX EXECS", "IMAGES");
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t) {
                json_int_t ms = json_integer_value(json_object_get(t, "max_sandboxes"));
                json_int_t me = json_integer_value(json_object_get(t, "max_execs"));
                json_t *imgs = json_object_get(t, "images");
                char msb[24], mex[24];
                snprintf(msb, sizeof msb, "%lld", (long long) ms);
                snprintf(mex, sizeof mex, "%lld", (long long) me);
                printf("%-24s %-14s %-10s ", json_string_value(json_object_get(t, "name")), ms ? msb : "-", me ? mex : "-");
                if (!json_is_array(imgs))
                        printf("all\n");
                else {
                        size_t k;
                        json_t *im;
                        json_array_foreach(imgs, k, im)
                                printf("%s%s", k ? "," : "", json_string_value(im));
                        printf("\n");
                }
        }
        return 0;
}

static int cmd_tenant_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "expected at least one tenant NAME");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *e = pbox_uri_escape(argv[i]);
                _cleanup_free_ char *target = util_xasprintf("/v1/tenants/%s", e);
                _cleanup_json_ json_t *resp = NULL;
                if (pbox_client_call(&cli->client, "DELETE", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, &resp, NULL, &err) < 0) {
                        status = fail(cmd, &err);
                        continue;
                }
                print_field(resp, "removed", argv[i]);
        }
        return status;
}

/* ------------------------------------------------------------ sandboxes */

struct create_opts {
        const char *name;
        const char *hostname;
        json_t *env;
        json_t *labels;
        int64_t ttl_ms;                 /* -1: the server's default */
        int64_t idle_ms;
};

#define CREATE_OPTS_INIT { .ttl_ms = -1, .idle_ms = -1 }

static void create_opts_done(struct create_opts *o)
{
        json_decref(o->env);
        json_decref(o->labels);
}

/* Options of an exec (pbox exec, pbox run). */
struct exec_opts {
        bool interactive;
        bool detach;
        const char *workdir;
        const char *user;
        const char *stop_signal;
        json_t *env;
        int64_t timeout_ms;             /* -1: the server's default */
        int64_t grace_ms;
        int64_t max_output;
};

#define EXEC_OPTS_INIT { .timeout_ms = -1, .grace_ms = -1, .max_output = -1 }

static void exec_opts_done(struct exec_opts *o)
{
        json_decref(o->env);
}

/* Seconds for the API from a duration in ms, rounded up. */
static json_t *seconds_json(int64_t ms)
{
        return json_integer((ms + 999) / 1000);
}

static int create_sandbox(struct pbox_cli *cli, const char *image, const struct create_opts *o,
                          char **ret_id, struct pbox_error *err)
{
        _cleanup_json_ json_t *body = json_object();
        int r = set_string(body, "image", image, err);
        if (r < 0)
                return r;
        if (o->name && (r = set_string(body, "name", o->name, err)) < 0)
                return r;
        if (o->hostname && (r = set_string(body, "hostname", o->hostname, err)) < 0)
                return r;
        if (json_object_size(o->env) > 0)
                json_object_set(body, "env", o->env);
        if (json_object_size(o->labels) > 0)
                json_object_set(body, "labels", o->labels);
        if (o->ttl_ms >= 0)
                json_object_set_new(body, "ttl_s", seconds_json(o->ttl_ms));
        if (o->idle_ms >= 0)
                json_object_set_new(body, "idle_timeout_s", seconds_json(o->idle_ms));

        _cleanup_json_ json_t *rec = NULL;
        r = pbox_client_call(&cli->client, "POST", "/v1/sandboxes", body, PBOX_DEFAULT_TIMEOUT_MS, &rec,
                             NULL, err);
        if (r < 0)
                return r;
        const char *id = rec_str(rec, "id");
        if (!*id || strlen(id) > 128 || strspn(id, "0123456789abcdefABCDEF") != strlen(id))
                return pbox_error_set(err, EPROTO, "bad response from %s: no valid sandbox id",
                                      cli->client.url.text);
        *ret_id = util_xstrdup(id);
        return 0;
}

static int remove_sandbox(struct pbox_cli *cli, const char *id, bool force, json_t **ret,
                          struct pbox_error *err)
{
        _cleanup_free_ char *target = sandbox_target(id, force ? "?force=true" : "");
        return pbox_client_call(&cli->client, "DELETE", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, ret, NULL,
                                err);
}

/* ----------------------------------------------------------- exec output */

/* Decodes command output v (a string) per its encoding. */
static int decode_output(json_t *v, const char *enc, const char *what, char **ret, size_t *ret_len,
                         struct pbox_error *err)
{
        if (!v || json_is_null(v)) {
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        if (!json_is_string(v))
                return pbox_error_set(err, EPROTO, "bad exec output: \"%s\" is not a string", what);
        if (!enc || !strcmp(enc, "utf-8")) {
                *ret_len = json_string_length(v);
                *ret = util_xmalloc(*ret_len + 1);
                memcpy(*ret, json_string_value(v), *ret_len);
        } else if (!strcmp(enc, "base64")) {
                unsigned char *out;
                if (util_base64_decode(json_string_value(v), json_string_length(v), &out, ret_len) < 0)
                        return pbox_error_set(err, EPROTO, "bad exec output: \"%s\" is not valid base64", what);
                *ret = (char *) out;
        } else {
                _cleanup_free_ char *s = pbox_sanitize(enc);
                return pbox_error_set(err, EPROTO, "bad exec output: unknown encoding '%s'", s);
        }
        return 0;
}

/* Decodes the output field `key` of an exec result per its *_encoding. */
static int exec_stream(json_t *res, const char *key, char **ret, size_t *ret_len, struct pbox_error *err)
{
        _cleanup_free_ char *enc_key = util_xasprintf("%s_encoding", key);
        const char *enc = NULL;
        if (json_get_string(res, enc_key, false, &enc, err) < 0)
                return pbox_error_prefix(err, "bad exec result");
        return decode_output(json_object_get(res, key), enc, key, ret, ret_len, err);
}

static int write_output(int fd, const char *data, size_t len, struct pbox_error *err)
{
        if (len == 0)
                return 0;
        int r = util_write_all(fd, data, len);
        if (r < 0 && fd == STDOUT_FILENO)
                return pbox_error_sys(err, -r, "cannot write standard output");
        return 0;       /* a standard error that cannot be written is no reason to fail */
}

/* "1.5s", "10s", "0.5s". */
static void format_ms(int64_t ms, char *buf, size_t len)
{
        if (ms % 1000 == 0)
                snprintf(buf, len, "%" PRId64 "s", ms / 1000);
        else
                snprintf(buf, len, "%.3gs", (double) ms / 1000.0);
}

/* "SIGTERM" for 15, "TERM", "SIGTERM"; the text itself otherwise. */
static void signal_name(int sig, const char *text, char *buf, size_t len)
{
        if (!text || !*text) {
                const char *a = sig > 0 ? sigabbrev_np(sig) : NULL;
                if (a)
                        snprintf(buf, len, "SIG%s", a);
                else
                        snprintf(buf, len, "signal %d", sig);
                return;
        }
        if (strspn(text, "0123456789") == strlen(text)) {
                signal_name((int) strtol(text, NULL, 10), NULL, buf, len);
                return;
        }
        _cleanup_free_ char *s = pbox_sanitize(text);
        snprintf(buf, len, "%s%s", strncasecmp(s, "SIG", 3) ? "SIG" : "", s);
        for (char *p = buf; *p; p++)
                *p = (char) toupper((unsigned char) *p);
}

/* The exit status pbox ends with for an exec result (a sync answer, the
 * exit event of a stream, a step of a one-shot run), printing pbox's own
 * message about it, if any, on standard error:
 *   ok / exit     the command's exit code
 *   signaled      128 + the signal
 *   timeout       124 (like timeout(1)), "timed out after X (ended by SIG...)"
 *   output_limit  128 + the signal that ended it (137 for SIGKILL)
 *   killed        128 + the signal that ended it
 *   failed        126 / 127 (cannot execute / not found), with the reason
 *   lost          125 (pboxd restarted while it ran: the outcome is unknown)
 * o (may be NULL) gives what was asked, for the messages; step names a
 * step of a one-shot run. */
static int exec_result_status(json_t *res, const struct exec_opts *o, const char *step)
{
        const char *status = rec_str(res, "status");
        const char *by = rec_str(res, "ended_by");
        const char *msg = rec_str(res, "error");
        json_t *sig = json_object_get(res, "signal"), *code = json_object_get(res, "exit_code");
        int sigv = json_is_integer(sig) && json_integer_value(sig) > 0 && json_integer_value(sig) < 128
                           ? (int) json_integer_value(sig) : 0;
        int codev = json_is_integer(code) && json_integer_value(code) >= 0 && json_integer_value(code) <= 255
                            ? (int) json_integer_value(code) : -1;
        _cleanup_free_ char *pre = step ? util_xasprintf("%s: ", step) : util_xstrdup("");
        char ended[48];
        if (!strcmp(by, "sigkill"))
                snprintf(ended, sizeof ended, "SIGKILL");
        else if (sigv)
                signal_name(sigv, NULL, ended, sizeof ended);
        else
                signal_name(SIGTERM, o ? o->stop_signal : NULL, ended, sizeof ended);

        if (*msg) {
                _cleanup_free_ char *s = pbox_sanitize(msg);
                fprintf(stderr, "pbox: %s%s\n", pre, s);
        }
        if (!strcmp(status, "timeout")) {
                char t[32];
                json_t *wall = json_object_get(res, "wall_ms");
                format_ms(o && o->timeout_ms >= 0 ? o->timeout_ms
                          : json_is_integer(wall) ? json_integer_value(wall) : 0, t, sizeof t);
                fprintf(stderr, "pbox: %stimed out after %s (ended by %s)\n", pre, t, ended);
                return PBOX_EXIT_TIMEOUT;
        }
        if (!strcmp(status, "output_limit")) {
                if (o && o->max_output >= 0)
                        fprintf(stderr, "pbox: %sthe command wrote more than %" PRId64 " bytes: killed (%s)\n",
                                pre, o->max_output, ended);
                else
                        fprintf(stderr, "pbox: %sthe command reached the output limit: killed (%s)\n", pre, ended);
                return sigv ? 128 + sigv : 128 + SIGKILL;
        }
        if (!strcmp(status, "killed")) {
                fprintf(stderr, "pbox: %sthe command was killed (ended by %s)\n", pre, ended);
                return sigv ? 128 + sigv : !strcmp(by, "sigkill") ? 128 + SIGKILL : 128 + SIGTERM;
        }
        if (!strcmp(status, "lost")) {
                fprintf(stderr, "pbox: %sthe outcome is unknown: pboxd restarted while the command ran\n", pre);
                return PBOX_EXIT_EXEC_FAILURE;
        }
        if (sigv)
                return 128 + sigv;
        if (codev >= 0)
                return codev;
        if (!*msg)
                fprintf(stderr, "pbox: %sthe server reported no exit status\n", pre);
        return PBOX_EXIT_EXEC_FAILURE;
}

/* Writes the output of a complete result (sync exec, one-shot run step). */
static int print_result_output(json_t *res, const char *step, struct pbox_error *err)
{
        _cleanup_free_ char *out = NULL, *errout = NULL;
        size_t out_len, err_len;
        int r;
        if ((r = exec_stream(res, "stdout", &out, &out_len, err)) < 0 ||
            (r = exec_stream(res, "stderr", &errout, &err_len, err)) < 0)
                return r;
        if ((r = write_output(STDOUT_FILENO, out, out_len, err)) < 0)
                return r;
        (void) write_output(STDERR_FILENO, errout, err_len, err);
        const char *pre = step ? step : "the command";
        if (json_is_true(json_object_get(res, "stdout_truncated")))
                fprintf(stderr, "pbox: warning: the server truncated the standard output of %s\n", pre);
        if (json_is_true(json_object_get(res, "stderr_truncated")))
                fprintf(stderr, "pbox: warning: the server truncated the standard error of %s\n", pre);
        return 0;
}

static int check_argv(char **cmdv, struct pbox_error *err)
{
        for (size_t i = 0; cmdv[i]; i++)
                if (!util_utf8_valid(cmdv[i], strlen(cmdv[i])))
                        return pbox_error_set(err, EINVAL,
                                              "command word %zu is not valid UTF-8 (the API carries text only)",
                                              i + 1);
        return 0;
}

static bool valid_eid(const char *s)
{
        return strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

static char *exec_target(const char *id, const char *eid, const char *suffix)
{
        _cleanup_free_ char *e = pbox_uri_escape(id);
        _cleanup_free_ char *x = pbox_uri_escape(eid);
        return util_xasprintf("/v1/sandboxes/%s/execs/%s%s", e, x, suffix);
}

/* Reads all of standard input (at most STDIN_MAX) into obj's "stdin". */
static int stdin_to_json(json_t *obj, struct pbox_error *err)
{
        _cleanup_free_ char *in = NULL;
        size_t in_len = 0;
        int r = util_read_all(STDIN_FILENO, STDIN_MAX, &in, &in_len);
        if (r == -EFBIG)
                return pbox_error_set(err, EFBIG, "standard input is larger than %zu KiB", STDIN_MAX >> 10);
        if (r < 0)
                return pbox_error_sys(err, -r, "cannot read standard input");
        if (util_utf8_valid(in, in_len) && !memchr(in, '\0', in_len)) {
                json_object_set_new(obj, "stdin", json_stringn(in, in_len));
                json_object_set_new(obj, "stdin_encoding", json_string("utf-8"));
        } else {
                _cleanup_free_ char *b64 = util_base64_encode(in, in_len);
                json_object_set_new(obj, "stdin", json_string(b64));
                json_object_set_new(obj, "stdin_encoding", json_string("base64"));
        }
        return 0;
}

/* Sets "signal"-like key from a name or number. */
static int set_signal(json_t *obj, const char *key, const char *sig, struct pbox_error *err)
{
        if (strspn(sig, "0123456789") == strlen(sig)) {
                json_object_set_new(obj, key, json_integer(strtol(sig, NULL, 10)));
                return 0;
        }
        return set_string(obj, key, sig, err);
}

/* The request body of an exec of cmdv (also the run step of /v1/run). */
static int exec_body(char **cmdv, const struct exec_opts *o, json_t **ret, struct pbox_error *err)
{
        _cleanup_json_ json_t *body = json_object();
        json_t *argv_json = json_array();
        json_object_set_new(body, "argv", argv_json);
        int r = check_argv(cmdv, err);
        if (r < 0)
                return r;
        for (size_t i = 0; cmdv[i]; i++)
                json_array_append_new(argv_json, json_string(cmdv[i]));
        if (json_object_size(o->env) > 0)
                json_object_set(body, "env", o->env);
        if (o->workdir && (r = set_string(body, "cwd", o->workdir, err)) < 0)
                return r;
        if (o->user && (r = set_string(body, "user", o->user, err)) < 0)
                return r;
        if (o->stop_signal && (r = set_signal(body, "stop_signal", o->stop_signal, err)) < 0)
                return r;
        if (o->timeout_ms >= 0)
                json_object_set_new(body, "timeout_ms", json_integer(o->timeout_ms));
        if (o->grace_ms >= 0)
                json_object_set_new(body, "grace_ms", json_integer(o->grace_ms));
        if (o->max_output >= 0)
                json_object_set_new(body, "max_output_bytes", json_integer(o->max_output));
        *ret = TAKE_PTR(body);
        return 0;
}

/* ----------------------------------------------------- following an exec */

/* Forwards pbox's standard input to a running exec: a thread reads it in
 * chunks of at most STDIN_CHUNK bytes and POSTs each to .../stdin, then
 * closes the exec's input at EOF (?close=true).  It stops early when the
 * exec takes no more input (409) or when told to. */
struct stdin_pump {
        const struct pbox_client *client;
        char *target;           /* .../stdin */
        char *close_target;     /* .../stdin?close=true */
        int stop[2];            /* a pipe: readable once the pump must stop */
        pthread_t thread;
        bool running;
};

static bool pump_stopping(struct stdin_pump *p, int wait_ms)
{
        if (pbox_client_interrupted)
                return true;
        struct pollfd pfd = { .fd = p->stop[0], .events = POLLIN };
        return poll(&pfd, 1, wait_ms) > 0;
}

/* POSTs one chunk; retries while the exec is busy (503).  Returns false
 * when the pump must stop. */
static bool pump_send(struct stdin_pump *p, const char *target, const char *buf, size_t len)
{
        for (;;) {
                struct pbox_error err = PBOX_ERROR_INIT;
                int status = 0;
                int r = pbox_client_send(p->client, "POST", target, "application/octet-stream", buf, len,
                                         PBOX_DEFAULT_TIMEOUT_MS, NULL, &status, &err);
                if (r >= 0)
                        return true;
                if (status == 503 && !pump_stopping(p, 100))
                        continue;       /* the command is not reading fast enough: wait */
                if (status != 409 && status != 404 && r != -EINTR && !pump_stopping(p, 0))
                        fprintf(stderr, "pbox: cannot send standard input: %s\n", err.message);
                return false;           /* 409: the command takes no more input */
        }
}

static void *pump_run(void *data)
{
        struct stdin_pump *p = data;
        _cleanup_free_ char *buf = util_xmalloc(STDIN_CHUNK);
        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = STDIN_FILENO, .events = POLLIN },
                        { .fd = p->stop[0], .events = POLLIN },
                };
                int n = poll(pfd, 2, 250);
                if (n < 0 && errno != EINTR)
                        break;
                if (pbox_client_interrupted || (n > 0 && pfd[1].revents))
                        break;
                if (n <= 0 || !pfd[0].revents)
                        continue;
                ssize_t len = read(STDIN_FILENO, buf, STDIN_CHUNK);
                if (len < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (len < 0)
                        fprintf(stderr, "pbox: cannot read standard input: %s\n", strerror(errno));
                if (len <= 0) {
                        (void) pump_send(p, p->close_target, "", 0);
                        break;
                }
                if (!pump_send(p, p->target, buf, (size_t) len))
                        break;
        }
        return NULL;
}

static int pump_start(struct stdin_pump *p, const struct pbox_client *client, const char *id, const char *eid,
                      struct pbox_error *err)
{
        *p = (struct stdin_pump) { .client = client, .stop = { -1, -1 } };
        if (pipe2(p->stop, O_CLOEXEC) < 0)
                return pbox_error_sys(err, errno, "pipe");
        p->target = exec_target(id, eid, "/stdin");
        p->close_target = exec_target(id, eid, "/stdin?close=true");
        /* Signals go to the main thread, whose waits they interrupt. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        int r = pthread_create(&p->thread, NULL, pump_run, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0)
                return pbox_error_sys(err, r, "cannot start a thread");
        p->running = true;
        return 0;
}

static void pump_stop(struct stdin_pump *p)
{
        if (p->running) {
                (void) !write(p->stop[1], "x", 1);
                pthread_join(p->thread, NULL);
                p->running = false;
        }
        if (p->stop[0] >= 0)
                close(p->stop[0]);
        if (p->stop[1] >= 0)
                close(p->stop[1]);
        p->stop[0] = p->stop[1] = -1;
        free(p->target);
        free(p->close_target);
        p->target = p->close_target = NULL;
}

/* Writes an output event ({"data": ..., "encoding": ...}) to fd. */
static int event_output(int fd, const char *data, size_t len, struct pbox_error *err)
{
        _cleanup_json_ json_t *j = NULL;
        const char *enc = NULL;
        if (json_parse_untrusted(data, len, true, &j, err) < 0 || json_get_string(j, "encoding", false, &enc, err) < 0)
                return pbox_error_prefix(err, "bad output event");
        _cleanup_free_ char *out = NULL;
        size_t out_len;
        int r = decode_output(json_object_get(j, "data"), enc, "data", &out, &out_len, err);
        if (r < 0)
                return r;
        return write_output(fd, out, out_len, err);
}

/* Follows the event stream of exec eid in sandbox id: writes its output as
 * it comes and returns (in *ret_status) the status pbox must end with,
 * from the exit event.  With pump_stdin, pbox's standard input goes to the
 * exec meanwhile. */
static int exec_follow(struct pbox_cli *cli, const char *id, const char *eid, bool pump_stdin,
                       const struct exec_opts *o, int *ret_status, struct pbox_error *err)
{
        if (!valid_eid(eid))
                return pbox_error_set(err, EINVAL, "invalid exec id '%s' (16 hex digits)", eid);
        struct stdin_pump pump = { .stop = { -1, -1 } };
        int r = 0;
        if (pump_stdin && (r = pump_start(&pump, &cli->client, id, eid, err)) < 0) {
                pump_stop(&pump);
                return r;
        }
        _cleanup_free_ char *target = exec_target(id, eid, "/events");
        struct pbox_sse *sse = NULL;
        bool exited = false;
        /* pboxd bounds the streams open at once: wait a little for a free one. */
        for (int tries = 0;; tries++) {
                int status = 0;
                r = pbox_sse_open(&cli->client, target, PBOX_TIMEOUT_NONE, &sse, &status, err);
                if (r != -PBOX_EAPI || status != 503 || tries >= SSE_BUSY_TRIES || pbox_client_interrupted)
                        break;
                struct timespec ts = { 0, 250 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        while (r >= 0 && !exited) {
                const char *ev, *data;
                size_t len;
                r = pbox_sse_next(sse, &ev, &data, &len, err);
                if (r <= 0)
                        break;
                if (!strcmp(ev, "stdout") || !strcmp(ev, "stderr")) {
                        r = event_output(!strcmp(ev, "stdout") ? STDOUT_FILENO : STDERR_FILENO, data, len, err);
                } else if (!strcmp(ev, "exit")) {
                        _cleanup_json_ json_t *res = NULL;
                        r = json_parse_untrusted(data, len, true, &res, err);
                        if (r < 0) {
                                pbox_error_prefix(err, "bad exit event");
                                break;
                        }
                        for (const char *const *k = (const char *const[]) { "stdout", "stderr", NULL }; *k; k++) {
                                _cleanup_free_ char *key = util_xasprintf("%s_truncated", *k);
                                if (json_is_true(json_object_get(res, key)))
                                        fprintf(stderr, "pbox: warning: the server truncated the standard %s of "
                                                "the command\n", !strcmp(*k, "stdout") ? "output" : "error");
                        }
                        *ret_status = exec_result_status(res, o, NULL);
                        exited = true;
                }
                /* "start" and event types this pbox does not know: nothing to do. */
        }
        if (r == 0 && !exited)
                r = pbox_error_set(err, EPIPE, "the server ended the event stream of exec %s before the command "
                                   "ended ('pbox logs %s %s' follows it again)", eid, id, eid);
        pbox_sse_close(sse);
        pump_stop(&pump);
        return r < 0 ? r : 0;
}

/* Runs cmdv in sandbox id and returns (in *ret_status) the exit status the
 * CLI must end with: synchronously when stdin is not streamed (the output
 * comes with the result), else as an async exec followed through its event
 * stream; with detach, starts it and prints its id. */
static int exec_in(struct pbox_cli *cli, const char *id, char **cmdv, const struct exec_opts *o,
                   int *ret_status, struct pbox_error *err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = exec_body(cmdv, o, &body, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *target = sandbox_target(id, "/exec");
        _cleanup_json_ json_t *res = NULL;

        if (o->interactive || o->detach) {
                json_object_set_new(body, "wait", json_false());
                if (o->interactive)
                        json_object_set_new(body, "stdin_stream", json_true());
                r = pbox_client_call(&cli->client, "POST", target, body, PBOX_DEFAULT_TIMEOUT_MS, &res, NULL, err);
                if (r < 0)
                        return r;
                const char *eid = rec_str(res, "id");
                if (!valid_eid(eid))
                        return pbox_error_set(err, EPROTO, "bad response from %s: no valid exec id",
                                              cli->client.url.text);
                if (o->detach) {
                        printf("%s\n", eid);
                        *ret_status = 0;
                        return 0;
                }
                return exec_follow(cli, id, eid, true, o, ret_status, err);
        }

        r = pbox_client_call(&cli->client, "POST", target, body, PBOX_TIMEOUT_NONE, &res, NULL, err);
        if (r < 0)
                return r;
        if ((r = print_result_output(res, NULL, err)) < 0)
                return r;
        *ret_status = exec_result_status(res, o, NULL);
        return 0;
}

#define CREATE_LONG_OPTS                                              \
        { "name", required_argument, NULL, OPT_NAME },                \
        { "hostname", required_argument, NULL, OPT_HOSTNAME },        \
        { "env", required_argument, NULL, 'e' },                      \
        { "label", required_argument, NULL, 'l' },                    \
        { "ttl", required_argument, NULL, OPT_TTL },                  \
        { "idle-timeout", required_argument, NULL, OPT_IDLE }

static int duration_arg(const char *opt, const char *arg, int64_t *ret_ms, struct pbox_error *err)
{
        if (pbox_parse_duration(arg, ret_ms) < 0)
                return pbox_error_set(err, EINVAL, "%s: invalid duration '%s' (examples: 500ms, 10s, 1m, 2h)", opt, arg);
        return 0;
}

/* Handles an option of the create set; returns 1 if c was one, 0 if not,
 * negative on a bad value. */
static int create_opt(struct create_opts *o, int c, struct pbox_error *err)
{
        switch (c) {
        case OPT_NAME:
                o->name = optarg;
                return 1;
        case OPT_HOSTNAME:
                o->hostname = optarg;
                return 1;
        case 'e':
                if (!o->env)
                        o->env = json_object();
                return kv_add(o->env, optarg, true, "--env", err) < 0 ? -EINVAL : 1;
        case 'l':
                if (!o->labels)
                        o->labels = json_object();
                return kv_add(o->labels, optarg, false, "--label", err) < 0 ? -EINVAL : 1;
        case OPT_TTL:
                return duration_arg("--ttl", optarg, &o->ttl_ms, err) < 0 ? -EINVAL : 1;
        case OPT_IDLE:
                return duration_arg("--idle-timeout", optarg, &o->idle_ms, err) < 0 ? -EINVAL : 1;
        default:
                return 0;
        }
}

static int cmd_create(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                CREATE_LONG_OPTS,
                { "help", no_argument, NULL, 'h' },
                {},
        };
        __attribute__((cleanup(create_opts_done))) struct create_opts co = CREATE_OPTS_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:e:l:h", opts, NULL)) != -1) {
                int r = create_opt(&co, c, &err);
                if (r < 0)
                        return usage_error(cmd, "%s", err.message);
                if (r > 0)
                        continue;
                if (c == 'h')
                        return show_help(cmd);
                return option_error(cmd, c, argv);
        }
        if (argc - optind != 1)
                return usage_error(cmd, "expected exactly one IMAGE");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        _cleanup_free_ char *id = NULL;
        if (create_sandbox(cli, argv[optind], &co, &id, &err) < 0)
                return fail(cmd, &err);
        printf("%s\n", id);
        return 0;
}

#define EXEC_LONG_OPTS                                                \
        { "interactive", no_argument, NULL, 'i' },                    \
        { "workdir", required_argument, NULL, 'w' },                  \
        { "user", required_argument, NULL, 'u' },                     \
        { "timeout", required_argument, NULL, OPT_TIMEOUT },          \
        { "grace", required_argument, NULL, OPT_GRACE },              \
        { "signal", required_argument, NULL, OPT_SIGNAL },            \
        { "max-output", required_argument, NULL, OPT_MAX_OUTPUT }

/* SIZE: digits, optionally followed by K, M or G (powers of 1024; "KiB",
 * "k", "M", "MB" ... are accepted too). */
static int parse_size(const char *s, int64_t *ret)
{
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || digits > 15)
                return -EINVAL;
        int64_t v = strtoll(s, NULL, 10);
        const char *u = s + digits;
        int shift = 0;
        switch (*u) {
        case '\0': break;
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -EINVAL;
        }
        if (*u) {
                u++;
                if (*u == 'i')
                        u++;
                if (*u == 'B')
                        u++;
                if (*u)
                        return -EINVAL;
        }
        if (v > (INT64_C(1) << 50) >> shift)
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

static int exec_opt(struct exec_opts *o, int c, struct pbox_error *err)
{
        switch (c) {
        case 'i':
                o->interactive = true;
                return 1;
        case 'w':
                if (optarg[0] != '/') {
                        pbox_error_set(err, EINVAL, "--workdir must be an absolute path");
                        return -EINVAL;
                }
                o->workdir = optarg;
                return 1;
        case 'u': {
                /* UID or UID:GID, numeric: inside the sandbox, names mean nothing here. */
                size_t n = strspn(optarg, "0123456789");
                if (n == 0 || n > 10 || (optarg[n] && (optarg[n] != ':' || !optarg[n + 1] ||
                                                      strspn(optarg + n + 1, "0123456789") != strlen(optarg + n + 1) ||
                                                      strlen(optarg + n + 1) > 10))) {
                        pbox_error_set(err, EINVAL, "--user must be UID or UID:GID (numbers inside the sandbox)");
                        return -EINVAL;
                }
                o->user = optarg;
                return 1;
        }
        case OPT_TIMEOUT:
                return duration_arg("--timeout", optarg, &o->timeout_ms, err) < 0 ? -EINVAL : 1;
        case OPT_GRACE:
                return duration_arg("--grace", optarg, &o->grace_ms, err) < 0 ? -EINVAL : 1;
        case OPT_SIGNAL:
                if (!*optarg || strlen(optarg) > 16) {
                        pbox_error_set(err, EINVAL, "invalid signal '%s'", optarg);
                        return -EINVAL;
                }
                o->stop_signal = optarg;
                return 1;
        case OPT_MAX_OUTPUT:
                if (parse_size(optarg, &o->max_output) < 0) {
                        pbox_error_set(err, EINVAL, "--max-output: invalid size '%s' (examples: 4096, 64K, 1M)",
                                       optarg);
                        return -EINVAL;
                }
                return 1;
        case 'e':
                if (!o->env)
                        o->env = json_object();
                return kv_add(o->env, optarg, true, "--env", err) < 0 ? -EINVAL : 1;
        default:
                return 0;
        }
}

static int cmd_exec(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                EXEC_LONG_OPTS,
                { "env", required_argument, NULL, 'e' },
                { "detach", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        __attribute__((cleanup(exec_opts_done))) struct exec_opts eo = EXEC_OPTS_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:ie:w:u:dh", opts, NULL)) != -1) {
                int r = exec_opt(&eo, c, &err);
                if (r < 0)
                        return usage_error(cmd, "%s", err.message);
                if (r > 0)
                        continue;
                if (c == 'd')
                        eo.detach = true;
                else if (c == 'h')
                        return show_help(cmd);
                else
                        return option_error(cmd, c, argv);
        }
        if (optind >= argc)
                return usage_error(cmd, "expected a sandbox ID and a command");
        const char *id = argv[optind++];
        if (optind < argc && !strcmp(argv[optind], "--"))
                optind++;
        if (optind >= argc)
                return usage_error(cmd, "expected a command after the sandbox ID");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        int status;
        if (exec_in(cli, id, argv + optind, &eo, &status, &err) < 0)
                return fail(cmd, &err);
        return status;
}

/* pbox logs ID EID, pbox attach [-i] ID EID. */
static int follow_command(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv, bool attach)
{
        static const struct option opts[] = {
                { "interactive", no_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        bool interactive = false;
        int c;
        while ((c = getopt_long(argc, argv, attach ? "+:ih" : "+:h", opts + (attach ? 0 : 1), NULL)) != -1) {
                switch (c) {
                case 'i': interactive = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (argc - optind != 2)
                return usage_error(cmd, "expected a sandbox ID and an exec ID");
        if (!valid_eid(argv[optind + 1]))
                return usage_error(cmd, "invalid exec id '%s' (16 hex digits)", argv[optind + 1]);
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        int status = 0;
        if (exec_follow(cli, argv[optind], argv[optind + 1], interactive, NULL, &status, &err) < 0)
                return fail(cmd, &err);
        return status;
}

static int cmd_logs(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        return follow_command(cli, cmd, argc, argv, false);
}

static int cmd_attach(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        return follow_command(cli, cmd, argc, argv, true);
}

static int cmd_kill(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "signal", required_argument, NULL, 's' },
                { "grace", required_argument, NULL, OPT_GRACE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *sig = NULL;
        int64_t grace_ms = -1;
        int c;
        while ((c = getopt_long(argc, argv, "+:s:h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (!*optarg || strlen(optarg) > 16)
                                return usage_error(cmd, "invalid signal '%s'", optarg);
                        sig = optarg;
                        break;
                case OPT_GRACE:
                        if (duration_arg("--grace", optarg, &grace_ms, &err) < 0)
                                return usage_error(cmd, "%s", err.message);
                        break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (argc - optind != 2)
                return usage_error(cmd, "expected a sandbox ID and an exec ID");
        const char *id = argv[optind], *eid = argv[optind + 1];
        if (!valid_eid(eid))
                return usage_error(cmd, "invalid exec id '%s' (16 hex digits)", eid);
        _cleanup_json_ json_t *body = json_object();
        if (sig && set_signal(body, "signal", sig, &err) < 0)
                return usage_error(cmd, "%s", err.message);
        if (grace_ms >= 0)
                json_object_set_new(body, "grace_ms", json_integer(grace_ms));
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        /* The server answers once the exec has ended: allow for the grace period. */
        int64_t wait = (grace_ms >= 0 ? grace_ms : 60000) + PBOX_DEFAULT_TIMEOUT_MS;
        _cleanup_free_ char *target = exec_target(id, eid, "/kill");
        _cleanup_json_ json_t *rec = NULL;
        if (pbox_client_call(&cli->client, "POST", target, body, wait > INT32_MAX ? INT32_MAX : (int) wait, &rec,
                             NULL, &err) < 0)
                return fail(cmd, &err);
        json_t *res = json_object_get(rec, "result");
        const char *status = json_is_object(res) ? rec_str(res, "status") : "";
        const char *by = json_is_object(res) ? rec_str(res, "ended_by") : "";
        _cleanup_free_ char *s = pbox_sanitize(*status ? status : "?");
        if (*by) {
                _cleanup_free_ char *b = pbox_sanitize(by);
                printf("%s %s (%s)\n", eid, s, b);
        } else
                printf("%s %s\n", eid, s);
        return 0;
}

static int cmd_keepalive(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "ttl", required_argument, NULL, OPT_TTL },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        int64_t ttl_ms = -1;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case OPT_TTL:
                        if (duration_arg("--ttl", optarg, &ttl_ms, &err) < 0)
                                return usage_error(cmd, "%s", err.message);
                        break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "expected at least one sandbox ID");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        _cleanup_json_ json_t *body = NULL;
        if (ttl_ms >= 0) {
                body = json_object();
                json_object_set_new(body, "ttl_s", seconds_json(ttl_ms));
        }
        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *target = sandbox_target(argv[i], "/keepalive");
                _cleanup_json_ json_t *rec = NULL;
                if (pbox_client_call(&cli->client, "POST", target, body, PBOX_DEFAULT_TIMEOUT_MS, &rec, NULL,
                                     &err) < 0) {
                        status = fail(cmd, &err);
                        continue;
                }
                print_field(rec, "id", argv[i]);
        }
        return status;
}

/* ------------------------------------------------------------------- run */

static void run_on_signal(int sig)
{
        pbox_client_interrupted = sig;
}

/* Catches SIGINT, SIGTERM and SIGHUP into pbox_client_interrupted, except
 * those the caller ignores (a background job keeps ignoring SIGINT). */
static void run_catch_signals(void)
{
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
        struct sigaction sa = { .sa_handler = run_on_signal }, old;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
                        sigaction(sigs[i], &sa, NULL);
}

/* Ends pbox by the signal that interrupted it, so that its parent sees it. */
static int run_reraise(int sig)
{
        fflush(stdout);
        signal(sig, SIG_DFL);
        raise(sig);
        return 128 + sig;
}

/* A one-shot file: --file LOCAL[:PATH].  The argument is split at its last
 * ':' unless it names an existing local file as a whole; PATH defaults to
 * RUN_FILE_DIR/<basename>, and a PATH ending in '/' gets the basename. */
static int run_file_arg(json_t *files, const char *arg, struct pbox_error *err)
{
        struct stat st;
        const char *colon = strrchr(arg, ':');
        bool whole = stat(arg, &st) == 0 || !colon || colon == arg;
        _cleanup_free_ char *local = whole ? util_xstrdup(arg) : strndup(arg, (size_t) (colon - arg));
        const char *path = whole ? NULL : colon + 1;
        if (!local)
                abort();
        if (path && !*path)
                return pbox_error_set(err, EINVAL, "--file %s: empty PATH after ':'", arg);
        _cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return pbox_error_sys(err, errno, "--file: cannot open %s", local);
        if (fstat(fd, &st) < 0)
                return pbox_error_sys(err, errno, "--file: cannot stat %s", local);
        if (!S_ISREG(st.st_mode))
                return pbox_error_set(err, EINVAL, "--file: %s is not a regular file", local);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = util_read_all(fd, RUN_FILE_MAX, &buf, &len);
        if (r == -EFBIG)
                return pbox_error_set(err, EFBIG, "--file: %s is larger than %zu MiB", local, RUN_FILE_MAX >> 20);
        if (r < 0)
                return pbox_error_sys(err, -r, "--file: cannot read %s", local);

        const char *base = strrchr(local, '/') ? strrchr(local, '/') + 1 : local;
        if (!*base && (!path || path[strlen(path) - 1] == '/'))
                return pbox_error_set(err, EINVAL, "--file %s: no file name to use inside the sandbox", arg);
        _cleanup_free_ char *dest = !path ? util_xasprintf("%s/%s", RUN_FILE_DIR, base)
                : path[strlen(path) - 1] == '/' ? util_xasprintf("%s%s", path, base) : util_xstrdup(path);
        if (check_utf8(dest, "--file PATH", err) < 0)
                return -EINVAL;

        json_t *f = json_pack("{s:s,s:i}", "path", dest, "mode", (int) (st.st_mode & 0777));
        if (util_utf8_valid(buf, len) && !memchr(buf, '\0', len)) {
                json_object_set_new(f, "content", json_stringn(buf ? buf : "", len));
        } else {
                _cleanup_free_ char *b64 = util_base64_encode(buf, len);
                json_object_set_new(f, "content", json_string(b64));
                json_object_set_new(f, "encoding", json_string("base64"));
        }
        json_array_append_new(files, f);
        return 0;
}

/* Splits a --compile command line into words: blanks separate words,
 * '...' quotes literally, "..." quotes with \" and \\ escapes, a
 * backslash outside quotes escapes the next character.  No expansions. */
static int split_words(const char *s, char ***ret, struct pbox_error *err)
{
        char **v = NULL;
        size_t n = 0;
        _cleanup_free_ char *w = util_xmalloc(strlen(s) + 1);
        const char *p = s;
        for (;;) {
                while (*p == ' ' || *p == '\t' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                size_t wl = 0;
                while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
                        if (*p == '\'') {
                                const char *e = strchr(p + 1, '\'');
                                if (!e)
                                        goto unterminated;
                                memcpy(w + wl, p + 1, (size_t) (e - p - 1));
                                wl += (size_t) (e - p - 1);
                                p = e + 1;
                        } else if (*p == '"') {
                                for (p++; *p != '"'; p++) {
                                        if (!*p)
                                                goto unterminated;
                                        if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                                                p++;
                                        w[wl++] = *p;
                                }
                                p++;
                        } else if (*p == '\\' && p[1]) {
                                w[wl++] = p[1];
                                p += 2;
                        } else {
                                w[wl++] = *p++;
                        }
                }
                v = util_xrealloc(v, (n + 2) * sizeof(char *));
                v[n] = strndup(w, wl);
                if (!v[n])
                        abort();
                v[++n] = NULL;
        }
        if (n == 0) {
                free(v);
                return pbox_error_set(err, EINVAL, "--compile: empty command");
        }
        *ret = v;
        return 0;
unterminated:
        util_strv_free(v);
        return pbox_error_set(err, EINVAL, "--compile: unterminated quote in '%s'", s);
}

/* pbox run with --file or --compile: one POST /v1/run. */
static int run_one_shot(struct pbox_cli *cli, const char *image, char **cmdv, const struct create_opts *co,
                        const struct exec_opts *eo, json_t *files, const char *compile, int64_t compile_timeout_ms,
                        int *ret_status, struct pbox_error *err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = exec_body(cmdv, eo, &body, err);
        if (r < 0)
                return r;
        if ((r = set_string(body, "image", image, err)) < 0)
                return r;
        if (json_array_size(files) > 0)
                json_object_set(body, "files", files);
        if (json_object_size(co->env) > 0)
                json_object_set(body, "env", co->env);
        if (eo->interactive && (r = stdin_to_json(body, err)) < 0)
                return r;
        struct exec_opts ceo = EXEC_OPTS_INIT;
        if (compile) {
                _cleanup_strv_ char **cv = NULL;
                if ((r = split_words(compile, &cv, err)) < 0 || (r = check_argv(cv, err)) < 0)
                        return r;
                json_t *c = json_pack("{s:o}", "argv", json_strv(cv));
                if (compile_timeout_ms >= 0)
                        json_object_set_new(c, "timeout_ms", json_integer(compile_timeout_ms));
                json_object_set_new(body, "compile", c);
                ceo.timeout_ms = compile_timeout_ms;
        }

        _cleanup_json_ json_t *resp = NULL;
        r = pbox_client_call(&cli->client, "POST", "/v1/run", body, PBOX_TIMEOUT_NONE, &resp, NULL, err);
        if (r < 0)
                return r;
        json_t *cres = json_object_get(resp, "compile"), *rres = json_object_get(resp, "run");
        if (json_is_object(cres) && (r = print_result_output(cres, "the compile step", err)) < 0)
                return r;
        if (!json_is_object(rres)) {
                int st = json_is_object(cres) ? exec_result_status(cres, &ceo, "compile step") : 0;
                if (st == 0) {
                        fprintf(stderr, "pbox: the server returned no result for the command\n");
                        st = PBOX_EXIT_EXEC_FAILURE;
                }
                *ret_status = st;
                return 0;
        }
        if ((r = print_result_output(rres, NULL, err)) < 0)
                return r;
        *ret_status = exec_result_status(rres, eo, NULL);
        return 0;
}

static int cmd_run(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                CREATE_LONG_OPTS,
                EXEC_LONG_OPTS,
                { "rm", no_argument, NULL, OPT_RM },
                { "file", required_argument, NULL, OPT_FILE },
                { "compile", required_argument, NULL, OPT_COMPILE },
                { "compile-timeout", required_argument, NULL, OPT_COMPILE_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        __attribute__((cleanup(create_opts_done))) struct create_opts co = CREATE_OPTS_INIT;
        __attribute__((cleanup(exec_opts_done))) struct exec_opts eo = EXEC_OPTS_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *files = json_array();
        const char *compile = NULL;
        int64_t compile_timeout_ms = -1;
        bool rm = false;
        int c;
        while ((c = getopt_long(argc, argv, "+:e:l:iw:u:h", opts, NULL)) != -1) {
                /* -e belongs to the sandbox (create); the rest of the exec set to the exec. */
                int r = create_opt(&co, c, &err);
                if (r == 0 && c != 'e')
                        r = exec_opt(&eo, c, &err);
                if (r < 0)
                        return usage_error(cmd, "%s", err.message);
                if (r > 0)
                        continue;
                if (c == OPT_RM)
                        rm = true;
                else if (c == OPT_FILE) {
                        if (run_file_arg(files, optarg, &err) < 0)
                                return usage_error(cmd, "%s", err.message);
                } else if (c == OPT_COMPILE)
                        compile = optarg;
                else if (c == OPT_COMPILE_TIMEOUT) {
                        if (duration_arg("--compile-timeout", optarg, &compile_timeout_ms, &err) < 0)
                                return usage_error(cmd, "%s", err.message);
                } else if (c == 'h')
                        return show_help(cmd);
                else
                        return option_error(cmd, c, argv);
        }
        if (optind >= argc)
                return usage_error(cmd, "expected an IMAGE and a command");
        const char *image = argv[optind++];
        if (optind < argc && !strcmp(argv[optind], "--"))
                optind++;
        if (optind >= argc)
                return usage_error(cmd, "expected a command after the IMAGE");
        if (check_argv(argv + optind, &err) < 0)
                return usage_error(cmd, "%s", err.message);
        bool one_shot = json_array_size(files) > 0 || compile;
        if (!one_shot && compile_timeout_ms >= 0)
                return usage_error(cmd, "--compile-timeout needs --compile");
        if (one_shot) {
                const char *bad = co.name ? "--name" : co.hostname ? "--hostname" : co.labels ? "--label"
                                : co.ttl_ms >= 0 ? "--ttl" : co.idle_ms >= 0 ? "--idle-timeout"
                                : eo.workdir ? "--workdir" : eo.stop_signal ? "--signal" : NULL;
                if (bad)
                        return usage_error(cmd, "%s does not apply to a one-shot run (--file, --compile)", bad);
        }
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);

        int status = 0;
        if (one_shot) {
                /* The server removes the sandbox whatever happens (--rm is implied). */
                if (run_one_shot(cli, image, argv + optind, &co, &eo, files, compile, compile_timeout_ms, &status,
                                 &err) < 0)
                        return fail(cmd, &err);
                return status;
        }

        /* With --rm an interrupt must not leave the sandbox behind: it aborts
         * the request in flight, then the removal below runs. */
        if (rm)
                run_catch_signals();

        _cleanup_free_ char *id = NULL;
        if (create_sandbox(cli, image, &co, &id, &err) < 0) {
                int sig = pbox_client_interrupted;
                if (!sig)
                        return fail(cmd, &err);
                /* Interrupted during create: the daemon may have made the
                 * sandbox anyway; without its id only its name finds it. */
                pbox_client_interrupted = 0;
                if (co.name)
                        (void) remove_sandbox(cli, co.name, true, NULL, NULL);
                return run_reraise(sig);
        }

        int r = exec_in(cli, id, argv + optind, &eo, &status, &err);
        if (r < 0)
                status = fail(cmd, &err);

        if (rm) {
                int sig = pbox_client_interrupted;
                pbox_client_interrupted = 0;
                struct pbox_error rm_err = PBOX_ERROR_INIT;
                if (remove_sandbox(cli, id, true, NULL, &rm_err) < 0)
                        fprintf(stderr, "pbox: cannot remove sandbox %s: %s\n", id, rm_err.message);
                if (sig)
                        return run_reraise(sig);
        }
        return status;
}

static int cmd_ls(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool json = false, quiet = false;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:qh", opts, NULL)) != -1) {
                switch (c) {
                case OPT_JSON: json = true; break;
                case 'q': quiet = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind != argc)
                return usage_error(cmd, "unexpected argument '%s'", argv[optind]);

        _cleanup_json_ json_t *resp = NULL;
        json_t *list;
        if (get_list(cli, "/v1/sandboxes", "sandboxes", &resp, &list, &err) < 0)
                return fail(cmd, &err);
        if (json)
                return print_json(list) < 0 ? cmd->fail_status : 0;

        struct table t = { .ncols = 5 };
        if (!quiet)
                table_add(&t, (const char *const[]) { "ID", "NAME", "IMAGE", "STATE", "CREATED" });
        size_t i;
        json_t *rec;
        json_array_foreach(list, i, rec) {
                if (quiet) {
                        print_field(rec, "id", "?");
                        continue;
                }
                _cleanup_free_ char *created = format_ago(rec_str(rec, "created_at"));
                const char *name = rec_str(rec, "name");
                table_add(&t, (const char *const[]) { rec_str(rec, "id"), *name ? name : "-",
                                                       rec_str(rec, "image"), rec_str(rec, "state"), created });
        }
        table_print_free(&t);
        return 0;
}

static int cmd_inspect(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
                switch (c) {
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (argc - optind != 1)
                return usage_error(cmd, "expected exactly one sandbox ID");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        _cleanup_free_ char *target = sandbox_target(argv[optind], "");
        _cleanup_json_ json_t *rec = NULL;
        if (pbox_client_call(&cli->client, "GET", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, &rec, NULL, &err) < 0)
                return fail(cmd, &err);
        return print_json(rec) < 0 ? cmd->fail_status : 0;
}

static int cmd_stop(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "grace", required_argument, NULL, OPT_GRACE },
                { "signal", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int64_t grace_ms = -1;
        const char *sig = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:s:h", opts, NULL)) != -1) {
                switch (c) {
                case OPT_GRACE:
                        if (pbox_parse_duration(optarg, &grace_ms) < 0)
                                return usage_error(cmd, "invalid duration '%s' (examples: 500ms, 10s, 1m)",
                                                   optarg);
                        break;
                case 's':
                        if (!*optarg || strlen(optarg) > 16)
                                return usage_error(cmd, "invalid signal '%s'", optarg);
                        sig = optarg;
                        break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "expected at least one sandbox ID");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);

        _cleanup_json_ json_t *body = NULL;
        if (grace_ms >= 0 || sig) {
                body = json_object();
                if (grace_ms >= 0)
                        json_object_set_new(body, "grace_ms", json_integer(grace_ms));
                if (sig && strspn(sig, "0123456789") == strlen(sig))
                        json_object_set_new(body, "signal", json_integer(strtol(sig, NULL, 10)));
                else if (sig && set_string(body, "signal", sig, &err) < 0)
                        return usage_error(cmd, "%s", err.message);
        }
        /* The server answers once the sandbox is down: allow for the grace period. */
        int64_t wait = (grace_ms >= 0 ? grace_ms : 5000) + PBOX_DEFAULT_TIMEOUT_MS;
        int timeout = wait > INT32_MAX ? INT32_MAX : (int) wait;

        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *target = sandbox_target(argv[i], "/stop");
                _cleanup_json_ json_t *rec = NULL;
                if (pbox_client_call(&cli->client, "POST", target, body, timeout, &rec, NULL, &err) < 0) {
                        status = fail(cmd, &err);
                        continue;
                }
                print_field(rec, "id", argv[i]);
        }
        return status;
}

static int cmd_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "force", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool force = false;
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:fh", opts, NULL)) != -1) {
                switch (c) {
                case 'f': force = true; break;
                case 'h': return show_help(cmd);
                default: return option_error(cmd, c, argv);
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "expected at least one sandbox ID");
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);
        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_json_ json_t *resp = NULL;
                if (remove_sandbox(cli, argv[i], force, &resp, &err) < 0) {
                        status = fail(cmd, &err);
                        continue;
                }
                print_field(resp, "removed", argv[i]);
        }
        return status;
}

/* ------------------------------------------------------------- the table */

#define CREATE_HELP                                                                      \
        "      --name NAME          name of the sandbox (usable instead of its ID)\n"    \
        "      --hostname HOST      host name inside the sandbox\n"                      \
        "  -e, --env KEY=VALUE      environment variable of the sandbox (repeatable;\n"  \
        "                           a bare KEY takes its value from pbox's environment)\n" \
        "  -l, --label KEY=VALUE    label (repeatable)\n"                                \
        "      --ttl DURATION       stop and remove the sandbox this long after its\n"   \
        "                           creation (whole seconds, rounded up)\n"             \
        "      --idle-timeout DURATION\n"                                                \
        "                           stop and remove it after this long without API\n"   \
        "                           activity (execs, keepalive)\n"

#define EXEC_HELP                                                                        \
        "      --timeout DURATION   wall-clock limit (default: the server's, 60s)\n"     \
        "      --grace DURATION     after the timeout, time between the stop signal and\n" \
        "                           SIGKILL (default: the server's, 2s)\n"              \
        "      --signal SIGNAL      stop signal at the timeout (TERM, SIGTERM or a\n"    \
        "                           number; default TERM)\n"                             \
        "  -u, --user UID[:GID]     numeric user (and group) inside the sandbox\n"      \
        "      --max-output SIZE    limit of each of stdout and stderr (4096, 64K, 1M);\n" \
        "                           beyond it the command is killed\n"                  \
        "  -w, --workdir DIR        working directory inside the sandbox (absolute)\n"

#define EXIT_HELP                                                                        \
        "\nExit status: the command's; 128+N when signal N ended it; 124 when it\n"      \
        "timed out (\"timed out after 10s (ended by SIGTERM|SIGKILL)\" on stderr);\n"   \
        "128+N when it was killed for its output limit or by 'pbox kill'; 126/127\n"    \
        "when it could not be executed / was not found; 125 when pbox itself\n"         \
        "failed or the outcome is unknown."

const struct pbox_cmd pbox_cmds[] = {
        { "create", "[OPTIONS] IMAGE", "Create a sandbox from IMAGE (NAME[:TAG] or ID) and print its ID.",
          NULL, CREATE_HELP, cmd_create, PBOX_EXIT_FAILURE },
        { "exec", "[OPTIONS] ID [--] CMD [ARG...]",
          "Run a command in a running sandbox.",
          "Its standard output and error are written to pbox's own. Options after\n"
          "the ID belong to the command. With -i, pbox's standard input is streamed\n"
          "to the command while its output streams back; with -d, pbox prints the\n"
          "exec ID and leaves the command running (see logs, attach, kill).\n" EXIT_HELP,
          "  -i, --interactive        stream pbox's standard input to the command\n"
          "  -d, --detach             start the command, print its exec ID, do not wait\n"
          "  -e, --env KEY=VALUE      environment variable for the command (repeatable;\n"
          "                           a bare KEY takes its value from pbox's environment)\n" EXEC_HELP,
          cmd_exec, PBOX_EXIT_EXEC_FAILURE },
        { "run", "[OPTIONS] IMAGE [--] CMD [ARG...]",
          "Create a sandbox from IMAGE and run a command in it.",
          "Like create followed by exec; -e sets the sandbox's environment, the exec\n"
          "options apply to the command. With --file or --compile it is a one-shot\n"
          "run (POST /v1/run): the files are written into a new sandbox, the compile\n"
          "command runs first, then CMD unless the compile step failed; the output\n"
          "of both is printed and the sandbox is always removed. LOCAL[:PATH] is\n"
          "split at its last ':' unless it names an existing file; PATH defaults to\n"
          "/work/BASENAME (a PATH ending in '/' gets the BASENAME), the mode is the\n"
          "local file's. The exit status is the command's, or the compile step's\n"
          "when that failed.\n" EXIT_HELP,
          "      --rm                 remove the sandbox afterwards (also on failure)\n" CREATE_HELP
          "  -i, --interactive        stream pbox's standard input to the command (read to\n"
          "                           EOF, at most 1 MiB, in a one-shot run)\n" EXEC_HELP
          "      --file LOCAL[:PATH]  copy a local file into the sandbox (repeatable;\n"
          "                           one-shot run)\n"
          "      --compile 'CMD ARG...'\n"
          "                           a step run before CMD (words split as a shell\n"
          "                           would, with '' and \"\" quotes; no expansions)\n"
          "      --compile-timeout DURATION\n"
          "                           wall-clock limit of the compile step\n",
          cmd_run, PBOX_EXIT_EXEC_FAILURE },
        { "logs", "ID EID", "Print the output of an exec, following it until it ends.",
          "Prints what the server still holds of the exec's output, then follows it\n"
          "live; exits with the exec's status, as exec does.",
          NULL, cmd_logs, PBOX_EXIT_EXEC_FAILURE },
        { "attach", "[OPTIONS] ID EID", "Attach to a running exec: its output, and with -i its input.",
          "Like logs; with -i pbox's standard input goes to the exec (which must have\n"
          "been started with exec -d -i) and is closed at EOF.",
          "  -i, --interactive        stream pbox's standard input to the exec\n",
          cmd_attach, PBOX_EXIT_EXEC_FAILURE },
        { "kill", "[OPTIONS] ID EID", "Kill one exec (and every process it started).",
          "Sends the signal to every process of the exec, then SIGKILL after the\n"
          "grace period; waits until it has ended and prints the exec ID, its status\n"
          "and how it ended.",
          "  -s, --signal SIGNAL      first signal (TERM, SIGKILL, a number; default TERM)\n"
          "      --grace DURATION     time before SIGKILL (default: the server's)\n",
          cmd_kill, PBOX_EXIT_FAILURE },
        { "ls", "[OPTIONS]", "List the sandboxes.", NULL,
          "      --json               print the sandbox records as a JSON array\n"
          "  -q, --quiet              print only the IDs\n",
          cmd_ls, PBOX_EXIT_FAILURE },
        { "inspect", "ID", "Print the record of a sandbox (ID or name) as JSON.", NULL, NULL, cmd_inspect,
          PBOX_EXIT_FAILURE },
        { "keepalive", "[OPTIONS] ID...", "Mark sandboxes as in use (resets their idle timeout).", NULL,
          "      --ttl DURATION       also set a new time to live, from now\n",
          cmd_keepalive, PBOX_EXIT_FAILURE },
        { "stop", "[OPTIONS] ID...",
          "Stop sandboxes (and every process in them).",
          "Sends the signal to all processes of the sandbox, then SIGKILL after the\n"
          "grace period, and waits until the sandbox is stopped.",
          "      --grace DURATION     time before SIGKILL (500ms, 10s, 1m; a bare number is\n"
          "                           seconds; default: the server's, 5s)\n"
          "  -s, --signal SIGNAL      first signal (TERM, SIGTERM or a number; default TERM)\n",
          cmd_stop, PBOX_EXIT_FAILURE },
        { "rm", "[OPTIONS] ID...", "Remove sandboxes.", NULL,
          "  -f, --force              stop running sandboxes first\n", cmd_rm, PBOX_EXIT_FAILURE },
        { "cp", PBOX_CP_SYNOPSIS, PBOX_CP_SUMMARY, PBOX_CP_DESCRIPTION, PBOX_CP_OPTIONS, cmd_cp,
          PBOX_EXIT_FAILURE },
        { "image load", "[OPTIONS] FILE",
          "Load an image archive and print the image ID.",
          "FILE is an OCI image layout archive or a 'docker save' archive; it is\n"
          "streamed to the server.",
          "      --name NAME[:TAG]    name the image (default: the name in the archive)\n",
          cmd_image_load, PBOX_EXIT_FAILURE },
        { "image ls", "[OPTIONS]", "List the images.", NULL,
          "      --json               print the image records as a JSON array\n"
          "  -q, --quiet              print only the (full) IDs\n"
          "      --no-trunc           do not shorten the IDs\n",
          cmd_image_ls, PBOX_EXIT_FAILURE },
        { "image rm", "REF...", "Remove images (NAME[:TAG] or 64-hex ID).",
          "An image in use by a sandbox cannot be removed.", NULL, cmd_image_rm, PBOX_EXIT_FAILURE },
        { "tenant add", "[OPTIONS] NAME", "Create a tenant and print its token (shown only this once).",
          "Needs the admin token. A tenant sees only its own sandboxes.",
          "      --max-sandboxes N    concurrent sandboxes (default: no limit)\n"
          "      --max-execs N        concurrent running execs (default: no limit)\n"
          "      --image REF          an image it may use (repeatable; default: all)\n"
          "      --json               print the whole record, token included\n",
          cmd_tenant_add, PBOX_EXIT_FAILURE },
        { "tenant ls", "[--json]", "List tenants (admin token).", NULL, "      --json               print JSON\n",
          cmd_tenant_ls, PBOX_EXIT_FAILURE },
        { "tenant rm", "NAME...", "Remove tenants that have no sandboxes left (admin token).", NULL, NULL,
          cmd_tenant_rm, PBOX_EXIT_FAILURE },
};

const size_t pbox_cmds_count = ARRAY_SIZE(pbox_cmds);
