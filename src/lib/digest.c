/* digest.c — sha256 over byte streams with libcrypto's EVP interface, and
 * validation of OCI digest strings ("sha256:<64 lowercase hex>"). */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "digest.h"
#include "util.h"

struct digest_ctx {
        EVP_MD_CTX *md;
};

struct digest_ctx *digest_new(void)
{
        struct digest_ctx *ctx = util_xcalloc(1, sizeof *ctx);
        ctx->md = EVP_MD_CTX_new();
        if (!ctx->md || EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1)
                abort();        /* only allocation failure can get here */
        return ctx;
}

void digest_update(struct digest_ctx *ctx, const void *data, size_t len)
{
        if (len > 0 && EVP_DigestUpdate(ctx->md, data, len) != 1)
                abort();
}

void digest_final_hex(struct digest_ctx *ctx, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_DigestFinal_ex(ctx->md, md, &n) != 1 || n != 32)
                abort();
        for (unsigned int i = 0; i < 32; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = '\0';
        digest_free(ctx);
}

void digest_free(struct digest_ctx *ctx)
{
        if (!ctx)
                return;
        EVP_MD_CTX_free(ctx->md);
        free(ctx);
}

int digest_parse(const char *s, const char **ret_hex, struct pbox_error *err)
{
        if (!s)
                return pbox_error_set(err, EINVAL, "missing digest");
        const char *colon = strchr(s, ':');
        if (!colon || colon == s)
                return pbox_error_set(err, EINVAL, "digest '%.80s' is not of the form sha256:<hex>", s);
        size_t alg_len = (size_t) (colon - s);
        if (alg_len != 6 || memcmp(s, "sha256", 6) != 0)
                return pbox_error_set(err, EINVAL, "digest algorithm '%.*s' is not supported (only sha256)",
                                      (int) (alg_len > 32 ? 32 : alg_len), s);
        const char *hex = colon + 1;
        if (strlen(hex) != 64 || !util_is_hex(hex, 64))
                return pbox_error_set(err, EINVAL, "digest '%.80s' is not sha256 followed by 64 lowercase hex digits", s);
        if (ret_hex)
                *ret_hex = hex;
        return 0;
}
