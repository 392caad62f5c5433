/* tenants.h — who is calling.  The admin token (STATE_DIR/admin.token) sees
 * everything.  Tenants are made by the admin (POST /v1/tenants); each gets a
 * token, shown once and stored only as its sha256, and quotas: concurrent
 * sandboxes, concurrent execs, and the images it may use.  A tenant sees and
 * touches only its own sandboxes (others' are 404), and loads or removes no
 * images.  Records: STATE_DIR/tenants/<name>.json, written atomically. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core.h"

struct tenant {
        struct tenant *next;
        char *name;
        char token_sha256[65];
        uint32_t max_sandboxes;         /* 0: no limit */
        uint32_t max_execs;             /* 0: no limit */
        char **images;                  /* references it may use; NULL: all */
};

int tenants_load(struct core *core, struct pbox_error *err);
void tenants_free(struct core *core);
/* The tenant whose token this is, or NULL. */
const struct tenant *tenant_by_token(struct core *core, const char *token);
const struct tenant *tenant_by_name(struct core *core, const char *name);
/* May this tenant (NULL: admin) use the image (its id and its names)? */
bool tenant_may_use_image(const struct tenant *t, const char *image_id, const char *ref);

void tenant_op_create(struct core *core, struct request *req, json_t *body);
void tenant_op_list(struct core *core, struct request *req);
void tenant_op_remove(struct core *core, struct request *req, const char *name);
