/* limits.c — resource limits of sandboxes and execs (limits.h): the
 * "limits" objects of requests (400 for malformed values, 422 for values
 * above pbox.conf's maximums or limits the host cannot enforce), defaults,
 * writing them to cgroups (through src/lib/cgroup.c), records, and usage. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "diskimg.h"
#include "json.h"
#include "limits.h"
#include "log.h"
#include "util.h"

#define MIN_MEMORY_BYTES ((int64_t) 4 << 20)
#define MIN_DISK_BYTES ((int64_t) 1 << 20)
#define MAX_PIDS 4194304
#define MAX_BYTES ((int64_t) 1 << 62)   /* sizes and rates: far above anything real, no overflow */
#define CPU_PERIOD_US 100000

const char *const limits_sandbox_keys[] = {
        "memory_bytes", "swap_bytes", "pids", "cpus", "cpu_weight", "io_read_bps", "io_write_bps",
        "io_read_iops", "io_write_iops", "disk_bytes", NULL,
};

unsigned limits_enabled_controllers(const struct core *core)
{
        return core->cgroups ? core->cgroups->enabled : 0;
}

static bool have(const struct core *core, unsigned ctrl)
{
        return (limits_enabled_controllers(core) & ctrl) == ctrl;
}

static bool is_limited(int64_t v)
{
        return v != LIMIT_UNSET && v != CGROUP_UNLIMITED;
}

static long host_cpus(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? n : 1;
}

void limits_sandbox_init(struct sandbox_limits *l)
{
        l->memory_bytes = l->swap_bytes = l->pids = l->cpus_milli = l->cpu_weight = LIMIT_UNSET;
        l->io_read_bps = l->io_write_bps = l->io_read_iops = l->io_write_iops = LIMIT_UNSET;
        l->disk_bytes = LIMIT_UNSET;
}

void limits_exec_init(struct exec_limits *l)
{
        l->cpu_limit_ms = l->memory_bytes = l->pids = LIMIT_UNSET;
}

/* ---- parsing -------------------------------------------------------------- */

