/* seccomp_policy.c — compiles an OCI seccomp policy (linux.seccomp of the
 * runtime spec) into a classic BPF program with libseccomp, and loads such a
 * program in a child.  Compilation happens once per policy in the parent; the
 * child only calls seccomp(2).  The accepted subset and its semantics are
 * documented in seccomp_policy.h and docs/seccomp.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "json.h"
#include "seccomp_policy.h"
#include "util.h"

#ifndef SECCOMP_FILTER_FLAG_LOG
#define SECCOMP_FILTER_FLAG_LOG (1UL << 1)
#endif
#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif

/* Largest errnoRet: the kernel caps SECCOMP_RET_ERRNO data at MAX_ERRNO. */
#define POLICY_MAX_ERRNO 4095

static void seccomp_ctx_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}
#define _cleanup_seccomp_ctx_ __attribute__((cleanup(seccomp_ctx_releasep)))

/* The value of a JSON string without embedded NUL bytes, or NULL. */
static const char *policy_string(json_t *v)
{
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return NULL;
        return json_string_value(v);
}

/* ---- architectures ------------------------------------------------------ */

/* Architectures that share a kernel: a filter only needs the ones a process
 * on the native kernel can present to seccomp.  Others are skipped. */
enum arch_family {
        FAM_X86 = 1,
        FAM_ARM,
        FAM_PPC_BE,
        FAM_PPC_LE,
        FAM_S390,
        FAM_MIPS_BE,
        FAM_MIPS_LE,
        FAM_PARISC,
        FAM_RISCV,
        FAM_OTHER,
};

