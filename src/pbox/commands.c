/* commands.c — the subcommands of the pbox CLI: option parsing (getopt_long
 * per command), request bodies, and the output (tables, JSON, the raw
 * stdout/stderr bytes of exec).  Text that comes from the server and goes
 * to a terminal (names, messages) is sanitised; command output is not. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "client.h"
#include "commands.h"
#include "json.h"
#include "util.h"

#define STDIN_MAX ((size_t) 1 << 20)
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)

enum {
        OPT_NAME = 256,
        OPT_HOSTNAME,
        OPT_GRACE,
        OPT_JSON,
        OPT_NO_TRUNC,
        OPT_RM,
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

/* ------------------------------------------------------------ sandboxes */

struct create_opts {
        const char *name;
        const char *hostname;
        json_t *env;
        json_t *labels;
};

static void create_opts_done(struct create_opts *o)
{
        json_decref(o->env);
        json_decref(o->labels);
}

struct exec_opts {
        bool interactive;
        const char *workdir;
        json_t *env;
};

static void exec_opts_done(struct exec_opts *o)
{
        json_decref(o->env);
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

/* Decodes the output field `key` of an exec result per its *_encoding. */
static int exec_stream(json_t *res, const char *key, char **ret, size_t *ret_len, struct pbox_error *err)
{
        json_t *v = json_object_get(res, key);
        _cleanup_free_ char *enc_key = util_xasprintf("%s_encoding", key);
        const char *enc = "utf-8";
        if (!v || json_is_null(v)) {
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        if (!json_is_string(v))
                return pbox_error_set(err, EPROTO, "bad exec result: \"%s\" is not a string", key);
        if (json_get_string(res, enc_key, false, &enc, err) < 0)
                return pbox_error_prefix(err, "bad exec result");
        if (!strcmp(enc, "base64")) {
                unsigned char *out;
                if (util_base64_decode(json_string_value(v), json_string_length(v), &out, ret_len) < 0)
                        return pbox_error_set(err, EPROTO, "bad exec result: \"%s\" is not valid base64", key);
                *ret = (char *) out;
        } else if (!strcmp(enc, "utf-8")) {
                *ret_len = json_string_length(v);
                *ret = util_xmalloc(*ret_len + 1);
                memcpy(*ret, json_string_value(v), *ret_len);
        } else {
                _cleanup_free_ char *s = pbox_sanitize(enc);
                return pbox_error_set(err, EPROTO, "bad exec result: unknown encoding '%s'", s);
        }
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

/* Runs cmdv in sandbox id, writes its output to fd 1 and 2, and returns
 * (in *ret_status) the exit status the CLI must end with. */
static int exec_in(struct pbox_cli *cli, const char *id, char **cmdv, const struct exec_opts *o,
                   int *ret_status, struct pbox_error *err)
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
        if (o->interactive) {
                _cleanup_free_ char *in = NULL;
                size_t in_len = 0;
                r = util_read_all(STDIN_FILENO, STDIN_MAX, &in, &in_len);
                if (r == -EFBIG)
                        return pbox_error_set(err, EFBIG, "standard input is larger than %zu KiB",
                                              STDIN_MAX >> 10);
                if (r < 0)
                        return pbox_error_sys(err, -r, "cannot read standard input");
                if (util_utf8_valid(in, in_len)) {
                        json_object_set_new(body, "stdin", json_stringn(in, in_len));
                        json_object_set_new(body, "stdin_encoding", json_string("utf-8"));
                } else {
                        _cleanup_free_ char *b64 = util_base64_encode(in, in_len);
                        json_object_set_new(body, "stdin", json_string(b64));
                        json_object_set_new(body, "stdin_encoding", json_string("base64"));
                }
        }

        _cleanup_free_ char *target = sandbox_target(id, "/exec");
        _cleanup_json_ json_t *res = NULL;
        r = pbox_client_call(&cli->client, "POST", target, body, PBOX_TIMEOUT_NONE, &res, NULL, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *out = NULL, *errout = NULL;
        size_t out_len, err_len;
        if ((r = exec_stream(res, "stdout", &out, &out_len, err)) < 0 ||
            (r = exec_stream(res, "stderr", &errout, &err_len, err)) < 0)
                return r;
        if (out_len > 0 && (r = util_write_all(STDOUT_FILENO, out, out_len)) < 0)
                return pbox_error_sys(err, -r, "cannot write standard output");
        if (err_len > 0)
                (void) util_write_all(STDERR_FILENO, errout, err_len);
        if (json_is_true(json_object_get(res, "stdout_truncated")))
                fprintf(stderr, "pbox: warning: the server truncated the command's standard output\n");
        if (json_is_true(json_object_get(res, "stderr_truncated")))
                fprintf(stderr, "pbox: warning: the server truncated the command's standard error\n");
        const char *msg = rec_str(res, "error");
        if (*msg) {
                _cleanup_free_ char *s = pbox_sanitize(msg);
                fprintf(stderr, "pbox: %s\n", s);
        }

        json_t *sig = json_object_get(res, "signal"), *code = json_object_get(res, "exit_code");
        if (json_is_integer(sig) && json_integer_value(sig) > 0 && json_integer_value(sig) < 128) {
                *ret_status = 128 + (int) json_integer_value(sig);
        } else if (json_is_integer(code) && json_integer_value(code) >= 0 && json_integer_value(code) <= 255) {
                *ret_status = (int) json_integer_value(code);
        } else {
                if (!*msg)
                        fprintf(stderr, "pbox: the server reported no exit status\n");
                *ret_status = PBOX_EXIT_EXEC_FAILURE;
        }
        return 0;
}

#define CREATE_LONG_OPTS                                              \
        { "name", required_argument, NULL, OPT_NAME },                \
        { "hostname", required_argument, NULL, OPT_HOSTNAME },        \
        { "env", required_argument, NULL, 'e' },                      \
        { "label", required_argument, NULL, 'l' }

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
        __attribute__((cleanup(create_opts_done))) struct create_opts co = { 0 };
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
        { "workdir", required_argument, NULL, 'w' }

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
                { "help", no_argument, NULL, 'h' },
                {},
        };
        __attribute__((cleanup(exec_opts_done))) struct exec_opts eo = { 0 };
        struct pbox_error err = PBOX_ERROR_INIT;
        int c;
        while ((c = getopt_long(argc, argv, "+:ie:w:h", opts, NULL)) != -1) {
                int r = exec_opt(&eo, c, &err);
                if (r < 0)
                        return usage_error(cmd, "%s", err.message);
                if (r > 0)
                        continue;
                if (c == 'h')
                        return show_help(cmd);
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

static int cmd_run(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                CREATE_LONG_OPTS,
                EXEC_LONG_OPTS,
                { "rm", no_argument, NULL, OPT_RM },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        __attribute__((cleanup(create_opts_done))) struct create_opts co = { 0 };
        __attribute__((cleanup(exec_opts_done))) struct exec_opts eo = { 0 };
        struct pbox_error err = PBOX_ERROR_INIT;
        bool rm = false;
        int c;
        while ((c = getopt_long(argc, argv, "+:e:l:iw:h", opts, NULL)) != -1) {
                /* -e belongs to the sandbox (create); -i and -w to the exec. */
                int r = create_opt(&co, c, &err);
                if (r == 0 && c != 'e')
                        r = exec_opt(&eo, c, &err);
                if (r < 0)
                        return usage_error(cmd, "%s", err.message);
                if (r > 0)
                        continue;
                if (c == OPT_RM)
                        rm = true;
                else if (c == 'h')
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
        if (cli_client(cli, &err) < 0)
                return fail(cmd, &err);

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

        int status = 0;
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
        "  -l, --label KEY=VALUE    label (repeatable)\n"

const struct pbox_cmd pbox_cmds[] = {
        { "create", "[OPTIONS] IMAGE", "Create a sandbox from IMAGE (NAME[:TAG] or ID) and print its ID.",
          NULL, CREATE_HELP, cmd_create, PBOX_EXIT_FAILURE },
        { "exec", "[OPTIONS] ID [--] CMD [ARG...]",
          "Run a command in a running sandbox.",
          "Its standard output and error are written to pbox's own, and pbox exits\n"
          "with its status (128+N when it was killed by signal N, 125 when pbox\n"
          "itself failed). Options after the ID belong to the command.",
          "  -i, --interactive        send pbox's standard input (read to EOF, at most 1 MiB)\n"
          "  -e, --env KEY=VALUE      environment variable for the command (repeatable;\n"
          "                           a bare KEY takes its value from pbox's environment)\n"
          "  -w, --workdir DIR        working directory inside the sandbox (absolute)\n",
          cmd_exec, PBOX_EXIT_EXEC_FAILURE },
        { "run", "[OPTIONS] IMAGE [--] CMD [ARG...]",
          "Create a sandbox from IMAGE and run a command in it.",
          "Like create followed by exec; exit status as for exec. -e sets the\n"
          "sandbox's environment, -i and -w apply to the command.",
          "      --rm                 remove the sandbox afterwards (also on failure)\n" CREATE_HELP
          "  -i, --interactive        send pbox's standard input (read to EOF, at most 1 MiB)\n"
          "  -w, --workdir DIR        working directory inside the sandbox (absolute)\n",
          cmd_run, PBOX_EXIT_EXEC_FAILURE },
        { "ls", "[OPTIONS]", "List the sandboxes.", NULL,
          "      --json               print the sandbox records as a JSON array\n"
          "  -q, --quiet              print only the IDs\n",
          cmd_ls, PBOX_EXIT_FAILURE },
        { "inspect", "ID", "Print the record of a sandbox (ID or name) as JSON.", NULL, NULL, cmd_inspect,
          PBOX_EXIT_FAILURE },
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
};

const size_t pbox_cmds_count = ARRAY_SIZE(pbox_cmds);
