/* test_seccomp_policy.c — unit tests of seccomp_policy.c and caps.c.
 *
 * Three layers: (1) the compiler's parsing and error messages; (2) the
 * compiled default policy run through a classic-BPF interpreter for every
 * system call number and the argument values its rules mention, compared
 * with what the JSON says; (3) real kernels: children that load the compiled
 * programs and check what the kernel does, real programs (sh, busybox,
 * python3, gcc, node, java, a Go binary) run under the default policy, and
 * capability plans applied in children and read back from /proc. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "json.h"
#include "seccomp_policy.h"
#include "util.h"

extern char **environ;

#define DEFAULT_POLICY PBOX_SRCDIR "/policies/default.json"

/* ------------------------------------------------------------------ helpers */

static struct seccomp_program *compile_text(const char *text)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *j = NULL;
        int r = json_parse_untrusted(text, strlen(text), true, &j, &err);
        if (r < 0)
                fail_msg("test policy is not JSON: %s", err.message);
        struct seccomp_program *p = NULL;
        r = seccomp_policy_compile_json(j, &p, &err);
        json_decref(j);
        if (r < 0)
                fail_msg("compile failed (%d): %s\npolicy: %s", r, err.message, text);
        assert_non_null(p);
        assert_true(p->len > 0);
        return p;
}

static struct seccomp_program *compile_default(void)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        struct seccomp_program *p = NULL;
        int r = seccomp_policy_compile_file(DEFAULT_POLICY, &p, &err);
        if (r < 0)
                fail_msg("compiling %s: %s", DEFAULT_POLICY, err.message);
        return p;
}

static void expect_error(const char *text, const char *substr)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *j = NULL;
        int r = json_parse_untrusted(text, strlen(text), true, &j, &err);
        if (r < 0)
                fail_msg("test policy is not JSON: %s", err.message);
        struct seccomp_program *p = NULL;
        r = seccomp_policy_compile_json(j, &p, &err);
        json_decref(j);
        if (r != -EINVAL || err.code != EINVAL || !strstr(err.message, substr)) {
                seccomp_program_free(p);
                fail_msg("policy %s\n  expected -EINVAL with \"%s\", got %d \"%s\"", text, substr, r, err.message);
        }
        assert_null(p);
}

/* Children report a failed check on stderr and exit 100. */
static _Noreturn void child_fail(int line, const char *what, long got, int got_errno, int want_errno)
{
        char buf[512];
        int n = snprintf(buf, sizeof buf, "  child check at line %d failed: %s -> %ld, errno %d (%s), wanted errno %d (%s)\n",
                         line, what, got, got_errno, strerror(got_errno), want_errno, strerror(want_errno));
        if (n > 0)
                (void) !write(2, buf, (size_t) n);
        _exit(100);
}

#define CHECK(cond)                                                     \
        do {                                                            \
                if (!(cond))                                            \
                        child_fail(__LINE__, #cond, 0, errno, 0);       \
        } while (0)
/* call must fail with errno e. */
#define CHECK_ERRNO(call, e)                                            \
        do {                                                            \
                errno = 0;                                              \
                long _r = (long) (call);                                \
                int _e = errno;                                         \
                if (_r != -1 || _e != (e))                              \
                        child_fail(__LINE__, #call, _r, _e, (e));       \
        } while (0)
/* call must succeed (>= 0). */
#define CHECK_OK(call)                                                  \
        do {                                                            \
                errno = 0;                                              \
                long _r = (long) (call);                                \
                if (_r < 0)                                             \
                        child_fail(__LINE__, #call, _r, errno, 0);      \
        } while (0)

/* First thing in every forked child: no core files, and default signal
 * dispositions (cmocka catches SIGSYS & co. and would resume its test loop
 * in the child). */
static void child_no_core(void)
{
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        struct rlimit rl = { 0, 0 };
        (void) setrlimit(RLIMIT_CORE, &rl);
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void child_enter(const struct seccomp_program *p)
{
        CHECK_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        int r = seccomp_program_load(p);
        if (r < 0)
                child_fail(__LINE__, "seccomp_program_load", r, -r, 0);
}

/* Runs fn(arg) in a forked child and returns its wait status. */
static int run_child(void (*fn)(void *), void *arg)
{
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                child_no_core();
                fn(arg);
                _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                assert_int_equal(errno, EINTR);
        return st;
}

static void assert_exit_ok(int st)
{
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("child: %s %d", WIFEXITED(st) ? "exit" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void assert_sigsys(int st)
{
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
                fail_msg("child should die of SIGSYS: %s %d", WIFEXITED(st) ? "exit" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ------------------------------------------------------ compiler: errors */

static void test_errors(void **state)
{
        (void) state;
        expect_error("{}", "defaultAction: is required");
        expect_error("{\"defaultAction\": 5}", "defaultAction: must be a string");
        expect_error("{\"defaultAction\": \"SCMP_ACT_MAYBE\"}", "defaultAction: unknown action 'SCMP_ACT_MAYBE'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1}",
                     "defaultErrnoRet: only valid with SCMP_ACT_ERRNO");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": -1}", "defaultErrnoRet: must be an integer");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 70000}", "defaultErrnoRet");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": \"1\"}", "defaultErrnoRet");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"bogus\": 1}", "unknown field 'bogus'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"archMap\": []}", "archMap");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/x\"}", "not supported");
        expect_error("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", "SCMP_ACT_NOTIFY is not supported");
        {
                /* jansson's parser refuses \u0000, but a json_t built in code may carry one */
                json_t *p = json_object();
                json_object_set_new(p, "defaultAction", json_stringn("SCMP_ACT_ALLOW\0x", 16));
                struct pbox_error err = PBOX_ERROR_INIT;
                struct seccomp_program *prog = NULL;
                assert_int_equal(seccomp_policy_compile_json(p, &prog, &err), -EINVAL);
                assert_non_null(strstr(err.message, "defaultAction: must be a string"));
                json_decref(p);
        }
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": \"SCMP_ARCH_X86_64\"}",
                     "architectures: must be an array");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_VAX\"]}",
                     "architectures[0]: unknown architecture 'SCMP_ARCH_VAX'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [1]}", "architectures[0]: must be a string");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_NEW_LISTENER\"]}",
                     "flags[0]: unsupported flag");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": {}}", "syscalls: must be an array");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [1]}", "syscalls[0]: must be an object");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"]}]}",
                     "syscalls[0].action: is required");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_NOPE\"}]}",
                     "syscalls[0].action: unknown action 'SCMP_ACT_NOPE'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": \"getpid\", \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[0].names: is required and must be an array");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[0].names: must not be empty");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [3], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[0].names[0]: must be a string");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\", \"mount;reboot\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[0].names[1]: 'mount;reboot' is not a valid system call name");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"Mount\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "not a valid system call name");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "not a valid system call name");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_KILL\", \"errnoRet\": 1}]}",
                     "syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"name\": \"getpid\", \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[0].name: old Docker form");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_KILL\", \"extra\": 1}]}",
                     "syscalls[0]: unknown field 'extra'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_KILL\", "
                     "\"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}",
                     "syscalls[0].includes: Docker's conditional entries");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_KILL\", "
                     "\"excludes\": {\"arches\": [\"s390x\"]}}]}",
                     "syscalls[0].excludes");
        /* args */
        const char *pre = "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_ERRNO\"}, "
                          "{\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": ";
        char buf[1024];
