/* exec.c — the exec lifecycle in the core (theory of operation in exec.h). */
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
#include <unistd.h>

#include "exec.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "spawn.h"
#include "syscalls.h"
#include "util.h"

#define MAX_ARGV 4096
#define MAX_ENV 1024
#define MAX_STDIN_PENDING (16u << 20)
/* cpu_limit_ms is checked at least every POLL_MAX_US, and at most every POLL_MIN_US. */
#define POLL_MIN_US 10000u
#define POLL_MAX_US 100000u
/* The fallback measure of the writable layer (a walk of upper/) stops there. */
#define DISK_WALK_MAX_ENTRIES 10000u

enum exec_state { EX_RUNNING, EX_EXITED };
/* Why the core ended an exec; a higher rank wins when several apply. */
enum exec_end { END_NONE, END_OUTPUT, END_CPU, END_TIMEOUT, END_KILLED };

struct outbuf {
        char *data;
        size_t len;
        bool truncated;
};

struct segment {
        uint8_t stream;         /* 1 stdout, 2 stderr */
        size_t off, len;
};

/* One open event stream: a cursor into the exec's recorded output, so a
 * client that reads slowly gets every byte, late, instead of losing its
 * stream.  The output is bounded (max_output_bytes), so nothing but the
 * cursor is kept per client. */
struct exec_stream {
        struct request *req;
        struct exec *ex;
        size_t next_seg;        /* segments [0, next_seg) are sent */
        bool blocked;           /* the channel is full: waiting for EPOLLOUT */
};

struct exec {
        struct exec *next;
        struct sandbox *sb;
        char eid[17];
        char **argv;
        enum exec_state state;
        uint64_t started_ms, ended_ms, start_mono;
        pid_t pid;
        char cg_rel[96];
        int cg_fd;
        struct watch proc, out_w, err_w, in_w, timer;
        struct outbuf out, err;
        struct segment *segs;
        size_t nsegs;
        unsigned char *in_data;
        size_t in_len, in_off;
        bool in_stream, in_close_pending;
        uint32_t timeout_ms, grace_ms;
        int stop_signal;
        uint64_t max_output;
        bool kill_on_output_limit;
        enum exec_end reason;
        bool sigkilled;
        int timer_phase;        /* 0: until the timeout, 1: in the grace period */
        struct exec_limits limits;
        uint64_t cpu_limit_us;          /* 0: none */
        struct watch poll;              /* timerfd: cpu_limit_ms checks and pids samples */
        bool poll_pids;                 /* sample pids.current (the kernel has no pids.peak) */
        int64_t pids_sampled;           /* highest pids.current seen; -1: not sampled */
        int64_t sb_pids_local_start;    /* the sandbox cgroup's own pids.events.local "max" at the
                                         * start, on kernels that count there; -1: not needed */
        json_t *result;
        struct request *waiter;
        struct exec_stream **streams;   /* open event streams (GET .../events) */
        size_t nstreams;
        struct reqlist kill_waiters;
        exec_done_fn done;
        void *done_data;
};

static const char *const exec_state_names[] = { "running", "exited" };

/* ---- helpers -------------------------------------------------------------- */

