/* caps.h — the capability sets of sandbox processes.  The parent turns a list
 * of names (libcap's cap_from_name) into a plan; the child applies it with
 * plain system calls: bounding set cut to the plan, ambient cleared,
 * inheritable empty, permitted = effective = the plan. */
#pragma once

#include <linux/capability.h>
#include <stdint.h>

#include "error.h"

struct caps_plan {
        uint64_t keep;          /* bit n set: capability n is kept */
        int last_cap;           /* highest capability the running kernel knows */
        struct __user_cap_header_struct header;
        struct __user_cap_data_struct data[2];
};

/* The documented default set (docs/seccomp.md, "Capabilities"). */
extern const char *const caps_default_names[];

/* names: NULL-terminated, "CAP_CHOWN" or "chown" spelling.  -EINVAL on an unknown name. */
int caps_plan_from_names(const char *const *names, struct caps_plan *ret, struct pbox_error *err);
/* Child side, system calls only.  Returns 0 or -errno.  Call it as uid 0 of
 * the sandbox's user namespace with CAP_SETPCAP still effective, before
 * no_new_privs, seccomp and execve; at execve the kernel then gives root
 * exactly the plan (the bounding set), and any other uid nothing.  A uid
 * change after this call clears the sets (no SECBIT_KEEP_CAPS). */
int caps_plan_apply(const struct caps_plan *plan);
/* Names of the kept capabilities as a JSON-friendly strv (caller frees). */
char **caps_plan_names(const struct caps_plan *plan);
