/* image_archive.c — staging the members of an untrusted image archive and
 * reading the image out of it: OCI image layout (oci-layout, index.json,
 * blobs/sha256/..., nested indexes) or `docker save` (manifest.json, legacy
 * <id>/layer.tar or blobs/sha256/...).  Every blob reached through a
 * descriptor is checked against its digest and size here; diff_ids are
 * checked by the layer unpacker, which sees the uncompressed streams. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "digest.h"
#include "image_archive.h"
#include "json.h"
#include "pathsafe.h"
#include "util.h"

#define ARCHIVE_MAX_MEMBERS 100000
#define INDEX_MAX_MANIFESTS 1024
#define INDEX_MAX_DEPTH 4
#define CONFIG_MAX_STRV 65536

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

#if defined(__x86_64__)
#define NATIVE_ARCH "amd64"
#elif defined(__aarch64__)
#define NATIVE_ARCH "arm64"
#elif defined(__i386__)
#define NATIVE_ARCH "386"
#elif defined(__arm__)
#define NATIVE_ARCH "arm"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_ARCH "ppc64le"
#elif defined(__s390x__)
#define NATIVE_ARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH "riscv64"
#else
#define NATIVE_ARCH "unknown"
#endif

static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}
#define _cleanup_archive_ __attribute__((cleanup(archive_read_freep)))

int image_archive_enable_filters(struct archive *ar, struct pbox_error *err)
{
        static const struct {
                const char *name;
                int (*fn)(struct archive *);
        } filters[] = {
                { "gzip", archive_read_support_filter_gzip },
                { "zstd", archive_read_support_filter_zstd },
                { "xz", archive_read_support_filter_xz },
                { "bzip2", archive_read_support_filter_bzip2 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
                /* ARCHIVE_WARN means "will run an external program": refuse. */
                if (filters[i].fn(ar) != ARCHIVE_OK)
                        return pbox_error_set(err, ENOTSUP, "libarchive has no built-in %s support", filters[i].name);
        }
        return 0;
}

/* ---- staging ---------------------------------------------------------------- */

struct in_stream {
        int fd;
        uint64_t total, max;
        bool over;
        char buf[65536];
};

static la_ssize_t in_read(struct archive *ar, void *data, const void **buf)
{
        struct in_stream *s = data;
        for (;;) {
                ssize_t n = read(s->fd, s->buf, sizeof s->buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        archive_set_error(ar, errno, "read error");
                        return -1;
                }
                s->total += (uint64_t) n;
                if (s->max && s->total > s->max) {
                        s->over = true;
                        archive_set_error(ar, EFBIG, "archive larger than the limit");
                        return -1;
                }
                *buf = s->buf;
                return n;
        }
}

/* Resolve a symlink member's target lexically against the member's
 * directory, inside the archive namespace ("a/b" -> "../c" = "c"). */
static int resolve_link_name(const char *member, const char *target, char **ret, struct pbox_error *err)
{
        _cleanup_free_ char *joined = NULL;
        if (target[0] == '/') {
                joined = util_xstrdup(target);
        } else {
                const char *slash = strrchr(member, '/');
                joined = slash ? util_xasprintf("%.*s/%s", (int) (slash - member), member, target)
                               : util_xstrdup(target);
        }
        size_t len = strlen(joined);
        char *out = util_xmalloc(len + 1);
        size_t o = 0;
        for (char *p = joined; *p;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                char *end = strchrnul(p, '/');
                size_t clen = (size_t) (end - p);
                if (clen == 1 && p[0] == '.') {
                        /* skip */
                } else if (clen == 2 && p[0] == '.' && p[1] == '.') {
                        if (o == 0) {
                                free(out);
                                return pbox_error_set(err, EINVAL, "archive member '%s': link target '%s' leaves the archive",
                                                      member, target);
                        }
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--;
                } else {
                        if (o > 0)
                                out[o++] = '/';
                        memcpy(out + o, p, clen);
                        o += clen;
                }
                p = end;
        }
        out[o] = '\0';
        *ret = out;
        return 0;
}

static int member_cmp(const void *a, const void *b)
{
        return strcmp(((const struct image_member *) a)->name, ((const struct image_member *) b)->name);
}

void image_archive_free(struct image_archive *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->n_members; i++) {
                free(a->members[i].name);
                free(a->members[i].link);
        }
        free(a->members);
        free(a);
}