int exec_parse_signal(json_t *v, int *ret)
{
        static const struct { const char *name; int sig; } sigs[] = {
                { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT }, { "HUP", SIGHUP },
                { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "ALRM", SIGALRM },
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

static void reqlist_push(struct reqlist *l, struct request *req)
{
        l->v = util_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = req;
}

static struct exec *exec_find(struct sandbox *sb, const char *eid)
{
        for (struct exec *ex = sb->execs; ex; ex = ex->next)
                if (!strcmp(ex->eid, eid))
                        return ex;
        return NULL;
}

unsigned exec_count_running(const struct sandbox *sb)
{
        unsigned n = 0;
        for (struct exec *ex = sb->execs; ex; ex = ex->next)
                n += ex->state == EX_RUNNING;
        return n;
}

bool exec_any_running(const struct sandbox *sb)
{
        for (struct exec *ex = sb->execs; ex; ex = ex->next)
                if (ex->state == EX_RUNNING)
                        return true;
        return false;
}

static unsigned exec_ncpus(void)
{
        static unsigned n;
        if (!n) {
                long c = sysconf(_SC_NPROCESSORS_ONLN);
                n = c > 0 ? (unsigned) c : 1;
        }
        return n;
}

static int end_rank(enum exec_end e)
{
        return (int) e;
}

static void unwatch(struct core *core, struct watch *w)
{
        if (w->fd >= 0) {
                core_watch_del(core, w);
                close(w->fd);
                w->fd = -1;
        }
}

static json_t *stream_json(const char *data, size_t len, const char **ret_encoding)
{
        if (util_utf8_valid(data, len)) {
                *ret_encoding = "utf-8";
                return json_stringn(data, len);
        }
        *ret_encoding = "base64";
        _cleanup_free_ char *enc = util_base64_encode(data, len);
        return json_string(enc);
}

static void result_add_stream(json_t *res, const char *name, const struct outbuf *b)
{
        char key[32];
        const char *enc;
        json_object_set_new(res, name, stream_json(b->data ? b->data : "", b->len, &enc));
        snprintf(key, sizeof key, "%s_encoding", name);
        json_object_set_new(res, key, json_string(enc));
        snprintf(key, sizeof key, "%s_truncated", name);
        json_object_set_new(res, key, json_boolean(b->truncated));
}

static json_t *exec_record(const struct exec *ex, bool with_output)
{
        char started[40];
        util_format_time(ex->started_ms, started, sizeof started);
        json_t *j = json_pack("{s:s,s:s,s:o,s:s,s:s}", "id", ex->eid, "sandbox", ex->sb->id, "argv",
                              json_strv(ex->argv), "state", exec_state_names[ex->state], "started_at", started);
        if (ex->state == EX_RUNNING)
                json_object_set_new(j, "pid", json_integer(ex->pid));
        if (ex->state == EX_EXITED) {
                char ended[40];
                util_format_time(ex->ended_ms, ended, sizeof ended);
                json_object_set_new(j, "ended_at", json_string(ended));
        }
        if (ex->result) {
                json_t *r = json_deep_copy(ex->result);
                if (with_output) {
                        result_add_stream(r, "stdout", &ex->out);
                        result_add_stream(r, "stderr", &ex->err);
                }
                json_object_set_new(j, "result", r);
        }
        return j;
}

static void exec_save(struct exec *ex)
{
        struct core *core = ex->sb->core;
        _cleanup_close_ int sfd = openat(core->sandboxes_fd, ex->sb->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
                return;
        if (mkdirat(sfd, "execs", 0700) < 0 && errno != EEXIST)
                return;
        _cleanup_close_ int dfd = openat(sfd, "execs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return;
        json_t *rec = exec_record(ex, false);
        _cleanup_free_ char *text = json_dump_compact(rec);
        json_decref(rec);
        char name[32];
        snprintf(name, sizeof name, "%s.json", ex->eid);
        struct pbox_error err = PBOX_ERROR_INIT;
        if (util_write_file_atomic_at(dfd, name, text, strlen(text), 0600, &err) < 0)
                log_error("sandbox %s: exec %s: cannot save its record: %s", ex->sb->id, ex->eid, err.message);
}

static void exec_free(struct core *core, struct exec *ex)
{
        unwatch(core, &ex->out_w);
        unwatch(core, &ex->err_w);
        unwatch(core, &ex->in_w);
        unwatch(core, &ex->proc);
        unwatch(core, &ex->timer);
        unwatch(core, &ex->poll);
        if (ex->cg_fd >= 0)
                close(ex->cg_fd);
        util_strv_free(ex->argv);
        free(ex->out.data);
        free(ex->err.data);
        free(ex->segs);
        free(ex->in_data);
        json_decref(ex->result);
        for (size_t i = 0; i < ex->nstreams; i++) {
                request_set_writable(ex->streams[i]->req, NULL, NULL);
                request_release(ex->streams[i]->req);
                free(ex->streams[i]);
        }
        free(ex->streams);
        free(ex->kill_waiters.v);
        free(ex);
}

/* ---- event streams ---------------------------------------------------------- */

static int stream_event(struct request *req, const char *event, json_t *data)
{
        _cleanup_free_ char *d = json_dump_compact(data);
        _cleanup_free_ char *text = util_xasprintf("event: %s\ndata: %s\n\n", event, d);
        return core_stream_send(req, "{\"chunk\":true}", text, strlen(text));
}

static json_t *chunk_json(const char *data, size_t len)
{
        const char *enc;
        json_t *d = stream_json(data, len, &enc);
        return json_pack("{s:o,s:s}", "data", d, "encoding", enc);
}

static void stream_writable(struct request *req, void *arg);

static void stream_close(struct exec *ex, size_t i)
{
        struct exec_stream *st = ex->streams[i];
        request_set_writable(st->req, NULL, NULL);
        request_release(st->req);
        free(st);
        ex->streams[i] = ex->streams[--ex->nstreams];
}

/* Send what the stream has not had yet, up to the exec's end.  Returns
 * false when the stream is finished or dropped (closed, at index i). */
static bool stream_pump(struct exec *ex, size_t i)
{
        struct exec_stream *st = ex->streams[i];
        if (st->blocked)
                return true;
        int r = 0;
        while (st->next_seg < ex->nsegs) {
                const struct segment *s = &ex->segs[st->next_seg];
                const struct outbuf *b = s->stream == 1 ? &ex->out : &ex->err;
                json_t *c = chunk_json(b->data + s->off, s->len);
                r = st->req->hangup ? -EPIPE : stream_event(st->req, s->stream == 1 ? "stdout" : "stderr", c);
                json_decref(c);
                if (r < 0)
                        break;
                st->next_seg++;
        }
        if (r == 0 && ex->state == EX_EXITED) {
                json_t *res = json_deep_copy(ex->result);
                r = stream_event(st->req, "exit", res);
                json_decref(res);
                if (r == 0) {
                        core_stream_send(st->req, "{\"end\":true}", NULL, 0);
                        stream_close(ex, i);
                        return false;
                }
        }
        if (r == -EAGAIN) {
                /* The api side reads slower than the command writes: wait. */
                st->blocked = true;
                if (request_set_writable(st->req, stream_writable, st) == 0)
                        return true;
        }
        if (r < 0) {
                stream_close(ex, i);
                return false;
        }
        return true;
}

static void stream_writable(struct request *req, void *arg)
{
        struct exec_stream *st = arg;
        struct exec *ex = st->ex;
        request_set_writable(req, NULL, NULL);
        st->blocked = false;
        for (size_t i = 0; i < ex->nstreams; i++)
                if (ex->streams[i] == st) {
                        stream_pump(ex, i);
                        return;
                }
}

/* New output, or the end: every stream that is not waiting gets it. */
static void stream_pump_all(struct exec *ex)
{
        for (size_t i = 0; i < ex->nstreams;)
                if (stream_pump(ex, i))
                        i++;
}

/* ---- ending an exec ------------------------------------------------------- */

static void signal_cgroup(struct exec *ex, int sig)
{
        char buf[65536];
        _cleanup_close_ int fd = openat(ex->cg_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return;
        buf[n] = '\0';
        char *save = NULL;
        for (char *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
                pid_t pid = (pid_t) atoi(tok);
                if (pid > 1)
                        kill(pid, sig);
        }
}

static void kill_now(struct exec *ex)
{
        struct core *core = ex->sb->core;
        ex->sigkilled = true;
        cgroup_kill(core->cgroups, ex->cg_fd, NULL);
        if (ex->proc.fd >= 0)
                sys_pidfd_send_signal(ex->proc.fd, SIGKILL, NULL, 0);
        unwatch(core, &ex->timer);
        unwatch(core, &ex->poll);
}

static void arm_timer(struct exec *ex, uint32_t ms);

/* Begin ending a running exec for `reason`: sig to every process of its
 * cgroup, and SIGKILL after grace_ms. */
static void exec_begin_end(struct exec *ex, enum exec_end reason, int sig, uint32_t grace_ms)
{
        if (ex->state != EX_RUNNING)
                return;
        /* Several reasons: the higher rank is reported, unless the exec was
         * already SIGKILLed for the first (that end is already decided). */
        if (end_rank(reason) > end_rank(ex->reason) && !ex->sigkilled)
                ex->reason = reason;
        if (sig == SIGKILL || grace_ms == 0) {
                kill_now(ex);
                return;
        }
        signal_cgroup(ex, sig);
        ex->timer_phase = 1;
        arm_timer(ex, grace_ms);
}

static void timer_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        uint64_t ticks;
        (void) !read(w->fd, &ticks, sizeof ticks);
        if (ex->state != EX_RUNNING)
                return;
        if (ex->timer_phase == 0) {
                log_info("sandbox %s: exec %s timed out after %u ms", ex->sb->id, ex->eid, ex->timeout_ms);
                exec_begin_end(ex, END_TIMEOUT, ex->stop_signal, ex->grace_ms);
        } else
                kill_now(ex);
}

static void arm_timer(struct exec *ex, uint32_t ms)
{
        struct core *core = ex->sb->core;
        if (ex->timer.fd < 0) {
                int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                if (fd < 0) {
                        log_error("exec %s: no timer (%m): killing it", ex->eid);
                        kill_now(ex);
                        return;
                }
                ex->timer = (struct watch) { fd, timer_event, ex };
                core_watch_add(core, &ex->timer, EPOLLIN);
        }
        struct itimerspec its = { { 0, 0 }, { ms / 1000, (long) (ms % 1000) * 1000000L } };
        if (ms == 0)
                its.it_value.tv_nsec = 1;
        timerfd_settime(ex->timer.fd, 0, &its, NULL);
}

static void arm_poll(struct exec *ex, uint64_t us);

static void sample_pids(struct exec *ex)
{
        if (!ex->poll_pids || ex->cg_fd < 0)
                return;
        int64_t n = cgroup_read_number(ex->cg_fd, "pids.current");
        if (n > ex->pids_sampled)
                ex->pids_sampled = n;
}

/* cpu_limit_ms: the exec's cgroup's usage_usec against the limit; at the
 * limit the whole cgroup is killed at once.  Otherwise check again when the
 * rest could be used at the earliest (all CPUs busy), within 10..100 ms. */
static void poll_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        uint64_t ticks;
        (void) !read(w->fd, &ticks, sizeof ticks);
        if (ex->state != EX_RUNNING || ex->cg_fd < 0)
                return;
        sample_pids(ex);
        uint64_t next = POLL_MAX_US;
        if (ex->cpu_limit_us) {
                uint64_t used = 0;
                if (cgroup_cpu_usage(ex->cg_fd, &used, NULL, NULL, NULL) == 0) {
                        if (used >= ex->cpu_limit_us) {
                                log_info("sandbox %s: exec %s reached its cpu limit of %lld ms", ex->sb->id, ex->eid,
                                         (long long) ex->limits.cpu_limit_ms);
                                exec_begin_end(ex, END_CPU, SIGKILL, 0);
                                return;
                        }
                        next = (ex->cpu_limit_us - used) / exec_ncpus();
                }
                if (next < POLL_MIN_US)
                        next = POLL_MIN_US;
                if (next > POLL_MAX_US)
                        next = POLL_MAX_US;
        }
        arm_poll(ex, next);
}

static void arm_poll(struct exec *ex, uint64_t us)
{
        struct core *core = ex->sb->core;
        if (ex->poll.fd < 0) {
                int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                if (fd < 0) {
                        if (ex->cpu_limit_us) {
                                log_error("exec %s: no timer for its cpu limit (%m): killing it", ex->eid);
                                exec_begin_end(ex, END_CPU, SIGKILL, 0);
                        }
                        return;
                }
                ex->poll = (struct watch) { fd, poll_event, ex };
                core_watch_add(core, &ex->poll, EPOLLIN);
        }
        struct itimerspec its = { { 0, 0 }, { (time_t) (us / 1000000), (long) (us % 1000000) * 1000L } };
        if (us == 0)
                its.it_value.tv_nsec = 1;
        timerfd_settime(ex->poll.fd, 0, &its, NULL);
}

/* Usage of the exec's cgroup, read before it goes (every field -1 / 0
 * when unknown), with the sampled pids peak where the kernel keeps none. */
static void exec_read_usage(struct exec *ex, struct cgroup_usage *u)
{
        memset(u, 0, sizeof *u);
        u->memory_current_bytes = u->memory_peak_bytes = u->oom_events = u->oom_kills = -1;
        u->pids_current = u->pids_peak = u->pids_max_hits = u->io_read_bytes = u->io_write_bytes = -1;
        if (ex->cg_fd < 0)
                return;
        if (cgroup_read_usage(ex->cg_fd, u, NULL) < 0) {
                memset(u, 0, sizeof *u);
                u->memory_current_bytes = u->memory_peak_bytes = u->oom_events = u->oom_kills = -1;
                u->pids_current = u->pids_peak = u->pids_max_hits = u->io_read_bytes = u->io_write_bytes = -1;
                cgroup_cpu_usage(ex->cg_fd, &u->cpu_usage_us, &u->cpu_user_us, &u->cpu_system_us, NULL);
        }
        if (u->pids_peak < 0 && ex->pids_sampled >= 0)
                u->pids_peak = ex->pids_sampled > u->pids_current ? ex->pids_sampled : u->pids_current;
}

static void exec_prune(struct sandbox *sb, const struct exec *except)
{
        uint32_t keep = sb->core->cfg->max_execs_kept, n = 0;
        for (struct exec **p = &sb->execs; *p;) {
                struct exec *ex = *p;
                if (ex != except && ex->state == EX_EXITED && !ex->nstreams && ++n > keep) {
                        *p = ex->next;
                        exec_free(sb->core, ex);
                } else
                        p = &ex->next;
        }
}

static void exec_finish(struct exec *ex, const siginfo_t *si, const char *failed_step, int failed_errno)
{
        struct sandbox *sb = ex->sb;
        struct core *core = sb->core;
        if (ex->out_w.fd >= 0)
                ex->out_w.fn(core, &ex->out_w, EPOLLIN);
        if (ex->err_w.fd >= 0)
                ex->err_w.fn(core, &ex->err_w, EPOLLIN);
        /* An exec ended by us takes everything it started with it. */
        if (ex->reason != END_NONE && ex->cg_fd >= 0)
                cgroup_kill(core->cgroups, ex->cg_fd, NULL);
        if (ex->reason == END_NONE && (sb->state == SB_STOPPING || sb->state == SB_STOPPED) && si &&
            si->si_code != CLD_EXITED)
                ex->reason = END_KILLED;

        struct cgroup_usage u;
        exec_read_usage(ex, &u);
        /* A fork of one of its processes refused.  Kernels without
         * pids.events.local count it in the cgroup where the fork failed,
         * so the exec's own subtree says it exactly, whichever limit (its
         * own or the sandbox's) refused it, and a concurrent exec's refused
         * forks are not this one's.  Kernels with it count it where the
         * limit was hit: a refusal by the sandbox's pids.max shows only at
         * the sandbox's level, and is blamed on every exec that ended
         * unsuccessfully while it went up. */
        bool pids_hit = u.pids_max_hits > 0;
        if (!pids_hit && ex->sb_pids_local_start >= 0 && sb->cgroup_fd >= 0)
                pids_hit = cgroup_read_keyed(sb->cgroup_fd, "pids.events.local", "max") > ex->sb_pids_local_start;

        json_t *res = json_object();
        const char *status;
        if (failed_step) {
                status = "failed";
                int code = (failed_errno == ENOENT || failed_errno == ENOTDIR) &&
                                   !strcmp(failed_step, "execute the command") ? 127 : 126;
                json_object_set_new(res, "exit_code", json_integer(code));
                json_object_set_new(res, "signal", json_null());
                char msg[512];
                snprintf(msg, sizeof msg, "%s: %s", failed_step, strerror(failed_errno));
                json_object_set_new(res, "error", json_string(msg));
        } else {
                bool exited = si->si_code == CLD_EXITED;
                json_object_set_new(res, "exit_code", exited ? json_integer(si->si_status) : json_null());
                json_object_set_new(res, "signal", exited ? json_null() : json_integer(si->si_status));
                switch (ex->reason) {
                case END_TIMEOUT: status = "timeout"; break;
                case END_KILLED: status = "killed"; break;
                case END_CPU: status = "cpu_limit"; break;
                case END_OUTPUT: status = "output_limit"; break;
                default:
                        if (exited && si->si_status == 0)
                                status = "ok";
                        else if (u.oom_kills > 0)
                                status = "oom";         /* the OOM killer took one of its processes */
                        else if (pids_hit)
                                status = "pids_limit";
                        else
                                status = exited ? "exit" : "signaled";
                        break;
                }
                if (ex->reason == END_TIMEOUT || ex->reason == END_KILLED || ex->reason == END_CPU)
                        json_object_set_new(res, "ended_by", json_string(ex->sigkilled ? "sigkill" : "signal"));
        }
        json_object_set_new(res, "status", json_string(status));
        /* An exec that hit a limit leaves nothing behind either: a fork
         * bomb's orphans would otherwise hold the cgroup at pids.max. */
        if (ex->reason == END_NONE && ex->cg_fd >= 0 && (!strcmp(status, "oom") || !strcmp(status, "pids_limit")))
                cgroup_kill(core->cgroups, ex->cg_fd, NULL);
        json_object_set_new(res, "stdout_truncated", json_boolean(ex->out.truncated));
        json_object_set_new(res, "stderr_truncated", json_boolean(ex->err.truncated));
        json_object_set_new(res, "wall_ms", json_integer((json_int_t) (util_now_ms() - ex->start_mono)));
        json_object_set_new(res, "cpu_ms", json_integer((json_int_t) (u.cpu_usage_us / 1000)));
        json_object_set_new(res, "cpu_user_ms", json_integer((json_int_t) (u.cpu_user_us / 1000)));
        json_object_set_new(res, "cpu_system_ms", json_integer((json_int_t) (u.cpu_system_us / 1000)));
        json_t *usage = limits_usage_to_json(&u);
        if (usage) {
                uint64_t used = 0;
                int dr = sandbox_disk_usage(sb, DISK_WALK_MAX_ENTRIES, &used, NULL);
                int64_t disk = dr == 0 || dr == -E2BIG ? (int64_t) used : -1;   /* past the bound: a lower bound */
                json_object_set_new(usage, "disk_bytes", disk >= 0 ? json_integer((json_int_t) disk) : json_null());
                json_object_set_new(res, "usage", usage);
        }
        json_object_set_new(res, "limits", limits_exec_to_json(&ex->limits));
        ex->result = res;
        ex->state = EX_EXITED;
        ex->ended_ms = util_realtime_ms();

        unwatch(core, &ex->out_w);
        unwatch(core, &ex->err_w);
        unwatch(core, &ex->in_w);
        unwatch(core, &ex->proc);
        unwatch(core, &ex->timer);
        unwatch(core, &ex->poll);
        if (ex->cg_fd >= 0) {
                close(ex->cg_fd);
                ex->cg_fd = -1;
        }
        /* Processes the command left running (daemons) keep its cgroup; it goes with the sandbox.
         * Gone, its refused forks stay counted in the sandbox's figure. */
        if (unlinkat(core->cgroups->base_fd, ex->cg_rel, AT_REMOVEDIR) == 0 && u.pids_max_hits > 0)
                sandbox_add_forks_refused(sb, u.pids_max_hits);
        exec_save(ex);
        metrics_observe_exec(ex->ended_ms - ex->started_ms, status);
        log_debug("sandbox %s: exec %s ended: %s", sb->id, ex->eid, status);

        if (ex->waiter) {
                /* A synchronous exec answers with the result itself (the
                 * foundation's format), plus the exec's id. */
                json_t *flat = json_deep_copy(res);
                result_add_stream(flat, "stdout", &ex->out);
                result_add_stream(flat, "stderr", &ex->err);
                json_object_set_new(flat, "id", json_string(ex->eid));
                request_respond(ex->waiter, 200, flat);
                ex->waiter = NULL;
        }
        for (size_t i = 0; i < ex->kill_waiters.n; i++)
                request_respond(ex->kill_waiters.v[i], 200, exec_record(ex, true));
        ex->kill_waiters.n = 0;
        stream_pump_all(ex);
        sandbox_touch(sb);
        exec_prune(sb, ex);
        if (ex->done) {
                /* Last: the callback may discard the sandbox, and ex with it. */
                json_t *full = json_deep_copy(res);
                result_add_stream(full, "stdout", &ex->out);
                result_add_stream(full, "stderr", &ex->err);
                exec_done_fn done = ex->done;
                ex->done = NULL;
                done(core, full, ex->done_data);
                json_decref(full);
                return;
        }
        sandbox_maybe_finish_removal(sb);
}

/* ---- events of a running exec ---------------------------------------------- */

static void output_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        bool is_out = w == &ex->out_w;
        struct outbuf *b = is_out ? &ex->out : &ex->err;
        char buf[65536];
        for (;;) {
                ssize_t n = read(w->fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        unwatch(core, w);
                        return;
                }
                size_t keep = (size_t) n;
                if (b->len + keep > ex->max_output) {
                        keep = b->len < ex->max_output ? ex->max_output - b->len : 0;
                        if (!b->truncated) {
                                b->truncated = true;
                                if (ex->kill_on_output_limit) {
                                        log_info("sandbox %s: exec %s passed its output limit", ex->sb->id, ex->eid);
                                        exec_begin_end(ex, END_OUTPUT, SIGKILL, 0);
                                }
                        }
                }
                if (!keep)
                        continue;
                b->data = util_xrealloc(b->data, b->len + keep + 1);
                memcpy(b->data + b->len, buf, keep);
                ex->segs = util_xrealloc(ex->segs, (ex->nsegs + 1) * sizeof *ex->segs);
                ex->segs[ex->nsegs++] = (struct segment) { (uint8_t) (is_out ? 1 : 2), b->len, keep };
                b->len += keep;
                if (ex->nstreams)
                        stream_pump_all(ex);
        }
}

static void stdin_event(struct core *core, struct watch *w, uint32_t events)
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
                unwatch(core, w);       /* EPIPE: the command stopped reading */
                ex->in_stream = false;
                return;
        }
        /* Everything queued is written. */
        free(ex->in_data);
        ex->in_data = NULL;
        ex->in_len = ex->in_off = 0;
        if (!ex->in_stream || ex->in_close_pending) {
                unwatch(core, w);
                ex->in_stream = false;
        } else
                core_watch_mod(core, w, 0);     /* idle until more comes */
}

