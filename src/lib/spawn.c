/* spawn.c — clone3 and the child side of sandbox init and exec processes
 * (theory of operation in spawn.h).  Code marked CHILD runs between clone and
 * exec: system calls only, no allocation, no stdio, no locks. */
#include "config.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "rootfs.h"
#include "spawn.h"
#include "syscalls.h"
#include "util.h"

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

/* What a child writes on the sync socket: a step that failed, or step NULL
 * for "ready" at sync point 1.  The step is a string literal: the child is a
 * copy of the parent, so the pointer is valid on both sides. */
struct child_report {
        const char *step;
        int err;
};

/* ---- CHILD helpers ------------------------------------------------------- */

static _Noreturn void child_fail(int sync_fd, const char *step, int err)
{
        struct child_report rep = { step, err > 0 ? err : -err };
        if (rep.err == 0)
                rep.err = EIO;
        (void) !write(sync_fd, &rep, sizeof rep);
        _exit(127);
}

static int child_loopback_up(void)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        int r = 0;
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                r = -errno;
        else {
                ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        r = -errno;
        }
        close(fd);
        return r;
}

/* Mark every fd above 2 close-on-exec (CVE-2024-21626: nothing of the host
 * may leak into the sandbox).  close_range(CLOSE_RANGE_CLOEXEC) keeps the sync
 * socket usable until the exec itself. */
static int child_cloexec_from_3(void)
{
        if (sys_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
                return 0;
        /* Older kernels: walk the descriptor table. */
        for (int fd = 3; fd < 65536; fd++)
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF)
                        return -errno;
        return 0;
}

/* The daemon blocks and ignores signals for its own loop; a sandbox process
 * starts with every disposition default and nothing blocked. */
static int child_reset_signals(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        sigaction(sig, &sa, NULL);   /* EINVAL for the reserved ones is fine */
        sigset_t none;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                return -errno;
        return 0;
}

/* Close every fd from 3 up but keep. */
static int child_close_fds_except(int keep)
{
        if ((keep <= 3 || sys_close_range(3, (unsigned) keep - 1, 0) == 0) &&
            sys_close_range((unsigned) keep + 1, ~0U, 0) == 0)
                return 0;
        if (errno != ENOSYS && errno != EINVAL)
                return -errno;
        for (int fd = 3; fd < 65536; fd++)
                if (fd != keep)
                        close(fd);
        return 0;
}

/* Capabilities, no_new_privs, fds, seccomp: the last steps before execve. */
static void child_security(const struct spawn_security *sec, int sync_fd, bool apply_caps)
{
        int r;
        if ((r = child_reset_signals()) < 0)
                child_fail(sync_fd, "reset signal dispositions", r);
        if (apply_caps && (r = caps_plan_apply(sec->caps)) < 0)
                child_fail(sync_fd, "drop capabilities", r);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail(sync_fd, "set no_new_privs", errno);
        if ((r = child_cloexec_from_3()) < 0)
                child_fail(sync_fd, "mark fds close-on-exec", r);
        if (sec->seccomp && (r = seccomp_program_load(sec->seccomp)) < 0)
                child_fail(sync_fd, "load the seccomp filter", r);
}

static void child_stdio(int in, int out, int errfd, int sync_fd)
{
        int fds[3] = { in, out, errfd };
        for (int i = 0; i < 3; i++) {
                if (fds[i] == i) {
                        if (fcntl(i, F_SETFD, 0) < 0)
                                child_fail(sync_fd, "set up stdio", errno);
                } else if (dup2(fds[i], i) < 0)
                        child_fail(sync_fd, "set up stdio", errno);
        }
}

static _Noreturn void sandbox_child(const struct spawn_sandbox_config *cfg, int sync_fd)
{
        char c;
        int r;
        /* SYNC 0 (child): wait until the parent has us in the sandbox cgroup. */
        if (read(sync_fd, &c, 1) != 1)
                _exit(127);
        /* The cgroup namespace is rooted where we are now: the sandbox cgroup. */
        if (unshare(CLONE_NEWCGROUP) < 0)
                child_fail(sync_fd, "unshare the cgroup namespace", errno);
        /* SYNC 1 (child): ready for maps. */
        struct child_report ready = { NULL, 0 };
        if (write(sync_fd, &ready, sizeof ready) != sizeof ready)
                _exit(127);
        /* SYNC 2 (child): maps written, moved to the init leaf. */
        if (read(sync_fd, &c, 1) != 1)
                _exit(127);

        if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
                child_fail(sync_fd, "become root of the user namespace", errno);
        const char *step = NULL;
        if ((r = rootfs_setup_child(cfg->rootfs, &step)) < 0)
                child_fail(sync_fd, step, r);
        if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
                child_fail(sync_fd, "set the hostname", errno);
        if ((r = child_loopback_up()) < 0)
                child_fail(sync_fd, "bring up loopback", r);
        child_stdio(cfg->null_fd, cfg->null_fd, cfg->null_fd, sync_fd);
        child_security(&cfg->sec, sync_fd, true);
        syscall(SYS_execveat, cfg->init_exec_fd, "", cfg->init_argv, cfg->init_envp, AT_EMPTY_PATH);
        child_fail(sync_fd, "execute pbox-init", errno);
}