static int stage_member(struct archive *ar, int dir_fd, struct image_member *m, size_t idx,
                        uint64_t *staged, uint64_t max, char *buf, size_t bufsize, struct pbox_error *err)
{
        snprintf(m->file, sizeof m->file, "m%zu", idx);
        _cleanup_close_ int fd = openat(dir_fd, m->file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "archive member '%s': create staging file", m->name);
        struct digest_ctx *d = digest_new();
        for (;;) {
                la_ssize_t n = archive_read_data(ar, buf, bufsize);
                if (n == 0)
                        break;
                if (n < 0) {
                        digest_free(d);
                        return pbox_error_set(err, EINVAL, "archive member '%s': %s", m->name, archive_error_string(ar));
                }
                *staged += (uint64_t) n;
                m->size += (uint64_t) n;
                if (max && *staged > max) {
                        digest_free(d);
                        return pbox_error_set(err, EFBIG, "archive is larger than the limit of %llu bytes",
                                              (unsigned long long) max);
                }
                digest_update(d, buf, (size_t) n);
                int r = util_write_all(fd, buf, (size_t) n);
                if (r < 0) {
                        digest_free(d);
                        return pbox_error_sys(err, -r, "archive member '%s': write staging file", m->name);
                }
        }
        digest_final_hex(d, m->sha256);
        return 0;
}

int image_archive_stage(int in_fd, int dir_fd, uint64_t max_bytes, struct image_archive **ret,
                        struct pbox_error *err)
{
        _cleanup_archive_ struct archive *ar = archive_read_new();
        if (!ar)
                abort();
        int r = image_archive_enable_filters(ar, err);
        if (r < 0)
                return r;
        archive_read_support_format_tar(ar);
        _cleanup_free_ struct in_stream *in = util_xcalloc(1, sizeof *in);
        in->fd = in_fd;
        in->max = max_bytes;
        if (archive_read_open(ar, in, NULL, in_read, NULL) != ARCHIVE_OK) {
                if (in->over)
                        return pbox_error_set(err, EFBIG, "archive is larger than the limit of %llu bytes",
                                              (unsigned long long) max_bytes);
                return pbox_error_set(err, EINVAL, "not a tar archive: %s", archive_error_string(ar));
        }

        struct image_archive *a = util_xcalloc(1, sizeof *a);
        a->dir_fd = dir_fd;
        size_t cap = 0;
        uint64_t staged = 0;
        _cleanup_free_ char *buf = util_xmalloc(65536);

        for (;;) {
                struct archive_entry *e;
                int ar_r = archive_read_next_header(ar, &e);
                if (ar_r == ARCHIVE_EOF)
                        break;
                if (ar_r < ARCHIVE_WARN) {
                        if (in->over)
                                r = pbox_error_set(err, EFBIG, "archive is larger than the limit of %llu bytes",
                                                   (unsigned long long) max_bytes);
                        else
                                r = pbox_error_set(err, EINVAL, "bad tar archive: %s", archive_error_string(ar));
                        goto fail;
                }
                if (a->n_members >= ARCHIVE_MAX_MEMBERS) {
                        r = pbox_error_set(err, E2BIG, "archive has more than %d members", ARCHIVE_MAX_MEMBERS);
                        goto fail;
                }
                const char *raw = archive_entry_pathname(e);
                if (!raw) {
                        r = pbox_error_set(err, EINVAL, "archive member with an unreadable name");
                        goto fail;
                }
                _cleanup_free_ char *name = NULL;
                r = pathsafe_clean_entry(raw, true, &name, err);
                if (r < 0) {
                        pbox_error_prefix(err, "image archive");
                        goto fail;
                }
                if (!*name)
                        continue;       /* "./" */

                const char *hardlink = archive_entry_hardlink(e);
                mode_t type = archive_entry_filetype(e);
                struct image_member m = { 0 };
                if (hardlink) {
                        r = pathsafe_clean_entry(hardlink, false, &m.link, err);
                        if (r < 0) {
                                pbox_error_prefix(err, "archive member '%s': hardlink target", name);
                                goto fail;
                        }
                } else if (type == AE_IFLNK) {
                        const char *target = archive_entry_symlink(e);
                        if (!target || !*target) {
                                r = pbox_error_set(err, EINVAL, "archive member '%s': empty symlink target", name);
                                goto fail;
                        }
                        r = resolve_link_name(name, target, &m.link, err);
                        if (r < 0)
                                goto fail;
                } else if (type != AE_IFREG) {
                        continue;       /* directories and anything else carry no blobs */
                }

                m.name = TAKE_PTR(name);
                if (!m.link) {
                        r = stage_member(ar, dir_fd, &m, a->n_members, &staged, max_bytes, buf, 65536, err);
                        if (r < 0) {
                                free(m.name);
                                goto fail;
                        }
                }
                if (a->n_members == cap) {
                        cap = cap ? cap * 2 : 64;
                        a->members = util_xrealloc(a->members, cap * sizeof *a->members);
                }
                a->members[a->n_members++] = m;
        }