#define ARGS_ERR(args, msg)                                              \
        do {                                                             \
                snprintf(buf, sizeof buf, "%s%s}]}", pre, args);         \
                expect_error(buf, msg);                                  \
        } while (0)
        ARGS_ERR("[{\"index\": 0, \"value\": 1, \"op\": \"X\"}]", "syscalls[1].args[0].op: unknown operator 'X'");
        ARGS_ERR("[{\"index\": 0, \"value\": 1}]", "syscalls[1].args[0].op: is required");
        ARGS_ERR("[{\"index\": 7, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].index: must be an integer between 0 and 5");
        ARGS_ERR("[{\"index\": 6, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].index");
        ARGS_ERR("[{\"index\": -1, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].index");
        ARGS_ERR("[{\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].index: is required");
        ARGS_ERR("[{\"index\": 0, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].value: is required");
        ARGS_ERR("[{\"index\": \"0\", \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].index");
        ARGS_ERR("[{\"index\": 0, \"value\": -5, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].value: must be an integer");
        ARGS_ERR("[{\"index\": 0, \"value\": 1.5, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].value");
        ARGS_ERR("[{\"index\": 0, \"value\": 1, \"valueTwo\": true, \"op\": \"SCMP_CMP_EQ\"}]", "syscalls[1].args[0].valueTwo");
        ARGS_ERR("[{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\", \"other\": 1}]", "syscalls[1].args[0]: unknown field 'other'");
        ARGS_ERR("[1]", "syscalls[1].args[0]: must be an object");
        ARGS_ERR("{}", "syscalls[1].args: must be an array");
        ARGS_ERR("[{\"index\": 0, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 1, \"op\": \"SCMP_CMP_EQ\"}, "
                 "{\"index\": 2, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 3, \"op\": \"SCMP_CMP_EQ\"}, "
                 "{\"index\": 4, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 5, \"op\": \"SCMP_CMP_EQ\"}, "
                 "{\"index\": 0, \"op\": \"SCMP_CMP_NE\"}]",
                 "syscalls[1].args: more than 6 conditions");
#undef ARGS_ERR
        /* Ambiguous: the same call both allowed and denied unconditionally. */
        expect_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
                     "{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_ALLOW\"},"
                     "{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[1]: 'getpid' has an unconditional rule and another rule with a different action");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
                     "{\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]},"
                     "{\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                     "syscalls[1]: 'getpriority'");
        expect_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                     "{\"names\": [\"getpgid\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 5, \"op\": \"SCMP_CMP_EQ\"}]},"
                     "{\"names\": [\"getpgid\"], \"action\": \"SCMP_ACT_KILL\", \"args\": [{\"index\": 0, \"value\": 5, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                     "syscalls[1]: the rule for 'getpgid' conflicts with an earlier rule");
        /* Too many entries / names. */
        {
                json_t *p = json_pack("{s:s}", "defaultAction", "SCMP_ACT_ALLOW");
                json_t *calls = json_array();
                for (unsigned i = 0; i <= SECCOMP_POLICY_MAX_ENTRIES; i++)
                        json_array_append_new(calls, json_pack("{s:[s],s:s}", "names", "getpid", "action", "SCMP_ACT_ALLOW"));
                json_object_set_new(p, "syscalls", calls);
                struct pbox_error err = PBOX_ERROR_INIT;
                struct seccomp_program *prog = NULL;
                assert_int_equal(seccomp_policy_compile_json(p, &prog, &err), -EINVAL);
                assert_non_null(strstr(err.message, "syscalls: more than"));
                json_decref(p);
        }
        {
                json_t *p = json_pack("{s:s}", "defaultAction", "SCMP_ACT_ALLOW");
                json_t *names = json_array();
                for (unsigned i = 0; i <= SECCOMP_POLICY_MAX_NAMES; i++)
                        json_array_append_new(names, json_string("getpid"));
                json_object_set_new(p, "syscalls", json_pack("[{s:o,s:s}]", "names", names, "action", "SCMP_ACT_LOG"));
                struct pbox_error err = PBOX_ERROR_INIT;
                struct seccomp_program *prog = NULL;
                assert_int_equal(seccomp_policy_compile_json(p, &prog, &err), -EINVAL);
                assert_non_null(strstr(err.message, "more than 4096 system calls"));
                json_decref(p);
        }
        /* Not an object at all. */
        {
                json_t *a = json_array();
                struct pbox_error err = PBOX_ERROR_INIT;
                struct seccomp_program *prog = NULL;
                assert_int_equal(seccomp_policy_compile_json(a, &prog, &err), -EINVAL);
                json_decref(a);
        }
}

static void test_file_errors(void **state)
{
        (void) state;
        struct pbox_error err = PBOX_ERROR_INIT;
        struct seccomp_program *p = NULL;
        assert_int_equal(seccomp_policy_compile_file("/nonexistent/pbox-policy.json", &p, &err), -ENOENT);
        assert_non_null(strstr(err.message, "/nonexistent/pbox-policy.json"));

        pbox_error_clear(&err);
        assert_int_equal(seccomp_policy_compile_file("/dev/null", &p, &err), -EINVAL);
        assert_non_null(strstr(err.message, "not a regular file"));

        char path[] = "/tmp/pbox-test-policy-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *bad = "{\"defaultAction\": \"SCMP_ACT_ALLOW\",";
        assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t) strlen(bad));
        close(fd);
        pbox_error_clear(&err);
        assert_int_equal(seccomp_policy_compile_file(path, &p, &err), -EINVAL);
        assert_non_null(strstr(err.message, path));
        assert_non_null(strstr(err.message, "invalid JSON"));

        fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        const char *dup = "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultAction\": \"SCMP_ACT_KILL\"}";
        assert_int_equal(write(fd, dup, strlen(dup)), (ssize_t) strlen(dup));
        close(fd);
        pbox_error_clear(&err);
        assert_int_equal(seccomp_policy_compile_file(path, &p, &err), -EINVAL);
        unlink(path);
        assert_null(p);
}

static void test_accepts(void **state)
{
        (void) state;
        struct seccomp_program *p;

        /* Unknown-but-well-formed names are skipped; empty includes/excludes,
         * comments and foreign architectures are fine; errnoRet 0 is valid. */
        p = compile_text("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
                         " \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\", \"SCMP_ARCH_AARCH64\","
                         " \"SCMP_ARCH_ARM\", \"SCMP_ARCH_S390X\", \"SCMP_ARCH_PPC64LE\", \"SCMP_ARCH_RISCV64\"],"
                         " \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"], \"comment\": \"test\","
                         " \"syscalls\": [{\"names\": [\"getpid\", \"pbox_syscall_from_the_future\", \"socketcall\"],"
                         " \"action\": \"SCMP_ACT_ALLOW\", \"comment\": \"x\", \"includes\": {}, \"excludes\": {}},"
                         " {\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 0},"
                         " {\"names\": [\"getpgrp\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 38},"
                         " {\"names\": [\"gettid\"], \"action\": \"SCMP_ACT_TRACE\", \"errnoRet\": 7},"
                         " {\"names\": [\"getuid\"], \"action\": \"SCMP_ACT_LOG\"},"
                         " {\"names\": [\"getgid\"], \"action\": \"SCMP_ACT_TRAP\"},"
                         " {\"names\": [\"getegid\"], \"action\": \"SCMP_ACT_KILL_THREAD\"},"
                         " {\"names\": [\"geteuid\"], \"action\": \"SCMP_ACT_KILL_PROCESS\"},"
                         " {\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
                         "   {\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_NE\"}, {\"index\": 1, \"value\": 2, \"op\": \"SCMP_CMP_LT\"},"
                         "   {\"index\": 2, \"value\": 3, \"op\": \"SCMP_CMP_LE\"}, {\"index\": 3, \"value\": 4, \"op\": \"SCMP_CMP_GE\"},"
                         "   {\"index\": 4, \"value\": 5, \"op\": \"SCMP_CMP_GT\"},"
                         "   {\"index\": 5, \"value\": 9223372036854775807, \"valueTwo\": 6, \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}");
        assert_int_equal(p->flags, SECCOMP_FILTER_FLAG_LOG);
        seccomp_program_free(p);
        seccomp_program_free(NULL);

        /* No syscalls at all. */
        p = compile_text("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}");
        assert_int_equal(p->flags, 0);
        seccomp_program_free(p);
}

