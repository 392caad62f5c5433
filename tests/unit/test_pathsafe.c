/* test_pathsafe.c — unit tests of pathsafe.c: entry name cleaning, whiteout
 * classification, and resolution beneath a root with hostile symlinks
 * (both openat2 and the fallback walk), and the no-follow open of the tar
 * extractors. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pathsafe.h"
#include "util.h"

static void test_clean_entry(void **state)
{
        static const struct {
                const char *in;
                bool allow_root;
                const char *out;        /* NULL: must fail */
                int code;
        } cases[] = {
                { "./a//b/", false, "a/b", 0 },
                { "/etc/passwd", false, "etc/passwd", 0 },
                { "///etc///passwd", false, "etc/passwd", 0 },
                { "a/./b/.", false, "a/b", 0 },
                { "a/b/", false, "a/b", 0 },
                { "...", false, "...", 0 },
                { "..a/b..", false, "..a/b..", 0 },
                { ".wh..wh..opq", false, ".wh..wh..opq", 0 },
                { "", true, "", 0 },
                { "./", true, "", 0 },
                { "/", true, "", 0 },
                { "", false, NULL, EINVAL },
                { "./", false, NULL, EINVAL },
                { "//.//", false, NULL, EINVAL },
                { "..", true, NULL, EINVAL },
                { "../etc/passwd", false, NULL, EINVAL },
                { "a/../b", false, NULL, EINVAL },
                { "a/..", false, NULL, EINVAL },
                { "/../../x", false, NULL, EINVAL },
                { "a/b/../../..", false, NULL, EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct pbox_error err = PBOX_ERROR_INIT;
                char *out = NULL;
                int r = pathsafe_clean_entry(cases[i].in, cases[i].allow_root, &out, &err);
                if (cases[i].out) {
                        if (r != 0)
                                fail_msg("'%s': unexpected failure %s", cases[i].in, err.message);
                        assert_string_equal(out, cases[i].out);
                        free(out);
                } else {
                        if (r != -cases[i].code)
                                fail_msg("'%s': expected -%d, got %d", cases[i].in, cases[i].code, r);
                        assert_null(out);
                        assert_non_null(strstr(err.message, cases[i].in[0] ? cases[i].in : "empty"));
                }
        }

        /* too long as a whole, and a component longer than NAME_MAX */
        char *longname = util_xmalloc(5001);
        memset(longname, 'a', 5000);
        for (int i = 100; i < 5000; i += 100)
                longname[i] = '/';
        longname[5000] = '\0';
        char *out = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(pathsafe_clean_entry(longname, false, &out, &err), -ENAMETOOLONG);
        assert_non_null(strstr(err.message, "longer than"));
        longname[300] = '\0';
        for (int i = 0; i < 300; i++)
                longname[i] = 'b';
        assert_int_equal(pathsafe_clean_entry(longname, false, &out, &err), -ENAMETOOLONG);
        longname[255] = '\0';
        assert_int_equal(pathsafe_clean_entry(longname, false, &out, &err), 0);
        assert_int_equal(strlen(out), 255);
        free(out);
        free(longname);
}

static void test_whiteout(void **state)
{
        static const struct {
                const char *in;
                enum whiteout_kind kind;
                const char *target;
        } cases[] = {
                { "a/b", WHITEOUT_NONE, NULL },
                { "a/.whx", WHITEOUT_NONE, NULL },
                { "a/wh.b", WHITEOUT_NONE, NULL },
                { "a/x.wh.b", WHITEOUT_NONE, NULL },
                { ".wh.b", WHITEOUT_FILE, "b" },
                { "a/.wh.b", WHITEOUT_FILE, "a/b" },
                { "a/b/.wh..hidden", WHITEOUT_FILE, "a/b/.hidden" },
                { "a/.wh...x", WHITEOUT_FILE, "a/..x" },
                { ".wh..wh..opq", WHITEOUT_OPAQUE, "" },
                { "a/b/.wh..wh..opq", WHITEOUT_OPAQUE, "a/b" },
                { ".wh.", WHITEOUT_INVALID, NULL },
                { "a/.wh.", WHITEOUT_INVALID, NULL },
                { "a/.wh..", WHITEOUT_INVALID, NULL },
                { "a/.wh...", WHITEOUT_INVALID, NULL },
                { "a/.wh..wh.plnk", WHITEOUT_INVALID, NULL },
                { "a/.wh..wh..opqx", WHITEOUT_INVALID, NULL },
                { ".wh.x/y", WHITEOUT_INVALID, NULL },
                { "a/.wh.x/.wh.y", WHITEOUT_INVALID, NULL },
                { "a/.wh..wh..opq/b", WHITEOUT_INVALID, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *target = NULL;
                enum whiteout_kind k = pathsafe_whiteout(cases[i].in, &target);
                if (k != cases[i].kind)
                        fail_msg("'%s': kind %d, expected %d", cases[i].in, k, cases[i].kind);
                if (cases[i].target) {
                        assert_non_null(target);
                        assert_string_equal(target, cases[i].target);
                } else {
                        assert_null(target);
                }
                free(target);
        }
}

/* ---- resolution beneath a root --------------------------------------------- */

struct fixture {
        char base[64];          /* /tmp/pbox-pathsafe-XXXXXX */
        int root_fd;            /* base/root */
        char marker[64];        /* a unique file name that must never appear in /etc */
        int (*open_fn)(int, const char *, int, mode_t, bool);
};

static void write_file(const char *path, const char *data)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(util_write_all(fd, data, strlen(data)), 0);
        close(fd);
}

