/* sandbox.h — the sandbox registry of the core: records on disk
 * (STATE_DIR/sandboxes/<id>/state.json, written atomically), creation,
 * exec, stop, removal, and re-adoption after a restart of pboxd. */
#pragma once

#include <jansson.h>

#include "core.h"
#include "limits.h"
#include "privsep.h"

#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum sb_state { SB_CREATING, SB_RUNNING, SB_STOPPING, SB_STOPPED };
extern const char *const sb_state_names[];

struct reqlist {
        struct request **v;
        size_t n;
};

struct exec;

/* Shared by sandbox.c (which owns it) and exec.c. */
struct sandbox {
        struct sandbox *next;
        struct core *core;
        char id[25];
        char *name;
        char *tenant;                   /* owner; NULL: made by the admin */
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
        uint64_t stop_deadline_ms;       /* monotonic */
        uint64_t stop_deadline_real_ms;  /* realtime, persisted: a restart keeps the schedule */
        bool stop_killed;
        struct reqlist stop_waiters;
        struct reqlist remove_waiters;
        struct exec *execs;             /* running and recently finished, newest first */
        uint64_t expires_ms;            /* realtime; 0: no TTL */
        uint32_t idle_timeout_s;        /* 0: none */
        uint64_t last_activity_ms;      /* realtime */
        json_t *events;                 /* [{time, type, message}] */
        bool remove_pending;            /* removed once stopped (expiry), without a request */
        const char *stop_cause;         /* "ttl_expired" / "idle_expired" when pboxd stopped it */
        uint64_t remove_after_ms;       /* realtime: an expired sandbox is removed then */
        struct sandbox_limits limits;   /* effective limits (LIMIT_UNSET: none given, none by default) */
        json_t *unenforced;             /* keys of limits this host does not enforce; NULL: none */
        json_t *last_usage;             /* usage read when init exited (stopped sandboxes) */
        int64_t pids_peak_sampled;      /* highest pids.current seen, where the kernel lacks pids.peak */
        bool disk_limited;              /* writable layer in a file system of its own at STATE_DIR/sandboxes/<id>/rw: */
        bool disk_ext4;                 /* an ext4 image (<id>/disk.img) on a loop device, else a tmpfs */
        int64_t forks_refused_ended;    /* refused forks of execs whose cgroups are gone (persisted) */
        struct request *discard_req;    /* answered with discard_reply once the sandbox is gone */
        int discard_status;
        json_t *discard_reply;
};

/* Finds a sandbox the current caller may see (all, for the admin). */
struct sandbox *sandbox_find(struct core *core, const char *id_or_name);
bool sandbox_visible(const struct core *core, const struct sandbox *sb);
/* Running execs in sandboxes of this tenant (NULL: in all sandboxes). */
unsigned sandbox_running_execs(const struct core *core, const char *tenant);
/* Quotas and backpressure for a new exec; answers req (429/503) when not. */
bool sandbox_exec_admissible(struct core *core, struct request *req);
/* Merge "K=V" lists; later entries replace earlier ones with the same key. */
char **sandbox_env_merge(char **base, char **over);
/* Called by exec.c when an exec ends: a pending removal may now proceed. */
void sandbox_maybe_finish_removal(struct sandbox *sb);
/* Usage of the sandbox's cgroup (running), with the pids peak sampled where
 * the kernel keeps none and the refused forks of ended execs; -1: none. */
int sandbox_read_cgroup_usage(struct sandbox *sb, struct cgroup_usage *ret);
/* Called by exec.c when an exec's cgroup, with n refused forks, is removed. */
void sandbox_add_forks_refused(struct sandbox *sb, int64_t n);
/* Note activity (an exec, a keepalive): resets the idle timer. */
void sandbox_touch(struct sandbox *sb);
/* Start the once-a-second check of TTLs and idle timeouts. */
int sandbox_start_reaper(struct core *core, struct pbox_error *err);
void sandbox_op_keepalive(struct core *core, struct request *req, const char *id, json_t *body);

/* Load every record and re-adopt running sandboxes (or mark them lost). */
int sandbox_recover_all(struct core *core, struct pbox_error *err);

/* Validate a create body and build the sandbox; NULL when it failed (req
 * was then answered with the error). */
struct sandbox *sandbox_create_from_body(struct core *core, struct request *req, json_t *body);
/* Kill and remove a sandbox without a request waiting for it. */
void sandbox_discard(struct sandbox *sb);
/* Kill and remove a sandbox, then answer req with status and reply (taken):
 * a one-shot run's caller never sees its sandbox still listed. */
void sandbox_discard_then_respond(struct sandbox *sb, struct request *req, int status, json_t *reply);
void sandbox_op_create(struct core *core, struct request *req, json_t *body);
void sandbox_op_list(struct core *core, struct request *req);
void sandbox_op_get(struct core *core, struct request *req, const char *id);
void sandbox_op_exec(struct core *core, struct request *req, const char *id, json_t *body);
/* exec.list, exec.get, exec.events, exec.kill, exec.stdin */
void sandbox_op_exec_other(struct core *core, struct request *req, const char *op, const char *id,
                           const char *eid, json_t *args, json_t *body, struct privsep_msg *msg);
void sandbox_op_stop(struct core *core, struct request *req, const char *id, json_t *body);
void sandbox_op_remove(struct core *core, struct request *req, const char *id, bool force);
/* PATCH /v1/sandboxes/{id} (patch: body {"limits": {...}}) and POST
 * .../limits (body: the limits object): merge, write to the live cgroup,
 * persist, answer with the record. */
void sandbox_op_limits(struct core *core, struct request *req, const char *id, json_t *body, bool patch);
/* Answer a failed limits_*_parse: -ERANGE is 422 "unprocessable", the rest as request_fail. */
void sandbox_limits_fail(struct request *req, const struct pbox_error *err);

/* Bytes the sandbox's writable layer uses now: statfs of its tmpfs, or a
 * bounded walk of its upper dir (-E2BIG past max_entries, *ret partial). */
int sandbox_disk_usage(const struct sandbox *sb, uint64_t max_entries, uint64_t *ret, struct pbox_error *err);
/* The "usage" object of a sandbox: read from its cgroup while it runs, the
 * last figures once it stopped; NULL when none are known. */
json_t *sandbox_usage_json(struct sandbox *sb);

/* What the file operations need to know of a sandbox. */
struct files_target {
        const char *id;
        const char *rootfs;     /* host path of its mounted root (running and stopped sandboxes) */
        bool running;
        pid_t init_pid;         /* running only */
        int init_pidfd;         /* running only, -1 otherwise */
};
/* -ENOENT when id names no sandbox. */
int sandbox_files_target(struct core *core, const char *id, struct files_target *ret);

/* True if any sandbox (in any state) was created from image id. */
bool sandbox_uses_image(struct core *core, const char *image_id);
void sandbox_free_all(struct core *core);
