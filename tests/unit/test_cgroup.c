/* test_cgroup.c — unit tests of cgroup.c: the mountinfo, /proc/self/cgroup,
 * keyed-file, io.stat and controller-list parsers, the limit files' formats
 * and error messages (written into a plain directory standing in for a
 * cgroup), usage reading (refused forks summed over a subtree), and
 * cgroup_block_device_of on this host. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cgroup.h"
#include "util.h"

static void test_mountinfo(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        char *mnt = NULL;
        const char *hybrid =
                "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(hybrid, &mnt, &err), 0);
        assert_string_equal(mnt, "/sys/fs/cgroup/unified");
        free(mnt);
        /* no trailing newline, several optional fields */
        const char *pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate";
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(pure, &mnt, &err), 0);
        assert_string_equal(mnt, "/sys/fs/cgroup");
        free(mnt);
        /* the first cgroup2 mount of the hierarchy root wins */
        const char *two = "30 23 0:26 /sub /mnt/a rw - cgroup2 cgroup2 rw\n"
                          "31 23 0:26 / /mnt/b rw - cgroup2 cgroup2 rw\n"
                          "32 23 0:26 / /mnt/c rw - cgroup2 cgroup2 rw\n";
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(two, &mnt, &err), 0);
        assert_string_equal(mnt, "/mnt/b");
        free(mnt);
        mnt = NULL;
        /* a cgroup2 bind-mounted from a subtree is not the hierarchy root */
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("30 23 0:26 /foo /mnt/cg rw - cgroup2 cgroup2 rw\n", &mnt, &err),
                         -ENOENT);
        /* "cgroup2" as a source name or a v1 "cgroup" type does not count */
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("30 23 0:26 / /x rw - tmpfs cgroup2 rw\n", &mnt, &err), -ENOENT);
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("30 23 0:26 / /x rw - cgroup cgroup rw\n", &mnt, &err), -ENOENT);
        /* escaped mount points are refused, not mis-parsed */
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("30 23 0:26 / /a\\040b rw - cgroup2 cgroup2 rw\n", &mnt, &err),
                         -EINVAL);
        /* garbage */
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("", &mnt, &err), -ENOENT);
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(" - cgroup2\n\n\n", &mnt, &err), -ENOENT);
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("1 2 - cgroup2 x y\n", &mnt, &err), -ENOENT);
        assert_null(mnt);
}

static void test_proc_cgroup(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        char *path = NULL;
        assert_int_equal(cgroup_parse_proc_cgroup("4:memory:/x\n0::/system.slice/pboxd.service\n", &path, &err), 0);
        assert_string_equal(path, "/system.slice/pboxd.service");
        free(path);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/\n", &path, &err), 0);
        assert_string_equal(path, "/");
        free(path);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/a/b", &path, &err), 0);      /* no newline */
        assert_string_equal(path, "/a/b");
        free(path);
        path = NULL;
        assert_int_equal(cgroup_parse_proc_cgroup("1:name=systemd:/\n", &path, &err), -ENOENT);
        assert_int_equal(cgroup_parse_proc_cgroup("", &path, &err), -ENOENT);
        assert_int_equal(cgroup_parse_proc_cgroup("0::relative\n", &path, &err), -ENOENT);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/a/../b\n", &path, &err), -EINVAL);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/gone (deleted)\n", &path, &err), -EINVAL);
        assert_null(path);
}

