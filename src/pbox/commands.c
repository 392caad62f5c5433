/* commands.c — the subcommands of the pbox CLI: option parsing (one
 * getopt_long loop, pbox_cmd_options, with a handler per option set:
 * create, exec, limits, signal), request bodies, and the output (tables,
 * JSON, the raw stdout/stderr bytes of exec).  Text that comes from the
 * server and goes to a terminal (names, messages) is sanitised; command
 * output is not.
 *
 * Resource limits: the sandbox set (--memory, --pids, --cpus, ..., --disk;
 * create, run, limits) and the exec set (--cpu-limit, --memory, --pids) are
 * tables of limit_spec, checked for form and the API's ranges before any
 * request; `pbox limits` shows and changes them, `pbox health` says which
 * controllers the host has.
 *
 * Execs: without -i a sync exec (the output comes with the result); with
 * -i an async exec with a streamed stdin, followed through its event
 * stream while a second thread POSTs pbox's standard input in chunks
 * (logs and attach follow an existing exec the same way); one-shot runs
 * are one POST /v1/run.  exec_result_status turns a result into pbox's
 * exit status (124 timeout and cpu_limit, 128+N signals, 125 pbox's own
 * failures). */
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
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))

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
        OPT_STATS,
        OPT_CPU_LIMIT,
        OPT_MEMORY,
        OPT_SWAP,
        OPT_PIDS,
        OPT_CPUS,
        OPT_CPU_WEIGHT,
        OPT_DISK,
        OPT_IO_READ_BPS,
        OPT_IO_WRITE_BPS,
        OPT_IO_READ_IOPS,
        OPT_IO_WRITE_IOPS,
        OPT_MAX_SANDBOXES,
        OPT_MAX_EXECS,
        OPT_IMAGE,
};

/* ------------------------------------------------------------- helpers */

int pbox_cmd_fail(const struct pbox_cmd *cmd, const struct pbox_error *err)
{
        fprintf(stderr, "pbox: %s\n", err->message);
        return cmd->fail_status;
}

int pbox_cmd_usage(const struct pbox_cmd *cmd, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "pbox: %s: ", cmd->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nUsage: pbox %s %s\nTry 'pbox %s --help' for more information.\n", cmd->name,
                cmd->synopsis, cmd->name);
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
                return pbox_cmd_usage(cmd, "option '%s' needs an argument", name);
        return pbox_cmd_usage(cmd, "unknown option '%s'", name);
}

void pbox_cmd_help(const struct pbox_cmd *cmd, FILE *f)
{
        fprintf(f, "Usage: pbox %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
        if (cmd->description)
                fprintf(f, "%s\n", cmd->description);
        fprintf(f, "\nOptions:\n%s  -h, --help               show this help\n", cmd->options ? cmd->options : "");
}

int pbox_cmd_options(const struct pbox_cmd *cmd, int argc, char **argv, const char *shortopts,
                     const struct option *opts, pbox_opt_fn fn, void *ctx)
{
        char made[64] = "+:";
        if (!shortopts || !*shortopts) {
                bool anywhere = shortopts != NULL;
                size_t n = 2;
                for (const struct option *o = opts; o->name; o++) {
                        if (o->flag || o->val <= 0 || o->val > 127 || !isalnum(o->val) || strchr(made, o->val))
                                continue;
                        if (n + 3 > sizeof made)
                                abort();
                        made[n++] = (char) o->val;
                        if (o->has_arg == required_argument)
                                made[n++] = ':';
                        made[n] = '\0';
                }
                shortopts = anywhere ? made + 1 : made;     /* without the '+' */
        }
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
                if (c == 'h') {
                        pbox_cmd_help(cmd, stdout);
                        return 0;
                }
                if (c == ':' || c == '?' || !fn)
                        return option_error(cmd, c, argv);
                struct pbox_error err = PBOX_ERROR_INIT;
                int r = fn(ctx, c, optarg, &err);
                if (r < 0)
                        return pbox_cmd_usage(cmd, "%s", err.message);
                if (r == PBOX_OPT_OTHER)
                        return option_error(cmd, c, argv);
        }
        return PBOX_OPTS_DONE;
}

int pbox_cli_connect(struct pbox_cli *cli, bool need_token, struct pbox_error *err)
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
        if (need_token && (r = pbox_token_load(cli->token_file_opt, &cli->client.token, err)) < 0) {
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

int pbox_parse_size(const char *s, int64_t *ret)
{
        size_t digits = strspn(s, "0123456789");
        if (digits == 0)
                return -EINVAL;
        if (digits > 19)
                return -ERANGE;
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno)
                return -ERANGE;
        const char *u = s + digits;
        int shift = 0;
        switch (*u) {
        case '\0': break;
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
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
        if (v > INT64_MAX >> shift)
                return -ERANGE;
        *ret = (int64_t) v << shift;
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

/* "256 MiB" when exact in its unit, else "12.3 MiB"; "512 B". */
static char *format_bytes(int64_t v)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        if (v < 0)
                return util_xstrdup("-");
        size_t u = 0;
        while (u + 1 < ARRAY_SIZE(units) && v >= INT64_C(1) << (10 * (u + 1)))
                u++;
        if (u == 0 || v % (INT64_C(1) << (10 * u)) == 0)
                return util_xasprintf("%" PRId64 " %s", v >> (10 * u), units[u]);
        return util_xasprintf("%.1f %s", (double) v / (double) (INT64_C(1) << (10 * u)), units[u]);
}

static char *format_size(json_t *v)
{
        return json_is_integer(v) ? format_bytes(json_integer_value(v)) : util_xstrdup("-");
}

/* The strings of the array a joined by sep; NULL when there are none. */
static char *join_strings(json_t *a, const char *sep)
{
        char *s = NULL;
        json_t *v;
        size_t i;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v))
                        continue;
                char *tmp = util_xasprintf("%s%s%s", s ? s : "", s ? sep : "", json_string_value(v));
                free(s);
                s = tmp;
        }
        return s;
}

/* GET target and return its array member `key`. */
static int get_list(struct pbox_cli *cli, const char *target, const char *key, json_t **ret_resp,
                    json_t **ret_array, struct pbox_error *err)
{
        int r = pbox_cli_connect(cli, true, err);
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

/* Options that only set a flag: ctx is an array of these, ending with val 0. */
struct flag_opt {
        int val;
        bool *set;
};

static int flag_opts(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        (void) arg;
        (void) err;
        for (struct flag_opt *f = ctx; f->val; f++)
                if (f->val == c) {
                        *f->set = true;
                        return 0;
                }
        return PBOX_OPT_OTHER;
}

#define HELP_OPT { "help", no_argument, NULL, 'h' }

/* The same call for each NAME of argv[optind..] (prefix + NAME escaped +
 * suffix), printing print_key of each answer (the NAME when absent); goes
 * on after a failure.  Returns 0 or cmd->fail_status. */
struct each_call {
        const char *method;
        const char *prefix;             /* "/v1/sandboxes/" */
        const char *suffix;             /* "/stop", "?force=true", "" */
        json_t *body;                   /* may be NULL */
        int timeout_ms;
        const char *print_key;          /* "id", "removed" */
};

static int call_each(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv,
                     const struct each_call *e)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        int status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *esc = pbox_uri_escape(argv[i]);
                _cleanup_free_ char *target = util_xasprintf("%s%s%s", e->prefix, esc, e->suffix);
                _cleanup_json_ json_t *resp = NULL;
                if (pbox_client_call(&cli->client, e->method, target, e->body, e->timeout_ms, &resp, NULL,
                                     &err) < 0) {
                        status = pbox_cmd_fail(cmd, &err);
                        continue;
                }
                print_field(resp, e->print_key, argv[i]);
        }
        return status;
}

/* Parses the options of a command that has none but --help. */
static int no_options(const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = { HELP_OPT, {} };
        return pbox_cmd_options(cmd, argc, argv, NULL, opts, NULL, NULL);
}

