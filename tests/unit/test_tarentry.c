/* test_tarentry.c — unit tests of tarentry.c, the rules both tar extractors
 * share: name cleaning, depth, type policy, link targets, modes and times;
 * the no-follow parent walk (missing parents made, planted symlinks and
 * non-directories refused, nothing made outside); replacement of what
 * exists under both policies; hardlinks and symlinks; directory metadata
 * applied last.  An "outside" sentinel directory is never touched. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "tarentry.h"
#include "util.h"

static struct archive_entry *mk(const char *name, mode_t type, const char *symlink, const char *hardlink)
{
        struct archive_entry *e = archive_entry_new();
        assert_non_null(e);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, 0644);
        if (symlink)
                archive_entry_set_symlink(e, symlink);
        if (hardlink)
                archive_entry_set_hardlink(e, hardlink);
        return e;
}

/* The entry of the last rd(): t->raw, t->symlink and t->link_raw point into
 * it until the next call. */
static struct archive_entry *last_entry;

/* Read an entry; returns 0 or -errno (with a message) and fills *t. */
static int rd(const char *name, mode_t type, const char *symlink, const char *hardlink, unsigned depth,
              struct tarentry *t)
{
        if (last_entry)
                archive_entry_free(last_entry);
        last_entry = mk(name, type, symlink, hardlink);
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = tarentry_read(last_entry, depth, t, &err);
        if (r < 0) {
                assert_int_equal(r, -err.code);
                assert_true(err.message[0] != '\0');
        }
        return r;
}