static void test_keyed(void **state)
{
        const char *events = "low 0\nhigh 12\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n";
        int64_t v = 77;
        assert_int_equal(cgroup_parse_keyed(events, "oom", &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(cgroup_parse_keyed(events, "oom_kill", &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(cgroup_parse_keyed(events, "high", &v), 0);
        assert_int_equal(v, 12);
        assert_int_equal(cgroup_parse_keyed(events, "low", &v), 0);        /* first line */
        assert_int_equal(v, 0);
        /* missing keys, prefixes of keys, keys inside values: -ENOENT, *ret untouched */
        v = 77;
        assert_int_equal(cgroup_parse_keyed(events, "oom_", &v), -ENOENT);
        assert_int_equal(cgroup_parse_keyed(events, "kill", &v), -ENOENT);
        assert_int_equal(cgroup_parse_keyed(events, "ma", &v), -ENOENT);
        assert_int_equal(cgroup_parse_keyed("", "oom", &v), -ENOENT);
        assert_int_equal(cgroup_parse_keyed("oom\n", "oom", &v), -ENOENT);
        assert_int_equal(v, 77);
        /* cpu.stat, no trailing newline */
        const char *cpu = "usage_usec 123456789\nuser_usec 100\nsystem_usec 23\nnr_periods 0\nthrottled_usec 5";
        assert_int_equal(cgroup_parse_keyed(cpu, "usage_usec", &v), 0);
        assert_int_equal(v, 123456789);
        assert_int_equal(cgroup_parse_keyed(cpu, "throttled_usec", &v), 0);
        assert_int_equal(v, 5);
        /* huge numbers: INT64_MAX parses, anything above is -ERANGE */
        assert_int_equal(cgroup_parse_keyed("a 9223372036854775807\n", "a", &v), 0);
        assert_true(v == INT64_MAX);
        v = 77;
        assert_int_equal(cgroup_parse_keyed("a 9223372036854775808\n", "a", &v), -ERANGE);
        assert_int_equal(cgroup_parse_keyed("a 18446744073709551615\n", "a", &v), -ERANGE);
        assert_int_equal(cgroup_parse_keyed("a 999999999999999999999999999\n", "a", &v), -ERANGE);
        assert_int_equal(v, 77);
        /* "max" */
        assert_int_equal(cgroup_parse_keyed("a max\n", "a", &v), 0);
        assert_true(v == CGROUP_UNLIMITED);
        /* garbage values */
        v = 77;
        assert_int_equal(cgroup_parse_keyed("a -1\n", "a", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("a 12x\n", "a", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("a 1 2\n", "a", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("a \n", "a", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("a 0x10\n", "a", &v), -EINVAL);
        assert_int_equal(v, 77);
        assert_int_equal(cgroup_parse_keyed("a 42  \r\n", "a", &v), 0);     /* trailing blanks */
        assert_int_equal(v, 42);
        assert_int_equal(cgroup_parse_keyed(NULL, "a", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("a 1", "", &v), -EINVAL);
}

static void test_io_stat(void **state)
{
        const char *stat =
                "254:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n"
                "7:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
                "8:16 rbytes=3 wbytes=8192 rios=1 wios=2 dbytes=7 dios=1\n";
        assert_int_equal(cgroup_parse_io_stat(stat, "rbytes"), 1048576 + 512 + 3);
        assert_int_equal(cgroup_parse_io_stat(stat, "wbytes"), 4096 + 8192);
        assert_int_equal(cgroup_parse_io_stat(stat, "rios"), 12);
        assert_int_equal(cgroup_parse_io_stat(stat, "dbytes"), 7);
        assert_int_equal(cgroup_parse_io_stat(stat, "bytes"), 0);          /* no suffix match */
        assert_int_equal(cgroup_parse_io_stat(stat, "rbyte"), 0);
        assert_int_equal(cgroup_parse_io_stat("", "rbytes"), 0);           /* no I/O yet */
        /* no trailing newline; garbage fields are skipped, not summed */
        assert_int_equal(cgroup_parse_io_stat("8:0 rbytes=5 wbytes=x\n8:1 rbytes=zz wbytes=3 rbytes=2", "rbytes"), 7);
        assert_int_equal(cgroup_parse_io_stat("8:0 rbytes=5 wbytes=x\n8:1 rbytes=zz wbytes=3", "wbytes"), 3);
        /* the device column is not a field */
        assert_int_equal(cgroup_parse_io_stat("rbytes=9 rbytes=1\n", "rbytes"), 1);
        /* saturates instead of wrapping */
        assert_true(cgroup_parse_io_stat("1:0 rbytes=9223372036854775807\n2:0 rbytes=5\n", "rbytes") == INT64_MAX);
        assert_int_equal(cgroup_parse_io_stat("1:0 rbytes=99999999999999999999999\n2:0 rbytes=5\n", "rbytes"), 5);
        assert_int_equal(cgroup_parse_io_stat("1:0 rbytes=max\n2:0 rbytes=5\n", "rbytes"), 5);
        assert_int_equal(cgroup_parse_io_stat(NULL, "rbytes"), -1);
}

static void test_controllers(void **state)
{
        assert_string_equal(cgroup_controller_name(CGROUP_CTRL_CPU), "cpu");
        assert_string_equal(cgroup_controller_name(CGROUP_CTRL_MEMORY), "memory");
        assert_string_equal(cgroup_controller_name(CGROUP_CTRL_PIDS), "pids");
        assert_string_equal(cgroup_controller_name(CGROUP_CTRL_IO), "io");
        assert_null(cgroup_controller_name(0));
        assert_null(cgroup_controller_name(CGROUP_CTRL_CPU | CGROUP_CTRL_IO));
        assert_null(cgroup_controller_name(1u << 7));

        assert_int_equal(cgroup_parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"), CGROUP_CTRL_ALL);
        assert_int_equal(cgroup_parse_controllers("hugetlb\n"), 0);
        assert_int_equal(cgroup_parse_controllers(""), 0);
        assert_int_equal(cgroup_parse_controllers(NULL), 0);
        assert_int_equal(cgroup_parse_controllers("memory pids"), CGROUP_CTRL_MEMORY | CGROUP_CTRL_PIDS);
        /* cpuset is not cpu, iox is not io, no prefix matches */
        assert_int_equal(cgroup_parse_controllers("cpuset iox memoryx pid mem"), 0);
        assert_int_equal(cgroup_parse_controllers("  io\t\tcpu  \n"), CGROUP_CTRL_IO | CGROUP_CTRL_CPU);
        /* subtree_control lists the same way */
        assert_int_equal(cgroup_parse_controllers("cpu io memory pids"), CGROUP_CTRL_ALL);
}

/* A plain directory standing in for a cgroup: the setters' file formats and
 * messages.  (Real cgroups: tests/vm and the integration tests.) */
static char tmpdir[] = "/tmp/pbox-test-cgroup-XXXXXX";
static int dir_fd = -1;

static int setup_dir(void **state)
{
        if (!mkdtemp(tmpdir))
                return -1;
        dir_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return dir_fd < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
        util_rm_rf_at(AT_FDCWD, tmpdir, NULL);
        if (dir_fd >= 0)
                close(dir_fd);
        return 0;
}

static void put(const char *name, const char *text)
{
        _cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(util_write_all(fd, text, strlen(text)), 0);
}

static char *get(const char *name)
{
        char *buf = NULL;
        assert_int_equal(util_read_file_at(dir_fd, name, 4096, &buf, NULL, NULL), 0);
        return buf;
}

static void test_setters(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        /* no file: the controller is named */
        assert_int_equal(cgroup_set_memory_max(dir_fd, 1 << 20, &err), -ENOENT);
        assert_string_equal(err.message, "cannot set memory.max: the 'memory' controller is not enabled for this cgroup");
        assert_int_equal(cgroup_set_pids_max(dir_fd, 64, &err), -ENOENT);
        assert_non_null(strstr(err.message, "pids.max"));
        assert_non_null(strstr(err.message, "'pids' controller"));
        assert_int_equal(cgroup_set_cpu_max(dir_fd, 25000, 100000, &err), -ENOENT);
        assert_non_null(strstr(err.message, "'cpu' controller"));
        assert_int_equal(cgroup_set_cpu_weight(dir_fd, 100, &err), -ENOENT);
        assert_non_null(strstr(err.message, "cpu.weight"));
        assert_int_equal(cgroup_set_io_max(dir_fd, 8, 0, 1000, CGROUP_UNLIMITED, CGROUP_UNLIMITED, CGROUP_UNLIMITED, &err),
                         -ENOENT);
        assert_non_null(strstr(err.message, "'io' controller"));
        assert_int_equal(cgroup_set_swap_max(dir_fd, 0, &err), -ENOENT);
        assert_non_null(strstr(err.message, "'memory' controller"));

        /* the formats */
        put("memory.max", "");
        put("memory.swap.max", "");
        put("pids.max", "");
        put("cpu.max", "");
        put("cpu.weight", "");
        put("io.max", "");
        char *s;
        assert_int_equal(cgroup_set_memory_max(dir_fd, 67108864, &err), 0);
        assert_string_equal(s = get("memory.max"), "67108864");
        free(s);
        put("memory.max", "");
        assert_int_equal(cgroup_set_memory_max(dir_fd, CGROUP_UNLIMITED, &err), 0);
        assert_string_equal(s = get("memory.max"), "max");
        free(s);
        assert_int_equal(cgroup_set_swap_max(dir_fd, 0, &err), 0);
        assert_string_equal(s = get("memory.swap.max"), "0");
        free(s);
        assert_int_equal(cgroup_set_pids_max(dir_fd, 64, &err), 0);
        assert_string_equal(s = get("pids.max"), "64");
        free(s);
        assert_int_equal(cgroup_set_cpu_max(dir_fd, 25000, 100000, &err), 0);
        assert_string_equal(s = get("cpu.max"), "25000 100000");
        free(s);
        put("cpu.max", "");
        assert_int_equal(cgroup_set_cpu_max(dir_fd, CGROUP_UNLIMITED, 0, &err), 0);
        assert_string_equal(s = get("cpu.max"), "max 100000");
        free(s);
        assert_int_equal(cgroup_set_cpu_weight(dir_fd, 10000, &err), 0);
        assert_string_equal(s = get("cpu.weight"), "10000");
        free(s);
        assert_int_equal(cgroup_set_io_max(dir_fd, 254, 0, 1048576, CGROUP_UNLIMITED, 100, CGROUP_UNLIMITED, &err), 0);
        assert_string_equal(s = get("io.max"), "254:0 rbps=1048576 wbps=max riops=100 wiops=max");
        free(s);

        /* out of range: refused before anything is written */
        put("memory.max", "untouched");
        assert_int_equal(cgroup_set_memory_max(dir_fd, -5, &err), -EINVAL);
        assert_int_equal(cgroup_set_swap_max(dir_fd, -1, &err), -EINVAL);
        assert_int_equal(cgroup_set_pids_max(dir_fd, -1, &err), -EINVAL);
        assert_int_equal(cgroup_set_cpu_max(dir_fd, 0, 100000, &err), -EINVAL);
        assert_int_equal(cgroup_set_cpu_max(dir_fd, -1000, 100000, &err), -EINVAL);
        assert_int_equal(cgroup_set_cpu_weight(dir_fd, 0, &err), -EINVAL);
        assert_int_equal(cgroup_set_cpu_weight(dir_fd, 10001, &err), -EINVAL);
        assert_int_equal(cgroup_set_io_max(dir_fd, 0, 5, 1, 1, 1, 1, &err), -EINVAL);
        assert_int_equal(cgroup_set_io_max(dir_fd, 8, 0, 0, 1, 1, 1, &err), -EINVAL);
        assert_int_equal(cgroup_set_io_max(dir_fd, 8, 0, 1, 1, 1, -3, &err), -EINVAL);
        assert_non_null(strstr(err.message, "wiops"));
        assert_string_equal(s = get("memory.max"), "untouched");
        free(s);

        /* a limit file that is not a plain writable file: the error is real */
        assert_int_equal(mkdirat(dir_fd, "pids.max.d", 0755), 0);
        assert_int_equal(renameat(dir_fd, "pids.max", dir_fd, "pids.max.old"), 0);
        assert_int_equal(renameat(dir_fd, "pids.max.d", dir_fd, "pids.max"), 0);
        assert_int_equal(cgroup_set_pids_max(dir_fd, 1, &err), -EISDIR);
        assert_non_null(strstr(err.message, "pids.max"));
        /* symlinks are not followed */
        assert_int_equal(symlinkat("memory.max", dir_fd, "cpu.weight.lnk"), 0);
        assert_int_equal(unlinkat(dir_fd, "cpu.weight", 0), 0);
        assert_int_equal(renameat(dir_fd, "cpu.weight.lnk", dir_fd, "cpu.weight"), 0);
        assert_int_equal(cgroup_set_cpu_weight(dir_fd, 5, &err), -ELOOP);
        assert_string_equal(s = get("memory.max"), "untouched");
        free(s);
}

static void test_read_usage(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        char sub[] = "usage";
        assert_int_equal(mkdirat(dir_fd, sub, 0755), 0);
        _cleanup_close_ int fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        struct cgroup_usage u;
        memset(&u, 0x5a, sizeof u);
        /* no cpu.stat: an error, ret untouched */
        assert_int_equal(cgroup_read_usage(fd, &u, &err), -ENOENT);
        assert_non_null(strstr(err.message, "cpu.stat"));
        assert_true(u.memory_peak_bytes == 0x5a5a5a5a5a5a5a5a);

        /* only cpu.stat (a cgroup without controllers): everything else -1 */
        _cleanup_close_ int w = openat(fd, "cpu.stat", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        const char *cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_int_equal(util_write_all(w, cpu, strlen(cpu)), 0);
        assert_int_equal(cgroup_read_usage(fd, &u, &err), 0);
        assert_int_equal(u.cpu_usage_us, 1500);
        assert_int_equal(u.cpu_user_us, 1000);
        assert_int_equal(u.cpu_system_us, 500);
        assert_int_equal(u.memory_current_bytes, -1);
        assert_int_equal(u.memory_peak_bytes, -1);
        assert_int_equal(u.oom_events, -1);
        assert_int_equal(u.oom_kills, -1);
        assert_int_equal(u.pids_current, -1);
        assert_int_equal(u.pids_peak, -1);
        assert_int_equal(u.pids_max_hits, -1);
        assert_int_equal(u.io_read_bytes, -1);
        assert_int_equal(u.io_write_bytes, -1);

        /* everything (pids.peak absent, as on 6.1) */
        static const struct {
                const char *name, *text;
        } files[] = {
                { "memory.current", "4096\n" },
                { "memory.peak", "104857600\n" },
                { "memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n" },
                { "pids.current", "3\n" },
                { "pids.events", "max 17\n" },
                { "io.stat", "254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
                             "7:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                _cleanup_close_ int f = openat(fd, files[i].name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                assert_true(f >= 0);
                assert_int_equal(util_write_all(f, files[i].text, strlen(files[i].text)), 0);
        }
        assert_int_equal(cgroup_read_usage(fd, &u, &err), 0);
        assert_int_equal(u.memory_current_bytes, 4096);
        assert_int_equal(u.memory_peak_bytes, 104857600);
        assert_int_equal(u.oom_events, 2);
        assert_int_equal(u.oom_kills, 1);
        assert_int_equal(u.pids_current, 3);
        assert_int_equal(u.pids_peak, -1);
        assert_int_equal(u.pids_max_hits, 17);
        assert_int_equal(u.io_read_bytes, 101);
        assert_int_equal(u.io_write_bytes, 202);

        uint64_t usage = 0, user = 0, sys = 0;
        assert_int_equal(cgroup_cpu_usage(fd, &usage, &user, &sys, &err), 0);
        assert_int_equal(usage, 1500);
        assert_int_equal(user, 1000);
        assert_int_equal(sys, 500);
}

static void put_file(int dirfd, const char *name, const char *text)
{
        _cleanup_close_ int f = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(f >= 0);
        assert_int_equal(util_write_all(f, text, strlen(text)), 0);
}

/* Refused forks of a subtree: the local counts summed, whichever kernel
 * wrote them; the same figure on every call with the same fd. */
static void test_forks_refused(void **state)
{
        assert_int_equal(mkdirat(dir_fd, "forks", 0755), 0);
        _cleanup_close_ int top = openat(dir_fd, "forks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(top >= 0);
        /* no pids controller: unknown */
        assert_int_equal(cgroup_forks_refused(top), -1);
        /* old kernels: pids.events counts where the fork failed */
        put_file(top, "pids.events", "max 2\n");
        assert_int_equal(mkdirat(top, "init", 0755), 0);
        assert_int_equal(mkdirat(top, "work", 0755), 0);
        _cleanup_close_ int work = openat(top, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(work >= 0);
        put_file(work, "pids.events", "max 0\n");
        assert_int_equal(mkdirat(work, "exec-1", 0755), 0);
        _cleanup_close_ int e1 = openat(work, "exec-1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        put_file(e1, "pids.events", "max 3\n");
        /* newer kernels: pids.events is hierarchical, pids.events.local is
         * the local count and wins */
        assert_int_equal(mkdirat(work, "exec-2", 0755), 0);
        _cleanup_close_ int e2 = openat(work, "exec-2", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        put_file(e2, "pids.events", "max 100\n");
        put_file(e2, "pids.events.local", "max 5\n");
        assert_int_equal(cgroup_forks_refused(top), 2 + 3 + 5);
        assert_int_equal(cgroup_forks_refused(top), 2 + 3 + 5);
        assert_int_equal(cgroup_forks_refused(work), 3 + 5);
        assert_int_equal(cgroup_forks_refused(e2), 5);
        struct cgroup_usage u;
        put_file(top, "cpu.stat", "usage_usec 1\nuser_usec 1\nsystem_usec 0\n");
        assert_int_equal(cgroup_read_usage(top, &u, NULL), 0);
        assert_int_equal(u.pids_max_hits, 10);
        assert_int_equal(cgroup_read_usage(top, &u, NULL), 0);
        assert_int_equal(u.pids_max_hits, 10);
}

static void test_block_device(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        unsigned maj = 12345, min = 12345;
        /* proc and sysfs live on anonymous devices */
        assert_int_equal(cgroup_block_device_of("/proc", &maj, &min, &err), -ENODEV);
        assert_non_null(strstr(err.message, "not on a block device"));
        assert_int_equal(cgroup_block_device_of("/sys", &maj, &min, &err), -ENODEV);
        assert_int_equal(cgroup_block_device_of("/nonexistent/pbox", &maj, &min, &err), -ENOENT);
        assert_int_equal(maj, 12345);
        assert_int_equal(min, 12345);

        /* Where / is on a block device: the answer is a whole disk that
         * /sys/dev/block knows, and it is the one holding / or its parent. */
        struct stat st;
        assert_int_equal(stat("/", &st), 0);
        int r = cgroup_block_device_of("/", &maj, &min, &err);
        if (major(st.st_dev) == 0) {
                assert_int_equal(r, -ENODEV);
                return;
        }
        char sys[64];
        snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
        if (access(sys, F_OK) < 0) {
                assert_int_equal(r, -ENODEV);
                return;
        }
        assert_int_equal(r, 0);
        snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u/partition", maj, min);
        assert_int_equal(access(sys, F_OK), -1);        /* not a partition */
        snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u/partition", major(st.st_dev), minor(st.st_dev));
        if (access(sys, F_OK) < 0) {
                assert_int_equal(maj, major(st.st_dev));
                assert_int_equal(min, minor(st.st_dev));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mountinfo),
                cmocka_unit_test(test_proc_cgroup),
                cmocka_unit_test(test_keyed),
                cmocka_unit_test(test_io_stat),
                cmocka_unit_test(test_controllers),
                cmocka_unit_test(test_setters),
                cmocka_unit_test(test_read_usage),
                cmocka_unit_test(test_forks_refused),
                cmocka_unit_test(test_block_device),
        };
        return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