/* An integer in [min, max] or null (CGROUP_UNLIMITED); absent leaves *ret. */
static int get_limit(json_t *obj, const char *prefix, const char *key, int64_t min, int64_t max, int64_t *ret,
                     struct pbox_error *err)
{
        json_t *v = json_object_get(obj, key);
        if (!v)
                return 0;
        if (json_is_null(v)) {
                *ret = CGROUP_UNLIMITED;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return pbox_error_set(err, EINVAL, "%s%s must be an integer from %lld to %lld, or null for no limit",
                                      prefix, key, (long long) min, (long long) max);
        *ret = json_integer_value(v);
        return 0;
}

static int get_cpus(json_t *obj, int64_t *ret, struct pbox_error *err)
{
        json_t *v = json_object_get(obj, "cpus");
        if (!v)
                return 0;
        if (json_is_null(v)) {
                *ret = CGROUP_UNLIMITED;
                return 0;
        }
        long n = host_cpus();
        double d = json_is_number(v) ? json_number_value(v) : -1;
        if (!json_is_number(v) || !isfinite(d) || d < 0.01 - 1e-9 || d > (double) n + 1e-9)
                return pbox_error_set(err, EINVAL, "limits.cpus must be a number from 0.01 to %ld (this host's CPUs), or null",
                                      n);
        int64_t milli = (int64_t) (d * 1000.0 + 0.5);
        if (milli < 10)
                milli = 10;
        *ret = milli;
        return 0;
}

static int controller_missing(const char *what, unsigned ctrl, struct pbox_error *err)
{
        return pbox_error_set(err, ERANGE,
                              "%s: the cgroup controller '%s' is not available on this host (config: allow_unenforced_limits)",
                              what, cgroup_controller_name(ctrl));
}

/* A value above a configured maximum (max 0: none). */
static int check_max(const char *key, int64_t v, uint64_t max, const char *max_key, struct pbox_error *err)
{
        if (!max || v == LIMIT_UNSET)
                return 0;
        if (v == CGROUP_UNLIMITED)
                return pbox_error_set(err, ERANGE, "%s: no limit is not allowed on this server (%s = %llu)", key, max_key,
                                      (unsigned long long) max);
        if ((uint64_t) v > max)
                return pbox_error_set(err, ERANGE, "%s: %lld is above this server's maximum (%s = %llu)", key,
                                      (long long) v, max_key, (unsigned long long) max);
        return 0;
}

static int check_cpus_max(int64_t v, uint64_t max_milli, struct pbox_error *err)
{
        if (!max_milli || v == LIMIT_UNSET)
                return 0;
        if (v == CGROUP_UNLIMITED)
                return pbox_error_set(err, ERANGE, "cpus: no limit is not allowed on this server (max_cpus = %.3g)",
                                      (double) max_milli / 1000.0);
        if ((uint64_t) v > max_milli)
                return pbox_error_set(err, ERANGE, "cpus: %.3g is above this server's maximum (max_cpus = %.3g)",
                                      (double) v / 1000.0, (double) max_milli / 1000.0);
        return 0;
}

static bool io_any_limited(const struct sandbox_limits *l)
{
        return is_limited(l->io_read_bps) || is_limited(l->io_write_bps) || is_limited(l->io_read_iops) ||
               is_limited(l->io_write_iops);
}

/* 0 when io limits can be written: the controller is there and the state
 * directory's block device is known. */
static int io_enforceable(struct core *core, unsigned *ret_major, unsigned *ret_minor, struct pbox_error *err)
{
        if (!have(core, CGROUP_CTRL_IO))
                return controller_missing("io limits", CGROUP_CTRL_IO, err);
        unsigned maj = 0, min = 0;
        if (cgroup_block_device_of(core->cfg->state_dir, &maj, &min, NULL) < 0)
                return pbox_error_set(err, ERANGE, "io limits: the state directory is not on a block device");
        if (ret_major)
                *ret_major = maj;
        if (ret_minor)
                *ret_minor = min;
        return 0;
}

int limits_sandbox_parse(struct core *core, json_t *obj, struct sandbox_limits *ret, struct pbox_error *err)
{
        struct sandbox_limits l;
        limits_sandbox_init(&l);
        int r;
        if (!obj || json_is_null(obj)) {
                *ret = l;
                return 0;
        }
        if (!json_is_object(obj))
                return pbox_error_set(err, EINVAL, "limits must be an object");
        if ((r = json_check_keys(obj, limits_sandbox_keys, err)) < 0)
                return pbox_error_prefix(err, "limits");
        const char *p = "limits.";
        if ((r = get_limit(obj, p, "memory_bytes", MIN_MEMORY_BYTES, MAX_BYTES, &l.memory_bytes, err)) < 0 ||
            (r = get_limit(obj, p, "swap_bytes", 0, MAX_BYTES, &l.swap_bytes, err)) < 0 ||
            (r = get_limit(obj, p, "pids", 1, MAX_PIDS, &l.pids, err)) < 0 ||
            (r = get_cpus(obj, &l.cpus_milli, err)) < 0 ||
            (r = get_limit(obj, p, "cpu_weight", 1, 10000, &l.cpu_weight, err)) < 0 ||
            (r = get_limit(obj, p, "io_read_bps", 1, MAX_BYTES, &l.io_read_bps, err)) < 0 ||
            (r = get_limit(obj, p, "io_write_bps", 1, MAX_BYTES, &l.io_write_bps, err)) < 0 ||
            (r = get_limit(obj, p, "io_read_iops", 1, MAX_BYTES, &l.io_read_iops, err)) < 0 ||
            (r = get_limit(obj, p, "io_write_iops", 1, MAX_BYTES, &l.io_write_iops, err)) < 0 ||
            (r = get_limit(obj, p, "disk_bytes", MIN_DISK_BYTES, MAX_BYTES, &l.disk_bytes, err)) < 0)
                return r;

        /* 422: the server's maximums ... */
        const struct pboxd_config *cfg = core->cfg;
        if ((r = check_max("memory_bytes", l.memory_bytes, cfg->max_memory_bytes, "max_memory_bytes", err)) < 0 ||
            (r = check_max("pids", l.pids, cfg->max_pids, "max_pids", err)) < 0 ||
            (r = check_cpus_max(l.cpus_milli, cfg->max_cpus_milli, err)) < 0 ||
            (r = check_max("disk_bytes", l.disk_bytes, cfg->max_disk_bytes, "max_disk_bytes", err)) < 0)
                return r;
        /* ... and what this host can enforce. */
        if (!cfg->allow_unenforced_limits) {
                if ((is_limited(l.memory_bytes) || is_limited(l.swap_bytes)) && !have(core, CGROUP_CTRL_MEMORY))
                        return controller_missing("memory limit", CGROUP_CTRL_MEMORY, err);
                if (is_limited(l.pids) && !have(core, CGROUP_CTRL_PIDS))
                        return controller_missing("pids limit", CGROUP_CTRL_PIDS, err);
                if ((is_limited(l.cpus_milli) || is_limited(l.cpu_weight)) && !have(core, CGROUP_CTRL_CPU))
                        return controller_missing("cpu limit", CGROUP_CTRL_CPU, err);
                if (io_any_limited(&l) && (r = io_enforceable(core, NULL, NULL, err)) < 0)
                        return r;
        }
        *ret = l;
        return 0;
}

void limits_sandbox_default_swap(struct core *core, struct sandbox_limits *l)
{
        if (l->swap_bytes == LIMIT_UNSET && is_limited(l->memory_bytes))
                l->swap_bytes = core->cfg->default_swap_bytes == CONFIG_SWAP_UNLIMITED
                                        ? CGROUP_UNLIMITED
                                        : (int64_t) core->cfg->default_swap_bytes;
}

/* An unset limit takes the configured default; without one, the configured
 * maximum (a server with max_memory_bytes never runs a sandbox without a
 * memory limit). */
static void default_or_max(int64_t *v, uint64_t def, uint64_t max)
{
        if (*v != LIMIT_UNSET)
                return;
        if (def)
                *v = (int64_t) def;
        else if (max)
                *v = (int64_t) max;
}

void limits_sandbox_apply_defaults(struct core *core, struct sandbox_limits *l)
{
        const struct pboxd_config *cfg = core->cfg;
        default_or_max(&l->memory_bytes, cfg->default_memory_bytes, cfg->max_memory_bytes);
        default_or_max(&l->pids, cfg->default_pids, cfg->max_pids);
        default_or_max(&l->cpus_milli, cfg->default_cpus_milli, cfg->max_cpus_milli);
        default_or_max(&l->cpu_weight, cfg->default_cpu_weight, 0);
        default_or_max(&l->disk_bytes, cfg->default_disk_bytes, cfg->max_disk_bytes);
        limits_sandbox_default_swap(core, l);
}

json_t *limits_sandbox_unenforced(struct core *core, const struct sandbox_limits *l)
{
        json_t *a = json_array();
        bool mem = have(core, CGROUP_CTRL_MEMORY), cpu = have(core, CGROUP_CTRL_CPU);
        if (is_limited(l->memory_bytes) && !mem)
                json_array_append_new(a, json_string("memory_bytes"));
        /* swap only where memory is not already listed (it is usually the
         * derived default 0 of a memory limit). */
        if (is_limited(l->swap_bytes) && !mem && !is_limited(l->memory_bytes))
                json_array_append_new(a, json_string("swap_bytes"));
        if (is_limited(l->pids) && !have(core, CGROUP_CTRL_PIDS))
                json_array_append_new(a, json_string("pids"));
        if (is_limited(l->cpus_milli) && !cpu)
                json_array_append_new(a, json_string("cpus"));
        if (is_limited(l->cpu_weight) && !cpu)
                json_array_append_new(a, json_string("cpu_weight"));
        if (io_any_limited(l) && io_enforceable(core, NULL, NULL, NULL) < 0) {
                const int64_t v[] = { l->io_read_bps, l->io_write_bps, l->io_read_iops, l->io_write_iops };
                static const char *const k[] = { "io_read_bps", "io_write_bps", "io_read_iops", "io_write_iops" };
                for (size_t i = 0; i < ARRAY_SIZE(v); i++)
                        if (is_limited(v[i]))
                                json_array_append_new(a, json_string(k[i]));
        }
        if (json_array_size(a) == 0) {
                json_decref(a);
                return NULL;
        }
        return a;
}

/* ---- writing -------------------------------------------------------------- */

/* Whether to write a field: set, and its controller is there.  A missing
 * controller is fine for "no limit" and for allow_unenforced_limits. */
static int want_write(struct core *core, int64_t v, unsigned ctrl, const char *what, bool *ret,
                      struct pbox_error *err)
{
        *ret = false;
        if (v == LIMIT_UNSET)
                return 0;
        if (!have(core, ctrl)) {
                if (v == CGROUP_UNLIMITED || core->cfg->allow_unenforced_limits)
                        return 0;
                return controller_missing(what, ctrl, err);
        }
        *ret = true;
        return 0;
}

static int64_t io_value(int64_t v)
{
        return is_limited(v) ? v : CGROUP_UNLIMITED;
}

int limits_sandbox_write(struct core *core, int cgroup_fd, const struct sandbox_limits *l, struct pbox_error *err)
{
        bool w;
        int r;
        if ((r = want_write(core, l->memory_bytes, CGROUP_CTRL_MEMORY, "memory limit", &w, err)) < 0)
                return r;
        if (w && (r = cgroup_set_memory_max(cgroup_fd, l->memory_bytes, err)) < 0)
                return r;
        /* Swap: as given, else off whenever memory is limited. */
        int64_t swap = l->swap_bytes;
        if (swap == LIMIT_UNSET && is_limited(l->memory_bytes))
                swap = 0;
        if ((r = want_write(core, swap, CGROUP_CTRL_MEMORY, "swap limit", &w, err)) < 0)
                return r;
        if (w && core->cgroups->has_swap && (r = cgroup_set_swap_max(cgroup_fd, swap, err)) < 0)
                return r;
        if ((r = want_write(core, l->pids, CGROUP_CTRL_PIDS, "pids limit", &w, err)) < 0)
                return r;
        if (w && (r = cgroup_set_pids_max(cgroup_fd, l->pids, err)) < 0)
                return r;
        if ((r = want_write(core, l->cpus_milli, CGROUP_CTRL_CPU, "cpu limit", &w, err)) < 0)
                return r;
        if (w) {
                int64_t quota = l->cpus_milli == CGROUP_UNLIMITED ? CGROUP_UNLIMITED
                                                                  : l->cpus_milli * CPU_PERIOD_US / 1000;
                if ((r = cgroup_set_cpu_max(cgroup_fd, quota, CPU_PERIOD_US, err)) < 0)
                        return r;
        }
        if ((r = want_write(core, l->cpu_weight, CGROUP_CTRL_CPU, "cpu limit", &w, err)) < 0)
                return r;
        if (w && (r = cgroup_set_cpu_weight(cgroup_fd, l->cpu_weight == CGROUP_UNLIMITED ? 100 : (uint64_t) l->cpu_weight,
                                            err)) < 0)
                return r;
        /* io.max: only where some io field was given; "no limit" everywhere
         * needs no device. */
        if (l->io_read_bps != LIMIT_UNSET || l->io_write_bps != LIMIT_UNSET || l->io_read_iops != LIMIT_UNSET ||
            l->io_write_iops != LIMIT_UNSET) {
                unsigned maj = 0, min = 0;
                struct pbox_error ioerr = PBOX_ERROR_INIT;
                if (io_enforceable(core, &maj, &min, &ioerr) < 0) {
                        if (io_any_limited(l) && !core->cfg->allow_unenforced_limits) {
                                *err = ioerr;
                                return -ioerr.code;
                        }
                } else if ((r = cgroup_set_io_max(cgroup_fd, maj, min, io_value(l->io_read_bps),
                                                  io_value(l->io_write_bps), io_value(l->io_read_iops),
                                                  io_value(l->io_write_iops), err)) < 0)
                        return r;
        }
        return 0;
}

void limits_sandbox_merge(struct sandbox_limits *cur, const struct sandbox_limits *update)
{
#define M(f) if (update->f != LIMIT_UNSET) cur->f = update->f
        M(memory_bytes);
        M(swap_bytes);
        M(pids);
        M(cpus_milli);
        M(cpu_weight);
        M(io_read_bps);
        M(io_write_bps);
        M(io_read_iops);
        M(io_write_iops);
        M(disk_bytes);
#undef M
}

/* ---- records -------------------------------------------------------------- */

static json_t *limit_json(int64_t v)
{
        return is_limited(v) ? json_integer(v) : json_null();
}

json_t *limits_sandbox_to_json(const struct sandbox_limits *l)
{
        json_t *j = json_object();
        json_object_set_new(j, "memory_bytes", limit_json(l->memory_bytes));
        json_object_set_new(j, "swap_bytes", limit_json(l->swap_bytes));
        json_object_set_new(j, "pids", limit_json(l->pids));
        json_object_set_new(j, "cpus", is_limited(l->cpus_milli) ? json_real((double) l->cpus_milli / 1000.0) : json_null());
        json_object_set_new(j, "cpu_weight", limit_json(l->cpu_weight));
        json_object_set_new(j, "io_read_bps", limit_json(l->io_read_bps));
        json_object_set_new(j, "io_write_bps", limit_json(l->io_write_bps));
        json_object_set_new(j, "io_read_iops", limit_json(l->io_read_iops));
        json_object_set_new(j, "io_write_iops", limit_json(l->io_write_iops));
        json_object_set_new(j, "disk_bytes", limit_json(l->disk_bytes));
        return j;
}

/* state.json: written by us, but still checked (a null is "no limit"). */
static void read_field(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *ret)
{
        json_t *v = json_object_get(obj, key);
        if (json_is_null(v))
                *ret = CGROUP_UNLIMITED;
        else if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max)
                *ret = json_integer_value(v);
}

