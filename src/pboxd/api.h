/* api.h — the HTTP front end (civetweb), run in its own unprivileged process.
 * It parses HTTP, maps routes to privsep operations (privsep.h), forwards the
 * bearer token and the body to the core, and writes the core's answer back
 * (or passes its event stream through).  It holds no secrets and checks
 * nothing the core relies on. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct api_options {
        const char *listen;             /* "ADDR:PORT" */
        int control_sock;               /* control channel to the core */
        uid_t run_uid;                  /* unprivileged identity to drop to */
        gid_t run_gid;
        size_t max_json_body;           /* bytes; larger JSON bodies get 413 */
        uint64_t max_image_body;        /* bytes; larger uploads get 413 */
        int threads;                    /* civetweb worker threads; an open event
                                         * stream holds one, and at most threads
                                         * minus max(1, threads / 4) streams are
                                         * open at once */
        int request_timeout_ms;         /* per socket read/write; 0 = 30000 */
};

/* Zero values of max_json_body, max_image_body, threads and
 * request_timeout_ms select the defaults below.  run_uid/run_gid must not be
 * 0.  api_main closes every fd except 0, 1, 2 and control_sock first, so the
 * core may fork it without tidying up (it must still not leave secrets in
 * memory the api could read: it is the same image after fork). */
#define API_DEFAULT_MAX_JSON_BODY ((size_t) 1 << 20)
#define API_DEFAULT_MAX_IMAGE_BODY ((uint64_t) 4 << 30)
#define API_DEFAULT_THREADS 16
#define API_DEFAULT_REQUEST_TIMEOUT_MS 30000

/* Runs in the forked api process: binds, drops privileges (uid/gid, every
 * capability, bounding set, no_new_privs), serves until the control channel
 * closes or SIGTERM.  Returns the process exit status. */
int api_main(const struct api_options *opts);