static void test_read_policy(void **state)
{
        (void) state;
        struct tarentry t = { 0 };
        assert_int_equal(rd("./a//./b/", AE_IFREG, NULL, NULL, 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_FILE);
        assert_string_equal(t.path, "a/b");
        assert_string_equal(t.dir, "a");
        assert_string_equal(t.base, "b");
        tarentry_done(&t);
        assert_int_equal(rd("/abs", AE_IFDIR, NULL, NULL, 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_DIR);
        assert_string_equal(t.path, "abs");
        assert_string_equal(t.dir, "");
        assert_string_equal(t.base, "abs");
        tarentry_done(&t);

        /* refused names leave *ret untouched */
        struct tarentry sentinel = { .path = (char *) "untouched" };
        t = sentinel;
        assert_int_equal(rd("../x", AE_IFREG, NULL, NULL, 256, &t), -EINVAL);
        assert_int_equal(rd("a/../../x", AE_IFREG, NULL, NULL, 256, &t), -EINVAL);
        assert_int_equal(rd("a/b/c", AE_IFREG, NULL, NULL, 2, &t), -ENAMETOOLONG);
        assert_ptr_equal(t.path, sentinel.path);
        assert_int_equal(rd("a/b", AE_IFREG, NULL, NULL, 2, &t), 0);
        tarentry_done(&t);

        /* the top */
        assert_int_equal(rd("./", AE_IFDIR, NULL, NULL, 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_TOP);
        assert_string_equal(t.path, "");
        tarentry_done(&t);
        assert_int_equal(rd("./", AE_IFREG, NULL, NULL, 256, &t), -EINVAL);
        assert_int_equal(rd("/", AE_IFLNK, "x", NULL, 256, &t), -EINVAL);
        assert_int_equal(rd(".", AE_IFREG, NULL, "x", 256, &t), -EINVAL);

        /* types */
        static const mode_t special[] = { AE_IFCHR, AE_IFBLK, AE_IFIFO, AE_IFSOCK };
        for (size_t i = 0; i < ARRAY_SIZE(special); i++) {
                assert_int_equal(rd("s", special[i], NULL, NULL, 256, &t), 0);
                assert_int_equal(t.kind, TARENTRY_SPECIAL);
                tarentry_done(&t);
        }
        assert_int_equal(rd("weird", 0, NULL, NULL, 256, &t), -EINVAL);

        /* symlink targets: verbatim, non-empty, at most 4095 bytes */
        assert_int_equal(rd("l", AE_IFLNK, "../../../etc/passwd", NULL, 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_SYMLINK);
        assert_string_equal(t.symlink, "../../../etc/passwd");
        tarentry_done(&t);
        assert_int_equal(rd("l", AE_IFLNK, "", NULL, 256, &t), -EINVAL);
        assert_int_equal(rd("l", AE_IFLNK, NULL, NULL, 256, &t), -EINVAL);
        char *target = util_xmalloc(TARENTRY_MAX_LINK + 1);
        memset(target, 'x', TARENTRY_MAX_LINK - 1);
        target[TARENTRY_MAX_LINK - 1] = '\0';
        assert_int_equal(rd("l", AE_IFLNK, target, NULL, 256, &t), 0);
        tarentry_done(&t);
        target[TARENTRY_MAX_LINK - 1] = 'x';
        target[TARENTRY_MAX_LINK] = '\0';
        assert_int_equal(rd("l", AE_IFLNK, target, NULL, 256, &t), -EINVAL);
        free(target);

        /* hardlink targets are cleaned like names, whatever the entry's type */
        assert_int_equal(rd("h", AE_IFREG, NULL, "/a/./b", 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_HARDLINK);
        assert_string_equal(t.link, "a/b");
        assert_string_equal(t.link_raw, "/a/./b");
        tarentry_done(&t);
        assert_int_equal(rd("h", AE_IFCHR, NULL, "x", 256, &t), 0);
        assert_int_equal(t.kind, TARENTRY_HARDLINK);
        tarentry_done(&t);
        assert_int_equal(rd("h", AE_IFREG, NULL, "../../etc/passwd", 256, &t), -EINVAL);
        assert_int_equal(rd("h", AE_IFREG, NULL, "./", 256, &t), -EINVAL);
        archive_entry_free(last_entry);
        last_entry = NULL;
}

static void test_perm_times(void **state)
{
        (void) state;
        struct archive_entry *e = mk("x", AE_IFREG, NULL, NULL);
        archive_entry_set_perm(e, 07777);
        assert_int_equal(tarentry_perm(e, false, 0), 01777);
        assert_int_equal(tarentry_perm(e, true, 0), 03777);
        assert_int_equal(tarentry_perm(e, false, 022), 01755);
        archive_entry_set_mtime(e, 1234567890, 42);
        struct timespec ts[2];
        tarentry_times(e, ts);
        assert_int_equal(ts[0].tv_sec, 1234567890);
        assert_int_equal(ts[1].tv_sec, 1234567890);
        assert_int_equal(ts[1].tv_nsec, 42);
        archive_entry_free(e);
}

/* ---- on a real tree ---------------------------------------------------------- */

struct fixture {
        char base[64];
        int base_fd;
        int in_fd;      /* base/in: the root */
        int out_fd;     /* base/outside: must stay empty */
};

static int setup(void **state)
{
        struct fixture *f = util_xcalloc(1, sizeof *f);
        snprintf(f->base, sizeof f->base, "/tmp/pbox-tarentry-XXXXXX");
        assert_non_null(mkdtemp(f->base));
        f->base_fd = open(f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(mkdirat(f->base_fd, "in", 0755), 0);
        assert_int_equal(mkdirat(f->base_fd, "outside", 0755), 0);
        f->in_fd = openat(f->base_fd, "in", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        f->out_fd = openat(f->base_fd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->base_fd >= 0 && f->in_fd >= 0 && f->out_fd >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        close(f->in_fd);
        close(f->out_fd);
        close(f->base_fd);
        util_rm_rf_at(AT_FDCWD, f->base, NULL);
        free(f);
        return 0;
}

static void assert_outside_empty(struct fixture *f)
{
        char *cmd = util_xasprintf("[ -z \"$(ls -A '%s/outside')\" ]", f->base);
        assert_int_equal(system(cmd), 0);
        free(cmd);
}

static void touch(int dfd, const char *name)
{
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
}

static void test_walk(void **state)
{
        struct fixture *f = *state;
        struct tarentry_root root = { .fd = f->in_fd, .parent_mode = 0750,
                                      .parent_owner = { true, getuid(), getgid() } };
        struct pbox_error err = PBOX_ERROR_INIT;
        int fd = tarentry_open_parent(&root, "a/b/c/x", "a/b/c", &err);
        if (fd < 0)
                fail_msg("%s", err.message);
        close(fd);
        struct stat st;
        assert_int_equal(fstatat(f->in_fd, "a/b/c", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0750);
        /* an existing one is opened as it is */
        fd = tarentry_open_parent(&root, "a/y", "a", &err);
        assert_true(fd >= 0);
        close(fd);
        fd = tarentry_open_parent(&root, "top", "", &err);
        assert_true(fd >= 0);
        close(fd);

        /* planted symlinks, absolute or relative, final or not: refused, nothing made */
        assert_int_equal(symlinkat("../outside", f->in_fd, "up"), 0);
        char abs[128];
        snprintf(abs, sizeof abs, "%s/outside", f->base);
        assert_int_equal(symlinkat(abs, f->in_fd, "abs"), 0);
        assert_int_equal(symlinkat("a", f->in_fd, "inside"), 0);
        static const char *const dirs[] = { "up", "up/new", "abs/new/deeper", "inside/b", "a/b/c/../../../up" };
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                assert_int_equal(tarentry_open_parent(&root, "e", dirs[i], &err), -ELOOP);
                assert_non_null(strstr(err.message, "entry 'e'"));
        }
        /* a file on the way */
        touch(f->in_fd, "file");
        assert_int_equal(tarentry_open_parent(&root, "file/x/y", "file/x", &err), -ENOTDIR);
        assert_outside_empty(f);
}

static void test_clear(void **state)
{
        struct fixture *f = *state;
        struct tarentry_root keep = { .fd = f->in_fd, .replace_dirs = false };
        struct tarentry_root repl = { .fd = f->in_fd, .replace_dirs = true };
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(mkdirat(f->in_fd, "d", 0755), 0);
        touch(f->in_fd, "d/inner");
        touch(f->in_fd, "f");
        assert_int_equal(symlinkat("../outside", f->in_fd, "l"), 0);

        assert_int_equal(tarentry_clear(&keep, f->in_fd, "none", "none", false, &err), 0);
        assert_int_equal(tarentry_clear(&keep, f->in_fd, "d", "d", true, &err), 1);
        assert_int_equal(tarentry_clear(&repl, f->in_fd, "d", "d", true, &err), 1);
        assert_int_equal(tarentry_clear(&keep, f->in_fd, "d", "d", false, &err), -EISDIR);
        assert_int_equal(tarentry_clear(&keep, f->in_fd, "f", "f", true, &err), -EEXIST);
        assert_int_equal(tarentry_clear(&keep, f->in_fd, "l", "l", true, &err), -EEXIST);
        struct stat st;
        assert_int_equal(fstatat(f->in_fd, "d/inner", &st, 0), 0);
        /* a symlink is removed, never followed */
        assert_int_equal(tarentry_clear(&keep, f->in_fd, "l", "l", false, &err), 0);
        assert_int_equal(fstatat(f->in_fd, "l", &st, AT_SYMLINK_NOFOLLOW), -1);
        /* replacing: a directory by anything, a file by a directory */
        assert_int_equal(tarentry_clear(&repl, f->in_fd, "d", "d", false, &err), 0);
        assert_int_equal(fstatat(f->in_fd, "d", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(tarentry_clear(&repl, f->in_fd, "f", "f", true, &err), 0);
        assert_int_equal(fstatat(f->in_fd, "f", &st, AT_SYMLINK_NOFOLLOW), -1);

        /* make_dir over a file, both ways */
        touch(f->in_fd, "g");
        struct tarentry_owner none = { 0 };
        assert_int_equal(tarentry_make_dir(&keep, f->in_fd, "g", "g", &none, &err), -EEXIST);
        int fd = tarentry_make_dir(&repl, f->in_fd, "g", "g", &none, &err);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(fstatat(f->in_fd, "g", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISDIR(st.st_mode));
        /* create_file over a symlink to outside: the link is replaced */
        assert_int_equal(symlinkat("../outside/pwned", f->in_fd, "l2"), 0);
        fd = tarentry_create_file(&keep, f->in_fd, "l2", "l2", &err);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(fstatat(f->in_fd, "l2", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_outside_empty(f);
}

static void test_links(void **state)
{
        struct fixture *f = *state;
        struct tarentry_root root = { .fd = f->in_fd };
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(mkdirat(f->in_fd, "d", 0755), 0);
        touch(f->in_fd, "d/file");
        touch(f->out_fd, "victim");
        assert_int_equal(symlinkat("../outside", f->in_fd, "up"), 0);

        static const struct {
                const char *name, *link;
                int code;
        } cases[] = {
                { "h1", "d/file", 0 },
                { "h2", "up/victim", EINVAL },          /* through a symlink */
                { "h3", "d", EINVAL },                  /* a directory */
                { "h4", "nothing", EINVAL },
                { "h5", "up", 0 },                      /* the symlink itself */
                { "h6", "h6", 0 },                      /* itself: nothing to do */
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct archive_entry *e = mk(cases[i].name, AE_IFREG, NULL, cases[i].link);
                struct tarentry t = { 0 };
                assert_int_equal(tarentry_read(e, 256, &t, &err), 0);
                int r = tarentry_hardlink(&root, &t, f->in_fd, &err);
                if (r != -cases[i].code)
                        fail_msg("%s -> %s: got %d (%s)", cases[i].name, cases[i].link, r, err.message);
                if (r < 0)
                        assert_non_null(strstr(err.message, cases[i].name));
                tarentry_done(&t);
                archive_entry_free(e);
        }
        struct stat a, b;
        assert_int_equal(fstatat(f->in_fd, "h1", &a, 0), 0);
        assert_int_equal(fstatat(f->in_fd, "d/file", &b, 0), 0);
        assert_true(a.st_ino == b.st_ino);
        assert_int_equal(fstatat(f->in_fd, "h5", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(a.st_mode));
        assert_int_equal(fstatat(f->out_fd, "victim", &b, 0), 0);
        assert_int_equal(b.st_nlink, 1);

        /* a symlink: stored verbatim, replaces a file, gets the entry's time */
        struct archive_entry *e = mk("d/file", AE_IFLNK, "/etc/passwd", NULL);
        struct tarentry t = { 0 };
        assert_int_equal(tarentry_read(e, 256, &t, &err), 0);
        int dfd = openat(f->in_fd, "d", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
        struct tarentry_owner none = { 0 };
        if (tarentry_symlink(&root, &t, dfd, &none, ts, &err) < 0)
                fail_msg("%s", err.message);
        char buf[64];
        ssize_t n = readlinkat(dfd, "file", buf, sizeof buf - 1);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, "/etc/passwd");
        assert_int_equal(fstatat(dfd, "file", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_mtime, 1000000000);
        close(dfd);
        tarentry_done(&t);
        archive_entry_free(e);
}

static void test_dirs_last(void **state)
{
        struct fixture *f = *state;
        struct tarentry_root root = { .fd = f->in_fd };
        assert_int_equal(mkdirat(f->in_fd, "ro", 0755), 0);
        assert_int_equal(mkdirat(f->in_fd, "keep", 0700), 0);
        assert_int_equal(symlinkat("../outside", f->in_fd, "gone"), 0);
        struct tarentry_dirs d = { 0 };
        struct timespec ts[2] = { { 1000000000, 5 }, { 1000000000, 5 } };
        tarentry_dirs_add(&d, "ro", 0555, ts);
        tarentry_dirs_add(&d, "keep", TARENTRY_PERM_KEEP, ts);
        tarentry_dirs_add(&d, "gone", 0777, ts);        /* replaced by a symlink since: left alone */
        tarentry_dirs_apply(&d, &root);
        tarentry_dirs_free(&d);
        struct stat st;
        assert_int_equal(fstatat(f->in_fd, "ro", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0555);
        assert_int_equal(st.st_mtim.tv_sec, 1000000000);
        assert_int_equal(st.st_mtim.tv_nsec, 5);
        assert_int_equal(fstatat(f->in_fd, "keep", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(st.st_mtime, 1000000000);
        assert_int_equal(fstat(f->out_fd, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_true(st.st_mtime != 1000000000);
}

int main(void)
{
        umask(022);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_policy),
                cmocka_unit_test(test_perm_times),
                cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
                cmocka_unit_test_setup_teardown(test_links, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dirs_last, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