int limits_sandbox_from_json(json_t *obj, struct sandbox_limits *ret)
{
        struct sandbox_limits l;
        limits_sandbox_init(&l);
        if (!json_is_object(obj))
                return -EINVAL;
        read_field(obj, "memory_bytes", MIN_MEMORY_BYTES, MAX_BYTES, &l.memory_bytes);
        read_field(obj, "swap_bytes", 0, MAX_BYTES, &l.swap_bytes);
        read_field(obj, "pids", 1, MAX_PIDS, &l.pids);
        json_t *c = json_object_get(obj, "cpus");
        if (json_is_null(c))
                l.cpus_milli = CGROUP_UNLIMITED;
        else if (json_is_number(c) && isfinite(json_number_value(c)) && json_number_value(c) > 0 &&
                 json_number_value(c) < 1e6)
                l.cpus_milli = (int64_t) (json_number_value(c) * 1000.0 + 0.5);
        read_field(obj, "cpu_weight", 1, 10000, &l.cpu_weight);
        read_field(obj, "io_read_bps", 1, MAX_BYTES, &l.io_read_bps);
        read_field(obj, "io_write_bps", 1, MAX_BYTES, &l.io_write_bps);
        read_field(obj, "io_read_iops", 1, MAX_BYTES, &l.io_read_iops);
        read_field(obj, "io_write_iops", 1, MAX_BYTES, &l.io_write_iops);
        read_field(obj, "disk_bytes", MIN_DISK_BYTES, MAX_BYTES, &l.disk_bytes);
        *ret = l;
        return 0;
}

