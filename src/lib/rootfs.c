/* rootfs.c — the overlay root of a sandbox and the mounts inside it
 * (theory of operation in rootfs.h). */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "rootfs.h"
#include "util.h"

const char *const rootfs_masked_paths[] = {
        "proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug", "proc/latency_stats",
        "proc/timer_stats", "proc/acpi", "proc/scsi", "proc/asound", "sys/firmware",
        "sys/devices/virtual/powercap", NULL,
};

const char *const rootfs_readonly_paths[] = {
        "proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs", NULL,
};

const char *const rootfs_dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };

/* ---- host side ------------------------------------------------------------ */

int rootfs_mount_overlay(char *const *lower_dirs, const char *upper_dir, const char *work_dir,
                         const char *target, struct pbox_error *err)
{
        size_t n = util_strv_len(lower_dirs);
        if (n == 0)
                return pbox_error_set(err, EINVAL, "an image needs at least one layer");
        for (char *const *p = lower_dirs; *p; p++)
                if (strpbrk(*p, ",:\\") || (*p)[0] != '/')
                        return pbox_error_set(err, EINVAL, "unusable layer path '%s'", *p);
        if (strpbrk(upper_dir, ",:\\") || strpbrk(work_dir, ",:\\"))
                return pbox_error_set(err, EINVAL, "unusable upper/work path");

        /* The mount data is limited to a page: when all layers share one parent
         * directory (the layer store), name them relative to it. */
        _cleanup_free_ char *parent = util_xstrdup(lower_dirs[0]);
        char *slash = strrchr(parent, '/');
        *slash = '\0';
        bool same_parent = true;
        size_t plen = strlen(parent);
        for (char *const *p = lower_dirs; *p; p++)
                if (strncmp(*p, parent, plen) || (*p)[plen] != '/' || strchr(*p + plen + 1, '/'))
                        same_parent = false;

        size_t cap = 64 + strlen(upper_dir) + strlen(work_dir);
        for (char *const *p = lower_dirs; *p; p++)
                cap += strlen(*p) + 1;
        _cleanup_free_ char *data = util_xmalloc(cap);
        size_t off = (size_t) snprintf(data, cap, "lowerdir=");
        for (size_t i = n; i-- > 0;) {         /* overlay wants the top layer first */
                const char *l = same_parent ? lower_dirs[i] + plen + 1 : lower_dirs[i];
                off += (size_t) snprintf(data + off, cap - off, "%s%s", l, i ? ":" : "");
        }
        snprintf(data + off, cap - off, ",upperdir=%s,workdir=%s", upper_dir, work_dir);
        if (strlen(data) >= 4096)
                return pbox_error_set(err, E2BIG, "too many layers for one overlay mount (%zu)", n);

        _cleanup_close_ int cwd = -1;
        if (same_parent) {
                cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (cwd < 0)
                        return pbox_error_sys(err, errno, "open cwd");
                if (chdir(parent) < 0)
                        return pbox_error_sys(err, errno, "chdir %s", parent);
        }
        int r = mount("overlay", target, "overlay", MS_NODEV, data);
        int saved = errno;
        if (cwd >= 0 && fchdir(cwd) < 0)
                return pbox_error_sys(err, errno, "restore cwd");
        if (r < 0)
                return pbox_error_sys(err, saved, "mount overlay on %s", target);
        return 0;
}

int rootfs_unmount(const char *target, struct pbox_error *err)
{
        if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
                return pbox_error_sys(err, errno, "unmount %s", target);
        return 0;
}

/* ---- size-limited writable layer (host side) ---------------------------- */

static bool is_tmpfs_mount(const char *dir)
{
        struct statfs sf;
        /* A tmpfs mounted right there, not a tmpfs the whole state dir lives on. */
        return statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC && util_is_mount_point(dir);
}

static uint64_t layer_tmpfs_inodes(uint64_t size_bytes)
{
        if (size_bytes == 0)
                return 0;       /* size=0 (no limit): nr_inodes=0 is no limit either */
        uint64_t n = size_bytes / 4096;
        return n < 1024 ? 1024 : n;
}

static int tmpfs_used(const char *dir, uint64_t *ret, struct pbox_error *err)
{
        struct statfs sf;
        if (statfs(dir, &sf) < 0)
                return pbox_error_sys(err, errno, "statfs %s", dir);
        *ret = (uint64_t) (sf.f_blocks - sf.f_bfree) * (uint64_t) sf.f_bsize;
        return 0;
}

