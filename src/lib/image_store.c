/* image_store.c — the image store under STATE_DIR: loading archives (stage in
 * tmp/, verify, unpack layers, commit with renames under the store lock),
 * image records (images/<id>.json, the public record format), references
 * (name:tag, id), removal and garbage collection of layers and blobs.
 *
 * Locking: STATE_DIR/images/.lock, opened afresh for every acquisition (so a
 * forked child never shares a lock with its parent through one open file
 * description).  LOCK_EX for every change of images/, layers/ and blobs/,
 * LOCK_SH for readers.  Each load owns tmp/load-<random>/ and holds a flock
 * on it while it runs, so cleaning stale staging dirs never hits a live load.
 *
 * No global state: a load may run in a forked child concurrently with others. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "digest.h"
#include "image_archive.h"
#include "image_store.h"
#include "json.h"
#include "layer_store.h"
#include "util.h"

#define RECORD_MAX (1u << 20)
#define REF_NAME_MAX 255
#define REF_TAG_MAX 128
#define COMMIT_ATTEMPTS 4

struct image_store {
        char *state_dir;
        int state_fd, blobs_fd, layers_fd, images_fd, tmp_fd;
        struct image_store_options opts;
};

/* ---- references ------------------------------------------------------------ */

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* A path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static bool valid_path_component(const char *s, size_t len)
{
        if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (is_lower_alnum(c))
                        continue;
                if (c == '.' || c == '_') {
                        size_t run = 1;
                        while (i + run < len && s[i + run] == c)
                                run++;
                        if (c == '.' ? run > 1 : run > 2)
                                return false;
                        i += run - 1;
                        if (!is_lower_alnum(s[i + 1]))
                                return false;
                } else if (c == '-') {
                        if (!is_lower_alnum(s[i + 1]) && s[i + 1] != '-')
                                return false;
                } else {
                        return false;
                }
        }
        return true;
}

/* A registry host: [A-Za-z0-9.-]+ with an optional :port. */
static bool valid_domain(const char *s, size_t len)
{
        const char *colon = memchr(s, ':', len);
        size_t host_len = colon ? (size_t) (colon - s) : len;
        if (host_len == 0 || s[0] == '-' || s[0] == '.' || s[host_len - 1] == '.' || s[host_len - 1] == '-')
                return false;
        for (size_t i = 0; i < host_len; i++)
                if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-')
                        return false;
        if (colon) {
                size_t plen = len - host_len - 1;
                if (plen == 0 || plen > 5)
                        return false;
                for (size_t i = host_len + 1; i < len; i++)
                        if (s[i] < '0' || s[i] > '9')
                                return false;
        }
        return true;
}