/* ---------------------------------------- the default policy, statically */

/* Syscalls of kernels newer than the libseccomp we build with (2.5.4 in
 * Debian 12): listed in default.json so a newer libseccomp allows them, and
 * skipped until then.  Any other unknown name in default.json is a typo. */
static const char *const newer_than_libseccomp[] = {
        "statmount", "listmount", "lsm_get_self_attr", "lsm_list_modules", "mseal",
        "setxattrat", "getxattrat", "listxattrat", "removexattrat", "file_getattr", "file_setattr",
        "open_tree_attr", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
        "cachestat", "fchmodat2", "set_mempolicy_home_node", "futex_waitv", NULL,
};

static bool in_list(const char *const *l, const char *s)
{
        for (; *l; l++)
                if (!strcmp(*l, s))
                        return true;
        return false;
}

static json_t *load_default_json(void)
{
        json_error_t jerr;
        json_t *j = json_load_file(DEFAULT_POLICY, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                fail_msg("%s: %s", DEFAULT_POLICY, jerr.text);
        return j;
}

static void test_default_names_resolve(void **state)
{
        (void) state;
        json_t *pol = load_default_json();
        json_t *calls = json_object_get(pol, "syscalls");
        assert_true(json_is_array(calls));
        size_t i, k;
        json_t *e, *n;
        int typos = 0;
        char warn[4096] = "";
        json_array_foreach(calls, i, e) {
                json_array_foreach(json_object_get(e, "names"), k, n) {
                        const char *name = json_string_value(n);
                        assert_non_null(name);
                        int x86 = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name);
                        int arm = seccomp_syscall_resolve_name_arch(SCMP_ARCH_AARCH64, name);
                        if (x86 >= 0)
                                continue;
                        size_t l = strlen(warn);
                        snprintf(warn + l, sizeof warn - l, " %s", name);
                        if (arm < 0 && x86 == __NR_SCMP_ERROR && !in_list(newer_than_libseccomp, name)) {
                                print_error("syscalls[%zu]: '%s' is unknown to libseccomp on every architecture (typo?)\n",
                                            i, name);
                                typos++;
                        }
                }
        }
        if (warn[0])
                print_message("# default.json names not resolved for x86_64 by this libseccomp:%s\n", warn);
        json_decref(pol);
        assert_int_equal(typos, 0);
}

/* A classic BPF interpreter for seccomp programs, enough for what libseccomp
 * generates.  Fails the test on anything it does not understand. */
static uint32_t bpf_run(const struct seccomp_program *p, const struct seccomp_data *d)
{
        uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = { 0 };
        unsigned steps = 0;
        for (unsigned pc = 0; pc < p->len; pc++) {
                const struct sock_filter *f = &p->filter[pc];
                uint32_t k = f->k;
                assert_true(++steps <= p->len);
                switch (BPF_CLASS(f->code)) {
                case BPF_LD:
                        if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
                                assert_true(k % 4 == 0 && k + 4 <= sizeof *d);
                                memcpy(&A, (const char *) d + k, 4);
                        } else if (f->code == (BPF_LD | BPF_IMM))
                                A = k;
                        else if (f->code == (BPF_LD | BPF_MEM)) {
                                assert_true(k < BPF_MEMWORDS);
                                A = M[k];
                        } else if (f->code == (BPF_LD | BPF_W | BPF_LEN))
                                A = sizeof *d;
                        else
                                fail_msg("bpf: unsupported LD 0x%x at %u", f->code, pc);
                        break;
                case BPF_LDX:
                        if (f->code == (BPF_LDX | BPF_IMM))
                                X = k;
                        else if (f->code == (BPF_LDX | BPF_MEM)) {
                                assert_true(k < BPF_MEMWORDS);
                                X = M[k];
                        } else if (f->code == (BPF_LDX | BPF_W | BPF_LEN))
                                X = sizeof *d;
                        else
                                fail_msg("bpf: unsupported LDX 0x%x at %u", f->code, pc);
                        break;
                case BPF_ST:
                        assert_true(k < BPF_MEMWORDS);
                        M[k] = A;
                        break;
                case BPF_STX:
                        assert_true(k < BPF_MEMWORDS);
                        M[k] = X;
                        break;
                case BPF_ALU: {
                        uint32_t v = BPF_SRC(f->code) == BPF_X ? X : k;
                        switch (BPF_OP(f->code)) {
                        case BPF_ADD: A += v; break;
                        case BPF_SUB: A -= v; break;
                        case BPF_MUL: A *= v; break;
                        case BPF_DIV: assert_true(v != 0); A /= v; break;
                        case BPF_MOD: assert_true(v != 0); A %= v; break;
                        case BPF_OR: A |= v; break;
                        case BPF_AND: A &= v; break;
                        case BPF_XOR: A ^= v; break;
                        case BPF_LSH: A = v < 32 ? A << v : 0; break;
                        case BPF_RSH: A = v < 32 ? A >> v : 0; break;
                        case BPF_NEG: A = -A; break;
                        default: fail_msg("bpf: unsupported ALU 0x%x at %u", f->code, pc);
                        }
                        break;
                }
                case BPF_JMP: {
                        if (BPF_OP(f->code) == BPF_JA) {
                                pc += k;
                                break;
                        }
                        uint32_t v = BPF_SRC(f->code) == BPF_X ? X : k;
                        bool c;
                        switch (BPF_OP(f->code)) {
                        case BPF_JEQ: c = A == v; break;
                        case BPF_JGT: c = A > v; break;
                        case BPF_JGE: c = A >= v; break;
                        case BPF_JSET: c = (A & v) != 0; break;
                        default: fail_msg("bpf: unsupported JMP 0x%x at %u", f->code, pc); c = false;
                        }
                        pc += c ? f->jt : f->jf;
                        break;
                }
                case BPF_RET:
                        return BPF_RVAL(f->code) == BPF_A ? A : k;
                case BPF_MISC:
                        if (BPF_MISCOP(f->code) == BPF_TAX)
                                X = A;
                        else
                                A = X;
                        break;
                default:
                        fail_msg("bpf: unsupported class 0x%x at %u", f->code, pc);
                }
        }
        fail_msg("bpf: program fell off its end");
        return 0;
}

/* The JSON's own verdict for (nr, args): every matching entry must agree. */
struct model_entry {
        json_t *args;           /* borrowed */
        uint32_t action;
        int *nrs;
        size_t n_nrs;
};

struct policy_model {
        json_t *pol;
        uint32_t def;
        struct model_entry *e;
        size_t n;
};