/* --------------------------------------------------------------- images */

static int image_load_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        if (c != 'n')
                return PBOX_OPT_OTHER;
        if (!*arg)
                return pbox_error_set(err, EINVAL, "--name must not be empty");
        *(const char **) ctx = arg;
        return 0;
}

static int cmd_image_load(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "name", required_argument, NULL, 'n' },
                HELP_OPT,
                {},
        };
        const char *name = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, image_load_opt, &name);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 1)
                return pbox_cmd_usage(cmd, "expected exactly one FILE");
        const char *file = argv[optind];

        _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                pbox_error_sys(&err, errno, "cannot open %s", file);
                return pbox_cmd_fail(cmd, &err);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                pbox_error_sys(&err, errno, "cannot stat %s", file);
                return pbox_cmd_fail(cmd, &err);
        }
        if (!S_ISREG(st.st_mode)) {
                pbox_error_set(&err, EINVAL, "%s is not a regular file", file);
                return pbox_cmd_fail(cmd, &err);
        }
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);

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
                return pbox_cmd_fail(cmd, &err);
        print_field(rec, "id", "?");
        return 0;
}

static int cmd_image_ls(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "no-trunc", no_argument, NULL, OPT_NO_TRUNC },
                HELP_OPT,
                {},
        };
        bool json = false, quiet = false, no_trunc = false;
        struct flag_opt flags[] = { { OPT_JSON, &json }, { 'q', &quiet }, { OPT_NO_TRUNC, &no_trunc }, {} };
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind != argc)
                return pbox_cmd_usage(cmd, "unexpected argument '%s'", argv[optind]);

        _cleanup_json_ json_t *resp = NULL;
        json_t *images;
        if (get_list(cli, "/v1/images", "images", &resp, &images, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
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
                _cleanup_free_ char *names = join_strings(json_object_get(rec, "names"), ",");
                _cleanup_free_ char *size = format_size(json_object_get(rec, "size"));
                _cleanup_free_ char *created = format_ago(rec_str(rec, "created"));
                table_add(&t, (const char *const[]) { id, names ? names : "<none>", size, created });
        }
        table_print_free(&t);
        return 0;
}

static int cmd_image_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        int r = no_options(cmd, argc, argv);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected at least one image REF");
        const struct each_call e = { "DELETE", "/v1/images/", "", NULL, PBOX_DEFAULT_TIMEOUT_MS, "removed" };
        return call_each(cli, cmd, argc, argv, &e);
}

/* -------------------------------------------------------------- tenants */

struct tenant_add_opts {
        json_t *body;
        bool json;
};

static int tenant_add_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct tenant_add_opts *o = ctx;
        const char *flag = c == OPT_MAX_SANDBOXES ? "--max-sandboxes" : "--max-execs";
        json_t *images;
        switch (c) {
        case OPT_MAX_SANDBOXES:
        case OPT_MAX_EXECS: {
                char *end = NULL;
                errno = 0;
                unsigned long v = strtoul(arg, &end, 10);
                if (errno || !*arg || *end || !isdigit((unsigned char) *arg) || v > UINT32_MAX)
                        return pbox_error_set(err, EINVAL, "%s needs a number", flag);
                json_object_set_new(o->body, c == OPT_MAX_SANDBOXES ? "max_sandboxes" : "max_execs",
                                    json_integer((json_int_t) v));
                return 0;
        }
        case OPT_IMAGE:
                images = json_object_get(o->body, "images");
                if (!images) {
                        images = json_array();
                        json_object_set_new(o->body, "images", images);
                }
                json_array_append_new(images, json_string(arg));
                return 0;
        case 'j':
                o->json = true;
                return 0;
        default:
                return PBOX_OPT_OTHER;
        }
}

static int cmd_tenant_add(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "max-sandboxes", required_argument, NULL, OPT_MAX_SANDBOXES },
                { "max-execs", required_argument, NULL, OPT_MAX_EXECS },
                { "image", required_argument, NULL, OPT_IMAGE },
                { "json", no_argument, NULL, 'j' },
                HELP_OPT,
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *body = json_object();
        struct tenant_add_opts o = { .body = body };
        int r = pbox_cmd_options(cmd, argc, argv, "+:h", opts, tenant_add_opt, &o);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind + 1 != argc)
                return pbox_cmd_usage(cmd, "expected one tenant NAME");
        if (set_string(body, "name", argv[optind], &err) < 0)
                return pbox_cmd_usage(cmd, "%s", err.message);
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        _cleanup_json_ json_t *resp = NULL;
        if (pbox_client_call(&cli->client, "POST", "/v1/tenants", body, PBOX_DEFAULT_TIMEOUT_MS, &resp, NULL, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        if (o.json)
                return print_json(resp) < 0 ? cmd->fail_status : 0;
        print_field(resp, "token", "");
        return 0;
}

static int cmd_tenant_ls(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                HELP_OPT,
                {},
        };
        bool as_json = false;
        struct flag_opt flags[] = { { 'j', &as_json }, {} };
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, "+:h", opts, flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind != argc)
                return pbox_cmd_usage(cmd, "unexpected argument '%s'", argv[optind]);
        _cleanup_json_ json_t *resp = NULL;
        json_t *list;
        if (get_list(cli, "/v1/tenants", "tenants", &resp, &list, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        if (as_json)
                return print_json(list) < 0 ? cmd->fail_status : 0;
        struct table t = { .ncols = 4 };
        table_add(&t, (const char *const[]) { "NAME", "MAX SANDBOXES", "MAX EXECS", "IMAGES" });
        size_t i;
        json_t *tn;
        json_array_foreach(list, i, tn) {
                json_int_t ms = json_integer_value(json_object_get(tn, "max_sandboxes"));
                json_int_t me = json_integer_value(json_object_get(tn, "max_execs"));
                json_t *imgs = json_object_get(tn, "images");
                char msb[24], mex[24];
                snprintf(msb, sizeof msb, "%lld", (long long) ms);
                snprintf(mex, sizeof mex, "%lld", (long long) me);
                _cleanup_free_ char *images = json_is_array(imgs) ? join_strings(imgs, ",") : util_xstrdup("all");
                table_add(&t, (const char *const[]) { rec_str(tn, "name"), ms ? msb : "-", me ? mex : "-",
                                                       images ? images : "" });
        }
        table_print_free(&t);
        return 0;
}

static int cmd_tenant_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        int r = no_options(cmd, argc, argv);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected at least one tenant NAME");
        const struct each_call e = { "DELETE", "/v1/tenants/", "", NULL, PBOX_DEFAULT_TIMEOUT_MS, "removed" };
        return call_each(cli, cmd, argc, argv, &e);
}

/* ------------------------------------------------------------ sandboxes */

/* Resource limits given on the command line (docs: pbox(1), pboxd(8)).
 * The ranges are the API's, checked here too so that a typo is reported
 * before any request; maximums set by the operator are the server's to
 * check (422). */
enum limit_kind {
        LIMIT_SIZE,     /* bytes: 256M, 1G */
        LIMIT_COUNT,    /* a whole number */
        LIMIT_CPUS,     /* a number of CPUs, up to 3 decimals: 0.5 */
        LIMIT_MS,       /* milliseconds; a unit (ms, s, m, h) may follow */
};

struct limit_spec {
        int opt;                /* OPT_* */
        const char *flag;       /* "--memory" */
        const char *key;        /* the API's "memory_bytes" */
        enum limit_kind kind;
        int64_t min, max;       /* max 0: none (cpus in thousandths) */
};

