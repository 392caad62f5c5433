/* sandbox.c — the sandbox registry of the core (sandbox.h): records on disk,
 * create / exec / stop / remove, and re-adoption after a restart.
 *
 * Life of a sandbox:  creating -> running -> stopping -> stopped -> (removed)
 *   creating  record written first, so a crash mid-create is cleaned up on
 *             the next start; overlay mounted under RUNTIME_DIR, cgroups
 *             <id>/, <id>/init, <id>/work made, init spawned (spawn.c).
 *   running   init watched through its pidfd.  Each exec gets a leaf cgroup
 *             <id>/work/exec-<hex>, pipes for its output, and a pidfd.
 *   stopping  the stop signal went to init, which forwards it to every
 *             process; a 20 ms tick checks whether <id>/work has emptied
 *             (then init alone is ended: "stopped") or the grace period is
 *             over (then everything is SIGKILLed via cgroup.kill: "killed").
 *   stopped   init is gone, and with it the pid namespace; the rootfs stays
 *             mounted until removal.
 *   removed   cgroups, the overlay mount, RUNTIME_DIR/sandboxes/<id> and
 *             STATE_DIR/sandboxes/<id> are deleted. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "json.h"
#include "log.h"
#include "rootfs.h"
#include "sandbox.h"
#include "spawn.h"
#include "syscalls.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGV 4096
#define MAX_ENV 1024
#define MAX_ARG_BYTES (1 << 20)

enum sb_state { SB_CREATING, SB_RUNNING, SB_STOPPING, SB_STOPPED };
static const char *const sb_state_names[] = { "creating", "running", "stopping", "stopped" };

struct reqlist {
        struct request **v;
        size_t n;
};

struct outbuf {
        char *data;
        size_t len;
        bool truncated;
};

struct exec;

struct sandbox {
        struct sandbox *next;
        struct core *core;
        char id[25];
        char *name;
        char *image_ref;
        char *image_id;
        char *hostname;
        json_t *labels;
        char **env;                     /* image env, then create env */
        char *workdir;
        enum sb_state state;
        uint64_t created_ms, stopped_ms;
        char *stop_reason;
        pid_t pid;
        unsigned long long starttime;
        struct watch init_watch;        /* pidfd of init */
        bool init_is_child;
        int pidns_fd;
        int ns_fds[6];
        int cgroup_fd;                  /* <id> */
        int work_cgroup_fd;             /* <id>/work */
        char *rootfs;
        struct watch stop_tick;         /* timerfd while stopping */
        uint64_t stop_deadline_ms;
        bool stop_killed;
        struct reqlist stop_waiters;
        struct reqlist remove_waiters;
        struct exec *execs;
};

struct exec {
        struct exec *next;
        struct sandbox *sb;
        struct request *req;
        char cg_rel[96];
        int cg_fd;
        pid_t pid;
        struct watch proc;              /* pidfd */
        struct watch out_w, err_w, in_w;
        struct outbuf out, err;
        unsigned char *in_data;
        size_t in_len, in_off;
        uint64_t start_ms;
};

/* ---- small helpers ------------------------------------------------------ */

static void reqlist_add(struct reqlist *l, struct request *req)
{
        l->v = util_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = req;
}

static void time_string(uint64_t ms, char buf[40])
{
        util_format_time(ms, buf, 40);
}

static bool valid_name(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max || !isalnum((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

static bool valid_hostname(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '.')
                        return false;
        return true;
}

static struct sandbox *sandbox_find(struct core *core, const char *id_or_name)
{
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (!strcmp(sb->id, id_or_name))
                        return sb;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (sb->name && !strcmp(sb->name, id_or_name))
                        return sb;
        return NULL;
}

/* Start time of a live process (a zombie counts as dead: -ESRCH). */
static int read_starttime(pid_t pid, unsigned long long *ret)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        _cleanup_free_ char *text = NULL;
        if (util_read_file_at(AT_FDCWD, path, 4096, &text, NULL, NULL) < 0)
                return -ESRCH;
        char *p = strrchr(text, ')');
        if (!p)
                return -EBADMSG;
        if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
                return -ESRCH;
        /* after ")": field 3 (state) ... field 22 (starttime) */
        unsigned long long v = 0;
        int field = 2;
        for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
                if (++field == 22) {
                        v = strtoull(tok, NULL, 10);
                        break;
                }
        }
        if (field != 22)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static char *env_get(char **env, const char *key)
{
        size_t kl = strlen(key);
        for (char **e = env; e && *e; e++)
                if (!strncmp(*e, key, kl) && (*e)[kl] == '=')
                        return *e + kl + 1;
        return NULL;
}

/* Merge "K=V" lists; later entries replace earlier ones with the same key. */
static char **env_merge(char **base, char **over)
{
        size_t n = util_strv_len(base) + util_strv_len(over);
        char **out = util_xcalloc(n + 1, sizeof(char *));
        size_t k = 0;
        char **lists[2] = { base, over };
        for (int l = 0; l < 2; l++)
                for (char **e = lists[l]; e && *e; e++) {
                        const char *eq = strchr(*e, '=');
                        size_t kl = eq ? (size_t) (eq - *e) : strlen(*e);
                        size_t i;
                        for (i = 0; i < k; i++)
                                if (!strncmp(out[i], *e, kl) && out[i][kl] == '=')
                                        break;
                        if (i < k) {
                                free(out[i]);
                                out[i] = util_xstrdup(*e);
                        } else
                                out[k++] = util_xstrdup(*e);
                }
        return out;
}

/* ---- records ------------------------------------------------------------ */

static json_t *sandbox_public(const struct sandbox *sb)
{
        char created[40], stopped[40];
        time_string(sb->created_ms, created);
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "id", sb->id, "name", sb->name ? sb->name : sb->id,
                              "image", sb->image_ref, "image_id", sb->image_id, "state", sb_state_names[sb->state],
                              "created_at", created, "hostname", sb->hostname, "labels", sb->labels);
        if (sb->state == SB_RUNNING || sb->state == SB_STOPPING)
                json_object_set_new(j, "pid", json_integer(sb->pid));
        if (sb->state == SB_STOPPED) {
                time_string(sb->stopped_ms, stopped);
                json_object_set_new(j, "stopped_at", json_string(stopped));
                json_object_set_new(j, "stop_reason", json_string(sb->stop_reason ? sb->stop_reason : "unknown"));
        }
        return j;
}

