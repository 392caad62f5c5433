/* caps.c — capability plans: the parent turns capability names into a plan
 * (libcap parses the names), the child applies it with plain system calls
 * (bounding set, ambient set, capset).  See caps.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "util.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* The default set of a sandbox's root.  These capabilities only count inside
 * the sandbox's user namespace (its root is an unprivileged uid on the host):
 * enough for package managers, init scripts and servers that drop
 * privileges, and nothing that widens the kernel attack surface (no
 * NET_RAW, MKNOD, AUDIT_WRITE, SETFCAP, SYS_ADMIN, SYS_PTRACE, NET_ADMIN...).
 * Documented in docs/seccomp.md. */
const char *const caps_default_names[] = {
        "CAP_CHOWN",            /* chown files inside the sandbox */
        "CAP_DAC_OVERRIDE",     /* root ignores file modes, as on a normal system */
        "CAP_FOWNER",           /* chmod/utime on files of other users */
        "CAP_FSETID",           /* keep setgid bits when writing */
        "CAP_KILL",             /* signal processes of other users in the sandbox */
        "CAP_SETGID",           /* servers and su/login dropping to other ids */
        "CAP_SETUID",
        "CAP_SETPCAP",          /* drop capabilities further */
        "CAP_NET_BIND_SERVICE", /* bind ports below 1024 in the sandbox's netns */
        "CAP_SYS_CHROOT",       /* chroot(2): build tools, debootstrap */
        NULL,
};

static int caps_kernel_last_cap(void)
{
        int last = CAP_LAST_CAP;
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return last;
        char buf[16];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return last;
        buf[n] = 0;
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || end == buf || (*end && *end != '\n') || v < 0 || v > 63)
                return last;
        return (int) v;
}

int caps_plan_from_names(const char *const *names, struct caps_plan *ret, struct pbox_error *err)
{
        int last_cap = caps_kernel_last_cap();
        uint64_t keep = 0;

        for (size_t i = 0; names && names[i]; i++) {
                const char *name = names[i];
                size_t len = strlen(name);
                bool ok = len > 0 && len <= 64 && !isdigit((unsigned char) name[0]);
                for (size_t k = 0; ok && k < len; k++)
                        ok = isalnum((unsigned char) name[k]) || name[k] == '_';
                if (!ok)
                        return pbox_error_set(err, EINVAL, "capability '%.64s': not a capability name", name);

                /* libcap takes "cap_chown" in any case; also accept "chown". */
                char full[80];
                if (strncasecmp(name, "cap_", 4) == 0)
                        snprintf(full, sizeof full, "%s", name);
                else
                        snprintf(full, sizeof full, "cap_%s", name);
                cap_value_t v;
                if (cap_from_name(full, &v) < 0 || v < 0 || v > 63)
                        return pbox_error_set(err, EINVAL, "capability '%s': unknown capability", name);
                if (v > last_cap)
                        return pbox_error_set(err, EINVAL, "capability '%s': not supported by the running kernel", name);
                keep |= UINT64_C(1) << v;
        }

        struct caps_plan p = { 0 };
        p.keep = keep;
        p.last_cap = last_cap;
        p.header.version = _LINUX_CAPABILITY_VERSION_3;
        p.header.pid = 0;
        p.data[0].effective = p.data[0].permitted = (uint32_t) keep;
        p.data[1].effective = p.data[1].permitted = (uint32_t) (keep >> 32);
        p.data[0].inheritable = p.data[1].inheritable = 0;
        *ret = p;
        return 0;
}

int caps_plan_apply(const struct caps_plan *plan)
{
        /* Bounding set first: dropping needs CAP_SETPCAP in the effective
         * set, which capset below may remove.  Every number up to 63 is
         * tried, so a kernel newer than the plan still loses its new
         * capabilities; EINVAL means the kernel has no such capability. */
        for (unsigned long c = 0; c < 64; c++) {
                if (plan->keep & (UINT64_C(1) << c))
                        continue;
                if (prctl(PR_CAPBSET_DROP, c, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
                        return -errno;
        }
        /* EINVAL: kernel before 4.3, which has no ambient set. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
                return -errno;

        struct __user_cap_header_struct header = plan->header;
        struct __user_cap_data_struct data[2] = { plan->data[0], plan->data[1] };
        if (syscall(SYS_capset, &header, data) < 0)
                return -errno;
        return 0;
}

char **caps_plan_names(const struct caps_plan *plan)
{
        size_t n = 0;
        for (int c = 0; c < 64; c++)
                if (plan->keep & (UINT64_C(1) << c))
                        n++;
        char **v = util_xcalloc(n + 1, sizeof(char *));
        size_t i = 0;
        for (int c = 0; c < 64; c++) {
                if (!(plan->keep & (UINT64_C(1) << c)))
                        continue;
                char *name = cap_to_name((cap_value_t) c);
                if (!name)
                        abort();
                /* libcap spells unknown numbers as digits: keep them readable. */
                if (isdigit((unsigned char) name[0]))
                        v[i] = util_xasprintf("CAP_%s", name);
                else {
                        v[i] = util_xstrdup(name);
                        for (char *p = v[i]; *p; p++)
                                *p = (char) toupper((unsigned char) *p);
                }
                cap_free(name);
                i++;
        }
        return v;
}