static void proc_event(struct core *core, struct watch *w, uint32_t events)
{
        struct exec *ex = w->data;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PIDFD, (id_t) w->fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        exec_finish(ex, &si, NULL, 0);
}

/* ---- requests ------------------------------------------------------------- */

void exec_params_clear(struct exec_params *p)
{
        util_strv_free(p->argv);
        util_strv_free(p->env);
        free(p->stdin_data);
        memset(p, 0, sizeof *p);
}

/* limits.h's convention: -EINVAL is a bad request (400); -ERANGE (above a
 * maximum, a controller this host lacks) and -ENOENT (a limit file missing
 * from the cgroup: its controller is not enabled there) are 422. */
static void limits_fail(struct request *req, const struct pbox_error *err)
{
        if (err->code == ERANGE || err->code == ENOENT)
                request_error(req, 422, "unprocessable", "%s", err->message[0] ? err->message : "limit not enforceable");
        else
                request_fail(req, err);
}

static bool over_max(struct request *req, const char *key, int64_t v, uint64_t max)
{
        if ((uint64_t) v <= max)
                return false;
        request_error(req, 422, "unprocessable", "%s %lld is above this server's maximum of %llu", key,
                      (long long) v, (unsigned long long) max);
        return true;
}

bool exec_parse_request(struct core *core, struct request *req, json_t *body, struct exec_params *p, bool *ret_wait)
{
        static const char *const keys[] = { "argv", "env", "cwd", "user", "stdin", "stdin_encoding", "stdin_stream",
                                            "timeout_ms", "grace_ms", "stop_signal", "max_output_bytes",
                                            "output_limit_action", "wait", "cpu_limit_ms", "memory_bytes", "pids",
                                            NULL };
        const struct pboxd_config *cfg = core->cfg;
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *cwd = NULL, *in = NULL, *in_enc = NULL, *user = NULL, *action = NULL;
        int64_t timeout = cfg->exec_timeout_ms, grace = cfg->exec_grace_ms, maxout = (int64_t) cfg->exec_output_bytes;
        bool wait = true, stream = false;
        memset(p, 0, sizeof *p);
        limits_exec_init(&p->limits);
        if (json_check_keys(body, keys, &err) < 0 || json_get_strv(body, "argv", true, MAX_ARGV, &p->argv, &err) < 0 ||
            json_get_env_object(body, "env", MAX_ENV, &p->env, &err) < 0 ||
            json_get_string(body, "cwd", false, &cwd, &err) < 0 || json_get_string(body, "user", false, &user, &err) < 0 ||
            json_get_string(body, "stdin", false, &in, &err) < 0 ||
            json_get_string(body, "stdin_encoding", false, &in_enc, &err) < 0 ||
            json_get_bool(body, "stdin_stream", false, &stream, &err) < 0 ||
            json_get_int(body, "timeout_ms", false, 1, INT64_MAX, &timeout, &err) < 0 ||
            json_get_int(body, "grace_ms", false, 0, INT64_MAX, &grace, &err) < 0 ||
            json_get_int(body, "max_output_bytes", false, 0, INT64_MAX, &maxout, &err) < 0 ||
            json_get_string(body, "output_limit_action", false, &action, &err) < 0 ||
            json_get_bool(body, "wait", false, &wait, &err) < 0) {
                request_fail(req, &err);
                goto fail;
        }
        if (!p->argv[0] || !p->argv[0][0]) {
                request_error(req, 400, "bad_request", "argv must hold at least the command");
                goto fail;
        }
        if (cwd && (cwd[0] != '/' || strlen(cwd) > 4096)) {
                request_error(req, 400, "bad_request", "cwd must be an absolute path inside the sandbox");
                goto fail;
        }
        if (in_enc && strcmp(in_enc, "utf-8") && strcmp(in_enc, "base64")) {
                request_error(req, 400, "bad_request", "stdin_encoding must be \"utf-8\" or \"base64\"");
                goto fail;
        }
        if (action && strcmp(action, "kill") && strcmp(action, "truncate")) {
                request_error(req, 400, "bad_request", "output_limit_action must be \"kill\" or \"truncate\"");
                goto fail;
        }
        if (stream && in) {
                request_error(req, 400, "bad_request", "stdin and stdin_stream exclude each other");
                goto fail;
        }
        json_t *sig = json_object_get(body, "stop_signal");
        p->stop_signal = SIGTERM;
        if (sig && exec_parse_signal(sig, &p->stop_signal) < 0) {
                request_error(req, 400, "bad_request", "stop_signal must be a signal name (\"SIGTERM\") or number");
                goto fail;
        }
        if (over_max(req, "timeout_ms", timeout, cfg->max_exec_timeout_ms) ||
            over_max(req, "grace_ms", grace, cfg->max_grace_ms) ||
            over_max(req, "max_output_bytes", maxout, cfg->max_output_bytes))
                goto fail;
        if (limits_exec_parse(core, body, &p->limits, &err) < 0) {
                limits_fail(req, &err);
                goto fail;
        }
        limits_exec_apply_defaults(core, &p->limits);
        p->uid = 0;
        p->gid = 0;
        if (user) {
                unsigned long u = 0, g = 0;
                char *end = NULL;
                errno = 0;
                if (!isdigit((unsigned char) user[0]))
                        goto bad_user;
                u = strtoul(user, &end, 10);
                g = u;
                if (*end == ':') {
                        if (!isdigit((unsigned char) end[1]))
                                goto bad_user;
                        g = strtoul(end + 1, &end, 10);
                }
                if (*end || errno || u >= core->map.count || g >= core->map.count)
                        goto bad_user;
                p->uid = (uid_t) u;
                p->gid = (gid_t) g;
        }
        if (in && in_enc && !strcmp(in_enc, "base64")) {
                if (util_base64_decode(in, strlen(in), &p->stdin_data, &p->stdin_len) < 0) {
                        request_error(req, 400, "bad_request", "stdin is not valid base64");
                        goto fail;
                }
        } else if (in) {
                p->stdin_len = strlen(in);
                p->stdin_data = (unsigned char *) util_xstrdup(in);
        }
        p->cwd = cwd ? cwd : NULL;
        p->stdin_stream = stream;
        p->timeout_ms = (uint32_t) timeout;
        p->grace_ms = (uint32_t) grace;
        p->max_output_bytes = (uint64_t) maxout;
        p->kill_on_output_limit = !action || !strcmp(action, "kill");
        *ret_wait = stream ? false : wait;
        return true;
bad_user:
        request_error(req, 400, "bad_request", "user must be \"UID\" or \"UID:GID\" (numbers below %u)", core->map.count);
fail:
        exec_params_clear(p);
        return false;
}

