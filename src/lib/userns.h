/* userns.h — the user namespace mapping of sandboxes.  Root inside a sandbox
 * (uid/gid 0) maps to an unprivileged host range [base, base+count); the host's
 * root is never mapped.  The parent writes the maps of a new child; the layer
 * store shifts file ownership by the same base. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct userns_map {
        uid_t uid_base;
        gid_t gid_base;
        uint32_t count;
};

/* Rejects a range that contains host id 0, wraps, or is empty. */
int userns_map_validate(const struct userns_map *map, struct pbox_error *err);
/* Write uid_map and gid_map of pid (setgroups left "allow": the writer is
 * privileged, and sandboxes need setgroups for su-like programs). */
int userns_write_maps(pid_t pid, const struct userns_map *map, struct pbox_error *err);
