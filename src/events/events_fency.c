/* Events in Fency's envelope (engram/events_fency.h): ids, organization ids and the body. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mbedtls/aes.h>

#include "engram/error.h"
#include "engram/events_fency.h"
#include "engram/util.h"

/* The workspace's permutation key: the first 16 bytes of SHA-256 over a label and the id. The
 * key is not a secret (ids are not meant to hide anything); it only makes the mapping look
 * random and differ per workspace. */
static void fy_key(const char *ws_id, unsigned char key[16])
{
    char buf[160], hex[65];
    int n = snprintf(buf, sizeof(buf), "engram fency event id\n%s", ws_id);

    eg_sha256_hex(buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : strlen(buf), hex);
    for (int i = 0; i < 16; i++) {
        unsigned v;

        sscanf(hex + 2 * i, "%2x", &v);
        key[i] = (unsigned char)v;
    }
}

static void fy_aes(const char *ws_id, int mode, const unsigned char in[16], unsigned char out[16])
{
    mbedtls_aes_context ctx;
    unsigned char key[16];

    fy_key(ws_id, key);
    mbedtls_aes_init(&ctx);
    /* One block through the raw cipher: a bijection on 128-bit values, which is all we need. */
    if (mode == MBEDTLS_AES_ENCRYPT)
        mbedtls_aes_setkey_enc(&ctx, key, 128);
    else
        mbedtls_aes_setkey_dec(&ctx, key, 128);
    mbedtls_aes_crypt_ecb(&ctx, mode, in, out);
    mbedtls_aes_free(&ctx);
}

static void fy_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t fy_get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int eg_event_fency_id(const char *ws_id, const char *event_id, char out[EG_EVENT_FENCY_ID_MAX])
{
    unsigned char in[16], enc[16];
    uint64_t ms, seq;

    if (ws_id == NULL || eg_event_id_parse(event_id, &ms, &seq) != 0)
        return EG_EINVAL;
    fy_put64(in, ms);
    fy_put64(in + 8, seq);
    fy_aes(ws_id, MBEDTLS_AES_ENCRYPT, in, enc);
    memcpy(out, "evt_", 4);
    eg_hex_encode(enc, 16, out + 4);
    return 0;
}

static int fy_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int eg_event_fency_id_parse(const char *ws_id, const char *fency_id, char out[EG_EVENT_ID_MAX])
{
    unsigned char in[16], dec[16];

    if (ws_id == NULL || fency_id == NULL || strncmp(fency_id, "evt_", 4) != 0 ||
        strlen(fency_id) != 36)
        return EG_ENOTFOUND;
    for (int i = 0; i < 16; i++) {
        int hi = fy_hexval(fency_id[4 + 2 * i]), lo = fy_hexval(fency_id[5 + 2 * i]);

        if (hi < 0 || lo < 0)
            return EG_ENOTFOUND;
        in[i] = (unsigned char)(hi << 4 | lo);
    }
    fy_aes(ws_id, MBEDTLS_AES_DECRYPT, in, dec);
    /* Every 128-bit value decrypts to some pair; one whose ms is beyond any stream id Redis
     * would make (a random id, or one of another workspace) is simply not an event here. */
    snprintf(out, EG_EVENT_ID_MAX, "evt_%" PRIu64 "_%" PRIu64, fy_get64(dec), fy_get64(dec + 8));
    return 0;
}

void eg_event_fency_org(const char *ws_id, char out[EG_EVENT_FENCY_ID_MAX])
{
    char hex[65];
    size_t n = 0;

    memcpy(out, "org_", 4);
    if (eg_uuid_valid(ws_id)) {
        for (const char *s = ws_id; *s; s++)
            if (*s != '-')
                hex[n++] = (char)(*s >= 'A' && *s <= 'F' ? *s - 'A' + 'a' : *s);
        hex[n] = '\0';
    } else {
        eg_sha256_hex(ws_id, strlen(ws_id), hex);
    }
    memcpy(out + 4, hex, 32);
    out[36] = '\0';
}

bool eg_event_fency_type(const char *type)
{
    static const char *const types[] = {"memory.created", "memory.updated", "memory.deleted",
                                        "agent.task.created", "agent.task.updated"};

    for (size_t i = 0; type != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* "YYYY-MM-DDTHH:MM:SS[.f...]Z" with exactly six fraction digits (truncated or padded); false
 * when s is not of that shape. */
static bool fy_time_us(const char *s, char out[32])
{
    size_t len = s != NULL ? strlen(s) : 0, k = 0;
    const char *frac;

    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[len - 1] != 'Z')
        return false;
    for (size_t i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (s[i] < '0' || s[i] > '9'))
            return false;
    frac = s + 19;
    if (*frac == '.') {
        for (k = 1; frac[k] >= '0' && frac[k] <= '9'; k++)
            ;
        if (frac[k] != 'Z' || frac[k + 1] != '\0' || k == 1)
            return false;
        k--; /* digits */
    } else if (strcmp(frac, "Z") != 0) {
        return false;
    }
    memcpy(out, s, 19);
    out[19] = '.';
    for (size_t i = 0; i < 6; i++)
        out[20 + i] = i < k ? frac[1 + i] : '0';
    out[26] = 'Z';
    out[27] = '\0';
    return true;
}

char *eg_event_fency_json(const char *ws_id, const eg_event_t *ev)
{
    cJSON *in = NULL, *out = NULL, *entity;
    const cJSON *created;
    char id[EG_EVENT_FENCY_ID_MAX], org[EG_EVENT_FENCY_ID_MAX], when[32], iso[32];
    char *s = NULL;
    uint64_t ms;

    if (ws_id == NULL || ev == NULL || ev->json == NULL || ev->type == NULL ||
        eg_event_fency_id(ws_id, ev->id, id) != 0 ||
        (in = cJSON_ParseWithLength(ev->json, ev->len)) == NULL)
        goto done;
    entity = cJSON_DetachItemFromObjectCaseSensitive(in, "entity");
    if (!cJSON_IsObject(entity)) {
        cJSON_Delete(entity);
        goto done;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(entity, "_");
    created = cJSON_GetObjectItemCaseSensitive(in, "createdAt");
    if (!fy_time_us(cJSON_GetStringValue(created), when)) {
        /* The stream id's time, for an event whose createdAt is not ours. */
        eg_event_id_parse(ev->id, &ms, NULL);
        eg_time_iso8601((int64_t)ms, iso);
        fy_time_us(iso, when);
    }
    eg_event_fency_org(ws_id, org);
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "id", id);
    cJSON_AddStringToObject(out, "version", "1");
    cJSON_AddStringToObject(out, "type", ev->type);
    cJSON_AddStringToObject(out, "createdAt", when);
    cJSON_AddStringToObject(out, "organizationId", org);
    cJSON_AddItemToObject(out, "entity", entity);
    s = cJSON_PrintUnformatted(out);
done:
    cJSON_Delete(out);
    cJSON_Delete(in);
    return s;
}