int rootfs_mount_layer_tmpfs(const char *dir, uint64_t size_bytes, uid_t uid, gid_t gid, struct pbox_error *err)
{
        if (size_bytes == 0)
                return pbox_error_set(err, EINVAL, "a writable layer of 0 bytes");
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "mkdir %s", dir);
        if (!is_tmpfs_mount(dir)) {
                char data[64];
                /* Inodes are bounded too (one per 4 KiB, at least 1024):
                 * empty files cost kernel memory, not blocks. */
                snprintf(data, sizeof data, "size=%llu,nr_inodes=%llu,mode=0755", (unsigned long long) size_bytes,
                         (unsigned long long) layer_tmpfs_inodes(size_bytes));
                if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, data) < 0)
                        return pbox_error_sys(err, errno, "mount a tmpfs of %llu bytes on %s",
                                              (unsigned long long) size_bytes, dir);
        }
        return rootfs_prepare_layer(dir, uid, gid, err);
}

int rootfs_prepare_layer(const char *dir, uid_t uid, gid_t gid, struct pbox_error *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "open %s", dir);
        if ((mkdirat(dfd, "upper", 0755) < 0 && errno != EEXIST) ||
            fchownat(dfd, "upper", uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            (mkdirat(dfd, "work", 0700) < 0 && errno != EEXIST))
                return pbox_error_sys(err, errno, "create the overlay directories in %s", dir);
        return 0;
}

int rootfs_resize_layer_tmpfs(const char *dir, uint64_t size_bytes, struct pbox_error *err)
{
        if (!is_tmpfs_mount(dir))
                return pbox_error_set(err, ENOENT, "%s is not a size-limited writable layer", dir);
        uint64_t used = 0;
        int r = tmpfs_used(dir, &used, err);
        if (r < 0)
                return r;
        if (size_bytes && size_bytes < used)
                return pbox_error_set(err, EBUSY, "disk_bytes: %llu bytes are in use, more than %llu",
                                      (unsigned long long) used, (unsigned long long) size_bytes);
        char data[64];
        snprintf(data, sizeof data, "size=%llu,nr_inodes=%llu", (unsigned long long) size_bytes,
                 (unsigned long long) layer_tmpfs_inodes(size_bytes));
        if (mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, data) < 0) {
                if (errno == EINVAL)    /* tmpfs: "too small a size for current use" (raced) */
                        return pbox_error_set(err, EBUSY, "disk_bytes: more than %llu bytes are in use",
                                              (unsigned long long) size_bytes);
                return pbox_error_sys(err, errno, "resize the tmpfs on %s", dir);
        }
        return 0;
}

static int walk_usage(int dfd, int depth, uint64_t *left, uint64_t *sum)
{
        if (depth > 256)
                return -ELOOP;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (*left == 0) {
                        r = -E2BIG;
                        break;
                }
                (*left)--;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;       /* gone meanwhile */
                *sum += (uint64_t) st.st_blocks * 512;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                r = walk_usage(sub, depth + 1, left, sum);
                }
        }
        closedir(d);
        return r;
}

int rootfs_layer_usage(const char *dir, bool tmpfs, uint64_t max_entries, uint64_t *ret_bytes,
                       struct pbox_error *err)
{
        if (tmpfs)
                return tmpfs_used(dir, ret_bytes, err);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "open %s", dir);
        uint64_t sum = 0, left = max_entries;
        int r = walk_usage(dfd, 0, &left, &sum);
        *ret_bytes = sum;
        if (r == -E2BIG)
                return pbox_error_set(err, E2BIG, "%s holds more than %llu entries", dir,
                                      (unsigned long long) max_entries);
        if (r < 0)
                return pbox_error_sys(err, -r, "walk %s", dir);
        return 0;
}

/* ---- child side: system calls only ------------------------------------- */

static void fd_path(char buf[32], int fd)
{
        static const char prefix[] = "/proc/self/fd/";
        memcpy(buf, prefix, sizeof prefix - 1);
        char digits[12];
        int n = 0;
        unsigned v = (unsigned) fd;
        do {
                digits[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v && n < 11);
        size_t o = sizeof prefix - 1;
        while (n > 0)
                buf[o++] = digits[--n];
        buf[o] = '\0';
}

/* Resolve rel beneath root_fd one component at a time, never following a
 * symlink.  With mkdir_missing, missing directories are created (0755).
 * Returns an O_PATH fd or -errno. */
static int resolve_beneath(int root_fd, const char *rel, bool mkdir_missing)
{
        char comp[256];
        int cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -errno;
        const char *p = rel;
        while (*p) {
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t) (end - p) : strlen(p);
                if (len == 0 || len >= sizeof comp) {
                        close(cur);
                        return -EINVAL;
                }
                memcpy(comp, p, len);
                comp[len] = '\0';
                bool last = !end || !end[1];
                int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY);
                int next = openat(cur, comp, flags);
                if (next < 0 && errno == ENOENT && mkdir_missing) {
                        if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                                int e = -errno;
                                close(cur);
                                return e;
                        }
                        next = openat(cur, comp, flags | O_DIRECTORY);
                }
                if (next < 0) {
                        int e = -errno;
                        close(cur);
                        return e;
                }
                close(cur);
                cur = next;
                struct stat st;
                if (fstat(cur, &st) < 0 || S_ISLNK(st.st_mode)) {
                        close(cur);
                        return -ELOOP;
                }
                p = end ? end + 1 : p + len;
        }
        return cur;
}