static _Noreturn void exec_child(const struct spawn_exec_config *cfg, int sync_fd)
{
        int r;
        /* Until execve this process is a copy of the daemon: keep sandbox
         * processes from reading its memory or /proc/PID/exe (CVE-2019-5736). */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                child_fail(sync_fd, "set non-dumpable", errno);
        const int all = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;
        if (cfg->ns_fds[0] < 0) {
                if (setns(cfg->target_pidfd, all) < 0)
                        child_fail(sync_fd, "join the sandbox namespaces", errno);
        } else {
                static const int types[6] = { CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC,
                                              CLONE_NEWNET, CLONE_NEWCGROUP };
                for (int i = 0; i < 6; i++)
                        if (setns(cfg->ns_fds[i], types[i]) < 0)
                                child_fail(sync_fd, "join a sandbox namespace", errno);
        }
        if (setgroups(0, NULL) < 0 || setresgid(cfg->gid, cfg->gid, cfg->gid) < 0)
                child_fail(sync_fd, "set the group ids", errno);
        /* Capabilities are cut while still uid 0; a non-root uid then drops them all. */
        if ((r = caps_plan_apply(cfg->sec.caps)) < 0)
                child_fail(sync_fd, "drop capabilities", r);
        if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0)
                child_fail(sync_fd, "set the user id", errno);
        /* CVE-2024-21626: before anything resolves a path of the caller's
         * choosing, only stdio and the sync socket may be open, so that
         * /proc/self/fd/N cannot name a directory of the daemon (the state
         * dir, a cgroup) as the working directory or the command. */
        child_stdio(cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd, sync_fd);
        if ((r = child_close_fds_except(sync_fd)) < 0)
                child_fail(sync_fd, "close inherited fds", r);
        if (chdir(cfg->cwd) < 0)
                child_fail(sync_fd, "change to the working directory", errno);
        /* The working directory must be reachable from the sandbox's root:
         * the kernel prefixes a cwd outside the root with "(unreachable)". */
        char cwdbuf[4096];
        long n = syscall(SYS_getcwd, cwdbuf, sizeof cwdbuf);
        if (n <= 0 || cwdbuf[0] != '/')
                child_fail(sync_fd, "change to the working directory", EACCES);
        child_security(&cfg->sec, sync_fd, false);
        int best = ENOENT;
        for (char *const *p = cfg->candidates; *p; p++) {
                execve(*p, cfg->argv, cfg->envp);
                if (errno != ENOENT && errno != ENOTDIR)
                        best = errno;
        }
        child_fail(sync_fd, "execute the command", best);
}

/* ---- parent side ---------------------------------------------------------- */

/* clone3 with a pidfd, falling back to clone + pidfd_open where clone3 or
 * CLONE_INTO_CGROUP is missing (then *ret_in_cgroup is false and the caller
 * moves the child itself while the child waits at its first sync point). */
static pid_t clone_child(uint64_t ns_flags, int cgroup_fd, int *ret_pidfd, bool *ret_in_cgroup)
{
        int pidfd = -1;
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = ns_flags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
        args.pidfd = (uint64_t) (uintptr_t) &pidfd;
        args.exit_signal = SIGCHLD;
        args.cgroup = cgroup_fd >= 0 ? (uint64_t) cgroup_fd : 0;
        /* Both the parent and the child learn whether the child started in its cgroup. */
        pid_t pid = (pid_t) sys_clone3(&args, sizeof args);
        if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL)) {
                *ret_in_cgroup = cgroup_fd >= 0;
                if (pid > 0)
                        *ret_pidfd = pidfd;
                return pid;
        }
        *ret_in_cgroup = false;
        pid = (pid_t) syscall(SYS_clone, (unsigned long) ns_flags | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid > 0)
                *ret_pidfd = sys_pidfd_open(pid, 0);
        return pid;
}

static void reap(pid_t pid)
{
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* Read the child's report: 1 = a report arrived, 0 = EOF (it exec'd), <0 error. */
static int read_report(int fd, struct child_report *rep)
{
        for (;;) {
                ssize_t n = read(fd, rep, sizeof *rep);
                if (n == (ssize_t) sizeof *rep)
                        return 1;
                if (n == 0)
                        return 0;
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 ? -errno : -EBADMSG;
        }
}