static bool valid_tag(const char *t)
{
        size_t len = strlen(t);
        if (len == 0 || len > REF_TAG_MAX || !(is_alnum(t[0]) || t[0] == '_'))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!is_alnum(t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
                        return false;
        return true;
}

static bool is_id_ref(const char *ref, const char **ret_hex)
{
        const char *hex = strncmp(ref, "sha256:", 7) == 0 ? ref + 7 : ref;
        if (strlen(hex) != 64 || !util_is_hex(hex, 64))
                return false;
        if (ret_hex)
                *ret_hex = hex;
        return true;
}

int image_ref_normalize(const char *ref, char **ret, struct pbox_error *err)
{
        if (!ref || !*ref)
                return pbox_error_set(err, EINVAL, "empty image reference");
        size_t len = strnlen(ref, REF_NAME_MAX + REF_TAG_MAX + 2);
        if (len > REF_NAME_MAX + REF_TAG_MAX + 1)
                return pbox_error_set(err, EINVAL, "image reference is too long");
        for (size_t i = 0; i < len; i++) {
                char c = ref[i];
                if (!is_alnum(c) && !strchr("._-:/@", c))
                        return pbox_error_set(err, EINVAL, "image reference '%.*s' contains an invalid character",
                                              (int) (i > 64 ? 64 : i), ref);
        }
        if (is_id_ref(ref, NULL)) {
                *ret = util_xstrdup(ref);
                return 0;
        }
        if (strncmp(ref, "sha256:", 7) == 0)
                return pbox_error_set(err, EINVAL, "image id '%s' is not sha256: followed by 64 lowercase hex digits", ref);
        if (strchr(ref, '@'))
                return pbox_error_set(err, EINVAL, "image reference '%s': digest references are not supported; use the image id",
                                      ref);

        const char *slash = strrchr(ref, '/');
        const char *colon = strrchr(ref, ':');
        _cleanup_free_ char *name = NULL;
        const char *tag = "latest";
        if (colon && (!slash || colon > slash)) {
                name = strndup(ref, (size_t) (colon - ref));
                if (!name)
                        abort();
                tag = colon + 1;
                if (!valid_tag(tag))
                        return pbox_error_set(err, EINVAL, "image reference '%s': invalid tag '%s'", ref, tag);
        } else {
                name = util_xstrdup(ref);
        }
        size_t nlen = strlen(name);
        if (nlen == 0 || nlen > REF_NAME_MAX)
                return pbox_error_set(err, EINVAL, "image reference '%s': name must be 1..%d characters", ref, REF_NAME_MAX);

        /* Components; the first is a registry host when it looks like one. */
        const char *p = name;
        bool first = true;
        while (*p) {
                const char *end = strchrnul(p, '/');
                size_t clen = (size_t) (end - p);
                bool domain = first && *end == '/' &&
                              (memchr(p, '.', clen) || memchr(p, ':', clen) || (clen == 9 && !memcmp(p, "localhost", 9)));
                if (domain ? !valid_domain(p, clen) : !valid_path_component(p, clen))
                        return pbox_error_set(err, EINVAL, "image reference '%s': invalid name component '%.*s'", ref,
                                              (int) clen, p);
                first = false;
                if (!*end)
                        break;
                p = end + 1;
                if (!*p)
                        return pbox_error_set(err, EINVAL, "image reference '%s': empty name component", ref);
        }

        /* docker.io/library/busybox -> busybox, docker.io/x/y -> x/y */
        const char *familiar = name;
        static const char *const hubs[] = { "docker.io/", "index.docker.io/", "registry-1.docker.io/" };
        for (size_t i = 0; i < ARRAY_SIZE(hubs); i++)
                if (!strncmp(name, hubs[i], strlen(hubs[i]))) {
                        familiar = name + strlen(hubs[i]);
                        if (!strncmp(familiar, "library/", 8) && !strchr(familiar + 8, '/'))
                                familiar += 8;
                        break;
                }
        *ret = util_xasprintf("%s:%s", familiar, tag);
        return 0;
}

/* ---- store ------------------------------------------------------------------ */

static int open_subdir(int dirfd, const char *name, struct pbox_error *err)
{
        if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
                return pbox_error_sys(err, errno, "mkdir %s", name);
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s", name);
        struct stat st;
        if (fstat(fd, &st) < 0 || ((st.st_uid != geteuid() || (st.st_mode & 07777) != 0700) &&
                                   (fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0700) < 0))) {
                int e = errno;
                close(fd);
                return pbox_error_sys(err, e, "secure %s", name);
        }
        return fd;
}

static int store_lock(struct image_store *s, int op, struct pbox_error *err)
{
        int fd = openat(s->images_fd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open image store lock");
        while (flock(fd, op) < 0) {
                if (errno == EINTR)
                        continue;
                int e = errno;
                close(fd);
                return pbox_error_sys(err, e, "lock image store");
        }
        return fd;
}

/* Remove tmp/ entries no live load holds a flock on.  Caller holds LOCK_EX. */
static void clean_tmp(struct image_store *s)
{
        int dfd = openat(s->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return;
        }
        _cleanup_strv_ char **doomed = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                int fd = openat(s->tmp_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
                if (fd >= 0) {
                        int busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
                        close(fd);
                        if (busy)
                                continue;
                }
                doomed = util_xrealloc(doomed, (n + 2) * sizeof(char *));
                doomed[n++] = util_xstrdup(de->d_name);
                doomed[n] = NULL;
        }
        closedir(d);
        for (size_t i = 0; i < n; i++)
                util_rm_rf_at(s->tmp_fd, doomed[i], NULL);
}

static int gc_locked(struct image_store *s, struct pbox_error *err);

int image_store_open(const char *state_dir, const struct image_store_options *opts,
                     struct image_store **ret, struct pbox_error *err)
{
        if (!state_dir || state_dir[0] != '/')
                return pbox_error_set(err, EINVAL, "image store: state dir must be an absolute path");
        if (opts->id_count == 0 || opts->uid_base == 0 || opts->gid_base == 0 ||
            (uint64_t) opts->uid_base + opts->id_count > UINT32_MAX ||
            (uint64_t) opts->gid_base + opts->id_count > UINT32_MAX)
                return pbox_error_set(err, EINVAL, "image store: invalid id range (base must be > 0, base + count < 2^32)");
        int r = util_mkdir_p(state_dir, 0700, err);
        if (r < 0)
                return r;
        char real[PATH_MAX];
        if (!realpath(state_dir, real))
                return pbox_error_sys(err, errno, "resolve %s", state_dir);

        _cleanup_close_ int blobs = -1;
        struct image_store *s = util_xcalloc(1, sizeof *s);
        s->state_fd = s->blobs_fd = s->layers_fd = s->images_fd = s->tmp_fd = -1;
        s->state_dir = util_xstrdup(real);
        s->opts = *opts;
        s->state_fd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->state_fd < 0) {
                r = pbox_error_sys(err, errno, "open %s", real);
                goto fail;
        }
        if ((blobs = open_subdir(s->state_fd, "blobs", err)) < 0 ||
            (s->blobs_fd = open_subdir(blobs, "sha256", err)) < 0 ||
            (s->layers_fd = open_subdir(s->state_fd, "layers", err)) < 0 ||
            (s->images_fd = open_subdir(s->state_fd, "images", err)) < 0 ||
            (s->tmp_fd = open_subdir(s->state_fd, "tmp", err)) < 0) {
                r = pbox_error_prefix(err, "image store %s", real);
                goto fail;
        }

        /* Leftovers of a crash: stale staging dirs, layers and blobs of loads
         * that died between commit steps. */
        int lock = store_lock(s, LOCK_EX, err);
        if (lock < 0) {
                r = lock;
                goto fail;
        }
        clean_tmp(s);
        struct pbox_error gc_err = PBOX_ERROR_INIT;
        (void) gc_locked(s, &gc_err);   /* best effort; a damaged record only stops the gc */
        close(lock);
        *ret = s;
        return 0;
fail:
        image_store_free(s);
        return r;
}