        qsort(a->members, a->n_members, sizeof *a->members, member_cmp);
        for (size_t i = 1; i < a->n_members; i++)
                if (strcmp(a->members[i - 1].name, a->members[i].name) == 0) {
                        r = pbox_error_set(err, EINVAL, "archive member '%s' appears more than once", a->members[i].name);
                        goto fail;
                }
        *ret = a;
        return 0;
fail:
        image_archive_free(a);
        return r;
}

const struct image_member *image_archive_find(const struct image_archive *a, const char *name)
{
        for (int hops = 0; hops < 16; hops++) {
                struct image_member key = { .name = (char *) name };
                const struct image_member *m = bsearch(&key, a->members, a->n_members, sizeof *a->members, member_cmp);
                if (!m || !m->link)
                        return m;
                name = m->link;
        }
        return NULL;
}

int image_archive_open(const struct image_archive *a, const struct image_member *m, struct pbox_error *err)
{
        int fd = openat(a->dir_fd, m->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open staged archive member '%s'", m->name);
        return fd;
}

static int read_member(const struct image_archive *a, const struct image_member *m, const char *what,
                       char **ret_buf, size_t *ret_len, struct pbox_error *err)
{
        if (m->size > IMAGE_JSON_MAX)
                return pbox_error_set(err, E2BIG, "%s '%s' is larger than %u bytes", what, m->name, IMAGE_JSON_MAX);
        _cleanup_close_ int fd = image_archive_open(a, m, err);
        if (fd < 0)
                return fd;
        int r = util_read_all(fd, IMAGE_JSON_MAX, ret_buf, ret_len);
        if (r < 0)
                return pbox_error_sys(err, -r, "read %s '%s'", what, m->name);
        return 0;
}

static int read_member_json(const struct image_archive *a, const struct image_member *m, const char *what,
                            bool want_object, json_t **ret_json, char **ret_buf, size_t *ret_len,
                            struct pbox_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_member(a, m, what, &buf, &len, err);
        if (r < 0)
                return r;
        json_t *j = NULL;
        r = json_parse_untrusted(buf, len, want_object, &j, err);
        if (r < 0)
                return pbox_error_prefix(err, "%s '%s'", what, m->name);
        *ret_json = j;
        if (ret_buf) {
                *ret_buf = TAKE_PTR(buf);
                *ret_len = len;
        }
        return 0;
}

/* ---- image config ---------------------------------------------------------- */

void image_config_done(struct image_config *c)
{
        util_strv_free(c->env);
        util_strv_free(c->entrypoint);
        util_strv_free(c->cmd);
        util_strv_free(c->diff_ids);
        free(c->working_dir);
        free(c->user);
        free(c->created);
        memset(c, 0, sizeof *c);
}

static char **empty_strv(void)
{
        return util_xcalloc(1, sizeof(char *));
}

int image_config_parse(const char *buf, size_t len, struct image_config *ret, struct pbox_error *err)
{
        _cleanup_json_ json_t *j = NULL;
        int r = json_parse_untrusted(buf, len, true, &j, err);
        if (r < 0)
                return pbox_error_prefix(err, "image config");

        struct image_config c = { 0 };
        const char *s = NULL;
        if (json_get_string(j, "os", false, &s, err) < 0)
                goto bad;
        if (s && strcmp(s, "linux") != 0) {
                r = pbox_error_set(err, EINVAL, "image config: os '%.64s' is not linux", s);
                goto fail;
        }
        s = NULL;
        if (json_get_string(j, "created", false, &s, err) < 0)
                goto bad;
        if (s)
                c.created = util_xstrdup(s);

        json_t *rootfs = json_object_get(j, "rootfs");
        if (!json_is_object(rootfs)) {
                r = pbox_error_set(err, EINVAL, "image config: 'rootfs' object missing");
                goto fail;
        }
        s = NULL;
        if (json_get_string(rootfs, "type", true, &s, err) < 0)
                goto bad;
        if (strcmp(s, "layers") != 0) {
                r = pbox_error_set(err, EINVAL, "image config: rootfs type '%.64s' is not 'layers'", s);
                goto fail;
        }
        _cleanup_strv_ char **ids = NULL;
        if (json_get_strv(rootfs, "diff_ids", true, IMAGE_MAX_LAYERS, &ids, err) < 0)
                goto bad;
        c.n_diff_ids = util_strv_len(ids);
        c.diff_ids = util_xcalloc(c.n_diff_ids + 1, sizeof(char *));
        for (size_t i = 0; i < c.n_diff_ids; i++) {
                const char *hex;
                if (digest_parse(ids[i], &hex, err) < 0) {
                        r = pbox_error_prefix(err, "image config: diff_ids[%zu]", i);
                        goto fail;
                }
                c.diff_ids[i] = util_xstrdup(hex);
        }

        json_t *cfg = json_object_get(j, "config");
        if (cfg && !json_is_null(cfg)) {
                if (!json_is_object(cfg)) {
                        r = pbox_error_set(err, EINVAL, "image config: 'config' must be an object");
                        goto fail;
                }
                if (json_get_strv(cfg, "Env", false, CONFIG_MAX_STRV, &c.env, err) < 0 ||
                    json_get_strv(cfg, "Entrypoint", false, CONFIG_MAX_STRV, &c.entrypoint, err) < 0 ||
                    json_get_strv(cfg, "Cmd", false, CONFIG_MAX_STRV, &c.cmd, err) < 0)
                        goto bad;
                s = NULL;
                if (json_get_string(cfg, "WorkingDir", false, &s, err) < 0)
                        goto bad;
                if (s)
                        c.working_dir = util_xstrdup(s);
                s = NULL;
                if (json_get_string(cfg, "User", false, &s, err) < 0)
                        goto bad;
                if (s)
                        c.user = util_xstrdup(s);
        }
        if (!c.env)
                c.env = empty_strv();
        if (!c.entrypoint)
                c.entrypoint = empty_strv();
        if (!c.cmd)
                c.cmd = empty_strv();
        if (!c.working_dir)
                c.working_dir = util_xstrdup("");
        if (!c.user)
                c.user = util_xstrdup("");
        *ret = c;
        return 0;
bad:
        r = pbox_error_prefix(err, "image config");
fail:
        image_config_done(&c);
        return r;
}

/* ---- descriptors ------------------------------------------------------------ */

/* Check a descriptor {digest, size} against the blob in the archive. */
static int verify_descriptor(const struct image_archive *a, json_t *desc, const char *what,
                             const struct image_member **ret_m, char ret_hex[65], struct pbox_error *err)
{
        if (!json_is_object(desc))
                return pbox_error_set(err, EINVAL, "%s descriptor is not an object", what);
        const char *digest = NULL, *hex = NULL;
        int64_t size = 0;
        if (json_get_string(desc, "digest", true, &digest, err) < 0 ||
            json_get_int(desc, "size", true, 0, INT64_MAX, &size, err) < 0 ||
            digest_parse(digest, &hex, err) < 0)
                return pbox_error_prefix(err, "%s descriptor", what);
        _cleanup_free_ char *name = util_xasprintf("blobs/sha256/%s", hex);
        const struct image_member *m = image_archive_find(a, name);
        if (!m)
                return pbox_error_set(err, EINVAL, "%s blob sha256:%s is not in the archive", what, hex);
        if (m->size != (uint64_t) size)
                return pbox_error_set(err, EINVAL, "%s blob sha256:%s: size mismatch (descriptor says %lld bytes, archive has %llu)",
                                      what, hex, (long long) size, (unsigned long long) m->size);
        if (strcmp(m->sha256, hex) != 0)
                return pbox_error_set(err, EINVAL, "%s blob sha256:%s: digest mismatch (content is sha256:%s)",
                                      what, hex, m->sha256);
        *ret_m = m;
        memcpy(ret_hex, hex, 65);
        return 0;
}

static const char *desc_annotation(json_t *desc, const char *key)
{
        json_t *ann = json_object_get(desc, "annotations");
        json_t *v = json_is_object(ann) ? json_object_get(ann, key) : NULL;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return NULL;
        return json_string_value(v);
}

static bool desc_platform_native(json_t *desc)
{
        json_t *p = json_object_get(desc, "platform");
        if (!json_is_object(p))
                return false;
        json_t *os = json_object_get(p, "os"), *arch = json_object_get(p, "architecture");
        return json_is_string(os) && json_is_string(arch) && strcmp(json_string_value(os), "linux") == 0 &&
               strcmp(json_string_value(arch), NATIVE_ARCH) == 0;
}

/* The tag part of a reference ("x/y:1" -> "1"), or NULL. */
static const char *ref_tag(const char *ref)
{
        const char *colon = strrchr(ref, ':');
        const char *slash = strrchr(ref, '/');
        if (!colon || (slash && colon < slash))
                return NULL;
        return colon + 1;
}

/* Pick one manifest descriptor of an index's "manifests". */
static int index_pick(json_t *index, const char *want_ref, bool top, json_t **ret_desc, struct pbox_error *err)
{
        json_t *manifests = json_object_get(index, "manifests");
        if (!json_is_array(manifests) || json_array_size(manifests) == 0)
                return pbox_error_set(err, EINVAL, "image index has no 'manifests'");
        size_t n = json_array_size(manifests);
        if (n > INDEX_MAX_MANIFESTS)
                return pbox_error_set(err, E2BIG, "image index has more than %d manifests", INDEX_MAX_MANIFESTS);
        if (n == 1) {
                *ret_desc = json_array_get(manifests, 0);
                return 0;
        }

        /* Several: narrow by the wanted tag (top level only), then by platform. */
        json_t *cands[INDEX_MAX_MANIFESTS];
        size_t nc = 0;
        const char *want_tag = want_ref ? ref_tag(want_ref) : NULL;
        size_t i;
        json_t *d;
        json_array_foreach(manifests, i, d) {
                if (!json_is_object(d))
                        return pbox_error_set(err, EINVAL, "image index entry %zu is not an object", i);
                if (top && want_ref) {
                        const char *rn = desc_annotation(d, "org.opencontainers.image.ref.name");
                        const char *cn = desc_annotation(d, "io.containerd.image.name");
                        bool match = (cn && !strcmp(cn, want_ref)) || (rn && !strcmp(rn, want_ref)) ||
                                     (rn && want_tag && !strcmp(rn, want_tag));
                        if (!match)
                                continue;
                }
                cands[nc++] = d;
        }
        if (nc == 0) {
                /* the wanted name is not among the annotations: fall back to all */
                json_array_foreach(manifests, i, d)
                        cands[nc++] = d;
        }
        if (nc == 1) {
                *ret_desc = cands[0];
                return 0;
        }
        json_t *pick = NULL;
        size_t npick = 0;
        for (i = 0; i < nc; i++)
                if (desc_platform_native(cands[i])) {
                        pick = cands[i];
                        npick++;
                }
        if (npick == 0)
                return pbox_error_set(err, EINVAL, "image index lists %zu manifests and none for linux/%s%s", nc, NATIVE_ARCH,
                                      top ? "; name the tag to load (name:tag)" : "");
        if (npick > 1)
                return pbox_error_set(err, EINVAL, "image index lists %zu manifests for linux/%s; cannot choose one (name the tag to load)",
                                      npick, NATIVE_ARCH);
        *ret_desc = pick;
        return 0;
}

static bool layer_media_type_ok(const char *mt)
{
        static const char *const ok[] = {
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+zstd",
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                "application/vnd.docker.image.rootfs.diff.tar",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.image.rootfs.diff.tar.zstd",
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                if (!strcmp(mt, ok[i]))
                        return true;
        return false;
}

static bool config_media_type_ok(const char *mt)
{
        return !strcmp(mt, "application/vnd.oci.image.config.v1+json") ||
               !strcmp(mt, "application/vnd.docker.container.image.v1+json");
}

void image_source_free(struct image_source *s)
{
        if (!s)
                return;
        free(s->name);
        free(s->tag_only);
        free(s->manifest_json);
        free(s->config_json);
        image_config_done(&s->config);
        free(s->layers);
        free(s);
}

static int load_config(const struct image_archive *a, const struct image_member *m, struct image_source *s,
                       struct pbox_error *err)
{
        int r = read_member(a, m, "image config", &s->config_json, &s->config_len, err);
        if (r < 0)
                return r;
        memcpy(s->config_hex, m->sha256, 65);
        r = image_config_parse(s->config_json, s->config_len, &s->config, err);
        if (r < 0)
                return pbox_error_prefix(err, "config blob sha256:%s", m->sha256);
        if (s->config.n_diff_ids != s->n_layers)
                return pbox_error_set(err, EINVAL, "config blob sha256:%s lists %zu diff_ids but the manifest has %zu layers",
                                      m->sha256, s->config.n_diff_ids, s->n_layers);
        for (size_t i = 0; i < s->n_layers; i++)
                memcpy(s->layers[i].diff_id, s->config.diff_ids[i], 65);
        return 0;
}

static int parse_oci_manifest(const struct image_archive *a, json_t *desc, struct image_source *s,
                              struct pbox_error *err)
{
        const struct image_member *m;
        int r = verify_descriptor(a, desc, "manifest", &m, s->manifest_hex, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *man = NULL;
        r = read_member_json(a, m, "manifest", true, &man, &s->manifest_json, &s->manifest_len, err);
        if (r < 0)
                return r;
        s->manifest_member = m;
        int64_t schema = 0;
        if (json_get_int(man, "schemaVersion", true, 2, 2, &schema, err) < 0)
                return pbox_error_prefix(err, "manifest sha256:%s", s->manifest_hex);

        json_t *cdesc = json_object_get(man, "config");
        const char *mt = NULL;
        if (json_get_string(cdesc, "mediaType", false, &mt, err) < 0)
                return pbox_error_prefix(err, "manifest sha256:%s: config", s->manifest_hex);
        if (mt && !config_media_type_ok(mt))
                return pbox_error_set(err, EINVAL, "manifest sha256:%s is not a container image (config media type '%.100s')",
                                      s->manifest_hex, mt);
        const struct image_member *cm;
        char chex[65];
        r = verify_descriptor(a, cdesc, "config", &cm, chex, err);
        if (r < 0)
                return r;
        if (cm->size > IMAGE_JSON_MAX)
                return pbox_error_set(err, E2BIG, "config blob sha256:%s is larger than %u bytes", chex, IMAGE_JSON_MAX);

        json_t *layers = json_object_get(man, "layers");
        if (!json_is_array(layers))
                return pbox_error_set(err, EINVAL, "manifest sha256:%s has no 'layers' array", s->manifest_hex);
        s->n_layers = json_array_size(layers);
        if (s->n_layers > IMAGE_MAX_LAYERS)
                return pbox_error_set(err, E2BIG, "manifest sha256:%s has more than %d layers", s->manifest_hex, IMAGE_MAX_LAYERS);
        s->layers = util_xcalloc(s->n_layers + 1, sizeof *s->layers);
        size_t i;
        json_t *ld;
        json_array_foreach(layers, i, ld) {
                const char *lmt = NULL;
                if (json_get_string(ld, "mediaType", true, &lmt, err) < 0)
                        return pbox_error_prefix(err, "manifest sha256:%s: layer %zu", s->manifest_hex, i);
                char hex[65];
                r = verify_descriptor(a, ld, "layer", &s->layers[i].member, hex, err);
                if (r < 0)
                        return r;
                if (!layer_media_type_ok(lmt))
                        return pbox_error_set(err, EINVAL, "layer blob sha256:%s: unsupported media type '%.100s'", hex, lmt);
                snprintf(s->layers[i].blob_digest, sizeof s->layers[i].blob_digest, "sha256:%s", hex);
        }
        return load_config(a, cm, s, err);
}

static int parse_oci(const struct image_archive *a, const char *want_ref, struct image_source *s,
                     struct pbox_error *err)
{
        const struct image_member *lm = image_archive_find(a, "oci-layout");
        _cleanup_json_ json_t *layout = NULL;
        int r = read_member_json(a, lm, "oci-layout", true, &layout, NULL, NULL, err);
        if (r < 0)
                return r;
        const char *ver = NULL;
        if (json_get_string(layout, "imageLayoutVersion", true, &ver, err) < 0)
                return pbox_error_prefix(err, "oci-layout");
        if (strncmp(ver, "1.", 2) != 0)
                return pbox_error_set(err, EINVAL, "oci-layout: unsupported imageLayoutVersion '%.32s'", ver);

        const struct image_member *im = image_archive_find(a, "index.json");
        if (!im)
                return pbox_error_set(err, EINVAL, "OCI image layout without index.json");
        json_t *index = NULL;
        r = read_member_json(a, im, "index", true, &index, NULL, NULL, err);
        if (r < 0)
                return r;
        /* Owned chain of nested indexes; descriptors point into them. */
        json_t *owned[INDEX_MAX_DEPTH + 1] = { index };
        size_t n_owned = 1;

        json_t *desc = NULL;
        r = index_pick(index, want_ref, true, &desc, err);
        if (r < 0) {
                pbox_error_prefix(err, "index.json");
                goto out;
        }
        /* Names come from the top-level descriptor. */
        const char *cn = desc_annotation(desc, "io.containerd.image.name");
        const char *rn = desc_annotation(desc, "org.opencontainers.image.ref.name");
        if (cn)
                s->name = util_xstrdup(cn);
        else if (rn && (strchr(rn, ':') || strchr(rn, '/')))
                s->name = util_xstrdup(rn);
        else if (rn)
                s->tag_only = util_xstrdup(rn);

        for (int depth = 0;; depth++) {
                json_t *mt = json_object_get(desc, "mediaType");
                const char *mts = json_is_string(mt) ? json_string_value(mt) : NULL;
                if (mts && (!strcmp(mts, MT_OCI_MANIFEST) || !strcmp(mts, MT_DOCKER_MANIFEST)))
                        break;
                if (mts && strcmp(mts, MT_OCI_INDEX) != 0 && strcmp(mts, MT_DOCKER_LIST) != 0) {
                        r = pbox_error_set(err, EINVAL, "index entry has unsupported media type '%.100s'", mts);
                        goto out;
                }
                if (depth >= INDEX_MAX_DEPTH) {
                        r = pbox_error_set(err, ELOOP, "image indexes nested deeper than %d", INDEX_MAX_DEPTH);
                        goto out;
                }
                /* An index, or an untyped descriptor: look at the content. */
                const struct image_member *m;
                char hex[65];
                r = verify_descriptor(a, desc, "index", &m, hex, err);
                if (r < 0)
                        goto out;
                json_t *sub = NULL;
                r = read_member_json(a, m, "index", true, &sub, NULL, NULL, err);
                if (r < 0)
                        goto out;
                owned[n_owned++] = sub;
                if (!mts && !json_is_array(json_object_get(sub, "manifests")))
                        break;  /* an untyped manifest */
                r = index_pick(sub, NULL, false, &desc, err);
                if (r < 0) {
                        pbox_error_prefix(err, "index sha256:%s", hex);
                        goto out;
                }
        }
        r = parse_oci_manifest(a, desc, s, err);
out:
        for (size_t i = 0; i < n_owned; i++)
                json_decref(owned[i]);
        return r;
}

/* "blobs/sha256/<hex>" or "<hex>.json" or "<hex>/layer.tar" naming: the hex, or NULL. */
static const char *name_digest_hex(const char *name, char buf[65])
{
        const char *base = name;
        if (!strncmp(name, "blobs/sha256/", 13))
                base = name + 13;
        if (strlen(base) >= 64 && util_is_hex(base, 64) &&
            (base[64] == '\0' ? base != name : !strcmp(base + 64, ".json"))) {
                memcpy(buf, base, 64);
                buf[64] = '\0';
                return buf;
        }
        return NULL;
}

static const char *magic_media_type(const struct image_archive *a, const struct image_member *m)
{
        unsigned char b[4] = { 0 };
        int fd = openat(a->dir_fd, m->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t n = fd >= 0 ? pread(fd, b, sizeof b, 0) : -1;
        if (fd >= 0)
                close(fd);
        if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
                return "application/vnd.oci.image.layer.v1.tar+gzip";
        if (n == 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
                return "application/vnd.oci.image.layer.v1.tar+zstd";
        return "application/vnd.oci.image.layer.v1.tar";
}

static int parse_docker(const struct image_archive *a, const struct image_member *mm, const char *want_ref,
                        struct image_source *s, struct pbox_error *err)
{
        _cleanup_json_ json_t *list = NULL;
        int r = read_member_json(a, mm, "manifest.json", false, &list, NULL, NULL, err);
        if (r < 0)
                return r;
        if (!json_is_array(list) || json_array_size(list) == 0)
                return pbox_error_set(err, EINVAL, "manifest.json is not a non-empty array");
        json_t *item = NULL;
        if (json_array_size(list) == 1) {
                item = json_array_get(list, 0);
        } else {
                size_t i, k;
                json_t *it, *t;
                json_array_foreach(list, i, it) {
                        json_t *tags = json_object_get(it, "RepoTags");
                        json_array_foreach(tags, k, t)
                                if (want_ref && json_is_string(t) && !strcmp(json_string_value(t), want_ref))
                                        item = it;
                }
                if (!item)
                        return pbox_error_set(err, EINVAL, "manifest.json lists %zu images; name the one to load (one of its RepoTags)",
                                              json_array_size(list));
        }
        if (!json_is_object(item))
                return pbox_error_set(err, EINVAL, "manifest.json entry is not an object");

        const char *cfg_name = NULL;
        if (json_get_string(item, "Config", true, &cfg_name, err) < 0)
                return pbox_error_prefix(err, "manifest.json");
        _cleanup_free_ char *cfg_clean = NULL;
        if (pathsafe_clean_entry(cfg_name, false, &cfg_clean, err) < 0)
                return pbox_error_prefix(err, "manifest.json Config");
        const struct image_member *cm = image_archive_find(a, cfg_clean);
        if (!cm)
                return pbox_error_set(err, EINVAL, "config '%s' named by manifest.json is not in the archive", cfg_clean);
        char hexbuf[65];
        const char *want = name_digest_hex(cfg_clean, hexbuf);
        if (want && strcmp(want, cm->sha256) != 0)
                return pbox_error_set(err, EINVAL, "config blob '%s': digest mismatch (content is sha256:%s)", cfg_clean, cm->sha256);

        json_t *tags = json_object_get(item, "RepoTags");
        if (json_is_array(tags) && json_array_size(tags) > 0) {
                json_t *t0 = json_array_get(tags, 0);
                if (!json_is_string(t0))
                        return pbox_error_set(err, EINVAL, "manifest.json: RepoTags must be strings");
                s->name = util_xstrdup(json_string_value(t0));
        }

        json_t *layers = json_object_get(item, "Layers");
        if (!json_is_array(layers))
                return pbox_error_set(err, EINVAL, "manifest.json: 'Layers' array missing");
        s->n_layers = json_array_size(layers);
        if (s->n_layers > IMAGE_MAX_LAYERS)
                return pbox_error_set(err, E2BIG, "image has more than %d layers", IMAGE_MAX_LAYERS);
        s->layers = util_xcalloc(s->n_layers + 1, sizeof *s->layers);

        _cleanup_json_ json_t *man = json_object();
        json_object_set_new(man, "schemaVersion", json_integer(2));
        json_object_set_new(man, "mediaType", json_string(MT_OCI_MANIFEST));
        json_t *cdesc = json_object();
        json_object_set_new(cdesc, "mediaType", json_string("application/vnd.oci.image.config.v1+json"));
        json_object_set_new(cdesc, "digest", json_sprintf("sha256:%s", cm->sha256));
        json_object_set_new(cdesc, "size", json_integer((json_int_t) cm->size));
        json_object_set_new(man, "config", cdesc);
        json_t *ldescs = json_array();
        json_object_set_new(man, "layers", ldescs);

        size_t i;
        json_t *l;
        json_array_foreach(layers, i, l) {
                if (!json_is_string(l))
                        return pbox_error_set(err, EINVAL, "manifest.json: Layers[%zu] is not a string", i);
                _cleanup_free_ char *ln = NULL;
                if (pathsafe_clean_entry(json_string_value(l), false, &ln, err) < 0)
                        return pbox_error_prefix(err, "manifest.json Layers[%zu]", i);
                const struct image_member *lm = image_archive_find(a, ln);
                if (!lm)
                        return pbox_error_set(err, EINVAL, "layer '%s' named by manifest.json is not in the archive", ln);
                char lhex[65];
                if (!strncmp(ln, "blobs/sha256/", 13) && name_digest_hex(ln, lhex) && strcmp(lhex, lm->sha256) != 0)
                        return pbox_error_set(err, EINVAL, "layer blob sha256:%s: digest mismatch (content is sha256:%s)",
                                              lhex, lm->sha256);
                s->layers[i].member = lm;
                snprintf(s->layers[i].blob_digest, sizeof s->layers[i].blob_digest, "sha256:%s", lm->sha256);
                json_t *ld = json_object();
                json_object_set_new(ld, "mediaType", json_string(magic_media_type(a, lm)));
                json_object_set_new(ld, "digest", json_sprintf("sha256:%s", lm->sha256));
                json_object_set_new(ld, "size", json_integer((json_int_t) lm->size));
                json_array_append_new(ldescs, ld);
        }
        if (cm->size > IMAGE_JSON_MAX)
                return pbox_error_set(err, E2BIG, "config '%s' is larger than %u bytes", cfg_clean, IMAGE_JSON_MAX);

        s->manifest_json = json_dump_compact(man);
        s->manifest_len = strlen(s->manifest_json);
        struct digest_ctx *d = digest_new();
        digest_update(d, s->manifest_json, s->manifest_len);
        digest_final_hex(d, s->manifest_hex);
        return load_config(a, cm, s, err);
}

int image_archive_parse(const struct image_archive *a, const char *want_ref, struct image_source **ret,
                        struct pbox_error *err)
{
        struct image_source *s = util_xcalloc(1, sizeof *s);
        int r;
        const struct image_member *dm = image_archive_find(a, "manifest.json");
        if (image_archive_find(a, "oci-layout") && image_archive_find(a, "index.json")) {
                s->format = "oci";
                r = parse_oci(a, want_ref, s, err);
        } else if (dm) {
                s->format = "docker-save";
                r = parse_docker(a, dm, want_ref, s, err);
        } else {
                r = pbox_error_set(err, EINVAL, "not an image archive: neither oci-layout + index.json nor manifest.json found");
        }
        if (r < 0) {
                image_source_free(s);
                return r;
        }
        *ret = s;
        return 0;
}
