/* cgroup.h — the daemon's cgroup v2 subtree.  The cgroup2 mount and the
 * daemon's own cgroup are read from /proc/self/mountinfo and
 * /proc/self/cgroup, never assumed.  Layout under the subtree:
 *   <base>/<sandbox-id>/                 the sandbox (its cgroup namespace root;
 *                                        sandbox limits are set here)
 *   <base>/<sandbox-id>/init/            the sandbox's pid 1
 *   <base>/<sandbox-id>/work/exec-<eid>/ one per exec (per-exec limits)
 * Processes live only in leaves, so controllers can be enabled on inner
 * nodes (no-internal-processes rule).
 *
 * Where the subtree is:
 *   - delegated: the daemon runs in <own>/supervisor, a leaf, where systemd
 *     (>= 254, Delegate=yes with DelegateSubgroup=supervisor) starts it and
 *     where an earlier run moved it, and <own> carries the trusted.delegate
 *     or user.delegate xattr; or the caller says so (CGROUP_DELEGATION_YES,
 *     e.g. the root of a container's cgroup namespace), and the daemon's
 *     processes move into <own>/supervisor.  The subtree is <own>/<name>;
 *   - otherwise: <parent of own>/<name>, beside the daemon's own cgroup;
 *     controllers are enabled from the mount root down to it.  This includes
 *     a delegated unit cgroup that systemd (< 254: no DelegateSubgroup=)
 *     started the daemon in: enabling controllers there would make systemd's
 *     next start of the daemon fail (the kernel refuses a process in a cgroup
 *     with controllers enabled for its children), so it stays a leaf.
 * Controllers that cannot be enabled are simply absent from `enabled`: the
 * daemon decides what a missing controller means. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct cgroup_manager {
        char *mount_path;       /* e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified */
        char *base_rel;         /* subtree relative to the mount, no leading '/' */
        char *base_path;        /* mount_path/base_rel */
        int base_fd;            /* O_DIRECTORY fd of the subtree */
        bool has_kill;          /* cgroup.kill exists (probed) */
        char *controllers;      /* cgroup.controllers of the subtree (may be "") */
        unsigned enabled;       /* CGROUP_CTRL_* enabled for sandboxes (subtree_control) */
        bool delegated;         /* the subtree lives inside a delegated cgroup */
        bool has_memory_peak;   /* memory.peak exists (probed) */
        bool has_pids_peak;     /* pids.peak exists (probed) */
        bool has_swap;          /* memory.swap.max exists (probed) */
        char *enable_error;     /* why a wanted controller could not be enabled on
                                 * some level (first refusal), or NULL; for the log */
        char *placement_note;   /* why the subtree is not where one would expect
                                 * (a delegated cgroup not used), or NULL; for the log */
};

/* Controllers pbox uses. */
enum {
        CGROUP_CTRL_CPU = 1u << 0,
        CGROUP_CTRL_MEMORY = 1u << 1,
        CGROUP_CTRL_PIDS = 1u << 2,
        CGROUP_CTRL_IO = 1u << 3,
        CGROUP_CTRL_ALL = (1u << 4) - 1,
};
/* "cpu", "memory", "pids", "io" for one bit; NULL otherwise. */
const char *cgroup_controller_name(unsigned ctrl);
/* Parse a space-separated cgroup.controllers text into CGROUP_CTRL_* bits
 * (unknown names ignored). */
unsigned cgroup_parse_controllers(const char *text);

enum cgroup_delegation { CGROUP_DELEGATION_AUTO, CGROUP_DELEGATION_YES, CGROUP_DELEGATION_NO };

/* A value that means "no limit" (written as "max"). */
#define CGROUP_UNLIMITED INT64_MAX

/* Usage of one cgroup (it and everything below).  Fields the kernel does
 * not provide are -1 (memory_peak_bytes without memory.peak, pids_peak
 * without pids.peak, the memory and pids fields without those controllers). */
struct cgroup_usage {
        uint64_t cpu_usage_us, cpu_user_us, cpu_system_us;     /* cpu.stat (always there) */
        int64_t memory_current_bytes;   /* memory.current */
        int64_t memory_peak_bytes;      /* memory.peak */
        int64_t oom_events;             /* memory.events "oom": limit hit, reclaim failed */
        int64_t oom_kills;              /* memory.events "oom_kill" */
        int64_t pids_current;           /* pids.current */
        int64_t pids_peak;              /* pids.peak */
        int64_t pids_max_hits;          /* forks refused in it and below (cgroup_forks_refused) */
        int64_t io_read_bytes;          /* io.stat rbytes, summed over devices */
        int64_t io_write_bytes;         /* io.stat wbytes, summed over devices */
};

/* Find the cgroup2 hierarchy and create (or reuse) the subtree `name` beside
 * the daemon's own cgroup.  proc_root is "/proc" except in tests. */
int cgroup_manager_open(const char *name, struct cgroup_manager **ret, struct pbox_error *err);
/* The same, saying whether the daemon's own cgroup is delegated, and which
 * controllers to enable (CGROUP_CTRL_* mask; the ones the kernel or the
 * parent do not offer are left out of mgr->enabled, not an error). */
int cgroup_manager_open_full(const char *name, enum cgroup_delegation delegation, unsigned wanted,
                             struct cgroup_manager **ret, struct pbox_error *err);