#define MAX_PIDS 4194304
static const struct limit_spec sandbox_limit_specs[] = {
        { OPT_MEMORY, "--memory", "memory_bytes", LIMIT_SIZE, 4 << 20, 0 },
        { OPT_SWAP, "--swap", "swap_bytes", LIMIT_SIZE, 0, 0 },
        { OPT_PIDS, "--pids", "pids", LIMIT_COUNT, 1, MAX_PIDS },
        { OPT_CPUS, "--cpus", "cpus", LIMIT_CPUS, 10, 0 },
        { OPT_CPU_WEIGHT, "--cpu-weight", "cpu_weight", LIMIT_COUNT, 1, 10000 },
        { OPT_DISK, "--disk", "disk_bytes", LIMIT_SIZE, 1 << 20, 0 },
        { OPT_IO_READ_BPS, "--io-read-bps", "io_read_bps", LIMIT_SIZE, 1, 0 },
        { OPT_IO_WRITE_BPS, "--io-write-bps", "io_write_bps", LIMIT_SIZE, 1, 0 },
        { OPT_IO_READ_IOPS, "--io-read-iops", "io_read_iops", LIMIT_COUNT, 1, 0 },
        { OPT_IO_WRITE_IOPS, "--io-write-iops", "io_write_iops", LIMIT_COUNT, 1, 0 },
};

/* Per exec (pbox exec; pbox run has only --cpu-limit, its --memory and
 * --pids are the sandbox's). */
static const struct limit_spec exec_limit_specs[] = {
        { OPT_CPU_LIMIT, "--cpu-limit", "cpu_limit_ms", LIMIT_MS, 1, 0 },
        { OPT_MEMORY, "--memory", "memory_bytes", LIMIT_SIZE, 4 << 20, 0 },
        { OPT_PIDS, "--pids", "pids", LIMIT_COUNT, 1, MAX_PIDS },
};

#define SANDBOX_LIMIT_LONG_OPTS                                               \
        { "memory", required_argument, NULL, OPT_MEMORY },                    \
        { "swap", required_argument, NULL, OPT_SWAP },                        \
        { "pids", required_argument, NULL, OPT_PIDS },                        \
        { "cpus", required_argument, NULL, OPT_CPUS },                        \
        { "cpu-weight", required_argument, NULL, OPT_CPU_WEIGHT },            \
        { "disk", required_argument, NULL, OPT_DISK },                        \
        { "io-read-bps", required_argument, NULL, OPT_IO_READ_BPS },          \
        { "io-write-bps", required_argument, NULL, OPT_IO_WRITE_BPS },        \
        { "io-read-iops", required_argument, NULL, OPT_IO_READ_IOPS },        \
        { "io-write-iops", required_argument, NULL, OPT_IO_WRITE_IOPS }

/* "0.5" -> 500 (thousandths), at most 3 decimals. */
static int parse_cpus(const char *s, int64_t *ret_milli)
{
        size_t whole = strspn(s, "0123456789");
        const char *p = s + whole;
        size_t frac = 0;
        if (*p == '.')
                frac = strspn(p + 1, "0123456789");
        if ((whole == 0 && frac == 0) || whole > 7 || frac > 3 || (*p == '.' ? p[1 + frac] : *p))
                return -EINVAL;
        int64_t v = whole ? strtoll(s, NULL, 10) * 1000 : 0;
        int64_t scale = 100;
        for (size_t i = 0; i < frac; i++, scale /= 10)
                v += (p[1 + i] - '0') * scale;
        *ret_milli = v;
        return 0;
}

/* "1500", "1500ms", "2s": milliseconds (a bare number is milliseconds). */
static int parse_ms(const char *s, int64_t *ret)
{
        size_t digits = strspn(s, "0123456789");
        if (digits > 0 && !s[digits]) {
                if (digits > 10 || strtoll(s, NULL, 10) > INT32_MAX)
                        return -ERANGE;
                *ret = strtoll(s, NULL, 10);
                return 0;
        }
        return pbox_parse_duration(s, ret);
}

/* One limit's value as JSON: "none" (or "max") is null, no limit. */
static int limit_value(const struct limit_spec *l, const char *arg, json_t **ret, struct pbox_error *err)
{
        if (!strcmp(arg, "none") || !strcmp(arg, "max")) {
                *ret = json_null();
                return 0;
        }
        int64_t v = 0;
        int r;
        const char *what;
        switch (l->kind) {
        case LIMIT_SIZE:
                r = pbox_parse_size(arg, &v);
                what = "bytes, or with K, M, G or T: 256M, 1G";
                break;
        case LIMIT_COUNT:
                r = strspn(arg, "0123456789") == strlen(arg) && *arg && strlen(arg) <= 18 ? 0 : -EINVAL;
                if (r == 0)
                        v = strtoll(arg, NULL, 10);
                what = "a whole number";
                break;
        case LIMIT_CPUS:
                r = parse_cpus(arg, &v);
                what = "a number of CPUs with at most 3 decimals: 0.5, 2";
                break;
        default:
                r = parse_ms(arg, &v);
                what = "milliseconds, or with a unit: 1500, 1500ms, 2s";
                break;
        }
        if (r < 0)
                return pbox_error_set(err, EINVAL, "%s: invalid value '%s' (%s; or none)", l->flag, arg, what);
        if (v < l->min || (l->max && v > l->max)) {
                if (l->kind == LIMIT_SIZE && l->min >= 1 << 20)
                        return pbox_error_set(err, ERANGE, "%s: '%s' is below the minimum of %" PRId64 " MiB",
                                              l->flag, arg, l->min >> 20);
                if (l->kind == LIMIT_CPUS)
                        return pbox_error_set(err, ERANGE, "%s: '%s' is below the minimum of 0.01", l->flag, arg);
                if (l->max)
                        return pbox_error_set(err, ERANGE, "%s: '%s' is not within %" PRId64 " to %" PRId64,
                                              l->flag, arg, l->min, l->max);
                return pbox_error_set(err, ERANGE, "%s: '%s' is below the minimum of %" PRId64, l->flag, arg,
                                      l->min);
        }
        *ret = l->kind == LIMIT_CPUS ? (v % 1000 ? json_real((double) v / 1000.0) : json_integer(v / 1000))
                                     : json_integer(v);
        return 0;
}

/* If c is the option of one of specs, sets its key in *obj (made on first
 * use): 0; PBOX_OPT_OTHER when it is none of them; negative on a bad value. */
static int limit_opt(const struct limit_spec *specs, size_t n, json_t **obj, int c, const char *arg,
                     struct pbox_error *err)
{
        for (size_t i = 0; i < n; i++) {
                if (specs[i].opt != c)
                        continue;
                json_t *v;
                int r = limit_value(&specs[i], arg, &v, err);
                if (r < 0)
                        return r;
                if (!*obj)
                        *obj = json_object();
                json_object_set_new(*obj, specs[i].key, v);
                return 0;
        }
        return PBOX_OPT_OTHER;
}

struct create_opts {
        const char *name;
        const char *hostname;
        json_t *env;
        json_t *labels;
        json_t *limits;                 /* "limits" of the request, or NULL */
        int64_t ttl_ms;                 /* -1: the server's default */
        int64_t idle_ms;
};

#define CREATE_OPTS_INIT { .ttl_ms = -1, .idle_ms = -1 }

static void create_opts_done(struct create_opts *o)
{
        json_decref(o->env);
        json_decref(o->labels);
        json_decref(o->limits);
}

/* Options of an exec (pbox exec, pbox run). */
struct exec_opts {
        bool interactive;
        bool detach;
        bool stats;
        const char *workdir;
        const char *user;
        const char *stop_signal;
        json_t *env;
        json_t *limits;                 /* cpu_limit_ms, memory_bytes, pids: top-level fields of the body */
        int64_t timeout_ms;             /* -1: the server's default */
        int64_t grace_ms;
        int64_t max_output;
};

#define EXEC_OPTS_INIT { .timeout_ms = -1, .grace_ms = -1, .max_output = -1 }

static void exec_opts_done(struct exec_opts *o)
{
        json_decref(o->env);
        json_decref(o->limits);
}

