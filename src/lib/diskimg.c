/* diskimg.c — a writable layer on a loop-mounted ext4 image (diskimg.h). */
#include "config.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diskimg.h"
#include "util.h"

#ifndef EXT4_SUPER_MAGIC
#define EXT4_SUPER_MAGIC 0xEF53
#endif
#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
        __u32 fd;
        __u32 block_size;
        struct loop_info64 info;
        __u64 __reserved[8];
};
#endif

static bool find_tool(const char *name, char path[64])
{
        static const char *const dirs[] = { "/usr/sbin", "/sbin", NULL };
        for (const char *const *d = dirs; *d; d++) {
                snprintf(path, 64, "%s/%s", *d, name);
                if (access(path, X_OK) == 0)
                        return true;
        }
        path[0] = '\0';
        return false;
}

int diskimg_probe(struct pbox_error *err)
{
        char path[64];
        static const char *const tools[] = { "mkfs.ext4", "resize2fs", "e2fsck", NULL };
        for (const char *const *t = tools; *t; t++)
                if (!find_tool(*t, path))
                        return pbox_error_set(err, ENOENT, "%s is not installed (e2fsprogs)", *t);
        int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "no loop devices (/dev/loop-control)");
        close(fd);
        return 0;
}

/* Run an e2fsprogs program (argv[0] a bare name looked up in /sbin and
 * /usr/sbin) with an empty environment, stdin and stdout on /dev/null.
 * Its exit status goes to *ret_status; the last line it wrote on stderr
 * (the first is often a banner) to said.  Killed after timeout_s seconds:
 * -ETIMEDOUT (the final wait can still take as long as the kernel needs
 * to let a process in uninterruptible sleep die). */
static int run_tool_status(char *const argv[], int timeout_s, int *ret_status, char said[160],
                           struct pbox_error *err)
{
        char path[64];
        said[0] = '\0';
        if (!find_tool(argv[0], path))
                return pbox_error_set(err, ENOENT, "%s is not installed (e2fsprogs)", argv[0]);
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                return pbox_error_sys(err, errno, "pipe");
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
                int e = errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return pbox_error_sys(err, e, "open /dev/null");
        }
        char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *) "LC_ALL=C", NULL };
        pid_t pid = fork();
        if (pid == 0) {
                /* System calls only from here. */
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(pipefd[1], 2) < 0 ||
                    fcntl(2, F_SETFL, 0) < 0)
                        _exit(126);
                execve(path, argv, envp);
                _exit(127);
        }
        int e = errno;
        close(pipefd[1]);
        close(devnull);
        if (pid < 0) {
                close(pipefd[0]);
                return pbox_error_sys(err, e, "fork for %s", argv[0]);
        }
        /* The tail of stderr: a window of the last bytes written. */
        char tail[512];
        size_t len = 0;
        bool eof = false, exited = false, timed_out = false;
        int status = 0;
        uint64_t deadline = util_now_ms() + (uint64_t) timeout_s * 1000;
        while (!exited) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid) {
                        exited = true;
                        break;
                }
                if (w < 0 && errno != EINTR)
                        break;
                uint64_t now = util_now_ms();
                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                /* Wake for output, or every 50 ms to see whether it exited. */
                uint64_t left = deadline - now;
                struct pollfd pfd = { pipefd[0], POLLIN, 0 };
                int pr = poll(&pfd, eof ? 0 : 1, (int) (left < 50 ? left : 50));
                if (pr < 0 && errno != EINTR)
                        break;
                if (pr <= 0 || eof)
                        continue;
                char buf[512];
                ssize_t n = read(pipefd[0], buf, sizeof buf);
                if (n == 0) {
                        eof = true;
                        continue;
                }
                if (n < 0)
                        continue;       /* EAGAIN, EINTR */
                size_t k = (size_t) n;
                if (k >= sizeof tail) {
                        memcpy(tail, buf + k - sizeof tail, sizeof tail);
                        len = sizeof tail;
                } else {
                        if (len + k > sizeof tail) {
                                memmove(tail, tail + (len + k - sizeof tail), sizeof tail - k);
                                len = sizeof tail - k;
                        }
                        memcpy(tail + len, buf, k);
                        len += k;
                }
        }
        close(pipefd[0]);
        if (!exited) {
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        /* Its last line that says something. */
        while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == ' ' || tail[len - 1] == '\r'))
                len--;
        size_t from = len;
        while (from > 0 && tail[from - 1] != '\n')
                from--;
        snprintf(said, 160, "%.*s", (int) (len - from), tail + from);
        if (!exited && timed_out)
                return pbox_error_set(err, ETIMEDOUT, "%s did not finish within %d s", argv[0], timeout_s);
        if (!exited)
                return pbox_error_set(err, EIO, "%s: lost track of it", argv[0]);
        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return 0;
}

