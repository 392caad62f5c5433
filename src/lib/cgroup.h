/* cgroup.h — the daemon's cgroup v2 subtree.  The cgroup2 mount and the
 * daemon's own cgroup are read from /proc/self/mountinfo and
 * /proc/self/cgroup, never assumed.  Layout under the subtree:
 *   <base>/<sandbox-id>/            the sandbox (its cgroup namespace root)
 *   <base>/<sandbox-id>/init/       the sandbox's pid 1
 *   <base>/<sandbox-id>/exec-<n>/   one per exec
 * Processes live only in leaves, so controllers can be enabled on inner
 * nodes (no-internal-processes rule). */
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
};

/* Find the cgroup2 hierarchy and create (or reuse) the subtree `name` beside
 * the daemon's own cgroup.  proc_root is "/proc" except in tests. */
int cgroup_manager_open(const char *name, struct cgroup_manager **ret, struct pbox_error *err);
void cgroup_manager_free(struct cgroup_manager *mgr);

/* Parse helpers, exposed for unit tests. */
int cgroup_parse_mountinfo_cgroup2(const char *mountinfo, char **ret_mount, struct pbox_error *err);
int cgroup_parse_proc_cgroup(const char *text, char **ret_path, struct pbox_error *err);

/* mkdir rel (relative to the subtree) if needed, return an O_DIRECTORY fd for
 * CLONE_INTO_CGROUP and file access. */
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
/* usage_usec, user_usec, system_usec from cpu.stat (0 when absent). */
int cgroup_cpu_usage(int cgroup_fd, uint64_t *ret_usage_us, uint64_t *ret_user_us,
                     uint64_t *ret_system_us, struct pbox_error *err);