static int setup(void **state, int (*fn)(int, const char *, int, mode_t, bool))
{
        struct fixture *f = util_xcalloc(1, sizeof *f);
        strcpy(f->base, "/tmp/pbox-pathsafe-XXXXXX");
        if (!mkdtemp(f->base))
                return -1;
        char p[256];
#define P(fmt, ...) (snprintf(p, sizeof p, "%s/" fmt, f->base, ##__VA_ARGS__), p)
        if (mkdir(P("root"), 0755) < 0 || mkdir(P("outside"), 0755) < 0)
                return -1;
        write_file(P("outside/secret"), "secret");
        if (mkdir(P("root/d"), 0755) < 0)
                return -1;
        write_file(P("root/d/f"), "inside-f");
        if (mkdir(P("root/etc"), 0755) < 0)
                return -1;
        write_file(P("root/etc/passwd"), "decoy");
        write_file(P("root/file"), "plain");
        /* hostile links */
        if (symlink("/etc", P("root/abs")) < 0)
                return -1;
        if (symlink("../../../../../../../../etc", P("root/rel")) < 0)
                return -1;
        if (symlink("../outside", P("root/up")) < 0)
                return -1;
        if (symlink(f->base, P("root/base")) < 0)
                return -1;
        if (symlink("loop2", P("root/loop1")) < 0)
                return -1;
        if (symlink("loop1", P("root/loop2")) < 0)
                return -1;
        if (symlink("d", P("root/inside")) < 0)
                return -1;
        if (symlink("/d/f", P("root/absinside")) < 0)
                return -1;
        if (symlink("..", P("root/d/parent")) < 0)
                return -1;
        if (symlink("/proc/self/root/etc", P("root/magic")) < 0)
                return -1;
        if (symlink("/etc/passwd", P("root/dangling")) < 0)
                return -1;
#undef P
        char root[128];
        snprintf(root, sizeof root, "%s/root", f->base);
        f->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (f->root_fd < 0)
                return -1;
        char rnd[17];
        util_random_hex(rnd, 8);
        snprintf(f->marker, sizeof f->marker, "pbox-pathsafe-%s", rnd);
        f->open_fn = fn;
        *state = f;
        return 0;
}

static int setup_openat2(void **state)
{
        return setup(state, pathsafe_open_beneath);
}

static int setup_walk(void **state)
{
        return setup(state, pathsafe_open_beneath_walk);
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        close(f->root_fd);
        util_rm_rf_at(AT_FDCWD, f->base, NULL);
        free(f);
        return 0;
}

static void assert_content(int fd, const char *want)
{
        assert_true(fd >= 0);
        char *buf = NULL;
        assert_int_equal(util_read_all(fd, 4096, &buf, NULL), 0);
        assert_string_equal(buf, want);
        free(buf);
        close(fd);
}