static uint32_t model_action(json_t *obj, const char *akey, const char *ekey)
{
        const char *a = json_string_value(json_object_get(obj, akey));
        json_t *e = json_object_get(obj, ekey);
        uint32_t ev = e ? (uint32_t) json_integer_value(e) : EPERM;
        assert_non_null(a);
        if (!strcmp(a, "SCMP_ACT_ALLOW"))
                return SCMP_ACT_ALLOW;
        if (!strcmp(a, "SCMP_ACT_ERRNO"))
                return SCMP_ACT_ERRNO(ev);
        if (!strcmp(a, "SCMP_ACT_KILL_PROCESS"))
                return SCMP_ACT_KILL_PROCESS;
        if (!strcmp(a, "SCMP_ACT_KILL") || !strcmp(a, "SCMP_ACT_KILL_THREAD"))
                return SCMP_ACT_KILL_THREAD;
        if (!strcmp(a, "SCMP_ACT_TRAP"))
                return SCMP_ACT_TRAP;
        if (!strcmp(a, "SCMP_ACT_LOG"))
                return SCMP_ACT_LOG;
        if (!strcmp(a, "SCMP_ACT_TRACE"))
                return SCMP_ACT_TRACE(ev);
        fail_msg("model: action %s", a);
        return 0;
}

static void model_load(struct policy_model *m, uint32_t arch)
{
        m->pol = load_default_json();
        m->def = model_action(m->pol, "defaultAction", "defaultErrnoRet");
        json_t *calls = json_object_get(m->pol, "syscalls");
        m->n = json_array_size(calls);
        m->e = util_xcalloc(m->n, sizeof *m->e);
        for (size_t i = 0; i < m->n; i++) {
                json_t *e = json_array_get(calls, i);
                json_t *names = json_object_get(e, "names");
                m->e[i].args = json_object_get(e, "args");
                m->e[i].action = model_action(e, "action", "errnoRet");
                m->e[i].nrs = util_xcalloc(json_array_size(names), sizeof(int));
                for (size_t k = 0; k < json_array_size(names); k++) {
                        int nr = seccomp_syscall_resolve_name_arch(arch, json_string_value(json_array_get(names, k)));
                        if (nr >= 0)
                                m->e[i].nrs[m->e[i].n_nrs++] = nr;
                }
        }
}

static void model_free(struct policy_model *m)
{
        for (size_t i = 0; i < m->n; i++)
                free(m->e[i].nrs);
        free(m->e);
        json_decref(m->pol);
}

static bool model_mentions(const struct model_entry *e, int nr)
{
        for (size_t k = 0; k < e->n_nrs; k++)
                if (e->nrs[k] == nr)
                        return true;
        return false;
}

static bool model_cond(json_t *c, const uint64_t *args)
{
        uint64_t idx = (uint64_t) json_integer_value(json_object_get(c, "index"));
        uint64_t v = (uint64_t) json_integer_value(json_object_get(c, "value"));
        uint64_t v2 = (uint64_t) json_integer_value(json_object_get(c, "valueTwo"));
        const char *op = json_string_value(json_object_get(c, "op"));
        uint64_t a = args[idx];
        if (!strcmp(op, "SCMP_CMP_NE")) return a != v;
        if (!strcmp(op, "SCMP_CMP_LT")) return a < v;
        if (!strcmp(op, "SCMP_CMP_LE")) return a <= v;
        if (!strcmp(op, "SCMP_CMP_EQ")) return a == v;
        if (!strcmp(op, "SCMP_CMP_GE")) return a >= v;
        if (!strcmp(op, "SCMP_CMP_GT")) return a > v;
        if (!strcmp(op, "SCMP_CMP_MASKED_EQ")) return (a & v) == v2;
        fail_msg("model: op %s", op);
        return false;
}

/* ents: the entries mentioning the call. */
static uint32_t model_eval(const struct policy_model *m, const size_t *ents, size_t n_ents,
                           const uint64_t *args, const char *name)
{
        bool matched = false;
        uint32_t act = m->def;
        for (size_t j = 0; j < n_ents; j++) {
                const struct model_entry *e = &m->e[ents[j]];
                size_t nc = e->args ? json_array_size(e->args) : 0;
                bool ok = true;
                /* default.json never repeats an index within one entry, so
                 * all conditions must hold */
                for (size_t c = 0; c < nc && ok; c++)
                        ok = model_cond(json_array_get(e->args, c), args);
                if (!ok)
                        continue;
                if (matched && e->action != act)
                        fail_msg("default.json: overlapping rules with different actions for %s (syscalls[%zu])",
                                 name, ents[j]);
                matched = true;
                act = e->action;
        }
        return act;
}

/* Candidate values for argument idx: 0, and around each value the rules
 * compare with, with and without high bits, sign-extended. */
static size_t model_candidates(const struct policy_model *m, const size_t *ents, size_t n_ents, unsigned idx,
                               uint64_t *out, size_t max)
{
        size_t n = 0;
#define ADD_CAND(x)                                                     \
        do {                                                            \
                uint64_t _x = (x);                                      \
                bool _dup = false;                                      \
                for (size_t _i = 0; _i < n && !_dup; _i++)              \
                        _dup = out[_i] == _x;                           \
                if (!_dup) {                                            \
                        assert_true(n < max);                           \
                        out[n++] = _x;                                  \
                }                                                       \
        } while (0)
        ADD_CAND(0);
        ADD_CAND(UINT64_MAX);
        size_t c;
        json_t *cond;
        for (size_t j = 0; j < n_ents; j++) {
                const struct model_entry *e = &m->e[ents[j]];
                json_array_foreach(e->args, c, cond) {
                        if ((unsigned) json_integer_value(json_object_get(cond, "index")) != idx)
                                continue;
                        uint64_t vs[2] = { (uint64_t) json_integer_value(json_object_get(cond, "value")),
                                           (uint64_t) json_integer_value(json_object_get(cond, "valueTwo")) };
                        for (int t = 0; t < 2; t++) {
                                ADD_CAND(vs[t]);
                                ADD_CAND(vs[t] + 1);
                                ADD_CAND(vs[t] - 1);
                                ADD_CAND(vs[t] | (UINT64_C(1) << 32));
                                ADD_CAND(vs[t] | (UINT64_C(1) << 63));
                                ADD_CAND(vs[t] | UINT64_C(0xffffffff00000000));
                                ADD_CAND((uint64_t) (int64_t) (int32_t) vs[t]);
                        }
                }
        }
#undef ADD_CAND
        return n;
}