void image_store_free(struct image_store *s)
{
        if (!s)
                return;
        int fds[] = { s->state_fd, s->blobs_fd, s->layers_fd, s->images_fd, s->tmp_fd };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        free(s->state_dir);
        free(s);
}

/* ---- records ---------------------------------------------------------------- */

struct record {
        char *file;     /* "<id>.json" */
        json_t *json;
};

struct records {
        struct record *v;
        size_t n;
};

static void records_done(struct records *rs)
{
        for (size_t i = 0; i < rs->n; i++) {
                free(rs->v[i].file);
                json_decref(rs->v[i].json);
        }
        free(rs->v);
        rs->v = NULL;
        rs->n = 0;
}

static int record_check(json_t *j, const char *id)
{
        const char *rid;
        json_t *names = json_object_get(j, "names"), *layers = json_object_get(j, "layers");
        if (json_get_string(j, "id", true, &rid, NULL) < 0 || strcmp(rid, id) != 0 || !json_is_array(names) ||
            !json_is_array(layers) || !json_is_object(json_object_get(j, "config")))
                return -EINVAL;
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v)
                if (!json_is_string(v))
                        return -EINVAL;
        json_array_foreach(layers, i, v)
                if (!json_is_string(v) || digest_parse(json_string_value(v), NULL, NULL) < 0)
                        return -EINVAL;
        return 0;
}

static int record_read(struct image_store *s, const char *id, json_t **ret, struct pbox_error *err)
{
        _cleanup_free_ char *file = util_xasprintf("%s.json", id);
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = util_read_file_at(s->images_fd, file, RECORD_MAX, &buf, &len, err);
        if (r < 0)
                return r;
        json_t *j = NULL;
        r = json_parse_untrusted(buf, len, true, &j, err);
        if (r < 0)
                return pbox_error_prefix(err, "image record %s", file);
        if (record_check(j, id) < 0) {
                json_decref(j);
                return pbox_error_set(err, EIO, "image record %s is damaged", file);
        }
        *ret = j;
        return 0;
}

/* All records, sorted by id.  strict: a damaged record is an error (gc must
 * not delete what it cannot account for); otherwise it is skipped. */
static int records_load(struct image_store *s, bool strict, struct records *ret, struct pbox_error *err)
{
        int dfd = openat(s->images_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return pbox_error_sys(err, errno, "open images directory");
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return pbox_error_sys(err, errno, "open images directory");
        }
        struct records rs = { 0 };
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strlen(de->d_name) != 69 || strcmp(de->d_name + 64, ".json") != 0 || !util_is_hex(de->d_name, 64))
                        continue;
                char id[65];
                memcpy(id, de->d_name, 64);
                id[64] = '\0';
                json_t *j = NULL;
                struct pbox_error e2 = PBOX_ERROR_INIT;
                r = record_read(s, id, &j, &e2);
                if (r == -ENOENT) {
                        r = 0;
                        continue;
                }
                if (r < 0) {
                        if (!strict) {
                                r = 0;
                                continue;
                        }
                        pbox_error_set(err, e2.code, "%s", e2.message);
                        break;
                }
                rs.v = util_xrealloc(rs.v, (rs.n + 1) * sizeof *rs.v);
                rs.v[rs.n].file = util_xstrdup(de->d_name);
                rs.v[rs.n].json = j;
                rs.n++;
        }
        closedir(d);
        if (r < 0) {
                records_done(&rs);
                return r;
        }
        for (size_t i = 1; i < rs.n; i++)       /* insertion sort by file name: few records */
                for (size_t k = i; k > 0 && strcmp(rs.v[k - 1].file, rs.v[k].file) > 0; k--) {
                        struct record t = rs.v[k];
                        rs.v[k] = rs.v[k - 1];
                        rs.v[k - 1] = t;
                }
        *ret = rs;
        return 0;
}

