/* Bank webhooks on the wire: the event types, the delivery body, URL and headers, the checks of an
 * endpoint's spec, and the JSON form its headers and params are stored in. Pure functions: the
 * endpoints and the events are in bank_webhooks.c, the attempts in webhooks_engine.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/util.h"
#include "webhooks_int.h"

static const char *const bank_event_types[] = {
    "retain.completed",
    "consolidation.completed",
    "memory_defense.triggered",
};

bool eg_bank_event_type_valid(const char *type)
{
    for (size_t i = 0; type != NULL && i < EG_ARRAY_SIZE(bank_event_types); i++)
        if (strcmp(type, bank_event_types[i]) == 0)
            return true;
    return false;
}

/* ---- the body ---------------------------------------------------------------------------- */

/* Hindsight serializes its event model with exclude_none: null members vanish at every depth. */
static void strip_nulls(cJSON *j)
{
    cJSON *c = j != NULL ? j->child : NULL;

    while (c != NULL) {
        cJSON *next = c->next;

        if (cJSON_IsObject(j) && cJSON_IsNull(c))
            cJSON_Delete(cJSON_DetachItemViaPointer(j, c));
        else if (cJSON_IsObject(c) || cJSON_IsArray(c))
            strip_nulls(c);
        c = next;
    }
}