static void test_beneath_reads(void **state)
{
        struct fixture *f = *state;
        int (*o)(int, const char *, int, mode_t, bool) = f->open_fn;

        assert_content(o(f->root_fd, "d/f", O_RDONLY, 0, false), "inside-f");
        assert_content(o(f->root_fd, "/d/f", O_RDONLY, 0, false), "inside-f");
        assert_content(o(f->root_fd, "inside/f", O_RDONLY, 0, false), "inside-f");
        assert_content(o(f->root_fd, "absinside", O_RDONLY, 0, false), "inside-f");
        /* absolute and escaping symlinks land on the decoy inside the root */
        assert_content(o(f->root_fd, "abs/passwd", O_RDONLY, 0, false), "decoy");
        assert_content(o(f->root_fd, "rel/passwd", O_RDONLY, 0, false), "decoy");
        assert_content(o(f->root_fd, "dangling", O_RDONLY, 0, false), "decoy");
        assert_content(o(f->root_fd, "../../../../etc/passwd", O_RDONLY, 0, false), "decoy");
        assert_content(o(f->root_fd, "d/parent/d/parent/../../etc/passwd", O_RDONLY, 0, false), "decoy");
        /* things outside the root are simply not there */
        assert_int_equal(o(f->root_fd, "up/secret", O_RDONLY, 0, false), -ENOENT);
        assert_int_equal(o(f->root_fd, "../outside/secret", O_RDONLY, 0, false), -ENOENT);
        assert_int_equal(o(f->root_fd, "base/outside/secret", O_RDONLY, 0, false), -ENOENT);
        /* loops */
        assert_int_equal(o(f->root_fd, "loop1", O_RDONLY, 0, false), -ELOOP);
        assert_int_equal(o(f->root_fd, "loop1/x", O_RDONLY, 0, false), -ELOOP);
        /* a path through a regular file */
        assert_int_equal(o(f->root_fd, "file/x", O_RDONLY, 0, false), -ENOTDIR);
        /* the root itself */
        int fd = o(f->root_fd, "", O_RDONLY | O_DIRECTORY, 0, false);
        assert_true(fd >= 0);
        struct stat a, b;
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(fstat(f->root_fd, &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);
        fd = o(f->root_fd, "..", O_RDONLY | O_DIRECTORY, 0, false);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &a), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);
}

static void test_beneath_no_symlinks(void **state)
{
        struct fixture *f = *state;
        int (*o)(int, const char *, int, mode_t, bool) = f->open_fn;

        assert_content(o(f->root_fd, "d/f", O_RDONLY, 0, true), "inside-f");
        assert_int_equal(o(f->root_fd, "inside/f", O_RDONLY, 0, true), -ELOOP);
        assert_int_equal(o(f->root_fd, "abs/passwd", O_RDONLY, 0, true), -ELOOP);
        assert_int_equal(o(f->root_fd, "absinside", O_RDONLY, 0, true), -ELOOP);
        assert_int_equal(o(f->root_fd, "magic/passwd", O_RDONLY, 0, true), -ELOOP);
        /* O_PATH|O_NOFOLLOW of a final symlink is the link itself, not an error... */
        int fd = o(f->root_fd, "absinside", O_PATH | O_NOFOLLOW, 0, false);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        close(fd);
        /* ...even when no symlinks are to be followed (openat2 semantics) */
        fd = o(f->root_fd, "absinside", O_PATH | O_NOFOLLOW, 0, true);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        close(fd);
        assert_int_equal(o(f->root_fd, "absinside", O_RDONLY | O_NOFOLLOW, 0, true), -ELOOP);
        assert_int_equal(o(f->root_fd, "absinside", O_RDONLY | O_NOFOLLOW, 0, false), -ELOOP);
        /* O_DIRECTORY parents for the unpacker */
        fd = o(f->root_fd, "d", O_PATH | O_DIRECTORY, 0, true);
        assert_true(fd >= 0);
        close(fd);
        assert_true(o(f->root_fd, "inside", O_PATH | O_DIRECTORY, 0, true) < 0);
}