void cgroup_manager_free(struct cgroup_manager *mgr);

/* Parse helpers, exposed for unit tests. */
int cgroup_parse_mountinfo_cgroup2(const char *mountinfo, char **ret_mount, struct pbox_error *err);
int cgroup_parse_proc_cgroup(const char *text, char **ret_path, struct pbox_error *err);

/* mkdir rel (relative to the subtree) if needed, return an O_DIRECTORY fd for
 * CLONE_INTO_CGROUP and file access.  It enables no controller: the daemon
 * calls cgroup_enable_subtree on <id> (so init/ and work/ get them) and on
 * <id>/work (so each exec-<eid> gets them) before any process is put there. */
int cgroup_create(struct cgroup_manager *mgr, const char *rel, int *ret_fd, struct pbox_error *err);
int cgroup_open(struct cgroup_manager *mgr, const char *rel, int *ret_fd, struct pbox_error *err);
int cgroup_move_pid(int cgroup_fd, pid_t pid, struct pbox_error *err);
/* Kill every process in the cgroup and below (cgroup.kill, or a freeze +
 * signal loop where the kernel lacks it). */
int cgroup_kill(struct cgroup_manager *mgr, int cgroup_fd, struct pbox_error *err);
/* 1 if processes remain in the cgroup or below, 0 if empty. */
int cgroup_populated(int cgroup_fd, struct pbox_error *err);
/* Remove rel and every cgroup below it (depth first); they must be empty. */
int cgroup_remove(struct cgroup_manager *mgr, const char *rel, struct pbox_error *err);
/* Enable the CGROUP_CTRL_* controllers in ctrl for the children of
 * cgroup_fd (writes "+cpu +memory ..." to cgroup.subtree_control; only the
 * ones in cgroup.controllers are asked for).  -EBUSY when the cgroup has
 * processes of its own (no-internal-processes rule). */
int cgroup_enable_subtree(int cgroup_fd, unsigned ctrl, struct pbox_error *err);

/* Limits, each written to its own file of cgroup_fd.  CGROUP_UNLIMITED
 * writes "max".  A missing file (controller not enabled) is -ENOENT with a
 * message naming the controller. */
int cgroup_set_memory_max(int cgroup_fd, int64_t bytes, struct pbox_error *err);
int cgroup_set_swap_max(int cgroup_fd, int64_t bytes, struct pbox_error *err);
int cgroup_set_pids_max(int cgroup_fd, int64_t pids, struct pbox_error *err);
/* cpu.max "<quota> <period>": quota_us CGROUP_UNLIMITED for "max". */
int cgroup_set_cpu_max(int cgroup_fd, int64_t quota_us, uint64_t period_us, struct pbox_error *err);
int cgroup_set_cpu_weight(int cgroup_fd, uint64_t weight /* 1..10000 */, struct pbox_error *err);
/* io.max "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=..": each CGROUP_UNLIMITED for "max". */
int cgroup_set_io_max(int cgroup_fd, unsigned major, unsigned minor, int64_t rbps, int64_t wbps,
                      int64_t riops, int64_t wiops, struct pbox_error *err);
/* The whole block device (not a partition) holding the file system of
 * path, for io.max.  -ENODEV when path is not on a block device (tmpfs,
 * overlay, 9p, a device-mapper stack we cannot see through). */
int cgroup_block_device_of(const char *path, unsigned *ret_major, unsigned *ret_minor, struct pbox_error *err);

/* One figure of cgroup_fd: a file holding one number ("max" is
 * CGROUP_UNLIMITED), or the value of key in a flat-keyed file; -1 when the
 * file or key is absent or unreadable. */
int64_t cgroup_read_number(int cgroup_fd, const char *name);
int64_t cgroup_read_keyed(int cgroup_fd, const char *name, const char *key);
/* Forks refused in the subtree of cgroup_fd: the sum of the local counts
 * of it and the cgroups below it (pids.events.local where the kernel has
 * it, else pids.events).  Kernels without pids.events.local count a refusal
 * in the cgroup whose fork failed: the figure is then every fork refused to
 * these processes, by any limit.  Kernels with it count a refusal in the
 * cgroup whose limit was hit: the figure is then every refusal by a limit
 * in the subtree (for a sandbox, the same thing: its processes are all
 * below it).  -1 without the pids controller. */
int64_t cgroup_forks_refused(int cgroup_fd);
/* Read every usage figure of cgroup_fd (files that are absent give -1). */
int cgroup_read_usage(int cgroup_fd, struct cgroup_usage *ret, struct pbox_error *err);
/* Parse helpers, exposed for unit tests: the value of `key` in a flat-keyed
 * file ("key value\n" lines, e.g. cpu.stat, memory.events, pids.events);
 * -ENOENT when absent. */
int cgroup_parse_keyed(const char *text, const char *key, int64_t *ret);
/* Sum of `key`=N fields over the lines of io.stat. */
int64_t cgroup_parse_io_stat(const char *text, const char *key);

/* usage_usec, user_usec, system_usec from cpu.stat (0 when absent). */
int cgroup_cpu_usage(int cgroup_fd, uint64_t *ret_usage_us, uint64_t *ret_user_us,
                     uint64_t *ret_system_us, struct pbox_error *err);