/* ---- execs ---------------------------------------------------------------- */

int limits_exec_parse(struct core *core, json_t *body, struct exec_limits *ret, struct pbox_error *err)
{
        struct exec_limits l;
        limits_exec_init(&l);
        int r;
        if (body && json_is_object(body)) {
                if ((r = get_limit(body, "", "cpu_limit_ms", 1, INT32_MAX, &l.cpu_limit_ms, err)) < 0 ||
                    (r = get_limit(body, "", "memory_bytes", MIN_MEMORY_BYTES, MAX_BYTES, &l.memory_bytes, err)) < 0 ||
                    (r = get_limit(body, "", "pids", 1, MAX_PIDS, &l.pids, err)) < 0)
                        return r;
        }
        const struct pboxd_config *cfg = core->cfg;
        if ((r = check_max("cpu_limit_ms", l.cpu_limit_ms, cfg->max_exec_cpu_limit_ms, "max_exec_cpu_limit_ms", err)) < 0 ||
            (r = check_max("memory_bytes", l.memory_bytes, cfg->max_memory_bytes, "max_memory_bytes", err)) < 0 ||
            (r = check_max("pids", l.pids, cfg->max_pids, "max_pids", err)) < 0)
                return r;
        if (!cfg->allow_unenforced_limits) {
                if (is_limited(l.memory_bytes) && !have(core, CGROUP_CTRL_MEMORY))
                        return controller_missing("memory limit", CGROUP_CTRL_MEMORY, err);
                if (is_limited(l.pids) && !have(core, CGROUP_CTRL_PIDS))
                        return controller_missing("pids limit", CGROUP_CTRL_PIDS, err);
        }
        *ret = l;
        return 0;
}

