/* seccomp_policy.h — OCI seccomp JSON (linux.seccomp of the runtime spec, the
 * format Docker's profiles use) compiled to a classic BPF program with
 * libseccomp, once per policy, in the parent.  The child loads the prepared
 * program with seccomp(2) as its last step before execve. */
#pragma once

#include <jansson.h>
#include <linux/filter.h>

#include "error.h"

struct seccomp_program {
        struct sock_filter *filter;
        unsigned short len;
};

int seccomp_policy_compile_json(json_t *policy, struct seccomp_program **ret, struct pbox_error *err);
int seccomp_policy_compile_file(const char *path, struct seccomp_program **ret, struct pbox_error *err);
void seccomp_program_free(struct seccomp_program *prog);

/* Child side, system calls only (no allocation): installs prog on the calling
 * thread.  no_new_privs must already be set.  Returns 0 or -errno. */
int seccomp_program_load(const struct seccomp_program *prog);
