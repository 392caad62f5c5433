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
#include <sys/statfs.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "diskimg.h"
#include "exec.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "rootfs.h"
#include "sandbox.h"
#include "spawn.h"
#include "tenants.h"
#include "syscalls.h"
#include "util.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

#define MAX_ENV 1024

const char *const sb_state_names[] = { "creating", "running", "stopping", "stopped" };

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

bool sandbox_visible(const struct core *core, const struct sandbox *sb)
{
        return !core->caller || (sb->tenant && !strcmp(sb->tenant, core->caller->name));
}

struct sandbox *sandbox_find(struct core *core, const char *id_or_name)
{
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (!strcmp(sb->id, id_or_name) && sandbox_visible(core, sb))
                        return sb;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (sb->name && !strcmp(sb->name, id_or_name) && sandbox_visible(core, sb))
                        return sb;
        return NULL;
}

unsigned sandbox_running_execs(const struct core *core, const char *tenant)
{
        unsigned n = 0;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (!tenant || (sb->tenant && !strcmp(sb->tenant, tenant)))
                        n += exec_count_running(sb);
        return n;
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

/* Merge "K=V" lists; later entries replace earlier ones with the same key. */
char **sandbox_env_merge(char **base, char **over)
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

/* ---- events, activity, expiry ------------------------------------------ */

static void sandbox_event(struct sandbox *sb, const char *type, const char *message)
{
        char now[40];
        util_format_time(util_realtime_ms(), now, sizeof now);
        if (!sb->events)
                sb->events = json_array();
        json_array_append_new(sb->events, json_pack("{s:s,s:s,s:s}", "time", now, "type", type, "message", message));
        while (json_array_size(sb->events) > 64)
                json_array_remove(sb->events, 0);
}

void sandbox_touch(struct sandbox *sb)
{
        sb->last_activity_ms = util_realtime_ms();
}

/* ---- records ------------------------------------------------------------ */

/* state.json keeps "not given" (absent) apart from "no limit" (null). */
static json_t *limits_state_json(const struct sandbox_limits *l)
{
        json_t *j = limits_sandbox_to_json(l);
        const int64_t v[] = { l->memory_bytes, l->swap_bytes, l->pids, l->cpus_milli, l->cpu_weight, l->io_read_bps,
                              l->io_write_bps, l->io_read_iops, l->io_write_iops, l->disk_bytes };
        for (size_t i = 0; i < ARRAY_SIZE(v) && limits_sandbox_keys[i]; i++)
                if (v[i] == LIMIT_UNSET)
                        json_object_del(j, limits_sandbox_keys[i]);
        return j;
}

/* STATE_DIR/sandboxes/<id>/<name>: the sandbox's own files (record, upper/,
 * rw/, disk.img). */
static char *sandbox_state_path(const struct core *core, const char *id, const char *name)
{
        return util_xasprintf("%s/sandboxes/%s/%s", core->cfg->state_dir, id, name);
}

static int sandbox_save(struct sandbox *sb);

int sandbox_read_cgroup_usage(struct sandbox *sb, struct cgroup_usage *ret)
{
        struct cgroup_usage u;
        if (sb->cgroup_fd < 0 || cgroup_read_usage(sb->cgroup_fd, &u, NULL) < 0)
                return -1;
        if (u.pids_current > sb->pids_peak_sampled)
                sb->pids_peak_sampled = u.pids_current;
        if (u.pids_peak < 0)
                u.pids_peak = sb->pids_peak_sampled;
        if (u.pids_max_hits >= 0)
                u.pids_max_hits += sb->forks_refused_ended;
        *ret = u;
        return 0;
}

void sandbox_add_forks_refused(struct sandbox *sb, int64_t n)
{
        sb->forks_refused_ended += n;
        sandbox_save(sb);
}

/* Usage of the sandbox's cgroup now (running), with the bytes of its
 * writable layer where that is cheap to know (a tmpfs). */
static json_t *read_usage(struct sandbox *sb)
{
        struct cgroup_usage u;
        if (sandbox_read_cgroup_usage(sb, &u) < 0)
                return NULL;
        json_t *j = limits_usage_to_json(&u);
        uint64_t disk = 0;
        if (sb->disk_limited && sandbox_disk_usage(sb, 0, &disk, NULL) == 0)
                json_object_set_new(j, "disk_bytes", json_integer((json_int_t) disk));
        else
                json_object_set_new(j, "disk_bytes", json_null());
        return j;
}

json_t *sandbox_usage_json(struct sandbox *sb)
{
        if (sb->state == SB_RUNNING || sb->state == SB_STOPPING)
                return read_usage(sb);
        return sb->last_usage ? json_deep_copy(sb->last_usage) : NULL;
}

int sandbox_disk_usage(const struct sandbox *sb, uint64_t max_entries, uint64_t *ret, struct pbox_error *err)
{
        const struct core *core = sb->core;
        _cleanup_free_ char *dir = sandbox_state_path(core, sb->id, sb->disk_limited ? "rw" : "upper");
        return rootfs_layer_usage(dir, sb->disk_limited, max_entries, ret, err);
}

static json_t *sandbox_public(const struct sandbox *sb)
{
        char created[40], stopped[40];
        time_string(sb->created_ms, created);
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "id", sb->id, "name", sb->name ? sb->name : sb->id,
                              "image", sb->image_ref, "image_id", sb->image_id, "state", sb_state_names[sb->state],
                              "created_at", created, "hostname", sb->hostname, "labels", sb->labels);
        if (sb->state == SB_RUNNING || sb->state == SB_STOPPING)
                json_object_set_new(j, "pid", json_integer(sb->pid));
        char when[40];
        if (sb->tenant)
                json_object_set_new(j, "tenant", json_string(sb->tenant));
        if (sb->expires_ms) {
                time_string(sb->expires_ms, when);
                json_object_set_new(j, "expires_at", json_string(when));
        }
        if (sb->idle_timeout_s)
                json_object_set_new(j, "idle_timeout_s", json_integer(sb->idle_timeout_s));
        time_string(sb->last_activity_ms, when);
        json_object_set_new(j, "last_activity_at", json_string(when));
        json_object_set_new(j, "events", sb->events ? json_deep_copy(sb->events) : json_array());
        json_object_set_new(j, "limits", limits_sandbox_to_json(&sb->limits));
        json_t *usage = sandbox_usage_json((struct sandbox *) sb);
        json_object_set_new(j, "usage", usage ? usage : json_null());
        if (sb->unenforced && json_array_size(sb->unenforced) > 0)
                json_object_set_new(j, "unenforced_limits", json_deep_copy(sb->unenforced));
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
        if (sb->tenant)
                json_object_set_new(j, "tenant", json_string(sb->tenant));
        json_object_set_new(j, "expires_ms", json_integer((json_int_t) sb->expires_ms));
        json_object_set_new(j, "idle_timeout_s", json_integer(sb->idle_timeout_s));
        json_object_set_new(j, "last_activity_ms", json_integer((json_int_t) sb->last_activity_ms));
        json_object_set_new(j, "remove_after_ms", json_integer((json_int_t) sb->remove_after_ms));
        if (sb->state == SB_STOPPING)
                json_object_set_new(j, "stop_deadline_ms", json_integer((json_int_t) sb->stop_deadline_real_ms));
        json_object_set_new(j, "events", sb->events ? json_deep_copy(sb->events) : json_array());
        json_object_set_new(j, "limits", limits_state_json(&sb->limits));
        json_object_set_new(j, "disk_limited", json_boolean(sb->disk_limited));
        if (sb->disk_limited)
                json_object_set_new(j, "disk_backend", json_string(sb->disk_ext4 ? "ext4" : "tmpfs"));
        if (sb->unenforced)
                json_object_set_new(j, "unenforced_limits", json_deep_copy(sb->unenforced));
        if (sb->last_usage)
                json_object_set_new(j, "last_usage", json_deep_copy(sb->last_usage));
        if (sb->forks_refused_ended > 0)
                json_object_set_new(j, "forks_refused_ended", json_integer((json_int_t) sb->forks_refused_ended));
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
        exec_free_all(sb);
        /* Its watches go before their fds are closed below (and any event
         * of theirs still pending in this batch with them). */
        core_watch_del(sb->core, &sb->init_watch);
        core_watch_del(sb->core, &sb->stop_tick);
        free(sb->name);
        free(sb->tenant);
        free(sb->image_ref);
        free(sb->image_id);
        free(sb->hostname);
        json_decref(sb->labels);
        json_decref(sb->events);
        json_decref(sb->unenforced);
        json_decref(sb->last_usage);
        util_strv_free(sb->env);
        free(sb->workdir);
        free(sb->stop_reason);
        free(sb->rootfs);
        free(sb->stop_waiters.v);
        free(sb->remove_waiters.v);
        if (sb->discard_req) /* pboxd is exiting: the answer is still true */
                request_respond(sb->discard_req, sb->discard_status, sb->discard_reply);
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
        limits_sandbox_init(&sb->limits);
        sb->pids_peak_sampled = -1;
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
        /* The tmpfs writable layer, if any (after the overlay that used it). */
        _cleanup_free_ char *rw = sandbox_state_path(core, id, "rw");
        pbox_error_clear(&err);
        if (rootfs_unmount(rw, &err) < 0) {
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
        const char *reason = sb->stop_cause ? sb->stop_cause
                             : sb->state == SB_STOPPING ? (sb->stop_killed ? "killed" : "stopped") : "exited";
        log_info("sandbox %s %s", sb->id, reason);
        /* The last figures, kept in the record once the sandbox stopped. */
        json_t *usage = read_usage(sb);
        if (usage) {
                json_decref(sb->last_usage);
                sb->last_usage = usage;
        }
        /* Whatever survived the pid namespace (nothing should) goes too. */
        if (sb->cgroup_fd >= 0)
                cgroup_kill(core->cgroups, sb->cgroup_fd, NULL);
        sb->state = SB_STOPPED;
        sb->stopped_ms = util_realtime_ms();
        free(sb->stop_reason);
        sb->stop_reason = util_xstrdup(reason);
        metrics_count_sandbox_end(reason);
        sandbox_event(sb, sb->stop_killed ? "killed" : "stopped",
                      sb->stop_killed ? "processes left after the grace period were killed" : "the sandbox stopped");
        if (sb->remove_pending && sb->stop_cause)       /* expired: its record stays a while */
                sb->remove_after_ms = sb->stopped_ms + (uint64_t) core->cfg->expired_keep_s * 1000;
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
        exec_sandbox_stopping(sb);
        sb->stop_deadline_ms = util_now_ms() + grace_ms;
        sb->stop_deadline_real_ms = util_realtime_ms() + grace_ms;
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

/* Mount the sandbox's root at sb->rootfs (RUNTIME_DIR/sandboxes/<id>/rootfs):
 * its writable layer -- in a file system of disk_bytes when the disk is
 * limited (rw/upper, rw/work: a tmpfs, or the ext4 image disk.img on a loop
 * device), else upper/ and work/ on the state dir's disk -- over the image's
 * layers.  At create (the image and directories just made), and again for
 * a stopped sandbox whose mounts a host reboot took, so that its files can
 * still be read.  What is already mounted is kept. */
static int sandbox_mount_root(struct core *core, struct sandbox *sb, char *const *layer_dirs, bool after_reboot,
                              struct pbox_error *err)
{
        int r;
        const char *upper_name = sb->disk_limited ? "rw/upper" : "upper", *work_name = sb->disk_limited ? "rw/work" : "work";
        if (sb->disk_limited) {
                _cleanup_free_ char *rw = sandbox_state_path(core, sb->id, "rw");
                if (sb->disk_ext4) {
                        _cleanup_free_ char *img = sandbox_state_path(core, sb->id, "disk.img");
                        if ((r = diskimg_mount(img, rw, after_reboot, err)) < 0 ||
                            (r = rootfs_prepare_layer(rw, core->map.uid_base, core->map.gid_base, err)) < 0)
                                return r;
                } else if ((r = rootfs_mount_layer_tmpfs(rw, (uint64_t) sb->limits.disk_bytes, core->map.uid_base,
                                                         core->map.gid_base, err)) < 0)
                        return r;
        }
        _cleanup_free_ char *rt = util_xasprintf("%s/%s", core->runtime_sandboxes, sb->id);
        free(sb->rootfs);
        sb->rootfs = util_xasprintf("%s/rootfs", rt);
        if ((mkdir(rt, 0711) < 0 && errno != EEXIST) || (mkdir(sb->rootfs, 0755) < 0 && errno != EEXIST))
                return pbox_error_sys(err, errno, "create the rootfs mount point");
        _cleanup_free_ char *upper = sandbox_state_path(core, sb->id, upper_name);
        _cleanup_free_ char *work = sandbox_state_path(core, sb->id, work_name);
        return rootfs_mount_overlay(layer_dirs, upper, work, sb->rootfs, err);
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
        if (sb->disk_ext4) {
                _cleanup_free_ char *img = sandbox_state_path(core, sb->id, "disk.img");
                if ((r = diskimg_create(dfd, "disk.img", img, (uint64_t) sb->limits.disk_bytes, core->map.uid_base,
                                        core->map.gid_base, err)) < 0)
                        return r;
        } else if (!sb->disk_limited &&
                   (mkdirat(dfd, "upper", 0755) < 0 || fchownat(dfd, "upper", core->map.uid_base, core->map.gid_base, 0) < 0 ||
                    mkdirat(dfd, "work", 0700) < 0))
                return pbox_error_sys(err, errno, "create the overlay directories");
        if ((r = sandbox_mount_root(core, sb, info->layer_dirs, false, err)) < 0)
                return r;

        _cleanup_free_ char *init_rel = util_xasprintf("%s/init", sb->id);
        _cleanup_free_ char *work_rel = util_xasprintf("%s/work", sb->id);
        _cleanup_close_ int init_cg = -1;
        /* The sandbox's limits go on <id> before its init exists (the
         * base enables the controllers for <id>'s own files). */
        if ((r = cgroup_create(core->cgroups, sb->id, &sb->cgroup_fd, err)) < 0)
                return r;
        if ((r = limits_sandbox_write(core, sb->cgroup_fd, &sb->limits, err)) < 0)
                return pbox_error_prefix(err, "set the sandbox's limits");
        if ((r = cgroup_create(core->cgroups, init_rel, &init_cg, err)) < 0 ||
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
        /* The init passes through <id> itself (to make <id> the root of its
         * cgroup namespace) before it lands in <id>/init, and a cgroup with
         * controllers enabled for its children may hold no process: only now
         * can <id> and <id>/work pass the controllers down to init/ and to
         * the execs' cgroups.  The limits on <id> held all along. */
        unsigned ctrl = core->cgroups->enabled;
        if (ctrl && ((r = cgroup_enable_subtree(sb->cgroup_fd, ctrl, err)) < 0 ||
                     (r = cgroup_enable_subtree(sb->work_cgroup_fd, ctrl, err)) < 0))
                return pbox_error_prefix(err, "enable cgroup controllers below sandbox %s", sb->id);
        if ((r = sandbox_open_namespaces(sb, err)) < 0)
                return r;
        read_starttime(sb->pid, &sb->starttime);
        if (core_watch_add(core, &sb->init_watch, EPOLLIN) < 0)
                return pbox_error_sys(err, errno, "watch the sandbox init");
        sb->state = SB_RUNNING;
        sandbox_save(sb);
        return 0;
}

struct sandbox *sandbox_create_from_body(struct core *core, struct request *req, json_t *body)
{
        static const char *const keys[] = { "image", "name", "env", "hostname", "labels", "ttl_s", "idle_timeout_s",
                                            "limits", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *image = NULL, *name = NULL, *hostname = NULL;
        int64_t ttl = core->cfg->ttl_s, idle = core->cfg->idle_timeout_s;
        if (json_get_int(body, "ttl_s", false, 0, UINT32_MAX, &ttl, &err) < 0 ||
            json_get_int(body, "idle_timeout_s", false, 0, UINT32_MAX, &idle, &err) < 0)
                { request_fail(req, &err); return NULL; }
        if (core->cfg->max_ttl_s && (ttl == 0 || ttl > core->cfg->max_ttl_s))
                { request_error(req, 422, "unprocessable", "ttl_s must be between 1 and this server's maximum of %u",
                                     core->cfg->max_ttl_s); return NULL; }
        if (core->cfg->max_idle_timeout_s && (idle == 0 || idle > core->cfg->max_idle_timeout_s))
                { request_error(req, 422, "unprocessable",
                                     "idle_timeout_s must be between 1 and this server's maximum of %u",
                                     core->cfg->max_idle_timeout_s); return NULL; }
        _cleanup_strv_ char **env = NULL;
        if (json_check_keys(body, keys, &err) < 0 || json_get_string(body, "image", true, &image, &err) < 0 ||
            json_get_string(body, "name", false, &name, &err) < 0 ||
            json_get_string(body, "hostname", false, &hostname, &err) < 0 ||
            json_get_env_object(body, "env", MAX_ENV, &env, &err) < 0)
                { request_fail(req, &err); return NULL; }
        if (name && !valid_name(name, 64))
                { request_error(req, 400, "bad_request",
                                     "name must be 1 to 64 characters of letters, digits, '_', '.', '-', starting with a letter or digit"); return NULL; }
        if (name && sandbox_find(core, name))
                { request_error(req, 409, "conflict", "a sandbox named '%s' exists", name); return NULL; }
        if (hostname && !valid_hostname(hostname))
                { request_error(req, 400, "bad_request", "hostname must be 1 to 63 characters of letters, digits, '-', '.'"); return NULL; }
        json_t *labels = json_object_get(body, "labels");
        if (labels && !json_is_null(labels)) {
                if (!json_is_object(labels) || json_object_size(labels) > 64)
                        { request_error(req, 400, "bad_request", "labels must be an object of at most 64 strings"); return NULL; }
                const char *k;
                json_t *v;
                json_object_foreach(labels, k, v)
                        if (!json_is_string(v) || strlen(k) == 0 || strlen(k) > 128 || json_string_length(v) > 1024)
                                { request_error(req, 400, "bad_request",
                                                     "labels: keys of 1 to 128 characters mapping to strings of at most 1024"); return NULL; }
        }
        struct sandbox_limits limits;
        if (limits_sandbox_parse(core, json_object_get(body, "limits"), &limits, &err) < 0)
                { sandbox_limits_fail(req, &err); return NULL; }
        limits_sandbox_apply_defaults(core, &limits);
        if (core->cfg->disk_backend == DISK_BACKEND_EXT4 && limits.disk_bytes != LIMIT_UNSET &&
            limits.disk_bytes != CGROUP_UNLIMITED && (uint64_t) limits.disk_bytes < DISKIMG_MIN_BYTES)
                { request_error(req, 422, "unprocessable", "disk_bytes: at least %llu bytes with disk_backend = ext4",
                                (unsigned long long) DISKIMG_MIN_BYTES); return NULL; }
        size_t count = 0;
        for (struct sandbox *s = core->sandboxes; s; s = s->next)
                count++;
        if (count >= core->cfg->max_sandboxes)
                { request_error(req, 503, "unavailable", "pboxd holds its maximum of %u sandboxes",
                                     core->cfg->max_sandboxes); return NULL; }

        const struct tenant *caller = core->caller;
        if (caller && caller->max_sandboxes) {
                unsigned mine = 0;
                for (struct sandbox *s = core->sandboxes; s; s = s->next)
                        mine += s->tenant && !strcmp(s->tenant, caller->name) && s->state != SB_STOPPED;
                if (mine >= caller->max_sandboxes) {
                        request_error(req, 429, "too_many_requests", "tenant %s has its maximum of %u sandboxes",
                                      caller->name, caller->max_sandboxes);
                        return NULL;
                }
        }
        struct image_info *info = NULL;
        if (image_store_resolve(core->images, image, &info, &err) < 0)
                { request_fail(req, &err); return NULL; }
        if (!tenant_may_use_image(caller, info->id, info->ref)) {
                image_info_free(info);
                request_error(req, 404, "not_found", "no such image: %s", image);
                return NULL;
        }

        struct sandbox *sb = sandbox_new(core);
        util_random_hex(sb->id, 12);
        sb->name = util_xstrdup(name ? name : sb->id);
        sb->tenant = caller ? util_xstrdup(caller->name) : NULL;
        sb->image_ref = util_xstrdup(info->ref);
        sb->image_id = util_xstrdup(info->id);
        sb->hostname = hostname ? util_xstrdup(hostname) : strndup(sb->id, 12);
        if (!sb->hostname)
                abort();
        sb->labels = labels && json_is_object(labels) ? json_deep_copy(labels) : json_object();
        char *defaults[] = { (char *) "PATH=" SANDBOX_DEFAULT_PATH, (char *) "HOME=/root", NULL };
        _cleanup_strv_ char **base = sandbox_env_merge(defaults, info->env);
        sb->env = sandbox_env_merge(base, env);
        sb->workdir = util_xstrdup(info->working_dir && info->working_dir[0] ? info->working_dir : "/");
        sb->created_ms = util_realtime_ms();
        sb->last_activity_ms = sb->created_ms;
        sb->expires_ms = ttl ? sb->created_ms + (uint64_t) ttl * 1000 : 0;
        sb->idle_timeout_s = (uint32_t) idle;
        sb->limits = limits;
        sb->disk_limited = limits.disk_bytes != LIMIT_UNSET && limits.disk_bytes != CGROUP_UNLIMITED;
        sb->disk_ext4 = sb->disk_limited && core->cfg->disk_backend == DISK_BACKEND_EXT4;
        sb->unenforced = limits_sandbox_unenforced(core, &sb->limits);
        if (sb->unenforced) {
                _cleanup_free_ char *keys_text = json_dump_compact(sb->unenforced);
                log_notice("sandbox %s: limits not enforced on this host: %s", sb->id, keys_text);
        }
        sb->state = SB_CREATING;
        sandbox_event(sb, "created", sb->image_ref);

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
                { request_fail(req, &err); return NULL; }
        }
        sb->next = core->sandboxes;
        core->sandboxes = sb;
        metrics_observe_start(util_now_ms() - t0);
        log_info("sandbox %s created from %s in %llu ms (init pid %d)", sb->id, sb->image_ref,
                 (unsigned long long) (util_now_ms() - t0), (int) sb->pid);
        return sb;
}

void sandbox_op_create(struct core *core, struct request *req, json_t *body)
{
        struct sandbox *sb = sandbox_create_from_body(core, req, body);
        if (sb)
                request_respond(req, 201, sandbox_public(sb));
}

void sandbox_discard(struct sandbox *sb)
{
        sb->remove_pending = true;
        sb->remove_after_ms = 0;
        if (sb->state == SB_STOPPED)
                sandbox_maybe_finish_removal(sb);
        else
                sandbox_begin_stop(sb, 0, SIGKILL);
}

void sandbox_discard_then_respond(struct sandbox *sb, struct request *req, int status, json_t *reply)
{
        if (sb->discard_req) /* one answer per sandbox; never expected */
                request_respond(sb->discard_req, sb->discard_status, sb->discard_reply);
        req->deferred = true;
        sb->discard_req = req;
        sb->discard_status = status;
        sb->discard_reply = reply;
        sandbox_discard(sb);
}

void sandbox_op_list(struct core *core, struct request *req)
{
        json_t *arr = json_array();
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (sandbox_visible(core, sb))
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

/* ---- exec requests ------------------------------------------------------ */

bool sandbox_exec_admissible(struct core *core, struct request *req)
{
        const struct tenant *caller = core->caller;
        if (caller && caller->max_execs && sandbox_running_execs(core, caller->name) >= caller->max_execs) {
                request_error(req, 429, "too_many_requests", "tenant %s has its maximum of %u running execs",
                              caller->name, caller->max_execs);
                return false;
        }
        if (sandbox_running_execs(core, NULL) >= core->cfg->max_running_execs) {
                request_error(req, 503, "unavailable", "pboxd is running its maximum of %u execs; retry shortly",
                              core->cfg->max_running_execs);
                return false;
        }
        return true;
}

void sandbox_op_exec(struct core *core, struct request *req, const char *id, json_t *body)
{
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        struct exec_params p;
        bool wait = true;
        if (!exec_parse_request(core, req, body, &p, &wait))
                return;
        if (sb->state != SB_RUNNING) {
                exec_params_clear(&p);
                return request_error(req, 409, "conflict", "sandbox %s is %s", sb->id, sb_state_names[sb->state]);
        }
        if (!sandbox_exec_admissible(core, req)) {
                exec_params_clear(&p);
                return;
        }
        sandbox_touch(sb);
        exec_start(core, sb, &p, req, wait, NULL, NULL);
        exec_params_clear(&p);
}

void sandbox_op_exec_other(struct core *core, struct request *req, const char *op, const char *id,
                           const char *eid, json_t *args, json_t *body, struct privsep_msg *msg)
{
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        if (!strcmp(op, "exec.list"))
                return exec_op_list(core, req, sb);
        if (!eid || strlen(eid) != 16 || !util_is_hex(eid, 16))
                return request_error(req, 404, "not_found", "no such exec");
        if (!strcmp(op, "exec.get"))
                exec_op_get(core, req, sb, eid);
        else if (!strcmp(op, "exec.events"))
                exec_op_events(core, req, sb, eid);
        else if (!strcmp(op, "exec.kill"))
                exec_op_kill(core, req, sb, eid, body);
        else if (!strcmp(op, "exec.stdin")) {
                const char *close_arg = NULL;
                json_get_string(args, "close", false, &close_arg, NULL);
                bool close_after = close_arg && (!strcmp(close_arg, "true") || !strcmp(close_arg, "1"));
                exec_op_stdin(core, req, sb, eid, close_after, msg);
        } else
                request_error(req, 404, "not_found", "unknown operation");
}

/* ---- stop and remove ---------------------------------------------------- */

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
                if (s && exec_parse_signal(s, &sig) < 0)
                        return request_error(req, 400, "bad_request", "signal must be a signal name (\"SIGTERM\") or number");
        }
        if (sb->state == SB_STOPPED)
                return request_respond(req, 200, sandbox_public(sb));
        req->deferred = true;
        reqlist_add(&sb->stop_waiters, req);
        sandbox_begin_stop(sb, (uint32_t) grace, sig);
}

void sandbox_maybe_finish_removal(struct sandbox *sb)
{
        if (sb->state != SB_STOPPED || exec_any_running(sb))
                return;
        if (sb->remove_waiters.n == 0 && (!sb->remove_pending || util_realtime_ms() < sb->remove_after_ms))
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
        if (sb->discard_req) {
                request_respond(sb->discard_req, sb->discard_status, sb->discard_reply);
                sb->discard_req = NULL;
                sb->discard_reply = NULL;
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
        int64_t v = 0;
        if (json_get_int(j, "expires_ms", false, 0, INT64_MAX, &v, NULL) == 0)
                sb->expires_ms = (uint64_t) v;
        v = 0;
        if (json_get_int(j, "idle_timeout_s", false, 0, UINT32_MAX, &v, NULL) == 0)
                sb->idle_timeout_s = (uint32_t) v;
        v = (int64_t) sb->created_ms;
        json_get_int(j, "last_activity_ms", false, 0, INT64_MAX, &v, NULL);
        sb->last_activity_ms = (uint64_t) v;
        v = 0;
        json_get_int(j, "remove_after_ms", false, 0, INT64_MAX, &v, NULL);
        sb->remove_after_ms = (uint64_t) v;
        sb->remove_pending = v > 0;
        const char *owner = NULL;
        if (json_get_string(j, "tenant", false, &owner, NULL) == 0 && owner)
                sb->tenant = util_xstrdup(owner);
        v = 0;
        json_get_int(j, "stop_deadline_ms", false, 0, INT64_MAX, &v, NULL);
        sb->stop_deadline_real_ms = (uint64_t) v;
        json_t *events = json_object_get(j, "events");
        sb->events = json_is_array(events) ? json_deep_copy(events) : json_array();
        json_t *limits = json_object_get(j, "limits");
        if (limits)
                limits_sandbox_from_json(limits, &sb->limits);
        bool limited = false;
        /* "disk_tmpfs": records of 0.1.0 before disk_backend */
        json_get_bool(j, json_object_get(j, "disk_limited") ? "disk_limited" : "disk_tmpfs", false, &limited, NULL);
        sb->disk_limited = limited;
        const char *backend = NULL;
        json_get_string(j, "disk_backend", false, &backend, NULL);
        sb->disk_ext4 = limited && backend && !strcmp(backend, "ext4");
        sb->unenforced = limits_sandbox_unenforced(core, &sb->limits);
        json_t *last = json_object_get(j, "last_usage");
        if (json_is_object(last))
                sb->last_usage = json_deep_copy(last);
        int64_t refused = 0;
        if (json_get_int(j, "forks_refused_ended", false, 0, INT64_MAX, &refused, NULL) == 0)
                sb->forks_refused_ended = refused;
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

/* A stopped sandbox whose root a host reboot unmounted (the runtime dir is
 * gone, the ext4 image detached) gets it mounted again: its files -- the
 * upper dir, or the ext4 image -- are still on disk, and the files API can
 * then read them (a tmpfs layer is gone with the reboot: the root shows the
 * image). */
static void sandbox_remount_stopped(struct core *core, struct sandbox *sb)
{
        struct statfs sf;
        if (statfs(sb->rootfs, &sf) == 0 && (unsigned long) sf.f_type == (unsigned long) OVERLAYFS_SUPER_MAGIC)
                return;
        struct pbox_error err = PBOX_ERROR_INIT;
        struct image_info *info = NULL;
        if (image_store_resolve(core->images, sb->image_id, &info, &err) < 0) {
                log_warning("sandbox %s: its root cannot be mounted again: %s", sb->id, err.message);
                return;
        }
        if (sandbox_mount_root(core, sb, info->layer_dirs, true, &err) < 0)
                log_warning("sandbox %s: its root cannot be mounted again: %s", sb->id, err.message);
        else
                log_info("sandbox %s: its root is mounted again (its files can be read)", sb->id);
        image_info_free(info);
}

/* A sandbox directory holding no state.json (and being a directory). */
static bool record_missing(struct core *core, const char *id)
{
        struct stat st;
        if (fstatat(core->sandboxes_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                return false;
        _cleanup_free_ char *rec = util_xasprintf("%s/state.json", id);
        return fstatat(core->sandboxes_fd, rec, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
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
                if (record_missing(core, de->d_name)) {
                        /* The directory is made, then the record written (atomically) before
                         * anything else of the sandbox exists: killed in between, a create
                         * leaves a directory with no record (at most a temporary file). */
                        log_notice("sandbox %s: a create cut short before its record was written: cleaning it up",
                                   de->d_name);
                        sandbox_destroy_host_state(core, de->d_name);
                        continue;
                }
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
                                bool was_stopping = sb->state == SB_STOPPING;
                                sb->state = SB_RUNNING;
                                running++;
                                if (was_stopping) {
                                        /* A stop was under way: it goes on, on the same schedule. */
                                        uint64_t now = util_realtime_ms();
                                        uint64_t left = sb->stop_deadline_real_ms > now ? sb->stop_deadline_real_ms - now : 0;
                                        log_notice("sandbox %s was stopping when pboxd stopped: stopping it (%llu ms left)",
                                                   sb->id, (unsigned long long) left);
                                        sandbox_begin_stop(sb, (uint32_t) (left > UINT32_MAX ? UINT32_MAX : left), SIGTERM);
                                }
                        } else {
                                if (sb->init_watch.fd >= 0) {
                                        close(sb->init_watch.fd);
                                        sb->init_watch.fd = -1;
                                }
                                int cg = -1;
                                if (cgroup_open(core->cgroups, sb->id, &cg, NULL) == 0) {
                                        sb->cgroup_fd = cg;
                                        json_t *usage = read_usage(sb);
                                        if (usage) {
                                                json_decref(sb->last_usage);
                                                sb->last_usage = usage;
                                        }
                                        sb->cgroup_fd = -1;
                                        cgroup_kill(core->cgroups, cg, NULL);
                                        close(cg);
                                }
                                sb->state = SB_STOPPED;
                                sb->stopped_ms = util_realtime_ms();
                                free(sb->stop_reason);
                                sb->stop_reason = util_xstrdup("lost");
                                sandbox_event(sb, "lost", "the init died while pboxd was down");
                                lost++;
                        }
                        sandbox_save(sb);
                } else
                        stopped++;
                if (sb->state == SB_STOPPED)
                        sandbox_remount_stopped(core, sb);
                exec_recover(core, sb);
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
                sandbox_free(sb);
        }
}

/* ---- expiry ------------------------------------------------------------- */

static void sandbox_expire(struct sandbox *sb, const char *cause, const char *message)
{
        log_info("sandbox %s: %s", sb->id, message);
        sandbox_event(sb, cause, message);
        sb->stop_cause = cause;
        sb->remove_pending = true;
        sandbox_begin_stop(sb, sb->core->cfg->stop_grace_ms, SIGTERM);
}

/* Without pids.peak, the peak is the highest pids.current seen (each
 * second, and whenever usage is read). */
static void sample_pids(struct sandbox *sb)
{
        int64_t v = cgroup_read_number(sb->cgroup_fd, "pids.current");
        if (v > sb->pids_peak_sampled)
                sb->pids_peak_sampled = v;
}

static void reaper_tick(struct core *core, struct watch *w, uint32_t events)
{
        uint64_t ticks;
        (void) !read(w->fd, &ticks, sizeof ticks);
        uint64_t now = util_realtime_ms();
        struct sandbox *next;
        for (struct sandbox *sb = core->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->state == SB_RUNNING && !core->cgroups->has_pids_peak && sb->cgroup_fd >= 0)
                        sample_pids(sb);
                if (sb->state == SB_RUNNING) {
                        if (sb->expires_ms && now >= sb->expires_ms)
                                sandbox_expire(sb, "ttl_expired", "its time to live ran out");
                        else if (sb->idle_timeout_s && !exec_any_running(sb) &&
                                 now - sb->last_activity_ms >= (uint64_t) sb->idle_timeout_s * 1000)
                                sandbox_expire(sb, "idle_expired", "it was idle for longer than its idle timeout");
                } else if (sb->state == SB_STOPPED && sb->remove_pending && now >= sb->remove_after_ms)
                        sandbox_maybe_finish_removal(sb);
        }
}

static struct watch reaper_watch = { -1, reaper_tick, NULL };

int sandbox_start_reaper(struct core *core, struct pbox_error *err)
{
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        struct itimerspec its = { { 1, 0 }, { 1, 0 } };
        if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) < 0)
                return pbox_error_sys(err, errno, "timerfd");
        reaper_watch.fd = fd;
        if (core_watch_add(core, &reaper_watch, EPOLLIN) < 0)
                return pbox_error_sys(err, errno, "watch the expiry timer");
        return 0;
}

void sandbox_op_keepalive(struct core *core, struct request *req, const char *id, json_t *body)
{
        static const char *const keys[] = { "ttl_s", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        if (sb->state != SB_RUNNING)
                return request_error(req, 409, "conflict", "sandbox %s is %s", sb->id, sb_state_names[sb->state]);
        int64_t ttl = -1;
        if (body && (json_check_keys(body, keys, &err) < 0 ||
                     json_get_int(body, "ttl_s", false, 1, UINT32_MAX, &ttl, &err) < 0))
                return request_fail(req, &err);
        if (ttl > 0) {
                if (core->cfg->max_ttl_s && ttl > core->cfg->max_ttl_s)
                        return request_error(req, 422, "unprocessable", "ttl_s is above this server's maximum of %u",
                                             core->cfg->max_ttl_s);
                sb->expires_ms = util_realtime_ms() + (uint64_t) ttl * 1000;
        }
        sandbox_touch(sb);
        sandbox_save(sb);
        request_respond(req, 200, sandbox_public(sb));
}

/* ---- limits of a live sandbox ------------------------------------------- */

void sandbox_limits_fail(struct request *req, const struct pbox_error *err)
{
        if (err->code == ERANGE)
                return request_error(req, 422, "unprocessable", "%s", err->message);
        request_fail(req, err);
}

void sandbox_op_limits(struct core *core, struct request *req, const char *id, json_t *body, bool patch)
{
        static const char *const patch_keys[] = { "limits", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct sandbox *sb = sandbox_find(core, id);
        if (!sb)
                return request_error(req, 404, "not_found", "no such sandbox: %s", id);
        json_t *obj = body;
        if (patch) {
                if (json_check_keys(body, patch_keys, &err) < 0)
                        return request_error(req, 400, "bad_request", "%s (PATCH accepts only \"limits\")", err.message);
                obj = json_object_get(body, "limits");
                if (!json_is_object(obj))
                        return request_error(req, 400, "bad_request", "limits must be an object");
        }
        struct sandbox_limits update;
        if (limits_sandbox_parse(core, obj, &update, &err) < 0)
                return sandbox_limits_fail(req, &err);
        if (sb->state != SB_RUNNING)
                return request_error(req, 409, "conflict", "sandbox %s is %s", sb->id, sb_state_names[sb->state]);

        bool resized = false;
        if (update.disk_bytes != LIMIT_UNSET) {
                if (!sb->disk_limited)
                        return request_error(req, 422, "unprocessable", "disk_bytes can only be set when the sandbox is created");
                if (sb->disk_ext4 && update.disk_bytes != sb->limits.disk_bytes) {
                        /* An ext4 disk grows online and never shrinks; grown, it
                         * stays so even if the rest of the update fails. */
                        if (update.disk_bytes == CGROUP_UNLIMITED)
                                return request_error(req, 409, "conflict", "disk_bytes: an ext4 disk cannot become unlimited; give a larger size");
                        _cleanup_free_ char *rw = sandbox_state_path(core, sb->id, "rw");
                        _cleanup_free_ char *img = sandbox_state_path(core, sb->id, "disk.img");
                        if (diskimg_grow(img, rw, (uint64_t) update.disk_bytes, &err) < 0) {
                                if (err.code == EBUSY)
                                        return request_error(req, 409, "conflict", "%s", err.message);
                                if (err.code == EPERM)
                                        return request_error(req, 422, "unprocessable", "%s", err.message);
                                log_error("sandbox %s: %s", sb->id, err.message);
                                return request_error(req, 500, "internal", "%s", err.message);
                        }
                        sb->limits.disk_bytes = update.disk_bytes;
                        sandbox_save(sb);
                } else if (update.disk_bytes != sb->limits.disk_bytes) {
                        _cleanup_free_ char *rw = sandbox_state_path(core, sb->id, "rw");
                        /* tmpfs: size=0 is no limit. */
                        uint64_t size = update.disk_bytes == CGROUP_UNLIMITED ? 0 : (uint64_t) update.disk_bytes;
                        if (rootfs_resize_layer_tmpfs(rw, size, &err) < 0) {
                                if (err.code == EBUSY)
                                        return request_error(req, 409, "conflict", "%s", err.message);
                                log_error("sandbox %s: %s", sb->id, err.message);
                                return request_error(req, 500, "internal", "%s", err.message);
                        }
                        resized = true;
                }
        }
        struct sandbox_limits merged = sb->limits;
        limits_sandbox_merge(&merged, &update);
        limits_sandbox_default_swap(core, &merged);
        if (limits_sandbox_write(core, sb->cgroup_fd, &merged, &err) < 0) {
                if (resized) {
                        struct pbox_error uerr = PBOX_ERROR_INIT;
                        _cleanup_free_ char *rw = sandbox_state_path(core, sb->id, "rw");
                        int64_t old = sb->limits.disk_bytes;
                        rootfs_resize_layer_tmpfs(rw, old == CGROUP_UNLIMITED ? 0 : (uint64_t) old, &uerr);
                }
                if (err.code == ERANGE)
                        return sandbox_limits_fail(req, &err);
                log_error("sandbox %s: cannot change its limits: %s", sb->id, err.message);
                return request_error(req, 500, "internal", "cannot change the limits: %s", err.message);
        }
        sb->limits = merged;
        json_decref(sb->unenforced);
        sb->unenforced = limits_sandbox_unenforced(core, &sb->limits);
        _cleanup_json_ json_t *given = limits_sandbox_to_json(&update);
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(given, tmp, k, v)
                if (!json_object_get(obj, k))
                        json_object_del(given, k);
        _cleanup_free_ char *text = json_dump_compact(given);
        log_info("sandbox %s: limits changed: %s", sb->id, text);
        sandbox_event(sb, "limits", text);
        sandbox_touch(sb);
        sandbox_save(sb);
        request_respond(req, 200, sandbox_public(sb));
}
