/* limits.h — resource limits of sandboxes and execs: parsing the "limits"
 * objects of requests, checking them against pbox.conf's defaults and
 * maximums and against the controllers this host has, writing them to a
 * cgroup, and the "usage" objects of records.  The cgroup files themselves
 * are src/lib/cgroup.c's. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "error.h"

struct core;

/* LIMIT_UNSET: not given (keep the current value / take the default);
 * CGROUP_UNLIMITED: explicitly no limit. */
#define LIMIT_UNSET (-1)

/* Sandbox limits (the sandbox's cgroup, <base>/<id>). */
struct sandbox_limits {
        int64_t memory_bytes;           /* memory.max */
        int64_t swap_bytes;             /* memory.swap.max (0 when memory is limited and swap not given) */
        int64_t pids;                   /* pids.max */
        int64_t cpus_milli;             /* cpu.max as thousandths of a CPU: 250 = 0.25 CPU */
        int64_t cpu_weight;             /* cpu.weight 1..10000 */
        int64_t io_read_bps, io_write_bps, io_read_iops, io_write_iops;  /* io.max on the state dir's disk */
        int64_t disk_bytes;             /* size of the tmpfs writable layer (set at create only) */
};

/* Per-exec limits (the exec's cgroup, <id>/work/exec-<eid>). */
struct exec_limits {
        int64_t cpu_limit_ms;           /* CPU time (user+system) of the exec's cgroup, enforced by the core */
        int64_t memory_bytes;
        int64_t pids;
};

void limits_sandbox_init(struct sandbox_limits *l);     /* every field LIMIT_UNSET */
void limits_exec_init(struct exec_limits *l);

/* Parse a "limits" object (NULL or absent: all unset).  Fields: memory_bytes,
 * swap_bytes, pids, cpus (number, e.g. 0.25), cpu_weight, io_read_bps,
 * io_write_bps, io_read_iops, io_write_iops, disk_bytes; each an integer
 * (cpus: a number) or null for "no limit".  Unknown keys, wrong types and
 * values out of range: -EINVAL (400).  Values above the configured maximum
 * or limits this host cannot enforce: -ERANGE (422), the message naming
 * the config key or the missing controller. */
int limits_sandbox_parse(struct core *core, json_t *obj, struct sandbox_limits *ret, struct pbox_error *err);
/* Fill unset fields from pbox.conf's defaults (create). */
void limits_sandbox_apply_defaults(struct core *core, struct sandbox_limits *l);
/* Write every set field to the sandbox's cgroup (create, and PATCH on a
 * live sandbox: only the fields given). */
int limits_sandbox_write(struct core *core, int cgroup_fd, const struct sandbox_limits *l, struct pbox_error *err);
/* Merge `update` over `cur` (fields set in update replace). */
void limits_sandbox_merge(struct sandbox_limits *cur, const struct sandbox_limits *update);
/* {"memory_bytes": N|null, ..., "cpus": 0.25|null, ...} */
json_t *limits_sandbox_to_json(const struct sandbox_limits *l);
int limits_sandbox_from_json(json_t *obj, struct sandbox_limits *ret);    /* state.json */

/* The exec fields of an exec request body (cpu_limit_ms, memory_bytes,
 * pids at the top level of the body); same error convention. */
int limits_exec_parse(struct core *core, json_t *body, struct exec_limits *ret, struct pbox_error *err);
void limits_exec_apply_defaults(struct core *core, struct exec_limits *l);
int limits_exec_write(struct core *core, int cgroup_fd, const struct exec_limits *l, struct pbox_error *err);

/* {"cpu_ms", "cpu_user_ms", "cpu_system_ms", "memory_bytes" (current),
 *  "memory_peak_bytes", "pids", "pids_peak", "oom_kills", "pids_limit_hits",
 *  "io_read_bytes", "io_write_bytes"}; figures the kernel lacks are null. */
json_t *limits_usage_to_json(const struct cgroup_usage *u);

/* ---- additions (owner of limits.c) ---------------------------------------- */

/* The ten keys of a sandbox "limits" object, NULL-terminated. */
extern const char *const limits_sandbox_keys[];
/* Set swap_bytes from pbox.conf's default_swap_bytes when memory is limited
 * and swap was not given (apply_defaults does this; PATCH after a merge). */
void limits_sandbox_default_swap(struct core *core, struct sandbox_limits *l);
/* The keys of l's limited fields this host cannot enforce (a controller is
 * missing, or io without a known block device), as a JSON array; NULL when
 * there are none.  Only non-empty when allow_unenforced_limits is on,
 * since parse refuses them otherwise. */
json_t *limits_sandbox_unenforced(struct core *core, const struct sandbox_limits *l);
/* {"cpu_limit_ms": N|null, "memory_bytes": N|null, "pids": N|null} */
json_t *limits_exec_to_json(const struct exec_limits *l);
/* The same keys, for an exec record read back from disk. */
int limits_exec_from_json(json_t *obj, struct exec_limits *ret);
/* Start-up: every configured default needs its controller, unless
 * allow_unenforced_limits (then only a warning is logged).  -ERANGE naming
 * the controller and the config key. */
int limits_check_config(struct core *core, struct pbox_error *err);
/* The CGROUP_CTRL_* bits the daemon can use (core->cgroups->enabled). */
unsigned limits_enabled_controllers(const struct core *core);
