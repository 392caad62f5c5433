/* test_config.c — unit tests of pboxd's configuration parser (conf.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cgroup.h"
#include "conf.h"

static void test_defaults(void **state)
{
        struct pboxd_config c;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&c);
        assert_string_equal(c.listen, "127.0.0.1:7269");
        assert_string_equal(c.state_dir, "/var/lib/pbox");
        assert_string_equal(c.runtime_dir, "/run/pbox");
        assert_int_equal(c.uid_base, 100000);
        assert_int_equal(c.uid_count, 65536);
        assert_int_equal(config_validate(&c, &err), 0);
        config_free(&c);
}

static void test_parse(void **state)
{
        struct pboxd_config c;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&c);
        const char *text = "# comment\n\n  listen = 0.0.0.0:8080  \nuid_base=200000 # trailing\n"
                           "max_image_bytes = 512M\nmax_output_bytes=64K\ncgroup_name = pbox-test.1\n"
                           "log_level = debug\n";
        assert_int_equal(config_parse_text(&c, text, "t.conf", &err), 0);
        assert_string_equal(c.listen, "0.0.0.0:8080");
        assert_int_equal(c.uid_base, 200000);
        assert_int_equal(c.max_image_bytes, 512ULL << 20);
        assert_int_equal(c.max_output_bytes, 64 << 10);
        assert_string_equal(c.cgroup_name, "pbox-test.1");
        assert_int_equal(c.log_level, 7);
        config_free(&c);
}

static void test_parse_limits(void **state)
{
        struct pboxd_config c;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&c);
        assert_int_equal(c.default_memory_bytes, 0);
        assert_false(c.allow_unenforced_limits);
        assert_int_equal(c.disk_backend, DISK_BACKEND_TMPFS);
        const char *text = "default_memory_bytes = 256M\nmax_memory_bytes = 2G\ndefault_swap_bytes = max\n"
                           "default_pids = 128\ndefault_cpus = 0.25\nmax_cpus = 1.5\ndefault_disk_bytes = 1G\n"
                           "exec_cpu_limit_ms = 2000\nallow_unenforced_limits = yes\ncgroup_delegation = no\n"
                           "disk_backend = ext4\n";
        assert_int_equal(config_parse_text(&c, text, "t.conf", &err), 0);
        assert_int_equal(c.default_memory_bytes, 256ULL << 20);
        assert_int_equal(c.max_memory_bytes, 2ULL << 30);
        assert_true(c.default_swap_bytes == CONFIG_SWAP_UNLIMITED);
        assert_int_equal(c.default_pids, 128);
        assert_int_equal(c.default_cpus_milli, 250);
        assert_int_equal(c.max_cpus_milli, 1500);
        assert_int_equal(c.default_disk_bytes, 1ULL << 30);
        assert_int_equal(c.exec_cpu_limit_ms, 2000);
        assert_true(c.allow_unenforced_limits);
        assert_int_equal(c.cgroup_delegation, CGROUP_DELEGATION_NO);
        assert_int_equal(c.disk_backend, DISK_BACKEND_EXT4);
        /* a default above its maximum is lowered to it */
        assert_int_equal(config_parse_text(&c, "default_memory_bytes = 4G\n", "t.conf", &err), 0);
        assert_int_equal(config_validate(&c, &err), 0);
        assert_int_equal(c.default_memory_bytes, 2ULL << 30);
        config_free(&c);
}

static void expect_error(const char *text, const char *needle)
{
        struct pboxd_config c;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&c);
        assert_int_equal(config_parse_text(&c, text, "bad.conf", &err), -EINVAL);
        if (!strstr(err.message, needle))
                fail_msg("error '%s' does not mention '%s'", err.message, needle);
        config_free(&c);
}

static void test_errors(void **state)
{
        expect_error("nonsense\n", "bad.conf:1");
        expect_error("\nfoo = 1\n", "unknown configuration key 'foo'");
        expect_error("uid_base = -1\n", "uid_base");
        expect_error("uid_base = 99999999999\n", "uid_base");
        expect_error("max_image_bytes = 5P\n", "suffix");
        expect_error("max_memory_bytes = 99999999T\n", "max_memory_bytes");
        expect_error("default_cpus = 0.0001\n", "default_cpus");
        expect_error("allow_unenforced_limits = maybe\n", "allow_unenforced_limits");
        expect_error("cgroup_delegation = sometimes\n", "cgroup_delegation");
        expect_error("disk_backend = xfs\n", "disk_backend");
        expect_error("state_dir = relative/path\n", "absolute");
        expect_error("state_dir = /a,b\n", "characters");
        expect_error("listen = 7269\n", "ADDR:PORT");
        expect_error("listen = 127.0.0.1:99999\n", "listen");
        expect_error("cgroup_name = ../escape\n", "cgroup_name");
        expect_error("cgroup_name = a/b\n", "cgroup_name");
        expect_error("log_level = loud\n", "log_level");
}

static void test_validate(void **state)
{
        struct pboxd_config c;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&c);
        assert_int_equal(config_set(&c, "uid_base", "0", &err), 0);
        assert_int_equal(config_validate(&c, &err), -EINVAL);
        assert_non_null(strstr(err.message, "host root"));
        assert_int_equal(config_set(&c, "uid_base", "4294967000", &err), 0);
        assert_int_equal(config_validate(&c, &err), -EINVAL);
        config_free(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_parse_limits),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_validate),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