static int sandbox_save(struct sandbox *sb)
{
        json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:O,s:o,s:s,s:s,s:I,s:I,s:I,s:I}",
                              "version", 1, "id", sb->id, "name", sb->name ? sb->name : sb->id,
                              "image", sb->image_ref, "image_id", sb->image_id, "hostname", sb->hostname,
                              "labels", sb->labels, "env", json_strv(sb->env), "working_dir", sb->workdir,
                              "state", sb_state_names[sb->state], "created_ms", (json_int_t) sb->created_ms,
                              "stopped_ms", (json_int_t) sb->stopped_ms, "pid", (json_int_t) sb->pid,
                              "starttime", (json_int_t) sb->starttime);
        if (sb->stop_reason)
                json_object_set_new(j, "stop_reason", json_string(sb->stop_reason));
        _cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_close_ int dfd = openat(sb->core->sandboxes_fd, sb->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 || util_write_file_atomic_at(dfd, "state.json", text, strlen(text), 0600, &err) < 0) {
                log_error("sandbox %s: cannot save its record: %s", sb->id, dfd < 0 ? strerror(errno) : err.message);
                return -EIO;
        }
        return 0;
}

static void sandbox_free(struct sandbox *sb)
{
        if (!sb)
                return;
        free(sb->name);
        free(sb->image_ref);
        free(sb->image_id);
        free(sb->hostname);
        json_decref(sb->labels);
        util_strv_free(sb->env);
        free(sb->workdir);
        free(sb->stop_reason);
        free(sb->rootfs);
        free(sb->stop_waiters.v);
        free(sb->remove_waiters.v);
        int fds[] = { sb->init_watch.fd, sb->pidns_fd, sb->cgroup_fd, sb->work_cgroup_fd, sb->stop_tick.fd,
                      sb->ns_fds[0], sb->ns_fds[1], sb->ns_fds[2], sb->ns_fds[3], sb->ns_fds[4], sb->ns_fds[5] };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        free(sb);
}

static struct sandbox *sandbox_new(struct core *core)
{
        struct sandbox *sb = util_xcalloc(1, sizeof *sb);
        sb->core = core;
        sb->init_watch.fd = sb->pidns_fd = sb->cgroup_fd = sb->work_cgroup_fd = sb->stop_tick.fd = -1;
        for (int i = 0; i < 6; i++)
                sb->ns_fds[i] = -1;
        return sb;
}

static void sandbox_unlink(struct core *core, struct sandbox *sb)
{
        for (struct sandbox **p = &core->sandboxes; *p; p = &(*p)->next)
                if (*p == sb) {
                        *p = sb->next;
                        return;
                }
}

/* Delete everything a sandbox has on the host.  Errors are logged, and the
 * first one is returned; cleanup goes on past them. */
static int sandbox_destroy_host_state(struct core *core, const char *id)
{
        int ret = 0;
        struct pbox_error err = PBOX_ERROR_INIT;
        int cg = -1;
        if (cgroup_open(core->cgroups, id, &cg, NULL) == 0) {
                cgroup_kill(core->cgroups, cg, NULL);
                close(cg);
        }
        if (cgroup_remove(core->cgroups, id, &err) < 0) {
                log_error("sandbox %s: %s", id, err.message);
                ret = -EBUSY;
        }
        _cleanup_free_ char *rt = util_xasprintf("%s/%s", core->runtime_sandboxes, id);
        _cleanup_free_ char *rootfs = util_xasprintf("%s/rootfs", rt);
        pbox_error_clear(&err);
        if (rootfs_unmount(rootfs, &err) < 0) {
                log_error("sandbox %s: %s", id, err.message);
                ret = ret ? ret : -EBUSY;
        }
        pbox_error_clear(&err);
        if (util_rm_rf_at(AT_FDCWD, rt, &err) < 0) {
                log_error("sandbox %s: %s", id, err.message);
                ret = ret ? ret : -EBUSY;
        }
        pbox_error_clear(&err);
        if (util_rm_rf_at(core->sandboxes_fd, id, &err) < 0) {
                log_error("sandbox %s: %s", id, err.message);
                ret = ret ? ret : -EBUSY;
        }
        return ret;
}

/* ---- init lifecycle ------------------------------------------------------ */

static void sandbox_maybe_finish_removal(struct sandbox *sb);

static void stop_tick_disarm(struct sandbox *sb)
{
        if (sb->stop_tick.fd >= 0) {
                core_watch_del(sb->core, &sb->stop_tick);
                close(sb->stop_tick.fd);
                sb->stop_tick.fd = -1;
        }
}

static void sandbox_kill_all(struct sandbox *sb)
{
        if (sb->cgroup_fd >= 0)
                cgroup_kill(sb->core->cgroups, sb->cgroup_fd, NULL);
        if (sb->init_watch.fd >= 0)
                sys_pidfd_send_signal(sb->init_watch.fd, SIGKILL, NULL, 0);
}

