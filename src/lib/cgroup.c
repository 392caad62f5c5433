/* cgroup.c — the daemon's cgroup v2 subtree: discovery, delegation and
 * controllers, creation, killing, removal, limits (memory, swap, pids, cpu,
 * io) and usage figures (see cgroup.h for the layout). */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
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
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, strlen(data));
        if (n < 0)
                return -errno;
        return 0;
}

/* ---- controllers -------------------------------------------------------- */

static const struct {
        unsigned bit;
        const char *name;
} controller_table[] = {
        { CGROUP_CTRL_MEMORY, "memory" },
        { CGROUP_CTRL_PIDS, "pids" },
        { CGROUP_CTRL_CPU, "cpu" },
        { CGROUP_CTRL_IO, "io" },
};

const char *cgroup_controller_name(unsigned ctrl)
{
        for (size_t i = 0; i < ARRAY_SIZE(controller_table); i++)
                if (controller_table[i].bit == ctrl)
                        return controller_table[i].name;
        return NULL;
}

unsigned cgroup_parse_controllers(const char *text)
{
        unsigned mask = 0;
        const char *p = text;
        while (p && *p) {
                p += strspn(p, " \t\n");
                size_t len = strcspn(p, " \t\n");
                if (len == 0)
                        break;
                for (size_t i = 0; i < ARRAY_SIZE(controller_table); i++)
                        if (strlen(controller_table[i].name) == len && !strncmp(p, controller_table[i].name, len))
                                mask |= controller_table[i].bit;
                p += len;
        }
        return mask;
}

/* A whole cgroup file (they are small, but io.stat grows with the devices). */
static int read_cgroup_file(int dirfd, const char *name, char **ret)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        return util_read_all(fd, 1 << 20, ret, NULL);
}

static unsigned read_controllers_at(int dirfd, const char *name)
{
        _cleanup_free_ char *text = NULL;
        if (read_cgroup_file(dirfd, name, &text) < 0)
                return 0;
        return cgroup_parse_controllers(text);
}

int cgroup_enable_subtree(int cgroup_fd, unsigned ctrl, struct pbox_error *err)
{
        _cleanup_free_ char *avail_text = NULL;
        int r = read_cgroup_file(cgroup_fd, "cgroup.controllers", &avail_text);
        if (r < 0)
                return pbox_error_sys(err, -r, "read cgroup.controllers");
        unsigned want = ctrl & cgroup_parse_controllers(avail_text);
        want &= ~read_controllers_at(cgroup_fd, "cgroup.subtree_control");
        if (!want)
                return 0;

        _cleanup_close_ int fd = openat(cgroup_fd, "cgroup.subtree_control", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open cgroup.subtree_control");
        /* One controller per write: one the kernel refuses does not take
         * the others down with it.  The first failure is the result. */
        int first = 0;
        for (size_t i = 0; i < ARRAY_SIZE(controller_table); i++) {
                if (!(want & controller_table[i].bit))
                        continue;
                char buf[32];
                int n = snprintf(buf, sizeof buf, "+%s", controller_table[i].name);
                ssize_t w = write(fd, buf, (size_t) n);
                if (w == n)
                        continue;
                int e = w < 0 ? errno : EIO;
                if (e == EBUSY)
                        return pbox_error_set(err, EBUSY,
                                              "cannot enable the '%s' controller in cgroup.subtree_control: "
                                              "the cgroup has processes of its own (no-internal-processes rule)",
                                              controller_table[i].name);
                if (!first)
                        first = pbox_error_sys(err, e, "cannot enable the '%s' controller in cgroup.subtree_control",
                                               controller_table[i].name);
        }
        return first;
}

/* ---- the manager -------------------------------------------------------- */

/* systemd (>= 251) marks the cgroup of a Delegate=yes unit with
 * trusted.delegate=1 (user.delegate for units of a user manager). */
static bool cgroup_has_delegate_xattr(int fd)
{
        static const char *const names[] = { "trusted.delegate", "user.delegate" };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                char v[16];
                ssize_t n = fgetxattr(fd, names[i], v, sizeof v - 1);
                if (n < 0)
                        continue;
                v[n] = '\0';
                if (strcmp(v, "0") != 0)
                        return true;
        }
        return false;
}