static char **exec_candidates(const char *arg0, char **env)
{
        if (strchr(arg0, '/')) {
                char **v = util_xcalloc(2, sizeof(char *));
                v[0] = util_xstrdup(arg0);
                return v;
        }
        const char *path = NULL;
        for (char **e = env; e && *e; e++)
                if (!strncmp(*e, "PATH=", 5))
                        path = *e + 5;
        if (!path)
                path = SANDBOX_DEFAULT_PATH;
        _cleanup_free_ char *copy = util_xstrdup(path);
        size_t n = 1;
        for (const char *q = path; *q; q++)
                n += *q == ':';
        char **v = util_xcalloc(n + 1, sizeof(char *));
        size_t k = 0;
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
                if (dir[0] == '/')
                        v[k++] = util_xasprintf("%s/%s", dir, arg0);
        return v;
}

void exec_start(struct core *core, struct sandbox *sb, struct exec_params *p, struct request *req, bool wait,
                exec_done_fn done, void *done_data)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        struct exec *ex = util_xcalloc(1, sizeof *ex);
        ex->sb = sb;
        ex->cg_fd = -1;
        ex->proc.fd = ex->out_w.fd = ex->err_w.fd = ex->in_w.fd = ex->timer.fd = ex->poll.fd = -1;
        ex->pids_sampled = ex->sb_pids_local_start = -1;
        limits_exec_init(&ex->limits);
        util_random_hex(ex->eid, 8);
        ex->argv = TAKE_PTR(p->argv);
        ex->started_ms = util_realtime_ms();
        ex->start_mono = util_now_ms();
        ex->in_data = TAKE_PTR(p->stdin_data);
        ex->in_len = p->stdin_len;
        ex->in_stream = p->stdin_stream;
        ex->timeout_ms = p->timeout_ms;
        ex->grace_ms = p->grace_ms;
        ex->stop_signal = p->stop_signal;
        ex->max_output = p->max_output_bytes;
        ex->kill_on_output_limit = p->kill_on_output_limit;
        ex->done = done;
        ex->done_data = done_data;
        ex->limits = p->limits;
        if (ex->limits.cpu_limit_ms > 0 && ex->limits.cpu_limit_ms != CGROUP_UNLIMITED)
                ex->cpu_limit_us = (uint64_t) ex->limits.cpu_limit_ms * 1000;
        snprintf(ex->cg_rel, sizeof ex->cg_rel, "%s/work/exec-%s", sb->id, ex->eid);

        _cleanup_strv_ char **env = sandbox_env_merge(sb->env, p->env);
        _cleanup_strv_ char **candidates = exec_candidates(ex->argv[0], env);
        bool with_stdin = ex->in_data || ex->in_stream;
        int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
        int r;
        bool limits_failed = false;
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || (with_stdin && pipe2(inp, O_CLOEXEC) < 0)) {
                r = pbox_error_sys(&err, errno, "pipe");
                goto fail;
        }
        if ((r = cgroup_create(core->cgroups, ex->cg_rel, &ex->cg_fd, &err)) < 0)
                goto fail;
        /* The limits hold before the command is cloned into the cgroup. */
        if ((r = limits_exec_write(core, ex->cg_fd, &ex->limits, &err)) < 0) {
                limits_failed = true;
                goto fail;
        }
        /* Where the kernel counts refused forks at the limiting cgroup: the
         * sandbox's own count now.  Whether pids.current must be sampled
         * for a peak. */
        if (sb->cgroup_fd >= 0)
                ex->sb_pids_local_start = cgroup_read_keyed(sb->cgroup_fd, "pids.events.local", "max");
        ex->poll_pids = faccessat(ex->cg_fd, "pids.current", F_OK, 0) == 0 &&
                        faccessat(ex->cg_fd, "pids.peak", F_OK, 0) < 0;
        struct spawn_exec_config ec = {
                .target_pidfd = sb->init_watch.fd, .own_pidns_fd = core->own_pidns_fd,
                .target_pidns_fd = sb->pidns_fd, .cgroup_fd = ex->cg_fd, .candidates = candidates,
                .argv = ex->argv, .envp = env, .cwd = p->cwd ? p->cwd : sb->workdir, .uid = p->uid, .gid = p->gid,
                .stdin_fd = with_stdin ? inp[0] : core->null_fd, .stdout_fd = out[1], .stderr_fd = errp[1],
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

        ex->next = sb->execs;
        sb->execs = ex;
        if (wait && req) {
                ex->waiter = req;
                req->deferred = true;
        }
        if (res.pid == 0) {
                close(out[0]);
                close(errp[0]);
                if (inp[1] >= 0)
                        close(inp[1]);
                if (req && !wait)
                        request_respond(req, 202, exec_record(ex, false));
                exec_finish(ex, NULL, res.failed_step, res.child_errno);
                return;
        }
        ex->pid = res.pid;
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(errp[0], F_SETFL, O_NONBLOCK);
        ex->out_w = (struct watch) { out[0], output_event, ex };
        ex->err_w = (struct watch) { errp[0], output_event, ex };
        ex->proc = (struct watch) { res.pidfd, proc_event, ex };
        core_watch_add(core, &ex->out_w, EPOLLIN);
        core_watch_add(core, &ex->err_w, EPOLLIN);
        if (inp[1] >= 0) {
                fcntl(inp[1], F_SETFL, O_NONBLOCK);
                ex->in_w = (struct watch) { inp[1], stdin_event, ex };
                core_watch_add(core, &ex->in_w, ex->in_len ? EPOLLOUT : 0);
        }
        core_watch_add(core, &ex->proc, EPOLLIN);
        if (ex->timeout_ms)
                arm_timer(ex, ex->timeout_ms);
        if (ex->poll_pids) {
                ex->pids_sampled = 1;   /* the command itself */
                sample_pids(ex);
        }
        if (ex->cpu_limit_us || ex->poll_pids) {
                uint64_t first = ex->cpu_limit_us ? ex->cpu_limit_us / exec_ncpus() : POLL_MAX_US;
                arm_poll(ex, first < POLL_MIN_US ? POLL_MIN_US : first > POLL_MAX_US ? POLL_MAX_US : first);
        }
        exec_save(ex);
        log_debug("sandbox %s: exec %s: %s (pid %d)", sb->id, ex->eid, ex->argv[0], (int) ex->pid);
        if (req && !wait)
                request_respond(req, 202, exec_record(ex, false));
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
        exec_free(core, ex);
        log_error("sandbox %s: exec failed: %s", sb->id, err.message);
        if (req && limits_failed)
                limits_fail(req, &err);
        else if (req)
                request_fail(req, &err);
        else if (done) {
                json_t *r2 = json_pack("{s:s,s:s}", "status", "failed", "error", err.message);
                done(core, r2, done_data);
                json_decref(r2);
        }
}

