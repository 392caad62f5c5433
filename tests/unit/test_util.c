/* test_util.c — unit tests of util.c, json.c, error.c and the cgroup/mountinfo parsers. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "json.h"
#include "util.h"

static void test_error_prefix(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(pbox_error_set(&err, ENOENT, "no %s", "thing"), -ENOENT);
        assert_int_equal(pbox_error_prefix(&err, "load %d", 3), -ENOENT);
        assert_string_equal(err.message, "load 3: no thing");
        assert_int_equal(pbox_error_sys(&err, EACCES, "open x"), -EACCES);
        assert_non_null(strstr(err.message, "open x: "));
        assert_int_equal(pbox_error_set(NULL, EINVAL, "ignored"), -EINVAL);
}

static void test_base64_roundtrip(void **state)
{
        const unsigned char data[] = { 0, 1, 2, 0xff, 0xfe, 'a', 'b', '\n' };
        for (size_t n = 0; n <= sizeof data; n++) {
                _cleanup_free_ char *enc = util_base64_encode(data, n);
                unsigned char *dec = NULL;
                size_t len = 0;
                assert_int_equal(util_base64_decode(enc, strlen(enc), &dec, &len), 0);
                assert_int_equal(len, n);
                assert_memory_equal(dec, data, n);
                free(dec);
        }
        _cleanup_free_ char *e = util_base64_encode("foobar", 6);
        assert_string_equal(e, "Zm9vYmFy");
        unsigned char *dec = NULL;
        size_t len;
        assert_int_equal(util_base64_decode("Zm9v!mFy", 8, &dec, &len), -EINVAL);
        assert_int_equal(util_base64_decode("Zm9", 3, &dec, &len), -EINVAL);
        assert_int_equal(util_base64_decode("Z===", 4, &dec, &len), -EINVAL);
        assert_int_equal(util_base64_decode("Zg=a", 4, &dec, &len), -EINVAL);
}

static void test_utf8(void **state)
{
        assert_true(util_utf8_valid("hello", 5));
        assert_true(util_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
        assert_false(util_utf8_valid("a\0b", 3));
        assert_false(util_utf8_valid("\xc3", 1));               /* truncated */
        assert_false(util_utf8_valid("\xc0\xaf", 2));           /* overlong */
        assert_false(util_utf8_valid("\xed\xa0\x80", 3));       /* surrogate */
        assert_false(util_utf8_valid("\xff", 1));
}

static void test_secure_streq(void **state)
{
        assert_true(util_secure_streq("abc", "abc"));
        assert_false(util_secure_streq("abc", "abd"));
        assert_false(util_secure_streq("abc", "abcd"));
        assert_false(util_secure_streq("", "a"));
}