static int open_dir_at(int dirfd, const char *rel)
{
        return openat(dirfd, rel && *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Move every process of from_fd into to_fd (the set changes while we do it:
 * a few rounds).  Returns the number of processes left behind (or -errno). */
static int move_all_procs(int from_fd, int to_fd, struct pbox_error *err)
{
        for (int round = 0; round < 8; round++) {
                _cleanup_free_ char *procs = NULL;
                int r = read_cgroup_file(from_fd, "cgroup.procs", &procs);
                if (r < 0)
                        return pbox_error_sys(err, -r, "read cgroup.procs");
                if (!procs[0])
                        return 0;
                char *save = NULL;
                for (char *tok = strtok_r(procs, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
                        r = write_small_at(to_fd, "cgroup.procs", tok);
                        if (r < 0 && r != -ESRCH)
                                return pbox_error_sys(err, -r, "move pid %s into the supervisor cgroup", tok);
                }
        }
        _cleanup_free_ char *procs = NULL;
        if (read_cgroup_file(from_fd, "cgroup.procs", &procs) == 0 && procs[0])
                return pbox_error_set(err, EBUSY, "processes keep appearing in the delegated cgroup");
        return 0;
}

/* Enable `wanted` on every level from the mount root down to parent_rel
 * (inclusive).  A level that refuses (processes of its own: EBUSY; or
 * anything else) passes on only what it already had, so the levels below
 * simply do not see the rest in their cgroup.controllers.  The first
 * refusal is kept in *note for the daemon's log. */
static void enable_down_to(int mount_fd, const char *parent_rel, unsigned wanted, char **note)
{
        _cleanup_close_ int fd = fcntl(mount_fd, F_DUPFD_CLOEXEC, 3);
        _cleanup_free_ char *path = util_xstrdup(parent_rel);
        char *save = NULL, *comp = NULL;
        const char *where = "/";
        _cleanup_free_ char *sofar = util_xstrdup("");
        for (;;) {
                if (fd < 0)
                        return;
                struct pbox_error e = PBOX_ERROR_INIT;
                if (cgroup_enable_subtree(fd, wanted, &e) < 0 && !*note)
                        *note = util_xasprintf("cgroup %s: %s", where, e.message);
                comp = strtok_r(comp ? NULL : path, "/", &save);
                if (!comp)
                        return;
                int next = open_dir_at(fd, comp);
                close(fd);
                fd = next;
                char *s = util_xasprintf("%s/%s", sofar, comp);
                free(sofar);
                sofar = s;
                where = sofar;
        }
}

int cgroup_manager_open(const char *name, struct cgroup_manager **ret, struct pbox_error *err)
{
        return cgroup_manager_open_full(name, CGROUP_DELEGATION_AUTO, CGROUP_CTRL_ALL, ret, err);
}

int cgroup_manager_open_full(const char *name, enum cgroup_delegation delegation, unsigned wanted,
                             struct cgroup_manager **ret, struct pbox_error *err)
{
        if (!name || !*name || strchr(name, '/') || strchr(name, '\n') || !strcmp(name, ".") ||
            !strcmp(name, "..") || !strncmp(name, "cgroup.", 7))
                return pbox_error_set(err, EINVAL, "invalid cgroup name '%s'", name ? name : "");
        wanted &= CGROUP_CTRL_ALL;
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

        _cleanup_close_ int mount_fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mount_fd < 0)
                return pbox_error_sys(err, errno, "open the cgroup2 mount %s", mnt);
        /* own relative to the mount, no leading or trailing '/' ("" = the root) */
        _cleanup_free_ char *own_rel = util_xstrdup(own + strspn(own, "/"));
        size_t ol = strlen(own_rel);
        while (ol > 0 && own_rel[ol - 1] == '/')
                own_rel[--ol] = '\0';
        _cleanup_close_ int own_fd = open_dir_at(mount_fd, own_rel);
        if (own_fd < 0)
                return pbox_error_sys(err, errno, "open our own cgroup %s%s", mnt, own);
        /* The hierarchy's true root has no cgroup.type; the root of a cgroup
         * namespace (a container's delegated cgroup) has one. */
        bool at_true_root = !*own_rel && faccessat(own_fd, "cgroup.type", F_OK, 0) < 0;

        /* A daemon restarted in place (or started by systemd with
         * DelegateSubgroup=supervisor) already sits in <own>/supervisor. */
        bool supervisor_leaf = false;
        _cleanup_free_ char *placement = NULL;
        char *last = strrchr(own_rel, '/');
        const char *leaf = last ? last + 1 : own_rel;
        if (delegation != CGROUP_DELEGATION_NO && !strcmp(leaf, "supervisor")) {
                _cleanup_free_ char *prel = last ? strndup(own_rel, (size_t) (last - own_rel)) : util_xstrdup("");
                if (!prel)
                        abort();
                _cleanup_close_ int pfd = open_dir_at(mount_fd, prel);
                bool p_true_root = !*prel && pfd >= 0 && faccessat(pfd, "cgroup.type", F_OK, 0) < 0;
                if (pfd >= 0 && !p_true_root &&
                    (delegation == CGROUP_DELEGATION_YES || cgroup_has_delegate_xattr(pfd))) {
                        free(own_rel);
                        own_rel = TAKE_PTR(prel);
                        close(own_fd);
                        own_fd = TAKE_FD(pfd);
                        at_true_root = false;
                        supervisor_leaf = true;
                }
        }

        bool delegated;
        switch (delegation) {
        case CGROUP_DELEGATION_YES:
                if (at_true_root)
                        return pbox_error_set(err, EINVAL, "cgroup delegation: our cgroup is the root of the hierarchy, "
                                              "which cannot be delegated");
                delegated = true;
                break;
        case CGROUP_DELEGATION_NO:
                delegated = false;
                break;
        default:
                /* Delegated only where a restart finds the same layout: in
                 * <own>/supervisor (systemd >= 254 with DelegateSubgroup=
                 * starts us there; the branch above took us to the parent).
                 * systemd without it starts every new main process in the
                 * unit's own cgroup, which the kernel refuses (EBUSY, the
                 * unit fails with 219/CGROUP) once controllers are enabled
                 * there for children: so a unit root stays a leaf and the
                 * subtree goes beside it. */
                delegated = supervisor_leaf;
                if (!delegated && !at_true_root && cgroup_has_delegate_xattr(own_fd))
                        placement = util_xasprintf("cgroup /%s is delegated, but pboxd runs in it rather than in a "
                                                   "'supervisor' leaf below it (systemd < 254 ignores "
                                                   "DelegateSubgroup=): sandboxes go beside it, so that systemd can "
                                                   "start pboxd there again", own_rel);
                break;
        }

        _cleanup_free_ char *base_rel = NULL, *note = NULL;
        if (delegated) {
                if (!strcmp(name, "supervisor"))
                        return pbox_error_set(err, EINVAL, "cgroup name 'supervisor' is reserved in a delegated cgroup");
                if (mkdirat(own_fd, "supervisor", 0755) < 0 && errno != EEXIST)
                        return pbox_error_sys(err, errno, "create cgroup %s/%s/supervisor", mnt, own_rel);
                _cleanup_close_ int sup_fd = open_dir_at(own_fd, "supervisor");
                if (sup_fd < 0)
                        return pbox_error_sys(err, errno, "open cgroup %s/%s/supervisor", mnt, own_rel);
                r = move_all_procs(own_fd, sup_fd, err);
                if (r < 0)
                        return pbox_error_prefix(err, "cgroup %s/%s", mnt, own_rel);
                struct pbox_error e = PBOX_ERROR_INIT;
                if (cgroup_enable_subtree(own_fd, wanted, &e) < 0)
                        note = util_xasprintf("cgroup /%s: %s", own_rel, e.message);
                base_rel = *own_rel ? util_xasprintf("%s/%s", own_rel, name) : util_xstrdup(name);
        } else {
                /* Beside our own cgroup: its parent / name.  At the root: /name. */
                _cleanup_free_ char *parent = util_xstrdup(own_rel);
                char *slash = strrchr(parent, '/');
                if (slash)
                        *slash = '\0';
                else
                        parent[0] = '\0';
                enable_down_to(mount_fd, parent, wanted, &note);
                base_rel = *parent ? util_xasprintf("%s/%s", parent, name) : util_xstrdup(name);
        }
        _cleanup_free_ char *base_path = util_xasprintf("%s/%s", mnt, base_rel);

        if (mkdirat(mount_fd, base_rel, 0755) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "create cgroup %s", base_path);
        int fd = open_dir_at(mount_fd, base_rel);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open cgroup %s", base_path);

        /* The sandboxes <base>/<id> get the controllers through the subtree's
         * own subtree_control. */
        struct pbox_error e = PBOX_ERROR_INIT;
        if (cgroup_enable_subtree(fd, wanted, &e) < 0 && !note)
                note = util_xasprintf("cgroup /%s: %s", base_rel, e.message);

        struct cgroup_manager *m = util_xcalloc(1, sizeof *m);
        m->mount_path = TAKE_PTR(mnt);
        m->base_rel = TAKE_PTR(base_rel);
        m->base_path = TAKE_PTR(base_path);
        m->base_fd = fd;
        m->delegated = delegated;
        m->has_kill = faccessat(fd, "cgroup.kill", F_OK, 0) == 0;
        m->enabled = read_controllers_at(fd, "cgroup.subtree_control");
        m->enable_error = TAKE_PTR(note);
        m->placement_note = TAKE_PTR(placement);
        _cleanup_free_ char *ctl = NULL;
        m->controllers = read_cgroup_file(fd, "cgroup.controllers", &ctl) >= 0 ? TAKE_PTR(ctl) : util_xstrdup("");
        m->controllers[strcspn(m->controllers, "\n")] = '\0';

        /* What the kernel offers a sandbox: a throwaway child shows the files. */
        char probe[64];
        snprintf(probe, sizeof probe, ".probe-%d", (int) getpid());
        if (mkdirat(fd, probe, 0755) == 0 || errno == EEXIST) {
                _cleanup_close_ int pfd = open_dir_at(fd, probe);
                if (pfd >= 0) {
                        m->has_memory_peak = faccessat(pfd, "memory.peak", F_OK, 0) == 0;
                        m->has_pids_peak = faccessat(pfd, "pids.peak", F_OK, 0) == 0;
                        m->has_swap = faccessat(pfd, "memory.swap.max", F_OK, 0) == 0;
                }
                unlinkat(fd, probe, AT_REMOVEDIR);
        }
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
        free(mgr->enable_error);
        free(mgr->placement_note);
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
        /* Not a dup: that would share (and leave at the end) the directory
         * offset of cgroup_fd, and the next walk would see no children. */
        int dfd = openat(cgroup_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

/* ---- limits -------------------------------------------------------------- */

static void format_limit(char *buf, size_t len, int64_t v)
{
        if (v == CGROUP_UNLIMITED)
                snprintf(buf, len, "max");
        else
                snprintf(buf, len, "%lld", (long long) v);
}

/* Write one limit file of cgroup_fd; errors name the file and the controller. */
static int write_limit(int cgroup_fd, const char *file, const char *controller, const char *value,
                       struct pbox_error *err)
{
        _cleanup_close_ int fd = openat(cgroup_fd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                int e = errno;
                if (e != ENOENT)
                        return pbox_error_sys(err, e, "cannot set %s: open", file);
                if (!strcmp(file, "memory.swap.max") && faccessat(cgroup_fd, "memory.max", F_OK, 0) == 0)
                        return pbox_error_set(err, ENOENT, "cannot set %s: the kernel does not account swap "
                                              "(the 'memory' controller has no swap files here)", file);
                return pbox_error_set(err, ENOENT, "cannot set %s: the '%s' controller is not enabled for this cgroup",
                                      file, controller);
        }
        size_t len = strlen(value);
        ssize_t n;
        do
                n = write(fd, value, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return pbox_error_sys(err, errno, "cannot set %s to '%s' (the '%s' controller refused it)",
                                      file, value, controller);
        if ((size_t) n != len)
                return pbox_error_set(err, EIO, "cannot set %s to '%s': short write", file, value);
        return 0;
}

static int check_limit(const char *file, int64_t v, int64_t min, struct pbox_error *err)
{
        if (v != CGROUP_UNLIMITED && v < min)
                return pbox_error_set(err, EINVAL, "cannot set %s to %lld: the value must be at least %lld or unlimited",
                                      file, (long long) v, (long long) min);
        return 0;
}

int cgroup_set_memory_max(int cgroup_fd, int64_t bytes, struct pbox_error *err)
{
        int r = check_limit("memory.max", bytes, 0, err);
        if (r < 0)
                return r;
        char buf[32];
        format_limit(buf, sizeof buf, bytes);
        return write_limit(cgroup_fd, "memory.max", "memory", buf, err);
}

int cgroup_set_swap_max(int cgroup_fd, int64_t bytes, struct pbox_error *err)
{
        int r = check_limit("memory.swap.max", bytes, 0, err);
        if (r < 0)
                return r;
        char buf[32];
        format_limit(buf, sizeof buf, bytes);
        return write_limit(cgroup_fd, "memory.swap.max", "memory", buf, err);
}

int cgroup_set_pids_max(int cgroup_fd, int64_t pids, struct pbox_error *err)
{
        int r = check_limit("pids.max", pids, 0, err);
        if (r < 0)
                return r;
        char buf[32];
        format_limit(buf, sizeof buf, pids);
        return write_limit(cgroup_fd, "pids.max", "pids", buf, err);
}

int cgroup_set_cpu_max(int cgroup_fd, int64_t quota_us, uint64_t period_us, struct pbox_error *err)
{
        int r = check_limit("cpu.max", quota_us, 1, err);
        if (r < 0)
                return r;
        if (period_us == 0)
                period_us = 100000;     /* the kernel's default period */
        char q[32], buf[64];
        format_limit(q, sizeof q, quota_us);
        snprintf(buf, sizeof buf, "%s %llu", q, (unsigned long long) period_us);
        return write_limit(cgroup_fd, "cpu.max", "cpu", buf, err);
}

int cgroup_set_cpu_weight(int cgroup_fd, uint64_t weight, struct pbox_error *err)
{
        if (weight < 1 || weight > 10000)
                return pbox_error_set(err, EINVAL, "cannot set cpu.weight to %llu: the weight must be 1..10000",
                                      (unsigned long long) weight);
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long) weight);
        return write_limit(cgroup_fd, "cpu.weight", "cpu", buf, err);
}

int cgroup_set_io_max(int cgroup_fd, unsigned major, unsigned minor, int64_t rbps, int64_t wbps,
                      int64_t riops, int64_t wiops, struct pbox_error *err)
{
        if (major == 0)
                return pbox_error_set(err, EINVAL, "cannot set io.max: %u:%u is not a block device", major, minor);
        /* 0 would not mean "nothing": refuse it rather than guess. */
        const int64_t v[4] = { rbps, wbps, riops, wiops };
        static const char *const keys[4] = { "rbps", "wbps", "riops", "wiops" };
        char buf[256];
        int n = snprintf(buf, sizeof buf, "%u:%u", major, minor);
        for (int i = 0; i < 4; i++) {
                if (v[i] != CGROUP_UNLIMITED && v[i] < 1)
                        return pbox_error_set(err, EINVAL, "cannot set io.max: %s must be at least 1 or unlimited", keys[i]);
                char f[32];
                format_limit(f, sizeof f, v[i]);
                n += snprintf(buf + n, sizeof buf - (size_t) n, " %s=%s", keys[i], f);
        }
        return write_limit(cgroup_fd, "io.max", "io", buf, err);
}

int cgroup_block_device_of(const char *path, unsigned *ret_major, unsigned *ret_minor, struct pbox_error *err)
{
        struct stat st;
        if (stat(path, &st) < 0)
                return pbox_error_sys(err, errno, "stat %s", path);
        unsigned maj = major(st.st_dev), min = minor(st.st_dev);
        if (maj == 0)
                return pbox_error_set(err, ENODEV, "%s is not on a block device (device %u:%u: tmpfs, overlay, "
                                      "a network or FUSE file system, or btrfs)", path, maj, min);
        char sys[64];
        snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", maj, min);
        _cleanup_close_ int dfd = open(sys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                if (errno == ENOENT)
                        return pbox_error_set(err, ENODEV, "%s is not on a block device (no %s)", path, sys);
                return pbox_error_sys(err, errno, "open %s", sys);
        }
        /* A partition: io.max wants the whole disk, the parent directory. */
        bool partition = faccessat(dfd, "partition", F_OK, 0) == 0;
        const char *devfile = partition ? "../dev" : "dev";
        _cleanup_close_ int fd = openat(dfd, devfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s/%s", sys, devfile);
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return pbox_error_sys(err, errno, "read %s/%s", sys, devfile);
        buf[n] = '\0';
        unsigned dmaj, dmin;
        int end = 0;
        if (sscanf(buf, "%u:%u%n", &dmaj, &dmin, &end) != 2 || (buf[end] != '\n' && buf[end] != '\0'))
                return pbox_error_set(err, EBADMSG, "%s/%s: unexpected contents", sys, devfile);
        if (dmaj == 0)
                return pbox_error_set(err, ENODEV, "%s is not on a block device (device %u:%u)", path, dmaj, dmin);
        *ret_major = dmaj;
        *ret_minor = dmin;
        return 0;
}

/* ---- usage -------------------------------------------------------------- */

/* A decimal int64 (or "max" = CGROUP_UNLIMITED) of exactly len characters. */
static int parse_value(const char *s, size_t len, int64_t *ret)
{
        if (len == 3 && !strncmp(s, "max", 3)) {
                *ret = CGROUP_UNLIMITED;
                return 0;
        }
        if (len == 0 || len > 20)
                return len == 0 ? -EINVAL : -ERANGE;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                unsigned d = (unsigned) (s[i] - '0');
                if (v > ((uint64_t) INT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = (int64_t) v;
        return 0;
}

int cgroup_parse_keyed(const char *text, const char *key, int64_t *ret)
{
        if (!text || !key || !*key)
                return -EINVAL;
        size_t klen = strlen(key);
        for (const char *line = text; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t) (eol - line) : strlen(line);
                if (len > klen && !strncmp(line, key, klen) && line[klen] == ' ') {
                        const char *v = line + klen + 1;
                        size_t vlen = len - klen - 1;
                        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
                                vlen--;
                        int64_t val;
                        int r = parse_value(v, vlen, &val);
                        if (r < 0)
                                return r;
                        *ret = val;
                        return 0;
                }
                line = eol ? eol + 1 : NULL;
        }
        return -ENOENT;
}

int64_t cgroup_parse_io_stat(const char *text, const char *key)
{
        if (!text || !key || !*key)
                return -1;
        size_t klen = strlen(key);
        int64_t sum = 0;
        for (const char *line = text; line && *line;) {
                const char *eol = strchr(line, '\n');
                const char *end = eol ? eol : line + strlen(line);
                /* "MAJ:MIN key=value key=value ..." */
                const char *p = line + strcspn(line, " \n");
                while (p < end) {
                        p += strspn(p, " ");
                        if (p >= end)
                                break;
                        size_t tlen = strcspn(p, " \n");
                        if (p + tlen > end)
                                tlen = (size_t) (end - p);
                        int64_t v;
                        if (tlen > klen && !strncmp(p, key, klen) && p[klen] == '=' &&
                            !(tlen - klen - 1 == 3 && !strncmp(p + klen + 1, "max", 3)) &&
                            parse_value(p + klen + 1, tlen - klen - 1, &v) == 0)
                                sum = v > INT64_MAX - sum ? INT64_MAX : sum + v;
                        p += tlen;
                }
                line = eol ? eol + 1 : NULL;
        }
        return sum;
}

int64_t cgroup_read_number(int cgroup_fd, const char *name)
{
        _cleanup_free_ char *text = NULL;
        if (read_cgroup_file(cgroup_fd, name, &text) < 0)
                return -1;
        size_t len = strcspn(text, "\n");
        int64_t v;
        if (parse_value(text, len, &v) < 0)
                return -1;
        return v;
}

int64_t cgroup_read_keyed(int cgroup_fd, const char *name, const char *key)
{
        _cleanup_free_ char *text = NULL;
        int64_t v;
        if (read_cgroup_file(cgroup_fd, name, &text) < 0 || cgroup_parse_keyed(text, key, &v) < 0)
                return -1;
        return v;
}

/* Refused forks counted in this cgroup alone: pids.events.local where the
 * kernel has it (local counts of the limits hit here; pids.events is then
 * hierarchical), else pids.events, which older kernels count in the cgroup
 * of the process whose fork failed.  -1: neither file. */
static int64_t forks_refused_local(int cgroup_fd)
{
        int64_t v = cgroup_read_keyed(cgroup_fd, "pids.events.local", "max");
        return v >= 0 ? v : cgroup_read_keyed(cgroup_fd, "pids.events", "max");
}

/* Sum of forks_refused_local over the subtree below dirfd (bounded: a
 * sandbox cannot make the daemon walk without end). */
static int64_t forks_refused_below(int dirfd, int depth, unsigned *budget)
{
        if (depth <= 0)
                return 0;
        /* A new open file description: a dup would share (and move) the
         * directory offset of dirfd, which the daemon keeps open. */
        int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return 0;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return 0;
        }
        int64_t sum = 0;
        struct dirent *de;
        while ((de = readdir(d)) && *budget > 0) {
                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                (*budget)--;
                int cfd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0)
                        continue;
                int64_t v = forks_refused_local(cfd);
                if (v > 0)
                        sum += v;
                sum += forks_refused_below(cfd, depth - 1, budget);
                close(cfd);
        }
        closedir(d);
        return sum;
}

int64_t cgroup_forks_refused(int cgroup_fd)
{
        int64_t own = forks_refused_local(cgroup_fd);
        if (own < 0)
                return -1;
        unsigned budget = 4096;
        return own + forks_refused_below(cgroup_fd, 4, &budget);
}

int cgroup_read_usage(int cgroup_fd, struct cgroup_usage *ret, struct pbox_error *err)
{
        struct cgroup_usage u = { 0 };
        int r = cgroup_cpu_usage(cgroup_fd, &u.cpu_usage_us, &u.cpu_user_us, &u.cpu_system_us, err);
        if (r < 0)
                return r;
        u.memory_current_bytes = cgroup_read_number(cgroup_fd, "memory.current");
        u.memory_peak_bytes = cgroup_read_number(cgroup_fd, "memory.peak");
        _cleanup_free_ char *events = NULL;
        u.oom_events = u.oom_kills = -1;
        if (read_cgroup_file(cgroup_fd, "memory.events", &events) == 0) {
                int64_t v;
                if (cgroup_parse_keyed(events, "oom", &v) == 0)
                        u.oom_events = v;
                if (cgroup_parse_keyed(events, "oom_kill", &v) == 0)
                        u.oom_kills = v;
        }
        u.pids_current = cgroup_read_number(cgroup_fd, "pids.current");
        u.pids_peak = cgroup_read_number(cgroup_fd, "pids.peak");
        u.pids_max_hits = cgroup_forks_refused(cgroup_fd);
        _cleanup_free_ char *io = NULL;
        if (read_cgroup_file(cgroup_fd, "io.stat", &io) == 0) {
                u.io_read_bytes = cgroup_parse_io_stat(io, "rbytes");
                u.io_write_bytes = cgroup_parse_io_stat(io, "wbytes");
        } else {
                u.io_read_bytes = u.io_write_bytes = -1;
        }
        *ret = u;
        return 0;
}

int cgroup_cpu_usage(int cgroup_fd, uint64_t *ret_usage_us, uint64_t *ret_user_us,
                     uint64_t *ret_system_us, struct pbox_error *err)
{
        _cleanup_free_ char *text = NULL;
        int r = read_cgroup_file(cgroup_fd, "cpu.stat", &text);
        if (r < 0)
                return pbox_error_sys(err, -r, "read cpu.stat");
        int64_t usage = 0, user = 0, sys = 0;
        if (cgroup_parse_keyed(text, "usage_usec", &usage) < 0)
                usage = 0;
        if (cgroup_parse_keyed(text, "user_usec", &user) < 0)
                user = 0;
        if (cgroup_parse_keyed(text, "system_usec", &sys) < 0)
                sys = 0;
        if (ret_usage_us)
                *ret_usage_us = (uint64_t) usage;
        if (ret_user_us)
                *ret_user_us = (uint64_t) user;
        if (ret_system_us)
                *ret_system_us = (uint64_t) sys;
        return 0;
}