/* Seconds for the API from a duration in ms, rounded up. */
static json_t *seconds_json(int64_t ms)
{
        return json_integer((ms + 999) / 1000);
}

/* The record's "unenforced_limits" (limits accepted although this host
 * cannot enforce them: allow_unenforced_limits), as a warning. */
static void warn_unenforced(json_t *rec)
{
        json_t *u = json_object_get(rec, "unenforced_limits"), *k;
        if (!json_is_array(u) || json_array_size(u) == 0)
                return;
        fprintf(stderr, "pbox: warning: limits not enforced on this host:");
        size_t i;
        json_array_foreach(u, i, k) {
                _cleanup_free_ char *s = pbox_sanitize(json_is_string(k) ? json_string_value(k) : "?");
                fprintf(stderr, " %s", s);
        }
        fprintf(stderr, "\n");
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
        if (o->limits)
                json_object_set(body, "limits", o->limits);

        _cleanup_json_ json_t *rec = NULL;
        r = pbox_client_call(&cli->client, "POST", "/v1/sandboxes", body, PBOX_DEFAULT_TIMEOUT_MS, &rec,
                             NULL, err);
        if (r < 0)
                return r;
        const char *id = rec_str(rec, "id");
        if (!*id || strlen(id) > 128 || strspn(id, "0123456789abcdefABCDEF") != strlen(id))
                return pbox_error_set(err, EPROTO, "bad response from %s: no valid sandbox id",
                                      cli->client.url.text);
        warn_unenforced(rec);
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

/* A limit's value for people: "256 MiB", "64", "0.5", "none". */
static char *format_limit(const struct limit_spec *l, json_t *v)
{
        if (json_is_null(v))
                return util_xstrdup("none");
        if (!json_is_number(v))
                return util_xstrdup("-");
        if (l->kind == LIMIT_CPUS) {
                char *s = util_xasprintf("%.3f", json_number_value(v));
                for (size_t n = strlen(s); n > 1 && (s[n - 1] == '0' || s[n - 1] == '.'); n--) {
                        bool dot = s[n - 1] == '.';
                        s[n - 1] = '\0';
                        if (dot)
                                break;
                }
                return s;
        }
        if (!json_is_integer(v))
                return util_xstrdup("-");
        if (l->kind == LIMIT_SIZE)
                return format_bytes(json_integer_value(v));
        if (l->kind == LIMIT_MS) {
                char buf[32];
                format_ms(json_integer_value(v), buf, sizeof buf);
                return util_xstrdup(buf);
        }
        return util_xasprintf("%" PRId64, (int64_t) json_integer_value(v));
}

/* "12.3 MiB", "unknown" (null: the kernel does not tell), NULL when absent. */
static char *usage_bytes(json_t *u, const char *key)
{
        json_t *v = json_object_get(u, key);
        return !v ? NULL : json_is_integer(v) ? format_bytes(json_integer_value(v)) : util_xstrdup("unknown");
}

static char *usage_count(json_t *u, const char *key)
{
        json_t *v = json_object_get(u, key);
        return !v ? NULL : json_is_integer(v) ? util_xasprintf("%" PRId64, (int64_t) json_integer_value(v))
                                              : util_xstrdup("unknown");
}

/* "1.25s (user 1s, system 0.25s)" from cpu_ms, cpu_user_ms, cpu_system_ms of obj. */
static char *usage_cpu(json_t *obj)
{
        json_t *t = json_object_get(obj, "cpu_ms"), *us = json_object_get(obj, "cpu_user_ms"),
               *sy = json_object_get(obj, "cpu_system_ms");
        if (!json_is_integer(t))
                return NULL;
        char a[32], b[32], c[32];
        format_ms(json_integer_value(t), a, sizeof a);
        if (!json_is_integer(us) || !json_is_integer(sy))
                return util_xstrdup(a);
        format_ms(json_integer_value(us), b, sizeof b);
        format_ms(json_integer_value(sy), c, sizeof c);
        return util_xasprintf("%s (user %s, system %s)", a, b, c);
}

/* "N (peak M)" and the like: value, and in parentheses a second figure. */
static char *with_peak(char *value, char *peak)
{
        if (value && peak && !strcmp(value, "unknown") && !strcmp(peak, "unknown")) {
                free(peak);
                return value;
        }
        char *s = !value ? (peak ? util_xasprintf("peak %s", peak) : NULL)
                         : peak ? util_xasprintf("%s (peak %s)", value, peak) : util_xstrdup(value);
        free(value);
        free(peak);
        return s;
}

/* --stats: one line on standard error about how the command ended and
 * what it used. */
static void print_stats(json_t *res, const char *pre)
{
        json_t *u = json_object_get(res, "usage");
        if (!json_is_object(u))
                u = res;        /* a pboxd without usage objects: the flat cpu_ms */
        json_t *w = json_object_get(res, "wall_ms"), *code = json_object_get(res, "exit_code"),
               *sig = json_object_get(res, "signal");
        char wall[32] = "?", how[48] = "";
        if (json_is_integer(w))
                format_ms(json_integer_value(w), wall, sizeof wall);
        if (json_is_integer(sig) && json_integer_value(sig) > 0 && json_integer_value(sig) < 128) {
                char name[32];
                signal_name((int) json_integer_value(sig), NULL, name, sizeof name);
                snprintf(how, sizeof how, " (%s)", name);
        } else if (json_is_integer(code)) {
                snprintf(how, sizeof how, " (exit code %" PRId64 ")", (int64_t) json_integer_value(code));
        }
        _cleanup_free_ char *status = pbox_sanitize(*rec_str(res, "status") ? rec_str(res, "status") : "?");
        fprintf(stderr, "pbox: %s%s%s, wall %s", pre, status, how, wall);
        /* Figures this host cannot measure (null) are left out. */
        struct {
                const char *label;
                char *value;
        } f[] = {
                { "cpu", usage_cpu(u) },
                { "memory peak", usage_bytes(u, "memory_peak_bytes") },
                { "pids peak", usage_count(u, "pids_peak") },
                { "OOM kills", usage_count(u, "oom_kills") },
                { "disk", usage_bytes(u, "disk_bytes") },
        };
        for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
                if (f[i].value && strcmp(f[i].value, "unknown") != 0 &&
                    (strcmp(f[i].label, "OOM kills") != 0 || strcmp(f[i].value, "0") != 0))
                        fprintf(stderr, ", %s %s", f[i].label, f[i].value);
                free(f[i].value);
        }
        fputc('\n', stderr);
}

/* The exec limit `key` of a result, for people ("64 MiB"); NULL when it
 * has none (the sandbox's limits still apply). */
static char *exec_limit_text(json_t *res, const char *key)
{
        json_t *v = json_object_get(json_object_get(res, "limits"), key);
        if (!json_is_integer(v))
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(exec_limit_specs); i++)
                if (!strcmp(exec_limit_specs[i].key, key))
                        return format_limit(&exec_limit_specs[i], v);
        return NULL;
}