static int record_write(struct image_store *s, json_t *rec, struct pbox_error *err)
{
        const char *id = json_string_value(json_object_get(rec, "id"));
        _cleanup_free_ char *file = util_xasprintf("%s.json", id);
        _cleanup_free_ char *text = json_dumps(rec, JSON_INDENT(2));
        if (!text)
                abort();
        return util_write_file_atomic_at(s->images_fd, file, text, strlen(text), 0600, err);
}

static bool record_has_name(json_t *rec, const char *name)
{
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(rec, "names"), i, v)
                if (!strcmp(json_string_value(v), name))
                        return true;
        return false;
}

static void record_drop_name(json_t *rec, const char *name)
{
        json_t *names = json_object_get(rec, "names");
        for (size_t i = json_array_size(names); i > 0; i--)
                if (!strcmp(json_string_value(json_array_get(names, i - 1)), name))
                        json_array_remove(names, i - 1);
}

/* The record a reference names, or NULL.  Names: the most recently created
 * record carrying it (only a crash can leave a name on two records). */
static json_t *records_find(struct records *rs, const char *ref)
{
        const char *hex;
        if (is_id_ref(ref, &hex)) {
                for (size_t i = 0; i < rs->n; i++)
                        if (!strncmp(rs->v[i].file, hex, 64))
                                return rs->v[i].json;
                return NULL;
        }
        json_t *best = NULL;
        for (size_t i = 0; i < rs->n; i++) {
                json_t *rec = rs->v[i].json;
                if (!record_has_name(rec, ref))
                        continue;
                if (!best) {
                        best = rec;
                        continue;
                }
                const char *a = json_string_value(json_object_get(rec, "created"));
                const char *b = json_string_value(json_object_get(best, "created"));
                if (a && (!b || strcmp(a, b) > 0))
                        best = rec;
        }
        return best;
}

static char **strv_append(char **v, size_t *n, const char *s)
{
        v = util_xrealloc(v, (*n + 2) * sizeof(char *));
        v[(*n)++] = util_xstrdup(s);
        v[*n] = NULL;
        return v;
}

/* Hex names of the layers and blobs all records reference. */
static void records_refs(struct records *rs, char ***ret_layers, char ***ret_blobs)
{
        char **layers = util_xcalloc(1, sizeof(char *)), **blobs = util_xcalloc(1, sizeof(char *));
        size_t nl = 0, nb = 0;
        for (size_t i = 0; i < rs->n; i++) {
                json_t *rec = rs->v[i].json;
                size_t k;
                json_t *v;
                json_array_foreach(json_object_get(rec, "layers"), k, v)
                        layers = strv_append(layers, &nl, json_string_value(v) + 7);
                blobs = strv_append(blobs, &nb, json_string_value(json_object_get(rec, "id")));
                const char *dg = json_string_value(json_object_get(rec, "digest"));
                const char *hex;
                if (dg && digest_parse(dg, &hex, NULL) == 0)
                        blobs = strv_append(blobs, &nb, hex);
        }
        *ret_layers = layers;
        *ret_blobs = blobs;
}

static int gc_locked(struct image_store *s, struct pbox_error *err)
{
        struct records rs = { 0 };
        int r = records_load(s, true, &rs, err);
        if (r < 0)
                return pbox_error_prefix(err, "garbage collection skipped");
        _cleanup_strv_ char **layers = NULL;
        _cleanup_strv_ char **blobs = NULL;
        records_refs(&rs, &layers, &blobs);
        records_done(&rs);
        r = layer_store_gc(s->layers_fd, layers, err);
        if (r < 0)
                return r;
        return layer_store_gc(s->blobs_fd, blobs, err);
}

/* ---- load ------------------------------------------------------------------- */

struct load_layer {
        bool staged;            /* unpacked into stage/l<i> */
        bool committed;         /* staged dir moved (or found) in layers/ */
        bool created;           /* we created layers/<hex> */
        bool dup;               /* same diff id as an earlier layer of this image */
        uint64_t size;
};

struct load {
        struct image_store *s;
        int stage_fd;
        struct image_archive *arch;
        struct image_source *src;
        struct load_layer *layers;
        bool wrote_manifest, wrote_config;
};

