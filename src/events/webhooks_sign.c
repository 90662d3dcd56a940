/* Webhook signing and secrets (pure): Standard Webhooks, Fency and Hindsight conventions, and the
 * retry schedule. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "engram/webhooks.h"
#include "events_int.h"
#include "webhooks_int.h"

/* ---- signing ----------------------------------------------------------------------------- */

int eg_webhook_signing_parse(const char *s, eg_webhook_signing_t *out)
{
    static const char *const names[] = {"standard", "fency", "hindsight"};

    for (size_t i = 0; s != NULL && i < EG_ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (eg_webhook_signing_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

const char *eg_webhook_signing_name(eg_webhook_signing_t s)
{
    return s == EG_WEBHOOK_FENCY ? "fency" : s == EG_WEBHOOK_HINDSIGHT ? "hindsight" : "standard";
}

void eg_webhook_secret_new(eg_webhook_signing_t s, char out[64])
{
    unsigned char raw[24];

    if (s == EG_WEBHOOK_STANDARD) {
        eg_random_bytes(raw, sizeof(raw));
        memcpy(out, "whsec_", 6);
        eg_base64_encode(raw, sizeof(raw), out + 6);
        mbedtls_platform_zeroize(raw, sizeof(raw));
    } else {
        eg_random_base62(out, 32);
    }
}

/* Decode the key of a Standard Webhooks secret ("whsec_" + base64). Returns its length, or 0. */
static size_t wh_standard_key(const char *secret, unsigned char key[64])
{
    size_t n = 0;

    if (secret == NULL || strncmp(secret, "whsec_", 6) != 0)
        return 0;
    if (mbedtls_base64_decode(key, 64, &n, (const unsigned char *)secret + 6, strlen(secret + 6)) !=
        0)
        return 0;
    return n;
}

bool eg_webhook_secret_valid(eg_webhook_signing_t s, const char *secret)
{
    unsigned char key[64];
    size_t n;

    if (secret == NULL)
        return false;
    if (s == EG_WEBHOOK_STANDARD) {
        n = wh_standard_key(secret, key);
        mbedtls_platform_zeroize(key, sizeof(key));
        return n >= 16 && n <= 64;
    }
    n = strlen(secret);
    if (n < 8 || n > EG_WEBHOOK_SECRET_MAX)
        return false;
    for (const char *p = secret; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

void eg_webhook_sign_hex(const char *secret, const void *body, size_t len, char out[72])
{
    unsigned char mac[32];

    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)secret,
                    strlen(secret), body, len, mac);
    memcpy(out, "sha256=", 7);
    eg_hex_encode(mac, sizeof(mac), out + 7);
}

int eg_webhook_sign_standard(const char *secret, const char *msg_id, int64_t timestamp,
                             const void *body, size_t len, char out[64])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char key[64], mac[32];
    mbedtls_md_context_t ctx;
    char ts[24];
    size_t klen;
    int rc = EG_EINVAL;

    mbedtls_md_init(&ctx);
    klen = wh_standard_key(secret, key);
    if (klen == 0 || msg_id == NULL || strchr(msg_id, '.') != NULL)
        goto fail;
    snprintf(ts, sizeof(ts), ".%" PRId64 ".", timestamp);
    /* Streamed rather than concatenated: the body may be large and is signed as it is sent. */
    if (mbedtls_md_setup(&ctx, md, 1) != 0 || mbedtls_md_hmac_starts(&ctx, key, klen) != 0 ||
        mbedtls_md_hmac_update(&ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 0 ||
        mbedtls_md_hmac_update(&ctx, (const unsigned char *)ts, strlen(ts)) != 0 ||
        mbedtls_md_hmac_update(&ctx, body, len) != 0 || mbedtls_md_hmac_finish(&ctx, mac) != 0) {
        rc = EG_EINTERNAL;
        goto fail;
    }
    memcpy(out, "v1,", 3);
    eg_base64_encode(mac, sizeof(mac), out + 3);
    rc = 0;
fail:
    mbedtls_md_free(&ctx);
    mbedtls_platform_zeroize(key, sizeof(key));
    return rc;
}

int64_t eg_webhook_retry_delay_ms(unsigned attempt, double scale, uint32_t rnd)
{
    /* Standard Webhooks' example schedule, cut at 8 attempts (about 32 hours in all). */
    static const int64_t sched_s[] = {5, 300, 1800, 7200, 18000, 36000, 36000};
    double d, jitter;

    if (attempt < 1 || attempt > EG_ARRAY_SIZE(sched_s))
        return -1;
    /* rnd maps to [-0.1, +0.1): retries of deliveries that failed together spread out. */
    jitter = ((double)rnd / 4294967296.0 - 0.5) * 0.2;
    d = (double)sched_s[attempt - 1] * 1000.0 * scale * (1.0 + jitter);
    return d < 0 ? 0 : (int64_t)llround(d);
}
