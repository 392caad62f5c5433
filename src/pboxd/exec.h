/* exec.h — commands run in a sandbox: the exec lifecycle in the core.
 *
 * Each exec is a process cloned by the core into the sandbox (spawn.c) and
 * its own leaf cgroup <id>/work/exec-<eid>, watched through a pidfd, with
 * pipes for its output (kept per stream up to max_output_bytes, in arrival
 * order for event streams) and its input (whole in the request, or streamed).
 * A timerfd enforces timeout_ms: the stop signal goes to every process of
 * the exec's cgroup, and after grace_ms cgroup.kill ends whatever is left, so
 * double forks and setsid cannot escape.  Per-exec limits (limits.h) are
 * written to that cgroup before the command is cloned into it; cpu_limit_ms
 * is enforced by the core, which polls the cgroup's cpu.stat on a second
 * timerfd and kills the whole cgroup once the limit is reached.  When the
 * exec ends, its cgroup's usage is read before the cgroup goes, and the
 * verdict is the first of killed > timeout > cpu_limit > output_limit >
 * oom > pids_limit > ok/exit/signaled that applies.  Records are persisted under
 * STATE_DIR/sandboxes/<id>/execs/<eid>.json, so an exec that was running when
 * pboxd died is reported as "lost", never forgotten. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "core.h"
#include "limits.h"
#include "privsep.h"
#include "sandbox.h"

struct exec_params {
        char **argv;
        char **env;                     /* merged over the sandbox's */
        const char *cwd;                /* NULL: the image's working dir */
        uid_t uid;
        gid_t gid;
        unsigned char *stdin_data;      /* taken over */
        size_t stdin_len;
        bool stdin_stream;
        uint32_t timeout_ms;            /* 0: none */
        uint32_t grace_ms;
        int stop_signal;
        uint64_t max_output_bytes;
        bool kill_on_output_limit;
        struct exec_limits limits;      /* cpu_limit_ms, memory_bytes, pids (LIMIT_UNSET or CGROUP_UNLIMITED: none) */
};

/* Called when an exec ends (for internal users such as /v1/run). */
typedef void (*exec_done_fn)(struct core *core, json_t *result, void *data);

/* Parse and check an exec request body against the config's defaults and
 * maximums (422 for values above a maximum); fills p.  On failure the
 * request has been answered. */
bool exec_parse_request(struct core *core, struct request *req, json_t *body, struct exec_params *p, bool *ret_wait);
void exec_params_clear(struct exec_params *p);

/* Start an exec.  With req and wait: answered with the record at the end;
 * with req and !wait: answered 202 at once; with done: done() at the end. */
void exec_start(struct core *core, struct sandbox *sb, struct exec_params *p, struct request *req, bool wait,
                exec_done_fn done, void *done_data);

void exec_op_list(struct core *core, struct request *req, struct sandbox *sb);
void exec_op_get(struct core *core, struct request *req, struct sandbox *sb, const char *eid);
void exec_op_events(struct core *core, struct request *req, struct sandbox *sb, const char *eid);
void exec_op_stdin(struct core *core, struct request *req, struct sandbox *sb, const char *eid, bool close_after,
                   struct privsep_msg *msg);
void exec_op_kill(struct core *core, struct request *req, struct sandbox *sb, const char *eid, json_t *body);

bool exec_any_running(const struct sandbox *sb);
unsigned exec_count_running(const struct sandbox *sb);
/* The sandbox is being stopped: running execs will end as "killed". */
void exec_sandbox_stopping(struct sandbox *sb);
void exec_free_all(struct sandbox *sb);
/* After a restart: records of execs that were running become "lost" (their
 * leftover processes are killed), finished ones are listed again. */
void exec_recover(struct core *core, struct sandbox *sb);
/* Parse "SIGTERM", "TERM" or 15. */
int exec_parse_signal(json_t *v, int *ret);