static void init_exited(struct core *core, struct watch *w, uint32_t events)
{
        struct sandbox *sb = w->data;
        if (sb->init_is_child) {
                siginfo_t si;
                memset(&si, 0, sizeof si);
                if (waitid(P_PIDFD, (id_t) w->fd, &si, WEXITED | WNOHANG) < 0 && errno != ECHILD)
                        return;
        }
        core_watch_del(core, w);
        close(w->fd);
        w->fd = -1;
        stop_tick_disarm(sb);
        const char *reason = sb->state == SB_STOPPING ? (sb->stop_killed ? "killed" : "stopped") : "exited";
        log_info("sandbox %s %s", sb->id, reason);
        /* Whatever survived the pid namespace (nothing should) goes too. */
        if (sb->cgroup_fd >= 0)
                cgroup_kill(core->cgroups, sb->cgroup_fd, NULL);
        sb->state = SB_STOPPED;
        sb->stopped_ms = util_realtime_ms();
        free(sb->stop_reason);
        sb->stop_reason = util_xstrdup(reason);
        if (sb->pidns_fd >= 0) {
                close(sb->pidns_fd);
                sb->pidns_fd = -1;
        }
        for (int i = 0; i < 6; i++)
                if (sb->ns_fds[i] >= 0) {
                        close(sb->ns_fds[i]);
                        sb->ns_fds[i] = -1;
                }
        sandbox_save(sb);
        for (size_t i = 0; i < sb->stop_waiters.n; i++)
                request_respond(sb->stop_waiters.v[i], 200, sandbox_public(sb));
        sb->stop_waiters.n = 0;
        sandbox_maybe_finish_removal(sb);
}

static void stop_tick(struct core *core, struct watch *w, uint32_t events)
{
        struct sandbox *sb = w->data;
        uint64_t ticks;
        (void) !read(w->fd, &ticks, sizeof ticks);
        if (sb->state != SB_STOPPING)
                return;
        if (util_now_ms() >= sb->stop_deadline_ms) {
                sb->stop_killed = true;
                sandbox_kill_all(sb);
                stop_tick_disarm(sb);
                return;
        }
        /* Everything but init is gone: end init now, no need to wait out the grace. */
        if (sb->work_cgroup_fd >= 0 && cgroup_populated(sb->work_cgroup_fd, NULL) == 0) {
                if (sb->init_watch.fd >= 0)
                        sys_pidfd_send_signal(sb->init_watch.fd, SIGKILL, NULL, 0);
                stop_tick_disarm(sb);
        }
}

static void sandbox_begin_stop(struct sandbox *sb, uint32_t grace_ms, int sig)
{
        if (sb->state == SB_STOPPING) {
                /* A second stop may shorten the grace period, never extend it. */
                uint64_t deadline = util_now_ms() + grace_ms;
                if (deadline < sb->stop_deadline_ms)
                        sb->stop_deadline_ms = deadline;
                if (grace_ms == 0) {
                        sb->stop_killed = true;
                        sandbox_kill_all(sb);
                }
                return;
        }
        if (sb->state != SB_RUNNING)
                return;
        sb->state = SB_STOPPING;
        sb->stop_killed = false;
        sb->stop_deadline_ms = util_now_ms() + grace_ms;
        sandbox_save(sb);
        if (grace_ms == 0) {
                sb->stop_killed = true;
                sandbox_kill_all(sb);
                return;
        }
        log_info("sandbox %s: stopping with signal %d, grace %u ms", sb->id, sig, grace_ms);
        sys_pidfd_send_signal(sb->init_watch.fd, sig, NULL, 0);
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        struct itimerspec its = { { 0, 20 * 1000 * 1000 }, { 0, 20 * 1000 * 1000 } };
        if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0) {
                log_error("sandbox %s: no stop timer (%m): killing now", sb->id);
                if (tfd >= 0)
                        close(tfd);
                sb->stop_killed = true;
                sandbox_kill_all(sb);
                return;
        }
        sb->stop_tick = (struct watch) { tfd, stop_tick, sb };
        core_watch_add(sb->core, &sb->stop_tick, EPOLLIN);
}

/* ---- create ------------------------------------------------------------- */

static int sandbox_open_namespaces(struct sandbox *sb, struct pbox_error *err)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/pid", (int) sb->pid);
        sb->pidns_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (sb->pidns_fd < 0)
                return pbox_error_sys(err, errno, "open %s", path);
        if (!sb->core->pidfd_setns) {
                static const char *const names[6] = { "user", "mnt", "uts", "ipc", "net", "cgroup" };
                for (int i = 0; i < 6; i++) {
                        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int) sb->pid, names[i]);
                        sb->ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
                        if (sb->ns_fds[i] < 0)
                                return pbox_error_sys(err, errno, "open %s", path);
                }
        }
        /* The pid could have been recycled between pidfd and /proc: check the pidfd still lives. */
        if (sys_pidfd_send_signal(sb->init_watch.fd, 0, NULL, 0) < 0)
                return pbox_error_sys(err, errno, "sandbox init vanished");
        return 0;
}