void exec_op_list(struct core *core, struct request *req, struct sandbox *sb)
{
        json_t *arr = json_array();
        for (struct exec *ex = sb->execs; ex; ex = ex->next)
                json_array_append_new(arr, exec_record(ex, false));
        request_respond(req, 200, json_pack("{s:o}", "execs", arr));
}

void exec_op_get(struct core *core, struct request *req, struct sandbox *sb, const char *eid)
{
        struct exec *ex = exec_find(sb, eid);
        if (!ex)
                return request_error(req, 404, "not_found", "no such exec: %s", eid);
        request_respond(req, 200, exec_record(ex, true));
}

void exec_op_events(struct core *core, struct request *req, struct sandbox *sb, const char *eid)
{
        struct exec *ex = exec_find(sb, eid);
        if (!ex)
                return request_error(req, 404, "not_found", "no such exec: %s", eid);
        if (core_stream_send(req, "{\"status\":200,\"stream\":true,\"content_type\":\"text/event-stream\"}", NULL, 0) < 0)
                return request_release(req);
        req->deferred = true;
        if (ex->pid && stream_event(req, "start", json_pack("{s:i}", "pid", ex->pid)) < 0)
                return request_release(req);
        struct exec_stream *st = util_xcalloc(1, sizeof *st);
        st->req = req;
        st->ex = ex;
        ex->streams = util_xrealloc(ex->streams, (ex->nstreams + 1) * sizeof *ex->streams);
        ex->streams[ex->nstreams++] = st;
        stream_pump(ex, ex->nstreams - 1);
}

