/* core.h — the privileged core of pboxd: one thread, one epoll loop.
 *
 * Everything the core waits for is a `watch` in the loop: the control
 * channel from the api process, each request channel, the pidfds of sandbox
 * inits, exec processes and image-load workers, exec output pipes, stop
 * timers, and a signalfd.  No per-sandbox helper process exists; a request
 * that cannot be answered at once (exec, stop, forced removal, image load)
 * keeps its channel until the event that completes it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "caps.h"
#include "cgroup.h"
#include "conf.h"
#include "error.h"
#include "image_store.h"
#include "seccomp_policy.h"
#include "userns.h"

struct core;
struct watch;

typedef void (*watch_fn)(struct core *core, struct watch *w, uint32_t events);

struct watch {
        int fd;
        watch_fn fn;
        void *data;
};

/* A request in flight: its channel to the api process. */
struct request {
        struct watch watch;
        struct core *core;
        bool answered;
        bool deferred;          /* an operation holds it until it completes */
        bool hangup;            /* the api side went away */
        struct request *next;   /* in core->requests */
        /* Called once the channel can take more (or went away), after a
         * send failed with EAGAIN; see request_set_writable. */
        void (*writable)(struct request *req, void *arg);
        void *writable_arg;
};

struct sandbox;
struct epoll_event;

struct core {
        struct pboxd_config *cfg;
        int epfd;
        bool quit;

        struct watch control;           /* from the api process */
        pid_t api_pid;
        struct watch api_exit;          /* pidfd of the api process */
        struct watch signals;           /* signalfd */

        char admin_token[65];
        int state_fd;                   /* STATE_DIR */
        int sandboxes_fd;               /* STATE_DIR/sandboxes */
        char *runtime_sandboxes;        /* RUNTIME_DIR/sandboxes */
        struct image_store *images;
        struct cgroup_manager *cgroups;
        struct userns_map map;
        struct caps_plan caps;
        struct seccomp_program *seccomp;
        int init_memfd;                 /* sealed copy of pbox-init */
        int null_fd;
        int own_pidns_fd;
        bool pidfd_setns;

        struct sandbox *sandboxes;
        struct tenant *tenants;
        const struct tenant *caller;    /* during dispatch: the calling tenant, NULL for the admin */
        struct request *requests;
        /* The events epoll_wait returned, while core_run handles them: a
         * watch deleted meanwhile has its later events in the batch cleared,
         * so the object behind it can be freed at once. */
        struct epoll_event *batch;
        int batch_n, batch_i;
        unsigned n_workers;
};

int core_watch_add(struct core *core, struct watch *w, uint32_t events);
int core_watch_mod(struct core *core, struct watch *w, uint32_t events);
void core_watch_del(struct core *core, struct watch *w);

/* Answer a request (once) and release it.  body is consumed (decref'd). */
void request_respond(struct request *req, int status, json_t *body);
/* Release a request without answering (or after a stream has ended). */
void request_release(struct request *req);
/* Send one message of a stream (meta is the JSON text of the message's meta).
 * Never blocks: -EAGAIN when the channel is full (wait with
 * request_set_writable, then send it again), another -errno when the
 * client is gone. */
int core_stream_send(struct request *req, const char *meta, const void *data, size_t len);
void request_error(struct request *req, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Send a non-JSON answer (file contents, a tar) on the request's channel:
 * data/len inline, or body_fd (a sealed memfd is made when needed).  Does
 * not release the request; for workers, and for the core before
 * request_release via request_respond-like paths. */
int core_send_raw(struct request *req, int status, const char *content_type, const void *data, size_t len,
                  int body_fd);

/* Run fn(core, arg) in a forked worker (the core is single-threaded, so
 * the child may use any library) which answers the request itself with
 * success_status and the body fn returns, or with the error it set (fn may
 * also answer itself with core_send_raw and return 1).  The
 * request is deferred until the worker exits.  Returns -errno if no worker
 * could be started (the request is then still the caller's to answer). */
int core_run_worker(struct core *core, struct request *req, const char *what,
                    int (*fn)(struct core *core, void *arg, json_t **ret_body, struct pbox_error *err),
                    void *arg, int success_status);

/* Ask for fn(req, arg) when the request's channel is writable again (or
 * the api side hung up: req->hangup is then set); NULL stops asking.
 * For streams of a deferred request.  0, or -errno. */
int request_set_writable(struct request *req, void (*fn)(struct request *req, void *arg), void *arg);

/* Map a library error to an HTTP status and answer with it. */
void request_fail(struct request *req, const struct pbox_error *err);
/* The status and body request_fail would send (logs a 5xx as it would). */
json_t *request_fail_body(const struct pbox_error *err, int *ret_status);

int core_init(struct core *core, struct pboxd_config *cfg, int control_fd, pid_t api_pid,
              struct pbox_error *err);
int core_run(struct core *core);
void core_free(struct core *core);