void limits_exec_apply_defaults(struct core *core, struct exec_limits *l)
{
        default_or_max(&l->cpu_limit_ms, core->cfg->exec_cpu_limit_ms, core->cfg->max_exec_cpu_limit_ms);
}

int limits_exec_write(struct core *core, int cgroup_fd, const struct exec_limits *l, struct pbox_error *err)
{
        bool w;
        int r;
        if ((r = want_write(core, l->memory_bytes, CGROUP_CTRL_MEMORY, "memory limit", &w, err)) < 0)
                return r;
        if (w) {
                if ((r = cgroup_set_memory_max(cgroup_fd, l->memory_bytes, err)) < 0)
                        return r;
                /* An exec's memory limit is a hard one: no swap to spill into. */
                if (is_limited(l->memory_bytes) && core->cgroups->has_swap &&
                    (r = cgroup_set_swap_max(cgroup_fd, 0, err)) < 0)
                        return r;
        }
        if ((r = want_write(core, l->pids, CGROUP_CTRL_PIDS, "pids limit", &w, err)) < 0)
                return r;
        if (w && (r = cgroup_set_pids_max(cgroup_fd, l->pids, err)) < 0)
                return r;
        return 0;
}

json_t *limits_exec_to_json(const struct exec_limits *l)
{
        return json_pack("{s:o,s:o,s:o}", "cpu_limit_ms", limit_json(l->cpu_limit_ms), "memory_bytes",
                         limit_json(l->memory_bytes), "pids", limit_json(l->pids));
}

