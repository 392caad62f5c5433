/* test_image.c — unit tests of the image store: reference normalisation,
 * digest parsing, and real loads through image_store_load() of archives made
 * by tests/integration/mkimage.py into a temporary state dir (good OCI and
 * docker-save images, every hostile kind, limits, concurrent loads), and
 * layer_unpack() directly on tars made here (replacement, owners, refusals
 * in both the unpacking and the verify-only mode).
 * The loads shift ownership and create whiteout devices: they need root and
 * are skipped otherwise. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <sys/mman.h>

#include "digest.h"
#include "image_store.h"
#include "layer_store.h"
#include "json.h"
#include "util.h"

#ifndef PBOX_SRCDIR
#define PBOX_SRCDIR "."
#endif

#define UID_BASE 100000
#define ID_COUNT 65536

/* ---- pure functions ----------------------------------------------------------- */

static void test_ref_normalize(void **state)
{
        static const struct {
                const char *in, *out;   /* out NULL: invalid */
        } cases[] = {
                { "busybox", "busybox:latest" },
                { "busybox:1.36", "busybox:1.36" },
                { "repo/x:1", "repo/x:1" },
                { "a/b/c", "a/b/c:latest" },
                { "my-image_x.y:v1.2-rc_3", "my-image_x.y:v1.2-rc_3" },
                { "a__b", "a__b:latest" },
                { "a--b", "a--b:latest" },
                { "localhost:5000/foo", "localhost:5000/foo:latest" },
                { "localhost:5000/foo:bar", "localhost:5000/foo:bar" },
                { "Registry.Example.com/team/app:TAG", "Registry.Example.com/team/app:TAG" },
                { "docker.io/library/busybox:1", "busybox:1" },
                { "docker.io/library/busybox", "busybox:latest" },
                { "docker.io/foo/bar", "foo/bar:latest" },
                { "index.docker.io/library/x:y", "x:y" },
                { "localhost/x", "localhost/x:latest" },
                { "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                  "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
                { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
                { "", NULL },
                { "Busybox", NULL },
                { "busy box", NULL },
                { "busybox\n", NULL },
                { "busybox\t:1", NULL },
                { "busybox:", NULL },
                { ":latest", NULL },
                { "a//b", NULL },
                { "/a", NULL },
                { "a/", NULL },
                { "-a", NULL },
                { "a-", NULL },
                { "a..b", NULL },
                { "a___b", NULL },
                { "a.-b", NULL },
                { "a_.b", NULL },
                { "a-.b", NULL },
                { "a-_b", NULL },
                { "busybox:.x", NULL },
                { "busybox:-x", NULL },
                { "busybox:a/b", NULL },
                { "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL },
                { "sha256:0123", NULL },
                { "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", NULL },
                { "host:99999999/x", NULL },
                { "ünicode", NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct pbox_error err = PBOX_ERROR_INIT;
                char *out = NULL;
                int r = image_ref_normalize(cases[i].in, &out, &err);
                if (cases[i].out) {
                        if (r != 0)
                                fail_msg("'%s': %s", cases[i].in, err.message);
                        assert_string_equal(out, cases[i].out);
                        free(out);
                } else {
                        if (r != -EINVAL)
                                fail_msg("'%s' accepted as '%s'", cases[i].in, out ? out : "?");
                        assert_null(out);
                        assert_true(err.message[0] != '\0');
                }
        }
        /* length limits */
        char big[400];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        char *out = NULL;
        assert_int_equal(image_ref_normalize(big, &out, NULL), -EINVAL);
        big[255] = '\0';
        assert_int_equal(image_ref_normalize(big, &out, NULL), 0);
        free(out);
        big[256] = '\0';
        big[255] = 'a';
        assert_int_equal(image_ref_normalize(big, &out, NULL), -EINVAL);
        assert_int_equal(image_ref_normalize(NULL, &out, NULL), -EINVAL);
}

static void test_digest(void **state)
{
        const char *hex = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        const char *ok = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_int_equal(digest_parse(ok, &hex, &err), 0);
        assert_ptr_equal(hex, ok + 7);
        assert_int_equal(digest_parse("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &hex, &err),
                         -EINVAL);
        assert_non_null(strstr(err.message, "sha512"));
        assert_int_equal(digest_parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", &hex, &err),
                         -EINVAL);
        assert_int_equal(digest_parse("sha256:ba7816bf", &hex, &err), -EINVAL);
        assert_int_equal(digest_parse("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", &hex, &err),
                         -EINVAL);
        assert_int_equal(digest_parse("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &hex, &err), -EINVAL);
        assert_int_equal(digest_parse(":x", &hex, &err), -EINVAL);
        assert_int_equal(digest_parse(NULL, &hex, &err), -EINVAL);
        assert_int_equal(digest_parse("sha256:", &hex, &err), -EINVAL);

        char out[65];
        struct digest_ctx *d = digest_new();
        digest_update(d, "a", 1);
        digest_update(d, "bc", 2);
        digest_final_hex(d, out);
        assert_string_equal(out, ok + 7);
        d = digest_new();
        digest_final_hex(d, out);
        assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        digest_free(digest_new());
}

/* ---- store fixture -------------------------------------------------------------- */

struct fx {
        char base[64];          /* /tmp/pbox-imgtest-XXXXXX */
        char state[96];         /* base/state */
        char work[96];          /* base/work: archives */
        char sentinel[96];      /* base/outside: must never change */
        char sentinel_tmp[96];  /* /tmp/pbox-hostile-sentinel-<pid> */
        struct image_store *store;
        struct image_store_options opts;
};

static int fx_setup(void **state)
{
        struct fx *f = util_xcalloc(1, sizeof *f);
        strcpy(f->base, "/tmp/pbox-imgtest-XXXXXX");
        if (!mkdtemp(f->base))
                return -1;
        snprintf(f->state, sizeof f->state, "%s/state", f->base);
        snprintf(f->work, sizeof f->work, "%s/work", f->base);
        snprintf(f->sentinel, sizeof f->sentinel, "%s/outside", f->base);
        snprintf(f->sentinel_tmp, sizeof f->sentinel_tmp, "/tmp/pbox-hostile-sentinel-%d", (int) getpid());
        if (mkdir(f->work, 0700) < 0 || mkdir(f->sentinel, 0755) < 0)
                return -1;
        mkdir(f->sentinel_tmp, 0755);
        char p[160];
        snprintf(p, sizeof p, "%s/victim", f->sentinel);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || util_write_all(fd, "original\n", 9) < 0)
                return -1;
        close(fd);
        f->opts = (struct image_store_options) {
                .uid_base = UID_BASE, .gid_base = UID_BASE, .id_count = ID_COUNT,
                .max_archive_bytes = 256u << 20, .max_layer_bytes = 256u << 20,
        };
        *state = f;
        return 0;
}

static int fx_teardown(void **state)
{
        struct fx *f = *state;
        image_store_free(f->store);
        util_rm_rf_at(AT_FDCWD, f->base, NULL);
        util_rm_rf_at(AT_FDCWD, f->sentinel_tmp, NULL);
        free(f);
        return 0;
}

static bool need_root(void)
{
        return geteuid() == 0;
}

static void fx_open(struct fx *f)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        image_store_free(f->store);
        f->store = NULL;
        if (image_store_open(f->state, &f->opts, &f->store, &err) < 0)
                fail_msg("image_store_open: %s", err.message);
}

/* Run mkimage.py with args (a shell fragment); its stdout as parsed JSON. */
static json_t *mkimage(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *mkimage(struct fx *f, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *args = NULL;
        if (vasprintf(&args, fmt, ap) < 0)
                abort();
        va_end(ap);
        char *cmd = util_xasprintf("cd '%s' && python3 '%s/tests/integration/mkimage.py' %s > mkimage.out",
                                   f->work, PBOX_SRCDIR, args);
        int r = system(cmd);
        if (r != 0)
                fail_msg("mkimage failed (%d): %s", r, cmd);
        free(cmd);
        free(args);
        char out[160];
        snprintf(out, sizeof out, "%s/mkimage.out", f->work);
        json_error_t jerr;
        json_t *j = json_load_file(out, 0, &jerr);
        if (!j)
                fail_msg("mkimage output: %s", jerr.text);
        return j;
}

static int load(struct fx *f, const char *archive, const char *name, json_t **ret, struct pbox_error *err)
{
        char p[200];
        snprintf(p, sizeof p, "%s/%s", f->work, archive);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        json_t *rec = NULL;
        int r = image_store_load(f->store, fd, name, &rec, err);
        close(fd);
        if (ret)
                *ret = rec;
        else
                json_decref(rec);
        return r;
}

static json_t *load_ok(struct fx *f, const char *archive, const char *name)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *rec = NULL;
        if (load(f, archive, name, &rec, &err) < 0)
                fail_msg("load %s: %s", archive, err.message);
        return rec;
}

static int count_entries(struct fx *f, const char *sub, const char *suffix)
{
        char p[200];
        snprintf(p, sizeof p, "%s/%s", f->state, sub);
        DIR *d = opendir(p);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
                if (suffix && (l < sl || strcmp(de->d_name + l - sl, suffix) != 0))
                        continue;
                n++;
        }
        closedir(d);
        return n;
}

static char *layer_path(struct fx *f, json_t *rec, size_t i, const char *rel)
{
        const char *diff = json_string_value(json_array_get(json_object_get(rec, "layers"), i));
        assert_non_null(diff);
        return util_xasprintf("%s/layers/%s/%s", f->state, diff + 7, rel);
}

/* A listing of a tree (names, types, sizes, modes, mtimes) to compare. */
static char *tree_listing(const char *dir)
{
        char *cmd = util_xasprintf("find '%s' -printf '%%p %%y %%s %%m %%T@\\n' 2>/dev/null | sort", dir);
        FILE *p = popen(cmd, "r");
        free(cmd);
        assert_non_null(p);
        char *buf = NULL;
        assert_int_equal(util_read_all(fileno(p), 1 << 20, &buf, NULL), 0);
        pclose(p);
        return buf;
}

static void assert_store_empty_of_loads(struct fx *f, int layers, int images)
{
        assert_int_equal(count_entries(f, "layers", NULL), layers);
        assert_int_equal(count_entries(f, "images", ".json"), images);
        assert_int_equal(count_entries(f, "tmp", NULL), 0);
}

/* ---- good images -------------------------------------------------------------- */

#define LOWER "'[{\"type\":\"dir\",\"path\":\"etc\"},{\"type\":\"file\",\"path\":\"etc/a\",\"data\":\"A\"}," \
              "{\"type\":\"file\",\"path\":\"etc/b\",\"data\":\"B\",\"mode\":384,\"uid\":1000,\"gid\":1001}," \
              "{\"type\":\"dir\",\"path\":\"opt\"},{\"type\":\"file\",\"path\":\"opt/lower\",\"data\":\"L\"}," \
              "{\"type\":\"symlink\",\"path\":\"etc/link\",\"target\":\"/etc/passwd\"}," \
              "{\"type\":\"hardlink\",\"path\":\"etc/hard\",\"target\":\"etc/b\"}]'"
#define UPPER "'[{\"type\":\"whiteout\",\"path\":\"etc/a\"},{\"type\":\"opaque\",\"path\":\"opt\"}," \
              "{\"type\":\"file\",\"path\":\"opt/upper\",\"data\":\"U\"},{\"type\":\"whiteout\",\"path\":\"gone/deep\"}]'"

static void test_load_oci(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        json_t *mk = mkimage(f, "oci two.tar --name test/two:1 --env A=1 --cmd '[\"sh\",\"-c\",\"x\"]' --workdir /w "
                                "--user 1:2 --layer " LOWER " --compress zstd --layer " UPPER);
        json_t *rec = load_ok(f, "two.tar", NULL);

        /* the public record */
        assert_string_equal(json_string_value(json_object_get(rec, "id")),
                            json_string_value(json_object_get(mk, "config")));
        char want_digest[80];
        snprintf(want_digest, sizeof want_digest, "sha256:%s", json_string_value(json_object_get(mk, "manifest")));
        assert_string_equal(json_string_value(json_object_get(rec, "digest")), want_digest);
        assert_true(json_equal(json_object_get(rec, "layers"), json_object_get(mk, "layers")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "test/two:1");
        assert_int_equal(json_integer_value(json_object_get(rec, "size")), 4);
        json_t *cfg = json_object_get(rec, "config");
        assert_string_equal(json_string_value(json_array_get(json_object_get(cfg, "env"), 0)), "A=1");
        assert_int_equal(json_array_size(json_object_get(cfg, "cmd")), 3);
        assert_string_equal(json_string_value(json_object_get(cfg, "working_dir")), "/w");
        assert_string_equal(json_string_value(json_object_get(cfg, "user")), "1:2");
        assert_non_null(json_string_value(json_object_get(rec, "created")));
        assert_store_empty_of_loads(f, 2, 1);

        /* lower layer: files, shifted owners, modes, links */
        struct stat st;
        _cleanup_free_ char *b = layer_path(f, rec, 0, "etc/b");
        assert_int_equal(lstat(b, &st), 0);
        assert_int_equal(st.st_uid, UID_BASE + 1000);
        assert_int_equal(st.st_gid, UID_BASE + 1001);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_nlink, 2);
        assert_int_equal(st.st_mtime, 1700000000);
        _cleanup_free_ char *link = layer_path(f, rec, 0, "etc/link");
        assert_int_equal(lstat(link, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(st.st_uid, UID_BASE);
        char tgt[64] = { 0 };
        assert_int_equal(readlink(link, tgt, sizeof tgt - 1), 11);
        assert_string_equal(tgt, "/etc/passwd");
        _cleanup_free_ char *root0 = layer_path(f, rec, 0, "");
        assert_int_equal(stat(root0, &st), 0);
        assert_int_equal(st.st_uid, UID_BASE);
        assert_int_equal(st.st_mode & 07777, 0755);
        _cleanup_free_ char *etc = layer_path(f, rec, 0, "etc");
        assert_int_equal(stat(etc, &st), 0);
        assert_int_equal(st.st_mtime, 1700000000);      /* dir times applied after its children */

        /* upper layer: whiteout char dev 0/0, opaque dir, implicit parent */
        _cleanup_free_ char *wh = layer_path(f, rec, 1, "etc/a");
        assert_int_equal(lstat(wh, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(major(st.st_rdev), 0);
        assert_int_equal(minor(st.st_rdev), 0);
        assert_int_equal(st.st_uid, UID_BASE);
        _cleanup_free_ char *wh2 = layer_path(f, rec, 1, "gone/deep");
        assert_int_equal(lstat(wh2, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        _cleanup_free_ char *opt = layer_path(f, rec, 1, "opt");
        char val[8] = { 0 };
        assert_int_equal(getxattr(opt, "trusted.overlay.opaque", val, sizeof val), 1);
        assert_string_equal(val, "y");
        _cleanup_free_ char *nowh = layer_path(f, rec, 1, "etc/.wh.a");
        assert_int_equal(lstat(nowh, &st), -1);
        _cleanup_free_ char *noopq = layer_path(f, rec, 1, "opt/.wh..wh..opq");
        assert_int_equal(lstat(noopq, &st), -1);
        /* store directories are private */
        char p[200];
        snprintf(p, sizeof p, "%s/layers", f->state);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        snprintf(p, sizeof p, "%s/tmp", f->state);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* resolve by name, id, sha256:id */
        const char *id = json_string_value(json_object_get(rec, "id"));
        char ref[80];
        const char *refs[] = { "test/two:1", id, ref };
        snprintf(ref, sizeof ref, "sha256:%s", id);
        for (size_t i = 0; i < ARRAY_SIZE(refs); i++) {
                struct image_info *info = NULL;
                struct pbox_error err = PBOX_ERROR_INIT;
                if (image_store_resolve(f->store, refs[i], &info, &err) < 0)
                        fail_msg("resolve %s: %s", refs[i], err.message);
                assert_string_equal(info->id, id);
                assert_int_equal(info->n_layers, 2);
                _cleanup_free_ char *l0 = layer_path(f, rec, 0, "");
                l0[strlen(l0) - 1] = '\0';
                assert_string_equal(info->layer_dirs[0], l0);
                assert_null(info->layer_dirs[2]);
                assert_string_equal(info->env[0], "A=1");
                assert_string_equal(info->cmd[0], "sh");
                assert_null(info->entrypoint[0]);
                assert_string_equal(info->working_dir, "/w");
                assert_string_equal(info->user, "1:2");
                image_info_free(info);
        }
        struct image_info *info = NULL;
        struct pbox_error err = PBOX_ERROR_INIT;
        assert_int_equal(image_store_resolve(f->store, "test/two:2", &info, &err), -ENOENT);
        assert_non_null(strstr(err.message, "test/two:2"));
        assert_int_equal(image_store_resolve(f->store, "bad name", &info, &err), -EINVAL);

        /* loading again stores nothing new; a second name is added */
        json_t *rec2 = load_ok(f, "two.tar", "other:x");
        assert_store_empty_of_loads(f, 2, 1);
        json_t *names = json_object_get(rec2, "names");
        assert_int_equal(json_array_size(names), 2);
        json_decref(rec2);

        /* list */
        json_t *list = NULL;
        assert_int_equal(image_store_list(f->store, &list, &err), 0);
        assert_int_equal(json_array_size(list), 1);
        json_decref(list);

        /* a different image sharing the lower layer takes the name test/two:1 */
        json_decref(mkimage(f, "oci three.tar --name test/two:1 --layer " LOWER " --layer '[{\"type\":\"file\",\"path\":\"new\",\"data\":\"N\"}]'"));
        json_t *rec3 = load_ok(f, "three.tar", NULL);
        assert_store_empty_of_loads(f, 3, 2);
        assert_int_equal(image_store_resolve(f->store, "test/two:1", &info, &err), 0);
        assert_string_equal(info->id, json_string_value(json_object_get(rec3, "id")));
        image_info_free(info);
        assert_int_equal(image_store_resolve(f->store, id, &info, &err), 0);   /* the old one, by id */
        image_info_free(info);
        assert_int_equal(image_store_resolve(f->store, "other:x", &info, &err), 0);
        assert_string_equal(info->id, id);
        image_info_free(info);

        /* remove: a name, then the last name removes the image and its own layer */
        assert_int_equal(image_store_remove(f->store, "other:x", &err), 0);
        assert_store_empty_of_loads(f, 2, 1);   /* old image had no other name: gone, upper layer gc'd */
        assert_int_equal(image_store_resolve(f->store, id, &info, &err), -ENOENT);
        assert_int_equal(image_store_remove(f->store, "other:x", &err), -ENOENT);
        assert_int_equal(image_store_remove(f->store, json_string_value(json_object_get(rec3, "id")), &err), 0);
        assert_store_empty_of_loads(f, 0, 0);
        assert_int_equal(count_entries(f, "blobs/sha256", NULL), 0);

        json_decref(rec3);
        json_decref(rec);
        json_decref(mk);
}

static void test_load_formats(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *rec;

        /* docker save, legacy layout with a duplicated (symlinked) layer, uncompressed */
        json_decref(mkimage(f, "docker d1.tar --name dock/legacy:1 --docker-legacy --compress none "
                                "--layer '[{\"type\":\"file\",\"path\":\"x\",\"data\":\"X\"}]' "
                                "--layer '[{\"type\":\"file\",\"path\":\"x\",\"data\":\"X\"}]'"));
        rec = load_ok(f, "d1.tar", NULL);
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "dock/legacy:1");
        assert_int_equal(json_array_size(json_object_get(rec, "layers")), 2);
        assert_int_equal(count_entries(f, "layers", NULL), 1);
        json_decref(rec);

        /* docker save, blobs/sha256 layout, gzip + zstd */
        json_decref(mkimage(f, "docker d2.tar --name docker.io/library/dock:2 "
                                "--layer '[{\"type\":\"file\",\"path\":\"y\",\"data\":\"Y\"}]' --compress zstd "
                                "--layer '[{\"type\":\"file\",\"path\":\"z\",\"data\":\"Z\"}]'"));
        rec = load_ok(f, "d2.tar", NULL);
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "dock:2");
        json_decref(rec);

        /* OCI with a nested index (arm64 entry whose blobs are absent) */
        json_decref(mkimage(f, "oci n.tar --nested --name nested:1 --layer '[{\"type\":\"file\",\"path\":\"n\"}]'"));
        rec = load_ok(f, "n.tar", NULL);
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "nested:1");
        json_decref(rec);

        /* only a tag: needs a name */
        json_decref(mkimage(f, "oci t.tar --ref-name latest --layer '[{\"type\":\"file\",\"path\":\"t\"}]'"));
        assert_int_equal(load(f, "t.tar", NULL, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "only the tag 'latest'"));
        rec = load_ok(f, "t.tar", "tagged");
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "tagged:latest");
        json_decref(rec);
        /* no name at all */
        json_decref(mkimage(f, "oci u.tar --layer '[{\"type\":\"file\",\"path\":\"u\"}]'"));
        assert_int_equal(load(f, "u.tar", NULL, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "pass a name"));
        /* containerd name wins over a bare tag */
        json_decref(mkimage(f, "oci c.tar --ref-name 3 --containerd-name docker.io/library/ctr:3 "
                                "--layer '[{\"type\":\"file\",\"path\":\"c\"}]'"));
        rec = load_ok(f, "c.tar", NULL);
        assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "names"), 0)), "ctr:3");
        json_decref(rec);
        /* a bad override */
        assert_int_equal(load(f, "c.tar", "Bad Name", NULL, &err), -EINVAL);
        assert_int_equal(load(f, "c.tar", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                              NULL, &err), -EINVAL);
        assert_int_equal(count_entries(f, "tmp", NULL), 0);

        /* the busybox image of the recipe, when the integration harness has built it */
        char bb[512];
        const char *builddir = getenv("PBOX_BUILDDIR");
        snprintf(bb, sizeof bb, "%s/tests/images/busybox.tar", builddir ? builddir : PBOX_SRCDIR);
        if (access(bb, R_OK) == 0) {
                print_message("loading %s\n", bb);
                int fd = open(bb, O_RDONLY | O_CLOEXEC);
                json_t *r = NULL;
                if (image_store_load(f->store, fd, "busybox", &r, &err) < 0)
                        fail_msg("busybox: %s", err.message);
                close(fd);
                assert_string_equal(json_string_value(json_array_get(json_object_get(r, "names"), 0)), "busybox:latest");
                json_decref(r);
                struct image_info *info = NULL;
                assert_int_equal(image_store_resolve(f->store, "busybox", &info, &err), 0);
                _cleanup_free_ char *sh = util_xasprintf("%s/bin/sh", info->layer_dirs[info->n_layers - 1]);
                struct stat st;
                assert_int_equal(lstat(sh, &st), 0);
                assert_true(S_ISLNK(st.st_mode));
                image_info_free(info);
        }
}

/* ---- hostile images --------------------------------------------------------------- */

static void run_hostile(struct fx *f, const char *kind, const char *expect_override, const char *extra)
{
        char *passwd_before = tree_listing("/etc/passwd");
        char *outside_before = tree_listing(f->sentinel);
        char *tmp_before = tree_listing(f->sentinel_tmp);
        int layers_before = count_entries(f, "layers", NULL);
        int images_before = count_entries(f, "images", ".json");

        char out[64];
        snprintf(out, sizeof out, "hostile-%s.tar", kind);
        json_t *mk = mkimage(f, "hostile %s %s --target '%s' %s", kind, out,
                             strcmp(kind, "symlink-overwrite") && strcmp(kind, "symlink-dir-replace") ? f->sentinel_tmp
                                                                                                       : f->sentinel,
                             extra ? extra : "");
        const char *expect = expect_override ? expect_override : json_string_value(json_object_get(mk, "expect"));
        const char *needle = json_string_value(json_object_get(mk, "needle"));
        struct pbox_error err = PBOX_ERROR_INIT;
        json_t *rec = NULL;
        int r = load(f, out, NULL, &rec, &err);
        print_message("hostile %-20s %s: %s\n", kind, r < 0 ? "rejected" : "accepted", r < 0 ? err.message : "");
        if (!strcmp(expect, "reject")) {
                if (r >= 0)
                        fail_msg("hostile %s was accepted", kind);
                if (needle && *needle && !strstr(err.message, needle))
                        fail_msg("hostile %s: error '%s' does not name '%s'", kind, err.message, needle);
                assert_int_equal(count_entries(f, "layers", NULL), layers_before);
                assert_int_equal(count_entries(f, "images", ".json"), images_before);
        } else {
                if (r < 0)
                        fail_msg("hostile %s was rejected: %s", kind, err.message);
                json_t *checks = json_object_get(mk, "checks");
                size_t nl = json_array_size(json_object_get(rec, "layers"));
                _cleanup_free_ char *dir = layer_path(f, rec, nl - 1, "");
                _cleanup_free_ char *cj = json_dump_compact(checks);
                _cleanup_free_ char *cmd = util_xasprintf("python3 '%s/tests/integration/mkimage.py' check-layer '%s' '%s'",
                                                          PBOX_SRCDIR, dir, cj);
                if (system(cmd) != 0)
                        fail_msg("hostile %s: layer checks failed", kind);
                assert_int_equal(image_store_remove(f->store, json_string_value(json_object_get(rec, "id")), &err), 0);
                json_decref(rec);
        }
        assert_int_equal(count_entries(f, "tmp", NULL), 0);
        char *passwd_after = tree_listing("/etc/passwd");
        char *outside_after = tree_listing(f->sentinel);
        char *tmp_after = tree_listing(f->sentinel_tmp);
        assert_string_equal(passwd_before, passwd_after);
        assert_string_equal(outside_before, outside_after);
        assert_string_equal(tmp_before, tmp_after);
        free(passwd_before);
        free(passwd_after);
        free(outside_before);
        free(outside_after);
        free(tmp_before);
        free(tmp_after);
        json_decref(mk);
}

static void test_hostile_all(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        char *cmd = util_xasprintf("python3 '%s/tests/integration/mkimage.py' hostile --list", PBOX_SRCDIR);
        FILE *p = popen(cmd, "r");
        free(cmd);
        assert_non_null(p);
        char line[256];
        int n = 0;
        while (fgets(line, sizeof line, p)) {
                char kind[128], expect[32];
                if (sscanf(line, "%127s %31s", kind, expect) != 2)
                        continue;
                run_hostile(f, kind, NULL, NULL);
                n++;
        }
        assert_int_equal(pclose(p), 0);
        assert_true(n >= 20);
        assert_store_empty_of_loads(f, 0, 0);
}

/* A config claiming the diff id of a layer the store already has, with other
 * content, must not get that layer. */
static void test_diffid_steal(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        json_t *mk = mkimage(f, "oci victim.tar --name victim:1 --layer '[{\"type\":\"file\",\"path\":\"secret\",\"data\":\"S\"}]'");
        json_t *rec = load_ok(f, "victim.tar", NULL);
        const char *diff = json_string_value(json_array_get(json_object_get(rec, "layers"), 0));
        char extra[100];
        snprintf(extra, sizeof extra, "--steal-diffid %s", diff + 7);
        run_hostile(f, "bad-diffid", NULL, extra);
        assert_store_empty_of_loads(f, 1, 1);
        json_decref(rec);
        json_decref(mk);
}

static void test_limits(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        struct pbox_error err = PBOX_ERROR_INIT;
        json_decref(mkimage(f, "oci big.tar --name big:1 --layer '[{\"type\":\"file\",\"path\":\"a\",\"data\":\"%0200d\"},"
                               "{\"type\":\"file\",\"path\":\"b\"},{\"type\":\"file\",\"path\":\"c\"},{\"type\":\"file\",\"path\":\"d\"}]'", 0));

        f->opts.max_layer_bytes = 2048;
        fx_open(f);
        assert_int_equal(load(f, "big.tar", NULL, NULL, &err), -EFBIG);
        assert_non_null(strstr(err.message, "limit"));
        assert_store_empty_of_loads(f, 0, 0);

        f->opts.max_layer_bytes = 0;
        f->opts.max_layer_entries = 3;
        fx_open(f);
        assert_int_equal(load(f, "big.tar", NULL, NULL, &err), -E2BIG);
        assert_non_null(strstr(err.message, "more than 3 entries"));
        assert_store_empty_of_loads(f, 0, 0);

        f->opts.max_layer_entries = 0;
        f->opts.max_archive_bytes = 3000;
        fx_open(f);
        assert_int_equal(load(f, "big.tar", NULL, NULL, &err), -EFBIG);
        assert_non_null(strstr(err.message, "larger than the limit"));
        assert_store_empty_of_loads(f, 0, 0);

        f->opts.max_archive_bytes = 0;
        fx_open(f);
        json_decref(load_ok(f, "big.tar", NULL));
        assert_store_empty_of_loads(f, 1, 1);

        /* a non-seekable source: a pipe */
        int pfd[2];
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char p[200];
                snprintf(p, sizeof p, "%s/big.tar", f->work);
                int fd = open(p, O_RDONLY);
                char buf[4096];
                ssize_t n;
                while ((n = read(fd, buf, sizeof buf)) > 0)
                        if (write(pfd[1], buf, (size_t) n) != n)
                                _exit(1);
                _exit(0);
        }
        close(pfd[1]);
        json_t *rec = NULL;
        if (image_store_load(f->store, pfd[0], "piped:1", &rec, &err) < 0)
                fail_msg("pipe load: %s", err.message);
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        json_decref(rec);
        assert_store_empty_of_loads(f, 1, 1);
}

/* Several loads in forked children at once, sharing layers. */
static void test_concurrent(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        for (int i = 0; i < 4; i++)
                json_decref(mkimage(f, "oci c%d.tar --name conc:%d --layer " LOWER " --layer "
                                       "'[{\"type\":\"file\",\"path\":\"f%d\"}]'", i, i, i % 2));
        pid_t pids[4];
        for (int i = 0; i < 4; i++) {
                pids[i] = fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0) {
                        char name[32];
                        snprintf(name, sizeof name, "c%d.tar", i);
                        struct pbox_error err = PBOX_ERROR_INIT;
                        char p[200];
                        snprintf(p, sizeof p, "%s/%s", f->work, name);
                        int fd = open(p, O_RDONLY | O_CLOEXEC);
                        json_t *rec = NULL;
                        int r = image_store_load(f->store, fd, NULL, &rec, &err);
                        if (r < 0)
                                fprintf(stderr, "child %d: %s\n", i, err.message);
                        _exit(r < 0 ? 1 : 0);
                }
        }
        for (int i = 0; i < 4; i++) {
                int st = 0;
                assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        /* lower shared by all, two distinct uppers (f0 / f1), two distinct configs per name */
        assert_int_equal(count_entries(f, "layers", NULL), 3);
        assert_int_equal(count_entries(f, "tmp", NULL), 0);
        json_t *list = NULL;
        assert_int_equal(image_store_list(f->store, &list, NULL), 0);
        size_t names = 0, i;
        json_t *v;
        json_array_foreach(list, i, v)
                names += json_array_size(json_object_get(v, "names"));
        assert_int_equal(names, 4);
        json_decref(list);
}

/* True when some process waits for a flock on the inode ino (/proc/locks). */
static bool flock_waiter_on(ino_t ino)
{
        FILE *f = fopen("/proc/locks", "re");
        if (!f)
                return false;
        char line[256], suffix[64];
        snprintf(suffix, sizeof suffix, ":%llu ", (unsigned long long) ino);
        bool found = false;
        while (fgets(line, sizeof line, f))
                if (strstr(line, "->") && strstr(line, "FLOCK") && strstr(line, suffix))
                        found = true;
        fclose(f);
        return found;
}

/* A layer the load found in the store (and only verified) is removed before
 * the load commits: the commit notices and unpacks it after all. */
static void test_layer_vanishes(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        json_decref(mkimage(f, "oci a.tar --name a:1 --layer " LOWER));
        json_t *mk = mkimage(f, "oci b.tar --name b:1 --layer " LOWER " --layer '[{\"type\":\"file\",\"path\":\"b\"}]'");
        json_t *a = load_ok(f, "a.tar", NULL);
        const char *l1 = json_string_value(json_array_get(json_object_get(a, "layers"), 0)) + 7;

        /* Hold the store lock shared: the load gets through its start (shared)
         * and blocks at the commit (exclusive). */
        char p[256];
        snprintf(p, sizeof p, "%s/images/.lock", f->state);
        int lk = open(p, O_RDWR | O_CLOEXEC);
        assert_true(lk >= 0);
        assert_int_equal(flock(lk, LOCK_SH), 0);
        struct stat st;
        assert_int_equal(fstat(lk, &st), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* the inherited fd shares the parent's lock: drop it, or the
                 * child would wait for itself */
                close(lk);
                struct pbox_error err = PBOX_ERROR_INIT;
                char q[200];
                snprintf(q, sizeof q, "%s/b.tar", f->work);
                int fd = open(q, O_RDONLY | O_CLOEXEC);
                json_t *rec = NULL;
                int r = image_store_load(f->store, fd, NULL, &rec, &err);
                if (r < 0)
                        fprintf(stderr, "child: %s\n", err.message);
                _exit(r < 0 ? 1 : 0);
        }
        int waited = 0;
        while (!flock_waiter_on(st.st_ino) && waited++ < 3000)
                usleep(10000);
        if (!flock_waiter_on(st.st_ino)) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(lk);
                fail_msg("the load never reached its commit");
        }
        /* what a concurrent removal of image a would do */
        snprintf(p, sizeof p, "%s/images/%s.json", f->state, json_string_value(json_object_get(a, "id")));
        assert_int_equal(unlink(p), 0);
        snprintf(p, sizeof p, "%s/layers/%s", f->state, l1);
        assert_int_equal(util_rm_rf_at(AT_FDCWD, p, NULL), 0);
        close(lk);
        int status = 0;
        for (waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited++) {
                if (waited > 6000) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        fail_msg("the load did not finish");
                }
                usleep(10000);
        }
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(access(p, F_OK), 0);
        _cleanup_free_ char *etc_b = util_xasprintf("%s/etc/b", p);
        assert_int_equal(access(etc_b, F_OK), 0);
        assert_store_empty_of_loads(f, 2, 1);
        json_decref(a);
        json_decref(mk);
}