static void test_beneath_create(void **state)
{
        struct fixture *f = *state;
        int (*o)(int, const char *, int, mode_t, bool) = f->open_fn;
        char name[160], host[200];

        /* creating through an absolute symlink to /etc creates inside the root */
        snprintf(name, sizeof name, "abs/%s", f->marker);
        int fd = o(f->root_fd, name, O_WRONLY | O_CREAT | O_EXCL, 0600, false);
        assert_true(fd >= 0);
        close(fd);
        snprintf(host, sizeof host, "/etc/%s", f->marker);
        assert_int_equal(access(host, F_OK), -1);
        snprintf(host, sizeof host, "%s/root/etc/%s", f->base, f->marker);
        assert_int_equal(access(host, F_OK), 0);

        /* O_CREAT through a dangling final symlink stays inside too */
        snprintf(name, sizeof name, "%s-link", f->marker);
        char target[200];
        snprintf(target, sizeof target, "/etc/%s-2", f->marker);
        assert_int_equal(symlinkat(target, f->root_fd, name), 0);
        fd = o(f->root_fd, name, O_WRONLY | O_CREAT, 0600, false);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(access(target, F_OK), -1);
        snprintf(host, sizeof host, "%s/root/etc/%s-2", f->base, f->marker);
        assert_int_equal(access(host, F_OK), 0);

        /* O_EXCL on an existing symlink never follows it */
        assert_int_equal(o(f->root_fd, "dangling", O_WRONLY | O_CREAT | O_EXCL, 0600, false), -EEXIST);
        /* escaping with .. and creating: lands in the root */
        snprintf(name, sizeof name, "../../%s-3", f->marker);
        fd = o(f->root_fd, name, O_WRONLY | O_CREAT | O_EXCL, 0600, false);
        assert_true(fd >= 0);
        close(fd);
        snprintf(host, sizeof host, "%s/root/%s-3", f->base, f->marker);
        assert_int_equal(access(host, F_OK), 0);
        snprintf(host, sizeof host, "%s/%s-3", f->base, f->marker);
        assert_int_equal(access(host, F_OK), -1);
        /* secret untouched */
        char secret[128];
        snprintf(secret, sizeof secret, "%s/outside/secret", f->base);
        assert_content(open(secret, O_RDONLY | O_CLOEXEC), "secret");
}

/* pathsafe_open_nofollow: beneath a directory, no symlink at all (a final
 * one included), and with no_xdev no other mount. */
static void test_nofollow(void **state)
{
        struct fixture *f = *state;
        assert_content(pathsafe_open_nofollow(f->root_fd, "d/f", O_RDONLY, false), "inside-f");
        assert_content(pathsafe_open_nofollow(f->root_fd, "file", O_RDONLY, true), "plain");
        static const char *const through[] = { "inside/f", "abs/passwd", "rel/passwd", "up/secret", "base/outside/secret",
                                               "magic/passwd", "loop1/x", "d/parent/file" };
        for (size_t i = 0; i < ARRAY_SIZE(through); i++)
                assert_int_equal(pathsafe_open_nofollow(f->root_fd, through[i], O_RDONLY, false), -ELOOP);
        /* a final symlink: ELOOP, for files and directories, with O_PATH too */
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "absinside", O_RDONLY, false), -ELOOP);
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "absinside", O_PATH, false), -ELOOP);
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "inside", O_PATH | O_DIRECTORY, false), -ELOOP);
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "abs", O_RDONLY | O_DIRECTORY, false), -ELOOP);
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "file/x", O_RDONLY, false), -ENOTDIR);
        assert_int_equal(pathsafe_open_nofollow(f->root_fd, "nothing", O_RDONLY, false), -ENOENT);
        /* "" is the directory itself */
        int fd = pathsafe_open_nofollow(f->root_fd, "", O_PATH | O_DIRECTORY, true);
        assert_true(fd >= 0);
        struct stat a, b;
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(fstat(f->root_fd, &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);

        /* another mount beneath: only with no_xdev is it refused (a child in
         * its own mount namespace; needs root) */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (unshare(CLONE_NEWNS) < 0)
                        _exit(77);
                if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(2);
                char mnt[128];
                snprintf(mnt, sizeof mnt, "%s/root/d", f->base);
                if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0)
                        _exit(3);
                /* a root fd of this namespace (f->root_fd sees the old one's mounts) */
                snprintf(mnt, sizeof mnt, "%s/root", f->base);
                int rfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
                int dfd = pathsafe_open_nofollow(rfd, "d", O_PATH | O_DIRECTORY, false);
                if (dfd < 0)
                        _exit(4);
                close(dfd);
                if (pathsafe_open_nofollow(rfd, "d", O_PATH | O_DIRECTORY, true) != -EXDEV)
                        _exit(5);
                if (pathsafe_open_nofollow(rfd, "file", O_RDONLY, true) < 0)
                        _exit(6);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                print_message("no_xdev not checked: no mount namespace (not root?)\n");
        else
                assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_entry),
                cmocka_unit_test(test_whiteout),
                cmocka_unit_test_setup_teardown(test_beneath_reads, setup_openat2, teardown),
                cmocka_unit_test_setup_teardown(test_beneath_no_symlinks, setup_openat2, teardown),
                cmocka_unit_test_setup_teardown(test_beneath_create, setup_openat2, teardown),
                cmocka_unit_test_setup_teardown(test_beneath_reads, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_beneath_no_symlinks, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_beneath_create, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_nofollow, setup_openat2, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
