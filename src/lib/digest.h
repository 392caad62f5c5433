/* digest.h — sha256 of byte streams (libcrypto EVP) and OCI digest strings
 * ("sha256:<64 lowercase hex>"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct digest_ctx;

struct digest_ctx *digest_new(void);
void digest_update(struct digest_ctx *ctx, const void *data, size_t len);
/* Writes 64 lowercase hex chars + NUL into out (>= 65 bytes) and frees ctx. */
void digest_final_hex(struct digest_ctx *ctx, char out[65]);
void digest_free(struct digest_ctx *ctx);

/* Validate "sha256:<64 hex>"; *ret_hex points into s.  -EINVAL otherwise
 * (other algorithms are rejected, with a message naming them). */
int digest_parse(const char *s, const char **ret_hex, struct pbox_error *err);
