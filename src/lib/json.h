/* json.h — jansson helpers: a cleanup attribute, bounded parsing of untrusted
 * text, and typed field getters that fill a pbox_error naming the field. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

#define JSON_MAX_DEPTH 32

/* Parse untrusted JSON text: rejects NUL bytes, duplicate keys, nesting deeper
 * than JSON_MAX_DEPTH, and (if want_object) anything but an object at top. */
int json_parse_untrusted(const char *buf, size_t len, bool want_object, json_t **ret,
                         struct pbox_error *err);

/* Typed getters.  A missing key is success with *ret untouched when
 * !required, -EINVAL with a message naming `key` otherwise; a value of the
 * wrong type is always -EINVAL. */
int json_get_string(json_t *obj, const char *key, bool required, const char **ret,
                    struct pbox_error *err);
int json_get_bool(json_t *obj, const char *key, bool required, bool *ret, struct pbox_error *err);
int json_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                 int64_t *ret, struct pbox_error *err);
/* An array of strings (each without NUL), at most max_items; returned as a NULL-terminated strv. */
int json_get_strv(json_t *obj, const char *key, bool required, size_t max_items, char ***ret,
                  struct pbox_error *err);
/* An object of string values, returned as a NULL-terminated "K=V" strv. */
int json_get_env_object(json_t *obj, const char *key, size_t max_items, char ***ret,
                        struct pbox_error *err);
/* Rejects keys of obj not in the NULL-terminated allowed list. */
int json_check_keys(json_t *obj, const char *const *allowed, struct pbox_error *err);

/* Serialise compactly; aborts on allocation failure. */
char *json_dump_compact(const json_t *j);
json_t *json_strv(char *const *v);
