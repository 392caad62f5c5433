/* syscalls.h — thin wrappers for system calls that glibc 2.36 does not wrap
 * (clone3, pidfd_*, openat2, close_range, mount API, seccomp). */
#pragma once

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif

static inline long sys_clone3(struct clone_args *args, size_t size)
{
        return syscall(__NR_clone3, args, size);
}
static inline int sys_pidfd_open(pid_t pid, unsigned int flags)
{
        return (int) syscall(__NR_pidfd_open, pid, flags);
}
static inline int sys_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags)
{
        return (int) syscall(__NR_pidfd_send_signal, pidfd, sig, info, flags);
}
static inline int sys_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
        return (int) syscall(__NR_close_range, first, last, flags);
}
static inline int sys_openat2(int dirfd, const char *path, struct open_how *how, size_t size)
{
        return (int) syscall(__NR_openat2, dirfd, path, how, size);
}
static inline int sys_pivot_root(const char *new_root, const char *put_old)
{
        return (int) syscall(SYS_pivot_root, new_root, put_old);
}
