/* conf.c — defaults, config file parsing and validation (conf.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cgroup.h"
#include "conf.h"
#include "util.h"

void config_init_defaults(struct pboxd_config *cfg)
{
        memset(cfg, 0, sizeof *cfg);
        cfg->listen = util_xstrdup("127.0.0.1:7269");
        cfg->state_dir = util_xstrdup("/var/lib/pbox");
        cfg->runtime_dir = util_xstrdup("/run/pbox");
        cfg->init_path = util_xstrdup(PBOX_LIBEXECDIR "/pbox-init");
        cfg->seccomp_policy = util_xstrdup(PBOX_POLICYDIR "/default.json");
        cfg->cgroup_name = util_xstrdup("pbox");
        cfg->api_user = util_xstrdup("nobody");
        cfg->uid_base = 100000;
        cfg->gid_base = 100000;
        cfg->uid_count = 65536;
        cfg->max_json_body = 1 << 20;
        cfg->max_image_bytes = (uint64_t) 2 << 30;
        cfg->max_layer_bytes = (uint64_t) 8 << 30;
        cfg->max_output_bytes = 16 << 20;
        cfg->exec_output_bytes = 1 << 20;
        cfg->exec_timeout_ms = 60 * 1000;
        cfg->max_exec_timeout_ms = 3600 * 1000;
        cfg->exec_grace_ms = 2000;
        cfg->max_grace_ms = 60 * 1000;
        cfg->max_ttl_s = 0;
        cfg->max_idle_timeout_s = 0;
        cfg->max_execs_kept = 32;
        cfg->expired_keep_s = 600;
        cfg->stop_grace_ms = 5000;
        cfg->api_threads = 16;
        cfg->max_sandboxes = 1024;
        cfg->max_running_execs = 1024;
        cfg->log_level = LOG_INFO;
        cfg->cgroup_delegation = CGROUP_DELEGATION_AUTO;
        cfg->disk_backend = DISK_BACKEND_TMPFS;
}

void config_free(struct pboxd_config *cfg)
{
        free(cfg->listen);
        free(cfg->state_dir);
        free(cfg->runtime_dir);
        free(cfg->init_path);
        free(cfg->seccomp_policy);
        free(cfg->cgroup_name);
        free(cfg->api_user);
        memset(cfg, 0, sizeof *cfg);
}

/* Sizes take an optional K/M/G/T suffix (powers of 1024). */
static int parse_u64(const char *key, const char *value, uint64_t max, bool size, uint64_t *ret,
                     struct pbox_error *err)
{
        if (!*value || !isdigit((unsigned char) value[0]))
                return pbox_error_set(err, EINVAL, "%s: '%s' is not a number", key, value);
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno)
                return pbox_error_set(err, EINVAL, "%s: '%s' is out of range", key, value);
        if (size && *end) {
                unsigned long long mul = 0;
                switch (*end) {
                case 'K': case 'k': mul = 1ULL << 10; break;
                case 'M': case 'm': mul = 1ULL << 20; break;
                case 'G': case 'g': mul = 1ULL << 30; break;
                case 'T': case 't': mul = 1ULL << 40; break;
                }
                if (!mul || end[1])
                        return pbox_error_set(err, EINVAL, "%s: bad size suffix in '%s' (K, M, G or T)", key, value);
                if (v > UINT64_MAX / mul)
                        return pbox_error_set(err, EINVAL, "%s: '%s' is out of range", key, value);
                v *= mul;
                end++;
        }
        if (*end)
                return pbox_error_set(err, EINVAL, "%s: '%s' is not a number", key, value);
        if (v > max)
                return pbox_error_set(err, EINVAL, "%s: %s is larger than %llu", key, value,
                                      (unsigned long long) max);
        *ret = v;
        return 0;
}

/* A CPU count as a decimal ("1.5", "0.25", "2"): thousandths of a CPU. */
static int parse_cpus(const char *key, const char *value, uint64_t *ret, struct pbox_error *err)
{
        const char *p = value;
        uint64_t whole = 0, frac = 0;
        int digits = 0;
        if (!isdigit((unsigned char) *p) && !(*p == '.' && isdigit((unsigned char) p[1])))
                return pbox_error_set(err, EINVAL, "%s: '%s' is not a number of CPUs", key, value);
        for (; isdigit((unsigned char) *p); p++) {
                whole = whole * 10 + (uint64_t) (*p - '0');
                if (whole > 1000000)
                        return pbox_error_set(err, EINVAL, "%s: '%s' is out of range", key, value);
        }
        if (*p == '.') {
                for (p++; isdigit((unsigned char) *p); p++, digits++)
                        if (digits < 3)
                                frac = frac * 10 + (uint64_t) (*p - '0');
                        else if (*p != '0')
                                return pbox_error_set(err, EINVAL, "%s: '%s' has more than 3 decimals", key, value);
        }
        if (*p)
                return pbox_error_set(err, EINVAL, "%s: '%s' is not a number of CPUs", key, value);
        for (int i = digits; i < 3; i++)
                frac *= 10;
        *ret = whole * 1000 + frac;
        return 0;
}