/* The exit status pbox ends with for an exec result (a sync answer, the
 * exit event of a stream, a step of a one-shot run), printing pbox's own
 * message about it, if any, on standard error:
 *   ok / exit     the command's exit code
 *   signaled      128 + the signal
 *   timeout       124 (like timeout(1)), "timed out after X (ended by SIG...)"
 *   output_limit  128 + the signal that ended it (137 for SIGKILL)
 *   killed        128 + the signal that ended it
 *   cpu_limit     124, like timeout: "reached its CPU time limit of X"
 *   oom           as exit / signaled (137 for the OOM killer's SIGKILL),
 *                 "ran out of memory"
 *   pids_limit    as exit / signaled, "hit its process limit"
 *   failed        126 / 127 (cannot execute / not found), with the reason
 *   lost          125 (pboxd restarted while it ran: the outcome is unknown)
 * o (may be NULL) gives what was asked, for the messages (with --stats, a
 * line about what the command used comes first); step names a step of a
 * one-shot run. */
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

        if (o && o->stats)
                print_stats(res, pre);
        if (*msg) {
                _cleanup_free_ char *s = pbox_sanitize(msg);
                fprintf(stderr, "pbox: %s%s\n", pre, s);
        }
        json_t *usage = json_object_get(res, "usage");
        if (!strcmp(status, "cpu_limit")) {
                _cleanup_free_ char *lim = exec_limit_text(res, "cpu_limit_ms");
                json_t *cpu = json_object_get(json_is_object(usage) ? usage : res, "cpu_ms");
                char used[32] = "";
                if (json_is_integer(cpu)) {
                        char t[24];
                        format_ms(json_integer_value(cpu), t, sizeof t);
                        snprintf(used, sizeof used, " after %s", t);
                }
                fprintf(stderr, "pbox: %sthe command reached its CPU time limit%s%s%s: killed (%s)\n", pre,
                        lim ? " of " : "", lim ? lim : "", used, ended);
                return PBOX_EXIT_TIMEOUT;
        }
        if (!strcmp(status, "oom")) {
                _cleanup_free_ char *lim = exec_limit_text(res, "memory_bytes");
                _cleanup_free_ char *peak = usage_bytes(usage, "memory_peak_bytes");
                _cleanup_free_ char *detail = lim && peak ? util_xasprintf(" (limit %s, peak %s)", lim, peak)
                        : lim ? util_xasprintf(" (limit %s)", lim) : peak ? util_xasprintf(" (peak %s)", peak)
                        : util_xstrdup("");
                fprintf(stderr, "pbox: %sthe command ran out of memory%s: the kernel's OOM killer ended it\n", pre,
                        detail);
        }
        if (!strcmp(status, "pids_limit")) {
                _cleanup_free_ char *lim = exec_limit_text(res, "pids");
                fprintf(stderr, "pbox: %sthe command hit its process limit%s%s%s: a fork was refused\n", pre,
                        lim ? " (" : "", lim ? lim : "", lim ? ")" : "");
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
        if (o->limits)
                json_object_update(body, o->limits);
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
        { "idle-timeout", required_argument, NULL, OPT_IDLE },        \
        SANDBOX_LIMIT_LONG_OPTS

static int duration_arg(const char *opt, const char *arg, int64_t *ret_ms, struct pbox_error *err)
{
        if (pbox_parse_duration(arg, ret_ms) < 0)
                return pbox_error_set(err, EINVAL, "%s: invalid duration '%s' (examples: 500ms, 10s, 1m, 2h)", opt, arg);
        return 0;
}

/* An option of the create set (pbox_opt_fn; ctx: struct create_opts). */
static int create_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct create_opts *o = ctx;
        switch (c) {
        case OPT_NAME:
                o->name = arg;
                return 0;
        case OPT_HOSTNAME:
                o->hostname = arg;
                return 0;
        case 'e':
                if (!o->env)
                        o->env = json_object();
                return kv_add(o->env, arg, true, "--env", err);
        case 'l':
                if (!o->labels)
                        o->labels = json_object();
                return kv_add(o->labels, arg, false, "--label", err);
        case OPT_TTL:
                return duration_arg("--ttl", arg, &o->ttl_ms, err);
        case OPT_IDLE:
                return duration_arg("--idle-timeout", arg, &o->idle_ms, err);
        default:
                return limit_opt(sandbox_limit_specs, ARRAY_SIZE(sandbox_limit_specs), &o->limits, c, arg, err);
        }
}

static int cmd_create(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                CREATE_LONG_OPTS,
                HELP_OPT,
                {},
        };
        __attribute__((cleanup(create_opts_done))) struct create_opts co = CREATE_OPTS_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, PBOX_OPTS_ANYWHERE, opts, create_opt, &co);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 1)
                return pbox_cmd_usage(cmd, "expected exactly one IMAGE");
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        _cleanup_free_ char *id = NULL;
        if (create_sandbox(cli, argv[optind], &co, &id, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
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
        { "max-output", required_argument, NULL, OPT_MAX_OUTPUT },    \
        { "cpu-limit", required_argument, NULL, OPT_CPU_LIMIT },      \
        { "stats", no_argument, NULL, OPT_STATS }

/* An option of the exec set (pbox_opt_fn; ctx: struct exec_opts).  -e,
 * --memory and --pids are pbox exec's only: pbox run gives them to the
 * sandbox before this sees them. */
static int exec_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct exec_opts *o = ctx;
        switch (c) {
        case 'i':
                o->interactive = true;
                return 0;
        case OPT_STATS:
                o->stats = true;
                return 0;
        case 'w':
                if (arg[0] != '/')
                        return pbox_error_set(err, EINVAL, "--workdir must be an absolute path");
                o->workdir = arg;
                return 0;
        case 'u': {
                /* UID or UID:GID, numeric: inside the sandbox, names mean nothing here. */
                size_t n = strspn(arg, "0123456789");
                if (n == 0 || n > 10 || (arg[n] && (arg[n] != ':' || !arg[n + 1] ||
                                                    strspn(arg + n + 1, "0123456789") != strlen(arg + n + 1) ||
                                                    strlen(arg + n + 1) > 10)))
                        return pbox_error_set(err, EINVAL, "--user must be UID or UID:GID (numbers inside the sandbox)");
                o->user = arg;
                return 0;
        }
        case OPT_TIMEOUT:
                return duration_arg("--timeout", arg, &o->timeout_ms, err);
        case OPT_GRACE:
                return duration_arg("--grace", arg, &o->grace_ms, err);
        case OPT_SIGNAL:
                if (!*arg || strlen(arg) > 16)
                        return pbox_error_set(err, EINVAL, "invalid signal '%s'", arg);
                o->stop_signal = arg;
                return 0;
        case OPT_MAX_OUTPUT:
                if (pbox_parse_size(arg, &o->max_output) < 0)
                        return pbox_error_set(err, EINVAL, "--max-output: invalid size '%s' (examples: 4096, 64K, 1M)",
                                              arg);
                return 0;
        case 'e':
                if (!o->env)
                        o->env = json_object();
                return kv_add(o->env, arg, true, "--env", err);
        default:
                return limit_opt(exec_limit_specs, ARRAY_SIZE(exec_limit_specs), &o->limits, c, arg, err);
        }
}

static int exec_cmd_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct exec_opts *o = ctx;
        if (c != 'd')
                return exec_opt(ctx, c, arg, err);
        o->detach = true;
        return 0;
}