static void test_default_bpf_matches_json(void **state)
{
        (void) state;
        struct seccomp_program *p = compile_default();
        uint32_t arch = seccomp_arch_native();
        struct policy_model m;
        model_load(&m, arch);
        print_message("# default.json: %u BPF instructions\n", p->len);
        assert_int_equal(m.def, SCMP_ACT_ERRNO(ENOSYS));

        unsigned checked = 0;
        static uint64_t cand[6][512];
        size_t *ents = util_xcalloc(m.n, sizeof(size_t));
        for (int nr = 0; nr < 1024; nr++) {
                char *name = seccomp_syscall_resolve_num_arch(arch, nr);
                const char *nm = name ? name : "(unnamed)";
                size_t n_ents = 0;
                for (size_t i = 0; i < m.n; i++)
                        if (model_mentions(&m.e[i], nr))
                                ents[n_ents++] = i;
                /* which argument indexes have conditions for this call */
                size_t ncand[6];
                unsigned ia[2] = { 0, 0 }, na = 0;
                for (unsigned a = 0; a < 6; a++) {
                        ncand[a] = model_candidates(&m, ents, n_ents, a, cand[a], ARRAY_SIZE(cand[a]));
                        if (ncand[a] > 2) {
                                assert_true(na < 2);
                                ia[na++] = a;
                        }
                }
                /* the product over the (at most 2) conditioned arguments */
                size_t n0 = na > 0 ? ncand[ia[0]] : 1, n1 = na > 1 ? ncand[ia[1]] : 1;
                for (size_t x = 0; x < n0; x++)
                        for (size_t y = 0; y < n1; y++) {
                                struct seccomp_data d = { .nr = nr, .arch = arch };
                                if (na > 0)
                                        d.args[ia[0]] = cand[ia[0]][x];
                                if (na > 1)
                                        d.args[ia[1]] = cand[ia[1]][y];
                                uint64_t args[6];
                                memcpy(args, d.args, sizeof args);
                                uint32_t want = model_eval(&m, ents, n_ents, args, nm);
                                uint32_t got = bpf_run(p, &d);
                                if (got != want)
                                        fail_msg("syscall %d %s args[%u]=0x%llx args[%u]=0x%llx: BPF gives 0x%08x, JSON says 0x%08x",
                                                 nr, nm, ia[0], (unsigned long long) d.args[ia[0]], ia[1],
                                                 (unsigned long long) d.args[ia[1]], got, want);
                                checked++;
                        }
                free(name);
        }
        free(ents);
        print_message("# %u (syscall, arguments) cases agree with default.json\n", checked);

        /* A few verdicts spelled out, independent of the model. */
        struct seccomp_data d = { .arch = arch };
        d.nr = seccomp_syscall_resolve_name("getpid");
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ALLOW);
        d.nr = seccomp_syscall_resolve_name("mount");
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EPERM));
        d.nr = seccomp_syscall_resolve_name("clone3");
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(ENOSYS));
        d.nr = seccomp_syscall_resolve_name("clone");
        d.args[0] = CLONE_NEWUSER | SIGCHLD;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EPERM));
        d.args[0] = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                    CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ALLOW);
        /* the kernel only reads the low 32 bits of clone flags */
        d.args[0] = UINT64_C(0xffffffff00000000) | SIGCHLD;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ALLOW);
        d.args[0] = UINT64_C(0xffffffff00000000) | CLONE_NEWNET;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EPERM));
        d.nr = seccomp_syscall_resolve_name("socket");
        d.args[0] = AF_PACKET;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EAFNOSUPPORT));
        d.args[0] = AF_INET | (UINT64_C(1) << 32);
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EAFNOSUPPORT));
        d.args[0] = AF_NETLINK;
        d.args[2] = NETLINK_AUDIT;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ERRNO(EPROTONOSUPPORT));
        d.args[2] = NETLINK_ROUTE;
        assert_int_equal(bpf_run(p, &d), SCMP_ACT_ALLOW);
        memset(d.args, 0, sizeof d.args);

        /* Other ABIs are killed: 32-bit x86 and x32 on x86_64, arm on aarch64. */
        d.nr = 20;
        d.arch = AUDIT_ARCH_I386;
        if (arch == SCMP_ARCH_X86_64) {
                assert_int_equal(bpf_run(p, &d), SCMP_ACT_KILL_PROCESS);
                d.arch = arch;
                d.nr = 0x40000000 | seccomp_syscall_resolve_name("getpid");
                assert_int_equal(bpf_run(p, &d), SCMP_ACT_KILL_PROCESS);
        } else if (arch == SCMP_ARCH_AARCH64) {
                d.arch = AUDIT_ARCH_ARM;
                assert_int_equal(bpf_run(p, &d), SCMP_ACT_KILL_PROCESS);
        }

        model_free(&m);
        seccomp_program_free(p);
}

/* ------------------------------------------------- the kernel, for real */

static void *thread_noop(void *arg)
{
        return arg;
}

static void child_default_checks(void *arg)
{
        const struct seccomp_program *p = arg;
        child_enter(p);

        /* ordinary things work */
        CHECK(syscall(SYS_getpid) == getpid());
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(write(fd, "x", 1) == 1);
        close(fd);
        CHECK_OK(unshare(CLONE_FILES | CLONE_FS));
        CHECK(personality(0xffffffff) >= 0);
        CHECK(personality(PER_LINUX | ADDR_NO_RANDOMIZE) >= 0);
        CHECK_ERRNO(personality(PER_LINUX | READ_IMPLIES_EXEC), ENOSYS);
        CHECK_ERRNO(chroot("/nonexistent-pbox-test"), ENOENT);      /* allowed, reaches the kernel */

        /* the mount API and friends */
        CHECK_ERRNO(mount("none", "/nonexistent-pbox-test", "tmpfs", 0, NULL), EPERM);
        CHECK_ERRNO(umount2("/nonexistent-pbox-test", MNT_DETACH), EPERM);
        CHECK_ERRNO(syscall(SYS_pivot_root, "/nonexistent-pbox-a", "/nonexistent-pbox-b"), EPERM);
        CHECK_ERRNO(syscall(SYS_fsopen, "tmpfs", 0), EPERM);
        CHECK_ERRNO(syscall(SYS_open_tree, AT_FDCWD, "/", 0), EPERM);
        CHECK_ERRNO(syscall(SYS_move_mount, -1, "", -1, "", 0), EPERM);
        CHECK_ERRNO(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0), EPERM);

        /* namespaces */
        CHECK_ERRNO(unshare(CLONE_NEWUSER), EPERM);
        CHECK_ERRNO(unshare(CLONE_NEWNS | CLONE_NEWPID), EPERM);
        CHECK_ERRNO(unshare(CLONE_NEWNET), EPERM);
        CHECK_ERRNO(unshare(CLONE_NEWTIME), EPERM);
        long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
        if (c == 0)
                _exit(0);
        CHECK(c == -1 && errno == EPERM);
        c = syscall(SYS_clone, CLONE_NEWNET | CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
        if (c == 0)
                _exit(0);
        CHECK(c == -1 && errno == EPERM);
        fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK_ERRNO(setns(fd, CLONE_NEWUTS), EPERM);
        close(fd);
        struct clone_args ca = { .exit_signal = SIGCHLD };
        c = syscall(SYS_clone3, &ca, sizeof ca);
        if (c == 0)
                _exit(0);
        CHECK(c == -1 && errno == ENOSYS);

        /* the kernel's own knobs */
        struct {
                unsigned int handle_bytes;
                int handle_type;
                unsigned char f_handle[128];
        } fh = { .handle_bytes = 128 };
        int mount_id;
        CHECK_ERRNO(syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY), EPERM);
        CHECK_ERRNO(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &fh, &mount_id, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_add_key, "user", "pbox-test", "x", 1, -2), EPERM);
        CHECK_ERRNO(syscall(SYS_request_key, "user", "pbox-test", NULL, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_bpf, 0, NULL, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_userfaultfd, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM);
        CHECK_ERRNO(klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);       /* bad magic: EINVAL if it got through */
        CHECK_ERRNO(syscall(SYS_swapon, "/nonexistent-pbox-test", 0), EPERM);
        CHECK_ERRNO(acct("/nonexistent-pbox-test/x"), EPERM);
        CHECK_ERRNO(syscall(SYS_finit_module, -1, "", 0), EPERM);
        CHECK_ERRNO(syscall(SYS_delete_module, "pbox_no_such_module", O_NONBLOCK), EPERM);
        CHECK_ERRNO(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0), EPERM);
        struct timespec ts = { 0, 0 };
        CHECK_ERRNO(clock_settime(CLOCK_MONOTONIC, &ts), EPERM);
        CHECK_ERRNO(syscall(SYS_settimeofday, NULL, NULL), EPERM);
        struct timex tx = { .modes = 0 };
        CHECK_ERRNO(adjtimex(&tx), EPERM);
        CHECK_ERRNO(syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx), EPERM);
        CHECK_ERRNO(syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0), EPERM);
#ifdef SYS_iopl
        CHECK_ERRNO(syscall(SYS_iopl, 0), EPERM);
        CHECK_ERRNO(syscall(SYS_ioperm, 0, 0, 0), EPERM);
