/* seccomp_policy.h — OCI seccomp JSON (linux.seccomp of the runtime spec, the
 * format Docker's profiles use) compiled to a classic BPF program with
 * libseccomp, once per policy, in the parent.  The child loads the prepared
 * program with seccomp(2) as its last step before execve.
 *
 * Accepted input (docs/seccomp.md has the details):
 *   defaultAction (required), defaultErrnoRet, architectures, flags, syscalls[]
 *   with names[], action, errnoRet, args[] {index, value, valueTwo, op}, and a
 *   free-form "comment".  Docker-only conditional keys (includes/excludes with
 *   content, archMap, minKernel) and SCMP_ACT_NOTIFY are rejected, never
 *   ignored, because ignoring them would widen the policy.  Syscall names the
 *   linked libseccomp does not know are skipped (they hit defaultAction).
 *   Architectures that cannot run on the native one are skipped; the native
 *   architecture is always in the filter; any other architecture is killed
 *   (SECCOMP_RET_KILL_PROCESS).
 * Every error names the offending path, e.g.
 *   "syscalls[3].args[0].op: unknown operator 'X'", with code EINVAL. */
#pragma once

#include <jansson.h>
#include <linux/filter.h>

#include "error.h"

/* Bounds of what a policy may contain. */
#define SECCOMP_POLICY_MAX_FILE_SIZE (4U << 20)
#define SECCOMP_POLICY_MAX_ENTRIES 1024U        /* syscalls[] entries */
#define SECCOMP_POLICY_MAX_NAMES 4096U          /* names over all entries */
#define SECCOMP_POLICY_MAX_ARGS 6U              /* args[] per entry */
#define SECCOMP_POLICY_MAX_ARCHES 32U
#define SECCOMP_POLICY_MAX_NAME_LEN 64U

struct seccomp_program {
        struct sock_filter *filter;
        unsigned short len;
        unsigned int flags;     /* SECCOMP_FILTER_FLAG_* for seccomp(2), from "flags" */
};

int seccomp_policy_compile_json(json_t *policy, struct seccomp_program **ret, struct pbox_error *err);
int seccomp_policy_compile_file(const char *path, struct seccomp_program **ret, struct pbox_error *err);
void seccomp_program_free(struct seccomp_program *prog);

/* Child side, system calls only (no allocation): installs prog on the calling
 * thread.  no_new_privs must already be set.  Returns 0 or -errno. */
int seccomp_program_load(const struct seccomp_program *prog);