/* The same, where anything but exit status 0 is a failure. */
static int run_tool(char *const argv[], int timeout_s, struct pbox_error *err)
{
        int status = 0;
        char said[160];
        int r = run_tool_status(argv, timeout_s, &status, said, err);
        if (r < 0)
                return r;
        if (status != 0)
                return pbox_error_set(err, EIO, "%s failed (status %d)%s%s", argv[0], status, said[0] ? ": " : "",
                                      said);
        return 0;
}

int diskimg_create(int dirfd, const char *name, const char *path, uint64_t size_bytes, uid_t uid, gid_t gid,
                   struct pbox_error *err)
{
        if (size_bytes < DISKIMG_MIN_BYTES)
                return pbox_error_set(err, EINVAL, "a disk of %llu bytes is too small for ext4 (at least %llu)",
                                      (unsigned long long) size_bytes, (unsigned long long) DISKIMG_MIN_BYTES);
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "create %s", path);
        int r = 0;
        if (ftruncate(fd, (off_t) size_bytes) < 0)
                r = pbox_error_sys(err, errno, "size %s to %llu bytes", path, (unsigned long long) size_bytes);
        close(fd);
        if (r == 0) {
                char owner[64], blocks[32];
                snprintf(owner, sizeof owner, "root_owner=%u:%u,lazy_itable_init=1,lazy_journal_init=1",
                         (unsigned) uid, (unsigned) gid);
                snprintf(blocks, sizeof blocks, "%llu", (unsigned long long) (size_bytes / 4096));
                /* -m 0: the sandbox gets every block; -b 4096 fixes the block
                 * size; no journal: the layer is scratch, and a journal
                 * would take 4 MiB and more of a small disk. */
                char *const argv[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", (char *) "-m", (char *) "0",
                                       (char *) "-b", (char *) "4096", (char *) "-O", (char *) "^has_journal",
                                       (char *) "-E", owner, (char *) path, blocks, NULL };
                r = run_tool(argv, 120, err);
        }
        if (r < 0)
                unlinkat(dirfd, name, 0);
        return r;
}

/* Attach image to a free loop device; returns its open fd and its name. */
static int loop_attach(const char *image, char dev[32], struct pbox_error *err)
{
        _cleanup_close_ int file = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (file < 0)
                return pbox_error_sys(err, errno, "open %s", image);
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return pbox_error_sys(err, errno, "open /dev/loop-control");
        for (int attempt = 0; attempt < 16; attempt++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return pbox_error_sys(err, errno, "find a free loop device");
                snprintf(dev, 32, "/dev/loop%d", n);
                int lfd = open(dev, O_RDWR | O_CLOEXEC);
                if (lfd < 0)
                        return pbox_error_sys(err, errno, "open %s", dev);
                struct loop_config cfg;
                memset(&cfg, 0, sizeof cfg);
                cfg.fd = (__u32) file;
                cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
                snprintf((char *) cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", image);
                if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
                        return lfd;
                if (errno == EINVAL || errno == ENOTTY) {
                        /* No LOOP_CONFIGURE (before 5.8): the two-step way. */
                        if (ioctl(lfd, LOOP_SET_FD, file) == 0) {
                                if (ioctl(lfd, LOOP_SET_STATUS64, &cfg.info) == 0)
                                        return lfd;
                                int e = errno;
                                ioctl(lfd, LOOP_CLR_FD, 0);
                                close(lfd);
                                return pbox_error_sys(err, e, "configure %s", dev);
                        }
                }
                int e = errno;
                close(lfd);
                if (e != EBUSY)         /* EBUSY: taken meanwhile by someone else; next one */
                        return pbox_error_sys(err, e, "attach %s to %s", image, dev);
        }
        return pbox_error_set(err, EBUSY, "no free loop device for %s", image);
}

int diskimg_check(const char *image, struct pbox_error *err)
{
        /* -p: repair what is safe to repair unattended; 1 and 2 mean
         * "errors corrected", 4 and more "left uncorrected" or worse. */
        char *const argv[] = { (char *) "e2fsck", (char *) "-p", (char *) image, NULL };
        int status = 0;
        char said[160];
        int r = run_tool_status(argv, 600, &status, said, err);
        if (r < 0)
                return r;
        if (status > 2)
                return pbox_error_set(err, EUCLEAN, "e2fsck found errors it could not repair in %s (status %d)%s%s",
                                      image, status, said[0] ? ": " : "", said);
        return 0;
}

int diskimg_mount(const char *image, const char *dir, bool check_first, struct pbox_error *err)
{
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "mkdir %s", dir);
        if (util_is_mount_point(dir))
                return 0;
        int r0 = check_first ? diskimg_check(image, err) : 0;
        if (r0 < 0)
                return r0;
        char dev[32];
        int lfd = loop_attach(image, dev, err);
        if (lfd < 0)
                return lfd;
        int r = 0;
        /* By its /dev name, which the mount table then shows (resize2fs
         * finds the mount point of the device it grows there); our open
         * fd keeps the device attached to the image meanwhile. */
        if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "") < 0)
                r = pbox_error_sys(err, errno, "mount %s (ext4) on %s", image, dir);
        if (r < 0)
                ioctl(lfd, LOOP_CLR_FD, 0);
        /* Mounted, the device stays until the unmount (autoclear). */
        close(lfd);
        return r;
}

