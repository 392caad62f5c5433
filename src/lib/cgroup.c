/* cgroup.c — the daemon's cgroup v2 subtree: discovery, creation, killing,
 * removal (see cgroup.h for the layout). */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cgroup.h"
#include "util.h"

/* mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS" */
int cgroup_parse_mountinfo_cgroup2(const char *mountinfo, char **ret_mount, struct pbox_error *err)
{
        const char *line = mountinfo;
        while (line && *line) {
                const char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t) (eol - line) : strlen(line);
                _cleanup_free_ char *l = strndup(line, len);
                if (!l)
                        abort();
                char *sep = strstr(l, " - ");
                if (sep) {
                        char fstype[64] = "";
                        sscanf(sep + 3, "%63s", fstype);
                        char root[4096], mnt[4096];
                        if (!strcmp(fstype, "cgroup2") &&
                            sscanf(l, "%*s %*s %*s %4095s %4095s", root, mnt) == 2 &&
                            !strcmp(root, "/")) {
                                /* mount points are octal-escaped (\040 for space) */
                                if (strchr(mnt, '\\'))
                                        return pbox_error_set(err, EINVAL, "cgroup2 mount point '%s' has escaped characters", mnt);
                                *ret_mount = util_xstrdup(mnt);
                                return 0;
                        }
                }
                line = eol ? eol + 1 : NULL;
        }
        return pbox_error_set(err, ENOENT, "no cgroup2 hierarchy is mounted");
}

int cgroup_parse_proc_cgroup(const char *text, char **ret_path, struct pbox_error *err)
{
        const char *line = text;
        while (line && *line) {
                const char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t) (eol - line) : strlen(line);
                if (len >= 4 && !strncmp(line, "0::/", 4)) {
                        char *p = strndup(line + 3, len - 3);
                        if (!p)
                                abort();
                        /* " (deleted)" suffix or relative paths mean we cannot trust it */
                        if (strstr(p, "..") || strchr(p, ' ')) {
                                free(p);
                                return pbox_error_set(err, EINVAL, "unexpected cgroup path in /proc/self/cgroup");
                        }
                        *ret_path = p;
                        return 0;
                }
                line = eol ? eol + 1 : NULL;
        }
        return pbox_error_set(err, ENOENT, "no cgroup v2 entry (0::) in /proc/self/cgroup");
}

static int read_small_at(int dirfd, const char *name, char *buf, size_t len)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, len - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return (int) n;
}

static int write_small_at(int dirfd, const char *name, const char *data)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, strlen(data));
        if (n < 0)
                return -errno;
        return 0;
}

int cgroup_manager_open(const char *name, struct cgroup_manager **ret, struct pbox_error *err)
{
        if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
                return pbox_error_set(err, EINVAL, "invalid cgroup name '%s'", name ? name : "");
        _cleanup_free_ char *mountinfo = NULL, *selfcg = NULL, *mnt = NULL, *own = NULL;
        int r = util_read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 22, &mountinfo, NULL, err);
        if (r < 0)
                return r;
        r = cgroup_parse_mountinfo_cgroup2(mountinfo, &mnt, err);
        if (r < 0)
                return r;
        r = util_read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &selfcg, NULL, err);
        if (r < 0)
                return r;
        r = cgroup_parse_proc_cgroup(selfcg, &own, err);
        if (r < 0)
                return r;

        /* Beside our own cgroup: its parent / name.  At the root: /name. */
        _cleanup_free_ char *parent = util_xstrdup(own);
        char *slash = strrchr(parent, '/');
        if (slash)
                *slash = '\0';
        const char *prel = parent[0] == '/' ? parent + 1 : parent;
        _cleanup_free_ char *base_rel = *prel ? util_xasprintf("%s/%s", prel, name) : util_xstrdup(name);
        _cleanup_free_ char *base_path = util_xasprintf("%s/%s", mnt, base_rel);

        if (mkdir(base_path, 0755) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "create cgroup %s", base_path);
        int fd = open(base_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open cgroup %s", base_path);

        struct cgroup_manager *m = util_xcalloc(1, sizeof *m);
        m->mount_path = TAKE_PTR(mnt);
        m->base_rel = TAKE_PTR(base_rel);
        m->base_path = TAKE_PTR(base_path);
        m->base_fd = fd;
        m->has_kill = faccessat(fd, "cgroup.kill", F_OK, 0) == 0;
        char buf[512];
        m->controllers = util_xstrdup(read_small_at(fd, "cgroup.controllers", buf, sizeof buf) >= 0 ? buf : "");
        char *nl = strchr(m->controllers, '\n');
        if (nl)
                *nl = '\0';
        *ret = m;
        return 0;
}

void cgroup_manager_free(struct cgroup_manager *mgr)
{
        if (!mgr)
                return;
        if (mgr->base_fd >= 0)
                close(mgr->base_fd);
        free(mgr->mount_path);
        free(mgr->base_rel);
        free(mgr->base_path);
        free(mgr->controllers);
        free(mgr);
}

static int check_rel(const char *rel, struct pbox_error *err)
{
        if (!rel || !*rel || rel[0] == '/' || strstr(rel, ".."))
                return pbox_error_set(err, EINVAL, "invalid cgroup path '%s'", rel ? rel : "");
        return 0;
}