/* Staging dirs left by a crashed load are cleaned at open; live ones are not. */
static void test_stale_tmp(void **state)
{
        struct fx *f = *state;
        if (!need_root())
                skip();
        fx_open(f);
        char p[200];
        snprintf(p, sizeof p, "%s/tmp/load-dead", f->state);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof p, "%s/tmp/load-live", f->state);
        assert_int_equal(mkdir(p, 0700), 0);
        int live = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(live >= 0);
        assert_int_equal(flock(live, LOCK_EX), 0);
        /* and a layer dir no record references */
        snprintf(p, sizeof p, "%s/layers/%064d", f->state, 0);
        assert_int_equal(mkdir(p, 0700), 0);
        fx_open(f);
        assert_int_equal(count_entries(f, "tmp", NULL), 1);
        assert_int_equal(count_entries(f, "layers", NULL), 0);
        close(live);
        fx_open(f);
        assert_int_equal(count_entries(f, "tmp", NULL), 0);
}

/* ---- layer_unpack directly: the layer's own rules on top of tarentry.c's ---- */

struct lent {
        const char *name;
        char type;              /* f file, d dir, l symlink, h hardlink, c chardev */
        const char *data;       /* file data, or link target */
        unsigned mode;
        int64_t uid;
};

/* A tar of the entries in a memfd, at offset 0. */
static int layer_tar(const struct lent *e, size_t n)
{
        size_t cap = 1 << 20, used = 0;
        char *buf = util_xmalloc(cap);
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *ae = archive_entry_new();
                archive_entry_set_pathname(ae, e[i].name);
                switch (e[i].type) {
                case 'f':
                        archive_entry_set_filetype(ae, AE_IFREG);
                        archive_entry_set_size(ae, (la_int64_t) strlen(e[i].data));
                        break;
                case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
                case 'l': archive_entry_set_filetype(ae, AE_IFLNK); archive_entry_set_symlink(ae, e[i].data); break;
                case 'h': archive_entry_set_filetype(ae, AE_IFREG); archive_entry_set_hardlink(ae, e[i].data); break;
                case 'c': archive_entry_set_filetype(ae, AE_IFCHR); archive_entry_set_rdev(ae, makedev(1, 3)); break;
                }
                archive_entry_set_perm(ae, e[i].mode ? e[i].mode : e[i].type == 'd' ? 0755 : 0644);
                archive_entry_set_uid(ae, e[i].uid);
                archive_entry_set_gid(ae, e[i].uid);
                archive_entry_set_mtime(ae, 1000000000, 0);
                assert_true(archive_write_header(a, ae) >= ARCHIVE_WARN);
                if (e[i].type == 'f')
                        assert_int_equal(archive_write_data(a, e[i].data, strlen(e[i].data)), (la_ssize_t) strlen(e[i].data));
                archive_entry_free(ae);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        int fd = memfd_create("layer", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(util_write_all(fd, buf, used), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        free(buf);
        return fd;
}

/* Unpack into a fresh dir base/<name> (root_fd -1 with verify); returns the
 * result of layer_unpack, err set. */
static int unpack(const char *base, const char *name, bool verify, const struct lent *e, size_t n,
                  struct pbox_error *err)
{
        int src = layer_tar(e, n);
        char *dir = util_xasprintf("%s/%s", base, name);
        assert_int_equal(mkdir(dir, 0700), 0);
        int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(root >= 0);
        struct layer_unpack_opts o = { .uid_base = UID_BASE, .gid_base = UID_BASE, .id_count = ID_COUNT };
        struct layer_unpack_result res;
        int r = layer_unpack(src, verify ? -1 : root, &o, &res, err);
        close(root);
        close(src);
        free(dir);
        return r;
}

static void test_layer_rules(void **state)
{
        (void) state;
        if (!need_root())
                skip();
        char base[] = "/tmp/pbox-layer-XXXXXX";
        assert_non_null(mkdtemp(base));
        char *outside = util_xasprintf("%s/outside", base);
        assert_int_equal(mkdir(outside, 0755), 0);
        struct pbox_error err = PBOX_ERROR_INIT;
        char p[256];
        struct stat st;

        /* a later entry replaces what an earlier one made: a directory (with
         * content) by a file, a file by a directory, a symlink by a file */
        const struct lent replace[] = {
                { "d", 'd', NULL, 0, 0 }, { "d/x", 'f', "x", 0, 0 }, { "d", 'f', "file now", 0, 0 },
                { "f", 'f', "y", 0, 0 }, { "f", 'd', NULL, 0750, 0 },
                { "s", 'l', "../outside", 0, 0 }, { "s", 'f', "z", 0, 0 },
                { "implicit/deep/file", 'f', "q", 06755, 5 }, { "dev", 'c', NULL, 0, 0 },
        };
        if (unpack(base, "replace", false, replace, ARRAY_SIZE(replace), &err) < 0)
                fail_msg("replace: %s", err.message);
        snprintf(p, sizeof p, "%s/replace/d", base);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        snprintf(p, sizeof p, "%s/replace/f", base);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0750);
        snprintf(p, sizeof p, "%s/replace/s", base);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        /* owners shifted, setuid/setgid stripped, implicit parents owned by the mapped root */
        snprintf(p, sizeof p, "%s/replace/implicit/deep/file", base);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, UID_BASE + 5);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(p, sizeof p, "%s/replace/implicit/deep", base);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, UID_BASE);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(p, sizeof p, "%s/replace/dev", base);
        assert_int_equal(lstat(p, &st), -1);

        /* refused, in both modes, naming the entry */
        char *longtarget = util_xmalloc(4097);
        memset(longtarget, 'x', 4096);
        longtarget[4096] = '\0';
        const struct lent through[] = { { "l", 'l', outside, 0, 0 }, { "l/pwned", 'f', "x", 0, 0 } };
        const struct lent too_long[] = { { "long", 'l', longtarget, 0, 0 } };
        const struct lent top_file[] = { { ".", 'f', "x", 0, 0 } };
        const struct lent bad_uid[] = { { "u", 'f', "x", 0, ID_COUNT } };
        const struct lent hl_out[] = { { "h", 'h', "../outside", 0, 0 } };
        const struct {
                const char *what;
                const struct lent *e;
                size_t n;
                int code;
                bool verify_too;        /* refused without unpacking as well */
                const char *needle;     /* in the message */
        } bad[] = {
                { "through", through, 2, ELOOP, false, "entry 'l/pwned'" },
                { "long", too_long, 1, EINVAL, true, "entry 'long': symlink target longer than 4095" },
                { "top", top_file, 1, EINVAL, true, "top of the archive must be a directory" },
                { "uid", bad_uid, 1, ERANGE, true, "entry 'u'" },
                { "hardlink out", hl_out, 1, EINVAL, true, "entry 'h'" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                for (int verify = 0; verify <= (bad[i].verify_too ? 1 : 0); verify++) {
                        char name[64];
                        snprintf(name, sizeof name, "bad%zu-%d", i, verify);
                        int r = unpack(base, name, verify, bad[i].e, bad[i].n, &err);
                        if (r != -bad[i].code)
                                fail_msg("%s (verify %d): expected %s, got %d (%s)", bad[i].what, verify,
                                         strerror(bad[i].code), r, err.message);
                        if (!strstr(err.message, bad[i].needle))
                                fail_msg("%s: '%s' is not in the error: %s", bad[i].what, bad[i].needle, err.message);
                }
        }
        free(longtarget);
        snprintf(p, sizeof p, "%s/pwned", outside);
        assert_int_equal(lstat(p, &st), -1);
        util_rm_rf_at(AT_FDCWD, base, NULL);
        free(outside);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ref_normalize),
                cmocka_unit_test(test_digest),
                cmocka_unit_test_setup_teardown(test_load_oci, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_load_formats, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_hostile_all, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_diffid_steal, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_concurrent, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_layer_vanishes, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(test_stale_tmp, fx_setup, fx_teardown),
                cmocka_unit_test(test_layer_rules),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
