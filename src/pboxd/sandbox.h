/* sandbox.h — the sandbox registry of the core: records on disk
 * (STATE_DIR/sandboxes/<id>/state.json, written atomically), creation,
 * exec, stop, removal, and re-adoption after a restart of pboxd. */
#pragma once

#include <jansson.h>

#include "core.h"

/* Load every record and re-adopt running sandboxes (or mark them lost). */
int sandbox_recover_all(struct core *core, struct pbox_error *err);

void sandbox_op_create(struct core *core, struct request *req, json_t *body);
void sandbox_op_list(struct core *core, struct request *req);
void sandbox_op_get(struct core *core, struct request *req, const char *id);
void sandbox_op_exec(struct core *core, struct request *req, const char *id, json_t *body);
void sandbox_op_stop(struct core *core, struct request *req, const char *id, json_t *body);
void sandbox_op_remove(struct core *core, struct request *req, const char *id, bool force);

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