#endif
        CHECK_ERRNO(syscall(SYS_io_uring_setup, 1, NULL), ENOSYS);
        CHECK_ERRNO(syscall(1000), ENOSYS);      /* no such system call */

        /* sockets */
        int s;
        CHECK((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
        close(s);
        CHECK((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
        close(s);
        CHECK((s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP)) >= 0);
        close(s);
        CHECK((s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) >= 0);
        close(s);
        CHECK_ERRNO(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT), EPROTONOSUPPORT);
        CHECK_ERRNO(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), EAFNOSUPPORT);
        CHECK_ERRNO(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0), EAFNOSUPPORT);
        CHECK_ERRNO(socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0), EAFNOSUPPORT);
        CHECK_ERRNO(socket(AF_INET, SOCK_STREAM, 132 /* IPPROTO_SCTP */), ENOSYS);
        int sv[2];
        CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        close(sv[0]);
        close(sv[1]);
        CHECK_ERRNO(socketpair(AF_INET, SOCK_STREAM, 0, sv), EAFNOSUPPORT);

        /* processes: fork + execve, threads (glibc tries clone3 first, then
         * clone); popen/posix_spawn are covered by the C program below */
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char *const argv[] = { (char *) "true", NULL };
                execve("/bin/true", argv, environ);
                _exit(127);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, thread_noop, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
}

static void child_default_checks_quiet(void *arg)
{
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0)
                dup2(null, 2);
        child_default_checks(arg);
}

static void test_default_kernel(void **state)
{
        (void) state;
        struct seccomp_program *p = compile_default();
        assert_exit_ok(run_child(child_default_checks, p));
        seccomp_program_free(p);

        /* The same checks without the filter (an allow-all program) must
         * fail: they test the filter, not the machine. */
        p = compile_text("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}");
        int st = run_child(child_default_checks_quiet, p);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 100);
        seccomp_program_free(p);
}

#ifdef __x86_64__
static void child_x32(void *arg)
{
        child_enter(arg);
        syscall(0x40000000 | SYS_getpid);       /* x32 ABI: must be killed */
        _exit(0);
}

static void child_i386_plain(void *arg)
{
        (void) arg;
        /* int $0x80 enters the 32-bit ABI: getpid is 20 there */
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
        (void) ret;
        _exit(0);
}

static void child_i386(void *arg)
{
        child_enter(arg);
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
        (void) ret;
        _exit(0);
}
#endif

static void test_other_abis_killed(void **state)
{
        (void) state;
#ifdef __x86_64__
        struct seccomp_program *p = compile_default();
        assert_sigsys(run_child(child_x32, p));
        assert_sigsys(run_child(child_i386, p));
        seccomp_program_free(p);
        /* Listing SCMP_ARCH_X86 lets 32-bit calls in, if the kernel has
         * IA32 emulation at all (a child without a filter tells). */
        if (!WIFEXITED(run_child(child_i386_plain, NULL))) {
                print_message("# kernel without IA32 emulation: 32-bit allow case skipped\n");
                return;
        }
        p = compile_text("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\"]}");
        assert_exit_ok(run_child(child_i386, p));
        seccomp_program_free(p);
#else
        skip();
#endif
}

static void child_getppid(void *arg)
{
        child_enter(arg);
        syscall(SYS_getppid);
        syscall(SYS_exit_group, 0);
}

static void child_getpid_only(void *arg)
{
        child_enter(arg);
        if (syscall(SYS_getpid) <= 0)
                syscall(SYS_exit_group, 3);
        syscall(SYS_exit_group, 0);
}

static void test_kill_actions(void **state)
{
        (void) state;
        const char *kp = "{\"defaultAction\": \"SCMP_ACT_KILL_PROCESS\", \"syscalls\": ["
                         "{\"names\": [\"getpid\", \"exit_group\", \"exit\"], \"action\": \"SCMP_ACT_ALLOW\"}]}";
        struct seccomp_program *p = compile_text(kp);
        assert_sigsys(run_child(child_getppid, p));
        assert_exit_ok(run_child(child_getpid_only, p));
        seccomp_program_free(p);

        const char *actions[] = { "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP" };
        for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
                char buf[256];
                snprintf(buf, sizeof buf,
                         "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getppid\"], \"action\": \"%s\"}]}",
                         actions[i]);
                p = compile_text(buf);
                assert_sigsys(run_child(child_getppid, p));
                assert_exit_ok(run_child(child_getpid_only, p));
                seccomp_program_free(p);
        }
}

static void child_small_policy(void *arg)
{
        child_enter(arg);
        CHECK_ERRNO(syscall(SYS_getppid), 42);
        CHECK(syscall(SYS_getpgid, 0) >= 0);
        CHECK_ERRNO(syscall(SYS_getpgid, 12345), 77);
        CHECK_ERRNO(syscall(SYS_getpgid, 0x100003039LL), ESRCH);      /* 12345 + high bit: no match, real call */
        /* two indexes: AND */
        CHECK_ERRNO(syscall(SYS_getpriority, PRIO_PROCESS, 999), 78);
        CHECK(syscall(SYS_getpriority, PRIO_PROCESS, 0) >= 0);
        CHECK_ERRNO(syscall(SYS_getpriority, PRIO_PGRP, 999), ESRCH);
        /* same index twice: either matches */
        CHECK_ERRNO(syscall(SYS_getsid, 111), 79);
        CHECK_ERRNO(syscall(SYS_getsid, 222), 79);
        CHECK(syscall(SYS_getsid, 0) >= 0);
        /* masked: (arg & 0xf0) == 0x30 */
        CHECK_ERRNO(syscall(SYS_umask, 0x35), 80);
        CHECK_OK(syscall(SYS_umask, 022));
        /* LOG and TRACE (no tracer: ENOSYS) */
        CHECK(syscall(SYS_getuid) >= 0);
        CHECK_ERRNO(syscall(SYS_getgid), ENOSYS);
        /* ERRNO without errnoRet is EPERM; errnoRet 0 fakes success */
        CHECK_ERRNO(syscall(SYS_getegid), EPERM);
        CHECK(syscall(SYS_kill, getpid(), SIGKILL) == 0);
}

static void test_small_policy_kernel(void **state)
{
        (void) state;
        struct seccomp_program *p = compile_text(
                "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                " {\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 42},"
                " {\"names\": [\"getpgid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 77,"
                "  \"args\": [{\"index\": 0, \"value\": 12345, \"op\": \"SCMP_CMP_EQ\"}]},"
                " {\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 78,"
                "  \"args\": [{\"index\": 0, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 1, \"value\": 999, \"op\": \"SCMP_CMP_EQ\"}]},"
                " {\"names\": [\"getsid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 79,"
                "  \"args\": [{\"index\": 0, \"value\": 111, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 0, \"value\": 222, \"op\": \"SCMP_CMP_EQ\"}]},"
                " {\"names\": [\"umask\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 80,"
                "  \"args\": [{\"index\": 0, \"value\": 240, \"valueTwo\": 48, \"op\": \"SCMP_CMP_MASKED_EQ\"}]},"
                " {\"names\": [\"getuid\"], \"action\": \"SCMP_ACT_LOG\"},"
                " {\"names\": [\"getgid\"], \"action\": \"SCMP_ACT_TRACE\"},"
                " {\"names\": [\"getegid\"], \"action\": \"SCMP_ACT_ERRNO\"},"
                " {\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 0}"
                "]}");
        assert_exit_ok(run_child(child_small_policy, p));
        seccomp_program_free(p);
}

