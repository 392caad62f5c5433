/* files.h — file transfer into and out of a sandbox's root: single files,
 * directory listings, tar archives of a directory.  Every path is resolved
 * beneath the sandbox root, never outside it. */
#pragma once

#include <jansson.h>

#include "core.h"
#include "privsep.h"
#include "sandbox.h"

/* op is one of files.put, files.get, files.list, archive.put, archive.get;
 * args holds the request's string arguments (path, mode); msg the body. */
void files_op(struct core *core, struct request *req, const char *op, const struct files_target *target,
              json_t *args, struct privsep_msg *msg);