void exec_op_stdin(struct core *core, struct request *req, struct sandbox *sb, const char *eid, bool close_after,
                   struct privsep_msg *msg)
{
        struct exec *ex = exec_find(sb, eid);
        if (!ex)
                return request_error(req, 404, "not_found", "no such exec: %s", eid);
        if (ex->state != EX_RUNNING || !ex->in_stream || ex->in_w.fd < 0 || ex->in_close_pending)
                return request_error(req, 409, "conflict", "exec %s takes no more input", eid);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if (msg->body_fd >= 0) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", msg->body_fd);
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || util_read_all(fd, MAX_STDIN_PENDING, &buf, &len) < 0)
                        return request_error(req, 413, "payload_too_large", "stdin chunks are limited to %u bytes",
                                             MAX_STDIN_PENDING);
        } else if (msg->body_len) {
                len = msg->body_len;
                buf = util_xmalloc(len);
                memcpy(buf, msg->body, len);
        }
        if (ex->in_len - ex->in_off + len > MAX_STDIN_PENDING)
                return request_error(req, 503, "unavailable", "exec %s is not reading its input fast enough", eid);
        if (len) {
                size_t pending = ex->in_len - ex->in_off;
                unsigned char *nb = util_xmalloc(pending + len);
                if (pending)
                        memcpy(nb, ex->in_data + ex->in_off, pending);
                memcpy(nb + pending, buf, len);
                free(ex->in_data);
                ex->in_data = nb;
                ex->in_len = pending + len;
                ex->in_off = 0;
        }
        if (close_after)
                ex->in_close_pending = true;
        core_watch_mod(core, &ex->in_w, EPOLLOUT);
        request_respond(req, 200, json_pack("{s:I,s:b}", "written", (json_int_t) len, "closed", close_after));
}