static int cmd_exec(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                EXEC_LONG_OPTS,
                { "env", required_argument, NULL, 'e' },
                { "memory", required_argument, NULL, OPT_MEMORY },
                { "pids", required_argument, NULL, OPT_PIDS },
                { "detach", no_argument, NULL, 'd' },
                HELP_OPT,
                {},
        };
        __attribute__((cleanup(exec_opts_done))) struct exec_opts eo = EXEC_OPTS_INIT;
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, exec_cmd_opt, &eo);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected a sandbox ID and a command");
        const char *id = argv[optind++];
        if (optind < argc && !strcmp(argv[optind], "--"))
                optind++;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected a command after the sandbox ID");
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        int status;
        if (exec_in(cli, id, argv + optind, &eo, &status, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        return status;
}

/* pbox logs ID EID, pbox attach [-i] ID EID. */
static int follow_command(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv, bool attach)
{
        static const struct option opts[] = {
                { "interactive", no_argument, NULL, 'i' },
                HELP_OPT,
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        bool interactive = false;
        struct flag_opt flags[] = { { 'i', &interactive }, {} };
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts + (attach ? 0 : 1), flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 2)
                return pbox_cmd_usage(cmd, "expected a sandbox ID and an exec ID");
        if (!valid_eid(argv[optind + 1]))
                return pbox_cmd_usage(cmd, "invalid exec id '%s' (16 hex digits)", argv[optind + 1]);
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        int status = 0;
        if (exec_follow(cli, argv[optind], argv[optind + 1], interactive, NULL, &status, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
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

/* -s/--signal and --grace of kill and stop. */
struct signal_opts {
        const char *sig;
        int64_t grace_ms;       /* -1: the server's default */
};

static int signal_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct signal_opts *o = ctx;
        switch (c) {
        case 's':
                if (!*arg || strlen(arg) > 16)
                        return pbox_error_set(err, EINVAL, "invalid signal '%s'", arg);
                o->sig = arg;
                return 0;
        case OPT_GRACE:
                return duration_arg("--grace", arg, &o->grace_ms, err);
        default:
                return PBOX_OPT_OTHER;
        }
}

#define SIGNAL_LONG_OPTS                                              \
        { "signal", required_argument, NULL, 's' },                   \
        { "grace", required_argument, NULL, OPT_GRACE }

/* The body of a kill or stop: NULL when nothing was asked. */
static int signal_body(const struct signal_opts *o, json_t **ret, struct pbox_error *err)
{
        *ret = NULL;
        if (!o->sig && o->grace_ms < 0)
                return 0;
        _cleanup_json_ json_t *body = json_object();
        if (o->sig && set_signal(body, "signal", o->sig, err) < 0)
                return -EINVAL;
        if (o->grace_ms >= 0)
                json_object_set_new(body, "grace_ms", json_integer(o->grace_ms));
        *ret = TAKE_PTR(body);
        return 0;
}

/* A wait for an answer that comes once a grace period is over. */
static int grace_timeout(int64_t grace_ms, int64_t default_grace_ms)
{
        int64_t wait = (grace_ms >= 0 ? grace_ms : default_grace_ms) + PBOX_DEFAULT_TIMEOUT_MS;
        return wait > INT32_MAX ? INT32_MAX : (int) wait;
}

static int cmd_kill(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                SIGNAL_LONG_OPTS,
                HELP_OPT,
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct signal_opts so = { .grace_ms = -1 };
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, signal_opt, &so);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 2)
                return pbox_cmd_usage(cmd, "expected a sandbox ID and an exec ID");
        const char *id = argv[optind], *eid = argv[optind + 1];
        if (!valid_eid(eid))
                return pbox_cmd_usage(cmd, "invalid exec id '%s' (16 hex digits)", eid);
        _cleanup_json_ json_t *body = NULL;
        if (signal_body(&so, &body, &err) < 0)
                return pbox_cmd_usage(cmd, "%s", err.message);
        if (!body)
                body = json_object();
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        /* The server answers once the exec has ended: allow for the grace period. */
        _cleanup_free_ char *target = exec_target(id, eid, "/kill");
        _cleanup_json_ json_t *rec = NULL;
        if (pbox_client_call(&cli->client, "POST", target, body, grace_timeout(so.grace_ms, 60000), &rec, NULL,
                             &err) < 0)
                return pbox_cmd_fail(cmd, &err);
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

static int keepalive_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        return c == OPT_TTL ? duration_arg("--ttl", arg, ctx, err) : PBOX_OPT_OTHER;
}

static int cmd_keepalive(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "ttl", required_argument, NULL, OPT_TTL },
                HELP_OPT,
                {},
        };
        int64_t ttl_ms = -1;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, keepalive_opt, &ttl_ms);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected at least one sandbox ID");
        _cleanup_json_ json_t *body = NULL;
        if (ttl_ms >= 0)
                body = json_pack("{s:o}", "ttl_s", seconds_json(ttl_ms));
        const struct each_call e = { "POST", "/v1/sandboxes/", "/keepalive", body, PBOX_DEFAULT_TIMEOUT_MS, "id" };
        return call_each(cli, cmd, argc, argv, &e);
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
        if (co->limits)
                json_object_set(body, "limits", co->limits);
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

struct run_opts {
        struct create_opts co;
        struct exec_opts eo;
        json_t *files;
        const char *compile;
        int64_t compile_timeout_ms;
        bool rm;
};

static void run_opts_done(struct run_opts *o)
{
        create_opts_done(&o->co);
        exec_opts_done(&o->eo);
}

/* -e and the limits of the sandbox (--memory, --pids, ...) belong to the
 * sandbox (create); the rest of the exec set to the exec. */
