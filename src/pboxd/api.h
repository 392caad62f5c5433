/* api.h — the HTTP front end (civetweb), run in its own unprivileged process.
 * It parses HTTP, maps routes to privsep operations (privsep.h), forwards the
 * bearer token and the body to the core, and writes the core's answer back.
 * It holds no secrets and checks nothing the core relies on. */
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
        int threads;                    /* civetweb worker threads */
};

/* Runs in the forked api process: binds, drops privileges (uid/gid, every
 * capability, bounding set, no_new_privs), serves until the control channel
 * closes or SIGTERM.  Returns the process exit status. */
int api_main(const struct api_options *opts);