int diskimg_size(const char *image, uint64_t *ret_bytes, struct pbox_error *err)
{
        struct stat st;
        if (stat(image, &st) < 0)
                return pbox_error_sys(err, errno, "stat %s", image);
        *ret_bytes = (uint64_t) st.st_size;
        return 0;
}

/* CAP_SYS_RESOURCE in our effective set: ext4's online resize needs it
 * (and resize2fs, run by root, gets what we have). */
static bool have_sys_resource(void)
{
        struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (syscall(SYS_capget, &hdr, data) < 0)
                return false;
        return data[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32));
}

int diskimg_grow(const char *image, const char *dir, uint64_t size_bytes, struct pbox_error *err)
{
        uint64_t cur = 0;
        int r = diskimg_size(image, &cur, err);
        if (r < 0)
                return r;
        if (size_bytes < cur)
                return pbox_error_set(err, EBUSY, "disk_bytes: an ext4 disk of %llu bytes cannot shrink while in use",
                                      (unsigned long long) cur);
        if (!have_sys_resource())
                return pbox_error_set(err, EPERM, "disk_bytes: growing an ext4 disk while in use needs "
                                      "CAP_SYS_RESOURCE, which pboxd does not have on this host");
        struct statfs sf;
        struct stat st;
        if (!util_is_mount_point(dir) || statfs(dir, &sf) < 0 || sf.f_type != EXT4_SUPER_MAGIC || stat(dir, &st) < 0)
                return pbox_error_set(err, ENOENT, "%s is not a mounted ext4 disk", dir);
        /* The loop device under the mount, and that it is this image's. */
        char dev[32], sysfile[96];
        snprintf(dev, sizeof dev, "/dev/loop%u", minor(st.st_dev));
        snprintf(sysfile, sizeof sysfile, "/sys/dev/block/%u:%u/loop/backing_file", major(st.st_dev), minor(st.st_dev));
        _cleanup_free_ char *backing = NULL;
        if (util_read_file_at(AT_FDCWD, sysfile, 4096, &backing, NULL, err) < 0)
                return pbox_error_prefix(err, "the loop device under %s", dir);
        backing[strcspn(backing, "\n")] = '\0';
        struct stat bst, ist;
        if (stat(image, &ist) < 0 || stat(backing, &bst) < 0 || bst.st_ino != ist.st_ino || bst.st_dev != ist.st_dev)
                return pbox_error_set(err, EINVAL, "%s is not backed by %s", dir, image);
        _cleanup_close_ int lfd = open(dev, O_RDWR | O_CLOEXEC);
        struct stat lst;
        if (lfd < 0 || fstat(lfd, &lst) < 0 || lst.st_rdev != st.st_dev)
                return pbox_error_sys(err, lfd < 0 ? errno : ENODEV, "open %s", dev);
        _cleanup_close_ int fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t) size_bytes) < 0)
                return pbox_error_sys(err, errno, "grow %s to %llu bytes", image, (unsigned long long) size_bytes);
        /* No undo past this point: resize2fs may have grown the file
         * system part of the way, and a device smaller than its file
         * system would corrupt it.  A larger image is harmless; the same
         * request again (the same size included) finishes the growth. */
        if (ioctl(lfd, LOOP_SET_CAPACITY, 0) < 0)
                return pbox_error_sys(err, errno, "tell %s its new size", dev);
        char *const argv[] = { (char *) "resize2fs", dev, NULL };
        return run_tool(argv, 600, err);
}