static int layer_unpack_one(struct load *l, size_t i, bool stage, struct pbox_error *err)
{
        const struct image_layer_src *ls = &l->src->layers[i];
        _cleanup_close_ int src = image_archive_open(l->arch, ls->member, err);
        if (src < 0)
                return src;
        char dir[32];
        snprintf(dir, sizeof dir, "l%zu", i);
        _cleanup_close_ int root = -1;
        if (stage) {
                struct pbox_error e2 = PBOX_ERROR_INIT;
                util_rm_rf_at(l->stage_fd, dir, &e2);   /* a previous attempt */
                if (mkdirat(l->stage_fd, dir, 0700) < 0)
                        return pbox_error_sys(err, errno, "create layer staging dir");
                root = openat(l->stage_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (root < 0)
                        return pbox_error_sys(err, errno, "open layer staging dir");
        }
        struct layer_unpack_opts o = {
                .uid_base = l->s->opts.uid_base,
                .gid_base = l->s->opts.gid_base,
                .id_count = l->s->opts.id_count,
                .max_bytes = l->s->opts.max_layer_bytes,
                .max_entries = l->s->opts.max_layer_entries,
        };
        struct layer_unpack_result res;
        int r = layer_unpack(src, root, &o, &res, err);
        if (r < 0)
                return pbox_error_prefix(err, "layer blob %s", ls->blob_digest);
        if (strcmp(res.diff_id, ls->diff_id) != 0)
                return pbox_error_set(err, EINVAL,
                                      "layer blob %s: diff_id mismatch (config says sha256:%s, uncompressed content is sha256:%s)",
                                      ls->blob_digest, ls->diff_id, res.diff_id);
        l->layers[i].size = res.size;
        l->layers[i].staged = stage;
        return 0;
}

static int write_blob(struct image_store *s, const char *hex, const char *data, size_t len, bool *ret_wrote,
                      struct pbox_error *err)
{
        struct stat st;
        *ret_wrote = false;
        if (fstatat(s->blobs_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
        int r = util_write_file_atomic_at(s->blobs_fd, hex, data, len, 0600, err);
        if (r < 0)
                return r;
        *ret_wrote = true;
        return 0;
}

static json_t *record_new(struct load *l, const char *name)
{
        struct image_source *src = l->src;
        json_t *rec = json_object();
        json_object_set_new(rec, "id", json_string(src->config_hex));
        json_t *names = json_array();
        json_array_append_new(names, json_string(name));
        json_object_set_new(rec, "names", names);
        json_object_set_new(rec, "digest", json_sprintf("sha256:%s", src->manifest_hex));
        json_t *layers = json_array();
        uint64_t size = 0;
        for (size_t i = 0; i < src->n_layers; i++) {
                json_array_append_new(layers, json_sprintf("sha256:%s", src->layers[i].diff_id));
                if (!l->layers[i].dup)
                        size += l->layers[i].size;
        }
        json_object_set_new(rec, "layers", layers);
        json_object_set_new(rec, "size", json_integer((json_int_t) size));
        char now[32];
        util_format_time(util_realtime_ms(), now, sizeof now);
        json_object_set_new(rec, "created", json_string(now));
        json_t *cfg = json_object();
        json_object_set_new(cfg, "env", json_strv(src->config.env));
        json_object_set_new(cfg, "entrypoint", json_strv(src->config.entrypoint));
        json_object_set_new(cfg, "cmd", json_strv(src->config.cmd));
        json_object_set_new(cfg, "working_dir", json_string(src->config.working_dir));
        json_object_set_new(cfg, "user", json_string(src->config.user));
        json_object_set_new(rec, "config", cfg);
        return rec;
}

/* Under LOCK_EX: remove the layers and blobs this load created that no
 * record references (a failed commit). */
static void rollback_locked(struct load *l)
{
        struct records rs = { 0 };
        if (records_load(l->s, true, &rs, NULL) < 0)
                return;
        _cleanup_strv_ char **layers = NULL;
        _cleanup_strv_ char **blobs = NULL;
        records_refs(&rs, &layers, &blobs);
        records_done(&rs);
        for (size_t i = 0; i < l->src->n_layers; i++) {
                const char *hex = l->src->layers[i].diff_id;
                bool used = false;
                for (char **p = layers; *p; p++)
                        used = used || !strcmp(*p, hex);
                if (l->layers[i].created && !used)
                        util_rm_rf_at(l->s->layers_fd, hex, NULL);
                l->layers[i].created = false;
        }
        const char *bl[2] = { l->wrote_manifest ? l->src->manifest_hex : NULL,
                              l->wrote_config ? l->src->config_hex : NULL };
        for (size_t k = 0; k < 2; k++) {
                if (!bl[k])
                        continue;
                bool used = false;
                for (char **p = blobs; *p; p++)
                        used = used || !strcmp(*p, bl[k]);
                if (!used)
                        unlinkat(l->s->blobs_fd, bl[k], 0);
        }
        l->wrote_manifest = l->wrote_config = false;
}

/* Under LOCK_EX, everything staged and verified: publish.  Returns 1 when a
 * layer we relied on vanished (removed concurrently) and must be unpacked. */
static int commit_locked(struct load *l, const char *name, json_t **ret_rec, struct pbox_error *err)
{
        struct image_store *s = l->s;
        struct image_source *src = l->src;
        int missing = 0;
        for (size_t i = 0; i < src->n_layers; i++) {
                struct load_layer *ll = &l->layers[i];
                if (ll->dup)
                        continue;
                const char *hex = src->layers[i].diff_id;
                if (ll->staged && !ll->committed) {
                        char dir[32];
                        snprintf(dir, sizeof dir, "l%zu", i);
                        bool created = false;
                        int r = layer_store_commit(l->stage_fd, dir, s->layers_fd, hex, &created, err);
                        if (r < 0)
                                return r;
                        ll->committed = true;
                        ll->created = created;
                        continue;
                }
                struct stat st;
                if (fstatat(s->layers_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
                        ll->committed = true;
                } else {
                        ll->committed = false;
                        ll->staged = false;
                        missing = 1;
                }
        }
        if (missing)
                return 1;

        bool wrote;
        int r = write_blob(s, src->manifest_hex, src->manifest_json, src->manifest_len, &wrote, err);
        if (r < 0)
                return r;
        l->wrote_manifest = wrote;
        r = write_blob(s, src->config_hex, src->config_json, src->config_len, &wrote, err);
        if (r < 0)
                return r;
        l->wrote_config = wrote;

        struct records rs = { 0 };
        r = records_load(s, false, &rs, err);
        if (r < 0)
                return r;
        json_t *rec = NULL;
        for (size_t i = 0; i < rs.n; i++)
                if (!strncmp(rs.v[i].file, src->config_hex, 64))
                        rec = json_incref(rs.v[i].json);
        json_t *fresh = record_new(l, name);
        if (rec) {
                /* Same image loaded again: keep its names and creation time. */
                if (!record_has_name(rec, name))
                        json_array_insert_new(json_object_get(rec, "names"), 0, json_string(name));
                json_object_set(rec, "digest", json_object_get(fresh, "digest"));
                json_object_set(rec, "config", json_object_get(fresh, "config"));
                json_object_set(rec, "size", json_object_get(fresh, "size"));
                json_decref(fresh);
        } else {
                rec = fresh;
        }

        /* Take the name away from other images first (they stay, by id); put
         * it back if publishing ours fails. */
        size_t n_moved = 0;
        json_t **moved = util_xcalloc(rs.n + 1, sizeof(json_t *));
        for (size_t i = 0; i < rs.n && r == 0; i++) {
                json_t *other = rs.v[i].json;
                if (!strncmp(rs.v[i].file, src->config_hex, 64) || !record_has_name(other, name))
                        continue;
                record_drop_name(other, name);
                r = record_write(s, other, err);
                if (r == 0)
                        moved[n_moved++] = other;
                else
                        json_array_append_new(json_object_get(other, "names"), json_string(name));
        }
        if (r == 0)
                r = record_write(s, rec, err);
        if (r < 0) {
                for (size_t i = 0; i < n_moved; i++) {
                        json_array_append_new(json_object_get(moved[i], "names"), json_string(name));
                        record_write(s, moved[i], NULL);
                }
                json_decref(rec);
        } else {
                *ret_rec = rec;
        }
        free(moved);
        records_done(&rs);
        return r;
}

int image_store_load(struct image_store *s, int archive_fd, const char *name_override,
                     json_t **ret_image, struct pbox_error *err)
{
        _cleanup_free_ char *want = NULL;
        if (name_override) {
                int r = image_ref_normalize(name_override, &want, err);
                if (r < 0)
                        return r;
                if (is_id_ref(want, NULL))
                        return pbox_error_set(err, EINVAL, "image name '%s' looks like an image id; use name[:tag]",
                                              name_override);
        }

        /* Our staging dir, created and flocked under the store lock so that
         * clean_tmp never sees it unlocked. */
        char rnd[33];
        util_random_hex(rnd, 16);
        char stage_name[48];
        snprintf(stage_name, sizeof stage_name, "load-%s", rnd);
        int lock = store_lock(s, LOCK_SH, err);
        if (lock < 0)
                return lock;
        _cleanup_close_ int stage_fd = -1;
        int r = 0;
        if (mkdirat(s->tmp_fd, stage_name, 0700) < 0)
                r = pbox_error_sys(err, errno, "create staging dir");
        else if ((stage_fd = openat(s->tmp_fd, stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                r = pbox_error_sys(err, errno, "open staging dir");
        else if (flock(stage_fd, LOCK_EX | LOCK_NB) < 0)
                r = pbox_error_sys(err, errno, "lock staging dir");
        close(lock);
        if (r < 0) {
                unlinkat(s->tmp_fd, stage_name, AT_REMOVEDIR);
                return r;
        }

        struct load l = { .s = s, .stage_fd = stage_fd };
        _cleanup_close_ int in_fd = -1;
        _cleanup_free_ char *name = NULL;
        json_t *rec = NULL;
        bool need_rollback = false;

        if (mkdirat(stage_fd, "in", 0700) < 0 ||
            (in_fd = openat(stage_fd, "in", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                r = pbox_error_sys(err, errno, "create staging dir");
                goto out;
        }
        r = image_archive_stage(archive_fd, in_fd, s->opts.max_archive_bytes, &l.arch, err);
        if (r < 0)
                goto out;
        r = image_archive_parse(l.arch, want, &l.src, err);
        if (r < 0)
                goto out;

        if (want) {
                name = TAKE_PTR(want);
        } else if (l.src->name) {
                struct pbox_error e2 = PBOX_ERROR_INIT;
                if (image_ref_normalize(l.src->name, &name, &e2) < 0 || is_id_ref(name, NULL)) {
                        r = pbox_error_set(err, EINVAL, "the archive names the image '%.200s', which is not a usable name (%s); pass a name",
                                           l.src->name, e2.code ? e2.message : "an id");
                        goto out;
                }
        } else if (l.src->tag_only) {
                r = pbox_error_set(err, EINVAL, "the archive names only the tag '%.128s', without a repository; pass a name (name[:tag])",
                                   l.src->tag_only);
                goto out;
        } else {
                r = pbox_error_set(err, EINVAL, "the archive does not name the image; pass a name (name[:tag])");
                goto out;
        }

        /* Unpack (or, for layers the store has, only verify) every layer. */
        l.layers = util_xcalloc(l.src->n_layers + 1, sizeof *l.layers);
        bool any_staged = false;
        for (size_t i = 0; i < l.src->n_layers; i++) {
                const char *hex = l.src->layers[i].diff_id;
                for (size_t k = 0; k < i; k++)
                        if (!strcmp(l.src->layers[k].diff_id, hex))
                                l.layers[i].dup = true;
                struct stat st;
                bool have = l.layers[i].dup ||
                            (fstatat(s->layers_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode));
                r = layer_unpack_one(&l, i, !have, err);
                if (r < 0)
                        goto out;
                any_staged = any_staged || !have;
        }
        if (any_staged && syncfs(stage_fd) < 0) {
                r = pbox_error_sys(err, errno, "sync staged layers");
                goto out;
        }

        for (int attempt = 0;; attempt++) {
                lock = store_lock(s, LOCK_EX, err);
                if (lock < 0) {
                        r = lock;
                        goto out;
                }
                need_rollback = true;
                r = commit_locked(&l, name, &rec, err);
                if (r < 0)
                        rollback_locked(&l);
                close(lock);
                if (r <= 0)
                        break;
                /* A layer vanished under us (removed concurrently): unpack it. */
                if (attempt + 1 >= COMMIT_ATTEMPTS) {
                        r = pbox_error_set(err, EAGAIN, "layers keep being removed concurrently; try again");
                        break;
                }
                for (size_t i = 0; i < l.src->n_layers && r >= 0; i++)
                        if (!l.layers[i].dup && !l.layers[i].staged && !l.layers[i].committed)
                                r = layer_unpack_one(&l, i, true, err);
                if (r >= 0 && syncfs(stage_fd) < 0)
                        r = pbox_error_sys(err, errno, "sync staged layers");
                if (r < 0)
                        break;
        }
        if (r < 0)
                goto out;
        need_rollback = false;
        *ret_image = rec;
        r = 0;
out:
        if (r < 0 && need_rollback) {
                int lk = store_lock(s, LOCK_EX, NULL);
                if (lk >= 0) {
                        rollback_locked(&l);
                        close(lk);
                }
        }
        image_source_free(l.src);
        image_archive_free(l.arch);
        free(l.layers);
        util_rm_rf_at(s->tmp_fd, stage_name, NULL);
        return r;
}

/* ---- list / resolve / remove --------------------------------------------- */

int image_store_list(struct image_store *s, json_t **ret_array, struct pbox_error *err)
{
        int lock = store_lock(s, LOCK_SH, err);
        if (lock < 0)
                return lock;
        struct records rs = { 0 };
        int r = records_load(s, false, &rs, err);
        close(lock);
        if (r < 0)
                return r;
        json_t *a = json_array();
        for (size_t i = 0; i < rs.n; i++)
                json_array_append(a, rs.v[i].json);
        records_done(&rs);
        *ret_array = a;
        return 0;
}

void image_info_free(struct image_info *info)
{
        if (!info)
                return;
        free(info->id);
        free(info->ref);
        util_strv_free(info->layer_dirs);
        util_strv_free(info->env);
        util_strv_free(info->entrypoint);
        util_strv_free(info->cmd);
        free(info->working_dir);
        free(info->user);
        free(info);
}

int image_store_resolve(struct image_store *s, const char *ref, struct image_info **ret, struct pbox_error *err)
{
        _cleanup_free_ char *norm = NULL;
        int r = image_ref_normalize(ref, &norm, err);
        if (r < 0)
                return r;
        int lock = store_lock(s, LOCK_SH, err);
        if (lock < 0)
                return lock;
        struct records rs = { 0 };
        r = records_load(s, false, &rs, err);
        if (r < 0) {
                close(lock);
                return r;
        }
        json_t *rec = records_find(&rs, norm);
        if (!rec) {
                records_done(&rs);
                close(lock);
                return pbox_error_set(err, ENOENT, "no image '%s'", norm);
        }

        struct image_info *info = util_xcalloc(1, sizeof *info);
        info->id = util_xstrdup(json_string_value(json_object_get(rec, "id")));
        info->ref = util_xstrdup(norm);
        json_t *layers = json_object_get(rec, "layers");
        info->n_layers = json_array_size(layers);
        info->layer_dirs = util_xcalloc(info->n_layers + 1, sizeof(char *));
        for (size_t i = 0; i < info->n_layers && r == 0; i++) {
                const char *hex = json_string_value(json_array_get(layers, i)) + 7;
                struct stat st;
                if (fstatat(s->layers_fd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        r = pbox_error_set(err, EIO, "image %s: layer sha256:%s is missing from the store", norm, hex);
                info->layer_dirs[i] = util_xasprintf("%s/layers/%s", s->state_dir, hex);
        }
        close(lock);
        json_t *cfg = json_object_get(rec, "config");
        const char *wd = NULL, *user = NULL;
        if (r == 0 &&
            (json_get_strv(cfg, "env", false, 65536, &info->env, err) < 0 ||
             json_get_strv(cfg, "entrypoint", false, 65536, &info->entrypoint, err) < 0 ||
             json_get_strv(cfg, "cmd", false, 65536, &info->cmd, err) < 0 ||
             json_get_string(cfg, "working_dir", false, &wd, err) < 0 ||
             json_get_string(cfg, "user", false, &user, err) < 0))
                r = pbox_error_prefix(err, "image record %s", info->id);
        if (r == 0) {
                if (!info->env)
                        info->env = util_xcalloc(1, sizeof(char *));
                if (!info->entrypoint)
                        info->entrypoint = util_xcalloc(1, sizeof(char *));
                if (!info->cmd)
                        info->cmd = util_xcalloc(1, sizeof(char *));
                info->working_dir = util_xstrdup(wd ? wd : "");
                info->user = util_xstrdup(user ? user : "");
        }
        records_done(&rs);
        if (r < 0) {
                image_info_free(info);
                return r;
        }
        *ret = info;
        return 0;
}

int image_store_remove(struct image_store *s, const char *ref, struct pbox_error *err)
{
        _cleanup_free_ char *norm = NULL;
        int r = image_ref_normalize(ref, &norm, err);
        if (r < 0)
                return r;
        int lock = store_lock(s, LOCK_EX, err);
        if (lock < 0)
                return lock;
        _cleanup_free_ char *file = NULL;
        struct records rs = { 0 };
        r = records_load(s, false, &rs, err);
        if (r < 0)
                goto out;
        json_t *rec = records_find(&rs, norm);
        if (!rec) {
                r = pbox_error_set(err, ENOENT, "no image '%s'", norm);
                goto out;
        }
        const char *id = json_string_value(json_object_get(rec, "id"));
        file = util_xasprintf("%s.json", id);
        if (!is_id_ref(norm, NULL)) {
                record_drop_name(rec, norm);
                if (json_array_size(json_object_get(rec, "names")) > 0) {
                        r = record_write(s, rec, err);
                        goto out;
                }
        }
        if (unlinkat(s->images_fd, file, 0) < 0) {
                r = pbox_error_sys(err, errno, "remove image record %s", file);
                goto out;
        }
        fsync(s->images_fd);
        struct pbox_error e2 = PBOX_ERROR_INIT;
        (void) gc_locked(s, &e2);       /* the image is gone; leftovers go at the next gc */
        r = 0;
out:
        records_done(&rs);
        close(lock);
        return r;
}