static int run_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct run_opts *o = ctx;
        int r = create_opt(&o->co, c, arg, err);
        if (r == PBOX_OPT_OTHER && c != 'e')
                r = exec_opt(&o->eo, c, arg, err);
        if (r != PBOX_OPT_OTHER)
                return r;
        switch (c) {
        case OPT_RM:
                o->rm = true;
                return 0;
        case OPT_FILE:
                return run_file_arg(o->files, arg, err);
        case OPT_COMPILE:
                o->compile = arg;
                return 0;
        case OPT_COMPILE_TIMEOUT:
                return duration_arg("--compile-timeout", arg, &o->compile_timeout_ms, err);
        default:
                return PBOX_OPT_OTHER;
        }
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
                HELP_OPT,
                {},
        };
        _cleanup_json_ json_t *files = json_array();
        __attribute__((cleanup(run_opts_done))) struct run_opts ro = {
                CREATE_OPTS_INIT, EXEC_OPTS_INIT, files, NULL, -1, false,
        };
        struct create_opts *co = &ro.co;
        struct exec_opts *eo = &ro.eo;
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, run_opt, &ro);
        if (r != PBOX_OPTS_DONE)
                return r;
        const char *compile = ro.compile;
        int64_t compile_timeout_ms = ro.compile_timeout_ms;
        bool rm = ro.rm;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected an IMAGE and a command");
        const char *image = argv[optind++];
        if (optind < argc && !strcmp(argv[optind], "--"))
                optind++;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected a command after the IMAGE");
        if (check_argv(argv + optind, &err) < 0)
                return pbox_cmd_usage(cmd, "%s", err.message);
        bool one_shot = json_array_size(files) > 0 || compile;
        if (!one_shot && compile_timeout_ms >= 0)
                return pbox_cmd_usage(cmd, "--compile-timeout needs --compile");
        if (one_shot) {
                const char *bad = co->name ? "--name" : co->hostname ? "--hostname" : co->labels ? "--label"
                                : co->ttl_ms >= 0 ? "--ttl" : co->idle_ms >= 0 ? "--idle-timeout"
                                : eo->workdir ? "--workdir" : eo->stop_signal ? "--signal" : NULL;
                if (bad)
                        return pbox_cmd_usage(cmd, "%s does not apply to a one-shot run (--file, --compile)", bad);
        }
        if (pbox_cli_connect(cli, true, &err) < 0)
                return pbox_cmd_fail(cmd, &err);

        int status = 0;
        if (one_shot) {
                /* The server removes the sandbox whatever happens (--rm is implied). */
                if (run_one_shot(cli, image, argv + optind, co, eo, files, compile, compile_timeout_ms, &status,
                                 &err) < 0)
                        return pbox_cmd_fail(cmd, &err);
                return status;
        }

        /* With --rm an interrupt must not leave the sandbox behind: it aborts
         * the request in flight, then the removal below runs. */
        if (rm)
                run_catch_signals();

        _cleanup_free_ char *id = NULL;
        if (create_sandbox(cli, image, co, &id, &err) < 0) {
                int sig = pbox_client_interrupted;
                if (!sig)
                        return pbox_cmd_fail(cmd, &err);
                /* Interrupted during create: the daemon may have made the
                 * sandbox anyway; without its id only its name finds it. */
                pbox_client_interrupted = 0;
                if (co->name)
                        (void) remove_sandbox(cli, co->name, true, NULL, NULL);
                return run_reraise(sig);
        }

        if (exec_in(cli, id, argv + optind, eo, &status, &err) < 0)
                status = pbox_cmd_fail(cmd, &err);

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
                HELP_OPT,
                {},
        };
        bool json = false, quiet = false;
        struct flag_opt flags[] = { { OPT_JSON, &json }, { 'q', &quiet }, {} };
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind != argc)
                return pbox_cmd_usage(cmd, "unexpected argument '%s'", argv[optind]);

        _cleanup_json_ json_t *resp = NULL;
        json_t *list;
        if (get_list(cli, "/v1/sandboxes", "sandboxes", &resp, &list, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
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

/* GET the record of sandbox id. */
static int get_sandbox(struct pbox_cli *cli, const char *id, json_t **ret, struct pbox_error *err)
{
        int r = pbox_cli_connect(cli, true, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *target = sandbox_target(id, "");
        return pbox_client_call(&cli->client, "GET", target, NULL, PBOX_DEFAULT_TIMEOUT_MS, ret, NULL, err);
}

static int cmd_inspect(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        int r = no_options(cmd, argc, argv);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 1)
                return pbox_cmd_usage(cmd, "expected exactly one sandbox ID");
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *rec = NULL;
        if (get_sandbox(cli, argv[optind], &rec, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        return print_json(rec) < 0 ? cmd->fail_status : 0;
}

/* --------------------------------------------------------------- limits */

static bool is_unenforced(json_t *rec, const char *key)
{
        json_t *u = json_object_get(rec, "unenforced_limits"), *k;
        size_t i;
        json_array_foreach(u, i, k)
                if (json_is_string(k) && !strcmp(json_string_value(k), key))
                        return true;
        return false;
}

/* The limits of a sandbox record as a table (flag names, "(not enforced)"
 * where the host cannot enforce them). */
static void print_limits(json_t *rec)
{
        json_t *limits = json_object_get(rec, "limits");
        struct table t = { .ncols = 2 };
        table_add(&t, (const char *const[]) { "LIMIT", "VALUE" });
        for (size_t i = 0; i < ARRAY_SIZE(sandbox_limit_specs); i++) {
                const struct limit_spec *l = &sandbox_limit_specs[i];
                _cleanup_free_ char *v = format_limit(l, json_object_get(limits, l->key));
                _cleanup_free_ char *cell = is_unenforced(rec, l->key) ? util_xasprintf("%s (not enforced)", v)
                                                                       : util_xstrdup(v);
                table_add(&t, (const char *const[]) { l->flag + 2, cell });
        }
        table_print_free(&t);
}

static void print_usage(json_t *rec)
{
        json_t *u = json_object_get(rec, "usage");
        if (!json_is_object(u)) {
                printf("\nNo usage figures (the sandbox has not run).\n");
                return;
        }
        struct {
                const char *name;
                char *value;
        } rows[] = {
                { "cpu", usage_cpu(u) },
                { "memory", with_peak(usage_bytes(u, "memory_bytes"), usage_bytes(u, "memory_peak_bytes")) },
                { "pids", with_peak(usage_count(u, "pids"), usage_count(u, "pids_peak")) },
                { "oom-kills", usage_count(u, "oom_kills") },
                { "pids-limit-hits", usage_count(u, "pids_limit_hits") },
                { "io-read", usage_bytes(u, "io_read_bytes") },
                { "io-write", usage_bytes(u, "io_write_bytes") },
                { "disk", usage_bytes(u, "disk_bytes") },
        };
        struct table t = { .ncols = 2 };
        table_add(&t, (const char *const[]) { "USAGE", "VALUE" });
        for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
                if (rows[i].value)
                        table_add(&t, (const char *const[]) { rows[i].name, rows[i].value });
                free(rows[i].value);
        }
        printf("\n");
        table_print_free(&t);
}

struct limits_opts {
        json_t *limits;
        bool json;
};

static int limits_opt(void *ctx, int c, const char *arg, struct pbox_error *err)
{
        struct limits_opts *o = ctx;
        if (c == OPT_JSON) {
                o->json = true;
                return 0;
        }
        return limit_opt(sandbox_limit_specs, ARRAY_SIZE(sandbox_limit_specs), &o->limits, c, arg, err);
}

static int cmd_limits(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                SANDBOX_LIMIT_LONG_OPTS,
                { "json", no_argument, NULL, OPT_JSON },
                HELP_OPT,
                {},
        };
        struct limits_opts o = { 0 };
        _cleanup_json_ json_t *owned = NULL;
        /* No "+": options may come after the ID too (pbox limits ID --pids 64). */
        int r = pbox_cmd_options(cmd, argc, argv, ":h", opts, limits_opt, &o);
        owned = o.limits;
        if (r != PBOX_OPTS_DONE)
                return r;
        if (argc - optind != 1)
                return pbox_cmd_usage(cmd, "expected exactly one sandbox ID");
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *rec = NULL;
        if (!o.limits) {
                r = get_sandbox(cli, argv[optind], &rec, &err);
        } else if ((r = pbox_cli_connect(cli, true, &err)) >= 0) {
                _cleanup_free_ char *target = sandbox_target(argv[optind], "/limits");
                r = pbox_client_call(&cli->client, "POST", target, o.limits, PBOX_DEFAULT_TIMEOUT_MS, &rec, NULL,
                                     &err);
        }
        if (r < 0)
                return pbox_cmd_fail(cmd, &err);
        if (!json_is_object(json_object_get(rec, "limits"))) {
                pbox_error_set(&err, EPROTO, "bad response from %s: the sandbox record has no \"limits\" (a pboxd "
                               "without resource limits?)", cli->client.url.text);
                return pbox_cmd_fail(cmd, &err);
        }
        if (o.json) {
                _cleanup_json_ json_t *out = json_object();
                const char *keys[] = { "id", "state", "limits", "unenforced_limits", "usage" };
                for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                        if (json_object_get(rec, keys[i]))
                                json_object_set(out, keys[i], json_object_get(rec, keys[i]));
                return print_json(out) < 0 ? cmd->fail_status : 0;
        }
        warn_unenforced(rec);
        print_limits(rec);
        if (!o.limits)
                print_usage(rec);
        return 0;
}

/* --------------------------------------------------------------- health */

static const char *yes_no(json_t *v)
{
        return json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "unknown";
}

static int cmd_health(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                HELP_OPT,
                {},
        };
        bool json = false;
        struct flag_opt flags[] = { { OPT_JSON, &json }, {} };
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind != argc)
                return pbox_cmd_usage(cmd, "unexpected argument '%s'", argv[optind]);
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_json_ json_t *h = NULL;
        /* /healthz needs no token, and pboxd would not pass one on. */
        if (pbox_cli_connect(cli, false, &err) < 0 ||
            pbox_client_call(&cli->client, "GET", "/healthz", NULL, PBOX_DEFAULT_TIMEOUT_MS, &h, NULL, &err) < 0)
                return pbox_cmd_fail(cmd, &err);
        const char *status = rec_str(h, "status");
        if (json) {
                if (print_json(h) < 0)
                        return cmd->fail_status;
                return strcmp(status, "ok") ? cmd->fail_status : 0;
        }
        json_t *cg = json_object_get(h, "cgroup");
        json_t *enforced = json_object_get(h, "limits_enforced");
        json_t *running = json_object_get(h, "sandboxes_running");
        _cleanup_free_ char *enabled = json_object_get(cg, "enabled") ? join_strings(json_object_get(cg, "enabled"), " ")
                                                                      : util_xstrdup(rec_str(cg, "controllers"));
        _cleanup_free_ char *missing = join_strings(json_object_get(cg, "missing"), " ");
        _cleanup_free_ char *running_s = json_is_integer(running)
                ? util_xasprintf("%" PRId64 " running", (int64_t) json_integer_value(running)) : util_xstrdup("-");
        const char *path = rec_str(cg, "path");
        _cleanup_free_ char *cgroup = util_xasprintf("%s%s", *path ? path : "-",
                                                     json_is_true(json_object_get(cg, "delegated")) ? " (delegated)"
                                                     : json_is_false(json_object_get(cg, "delegated"))
                                                             ? " (not delegated)" : "");
        _cleanup_free_ char *limits = !enforced ? util_xstrdup("unknown (this pboxd does not say)")
                : json_is_true(enforced) ? util_xstrdup("enforced")
                : util_xasprintf("NOT enforced: missing controller%s %s (limit requests that need them get 422, "
                                 "unless pbox.conf has allow_unenforced_limits = yes)",
                                 missing && strchr(missing, ' ') ? "s" : "", missing ? missing : "?");
        _cleanup_free_ char *peaks = util_xasprintf("memory.peak %s, pids.peak %s",
                                                    yes_no(json_object_get(cg, "memory_peak")),
                                                    yes_no(json_object_get(cg, "pids_peak")));
        struct table t = { .ncols = 2 };
        table_add(&t, (const char *const[]) { "status:", *status ? status : "?" });
        table_add(&t, (const char *const[]) { "version:", rec_str(h, "version") });
        table_add(&t, (const char *const[]) { "sandboxes:", running_s });
        table_add(&t, (const char *const[]) { "cgroup:", cgroup });
        table_add(&t, (const char *const[]) { "controllers:", enabled && *enabled ? enabled : "none" });
        if (json_object_get(cg, "missing"))
                table_add(&t, (const char *const[]) { "missing:", missing ? missing : "none" });
        table_add(&t, (const char *const[]) { "limits:", limits });
        if (json_object_get(cg, "memory_peak") || json_object_get(cg, "pids_peak"))
                table_add(&t, (const char *const[]) { "peaks:", peaks });
        table_add(&t, (const char *const[]) { "cgroup.kill:", yes_no(json_object_get(cg, "kill")) });
        table_print_free(&t);
        return strcmp(status, "ok") ? cmd->fail_status : 0;
}

