/* json.c — bounded parsing of untrusted JSON and typed getters (json.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

static int json_depth(json_t *j, int depth)
{
        if (depth > JSON_MAX_DEPTH)
                return -1;
        if (json_is_object(j)) {
                const char *k;
                json_t *v;
                json_object_foreach(j, k, v)
                        if (json_depth(v, depth + 1) < 0)
                                return -1;
        } else if (json_is_array(j)) {
                size_t i;
                json_t *v;
                json_array_foreach(j, i, v)
                        if (json_depth(v, depth + 1) < 0)
                                return -1;
        }
        return 0;
}

int json_parse_untrusted(const char *buf, size_t len, bool want_object, json_t **ret,
                         struct pbox_error *err)
{
        json_error_t jerr;
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return pbox_error_set(err, EINVAL, "invalid JSON at line %d column %d: %s",
                                      jerr.line, jerr.column, jerr.text);
        if (json_depth(j, 0) < 0) {
                json_decref(j);
                return pbox_error_set(err, EINVAL, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        }
        if (want_object && !json_is_object(j)) {
                json_decref(j);
                return pbox_error_set(err, EINVAL, "JSON body must be an object");
        }
        *ret = j;
        return 0;
}

static json_t *json_field(json_t *obj, const char *key, bool required, int *r, struct pbox_error *err)
{
        json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
        *r = 0;
        if (!v || json_is_null(v)) {
                if (required)
                        *r = pbox_error_set(err, EINVAL, "field '%s' is required", key);
                return NULL;
        }
        return v;
}

int json_get_string(json_t *obj, const char *key, bool required, const char **ret,
                    struct pbox_error *err)
{
        int r;
        json_t *v = json_field(obj, key, required, &r, err);
        if (!v)
                return r;
        if (!json_is_string(v))
                return pbox_error_set(err, EINVAL, "field '%s' must be a string", key);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return pbox_error_set(err, EINVAL, "field '%s' contains a NUL byte", key);
        *ret = json_string_value(v);
        return 0;
}

int json_get_bool(json_t *obj, const char *key, bool required, bool *ret, struct pbox_error *err)
{
        int r;
        json_t *v = json_field(obj, key, required, &r, err);
        if (!v)
                return r;
        if (!json_is_boolean(v))
                return pbox_error_set(err, EINVAL, "field '%s' must be a boolean", key);
        *ret = json_is_true(v);
        return 0;
}

int json_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                 int64_t *ret, struct pbox_error *err)
{
        int r;
        json_t *v = json_field(obj, key, required, &r, err);
        if (!v)
                return r;
        if (!json_is_integer(v))
                return pbox_error_set(err, EINVAL, "field '%s' must be an integer", key);
        json_int_t x = json_integer_value(v);
        if (x < min || x > max)
                return pbox_error_set(err, ERANGE, "field '%s' must be between %lld and %lld",
                                      key, (long long) min, (long long) max);
        *ret = (int64_t) x;
        return 0;
}

int json_get_strv(json_t *obj, const char *key, bool required, size_t max_items, char ***ret,
                  struct pbox_error *err)
{
        int r;
        json_t *v = json_field(obj, key, required, &r, err);
        if (!v)
                return r;
        if (!json_is_array(v))
                return pbox_error_set(err, EINVAL, "field '%s' must be an array of strings", key);
        size_t n = json_array_size(v);
        if (n > max_items)
                return pbox_error_set(err, E2BIG, "field '%s' has more than %zu items", key, max_items);
        char **out = util_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(v, i);
                if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
                        util_strv_free(out);
                        return pbox_error_set(err, EINVAL, "field '%s' item %zu must be a string without NUL bytes",
                                              key, i);
                }
                out[i] = util_xstrdup(json_string_value(s));
        }
        *ret = out;
        return 0;
}

int json_get_env_object(json_t *obj, const char *key, size_t max_items, char ***ret,
                        struct pbox_error *err)
{
        int r;
        json_t *v = json_field(obj, key, false, &r, err);
        if (!v)
                return r;
        if (!json_is_object(v))
                return pbox_error_set(err, EINVAL, "field '%s' must be an object of strings", key);
        size_t n = json_object_size(v);
        if (n > max_items)
                return pbox_error_set(err, E2BIG, "field '%s' has more than %zu entries", key, max_items);
        char **out = util_xcalloc(n + 1, sizeof(char *));
        size_t i = 0;
        const char *k;
        json_t *s;
        json_object_foreach(v, k, s) {
                if (!*k || strchr(k, '=') || !json_is_string(s) ||
                    strlen(json_string_value(s)) != json_string_length(s)) {
                        util_strv_free(out);
                        return pbox_error_set(err, EINVAL,
                                              "field '%s': key '%s' must be non-empty without '=' and map to a string without NUL bytes",
                                              key, k);
                }
                out[i++] = util_xasprintf("%s=%s", k, json_string_value(s));
        }
        *ret = out;
        return 0;
}

int json_check_keys(json_t *obj, const char *const *allowed, struct pbox_error *err)
{
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v) {
                bool ok = false;
                for (const char *const *a = allowed; *a; a++)
                        if (!strcmp(*a, k)) {
                                ok = true;
                                break;
                        }
                if (!ok)
                        return pbox_error_set(err, EINVAL, "unknown field '%s'", k);
        }
        return 0;
}

char *json_dump_compact(const json_t *j)
{
        char *s = json_dumps(j, JSON_COMPACT);
        if (!s)
                abort();
        return s;
}

json_t *json_strv(char *const *v)
{
        json_t *a = json_array();
        for (size_t i = 0; v && v[i]; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}