static int mount_on_fd(const char *source, int target_fd, const char *fstype, unsigned long flags,
                       const char *data)
{
        char target[32];
        fd_path(target, target_fd);
        if (mount(source, target, fstype, flags, data) < 0)
                return -errno;
        return 0;
}

/* Mount something on rel (created as a directory if missing). */
static int mount_at(int root_fd, const char *rel, const char *source, const char *fstype,
                    unsigned long flags, const char *data)
{
        int fd = resolve_beneath(root_fd, rel, true);
        if (fd < 0)
                return fd;
        int r = mount_on_fd(source, fd, fstype, flags, data);
        close(fd);
        return r;
}

static int mask_path(int root_fd, const char *rel)
{
        int fd = resolve_beneath(root_fd, rel, false);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        struct stat st;
        int r = fstat(fd, &st) < 0 ? -errno : 0;
        if (r == 0) {
                if (S_ISDIR(st.st_mode))
                        r = mount_on_fd("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                        "mode=0555,size=4k,nr_inodes=1");
                else
                        r = mount_on_fd("/dev/null", fd, NULL, MS_BIND, NULL);
        }
        close(fd);
        return r;
}

static int readonly_path(int root_fd, const char *rel)
{
        int fd = resolve_beneath(root_fd, rel, false);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        char self[32];
        fd_path(self, fd);
        int r = mount(self, self, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        /* Re-resolve: the new bind mount now sits on top of the path. */
        fd = resolve_beneath(root_fd, rel, false);
        if (fd < 0)
                return fd;
        r = mount_on_fd(NULL, fd, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        close(fd);
        return r;
}

static int setup_dev(int root_fd, const char **step)
{
        int r;
        *step = "mount tmpfs on /dev";
        if ((r = mount_at(root_fd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k")) < 0)
                return r;
        int dev = resolve_beneath(root_fd, "dev", false);
        if (dev < 0)
                return dev;
        for (const char *const *n = rootfs_dev_nodes; *n; n++) {
                *step = "bind device node into /dev";
                int fd = openat(dev, *n, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
                if (fd < 0) {
                        r = -errno;
                        break;
                }
                char src[64] = "/dev/";
                strncat(src, *n, sizeof src - 6);
                r = mount_on_fd(src, fd, NULL, MS_BIND, NULL);
                close(fd);
                if (r < 0)
                        break;
        }
        if (r >= 0) {
                *step = "mount devpts on /dev/pts";
                r = mount_at(dev, "pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                             "newinstance,ptmxmode=0666,mode=0620");
        }
        if (r >= 0) {
                *step = "mount tmpfs on /dev/shm";
                r = mount_at(dev, "shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             "mode=1777,size=65536k");
        }
        if (r >= 0) {
                *step = "create /dev symlinks";
                static const char *const links[][2] = {
                        { "pts/ptmx", "ptmx" }, { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
                        { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
                };
                for (size_t i = 0; i < ARRAY_SIZE(links) && r >= 0; i++)
                        if (symlinkat(links[i][0], dev, links[i][1]) < 0)
                                r = -errno;
        }
        close(dev);
        return r < 0 ? r : 0;
}

int rootfs_setup_child(const char *rootfs, const char **ret_step)
{
        int r;
        *ret_step = "make the mount tree private";
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;

        /* The overlay was mounted by the parent, so in this (less privileged)
         * mount namespace it is locked, and pivot_root refuses locked mounts:
         * bind it onto itself to get a mount of our own. */
        *ret_step = "bind the rootfs onto itself";
        if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
                return -errno;

        *ret_step = "open the rootfs";
        int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
                return -errno;

        *ret_step = "mount /proc (a symlink or non-directory in the image is refused)";
        if ((r = mount_at(root_fd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) < 0)
                goto out;
        *ret_step = "mount /sys read-only";
        if ((r = mount_at(root_fd, "sys", "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) < 0)
                goto out;
        if ((r = setup_dev(root_fd, ret_step)) < 0)
                goto out;
        *ret_step = "mask a path";
        for (const char *const *p = rootfs_masked_paths; *p; p++)
                if ((r = mask_path(root_fd, *p)) < 0)
                        goto out;
        *ret_step = "make a path read-only";
        for (const char *const *p = rootfs_readonly_paths; *p; p++)
                if ((r = readonly_path(root_fd, *p)) < 0)
                        goto out;

        *ret_step = "pivot_root";
        if (fchdir(root_fd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0) {
                r = -errno;
                goto out;
        }
        *ret_step = "detach the old root";
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
                r = -errno;
                goto out;
        }
        r = 0;
out:
        close(root_fd);
        return r;
}
