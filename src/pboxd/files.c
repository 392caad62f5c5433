/* files.c — file transfer into and out of sandboxes (files.h).  Being written. */
#include "config.h"

#include "files.h"

void files_op(struct core *core, struct request *req, const char *op, const struct files_target *target,
              json_t *args, struct privsep_msg *msg)
{
        request_error(req, 501, "not_implemented", "%s is not implemented yet", op);
}