void exec_op_kill(struct core *core, struct request *req, struct sandbox *sb, const char *eid, json_t *body)
{
        static const char *const keys[] = { "signal", "grace_ms", NULL };
        struct pbox_error err = PBOX_ERROR_INIT;
        struct exec *ex = exec_find(sb, eid);
        if (!ex)
                return request_error(req, 404, "not_found", "no such exec: %s", eid);
        int sig = SIGTERM;
        int64_t grace = core->cfg->exec_grace_ms;
        if (body) {
                if (json_check_keys(body, keys, &err) < 0 ||
                    json_get_int(body, "grace_ms", false, 0, INT64_MAX, &grace, &err) < 0)
                        return request_fail(req, &err);
                json_t *s = json_object_get(body, "signal");
                if (s && exec_parse_signal(s, &sig) < 0)
                        return request_error(req, 400, "bad_request", "signal must be a signal name or number");
                if (over_max(req, "grace_ms", grace, core->cfg->max_grace_ms))
                        return;
        }
        if (ex->state != EX_RUNNING)
                return request_respond(req, 200, exec_record(ex, true));
        req->deferred = true;
        reqlist_push(&ex->kill_waiters, req);
        exec_begin_end(ex, END_KILLED, sig, (uint32_t) grace);
}

void exec_sandbox_stopping(struct sandbox *sb)
{
        for (struct exec *ex = sb->execs; ex; ex = ex->next)
                if (ex->state == EX_RUNNING && ex->reason == END_NONE)
                        ex->reason = END_KILLED;
}