static void child_load_without_nnp(void *arg)
{
        /* Not root or no CAP_SYS_ADMIN: the kernel insists on no_new_privs.
         * Root: loading works; either way, the program is sane. */
        const struct seccomp_program *p = arg;
        int r = seccomp_program_load(p);
        if (geteuid() != 0)
                CHECK(r == -EACCES);
        else
                CHECK(r == 0);
        CHECK(seccomp_program_load(NULL) == -EINVAL);
}

static void test_load_errors(void **state)
{
        (void) state;
        struct seccomp_program *p = compile_text("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}");
        assert_exit_ok(run_child(child_load_without_nnp, p));
        seccomp_program_free(p);
}

/* ---------------------------------- real programs under the default policy */

struct prog_run {
        const struct seccomp_program *prog;
        const char *const *argv;
        int out_fd;
};

static void child_exec_prog(void *arg)
{
        struct prog_run *r = arg;
        if (dup2(r->out_fd, 1) < 0)
                _exit(126);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
                dup2(null, 0);
        alarm(180);
        child_enter(r->prog);
        execve(r->argv[0], (char *const *) r->argv, environ);
        _exit(127);
}

/* Runs argv under prog; returns false (skip) when argv[0] is not there. */
static bool run_prog(const struct seccomp_program *prog, const char *const *argv, const char *expect)
{
        if (access(argv[0], X_OK) < 0) {
                print_message("# skip %s: not installed\n", argv[0]);
                return false;
        }
        int pfd[2];
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        struct prog_run r = { prog, argv, pfd[1] };
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                child_no_core();
                child_exec_prog(&r);
        }
        close(pfd[1]);
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(util_read_all(pfd[0], 1 << 20, &out, &len), 0);
        close(pfd[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0)
                assert_int_equal(errno, EINTR);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(out, expect))
                fail_msg("%s under default.json: %s %d, stdout:\n%s", argv[0], WIFEXITED(st) ? "exit" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), out);
        print_message("# ok: %s\n", argv[0]);
        free(out);
        return true;
}

static const char c_program[] =
        "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/wait.h>\n"
        "static void *f(void *a) { return a; }\n"
        "int main(void) {\n"
        "  pthread_t t; if (pthread_create(&t, 0, f, 0) || pthread_join(t, 0)) return 1;\n"
        "  pid_t p = fork(); if (p == 0) _exit(7);\n"
        "  int st; waitpid(p, &st, 0); if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) return 2;\n"
        "  FILE *o = popen(\"echo popen\", \"r\"); char b[32]; if (!o || !fgets(b, sizeof b, o)) return 3; pclose(o);\n"
        "  puts(\"cc-ok\"); return 0;\n}\n";

static const char java_program[] =
        "public class Hi { public static void main(String[] a) throws Exception {\n"
        "  Thread t = new Thread(() -> {}); t.start(); t.join();\n"
        "  Process p = new ProcessBuilder(\"/bin/true\").start(); if (p.waitFor() != 0) System.exit(2);\n"
        "  System.out.println(\"java-ok \" + Runtime.getRuntime().availableProcessors()); } }\n";

static const char py_program[] =
        "import os, subprocess, threading, socket, tempfile, multiprocessing, hashlib, ssl, json\n"
        "r = []\n"
        "t = threading.Thread(target=lambda: r.append(1)); t.start(); t.join()\n"
        "out = subprocess.run(['/bin/echo', 'sub'], capture_output=True, text=True, check=True).stdout.strip()\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(('127.0.0.1', 0)); s.listen(); s.close()\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    open(os.path.join(d, 'f'), 'w').write('x')\n"
        "with multiprocessing.Pool(2) as p:\n"
        "    sq = p.map(abs, [-1, -2])\n"
        "print('py-ok', r, out, sq, hashlib.sha256(b'x').hexdigest()[:8])\n";

static const char node_program[] =
        "const cp = require('child_process'); const { Worker } = require('worker_threads');\n"
        "const fs = require('fs'); const os = require('os'); const path = require('path');\n"
        "const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pbox-node-'));\n"
        "fs.writeFileSync(path.join(d, 'f'), 'x'); fs.rmSync(d, { recursive: true });\n"
        "const w = new Worker('require(\"worker_threads\").parentPort.postMessage(1)', { eval: true });\n"
        "w.on('message', () => { console.log('node-ok', cp.execSync('echo sub').toString().trim()); w.terminate(); });\n";

static void test_programs_under_default(void **state)
{
        (void) state;
        struct seccomp_program *p = compile_default();
        char dir[] = "/tmp/pbox-test-progs-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *c_src = util_xasprintf("%s/t.c", dir);
        _cleanup_free_ char *java_src = util_xasprintf("%s/Hi.java", dir);
        FILE *f = fopen(c_src, "we");
        assert_non_null(f);
        fputs(c_program, f);
        fclose(f);
        f = fopen(java_src, "we");
        assert_non_null(f);
        fputs(java_program, f);
        fclose(f);

        const char *sh[] = { "/bin/sh", "-c", "echo hi | cat; x=$(ls / | wc -l); test $x -gt 0 && echo sh-ok", NULL };
        assert_true(run_prog(p, sh, "sh-ok"));
        const char *bb[] = { "/bin/busybox", "sh", "-c",
                             "echo hi | cat; busybox ls -la / >/dev/null; busybox ps >/dev/null; "
                             "busybox find /etc -name passwd >/dev/null 2>&1; busybox sort /etc/passwd | busybox md5sum >/dev/null; "
                             "echo bb-ok", NULL };
        run_prog(p, bb, "bb-ok");
        const char *py[] = { "/usr/bin/python3", "-c", py_program, NULL };
        run_prog(p, py, "py-ok [1] sub [1, 2]");
        _cleanup_free_ char *cc_cmd = util_xasprintf("cd %s && gcc -O2 -pthread -o t t.c && ./t", dir);
        const char *cc[] = { "/bin/sh", "-c", cc_cmd, NULL };
        if (access("/usr/bin/gcc", X_OK) == 0)
                run_prog(p, cc, "cc-ok");
        _cleanup_free_ char *clang_cmd = util_xasprintf("cd %s && clang -O2 -pthread -o t2 t.c && ./t2", dir);
        const char *clang[] = { "/bin/sh", "-c", clang_cmd, NULL };
        if (access("/usr/bin/clang", X_OK) == 0)
                run_prog(p, clang, "cc-ok");
        const char *node[] = { "/usr/bin/node", "-e", node_program, NULL };
        run_prog(p, node, "node-ok sub");
        const char *java[] = { "/usr/bin/java", java_src, NULL };
        run_prog(p, java, "java-ok");
        /* Go binaries (skopeo, umoci are written in Go) */
        const char *go1[] = { "/usr/bin/skopeo", "--version", NULL };
        run_prog(p, go1, "skopeo version");
        const char *go2[] = { "/usr/bin/umoci", "--version", NULL };
        run_prog(p, go2, "umoci version");

        assert_int_equal(util_rm_rf_at(AT_FDCWD, dir, NULL), 0);
        seccomp_program_free(p);
}

/* ------------------------------------------------------------------ caps */

#define DEFAULT_KEEP                                                                            \
        ((UINT64_C(1) << CAP_CHOWN) | (UINT64_C(1) << CAP_DAC_OVERRIDE) | (UINT64_C(1) << CAP_FOWNER) | \
         (UINT64_C(1) << CAP_FSETID) | (UINT64_C(1) << CAP_KILL) | (UINT64_C(1) << CAP_SETGID) |  \
         (UINT64_C(1) << CAP_SETUID) | (UINT64_C(1) << CAP_SETPCAP) |                           \
         (UINT64_C(1) << CAP_NET_BIND_SERVICE) | (UINT64_C(1) << CAP_SYS_CHROOT))