/* ----------------------------------------------------------- stop and rm */

static int cmd_stop(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                SIGNAL_LONG_OPTS,
                HELP_OPT,
                {},
        };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct signal_opts so = { .grace_ms = -1 };
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, signal_opt, &so);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected at least one sandbox ID");
        _cleanup_json_ json_t *body = NULL;
        if (signal_body(&so, &body, &err) < 0)
                return pbox_cmd_usage(cmd, "%s", err.message);
        /* The server answers once the sandbox is down: allow for the grace period. */
        const struct each_call e = { "POST", "/v1/sandboxes/", "/stop", body, grace_timeout(so.grace_ms, 5000), "id" };
        return call_each(cli, cmd, argc, argv, &e);
}

static int cmd_rm(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                { "force", no_argument, NULL, 'f' },
                HELP_OPT,
                {},
        };
        bool force = false;
        struct flag_opt flags[] = { { 'f', &force }, {} };
        int r = pbox_cmd_options(cmd, argc, argv, NULL, opts, flag_opts, flags);
        if (r != PBOX_OPTS_DONE)
                return r;
        if (optind >= argc)
                return pbox_cmd_usage(cmd, "expected at least one sandbox ID");
        const struct each_call e = { "DELETE", "/v1/sandboxes/", force ? "?force=true" : "", NULL,
                                     PBOX_DEFAULT_TIMEOUT_MS, "removed" };
        return call_each(cli, cmd, argc, argv, &e);
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
        "                           activity (execs, keepalive)\n"                      \
        LIMITS_HELP

/* SIZE: bytes, or with K, M, G, T (powers of 1024); "none": no limit. */
#define LIMITS_HELP                                                                      \
        "      --memory SIZE        memory limit of the sandbox (at least 4M; none)\n"   \
        "      --swap SIZE          swap it may use besides (default 0 with --memory)\n" \
        "      --pids N             processes and threads at once (1 to 4194304)\n"     \
        "      --cpus X             CPUs it may use, e.g. 0.5 (at least 0.01)\n"         \
        "      --cpu-weight N       share of CPU under contention (1 to 10000; 100)\n"  \
        "      --disk SIZE          size of its writable layer (at least 1M; a tmpfs)\n" \
        "      --io-read-bps SIZE   read bandwidth per second on the state disk\n"      \
        "      --io-write-bps SIZE  write bandwidth per second on the state disk\n"     \
        "      --io-read-iops N     read operations per second on the state disk\n"     \
        "      --io-write-iops N    write operations per second on the state disk\n"

#define EXEC_HELP                                                                        \
        "      --timeout DURATION   wall-clock limit (default: the server's, 60s)\n"     \
        "      --grace DURATION     after the timeout, time between the stop signal and\n" \
        "                           SIGKILL (default: the server's, 2s)\n"              \
        "      --signal SIGNAL      stop signal at the timeout (TERM, SIGTERM or a\n"    \
        "                           number; default TERM)\n"                             \
        "  -u, --user UID[:GID]     numeric user (and group) inside the sandbox\n"      \
        "      --max-output SIZE    limit of each of stdout and stderr (4096, 64K, 1M);\n" \
        "                           beyond it the command is killed\n"                  \
        "  -w, --workdir DIR        working directory inside the sandbox (absolute)\n"   \
        "      --cpu-limit MS       CPU time limit (user+system, all its processes), in\n" \
        "                           ms or with a unit (1500, 2s); beyond it the command\n" \
        "                           is killed (status cpu_limit, exit 124)\n"           \
        "      --stats              print a line on stderr at the end: status, wall and\n" \
        "                           CPU time, memory and pids peaks\n"

#define EXIT_HELP                                                                        \
        "\nExit status: the command's; 128+N when signal N ended it; 124 when it\n"      \
        "timed out (\"timed out after 10s (ended by SIGTERM|SIGKILL)\" on stderr);\n"   \
        "128+N when it was killed for its output limit or by 'pbox kill'; 124 also\n"   \
        "when it reached its CPU time limit; 126/127 when it could not be executed\n"  \
        "/ was not found; 125 when pbox itself failed (a limit this host cannot\n"     \
        "enforce included) or the outcome is unknown.  Ran out of memory (oom) or\n"   \
        "hit the process limit (pids_limit): its status, with a message."

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
          "                           a bare KEY takes its value from pbox's environment)\n" EXEC_HELP
          "      --memory SIZE        memory limit of this command (its own cgroup, below\n"
          "                           the sandbox's; 256M, 1G; at least 4M)\n"
          "      --pids N             process limit of this command\n",
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
          "when that failed. --memory, --pids and the other limits are the\n"
          "sandbox's; --cpu-limit is the command's.\n" EXIT_HELP,
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
        { "inspect", "ID", "Print the record of a sandbox (ID or name) as JSON.",
          "The record includes its limits and what it uses (\"limits\", \"usage\").", NULL, cmd_inspect,
          PBOX_EXIT_FAILURE },
        { "limits", "ID [OPTIONS]", "Show or change the resource limits of a sandbox.",
          "Without limit options: its limits and what it uses (CPU time, memory and\n"
          "pids with their peaks, OOM kills, I/O). With them: the limits given are\n"
          "changed on the running sandbox at once (the others stay), and the new\n"
          "limits are printed. A SIZE is bytes or takes K, M, G or T (powers of\n"
          "1024); 'none' removes a limit. A limit this host cannot enforce (a\n"
          "cgroup controller missing: see 'pbox health') is refused by pboxd.\n"
          "--disk can only change a sandbox created with --disk.",
          LIMITS_HELP
          "      --json               print the limits and usage as JSON\n",
          cmd_limits, PBOX_EXIT_FAILURE },
        { "health", "[--json]", "Show whether pboxd serves, and which limits this host can enforce.",
          "GET /healthz (needs no token): version, running sandboxes, the cgroup\n"
          "subtree and its controllers (cpu, memory, pids, io: available and\n"
          "missing), whether limits are enforced. Exits 1 unless pboxd says ok.",
          "      --json               print the answer as JSON\n",
          cmd_health, PBOX_EXIT_FAILURE },
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