int cgroup_create(struct cgroup_manager *mgr, const char *rel, int *ret_fd, struct pbox_error *err)
{
        int r = check_rel(rel, err);
        if (r < 0)
                return r;
        if (mkdirat(mgr->base_fd, rel, 0755) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "create cgroup %s/%s", mgr->base_path, rel);
        return cgroup_open(mgr, rel, ret_fd, err);
}

int cgroup_open(struct cgroup_manager *mgr, const char *rel, int *ret_fd, struct pbox_error *err)
{
        int r = check_rel(rel, err);
        if (r < 0)
                return r;
        int fd = openat(mgr->base_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open cgroup %s/%s", mgr->base_path, rel);
        *ret_fd = fd;
        return 0;
}

int cgroup_move_pid(int cgroup_fd, pid_t pid, struct pbox_error *err)
{
        char buf[32];
        snprintf(buf, sizeof buf, "%d\n", (int) pid);
        int r = write_small_at(cgroup_fd, "cgroup.procs", buf);
        if (r < 0)
                return pbox_error_sys(err, -r, "move pid %d into cgroup", (int) pid);
        return 0;
}

int cgroup_populated(int cgroup_fd, struct pbox_error *err)
{
        char buf[512];
        int r = read_small_at(cgroup_fd, "cgroup.events", buf, sizeof buf);
        if (r < 0)
                return pbox_error_sys(err, -r, "read cgroup.events");
        const char *p = strstr(buf, "populated ");
        if (!p)
                return pbox_error_set(err, EBADMSG, "cgroup.events has no 'populated' line");
        return p[10] == '1' ? 1 : 0;
}

/* Signal every pid in cgroup_fd and below; returns the number signalled. */
static int kill_tree(int cgroup_fd, int depth)
{
        int count = 0;
        char buf[65536];
        if (read_small_at(cgroup_fd, "cgroup.procs", buf, sizeof buf) > 0) {
                char *save = NULL;
                for (char *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
                        pid_t pid = (pid_t) atoi(tok);
                        if (pid > 1 && kill(pid, SIGKILL) == 0)
                                count++;
                }
        }
        if (depth > 32)
                return count;
        int dfd = fcntl(cgroup_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return count;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return count;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                int cfd = openat(cgroup_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd >= 0) {
                        count += kill_tree(cfd, depth + 1);
                        close(cfd);
                }
        }
        closedir(d);
        return count;
}

int cgroup_kill(struct cgroup_manager *mgr, int cgroup_fd, struct pbox_error *err)
{
        if (mgr->has_kill) {
                int r = write_small_at(cgroup_fd, "cgroup.kill", "1");
                if (r == 0)
                        return 0;
                if (r != -ENOENT && r != -EINVAL)
                        return pbox_error_sys(err, -r, "write cgroup.kill");
        }
        /* Fallback: freeze so nothing can fork behind our back, kill, thaw. */
        bool frozen = write_small_at(cgroup_fd, "cgroup.freeze", "1") == 0;
        for (int i = 0; i < 100 && kill_tree(cgroup_fd, 0) > 0; i++)
                ;
        if (frozen)
                write_small_at(cgroup_fd, "cgroup.freeze", "0");
        return 0;
}

static int remove_tree(int parent_fd, const char *name, int depth, struct pbox_error *err)
{
        if (depth > 32)
                return pbox_error_set(err, ELOOP, "cgroup tree too deep");
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return pbox_error_sys(err, errno, "open cgroup %s", name);
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return pbox_error_sys(err, errno, "opendir cgroup %s", name);
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                r = remove_tree(dirfd(d), de->d_name, depth + 1, err);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;
        /* A cgroup whose last process just died may still be busy for a moment. */
        for (int i = 0; i < 200; i++) {
                if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        break;
                struct timespec ts = { 0, 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return pbox_error_sys(err, errno, "remove cgroup %s", name);
}

int cgroup_remove(struct cgroup_manager *mgr, const char *rel, struct pbox_error *err)
{
        int r = check_rel(rel, err);
        if (r < 0)
                return r;
        return remove_tree(mgr->base_fd, rel, 0, err);
}

int cgroup_cpu_usage(int cgroup_fd, uint64_t *ret_usage_us, uint64_t *ret_user_us,
                     uint64_t *ret_system_us, struct pbox_error *err)
{
        char buf[2048];
        int r = read_small_at(cgroup_fd, "cpu.stat", buf, sizeof buf);
        if (r < 0)
                return pbox_error_sys(err, -r, "read cpu.stat");
        unsigned long long usage = 0, user = 0, sys = 0;
        const char *p;
        if ((p = strstr(buf, "usage_usec ")))
                usage = strtoull(p + 11, NULL, 10);
        if ((p = strstr(buf, "user_usec ")))
                user = strtoull(p + 10, NULL, 10);
        if ((p = strstr(buf, "system_usec ")))
                sys = strtoull(p + 12, NULL, 10);
        if (ret_usage_us)
                *ret_usage_us = usage;
        if (ret_user_us)
                *ret_user_us = user;
        if (ret_system_us)
                *ret_system_us = sys;
        return 0;
}
