/* test_diskimg.c — unit tests of diskimg.c that need no root: the probe,
 * the size floor, a sparse image of the asked size (mode 0600, made with
 * O_EXCL: an existing file is never reused or overwritten), that mkfs.ext4
 * really made an ext4 file system (its superblock magic), and that a failed
 * mkfs leaves no file; e2fsck passes a fresh image and refuses a broken
 * one.  Mounting and growth need root and loop devices:
 * tests/integration/disk.sh. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diskimg.h"
#include "util.h"

static char tmpdir[] = "/tmp/pbox-test-diskimg.XXXXXX";
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

static bool have_mkfs(void)
{
        return access("/sbin/mkfs.ext4", X_OK) == 0 || access("/usr/sbin/mkfs.ext4", X_OK) == 0;
}

static void test_too_small(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_free_ char *path = util_xasprintf("%s/small.img", tmpdir);
        assert_int_equal(diskimg_create(dir_fd, "small.img", path, DISKIMG_MIN_BYTES - 1, 0, 0, &err), -EINVAL);
        assert_non_null(strstr(err.message, "too small"));
        assert_int_equal(faccessat(dir_fd, "small.img", F_OK, 0), -1);
}

static void test_create(void **state)
{
        if (!have_mkfs())
                skip();
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_free_ char *path = util_xasprintf("%s/disk.img", tmpdir);
        uint64_t size = 8ull << 20;
        assert_int_equal(diskimg_create(dir_fd, "disk.img", path, size, 100000, 100000, &err), 0);
        struct stat st;
        assert_int_equal(fstatat(dir_fd, "disk.img", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal((uint64_t) st.st_size, size);
        assert_true((uint64_t) st.st_blocks * 512 < size / 2);         /* sparse */
        uint64_t got = 0;
        assert_int_equal(diskimg_size(path, &got, &err), 0);
        assert_int_equal(got, size);
        /* ext4's superblock at 1024, magic 0xEF53 at offset 0x38 in it */
        _cleanup_close_ int fd = openat(dir_fd, "disk.img", O_RDONLY | O_CLOEXEC);
        unsigned char magic[2];
        assert_int_equal(pread(fd, magic, 2, 1024 + 0x38), 2);
        assert_int_equal(magic[0] | magic[1] << 8, 0xEF53);
        /* never reused: a second create of the same name fails, file intact */
        assert_int_equal(diskimg_create(dir_fd, "disk.img", path, size, 0, 0, &err), -EEXIST);
        assert_int_equal(diskimg_size(path, &got, &err), 0);
        assert_int_equal(got, size);
}

static void test_symlink_refused(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        /* A sentinel of our own: were the refusal ever to break, only it is hurt. */
        _cleanup_close_ int fd = openat(dir_fd, "sentinel", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(util_write_all(fd, "keep me\n", 8), 0);
        _cleanup_free_ char *target = util_xasprintf("%s/sentinel", tmpdir);
        assert_int_equal(symlinkat(target, dir_fd, "link.img"), 0);
        _cleanup_free_ char *path = util_xasprintf("%s/link.img", tmpdir);
        assert_true(diskimg_create(dir_fd, "link.img", path, 8ull << 20, 0, 0, &err) < 0);
        struct stat st;
        assert_int_equal(fstatat(dir_fd, "sentinel", &st, 0), 0);
        assert_int_equal(st.st_size, 8);                /* not truncated, not grown, not formatted */
}

static void test_check(void **state)
{
        if (!have_mkfs())
                skip();
        struct pbox_error err = PBOX_ERROR_INIT;
        _cleanup_free_ char *path = util_xasprintf("%s/check.img", tmpdir);
        assert_int_equal(diskimg_create(dir_fd, "check.img", path, 8ull << 20, 0, 0, &err), 0);
        assert_int_equal(diskimg_check(path, &err), 0);
        /* a broken superblock magic: e2fsck cannot repair it on its own */
        _cleanup_close_ int fd = openat(dir_fd, "check.img", O_WRONLY | O_CLOEXEC);
        assert_int_equal(pwrite(fd, "\0\0", 2, 1024 + 0x38), 2);
        assert_true(diskimg_check(path, &err) < 0);
        assert_non_null(strstr(err.message, "e2fsck"));
}

static void test_probe(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        int r = diskimg_probe(&err);
        if (r < 0)
                assert_true(strstr(err.message, "e2fsprogs") || strstr(err.message, "loop"));
        else
                assert_true(have_mkfs());
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_too_small),
                cmocka_unit_test(test_create),
                cmocka_unit_test(test_symlink_refused),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_probe),
        };
        return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
