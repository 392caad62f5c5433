/* test_tartree.c — unit tests of tartree.c: a tree with symlinks, a fifo and
 * a hardlink goes out and comes back; hostile archives ("..", absolute
 * names, symlink-then-write-through, planted symlinks, hardlinks out,
 * devices, setuid, conflicts, limits) stay beneath the target directory or
 * are refused, and an "outside" sentinel directory is never touched. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tartree.h"
#include "util.h"

struct fixture {
        char base[64];
        int base_fd;
        int in_fd;      /* base/in: where archives go */
        int out_fd;     /* base/outside: must stay as it is */
};

static int setup(void **state)
{
        struct fixture *f = util_xcalloc(1, sizeof *f);
        snprintf(f->base, sizeof f->base, "/tmp/pbox-tartree-XXXXXX");
        assert_non_null(mkdtemp(f->base));
        f->base_fd = open(f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->base_fd >= 0);
        assert_int_equal(mkdirat(f->base_fd, "in", 0755), 0);
        assert_int_equal(mkdirat(f->base_fd, "outside", 0755), 0);
        f->in_fd = openat(f->base_fd, "in", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        f->out_fd = openat(f->base_fd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->in_fd >= 0 && f->out_fd >= 0);
        int fd = openat(f->out_fd, "victim", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "original\n", 9), 9);
        close(fd);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        close(f->in_fd);
        close(f->out_fd);
        close(f->base_fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->base);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/* The outside directory holds exactly "victim" with its original text. */
static void assert_outside_untouched(struct fixture *f)
{
        char *buf = NULL;
        size_t len = 0;
        assert_int_equal(util_read_file_at(f->out_fd, "victim", 100, &buf, &len, NULL), 0);
        assert_string_equal(buf, "original\n");
        free(buf);
        struct stat st;
        assert_int_equal(fstatat(f->out_fd, "pwned", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(f->base_fd, "pwned", &st, AT_SYMLINK_NOFOLLOW), -1);
}

static void write_file(int dfd, const char *name, const char *data, size_t len, mode_t mode)
{
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

/* ---- building archives ---------------------------------------------------- */

struct ent {
        const char *name;
        char type;              /* f file, d dir, l symlink, h hardlink, c chardev, p fifo */
        const char *data;       /* file data, or link target */
        unsigned mode;
};

static char *make_tar(const struct ent *e, size_t n, size_t *ret_len)
{
        size_t cap = 1 << 20, used = 0;
        char *buf = util_xmalloc(cap);
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
        assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *ae = archive_entry_new();
                archive_entry_set_pathname(ae, e[i].name);
                unsigned mode = e[i].mode ? e[i].mode : 0644;
                switch (e[i].type) {
                case 'f':
                        archive_entry_set_filetype(ae, AE_IFREG);
                        archive_entry_set_size(ae, (la_int64_t) strlen(e[i].data));
                        break;
                case 'd': archive_entry_set_filetype(ae, AE_IFDIR); mode = e[i].mode ? e[i].mode : 0755; break;
                case 'l': archive_entry_set_filetype(ae, AE_IFLNK); archive_entry_set_symlink(ae, e[i].data); break;
                case 'h': archive_entry_set_filetype(ae, AE_IFREG); archive_entry_set_hardlink(ae, e[i].data); break;
                case 'c': archive_entry_set_filetype(ae, AE_IFCHR); archive_entry_set_rdev(ae, 0x103); break;
                case 'p': archive_entry_set_filetype(ae, AE_IFIFO); break;
                }
                archive_entry_set_perm(ae, mode);
                archive_entry_set_mtime(ae, 1000000000, 0);
                assert_true(archive_write_header(a, ae) >= ARCHIVE_WARN);
                if (e[i].type == 'f')
                        assert_int_equal(archive_write_data(a, e[i].data, strlen(e[i].data)), (la_ssize_t) strlen(e[i].data));
                archive_entry_free(ae);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        *ret_len = used;
        return buf;
}

static int extract(struct fixture *f, const struct ent *e, size_t n, const struct tartree_opts *o,
                   struct tartree_stats *st, struct pbox_error *err)
{
        size_t len;
        char *tar = make_tar(e, n, &len);
        struct tartree_opts def = { 0 };
        int r = tartree_extract(-1, tar, len, f->in_fd, o ? o : &def, st, err);
        free(tar);
        return r;
}

static char *read_in(struct fixture *f, const char *path)
{
        char *buf = NULL;
        size_t len = 0;
        if (util_read_file_at(f->in_fd, path, 1 << 20, &buf, &len, NULL) < 0)
                return NULL;
        return buf;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_round_trip(void **state)
{
        struct fixture *f = *state;
        /* a tree in base/src */
        assert_int_equal(mkdirat(f->base_fd, "src", 0755), 0);
        int src = openat(f->base_fd, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(src >= 0);
        assert_int_equal(mkdirat(src, "d", 0750), 0);
        assert_int_equal(fchmodat(src, "d", 0750, 0), 0);
        write_file(src, "d/file", "hello\n", 6, 0640);
        assert_int_equal(symlinkat("d/file", src, "rel"), 0);
        assert_int_equal(symlinkat("../outside/victim", src, "up"), 0);
        assert_int_equal(symlinkat("/etc/passwd", src, "abs"), 0);
        assert_int_equal(mkfifoat(src, "fifo", 0600), 0);
        assert_int_equal(linkat(src, "d/file", src, "hard", 0), 0);

        int memfd = memfd_create("t", MFD_CLOEXEC);
        struct tartree_opts o = { 0 };
        struct tartree_stats st;
        struct pbox_error err = PBOX_ERROR_INIT;
        if (tartree_create(src, memfd, &o, &st, &err) < 0)
                fail_msg("create: %s", err.message);
        assert_int_equal(st.entries, 6);        /* abs d d/file hard rel up */
        assert_int_equal(st.skipped, 1);        /* fifo */
        off_t size = lseek(memfd, 0, SEEK_END);
        assert_true(size > 0);

        if (tartree_extract(memfd, NULL, (uint64_t) size, f->in_fd, &o, &st, &err) < 0)
                fail_msg("extract: %s", err.message);
        assert_int_equal(st.entries, 6);
        char *s = read_in(f, "d/file");
        assert_string_equal(s, "hello\n");
        free(s);
        s = read_in(f, "hard");
        assert_string_equal(s, "hello\n");
        free(s);
        char link[256];
        ssize_t n = readlinkat(f->in_fd, "up", link, sizeof link - 1);
        assert_true(n > 0);
        link[n] = '\0';
        assert_string_equal(link, "../outside/victim");
        n = readlinkat(f->in_fd, "abs", link, sizeof link - 1);
        link[n] = '\0';
        assert_string_equal(link, "/etc/passwd");
        struct stat sb;
        assert_int_equal(fstatat(f->in_fd, "d", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0750);
        assert_int_equal(fstatat(f->in_fd, "d/file", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0640);
        assert_int_equal(fstatat(f->in_fd, "fifo", &sb, AT_SYMLINK_NOFOLLOW), -1);
        close(memfd);
        close(src);
        assert_outside_untouched(f);
}

static void test_size_limit_on_create(void **state)
{
        struct fixture *f = *state;
        char big[8192];
        memset(big, 'x', sizeof big);
        write_file(f->in_fd, "big", big, sizeof big, 0644);
        int memfd = memfd_create("t", MFD_CLOEXEC);
        struct tartree_opts o = { .max_bytes = 4096 };
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(tartree_create(f->in_fd, memfd, &o, NULL, &err), -EFBIG);
        close(memfd);
}

static void test_hostile(void **state)
{
        struct fixture *f = *state;
        static const struct {
                const char *what;
                struct ent e[3];
                size_t n;
                int code;               /* 0: accepted */
        } cases[] = {
                { "dotdot", { { "../pwned", 'f', "x", 0 } }, 1, EINVAL },
                { "inner dotdot", { { "a/../../pwned", 'f', "x", 0 } }, 1, EINVAL },
                { "symlink then through", { { "l", 'l', "../outside", 0 }, { "l/pwned", 'f', "x", 0 } }, 2, ELOOP },
                { "abs symlink then through", { { "l2", 'l', "/tmp", 0 }, { "l2/pwned", 'f', "x", 0 } }, 2, ELOOP },
                { "symlink then dir entry", { { "l3", 'l', "../outside", 0 }, { "l3", 'd', NULL, 0 } }, 2, EEXIST },
                { "hardlink out", { { "h", 'h', "../outside/victim", 0 } }, 1, EINVAL },
                { "hardlink through symlink", { { "l4", 'l', "../outside", 0 }, { "h2", 'h', "l4/victim", 0 } }, 2,
                  EINVAL },
                { "hardlink to missing", { { "h3", 'h', "nothing", 0 } }, 1, EINVAL },
                { "file over dir", { { "dd", 'd', NULL, 0 }, { "dd", 'f', "x", 0 } }, 2, EISDIR },
                { "symlink over dir", { { "de", 'd', NULL, 0 }, { "de", 'l', "x", 0 } }, 2, EISDIR },
                { "dir over file", { { "ff", 'f', "x", 0 }, { "ff", 'd', NULL, 0 } }, 2, EEXIST },
                { "absolute name", { { "/abs/file", 'f', "contained", 0 } }, 1, 0 },
                { "device and fifo", { { "dev", 'c', NULL, 0 }, { "fifo", 'p', NULL, 0 } }, 2, 0 },
                { "setuid", { { "suid", 'f', "x", 06755 }, { "sgid-dir", 'd', NULL, 02755 } }, 2, 0 },
                { "symlink replaced by file", { { "r", 'l', "../outside/victim", 0 }, { "r", 'f', "new", 0 } }, 2, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct pbox_error err = PBOX_ERROR_INIT;
                struct tartree_stats st;
                int r = extract(f, cases[i].e, cases[i].n, NULL, &st, &err);
                if (cases[i].code == 0 && r < 0)
                        fail_msg("%s: unexpected failure: %s", cases[i].what, err.message);
                if (cases[i].code != 0 && r != -cases[i].code)
                        fail_msg("%s: expected %s, got %d (%s)", cases[i].what, strerror(cases[i].code), r, err.message);
                assert_outside_untouched(f);
        }
        char *s = read_in(f, "abs/file");
        assert_string_equal(s, "contained");
        free(s);
        struct stat sb;
        assert_int_equal(fstatat(f->in_fd, "dev", &sb, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(f->in_fd, "fifo", &sb, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(f->in_fd, "suid", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0755);
        assert_int_equal(fstatat(f->in_fd, "sgid-dir", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 02755);
        s = read_in(f, "r");
        assert_string_equal(s, "new");
        free(s);
        assert_int_equal(fstatat(f->in_fd, "r", &sb, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(sb.st_mode));
}

static void test_planted_symlink(void **state)
{
        struct fixture *f = *state;
        /* A symlink that was there before the archive (planted by the sandbox). */
        assert_int_equal(symlinkat("../outside", f->in_fd, "planted"), 0);
        struct ent e[] = { { "planted/pwned", 'f', "x", 0 } };
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(extract(f, e, 1, NULL, NULL, &err), -ELOOP);
        struct ent e2[] = { { "planted/sub/pwned", 'f', "x", 0 } };
        assert_int_equal(extract(f, e2, 1, NULL, NULL, &err), -ELOOP);
        assert_outside_untouched(f);
}

static void test_limits(void **state)
{
        struct fixture *f = *state;
        struct ent e[] = { { "a", 'f', "0123456789", 0 }, { "b", 'f', "0123456789", 0 } };
        struct tartree_opts o = { .max_bytes = 15 };
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(extract(f, e, 2, &o, NULL, &err), -EFBIG);
        struct tartree_opts o2 = { .max_entries = 1 };
        assert_int_equal(extract(f, e, 2, &o2, NULL, &err), -E2BIG);
        static const char junk[] = "this is not a tar archive, not at all, not even close to one.........";
        struct tartree_opts o3 = { 0 };
        assert_int_equal(tartree_extract(-1, junk, sizeof junk, f->in_fd, &o3, NULL, &err), -EINVAL);
}

static void test_umask_and_owner(void **state)
{
        struct fixture *f = *state;
        struct ent e[] = { { "dir", 'd', NULL, 0777 }, { "dir/f", 'f', "x", 0666 }, { "implicit/g", 'f', "y", 0777 } };
        struct tartree_opts o = { .umask = 022, .chown = true, .uid = getuid(), .gid = getgid() };
        struct pbox_error err = PBOX_ERROR_INIT;
        if (extract(f, e, 3, &o, NULL, &err) < 0)
                fail_msg("%s", err.message);
        struct stat sb;
        assert_int_equal(fstatat(f->in_fd, "dir", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0755);
        assert_int_equal(fstatat(f->in_fd, "dir/f", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0644);
        assert_int_equal(sb.st_mtime, 1000000000);
        assert_int_equal(fstatat(f->in_fd, "implicit", &sb, 0), 0);
        assert_int_equal(sb.st_mode & 07777, 0755);
}

/* The rules shared with image layers (tarentry.c): symlink targets of at
 * most 4095 bytes, hardlinks only to files and symlinks, a top entry that is
 * a directory; every refusal names the entry. */
static void test_shared_rules(void **state)
{
        struct fixture *f = *state;
        char *target = util_xmalloc(4097);
        memset(target, 'x', 4096);
        target[4095] = '\0';
        struct ent ok[] = { { "l4095", 'l', target, 0 } };
        struct pbox_error err = PBOX_ERROR_INIT;
        if (extract(f, ok, 1, NULL, NULL, &err) < 0)
                fail_msg("%s", err.message);
        target[4095] = 'x';
        target[4096] = '\0';
        struct ent too_long[] = { { "l4096", 'l', target, 0 } };
        assert_int_equal(extract(f, too_long, 1, NULL, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "entry 'l4096'"));
        free(target);
        struct ent hl_dir[] = { { "hd", 'd', NULL, 0 }, { "hl", 'h', "hd", 0 } };
        assert_int_equal(extract(f, hl_dir, 2, NULL, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "entry 'hl'"));
        struct ent top[] = { { ".", 'f', "x", 0 } };
        assert_int_equal(extract(f, top, 1, NULL, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "top of the archive"));
        struct stat sb;
        assert_int_equal(fstatat(f->in_fd, "l4096", &sb, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(f->in_fd, "hl", &sb, AT_SYMLINK_NOFOLLOW), -1);
        assert_outside_untouched(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_size_limit_on_create, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
                cmocka_unit_test_setup_teardown(test_planted_symlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_umask_and_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shared_rules, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