void exec_free_all(struct sandbox *sb)
{
        while (sb->execs) {
                struct exec *ex = sb->execs;
                sb->execs = ex->next;
                exec_free(sb->core, ex);
        }
}

void exec_recover(struct core *core, struct sandbox *sb)
{
        _cleanup_free_ char *rel = util_xasprintf("%s/execs", sb->id);
        int dfd = openat(core->sandboxes_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n != 21 || strcmp(de->d_name + 16, ".json") || !util_is_hex(de->d_name, 16))
                        continue;
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                _cleanup_json_ json_t *j = NULL;
                if (util_read_file_at(dirfd(d), de->d_name, 1 << 20, &text, &len, NULL) < 0 ||
                    json_parse_untrusted(text, len, true, &j, NULL) < 0)
                        continue;
                const char *state = NULL;
                char **argv = NULL;
                if (json_get_string(j, "state", true, &state, NULL) < 0 ||
                    json_get_strv(j, "argv", true, MAX_ARGV, &argv, NULL) < 0)
                        continue;
                struct exec *ex = util_xcalloc(1, sizeof *ex);
                ex->sb = sb;
                ex->cg_fd = -1;
                ex->proc.fd = ex->out_w.fd = ex->err_w.fd = ex->in_w.fd = ex->timer.fd = ex->poll.fd = -1;
                ex->pids_sampled = ex->sb_pids_local_start = -1;
                limits_exec_init(&ex->limits);
                memcpy(ex->eid, de->d_name, 16);
                ex->argv = argv;
                ex->state = EX_EXITED;
                ex->started_ms = ex->ended_ms = util_realtime_ms();
                json_t *res = json_object_get(j, "result");
                if (!strcmp(state, "running") || !json_is_object(res)) {
                        /* It ran while pboxd died: its pipes are gone with the old
                         * core; what it left running is ended, and it is reported lost. */
                        snprintf(ex->cg_rel, sizeof ex->cg_rel, "%s/work/exec-%s", sb->id, ex->eid);
                        int cg = -1;
                        if (cgroup_open(core->cgroups, ex->cg_rel, &cg, NULL) == 0) {
                                cgroup_kill(core->cgroups, cg, NULL);
                                close(cg);
                        }
                        ex->result = json_pack("{s:s,s:n,s:n,s:s}", "status", "lost", "exit_code", "signal", "error",
                                               "pboxd restarted while the command ran; its output is lost");
                        log_notice("sandbox %s: exec %s was running when pboxd stopped: reported lost", sb->id, ex->eid);
                        exec_save(ex);
                } else
                        ex->result = json_deep_copy(res);
                ex->next = sb->execs;
                sb->execs = ex;
        }
        closedir(d);
        exec_prune(sb, NULL);
}
