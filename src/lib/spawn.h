/* spawn.h — creating sandbox processes.
 *
 * Everything a child needs (argv/envp, candidate paths, the capability plan,
 * the seccomp BPF, uid maps, fds) is prepared by the parent; after clone3 the
 * child only makes system calls and then execs, reporting a failure as
 * {step, errno} over a CLOEXEC socketpair.  EOF on that socket means the
 * exec happened.  Sync points are numbered and marked on both sides.
 *
 * spawn_sandbox: clone3(CLONE_NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET,
 * CLONE_INTO_CGROUP) a child that unshares its cgroup namespace (so its root
 * is the sandbox cgroup), waits for its uid/gid maps, sets up the rootfs,
 * hostname and loopback, cuts its capabilities, sets no_new_privs, loads
 * seccomp, closes every fd above 2 and execs the init from a sealed memfd.
 *
 * spawn_exec: a child cloned into the sandbox's pid namespace (the parent
 * switches pid_for_children around the clone) and into its exec cgroup,
 * which joins the other namespaces through the init's pidfd, becomes the
 * requested uid/gid, and gets the same security setup before execve. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "caps.h"
#include "error.h"
#include "seccomp_policy.h"
#include "userns.h"

struct spawn_security {
        const struct caps_plan *caps;
        const struct seccomp_program *seccomp;
};

struct spawn_sandbox_config {
        const char *rootfs;             /* host path of the mounted overlay */
        const char *hostname;
        int cgroup_fd;                  /* the sandbox cgroup (becomes its cgroupns root) */
        int init_cgroup_fd;             /* leaf the init is moved to */
        const struct userns_map *map;
        int init_exec_fd;               /* sealed memfd holding pbox-init */
        char *const *init_argv;
        char *const *init_envp;
        int null_fd;                    /* /dev/null of the host, for the init's stdio */
        struct spawn_security sec;
};

struct spawn_result {
        pid_t pid;
        int pidfd;
        const char *failed_step;        /* static string, when the child failed before exec */
        int child_errno;
};

/* Returns 0 with ret->pid/pidfd of the running init, or a negative errno
 * (the child is reaped; ret->failed_step/child_errno say where it failed). */
int spawn_sandbox(const struct spawn_sandbox_config *cfg, struct spawn_result *ret, struct pbox_error *err);

struct spawn_exec_config {
        int target_pidfd;               /* the sandbox init */
        int ns_fds[6];                  /* fallback without pidfd setns: user mnt uts ipc net cgroup
                                         * namespace fds of the init (-1 when unused) */
        int own_pidns_fd;               /* the caller's pid namespace, to switch back */
        int target_pidns_fd;            /* the sandbox's pid namespace */
        int cgroup_fd;                  /* the exec's leaf cgroup */
        char *const *candidates;        /* paths to try for argv[0], in order */
        char *const *argv;
        char *const *envp;
        const char *cwd;                /* inside the sandbox */
        uid_t uid;                      /* inside the sandbox */
        gid_t gid;
        int stdin_fd, stdout_fd, stderr_fd;
        struct spawn_security sec;
};

/* Returns 0 with ret->pid/pidfd once the command was exec'd.  If the child
 * could not exec (command not found, cwd missing, ...), returns 0 with
 * ret->pid = 0, failed_step/child_errno set and the child reaped; a negative
 * errno only for failures of the parent. */
int spawn_exec(const struct spawn_exec_config *cfg, struct spawn_result *ret, struct pbox_error *err);

/* Probe once whether the kernel can setns() through a pidfd. */
bool spawn_probe_pidfd_setns(void);