static void test_caps_parse(void **state)
{
        (void) state;
        struct pbox_error err = PBOX_ERROR_INIT;
        struct caps_plan plan;
        assert_int_equal(caps_plan_from_names(caps_default_names, &plan, &err), 0);
        assert_int_equal(plan.keep, DEFAULT_KEEP);
        assert_true(plan.last_cap >= CAP_SYS_CHROOT && plan.last_cap <= 63);
        assert_int_equal(plan.header.version, _LINUX_CAPABILITY_VERSION_3);
        assert_int_equal(plan.header.pid, 0);
        assert_int_equal(plan.data[0].effective, (uint32_t) DEFAULT_KEEP);
        assert_int_equal(plan.data[0].permitted, (uint32_t) DEFAULT_KEEP);
        assert_int_equal(plan.data[0].inheritable, 0);
        assert_int_equal(plan.data[1].effective, 0);
        assert_int_equal(plan.data[1].permitted, 0);
        assert_int_equal(plan.data[1].inheritable, 0);

        char **names = caps_plan_names(&plan);
        const char *want[] = { "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                               "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT" };
        assert_int_equal(util_strv_len(names), ARRAY_SIZE(want));
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                assert_string_equal(names[i], want[i]);
        util_strv_free(names);

        /* spellings */
        const char *spell[] = { "chown", "cap_sys_chroot", "Cap_Kill", "NET_BIND_SERVICE", "CAP_CHOWN", NULL };
        assert_int_equal(caps_plan_from_names(spell, &plan, &err), 0);
        assert_int_equal(plan.keep, (UINT64_C(1) << CAP_CHOWN) | (UINT64_C(1) << CAP_SYS_CHROOT) |
                                            (UINT64_C(1) << CAP_KILL) | (UINT64_C(1) << CAP_NET_BIND_SERVICE));
        /* above 31: second data word */
        const char *high[] = { "CAP_SYSLOG", NULL };
        assert_int_equal(caps_plan_from_names(high, &plan, &err), 0);
        assert_int_equal(plan.data[0].permitted, 0);
        assert_int_equal(plan.data[1].permitted, 1U << (CAP_SYSLOG - 32));
        names = caps_plan_names(&plan);
        assert_string_equal(names[0], "CAP_SYSLOG");
        assert_null(names[1]);
        util_strv_free(names);

        /* nothing */
        const char *none[] = { NULL };
        assert_int_equal(caps_plan_from_names(none, &plan, &err), 0);
        assert_int_equal(plan.keep, 0);
        assert_int_equal(caps_plan_from_names(NULL, &plan, &err), 0);
        names = caps_plan_names(&plan);
        assert_null(names[0]);
        util_strv_free(names);

        /* errors leave *ret alone */
        const char *bad[][2] = { { "CAP_BOGUS", NULL }, { "12", NULL }, { "", NULL }, { "cap_chown;x", NULL },
                                 { "cap_", NULL }, { "all", NULL }, { "CAP_CHOWN ", NULL } };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct caps_plan untouched = { .keep = 0x1234 };
                pbox_error_clear(&err);
                assert_int_equal(caps_plan_from_names(bad[i], &untouched, &err), -EINVAL);
                assert_int_equal(untouched.keep, 0x1234);
                assert_int_equal(err.code, EINVAL);
        }
        const char *long_name[] = { "CAP_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL };
        assert_int_equal(caps_plan_from_names(long_name, &plan, &err), -EINVAL);
}

static uint64_t status_hex(const char *status, const char *key)
{
        const char *p = strstr(status, key);
        if (!p)
                return UINT64_MAX;
        return strtoull(p + strlen(key), NULL, 16);
}

struct caps_child {
        struct caps_plan plan;
        bool userns;
};

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(write(fd, text, strlen(text)) == (ssize_t) strlen(text));
        close(fd);
}

static void child_caps(void *arg)
{
        struct caps_child *c = arg;
        if (c->userns) {
                CHECK_OK(unshare(CLONE_NEWUSER));
                write_file("/proc/self/setgroups", "deny");
                write_file("/proc/self/uid_map", "0 0 1");
                write_file("/proc/self/gid_map", "0 0 1");
        }
        /* Something in the ambient and inheritable sets, so that clearing them is seen. */
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        CHECK_OK(syscall(SYS_capget, &h, d));
        d[0].inheritable |= 1U << CAP_CHOWN;
        CHECK_OK(syscall(SYS_capset, &h, d));
        CHECK_OK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0));

        int r = caps_plan_apply(&c->plan);
        if (r < 0)
                child_fail(__LINE__, "caps_plan_apply", r, -r, 0);

        char buf[8192];
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        CHECK(n > 0);
        buf[n] = 0;
        close(fd);
        CHECK(status_hex(buf, "CapInh:\t") == 0);
        CHECK(status_hex(buf, "CapPrm:\t") == c->plan.keep);
        CHECK(status_hex(buf, "CapEff:\t") == c->plan.keep);
        CHECK(status_hex(buf, "CapBnd:\t") == c->plan.keep);
        CHECK(status_hex(buf, "CapAmb:\t") == 0);

        /* After execve as uid 0 the kernel gives root the bounding set:
         * the plan again, nothing more. */
        char script[512];
        snprintf(script, sizeof script,
                 "grep -q '^CapEff:[[:space:]]*%016llx$' /proc/self/status && "
                 "grep -q '^CapPrm:[[:space:]]*%016llx$' /proc/self/status && "
                 "grep -q '^CapBnd:[[:space:]]*%016llx$' /proc/self/status && "
                 "grep -q '^CapInh:[[:space:]]*0000000000000000$' /proc/self/status && "
                 "grep -q '^CapAmb:[[:space:]]*0000000000000000$' /proc/self/status",
                 (unsigned long long) c->plan.keep, (unsigned long long) c->plan.keep,
                 (unsigned long long) c->plan.keep);
        char *const argv[] = { (char *) "sh", (char *) "-c", script, NULL };
        execve("/bin/sh", argv, environ);
        _exit(127);
}

static void test_caps_apply(void **state)
{
        (void) state;
        if (geteuid() != 0) {
                print_message("# skip: applying capability plans needs root\n");
                skip();
        }
        struct pbox_error err = PBOX_ERROR_INIT;
        struct caps_child c = { .userns = false };
        assert_int_equal(caps_plan_from_names(caps_default_names, &c.plan, &err), 0);
        assert_exit_ok(run_child(child_caps, &c));

        /* Inside a user namespace, as the sandbox does it. */
        c.userns = true;
        assert_exit_ok(run_child(child_caps, &c));

        /* A different set, and the empty set. */
        const char *few[] = { "CAP_KILL", "CAP_SETPCAP", NULL };
        assert_int_equal(caps_plan_from_names(few, &c.plan, &err), 0);
        assert_exit_ok(run_child(child_caps, &c));
        const char *none[] = { NULL };
        assert_int_equal(caps_plan_from_names(none, &c.plan, &err), 0);
        assert_exit_ok(run_child(child_caps, &c));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_file_errors),
                cmocka_unit_test(test_accepts),
                cmocka_unit_test(test_default_names_resolve),
                cmocka_unit_test(test_default_bpf_matches_json),
                cmocka_unit_test(test_default_kernel),
                cmocka_unit_test(test_other_abis_killed),
                cmocka_unit_test(test_kill_actions),
                cmocka_unit_test(test_small_policy_kernel),
                cmocka_unit_test(test_load_errors),
                cmocka_unit_test(test_programs_under_default),
                cmocka_unit_test(test_caps_parse),
                cmocka_unit_test(test_caps_apply),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