static const struct {
        const char *name;
        uint32_t arch;
        enum arch_family family;
} policy_arches[] = {
        { "SCMP_ARCH_X86", SCMP_ARCH_X86, FAM_X86 },
        { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64, FAM_X86 },
        { "SCMP_ARCH_X32", SCMP_ARCH_X32, FAM_X86 },
        { "SCMP_ARCH_ARM", SCMP_ARCH_ARM, FAM_ARM },
        { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64, FAM_ARM },
        { "SCMP_ARCH_PPC", SCMP_ARCH_PPC, FAM_PPC_BE },
        { "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64, FAM_PPC_BE },
        { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE, FAM_PPC_LE },
        { "SCMP_ARCH_S390", SCMP_ARCH_S390, FAM_S390 },
        { "SCMP_ARCH_S390X", SCMP_ARCH_S390X, FAM_S390 },
        { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS, FAM_MIPS_BE },
        { "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64, FAM_MIPS_BE },
        { "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32, FAM_MIPS_BE },
        { "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL, FAM_MIPS_LE },
        { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64, FAM_MIPS_LE },
        { "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32, FAM_MIPS_LE },
        { "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC, FAM_PARISC },
        { "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64, FAM_PARISC },
        { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64, FAM_RISCV },
#ifdef SCMP_ARCH_LOONGARCH64
        { "SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64, FAM_OTHER },
#endif
#ifdef SCMP_ARCH_M68K
        { "SCMP_ARCH_M68K", SCMP_ARCH_M68K, FAM_OTHER },
#endif
#ifdef SCMP_ARCH_SHEB
        { "SCMP_ARCH_SHEB", SCMP_ARCH_SHEB, FAM_OTHER },
#endif
#ifdef SCMP_ARCH_SH
        { "SCMP_ARCH_SH", SCMP_ARCH_SH, FAM_OTHER },
#endif
};

static enum arch_family arch_family_of(uint32_t arch)
{
        for (size_t i = 0; i < ARRAY_SIZE(policy_arches); i++)
                if (policy_arches[i].arch == arch)
                        return policy_arches[i].family;
        return FAM_OTHER;
}

/* Whether a process on the native kernel can make system calls as `arch`. */
static bool arch_runs_natively(uint32_t arch)
{
        uint32_t native = seccomp_arch_native();
        if (arch == native)
                return true;
        enum arch_family f = arch_family_of(native);
        return f != FAM_OTHER && f == arch_family_of(arch);
}

static int policy_add_architectures(scmp_filter_ctx ctx, json_t *arches, struct pbox_error *err)
{
        if (!arches || json_is_null(arches))
                return 0;
        if (!json_is_array(arches))
                return pbox_error_set(err, EINVAL, "architectures: must be an array of strings");
        if (json_array_size(arches) > SECCOMP_POLICY_MAX_ARCHES)
                return pbox_error_set(err, EINVAL, "architectures: more than %u entries",
                                      SECCOMP_POLICY_MAX_ARCHES);
        size_t i;
        json_t *a;
        json_array_foreach(arches, i, a) {
                const char *name = policy_string(a);
                if (!name)
                        return pbox_error_set(err, EINVAL, "architectures[%zu]: must be a string", i);
                size_t k;
                for (k = 0; k < ARRAY_SIZE(policy_arches); k++)
                        if (!strcmp(policy_arches[k].name, name))
                                break;
                if (k == ARRAY_SIZE(policy_arches))
                        return pbox_error_set(err, EINVAL, "architectures[%zu]: unknown architecture '%.64s'",
                                              i, name);
                if (!arch_runs_natively(policy_arches[k].arch))
                        continue;       /* never reported by this kernel */
                int r = seccomp_arch_add(ctx, policy_arches[k].arch);
                if (r < 0 && r != -EEXIST)
                        return pbox_error_sys(err, -r, "architectures[%zu]: cannot add %s", i, name);
        }
        return 0;
}

/* ---- flags -------------------------------------------------------------- */

static int policy_parse_flags(json_t *flags, unsigned int *ret, struct pbox_error *err)
{
        static const struct {
                const char *name;
                unsigned int flag;
        } known[] = {
                { "SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC },
                { "SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG },
                { "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW },
        };
        unsigned int out = 0;

        if (flags && !json_is_null(flags)) {
                if (!json_is_array(flags) || json_array_size(flags) > 16)
                        return pbox_error_set(err, EINVAL, "flags: must be an array of at most 16 strings");
                size_t i;
                json_t *f;
                json_array_foreach(flags, i, f) {
                        const char *name = policy_string(f);
                        if (!name)
                                return pbox_error_set(err, EINVAL, "flags[%zu]: must be a string", i);
                        size_t k;
                        for (k = 0; k < ARRAY_SIZE(known); k++)
                                if (!strcmp(known[k].name, name))
                                        break;
                        if (k == ARRAY_SIZE(known))
                                return pbox_error_set(err, EINVAL, "flags[%zu]: unsupported flag '%.64s'", i, name);
                        out |= known[k].flag;
                }
        }
        *ret = out;
        return 0;
}

/* ---- actions ------------------------------------------------------------ */

/* Reads an optional errno value: a JSON integer 0..4095. */
static int policy_get_errno(json_t *obj, const char *key, const char *prefix, bool *ret_present,
                            uint32_t *ret, struct pbox_error *err)
{
        json_t *v = json_object_get(obj, key);
        if (!v || json_is_null(v)) {
                *ret_present = false;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > POLICY_MAX_ERRNO)
                return pbox_error_set(err, EINVAL, "%s%s: must be an integer between 0 and %d",
                                      prefix, key, POLICY_MAX_ERRNO);
        *ret_present = true;
        *ret = (uint32_t) json_integer_value(v);
        return 0;
}

/* Parses obj[action_key] (with obj[errno_key]) into a libseccomp action.
 * prefix is the path of obj for messages ("" or "syscalls[3]."). */
static int policy_parse_action(json_t *obj, const char *action_key, const char *errno_key,
                               const char *prefix, uint32_t *ret, struct pbox_error *err)
{
        json_t *v = json_object_get(obj, action_key);
        if (!v || json_is_null(v))
                return pbox_error_set(err, EINVAL, "%s%s: is required", prefix, action_key);
        const char *name = policy_string(v);
        if (!name)
                return pbox_error_set(err, EINVAL, "%s%s: must be a string", prefix, action_key);

        bool has_errno = false;
        uint32_t errno_val = EPERM;             /* the OCI default */
        int r = policy_get_errno(obj, errno_key, prefix, &has_errno, &errno_val, err);
        if (r < 0)
                return r;

        uint32_t act;
        bool takes_errno = false;
        if (!strcmp(name, "SCMP_ACT_ALLOW"))
                act = SCMP_ACT_ALLOW;
        else if (!strcmp(name, "SCMP_ACT_LOG"))
                act = SCMP_ACT_LOG;
        else if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD"))
                act = SCMP_ACT_KILL_THREAD;
        else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS"))
                act = SCMP_ACT_KILL_PROCESS;
        else if (!strcmp(name, "SCMP_ACT_TRAP"))
                act = SCMP_ACT_TRAP;
        else if (!strcmp(name, "SCMP_ACT_ERRNO")) {
                act = SCMP_ACT_ERRNO(errno_val);
                takes_errno = true;
        } else if (!strcmp(name, "SCMP_ACT_TRACE")) {
                act = SCMP_ACT_TRACE(errno_val);
                takes_errno = true;
        } else if (!strcmp(name, "SCMP_ACT_NOTIFY"))
                return pbox_error_set(err, EINVAL,
                                      "%s%s: SCMP_ACT_NOTIFY is not supported (pbox runs no seccomp agent)",
                                      prefix, action_key);
        else
                return pbox_error_set(err, EINVAL, "%s%s: unknown action '%.64s'", prefix, action_key, name);

        if (has_errno && !takes_errno)
                return pbox_error_set(err, EINVAL, "%s%s: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %s",
                                      prefix, errno_key, name);
        *ret = act;
        return 0;
}

/* ---- syscall entries ---------------------------------------------------- */

static bool policy_valid_syscall_name(const char *s, size_t len)
{
        if (len == 0 || len > SECCOMP_POLICY_MAX_NAME_LEN || strlen(s) != len)
                return false;
        if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                        return false;
        return true;
}

static int policy_get_u64(json_t *obj, const char *key, bool required, const char *prefix,
                          uint64_t max, uint64_t *ret, struct pbox_error *err)
{
        json_t *v = json_object_get(obj, key);
        if (!v || json_is_null(v)) {
                if (required)
                        return pbox_error_set(err, EINVAL, "%s%s: is required", prefix, key);
                *ret = 0;
                return 0;
        }
        /* jansson stores integers as long long: larger literals already
         * failed to parse, negative ones are refused here. */
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return pbox_error_set(err, EINVAL, "%s%s: must be an integer between 0 and %llu",
                                      prefix, key, (unsigned long long) max);
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

static int policy_parse_args(json_t *args, size_t entry, struct scmp_arg_cmp *cmps, unsigned *ret_n,
                             bool *ret_repeated_index, struct pbox_error *err)
{
        static const struct {
                const char *name;
                enum scmp_compare op;
        } ops[] = {
                { "SCMP_CMP_NE", SCMP_CMP_NE },
                { "SCMP_CMP_LT", SCMP_CMP_LT },
                { "SCMP_CMP_LE", SCMP_CMP_LE },
                { "SCMP_CMP_EQ", SCMP_CMP_EQ },
                { "SCMP_CMP_GE", SCMP_CMP_GE },
                { "SCMP_CMP_GT", SCMP_CMP_GT },
                { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
        };
        static const char *const arg_keys[] = { "index", "value", "valueTwo", "op", NULL };
        unsigned seen = 0;

        *ret_n = 0;
        *ret_repeated_index = false;
        if (!args || json_is_null(args))
                return 0;
        if (!json_is_array(args))
                return pbox_error_set(err, EINVAL, "syscalls[%zu].args: must be an array", entry);
        if (json_array_size(args) > SECCOMP_POLICY_MAX_ARGS)
                return pbox_error_set(err, EINVAL, "syscalls[%zu].args: more than %u conditions",
                                      entry, SECCOMP_POLICY_MAX_ARGS);
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a) {
                char prefix[64];
                snprintf(prefix, sizeof prefix, "syscalls[%zu].args[%zu].", entry, i);
                if (!json_is_object(a))
                        return pbox_error_set(err, EINVAL, "syscalls[%zu].args[%zu]: must be an object", entry, i);
                int r = json_check_keys(a, arg_keys, err);
                if (r < 0)
                        return pbox_error_prefix(err, "syscalls[%zu].args[%zu]", entry, i);

                uint64_t index, value, value_two;
                r = policy_get_u64(a, "index", true, prefix, SECCOMP_POLICY_MAX_ARGS - 1, &index, err);
                if (r < 0)
                        return r;
                r = policy_get_u64(a, "value", true, prefix, UINT64_MAX, &value, err);
                if (r < 0)
                        return r;
                r = policy_get_u64(a, "valueTwo", false, prefix, UINT64_MAX, &value_two, err);
                if (r < 0)
                        return r;

                const char *op = policy_string(json_object_get(a, "op"));
                if (!op)
                        return pbox_error_set(err, EINVAL, "%sop: is required and must be a string", prefix);
                size_t k;
                for (k = 0; k < ARRAY_SIZE(ops); k++)
                        if (!strcmp(ops[k].name, op))
                                break;
                if (k == ARRAY_SIZE(ops))
                        return pbox_error_set(err, EINVAL, "%sop: unknown operator '%.64s'", prefix, op);

                if (seen & (1U << index))
                        *ret_repeated_index = true;
                seen |= 1U << index;
                /* For SCMP_CMP_MASKED_EQ, value is the mask and valueTwo the
                 * datum, as in the runtime spec; other operators ignore valueTwo. */
                cmps[i] = (struct scmp_arg_cmp) {
                        .arg = (unsigned) index,
                        .op = ops[k].op,
                        .datum_a = value,
                        .datum_b = value_two,
                };
        }
        *ret_n = (unsigned) json_array_size(args);
        return 0;
}

/* What has been added for one system call, to refuse ambiguous policies:
 * libseccomp silently picks one action when rules for the same call disagree
 * and one of them is unconditional. */
struct policy_seen_call {
        int nr;
        size_t entry;                   /* first entry that mentioned it */
        bool has_uncond, has_cond, cond_mixed;
        uint32_t uncond_action, cond_action;
};

struct policy_seen {
        struct policy_seen_call *calls;
        size_t n;
};

static int policy_note_rule(struct policy_seen *seen, int nr, bool conditional, uint32_t action,
                            size_t entry, const char *name, struct pbox_error *err)
{
        struct policy_seen_call *c = NULL;
        for (size_t i = 0; i < seen->n; i++)
                if (seen->calls[i].nr == nr) {
                        c = &seen->calls[i];
                        break;
                }
        if (!c) {
                /* at most SECCOMP_POLICY_MAX_NAMES entries: bounded by the caller */
                seen->calls = util_xrealloc(seen->calls, (seen->n + 1) * sizeof *seen->calls);
                c = &seen->calls[seen->n++];
                *c = (struct policy_seen_call) { .nr = nr, .entry = entry };
        }

        bool conflict;
        if (conditional)
                conflict = c->has_uncond && c->uncond_action != action;
        else
                conflict = (c->has_uncond && c->uncond_action != action) ||
                           (c->has_cond && (c->cond_mixed || c->cond_action != action));
        if (conflict)
                return pbox_error_set(err, EINVAL,
                                      "syscalls[%zu]: '%s' has an unconditional rule and another rule with a different action (first in syscalls[%zu])",
                                      entry, name, c->entry);
        if (conditional) {
                if (c->has_cond && c->cond_action != action)
                        c->cond_mixed = true;
                c->has_cond = true;
                c->cond_action = action;
        } else {
                c->has_uncond = true;
                c->uncond_action = action;
        }
        return 0;
}

static int policy_check_includes(json_t *entry_obj, const char *key, size_t entry, struct pbox_error *err)
{
        json_t *v = json_object_get(entry_obj, key);
        if (!v || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0))
                return 0;
        return pbox_error_set(err, EINVAL,
                              "syscalls[%zu].%s: Docker's conditional entries (caps, arches, minKernel) are not supported; "
                              "resolve them into a plain OCI policy",
                              entry, key);
}

static int policy_add_entry(scmp_filter_ctx ctx, json_t *e, size_t idx, uint32_t default_action,
                            struct policy_seen *seen, size_t *total_names, struct pbox_error *err)
{
        static const char *const entry_keys[] = {
                "names", "action", "errnoRet", "args", "comment", "includes", "excludes", NULL
        };
        char prefix[48];
        snprintf(prefix, sizeof prefix, "syscalls[%zu].", idx);

        if (!json_is_object(e))
                return pbox_error_set(err, EINVAL, "syscalls[%zu]: must be an object", idx);
        if (json_object_get(e, "name"))
                return pbox_error_set(err, EINVAL, "syscalls[%zu].name: old Docker form; use \"names\": [...]", idx);
        int r = json_check_keys(e, entry_keys, err);
        if (r < 0)
                return pbox_error_prefix(err, "syscalls[%zu]", idx);
        r = policy_check_includes(e, "includes", idx, err);
        if (r < 0)
                return r;
        r = policy_check_includes(e, "excludes", idx, err);
        if (r < 0)
                return r;
        json_t *comment = json_object_get(e, "comment");
        if (comment && !json_is_string(comment))
                return pbox_error_set(err, EINVAL, "syscalls[%zu].comment: must be a string", idx);

        uint32_t action = 0;
        r = policy_parse_action(e, "action", "errnoRet", prefix, &action, err);
        if (r < 0)
                return r;

        struct scmp_arg_cmp cmps[SECCOMP_POLICY_MAX_ARGS];
        unsigned ncmp;
        bool repeated;
        r = policy_parse_args(json_object_get(e, "args"), idx, cmps, &ncmp, &repeated, err);
        if (r < 0)
                return r;

        json_t *names = json_object_get(e, "names");
        if (!names || !json_is_array(names))
                return pbox_error_set(err, EINVAL, "syscalls[%zu].names: is required and must be an array of strings", idx);
        if (json_array_size(names) == 0)
                return pbox_error_set(err, EINVAL, "syscalls[%zu].names: must not be empty", idx);
        if (json_array_size(names) > SECCOMP_POLICY_MAX_NAMES - *total_names)
                return pbox_error_set(err, EINVAL, "syscalls[%zu].names: the policy names more than %u system calls",
                                      idx, SECCOMP_POLICY_MAX_NAMES);
        *total_names += json_array_size(names);

        size_t i;
        json_t *n;
        json_array_foreach(names, i, n) {
                if (!json_is_string(n))
                        return pbox_error_set(err, EINVAL, "syscalls[%zu].names[%zu]: must be a string", idx, i);
                const char *name = json_string_value(n);
                if (!policy_valid_syscall_name(name, json_string_length(n)))
                        return pbox_error_set(err, EINVAL, "syscalls[%zu].names[%zu]: '%.64s' is not a valid system call name",
                                              idx, i, name);

                /* The native number, or a libseccomp pseudo number for a call
                 * that only exists on another architecture of the filter. */
                int nr = seccomp_syscall_resolve_name(name);
                if (nr == __NR_SCMP_ERROR)
                        continue;       /* unknown to this libseccomp: falls to defaultAction */

                r = policy_note_rule(seen, nr, ncmp > 0, action, idx, name, err);
                if (r < 0)
                        return r;
                if (action == default_action)
                        continue;       /* a no-op, and libseccomp refuses it */

                if (!repeated) {
                        r = seccomp_rule_add_array(ctx, action, nr, ncmp, ncmp ? cmps : NULL);
                } else {
                        /* Conditions on the same argument cannot be combined in
                         * one libseccomp rule; as other OCI runtimes do, such an
                         * entry means one rule per condition (any may match). */
                        r = 0;
                        for (unsigned k = 0; k < ncmp && r >= 0; k++)
                                r = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[k]);
                }
                if (r == -EEXIST)
                        return pbox_error_set(err, EINVAL,
                                              "syscalls[%zu]: the rule for '%s' conflicts with an earlier rule "
                                              "(same conditions, another action)",
                                              idx, name);
                if (r < 0)
                        return pbox_error_set(err, EINVAL, "syscalls[%zu]: libseccomp rejected the rule for '%s': %s",
                                              idx, name, strerror(-r));
        }
        return 0;
}

/* ---- compilation -------------------------------------------------------- */

static int policy_export(scmp_filter_ctx ctx, struct sock_filter **ret_filter, unsigned short *ret_len,
                         struct pbox_error *err)
{
        const size_t max = (size_t) BPF_MAXINSNS * sizeof(struct sock_filter);
        _cleanup_close_ int fd = memfd_create("pbox-seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "memfd_create");
        int r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return pbox_error_sys(err, -r, "seccomp_export_bpf");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return pbox_error_sys(err, errno, "lseek");

        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        r = util_read_all(fd, max, &buf, &len);
        if (r == -EFBIG)
                return pbox_error_set(err, EINVAL, "the policy compiles to more than %d BPF instructions",
                                      BPF_MAXINSNS);
        if (r < 0)
                return pbox_error_sys(err, -r, "reading the exported BPF program");
        if (len == 0 || len % sizeof(struct sock_filter) != 0)
                return pbox_error_set(err, EIO, "libseccomp exported a malformed BPF program (%zu bytes)", len);

        struct sock_filter *f = util_xmalloc(len);
        memcpy(f, buf, len);
        *ret_filter = f;
        *ret_len = (unsigned short) (len / sizeof(struct sock_filter));
        return 0;
}

int seccomp_policy_compile_json(json_t *policy, struct seccomp_program **ret, struct pbox_error *err)
{
        static const char *const top_keys[] = {
                "defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls", "comment", NULL
        };
        int r;

        if (!json_is_object(policy))
                return pbox_error_set(err, EINVAL, "a seccomp policy must be a JSON object");
        if (json_object_get(policy, "archMap"))
                return pbox_error_set(err, EINVAL, "archMap: Docker profile key; list the architectures in \"architectures\"");
        if (json_object_get(policy, "listenerPath") || json_object_get(policy, "listenerMetadata"))
                return pbox_error_set(err, EINVAL, "listenerPath: seccomp notify agents are not supported");
        r = json_check_keys(policy, top_keys, err);
        if (r < 0)
                return r;

        uint32_t default_action = 0;
        r = policy_parse_action(policy, "defaultAction", "defaultErrnoRet", "", &default_action, err);
        if (r < 0)
                return r;
        unsigned int flags = 0;
        r = policy_parse_flags(json_object_get(policy, "flags"), &flags, err);
        if (r < 0)
                return r;

        _cleanup_seccomp_ctx_ scmp_filter_ctx ctx = seccomp_init(default_action);
        if (!ctx)
                return pbox_error_set(err, EINVAL, "defaultAction: libseccomp refused it (unsupported by this kernel?)");
        /* The child sets no_new_privs itself, before loading the program. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return pbox_error_sys(err, -r, "seccomp_attr_set(CTL_NNP)");
        /* A system call made with an architecture the filter does not know
         * (say 32-bit or x32 calls when only x86_64 is listed) kills the process. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return pbox_error_sys(err, -r, "seccomp_attr_set(ACT_BADARCH)");
        /* Binary search over system call numbers instead of a linear scan:
         * allowlists have hundreds of entries. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r < 0)
                return pbox_error_sys(err, -r, "seccomp_attr_set(CTL_OPTIMIZE)");

        r = policy_add_architectures(ctx, json_object_get(policy, "architectures"), err);
        if (r < 0)
                return r;

        json_t *calls = json_object_get(policy, "syscalls");
        if (calls && !json_is_null(calls)) {
                if (!json_is_array(calls))
                        return pbox_error_set(err, EINVAL, "syscalls: must be an array");
                if (json_array_size(calls) > SECCOMP_POLICY_MAX_ENTRIES)
                        return pbox_error_set(err, EINVAL, "syscalls: more than %u entries",
                                              SECCOMP_POLICY_MAX_ENTRIES);
                struct policy_seen seen = { NULL, 0 };
                size_t total_names = 0;
                size_t i;
                json_t *e;
                r = 0;
                json_array_foreach(calls, i, e) {
                        r = policy_add_entry(ctx, e, i, default_action, &seen, &total_names, err);
                        if (r < 0)
                                break;
                }
                free(seen.calls);
                if (r < 0)
                        return r;
        }

        struct sock_filter *filter = NULL;
        unsigned short len = 0;
        r = policy_export(ctx, &filter, &len, err);
        if (r < 0)
                return r;

        struct seccomp_program *prog = util_xcalloc(1, sizeof *prog);
        prog->filter = filter;
        prog->len = len;
        prog->flags = flags;
        *ret = prog;
        return 0;
}

int seccomp_policy_compile_file(const char *path, struct seccomp_program **ret, struct pbox_error *err)
{
        /* An admin-chosen path: symlinks are fine, FIFOs and devices are not. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return pbox_error_sys(err, errno, "seccomp policy %s", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return pbox_error_sys(err, errno, "seccomp policy %s", path);
        if (!S_ISREG(st.st_mode))
                return pbox_error_set(err, EINVAL, "seccomp policy %s: not a regular file", path);

        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = util_read_all(fd, SECCOMP_POLICY_MAX_FILE_SIZE, &buf, &len);
        if (r < 0)
                return pbox_error_sys(err, -r, "seccomp policy %s", path);

        json_t *j = NULL;
        r = json_parse_untrusted(buf, len, true, &j, err);
        if (r < 0)
                return pbox_error_prefix(err, "seccomp policy %s", path);
        _cleanup_json_ json_t *policy = j;

        r = seccomp_policy_compile_json(policy, ret, err);
        if (r < 0)
                return pbox_error_prefix(err, "seccomp policy %s", path);
        return 0;
}

void seccomp_program_free(struct seccomp_program *prog)
{
        if (!prog)
                return;
        free(prog->filter);
        free(prog);
}

int seccomp_program_load(const struct seccomp_program *prog)
{
        if (!prog || !prog->filter || prog->len == 0)
                return -EINVAL;
        struct sock_fprog fprog = {
                .len = prog->len,
                .filter = prog->filter,
        };
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, prog->flags, &fprog) < 0)
                return -errno;
        return 0;
}