static int sandbox_build(struct core *core, struct sandbox *sb, struct image_info *info, struct pbox_error *err)
{
        int r;
        _cleanup_close_ int dfd = -1;
        if (mkdirat(core->sandboxes_fd, sb->id, 0700) < 0)
                return pbox_error_sys(err, errno, "create the sandbox directory");
        dfd = openat(core->sandboxes_fd, sb->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "open the sandbox directory");
        if ((r = sandbox_save(sb)) < 0)
                return pbox_error_set(err, EIO, "cannot write the sandbox record");
        if (mkdirat(dfd, "upper", 0755) < 0 || fchownat(dfd, "upper", core->map.uid_base, core->map.gid_base, 0) < 0 ||
            mkdirat(dfd, "work", 0700) < 0)
                return pbox_error_sys(err, errno, "create the overlay directories");

        _cleanup_free_ char *rt = util_xasprintf("%s/%s", core->runtime_sandboxes, sb->id);
        sb->rootfs = util_xasprintf("%s/rootfs", rt);
        if (mkdir(rt, 0711) < 0 || mkdir(sb->rootfs, 0755) < 0)
                return pbox_error_sys(err, errno, "create the rootfs mount point");
        _cleanup_free_ char *upper = util_xasprintf("%s/sandboxes/%s/upper", core->cfg->state_dir, sb->id);
        _cleanup_free_ char *work = util_xasprintf("%s/sandboxes/%s/work", core->cfg->state_dir, sb->id);
        if ((r = rootfs_mount_overlay(info->layer_dirs, upper, work, sb->rootfs, err)) < 0)
                return r;

        _cleanup_free_ char *init_rel = util_xasprintf("%s/init", sb->id);
        _cleanup_free_ char *work_rel = util_xasprintf("%s/work", sb->id);
        _cleanup_close_ int init_cg = -1;
        if ((r = cgroup_create(core->cgroups, sb->id, &sb->cgroup_fd, err)) < 0 ||
            (r = cgroup_create(core->cgroups, init_rel, &init_cg, err)) < 0 ||
            (r = cgroup_create(core->cgroups, work_rel, &sb->work_cgroup_fd, err)) < 0)
                return r;

        char *init_argv[] = { (char *) "pbox-init", NULL };
        char *init_envp[] = { NULL };
        struct spawn_sandbox_config sc = {
                .rootfs = sb->rootfs, .hostname = sb->hostname, .cgroup_fd = sb->cgroup_fd,
                .init_cgroup_fd = init_cg, .map = &core->map, .init_exec_fd = core->init_memfd,
                .init_argv = init_argv, .init_envp = init_envp, .null_fd = core->null_fd,
                .sec = { &core->caps, core->seccomp },
        };
        struct spawn_result res;
        memset(&res, 0, sizeof res);
        if ((r = spawn_sandbox(&sc, &res, err)) < 0)
                return r;
        sb->pid = res.pid;
        sb->init_watch = (struct watch) { res.pidfd, init_exited, sb };
        sb->init_is_child = true;
        if ((r = sandbox_open_namespaces(sb, err)) < 0)
                return r;
        read_starttime(sb->pid, &sb->starttime);
        if (core_watch_add(core, &sb->init_watch, EPOLLIN) < 0)
                return pbox_error_sys(err, errno, "watch the sandbox init");
        sb->state = SB_RUNNING;
        sandbox_save(sb);
        return 0;
}

void sandbox_op_create(struct core *core, struct request *req, json_t *body)
{
        static const char *const keys[] = { "image", "name", "env", "hostname", "labels", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *image = NULL, *name = NULL, *hostname = NULL;
        _cleanup_strv_ char **env = NULL;
        if (json_check_keys(body, keys, &err) < 0 || json_get_string(body, "image", true, &image, &err) < 0 ||
            json_get_string(body, "name", false, &name, &err) < 0 ||
            json_get_string(body, "hostname", false, &hostname, &err) < 0 ||
            json_get_env_object(body, "env", MAX_ENV, &env, &err) < 0)
                return request_fail(req, &err);
        if (name && !valid_name(name, 64))
                return request_error(req, 400, "bad_request",
                                     "name must be 1 to 64 characters of letters, digits, '_', '.', '-', starting with a letter or digit");
        if (name && sandbox_find(core, name))
                return request_error(req, 409, "conflict", "a sandbox named '%s' exists", name);
        if (hostname && !valid_hostname(hostname))
                return request_error(req, 400, "bad_request", "hostname must be 1 to 63 characters of letters, digits, '-', '.'");
        json_t *labels = json_object_get(body, "labels");
        if (labels && !json_is_null(labels)) {
                if (!json_is_object(labels) || json_object_size(labels) > 64)
                        return request_error(req, 400, "bad_request", "labels must be an object of at most 64 strings");
                const char *k;
                json_t *v;
                json_object_foreach(labels, k, v)
                        if (!json_is_string(v) || strlen(k) == 0 || strlen(k) > 128 || json_string_length(v) > 1024)
                                return request_error(req, 400, "bad_request",
                                                     "labels: keys of 1 to 128 characters mapping to strings of at most 1024");
        }
        size_t count = 0;
        for (struct sandbox *s = core->sandboxes; s; s = s->next)
                count++;
        if (count >= core->cfg->max_sandboxes)
                return request_error(req, 503, "unavailable", "pboxd holds its maximum of %u sandboxes",
                                     core->cfg->max_sandboxes);

        struct image_info *info = NULL;
        if (image_store_resolve(core->images, image, &info, &err) < 0)
                return request_fail(req, &err);

        struct sandbox *sb = sandbox_new(core);
        util_random_hex(sb->id, 12);
        sb->name = util_xstrdup(name ? name : sb->id);
        sb->image_ref = util_xstrdup(info->ref);
        sb->image_id = util_xstrdup(info->id);
        sb->hostname = hostname ? util_xstrdup(hostname) : strndup(sb->id, 12);
        if (!sb->hostname)
                abort();
        sb->labels = labels && json_is_object(labels) ? json_deep_copy(labels) : json_object();
        char *defaults[] = { (char *) "PATH=" DEFAULT_PATH, (char *) "HOME=/root", NULL };
        _cleanup_strv_ char **base = env_merge(defaults, info->env);
        sb->env = env_merge(base, env);
        sb->workdir = util_xstrdup(info->working_dir && info->working_dir[0] ? info->working_dir : "/");
        sb->created_ms = util_realtime_ms();
        sb->state = SB_CREATING;

        uint64_t t0 = util_now_ms();
        int r = sandbox_build(core, sb, info, &err);
        image_info_free(info);
        if (r < 0) {
                log_error("sandbox %s: create failed: %s", sb->id, err.message);
                if (sb->init_watch.fd >= 0) {
                        sys_pidfd_send_signal(sb->init_watch.fd, SIGKILL, NULL, 0);
                        siginfo_t si;
                        waitid(P_PIDFD, (id_t) sb->init_watch.fd, &si, WEXITED);
                }
                sandbox_destroy_host_state(core, sb->id);
                sandbox_free(sb);
                return request_fail(req, &err);
        }
        sb->next = core->sandboxes;
        core->sandboxes = sb;
        log_info("sandbox %s created from %s in %llu ms (init pid %d)", sb->id, sb->image_ref,
                 (unsigned long long) (util_now_ms() - t0), (int) sb->pid);
        request_respond(req, 201, sandbox_public(sb));
}

void sandbox_op_list(struct core *core, struct request *req)
{
        json_t *arr = json_array();
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                json_array_append_new(arr, sandbox_public(sb));
        request_respond(req, 200, json_pack("{s:o}", "sandboxes", arr));
}

void sandbox_op_get(struct core *core, struct request *req, const char *id)
{
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        request_respond(req, 200, sandbox_public(sb));
}

int sandbox_files_target(struct core *core, const char *id, struct files_target *ret)
{
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb || sb->state == SB_CREATING)
                return -ENOENT;
        ret->id = sb->id;
        ret->rootfs = sb->rootfs;
        ret->running = sb->state == SB_RUNNING || sb->state == SB_STOPPING;
        ret->init_pid = ret->running ? sb->pid : 0;
        ret->init_pidfd = ret->running ? sb->init_watch.fd : -1;
        return 0;
}

