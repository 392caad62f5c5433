/* tenants.c — tenants, their tokens and quotas (tenants.h). */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "digest.h"
#include "image_store.h"
#include "json.h"
#include "log.h"
#include "sandbox.h"
#include "tenants.h"
#include "util.h"

static void token_hash(const char *token, char out[65])
{
        struct digest_ctx *d = digest_new();
        digest_update(d, token, strlen(token));
        digest_final_hex(d, out);
}

static void tenant_free(struct tenant *t)
{
        free(t->name);
        util_strv_free(t->images);
        free(t);
}

void tenants_free(struct core *core)
{
        while (core->tenants) {
                struct tenant *t = core->tenants;
                core->tenants = t->next;
                tenant_free(t);
        }
}

static bool valid_tenant_name(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 64 || !isalnum((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

static json_t *tenant_public(const struct tenant *t)
{
        return json_pack("{s:s,s:i,s:i,s:o}", "name", t->name, "max_sandboxes", t->max_sandboxes, "max_execs",
                         t->max_execs, "images", t->images ? json_strv(t->images) : json_null());
}

static int tenants_dir(struct core *core, bool create)
{
        if (create && mkdirat(core->state_fd, "tenants", 0700) < 0 && errno != EEXIST)
                return -errno;
        int fd = openat(core->state_fd, "tenants", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int tenant_parse(json_t *j, bool with_hash, struct tenant **ret, struct pbox_error *err)
{
        static const char *const keys[] = { "name", "max_sandboxes", "max_execs", "images", "token_sha256", NULL };
        const char *name = NULL, *hash = NULL;
        int64_t ms = 0, me = 0;
        char **images = NULL;
        if (json_check_keys(j, keys, err) < 0 || json_get_string(j, "name", true, &name, err) < 0 ||
            json_get_int(j, "max_sandboxes", false, 0, UINT32_MAX, &ms, err) < 0 ||
            json_get_int(j, "max_execs", false, 0, UINT32_MAX, &me, err) < 0 ||
            json_get_strv(j, "images", false, 1024, &images, err) < 0 ||
            (with_hash && json_get_string(j, "token_sha256", true, &hash, err) < 0))
                return -EINVAL;
        if (!valid_tenant_name(name)) {
                util_strv_free(images);
                return pbox_error_set(err, EINVAL, "a tenant name is 1 to 64 letters, digits, '_', '.', '-'");
        }
        if (with_hash && (strlen(hash) != 64 || !util_is_hex(hash, 64))) {
                util_strv_free(images);
                return pbox_error_set(err, EINVAL, "bad token hash");
        }
        for (char **i = images; i && *i; i++) {
                char *norm = NULL;
                if (image_ref_normalize(*i, &norm, err) < 0) {
                        util_strv_free(images);
                        return -EINVAL;
                }
                free(*i);
                *i = norm;
        }
        struct tenant *t = util_xcalloc(1, sizeof *t);
        t->name = util_xstrdup(name);
        t->max_sandboxes = (uint32_t) ms;
        t->max_execs = (uint32_t) me;
        t->images = images;
        if (hash)
                memcpy(t->token_sha256, hash, 65);
        *ret = t;
        return 0;
}

int tenants_load(struct core *core, struct pbox_error *err)
{
        int dfd = tenants_dir(core, false);
        if (dfd == -ENOENT)
                return 0;
        if (dfd < 0)
                return pbox_error_sys(err, -dfd, "open %s/tenants", core->cfg->state_dir);
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return pbox_error_sys(err, errno, "opendir tenants");
        }
        struct dirent *de;
        unsigned n = 0;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
                        continue;
                _cleanup_free_ char *text = NULL;
                size_t tl = 0;
                _cleanup_json_ json_t *j = NULL;
                struct tenant *t = NULL;
                struct pbox_error lerr = PBOX_ERROR_INIT;
                if (util_read_file_at(dirfd(d), de->d_name, 1 << 20, &text, &tl, &lerr) < 0 ||
                    json_parse_untrusted(text, tl, true, &j, &lerr) < 0 || tenant_parse(j, true, &t, &lerr) < 0) {
                        log_error("tenant record %s is unusable (ignored): %s", de->d_name, lerr.message);
                        continue;
                }
                t->next = core->tenants;
                core->tenants = t;
                n++;
        }
        closedir(d);
        log_info("%u tenants", n);
        return 0;
}

const struct tenant *tenant_by_token(struct core *core, const char *token)
{
        if (!token || strlen(token) < 32)
                return NULL;
        char h[65];
        token_hash(token, h);
        const struct tenant *found = NULL;
        for (const struct tenant *t = core->tenants; t; t = t->next)
                if (util_secure_streq(h, t->token_sha256))
                        found = t;
        return found;
}

const struct tenant *tenant_by_name(struct core *core, const char *name)
{
        for (const struct tenant *t = core->tenants; t; t = t->next)
                if (!strcmp(t->name, name))
                        return t;
        return NULL;
}

bool tenant_may_use_image(const struct tenant *t, const char *image_id, const char *ref)
{
        if (!t || !t->images)
                return true;
        for (char **i = t->images; *i; i++)
                if (!strcmp(*i, ref) || !strcmp(*i, image_id) ||
                    (!strncmp(*i, "sha256:", 7) && !strcmp(*i + 7, image_id)))
                        return true;
        return false;
}

void tenant_op_create(struct core *core, struct request *req, json_t *body)
{
        struct pbox_error err = PBOX_ERROR_INIT;
        struct tenant *t = NULL;
        if (json_object_get(body, "token_sha256"))
                return request_error(req, 400, "bad_request", "unknown field 'token_sha256'");
        if (tenant_parse(body, false, &t, &err) < 0)
                return request_fail(req, &err);
        if (tenant_by_name(core, t->name)) {
                request_error(req, 409, "conflict", "tenant '%s' exists", t->name);
                return tenant_free(t);
        }
        char token[65];
        util_random_hex(token, 32);
        token_hash(token, t->token_sha256);
        json_t *rec = tenant_public(t);
        json_object_set_new(rec, "token_sha256", json_string(t->token_sha256));
        _cleanup_free_ char *text = json_dumps(rec, JSON_INDENT(2));
        json_decref(rec);
        _cleanup_close_ int dfd = tenants_dir(core, true);
        _cleanup_free_ char *file = util_xasprintf("%s.json", t->name);
        if (dfd < 0 || util_write_file_atomic_at(dfd, file, text, strlen(text), 0600, &err) < 0) {
                if (dfd < 0)
                        pbox_error_sys(&err, -dfd, "open the tenants directory");
                tenant_free(t);
                return request_fail(req, &err);
        }
        t->next = core->tenants;
        core->tenants = t;
        log_info("tenant %s created", t->name);
        json_t *out = tenant_public(t);
        json_object_set_new(out, "token", json_string(token));
        request_respond(req, 201, out);
}

void tenant_op_list(struct core *core, struct request *req)
{
        json_t *arr = json_array();
        for (const struct tenant *t = core->tenants; t; t = t->next)
                json_array_append_new(arr, tenant_public(t));
        request_respond(req, 200, json_pack("{s:o}", "tenants", arr));
}

void tenant_op_remove(struct core *core, struct request *req, const char *name)
{
        struct tenant **p;
        for (p = &core->tenants; *p && strcmp((*p)->name, name); p = &(*p)->next)
                ;
        if (!*p)
                return request_error(req, 404, "not_found", "no such tenant: %s", name);
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                if (sb->tenant && !strcmp(sb->tenant, name))
                        return request_error(req, 409, "conflict", "tenant %s still has sandboxes", name);
        _cleanup_close_ int dfd = tenants_dir(core, false);
        _cleanup_free_ char *file = util_xasprintf("%s.json", name);
        if (dfd >= 0 && unlinkat(dfd, file, 0) < 0 && errno != ENOENT)
                return request_error(req, 500, "internal", "cannot remove the tenant record: %s", strerror(errno));
        struct tenant *t = *p;
        *p = t->next;
        log_info("tenant %s removed", name);
        tenant_free(t);
        request_respond(req, 200, json_pack("{s:s}", "removed", name));
}