char *eg_bank_webhook_body(const char *type, const cJSON *entity)
{
    static const char *const fields[] = {"bank_id", "operation_id", "status", "timestamp"};
    const cJSON *data;
    cJSON *o;
    char *s;

    if (!cJSON_IsObject(entity) || type == NULL)
        return NULL;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", type);
    for (size_t i = 0; i < EG_ARRAY_SIZE(fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(entity, fields[i]);

        if (v != NULL && !cJSON_IsNull(v))
            cJSON_AddItemToObject(o, fields[i], cJSON_Duplicate(v, true));
    }
    /* The data model is never null itself: with every field unset it is {}. */
    data = cJSON_GetObjectItemCaseSensitive(entity, "data");
    if (data == NULL || cJSON_IsNull(data))
        cJSON_AddItemToObject(o, "data", cJSON_CreateObject());
    else
        cJSON_AddItemToObject(o, "data", cJSON_Duplicate(data, true));
    strip_nulls(o);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- the request ------------------------------------------------------------------------- */

/* application/x-www-form-urlencoded, as Python's urlencode (quote_plus) writes it. */
static void form_encode(eg_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            eg_buf_append(out, p, 1);
        } else if (*p == ' ') {
            eg_buf_append(out, "+", 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

            eg_buf_append(out, e, 3);
        }
    }
}

void eg_bank_webhook_url(eg_buf_t *out, const char *url, const eg_kv_t *params, size_t nparams)
{
    const char *hash = strchr(url, '#');
    size_t len = hash != NULL ? (size_t)(hash - url) : strlen(url);
    const char *q = memchr(url, '?', len);

    eg_buf_append(out, url, len);
    for (size_t i = 0; i < nparams; i++) {
        if (i > 0 || (q != NULL && len > 0 && url[len - 1] != '?' && url[len - 1] != '&'))
            eg_buf_append(out, "&", 1);
        else if (q == NULL)
            eg_buf_append(out, "?", 1);
        form_encode(out, params[i].name);
        eg_buf_append(out, "=", 1);
        form_encode(out, params[i].value);
    }
}

size_t eg_bank_webhook_headers(const char *type, const eg_kv_t *custom, size_t ncustom,
                               const char *sig, eg_kv_t *out)
{
    size_t n = 0;

    out[n++] = (eg_kv_t){"Content-Type", "application/json"};
    out[n++] = (eg_kv_t){"X-Hindsight-Event", type};
    /* A dict update in Hindsight: a header given twice keeps its first place, last value. */
    for (size_t i = 0; i < ncustom; i++) {
        size_t j = 0;

        while (j < n && !eg_strcaseeq(out[j].name, custom[i].name))
            j++;
        if (j < n)
            out[j].value = custom[i].value;
        else
            out[n++] = custom[i];
    }
    if (sig != NULL) {
        size_t j = 0;

        while (j < n && !eg_strcaseeq(out[j].name, "X-Hindsight-Signature"))
            j++;
        out[j] = (eg_kv_t){"X-Hindsight-Signature", sig};
        if (j == n)
            n++;
    }
    return n;
}

/* ---- checks ------------------------------------------------------------------------------ */

static bool token_valid(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* A header value reaches the wire verbatim: no CR, LF or other control character. */
static bool value_valid(const char *s)
{
    if (s == NULL || strlen(s) > EG_BANK_WEBHOOK_KV_BYTES)
        return false;
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

static int check_http_config(const eg_bank_webhook_spec_t *spec, const char **sub, const char **why)
{
    /* The client writes these itself; a second copy would make the request ambiguous. */
    static const char *const reserved[] = {"Host", "Content-Length", "Transfer-Encoding",
                                           "Connection"};

    *sub = "method";
    if (spec->method != NULL && !eg_strcaseeq(spec->method, "POST") &&
        !eg_strcaseeq(spec->method, "GET")) {
        *why = "method must be \"POST\" or \"GET\"";
        return EG_EINVAL;
    }
    *sub = "timeout_seconds";
    if (spec->timeout_seconds < 0 || spec->timeout_seconds > EG_BANK_WEBHOOK_TIMEOUT_MAX) {
        *why = "timeout_seconds must be from 1 to 300";
        return EG_EINVAL;
    }
    *sub = "headers";
    if (spec->nheaders > EG_BANK_WEBHOOK_KV_MAX) {
        *why = "at most 32 headers";
        return EG_EINVAL;
    }
    for (size_t i = 0; i < spec->nheaders; i++) {
        if (!token_valid(spec->headers[i].name)) {
            *why = "header names must be HTTP tokens";
            return EG_EINVAL;
        }
        for (size_t j = 0; j < EG_ARRAY_SIZE(reserved); j++) {
            if (eg_strcaseeq(spec->headers[i].name, reserved[j])) {
                *why = "Host, Content-Length, Transfer-Encoding and Connection are set by the "
                       "client";
                return EG_EINVAL;
            }
        }
        if (!value_valid(spec->headers[i].value)) {
            *why = "header values must be at most 4096 bytes without control characters";
            return EG_EINVAL;
        }
    }
    *sub = "params";
    if (spec->nparams > EG_BANK_WEBHOOK_KV_MAX) {
        *why = "at most 32 params";
        return EG_EINVAL;
    }
    for (size_t i = 0; i < spec->nparams; i++) {
        const eg_kv_t *p = &spec->params[i];

        if (p->name == NULL || p->name[0] == '\0' || p->value == NULL ||
            strlen(p->name) > EG_BANK_WEBHOOK_KV_BYTES ||
            strlen(p->value) > EG_BANK_WEBHOOK_KV_BYTES) {
            *why = "params must have non-empty names, and names and values of at most 4096 "
                   "bytes";
            return EG_EINVAL;
        }
    }
    *sub = NULL;
    return 0;
}

int eg_bank_webhook_spec_check(const eg_bank_webhook_spec_t *spec, bool create, const char **field,
                               const char **sub, const char **why)
{
    *field = NULL;
    *sub = NULL;
    *why = NULL;
    if (create && !spec->has_url) {
        *field = "url";
        *why = "url is required";
        return EG_EINVAL;
    }
    if (spec->has_url) {
        const char *u = spec->url;

        *field = "url";
        if (u == NULL || strlen(u) > EG_WEBHOOK_URL_MAX ||
            (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
            eg_httpc_url_check(u) != 0) {
            *why = "url must be an absolute http:// or https:// URL with a host and no "
                   "credentials";
            return EG_EINVAL;
        }
    }
    if (spec->has_secret && spec->secret != NULL && strlen(spec->secret) > EG_WEBHOOK_SECRET_MAX) {
        *field = "secret";
        *why = "secret must be at most 256 bytes";
        return EG_EINVAL;
    }
    if (spec->has_types) {
        *field = "event_types";
        if (spec->ntypes > EG_WEBHOOK_TYPES_MAX) {
            *why = "at most 32 event types";
            return EG_EINVAL;
        }
        for (size_t i = 0; i < spec->ntypes; i++) {
            if (!eg_bank_event_type_valid(spec->event_types[i])) {
                *why = "event types must be 'retain.completed', 'consolidation.completed' or "
                       "'memory_defense.triggered'";
                return EG_EINVAL;
            }
        }
    }
    if (spec->has_http_config) {
        *field = "http_config";
        if (check_http_config(spec, sub, why) != 0)
            return EG_EINVAL;
    }
    *field = NULL;
    return 0;
}

/* ---- stored forms ------------------------------------------------------------------------ */

char *eg__bwh_kv_json(const eg_kv_t *kv, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToObject(o, kv[i].name, cJSON_CreateString(kv[i].value));
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

bool eg__bwh_kv_parse(eg_arena_t *a, const char *json, eg_kv_t **out, size_t *n)
{
    cJSON *o, *c;
    eg_kv_t *kv;
    size_t cap;

    *out = NULL;
    *n = 0;
    if (json == NULL || json[0] == '\0')
        return true;
    o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return false;
    }
    cap = (size_t)cJSON_GetArraySize(o);
    kv = eg_arena_calloc(a, (cap + 1) * sizeof(*kv));
    cJSON_ArrayForEach(c, o)
    {
        if (c->string == NULL || !cJSON_IsString(c))
            continue;
        kv[*n].name = eg_arena_strdup(a, c->string);
        kv[*n].value = eg_arena_strdup(a, c->valuestring);
        (*n)++;
    }
    cJSON_Delete(o);
    *out = kv;
    return true;
}