static int parse_bool(const char *key, const char *value, bool *ret, struct pbox_error *err)
{
        if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "on")) {
                *ret = true;
                return 0;
        }
        if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "off")) {
                *ret = false;
                return 0;
        }
        return pbox_error_set(err, EINVAL, "%s: '%s' is not yes or no", key, value);
}

/* Directories end up in overlay mount options, where ',' ':' and '\\' are
 * separators (strict); files are only opened (not strict). */
static int set_path(char **field, const char *key, const char *value, bool strict, struct pbox_error *err)
{
        if (value[0] != '/')
                return pbox_error_set(err, EINVAL, "%s: '%s' must be an absolute path", key, value);
        if (strlen(value) > 1024 || strchr(value, '\n'))
                return pbox_error_set(err, EINVAL, "%s: '%s' is not a usable path", key, value);
        if (strict && (strpbrk(value, ",:\\") || strstr(value, "/../")))
                return pbox_error_set(err, EINVAL, "%s: '%s' contains characters pboxd cannot use in paths (, : \\ ..)",
                                      key, value);
        free(*field);
        *field = util_xstrdup(value);
        return 0;
}

int config_set(struct pboxd_config *cfg, const char *key, const char *value, struct pbox_error *err)
{
        uint64_t v;
        int r;
#define U32(name) \
        if (!strcmp(key, #name)) { \
                if ((r = parse_u64(key, value, UINT32_MAX, false, &v, err)) < 0) \
                        return r; \
                cfg->name = (uint32_t) v; \
                return 0; \
        }
#define U64(name) \
        if (!strcmp(key, #name)) { \
                if ((r = parse_u64(key, value, INT64_MAX, false, &v, err)) < 0) \
                        return r; \
                cfg->name = v; \
                return 0; \
        }
#define SIZE(name) \
        if (!strcmp(key, #name)) { \
                if ((r = parse_u64(key, value, INT64_MAX, true, &v, err)) < 0) \
                        return r; \
                cfg->name = v; \
                return 0; \
        }
        U32(uid_base)
        U32(gid_base)
        U32(uid_count)
        U32(stop_grace_ms)
        U32(api_threads)
        U32(max_sandboxes)
        U32(max_running_execs)
        U32(exec_timeout_ms)
        U32(max_exec_timeout_ms)
        U32(exec_grace_ms)
        U32(max_grace_ms)
        U32(ttl_s)
        U32(max_ttl_s)
        U32(idle_timeout_s)
        U32(max_idle_timeout_s)
        U32(max_execs_kept)
        U32(expired_keep_s)
        SIZE(max_json_body)
        SIZE(max_image_bytes)
        SIZE(max_layer_bytes)
        SIZE(max_output_bytes)
        SIZE(exec_output_bytes)
        SIZE(default_memory_bytes)
        SIZE(max_memory_bytes)
        SIZE(default_disk_bytes)
        SIZE(max_disk_bytes)
        U64(default_pids)
        U64(max_pids)
        U64(default_cpu_weight)
        U64(exec_cpu_limit_ms)
        U64(max_exec_cpu_limit_ms)
#undef U64
#undef U32
#undef SIZE
        if (!strcmp(key, "default_swap_bytes")) {
                if (!strcmp(value, "max") || !strcmp(value, "none")) {
                        cfg->default_swap_bytes = CONFIG_SWAP_UNLIMITED;
                        return 0;
                }
                if ((r = parse_u64(key, value, INT64_MAX, true, &v, err)) < 0)
                        return r;
                cfg->default_swap_bytes = v;
                return 0;
        }
        if (!strcmp(key, "default_cpus"))
                return parse_cpus(key, value, &cfg->default_cpus_milli, err);
        if (!strcmp(key, "max_cpus"))
                return parse_cpus(key, value, &cfg->max_cpus_milli, err);
        if (!strcmp(key, "allow_unenforced_limits"))
                return parse_bool(key, value, &cfg->allow_unenforced_limits, err);
        if (!strcmp(key, "cgroup_delegation")) {
                bool b;
                if (!strcmp(value, "auto"))
                        cfg->cgroup_delegation = CGROUP_DELEGATION_AUTO;
                else if (parse_bool(key, value, &b, NULL) == 0)
                        cfg->cgroup_delegation = b ? CGROUP_DELEGATION_YES : CGROUP_DELEGATION_NO;
                else
                        return pbox_error_set(err, EINVAL, "cgroup_delegation: '%s' is not auto, yes or no", value);
                return 0;
        }
        if (!strcmp(key, "disk_backend")) {
                if (!strcmp(value, "tmpfs"))
                        cfg->disk_backend = DISK_BACKEND_TMPFS;
                else if (!strcmp(value, "ext4"))
                        cfg->disk_backend = DISK_BACKEND_EXT4;
                else
                        return pbox_error_set(err, EINVAL, "disk_backend: '%s' is not tmpfs or ext4", value);
                return 0;
        }
        if (!strcmp(key, "state_dir"))
                return set_path(&cfg->state_dir, key, value, true, err);
        if (!strcmp(key, "runtime_dir"))
                return set_path(&cfg->runtime_dir, key, value, true, err);
        if (!strcmp(key, "init_path"))
                return set_path(&cfg->init_path, key, value, false, err);
        if (!strcmp(key, "seccomp_policy"))
                return set_path(&cfg->seccomp_policy, key, value, false, err);
        if (!strcmp(key, "listen")) {
                const char *colon = strrchr(value, ':');
                if (!colon || colon == value || !colon[1] || strlen(value) > 255)
                        return pbox_error_set(err, EINVAL, "listen: '%s' is not ADDR:PORT", value);
                if ((r = parse_u64(key, colon + 1, 65535, false, &v, err)) < 0)
                        return r;
                free(cfg->listen);
                cfg->listen = util_xstrdup(value);
                return 0;
        }
        if (!strcmp(key, "cgroup_name") || !strcmp(key, "api_user")) {
                if (!*value || strlen(value) > 64)
                        return pbox_error_set(err, EINVAL, "%s: '%s' must be 1 to 64 characters", key, value);
                for (const char *p = value; *p; p++)
                        if (!isalnum((unsigned char) *p) && !strchr("_.-", *p))
                                return pbox_error_set(err, EINVAL, "%s: '%s' may contain only letters, digits, '_', '.', '-'",
                                                      key, value);
                if (value[0] == '.')
                        return pbox_error_set(err, EINVAL, "%s: '%s' must not start with '.'", key, value);
                char **field = !strcmp(key, "cgroup_name") ? &cfg->cgroup_name : &cfg->api_user;
                free(*field);
                *field = util_xstrdup(value);
                return 0;
        }
        if (!strcmp(key, "log_level")) {
                static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
                for (int i = 0; i < 8; i++)
                        if (!strcmp(value, names[i])) {
                                cfg->log_level = i;
                                return 0;
                        }
                return pbox_error_set(err, EINVAL, "log_level: '%s' is not one of err, warning, notice, info, debug", value);
        }
        return pbox_error_set(err, EINVAL, "unknown configuration key '%s'", key);
}

static char *trim(char *s)
{
        while (isspace((unsigned char) *s))
                s++;
        size_t n = strlen(s);
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                s[--n] = '\0';
        return s;
}

int config_parse_text(struct pboxd_config *cfg, const char *text, const char *origin, struct pbox_error *err)
{
        _cleanup_free_ char *copy = util_xstrdup(text);
        int lineno = 0;
        char *save = NULL;
        for (char *line = copy; line; line = save) {
                char *nl = strchr(line, '\n');
                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                lineno++;
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *l = trim(line);
                if (!*l)
                        continue;
                char *eq = strchr(l, '=');
                if (!eq)
                        return pbox_error_set(err, EINVAL, "%s:%d: expected 'key = value'", origin, lineno);
                *eq = '\0';
                char *key = trim(l), *value = trim(eq + 1);
                int r = config_set(cfg, key, value, err);
                if (r < 0)
                        return pbox_error_prefix(err, "%s:%d", origin, lineno);
        }
        return 0;
}

int config_load_file(struct pboxd_config *cfg, const char *path, struct pbox_error *err)
{
        _cleanup_free_ char *text = NULL;
        int r = util_read_file_at(AT_FDCWD, path, 1 << 20, &text, NULL, err);
        if (r < 0)
                return r;
        return config_parse_text(cfg, text, path, err);
}

int config_validate(struct pboxd_config *cfg, struct pbox_error *err)
{
        /* A default above its maximum is lowered to it. */
        if (cfg->exec_timeout_ms > cfg->max_exec_timeout_ms)
                cfg->exec_timeout_ms = cfg->max_exec_timeout_ms;
        if (cfg->exec_grace_ms > cfg->max_grace_ms)
                cfg->exec_grace_ms = cfg->max_grace_ms;
        if (cfg->exec_output_bytes > cfg->max_output_bytes)
                cfg->exec_output_bytes = cfg->max_output_bytes;
        if (cfg->max_ttl_s && cfg->ttl_s > cfg->max_ttl_s)
                cfg->ttl_s = cfg->max_ttl_s;
        if (cfg->max_idle_timeout_s && cfg->idle_timeout_s > cfg->max_idle_timeout_s)
                cfg->idle_timeout_s = cfg->max_idle_timeout_s;
        if (cfg->max_memory_bytes && cfg->default_memory_bytes > cfg->max_memory_bytes)
                cfg->default_memory_bytes = cfg->max_memory_bytes;
        if (cfg->max_pids && cfg->default_pids > cfg->max_pids)
                cfg->default_pids = cfg->max_pids;
        if (cfg->max_cpus_milli && cfg->default_cpus_milli > cfg->max_cpus_milli)
                cfg->default_cpus_milli = cfg->max_cpus_milli;
        if (cfg->max_disk_bytes && cfg->default_disk_bytes > cfg->max_disk_bytes)
                cfg->default_disk_bytes = cfg->max_disk_bytes;
        if (cfg->max_exec_cpu_limit_ms && cfg->exec_cpu_limit_ms > cfg->max_exec_cpu_limit_ms)
                cfg->exec_cpu_limit_ms = cfg->max_exec_cpu_limit_ms;
        /* The same ranges as the API's (limits.c). */
        if ((cfg->default_memory_bytes && cfg->default_memory_bytes < (4u << 20)) ||
            (cfg->max_memory_bytes && cfg->max_memory_bytes < (4u << 20)))
                return pbox_error_set(err, EINVAL, "default_memory_bytes and max_memory_bytes must be at least 4M (or 0: none)");
        if (cfg->default_pids > 4194304 || cfg->max_pids > 4194304)
                return pbox_error_set(err, EINVAL, "default_pids and max_pids must be at most 4194304");
        if ((cfg->default_cpus_milli && cfg->default_cpus_milli < 10) || (cfg->max_cpus_milli && cfg->max_cpus_milli < 10))
                return pbox_error_set(err, EINVAL, "default_cpus and max_cpus must be at least 0.01 (or 0: none)");
        if (cfg->default_cpu_weight > 10000)
                return pbox_error_set(err, EINVAL, "default_cpu_weight must be 1 to 10000 (or 0: none)");
        if ((cfg->default_disk_bytes && cfg->default_disk_bytes < (1u << 20)) ||
            (cfg->max_disk_bytes && cfg->max_disk_bytes < (1u << 20)))
                return pbox_error_set(err, EINVAL, "default_disk_bytes and max_disk_bytes must be at least 1M (or 0: none)");
        if (cfg->uid_base == 0 || cfg->gid_base == 0)
                return pbox_error_set(err, EINVAL, "uid_base and gid_base must not be 0 (sandbox root must not be host root)");
        if (cfg->uid_count < 1 || (uint64_t) cfg->uid_base + cfg->uid_count > UINT32_MAX ||
            (uint64_t) cfg->gid_base + cfg->uid_count > UINT32_MAX)
                return pbox_error_set(err, EINVAL, "uid_count must be at least 1 and the range must fit in 32 bits");
        if (cfg->max_output_bytes < 1024 || cfg->exec_output_bytes < 1024)
                return pbox_error_set(err, EINVAL, "exec_output_bytes and max_output_bytes must be at least 1024");
        if (cfg->max_json_body < 1024)
                return pbox_error_set(err, EINVAL, "max_json_body must be at least 1024");
        if (cfg->max_execs_kept < 1)
                return pbox_error_set(err, EINVAL, "max_execs_kept must be at least 1");
        if (cfg->api_threads < 1 || cfg->api_threads > 1024)
                return pbox_error_set(err, EINVAL, "api_threads must be between 1 and 1024");
        if (!strcmp(cfg->state_dir, cfg->runtime_dir))
                return pbox_error_set(err, EINVAL, "state_dir and runtime_dir must differ");
        return 0;
}