int limits_exec_from_json(json_t *obj, struct exec_limits *ret)
{
        struct exec_limits l;
        limits_exec_init(&l);
        if (!json_is_object(obj))
                return -EINVAL;
        read_field(obj, "cpu_limit_ms", 1, INT32_MAX, &l.cpu_limit_ms);
        read_field(obj, "memory_bytes", MIN_MEMORY_BYTES, MAX_BYTES, &l.memory_bytes);
        read_field(obj, "pids", 1, MAX_PIDS, &l.pids);
        *ret = l;
        return 0;
}

/* ---- usage ---------------------------------------------------------------- */

static json_t *figure(int64_t v)
{
        return v >= 0 ? json_integer(v) : json_null();
}

json_t *limits_usage_to_json(const struct cgroup_usage *u)
{
        json_t *j = json_object();
        json_object_set_new(j, "cpu_ms", json_integer((json_int_t) (u->cpu_usage_us / 1000)));
        json_object_set_new(j, "cpu_user_ms", json_integer((json_int_t) (u->cpu_user_us / 1000)));
        json_object_set_new(j, "cpu_system_ms", json_integer((json_int_t) (u->cpu_system_us / 1000)));
        json_object_set_new(j, "memory_bytes", figure(u->memory_current_bytes));
        json_object_set_new(j, "memory_peak_bytes", figure(u->memory_peak_bytes));
        json_object_set_new(j, "pids", figure(u->pids_current));
        json_object_set_new(j, "pids_peak", figure(u->pids_peak));
        json_object_set_new(j, "oom_kills", figure(u->oom_kills));
        json_object_set_new(j, "pids_limit_hits", figure(u->pids_max_hits));
        json_object_set_new(j, "io_read_bytes", figure(u->io_read_bytes));
        json_object_set_new(j, "io_write_bytes", figure(u->io_write_bytes));
        return j;
}