bool sandbox_uses_image(struct core *core, const char *image_id)
{
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (!strcmp(sb->image_id, image_id))
                        return true;
        return false;
}

/* ---- exec --------------------------------------------------------------- */

static void outbuf_append(struct outbuf *b, const char *data, size_t len, size_t max)
{
        if (b->len + len > max) {
                b->truncated = true;
                len = b->len < max ? max - b->len : 0;
        }
        if (!len)
                return;
        b->data = util_xrealloc(b->data, b->len + len + 1);
        memcpy(b->data + b->len, data, len);
        b->len += len;
}

static void exec_unwatch(struct exec *ex, struct watch *w)
{
        if (w->fd >= 0) {
                core_watch_del(ex->sb->core, w);
                close(w->fd);
                w->fd = -1;
        }
}

/* Read what a pipe holds; returns false at EOF or error. */
static bool exec_pump(struct exec *ex, struct watch *w, struct outbuf *b)
{
        char buf[65536];
        for (;;) {
                ssize_t n = read(w->fd, buf, sizeof buf);
                if (n > 0) {
                        outbuf_append(b, buf, (size_t) n, ex->sb->core->cfg->max_output_bytes);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                return false;
        }
}

static void exec_output_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        struct outbuf *b = w == &ex->out_w ? &ex->out : &ex->err;
        if (!exec_pump(ex, w, b))
                exec_unwatch(ex, w);
}