static void test_atomic_write_and_rm_rf(void **state)
{
        char tmpl[] = "/tmp/pbox-test-util-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(util_write_file_atomic_at(dfd, "rec.json", "{}", 2, 0600, &err), 0);
        assert_int_equal(util_write_file_atomic_at(dfd, "rec.json", "{\"a\":1}", 7, 0600, &err), 0);
        char *buf = NULL;
        size_t len = 0;
        assert_int_equal(util_read_file_at(dfd, "rec.json", 100, &buf, &len, &err), 0);
        assert_string_equal(buf, "{\"a\":1}");
        free(buf);
        struct stat st;
        assert_int_equal(fstatat(dfd, "rec.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(util_write_file_atomic_at(dfd, "a/b", "x", 1, 0600, &err), -EINVAL);
        /* read limits */
        assert_int_equal(util_read_file_at(dfd, "rec.json", 3, &buf, &len, &err), -EFBIG);

        /* rm -rf never follows a symlink out of the tree */
        char outside[] = "/tmp/pbox-test-outside-XXXXXX";
        assert_non_null(mkdtemp(outside));
        int ofd = open(outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(util_write_file_atomic_at(ofd, "keep", "k", 1, 0644, &err), 0);
        assert_int_equal(mkdirat(dfd, "tree", 0755), 0);
        assert_int_equal(mkdirat(dfd, "tree/sub", 0755), 0);
        assert_int_equal(symlinkat(outside, dfd, "tree/sub/link"), 0);
        assert_int_equal(util_rm_rf_at(dfd, "tree", &err), 0);
        assert_int_equal(faccessat(dfd, "tree", F_OK, 0), -1);
        assert_int_equal(faccessat(ofd, "keep", F_OK, 0), 0);
        assert_int_equal(util_rm_rf_at(dfd, "missing", &err), 0);
        close(ofd);
        assert_int_equal(util_rm_rf_at(AT_FDCWD, outside, &err), 0);
        close(dfd);
        assert_int_equal(util_rm_rf_at(AT_FDCWD, tmpl, &err), 0);
}

static void test_json_untrusted(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *j = NULL;
        assert_int_equal(json_parse_untrusted("{\"a\":1}", 7, true, &j, &err), 0);
        json_decref(j);
        assert_int_equal(json_parse_untrusted("[1]", 3, true, &j, &err), -EINVAL);
        assert_int_equal(json_parse_untrusted("{\"a\":1,\"a\":2}", 13, true, &j, &err), -EINVAL);
        assert_int_equal(json_parse_untrusted("{\"a\":", 5, true, &j, &err), -EINVAL);
        char deep[200];
        size_t n = 0;
        for (int i = 0; i < 40; i++)
                deep[n++] = '[';
        for (int i = 0; i < 40; i++)
                deep[n++] = ']';
        assert_int_equal(json_parse_untrusted(deep, n, false, &j, &err), -EINVAL);
        assert_non_null(strstr(err.message, "deeper"));
}

static void test_json_getters(void **state)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *j = json_loads("{\"s\":\"x\",\"n\":5,\"b\":true,\"v\":[\"a\",\"b\"],\"e\":{\"K\":\"V\"},"
                               "\"bad\":[1],\"badenv\":{\"A=B\":\"x\"}}", 0, NULL);
        assert_non_null(j);
        const char *s = NULL;
        assert_int_equal(json_get_string(j, "s", true, &s, &err), 0);
        assert_string_equal(s, "x");
        assert_int_equal(json_get_string(j, "n", true, &s, &err), -EINVAL);
        assert_non_null(strstr(err.message, "'n'"));
        assert_int_equal(json_get_string(j, "missing", true, &s, &err), -EINVAL);
        s = "untouched";
        assert_int_equal(json_get_string(j, "missing", false, &s, &err), 0);
        assert_string_equal(s, "untouched");
        int64_t n = 0;
        assert_int_equal(json_get_int(j, "n", true, 0, 10, &n, &err), 0);
        assert_int_equal(n, 5);
        assert_int_equal(json_get_int(j, "n", true, 6, 10, &n, &err), -ERANGE);
        char **v = NULL;
        assert_int_equal(json_get_strv(j, "v", true, 10, &v, &err), 0);
        assert_string_equal(v[1], "b");
        assert_null(v[2]);
        util_strv_free(v);
        assert_int_equal(json_get_strv(j, "v", true, 1, &v, &err), -E2BIG);
        assert_int_equal(json_get_strv(j, "bad", true, 10, &v, &err), -EINVAL);
        assert_int_equal(json_get_env_object(j, "e", 10, &v, &err), 0);
        assert_string_equal(v[0], "K=V");
        util_strv_free(v);
        assert_int_equal(json_get_env_object(j, "badenv", 10, &v, &err), -EINVAL);
        static const char *const allowed[] = { "s", "n", NULL };
        assert_int_equal(json_check_keys(j, allowed, &err), -EINVAL);
        assert_non_null(strstr(err.message, "unknown field"));
        json_decref(j);
}

static void test_cgroup_parsers(void **state)
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
        const char *pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(pure, &mnt, &err), 0);
        assert_string_equal(mnt, "/sys/fs/cgroup");
        free(mnt);
        /* a cgroup2 bind-mounted from a subtree is not the hierarchy root */
        const char *sub = "30 23 0:26 /foo /mnt/cg rw - cgroup2 cgroup2 rw\n";
        assert_int_equal(cgroup_parse_mountinfo_cgroup2(sub, &mnt, &err), -ENOENT);
        assert_int_equal(cgroup_parse_mountinfo_cgroup2("", &mnt, &err), -ENOENT);

        char *path = NULL;
        assert_int_equal(cgroup_parse_proc_cgroup("4:memory:/x\n0::/system.slice/pboxd.service\n", &path, &err), 0);
        assert_string_equal(path, "/system.slice/pboxd.service");
        free(path);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/\n", &path, &err), 0);
        assert_string_equal(path, "/");
        free(path);
        assert_int_equal(cgroup_parse_proc_cgroup("1:name=systemd:/\n", &path, &err), -ENOENT);
        assert_int_equal(cgroup_parse_proc_cgroup("0::/a/../b\n", &path, &err), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_prefix),
                cmocka_unit_test(test_base64_roundtrip),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_secure_streq),
                cmocka_unit_test(test_atomic_write_and_rm_rf),
                cmocka_unit_test(test_json_untrusted),
                cmocka_unit_test(test_json_getters),
                cmocka_unit_test(test_cgroup_parsers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