/* ---- start-up ------------------------------------------------------------- */

int limits_check_config(struct core *core, struct pbox_error *err)
{
        const struct pboxd_config *cfg = core->cfg;
        const struct {
                bool set;
                unsigned ctrl;
                const char *key;
        } need[] = {
                { cfg->default_memory_bytes != 0, CGROUP_CTRL_MEMORY, "default_memory_bytes" },
                { cfg->max_memory_bytes != 0, CGROUP_CTRL_MEMORY, "max_memory_bytes" },
                { cfg->default_pids != 0, CGROUP_CTRL_PIDS, "default_pids" },
                { cfg->max_pids != 0, CGROUP_CTRL_PIDS, "max_pids" },
                { cfg->default_cpus_milli != 0, CGROUP_CTRL_CPU, "default_cpus" },
                { cfg->max_cpus_milli != 0, CGROUP_CTRL_CPU, "max_cpus" },
                { cfg->default_cpu_weight != 0, CGROUP_CTRL_CPU, "default_cpu_weight" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
                if (!need[i].set || have(core, need[i].ctrl))
                        continue;
                if (!cfg->allow_unenforced_limits)
                        return pbox_error_set(err, ERANGE,
                                              "%s is set, but the cgroup controller '%s' is not available on this host "
                                              "(set allow_unenforced_limits = yes to run without it)",
                                              need[i].key, cgroup_controller_name(need[i].ctrl));
                log_warning("%s is set, but the cgroup controller '%s' is not available: it is not enforced "
                            "(allow_unenforced_limits)", need[i].key, cgroup_controller_name(need[i].ctrl));
        }
        if (cfg->disk_backend == DISK_BACKEND_EXT4) {
                int r = diskimg_probe(err);
                if (r < 0)
                        return pbox_error_prefix(err, "disk_backend = ext4");
                if (cfg->default_disk_bytes && cfg->default_disk_bytes < DISKIMG_MIN_BYTES)
                        return pbox_error_set(err, ERANGE, "default_disk_bytes: at least %llu bytes with disk_backend = ext4",
                                              (unsigned long long) DISKIMG_MIN_BYTES);
        }
        return 0;
}