int spawn_sandbox(const struct spawn_sandbox_config *cfg, struct spawn_result *ret, struct pbox_error *err)
{
        int socks[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) < 0)
                return pbox_error_sys(err, errno, "socketpair");
        int pidfd = -1;
        bool in_cgroup = false;
        pid_t pid = clone_child(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET,
                                cfg->cgroup_fd, &pidfd, &in_cgroup);
        if (pid < 0) {
                int e = errno;
                close(socks[0]);
                close(socks[1]);
                return pbox_error_sys(err, e, "clone the sandbox init");
        }
        if (pid == 0) {
                close(socks[0]);
                sandbox_child(cfg, socks[1]);
        }
        close(socks[1]);
        _cleanup_close_ int sync_fd = socks[0];
        _cleanup_close_ int pfd = pidfd;
        struct child_report rep;
        int r;

        /* SYNC 0 (parent): put the child in the sandbox cgroup if clone3 could not. */
        if (!in_cgroup && (r = cgroup_move_pid(cfg->cgroup_fd, pid, err)) < 0)
                goto fail_kill;
        if (write(sync_fd, "0", 1) != 1) {
                r = pbox_error_sys(err, errno, "sync 0 with the sandbox init");
                goto fail_kill;
        }
        /* SYNC 1 (parent): the child has its cgroup namespace. */
        r = read_report(sync_fd, &rep);
        if (r <= 0 || rep.step) {
                if (r < 0)
                        r = pbox_error_sys(err, -r, "sync 1 with the sandbox init");
                goto fail_report;
        }
        if ((r = userns_write_maps(pid, cfg->map, err)) < 0)
                goto fail_kill;
        if ((r = cgroup_move_pid(cfg->init_cgroup_fd, pid, err)) < 0)
                goto fail_kill;
        /* SYNC 2 (parent): go. */
        if (write(sync_fd, "2", 1) != 1) {
                r = pbox_error_sys(err, errno, "sync 2 with the sandbox init");
                goto fail_kill;
        }
        /* SYNC 3 (parent): EOF once pbox-init is exec'd. */
        r = read_report(sync_fd, &rep);
        if (r == 0) {
                ret->pid = pid;
                ret->pidfd = TAKE_FD(pfd);
                ret->failed_step = NULL;
                ret->child_errno = 0;
                return 0;
        }
        if (r < 0)
                r = pbox_error_sys(err, -r, "sync 3 with the sandbox init");
fail_report:
        if (r >= 0) {
                if (r == 1 && rep.step) {
                        ret->failed_step = rep.step;
                        ret->child_errno = rep.err;
                        r = pbox_error_sys(err, rep.err, "sandbox setup failed: %s", rep.step);
                } else
                        r = pbox_error_set(err, EPROTO, "the sandbox init exited during setup");
        }
fail_kill:
        kill(pid, SIGKILL);
        reap(pid);
        return r;
}

int spawn_exec(const struct spawn_exec_config *cfg, struct spawn_result *ret, struct pbox_error *err)
{
        int socks[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) < 0)
                return pbox_error_sys(err, errno, "socketpair");
        /* New children of ours are born in the sandbox's pid namespace until we switch back. */
        if (setns(cfg->target_pidns_fd, CLONE_NEWPID) < 0) {
                int e = errno;
                close(socks[0]);
                close(socks[1]);
                return pbox_error_sys(err, e, "enter the sandbox pid namespace");
        }
        int pidfd = -1;
        bool in_cgroup = false;
        pid_t pid = clone_child(0, cfg->cgroup_fd, &pidfd, &in_cgroup);
        int clone_errno = errno;
        if (pid == 0) {
                close(socks[0]);
                char c;
                if (!in_cgroup && read(socks[1], &c, 1) != 1)
                        _exit(127);
                exec_child(cfg, socks[1]);
        }
        if (setns(cfg->own_pidns_fd, CLONE_NEWPID) < 0)
                abort();        /* the daemon would create every later process in the sandbox */
        close(socks[1]);
        if (pid < 0) {
                close(socks[0]);
                return pbox_error_sys(err, clone_errno, "clone the exec process");
        }
        _cleanup_close_ int sync_fd = socks[0];
        _cleanup_close_ int pfd = pidfd;
        if (!in_cgroup) {
                int r = cgroup_move_pid(cfg->cgroup_fd, pid, err);
                if (r < 0 || write(sync_fd, "0", 1) != 1) {
                        kill(pid, SIGKILL);
                        reap(pid);
                        return r < 0 ? r : pbox_error_sys(err, errno, "sync with the exec process");
                }
        }
        struct child_report rep;
        int r = read_report(sync_fd, &rep);
        if (r == 0) {
                ret->pid = pid;
                ret->pidfd = TAKE_FD(pfd);
                ret->failed_step = NULL;
                ret->child_errno = 0;
                return 0;
        }
        kill(pid, SIGKILL);
        reap(pid);
        if (r == 1 && rep.step) {
                ret->pid = 0;
                ret->pidfd = -1;
                ret->failed_step = rep.step;
                ret->child_errno = rep.err;
                return 0;
        }
        return pbox_error_set(err, EPROTO, "the exec process died before exec");
}

bool spawn_probe_pidfd_setns(void)
{
        /* Joining our own UTS namespace through a pidfd is a no-op where the
         * kernel understands pidfds in setns(), EINVAL where it does not. */
        int pidfd = sys_pidfd_open(getpid(), 0);
        if (pidfd < 0)
                return false;
        int r = setns(pidfd, CLONE_NEWUTS);
        close(pidfd);
        return r == 0;
}