static void exec_stdin_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        while (ex->in_off < ex->in_len) {
                ssize_t n = write(w->fd, ex->in_data + ex->in_off, ex->in_len - ex->in_off);
                if (n > 0) {
                        ex->in_off += (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                break;          /* EPIPE: the command stopped reading */
        }
        exec_unwatch(ex, w);
}

static void exec_add_stream(json_t *res, const char *name, struct outbuf *b)
{
        char key[32];
        const char *data = b->data ? b->data : "";
        if (util_utf8_valid(data, b->len)) {
                json_object_set_new(res, name, json_stringn(data, b->len));
                snprintf(key, sizeof key, "%s_encoding", name);
                json_object_set_new(res, key, json_string("utf-8"));
        } else {
                _cleanup_free_ char *enc = util_base64_encode(data, b->len);
                json_object_set_new(res, name, json_string(enc));
                snprintf(key, sizeof key, "%s_encoding", name);
                json_object_set_new(res, key, json_string("base64"));
        }
        snprintf(key, sizeof key, "%s_truncated", name);
        json_object_set_new(res, key, json_boolean(b->truncated));
}

static void exec_free(struct exec *ex)
{
        exec_unwatch(ex, &ex->out_w);
        exec_unwatch(ex, &ex->err_w);
        exec_unwatch(ex, &ex->in_w);
        exec_unwatch(ex, &ex->proc);
        if (ex->cg_fd >= 0)
                close(ex->cg_fd);
        free(ex->out.data);
        free(ex->err.data);
        free(ex->in_data);
        free(ex);
}

static void exec_finish(struct exec *ex, const siginfo_t *si)
{
        struct sandbox *sb = ex->sb;
        struct core *core = sb->core;
        if (ex->out_w.fd >= 0)
                exec_pump(ex, &ex->out_w, &ex->out);
        if (ex->err_w.fd >= 0)
                exec_pump(ex, &ex->err_w, &ex->err);
        json_t *res = json_object();
        if (si->si_code == CLD_EXITED) {
                json_object_set_new(res, "exit_code", json_integer(si->si_status));
                json_object_set_new(res, "signal", json_null());
        } else {
                json_object_set_new(res, "exit_code", json_null());
                json_object_set_new(res, "signal", json_integer(si->si_status));
        }
        exec_add_stream(res, "stdout", &ex->out);
        exec_add_stream(res, "stderr", &ex->err);
        json_object_set_new(res, "wall_ms", json_integer((json_int_t) (util_now_ms() - ex->start_ms)));
        for (struct exec **p = &sb->execs; *p; p = &(*p)->next)
                if (*p == ex) {
                        *p = ex->next;
                        break;
                }
        /* Processes the command left behind (daemons) keep its cgroup; it goes with the sandbox. */
        unlinkat(core->cgroups->base_fd, ex->cg_rel, AT_REMOVEDIR);
        request_respond(ex->req, 200, res);
        exec_free(ex);
        sandbox_maybe_finish_removal(sb);
}

static void exec_exited(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PIDFD, (id_t) w->fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        exec_finish(ex, &si);
}

static char **exec_candidates(const char *arg0, char **env)
{
        if (strchr(arg0, '/')) {
                char **v = util_xcalloc(2, sizeof(char *));
                v[0] = util_xstrdup(arg0);
                return v;
        }
        const char *path = env_get(env, "PATH");
        if (!path)
                path = DEFAULT_PATH;
        _cleanup_free_ char *copy = util_xstrdup(path);
        size_t n = 1;
        for (const char *p = path; *p; p++)
                n += *p == ':';
        char **v = util_xcalloc(n + 1, sizeof(char *));
        size_t k = 0;
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
                if (dir[0] == '/')
                        v[k++] = util_xasprintf("%s/%s", dir, arg0);
        return v;
}

static void exec_respond_failure(struct request *req, const char *step, int errnum, uint64_t start_ms)
{
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", step, strerror(errnum));
        int code = (errnum == ENOENT || errnum == ENOTDIR) && !strcmp(step, "execute the command") ? 127 : 126;
        json_t *res = json_pack("{s:i,s:n,s:s,s:s,s:s,s:s,s:b,s:b,s:I,s:s}", "exit_code", code, "signal",
                                "stdout", "", "stdout_encoding", "utf-8", "stderr", "", "stderr_encoding", "utf-8",
                                "stdout_truncated", 0, "stderr_truncated", 0, "wall_ms",
                                (json_int_t) (util_now_ms() - start_ms), "error", msg);
        request_respond(req, 200, res);
}

void sandbox_op_exec(struct core *core, struct request *req, const char *id, json_t *body)
{
        static const char *const keys[] = { "argv", "env", "cwd", "stdin", "stdin_encoding", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        _cleanup_strv_ char **argv = NULL, **env = NULL;
        const char *cwd = NULL, *in = NULL, *in_enc = NULL;
        if (json_check_keys(body, keys, &err) < 0 || json_get_strv(body, "argv", true, MAX_ARGV, &argv, &err) < 0 ||
            json_get_env_object(body, "env", MAX_ENV, &env, &err) < 0 ||
            json_get_string(body, "cwd", false, &cwd, &err) < 0 || json_get_string(body, "stdin", false, &in, &err) < 0 ||
            json_get_string(body, "stdin_encoding", false, &in_enc, &err) < 0)
                return request_fail(req, &err);
        if (!argv[0] || !argv[0][0])
                return request_error(req, 400, "bad_request", "argv must hold at least the command");
        if (cwd && (cwd[0] != '/' || strlen(cwd) > 4096))
                return request_error(req, 400, "bad_request", "cwd must be an absolute path inside the sandbox");
        if (in_enc && strcmp(in_enc, "utf-8") && strcmp(in_enc, "base64"))
                return request_error(req, 400, "bad_request", "stdin_encoding must be \"utf-8\" or \"base64\"");
        if (sb->state != SB_RUNNING)
                return request_error(req, 409, "conflict", "sandbox %s is %s", sb->id, sb_state_names[sb->state]);

        unsigned char *in_data = NULL;
        size_t in_len = 0;
        if (in && in_enc && !strcmp(in_enc, "base64")) {
                if (util_base64_decode(in, strlen(in), &in_data, &in_len) < 0)
                        return request_error(req, 400, "bad_request", "stdin is not valid base64");
        } else if (in) {
                in_len = strlen(in);
                in_data = (unsigned char *) util_xstrdup(in);
        }

        uint64_t start = util_now_ms();
        struct exec *ex = util_xcalloc(1, sizeof *ex);
        ex->sb = sb;
        ex->req = req;
        ex->cg_fd = -1;
        ex->out_w.fd = ex->err_w.fd = ex->in_w.fd = ex->proc.fd = -1;
        ex->in_data = in_data;
        ex->in_len = in_len;
        ex->start_ms = start;
        char hex[17];
        util_random_hex(hex, 8);
        snprintf(ex->cg_rel, sizeof ex->cg_rel, "%s/work/exec-%s", sb->id, hex);

        _cleanup_strv_ char **full_env = env_merge(sb->env, env);
        _cleanup_strv_ char **candidates = exec_candidates(argv[0], full_env);
        int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
        int r;
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || (in_data && pipe2(inp, O_CLOEXEC) < 0)) {
                r = pbox_error_sys(&err, errno, "pipe");
                goto fail;
        }
        if ((r = cgroup_create(core->cgroups, ex->cg_rel, &ex->cg_fd, &err)) < 0)
                goto fail;
        struct spawn_exec_config ec = {
                .target_pidfd = sb->init_watch.fd, .own_pidns_fd = core->own_pidns_fd,
                .target_pidns_fd = sb->pidns_fd, .cgroup_fd = ex->cg_fd, .candidates = candidates,
                .argv = argv, .envp = full_env, .cwd = cwd ? cwd : sb->workdir, .uid = 0, .gid = 0,
                .stdin_fd = in_data ? inp[0] : core->null_fd, .stdout_fd = out[1], .stderr_fd = errp[1],
                .sec = { &core->caps, core->seccomp },
        };
        memcpy(ec.ns_fds, sb->ns_fds, sizeof ec.ns_fds);
        struct spawn_result res;
        memset(&res, 0, sizeof res);
        r = spawn_exec(&ec, &res, &err);
        close(out[1]);
        close(errp[1]);
        if (inp[0] >= 0)
                close(inp[0]);
        out[1] = errp[1] = inp[0] = -1;
        if (r < 0)
                goto fail;
        if (res.pid == 0) {
                close(out[0]);
                close(errp[0]);
                if (inp[1] >= 0)
                        close(inp[1]);
                unlinkat(core->cgroups->base_fd, ex->cg_rel, AT_REMOVEDIR);
                exec_free(ex);
                return exec_respond_failure(req, res.failed_step, res.child_errno, start);
        }
        ex->pid = res.pid;
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(errp[0], F_SETFL, O_NONBLOCK);
        ex->out_w = (struct watch) { out[0], exec_output_event, ex };
        ex->err_w = (struct watch) { errp[0], exec_output_event, ex };
        ex->proc = (struct watch) { res.pidfd, exec_exited, ex };
        core_watch_add(core, &ex->out_w, EPOLLIN);
        core_watch_add(core, &ex->err_w, EPOLLIN);
        if (inp[1] >= 0) {
                fcntl(inp[1], F_SETFL, O_NONBLOCK);
                ex->in_w = (struct watch) { inp[1], exec_stdin_event, ex };
                core_watch_add(core, &ex->in_w, EPOLLOUT);
        }
        core_watch_add(core, &ex->proc, EPOLLIN);
        req->deferred = true;
        ex->next = sb->execs;
        sb->execs = ex;
        log_debug("sandbox %s: exec %s pid %d", sb->id, argv[0], (int) ex->pid);
        return;
fail:
        for (int i = 0; i < 2; i++) {
                if (out[i] >= 0)
                        close(out[i]);
                if (errp[i] >= 0)
                        close(errp[i]);
                if (inp[i] >= 0)
                        close(inp[i]);
        }
        if (ex->cg_fd >= 0)
                unlinkat(core->cgroups->base_fd, ex->cg_rel, AT_REMOVEDIR);
        exec_free(ex);
        request_fail(req, &err);
}

/* ---- stop and remove ---------------------------------------------------- */

static int parse_signal(json_t *v, int *ret)
{
        static const struct { const char *name; int sig; } sigs[] = {
                { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT }, { "HUP", SIGHUP },
                { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
        };
        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n < 1 || n > 64)
                        return -EINVAL;
                *ret = (int) n;
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        const char *s = json_string_value(v);
        if (!strncmp(s, "SIG", 3))
                s += 3;
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                if (!strcmp(s, sigs[i].name)) {
                        *ret = sigs[i].sig;
                        return 0;
                }
        return -EINVAL;
}

void sandbox_op_stop(struct core *core, struct request *req, const char *id, json_t *body)
{
        static const char *const keys[] = { "grace_ms", "signal", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        int64_t grace = core->cfg->stop_grace_ms;
        int sig = SIGTERM;
        if (body) {
                if (json_check_keys(body, keys, &err) < 0 ||
                    json_get_int(body, "grace_ms", false, 0, 3600 * 1000, &grace, &err) < 0)
                        return request_fail(req, &err);
                json_t *s = json_object_get(body, "signal");
                if (s && parse_signal(s, &sig) < 0)
                        return request_error(req, 400, "bad_request", "signal must be a signal name (\"SIGTERM\") or number");
        }
        if (sb->state == SB_STOPPED)
                return request_respond(req, 200, sandbox_public(sb));
        req->deferred = true;
        reqlist_add(&sb->stop_waiters, req);
        sandbox_begin_stop(sb, (uint32_t) grace, sig);
}

static void sandbox_maybe_finish_removal(struct sandbox *sb)
{
        if (sb->remove_waiters.n == 0 || sb->state != SB_STOPPED || sb->execs)
                return;
        struct core *core = sb->core;
        sandbox_unlink(core, sb);
        int r = sandbox_destroy_host_state(core, sb->id);
        for (size_t i = 0; i < sb->remove_waiters.n; i++) {
                if (r < 0)
                        request_error(sb->remove_waiters.v[i], 500, "internal",
                                      "sandbox %s was removed, but some of its host state could not be (see the pboxd log)",
                                      sb->id);
                else
                        request_respond(sb->remove_waiters.v[i], 200, json_pack("{s:s}", "removed", sb->id));
        }
        log_info("sandbox %s removed", sb->id);
        sandbox_free(sb);
}

void sandbox_op_remove(struct core *core, struct request *req, const char *id, bool force)
{
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        if (sb->state != SB_STOPPED && !force)
                return request_error(req, 409, "conflict", "sandbox %s is %s: stop it first or remove it with force",
                                     sb->id, sb_state_names[sb->state]);
        req->deferred = true;
        reqlist_add(&sb->remove_waiters, req);
        if (sb->state != SB_STOPPED)
                sandbox_begin_stop(sb, 0, SIGKILL);
        else
                sandbox_maybe_finish_removal(sb);
}

/* ---- recovery ----------------------------------------------------------- */

static int sandbox_load_record(struct core *core, const char *id, struct sandbox **ret, struct pbox_error *err)
{
        _cleanup_free_ char *path = util_xasprintf("%s/state.json", id);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = util_read_file_at(core->sandboxes_fd, path, 1 << 20, &text, &len, err);
        if (r < 0)
                return pbox_error_prefix(err, "sandbox record %s", id);
        _cleanup_json_ json_t *j = NULL;
        if ((r = json_parse_untrusted(text, len, true, &j, err)) < 0)
                return pbox_error_prefix(err, "sandbox record %s", id);
        const char *rid = NULL, *name = NULL, *image = NULL, *image_id = NULL, *hostname = NULL, *state = NULL,
                   *workdir = NULL, *reason = NULL;
        int64_t created = 0, stopped = 0, pid = 0, starttime = 0;
        struct sandbox *sb = sandbox_new(core);
        if (json_get_string(j, "id", true, &rid, err) < 0 || json_get_string(j, "name", true, &name, err) < 0 ||
            json_get_string(j, "image", true, &image, err) < 0 || json_get_string(j, "image_id", true, &image_id, err) < 0 ||
            json_get_string(j, "hostname", true, &hostname, err) < 0 || json_get_string(j, "state", true, &state, err) < 0 ||
            json_get_string(j, "working_dir", true, &workdir, err) < 0 ||
            json_get_string(j, "stop_reason", false, &reason, err) < 0 ||
            json_get_int(j, "created_ms", true, 0, INT64_MAX, &created, err) < 0 ||
            json_get_int(j, "stopped_ms", false, 0, INT64_MAX, &stopped, err) < 0 ||
            json_get_int(j, "pid", false, 0, INT32_MAX, &pid, err) < 0 ||
            json_get_int(j, "starttime", false, 0, INT64_MAX, &starttime, err) < 0 ||
            json_get_strv(j, "env", true, MAX_ENV * 2, &sb->env, err) < 0) {
                sandbox_free(sb);
                return pbox_error_prefix(err, "sandbox record %s", id);
        }
        if (strcmp(rid, id) || strlen(id) != 24) {
                sandbox_free(sb);
                return pbox_error_set(err, EINVAL, "sandbox record %s names another id", id);
        }
        memcpy(sb->id, id, 25);
        sb->name = util_xstrdup(name);
        sb->image_ref = util_xstrdup(image);
        sb->image_id = util_xstrdup(image_id);
        sb->hostname = util_xstrdup(hostname);
        sb->workdir = util_xstrdup(workdir);
        sb->stop_reason = reason ? util_xstrdup(reason) : NULL;
        json_t *labels = json_object_get(j, "labels");
        sb->labels = json_is_object(labels) ? json_deep_copy(labels) : json_object();
        sb->created_ms = (uint64_t) created;
        sb->stopped_ms = (uint64_t) stopped;
        sb->pid = (pid_t) pid;
        sb->starttime = (unsigned long long) starttime;
        sb->state = SB_STOPPED;
        for (int i = 0; i < 4; i++)
                if (!strcmp(state, sb_state_names[i]))
                        sb->state = (enum sb_state) i;
        sb->rootfs = util_xasprintf("%s/%s/rootfs", core->runtime_sandboxes, id);
        *ret = sb;
        return 0;
}

static bool sandbox_adopt(struct core *core, struct sandbox *sb)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        unsigned long long st = 0;
        if (sb->pid <= 1)
                return false;
        int pidfd = sys_pidfd_open(sb->pid, 0);
        if (pidfd < 0)
                return false;
        sb->init_watch = (struct watch) { pidfd, init_exited, sb };
        sb->init_is_child = false;
        if (read_starttime(sb->pid, &st) < 0 || st != sb->starttime)
                return false;           /* the pid was recycled: not our init */
        _cleanup_free_ char *work_rel = util_xasprintf("%s/work", sb->id);
        if (cgroup_open(core->cgroups, sb->id, &sb->cgroup_fd, &err) < 0 ||
            cgroup_open(core->cgroups, work_rel, &sb->work_cgroup_fd, &err) < 0 ||
            sandbox_open_namespaces(sb, &err) < 0) {
                log_warning("sandbox %s: cannot re-adopt: %s", sb->id, err.message);
                return false;
        }
        if (core_watch_add(core, &sb->init_watch, EPOLLIN) < 0)
                return false;
        return true;
}

int sandbox_recover_all(struct core *core, struct pbox_error *err)
{
        int dfd = fcntl(core->sandboxes_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "dup");
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return pbox_error_sys(err, errno, "opendir sandboxes");
        }
        unsigned running = 0, stopped = 0, lost = 0, broken = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (strlen(de->d_name) != 24 || !util_is_hex(de->d_name, 24)) {
                        log_warning("ignoring %s/sandboxes/%s: not a sandbox", core->cfg->state_dir, de->d_name);
                        continue;
                }
                struct sandbox *sb = NULL;
                struct pbox_error lerr = PBOX_ERROR_INIT;
                if (sandbox_load_record(core, de->d_name, &sb, &lerr) < 0) {
                        /* A record we cannot read is kept on disk for the admin, never deleted. */
                        log_error("%s", lerr.message);
                        broken++;
                        continue;
                }
                if (sb->state == SB_CREATING) {
                        log_notice("sandbox %s was being created when pboxd stopped: cleaning it up", sb->id);
                        sandbox_destroy_host_state(core, sb->id);
                        sandbox_free(sb);
                        continue;
                }
                if (sb->state == SB_RUNNING || sb->state == SB_STOPPING) {
                        if (sandbox_adopt(core, sb)) {
                                sb->state = SB_RUNNING;
                                running++;
                        } else {
                                if (sb->init_watch.fd >= 0) {
                                        close(sb->init_watch.fd);
                                        sb->init_watch.fd = -1;
                                }
                                int cg = -1;
                                if (cgroup_open(core->cgroups, sb->id, &cg, NULL) == 0) {
                                        cgroup_kill(core->cgroups, cg, NULL);
                                        close(cg);
                                }
                                sb->state = SB_STOPPED;
                                sb->stopped_ms = util_realtime_ms();
                                free(sb->stop_reason);
                                sb->stop_reason = util_xstrdup("lost");
                                lost++;
                        }
                        sandbox_save(sb);
                } else
                        stopped++;
                sb->next = core->sandboxes;
                core->sandboxes = sb;
        }
        closedir(d);
        log_info("recovered sandboxes: %u running, %u stopped, %u lost (init gone while pboxd was down), %u unreadable",
                 running, stopped, lost, broken);
        return 0;
}

void sandbox_free_all(struct core *core)
{
        while (core->sandboxes) {
                struct sandbox *sb = core->sandboxes;
                core->sandboxes = sb->next;
                while (sb->execs) {
                        struct exec *ex = sb->execs;
                        sb->execs = ex->next;
                        exec_free(ex);
                }
                sandbox_free(sb);
        }
}
