/* Upload grants as S3 POST policies: building and signing one (AWS Signature Version 4 over the
 * base64 policy, with engram's own secret, access key id and region) and verifying a posted form
 * against it, and the upload size limit. No I/O; that side is uploads.c. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "engram/log.h"
#include "engram/uploads.h"
#include "engram/util.h"

#define ACCESS_KEY "engram"

static const char *const refusal_codes[] = {
    [EG_UPLOAD_OK] = "OK",
    [EG_UPLOAD_MALFORMED] = "MalformedPOSTRequest",
    [EG_UPLOAD_BAD_SIGNATURE] = "SignatureDoesNotMatch",
    [EG_UPLOAD_DENIED] = "AccessDenied",
    [EG_UPLOAD_TOO_LARGE] = "EntityTooLarge",
    [EG_UPLOAD_TOO_SMALL] = "EntityTooSmall",
    [EG_UPLOAD_NO_MEMORY] = "NoSuchKey",
    [EG_UPLOAD_UNAVAILABLE] = "ServiceUnavailable",
};
static const int refusal_status[] = {
    [EG_UPLOAD_OK] = 204,        [EG_UPLOAD_MALFORMED] = 400,   [EG_UPLOAD_BAD_SIGNATURE] = 403,
    [EG_UPLOAD_DENIED] = 403,    [EG_UPLOAD_TOO_LARGE] = 400,   [EG_UPLOAD_TOO_SMALL] = 400,
    [EG_UPLOAD_NO_MEMORY] = 404, [EG_UPLOAD_UNAVAILABLE] = 503,
};

const char *eg_upload_refusal_code(eg_upload_refusal_t r)
{
    return (unsigned)r <= EG_UPLOAD_UNAVAILABLE ? refusal_codes[r] : "InternalError";
}

int eg_upload_refusal_status(eg_upload_refusal_t r)
{
    return (unsigned)r <= EG_UPLOAD_UNAVAILABLE ? refusal_status[r] : 500;
}

size_t eg_upload_max_bytes(void)
{
    static size_t max;
    if (max == 0) {
        const char *v = getenv("ENGRAM_FENCY_UPLOAD_MAX");
        size_t n = 0;
        if (v && *v && eg_parse_size(v, &n) == 0 && n > 0)
            max = n;
        else {
            if (v && *v)
                eg_log_warn("uploads: ENGRAM_FENCY_UPLOAD_MAX=%s is not a size; using 25m", v);
            max = EG_UPLOAD_MAX_DEF;
        }
    }
    return max;
}

/* ---- Signing -------------------------------------------------------------------------------- */

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen,
                    (const unsigned char *)msg, strlen(msg), out);
}

/* SigV4: kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request");
 * the signature is hex(HMAC(kSigning, base64 policy)). */
static void sign(const char *secret, const char *date8, const char *policy_b64, char out[65])
{
    unsigned char k[32], mac[32];
    char *first = eg_xmalloc(strlen(secret) + 5);
    memcpy(first, "AWS4", 4);
    memcpy(first + 4, secret, strlen(secret) + 1);
    hmac(first, strlen(first), date8, k);
    hmac(k, sizeof k, EG_UPLOAD_REGION, k);
    hmac(k, sizeof k, "s3", k);
    hmac(k, sizeof k, "aws4_request", k);
    hmac(k, sizeof k, policy_b64, mac);
    eg_hex_encode(mac, sizeof mac, out);
    out[64] = '\0';
    memset(k, 0, sizeof k);
    memset(first, 0, strlen(first));
    free(first);
}

static cJSON *eq_cond(const char *field, const char *value)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, field, value);
    return o;
}

void eg_upload_sign(eg_arena_t *a, const char *secret, const eg_upload_spec_t *spec,
                    const char *token, int64_t now_ms, eg_upload_grant_t *out)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    char amz_date[20], date8[9], expires[32];

    gmtime_r(&t, &tm);
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';
    eg_time_iso8601(now_ms + EG_UPLOAD_TTL_MS, expires);

    out->amz_date = eg_arena_strdup(a, amz_date);
    out->algorithm = EG_UPLOAD_ALGORITHM;
    out->credential =
        eg_arena_printf(a, "%s/%s/%s/s3/aws4_request", ACCESS_KEY, date8, EG_UPLOAD_REGION);
    out->key = eg_arena_printf(a, "%s/%s/%s", spec->ws_id, spec->memory_id, token);
    out->session_token = eg_arena_strdup(a, token);

    cJSON *policy = cJSON_CreateObject(), *conds = cJSON_CreateArray(), *range, *ctype;
    cJSON_AddStringToObject(policy, "expiration", expires);
    cJSON_AddItemToObject(policy, "conditions", conds);
    cJSON_AddItemToArray(conds, eq_cond("key", out->key));
    cJSON_AddItemToArray(conds, eq_cond("x-amz-algorithm", out->algorithm));
    cJSON_AddItemToArray(conds, eq_cond("x-amz-credential", out->credential));
    cJSON_AddItemToArray(conds, eq_cond("x-amz-date", out->amz_date));
    cJSON_AddItemToArray(conds, eq_cond("x-amz-security-token", token));
    range = cJSON_CreateArray();
    cJSON_AddItemToArray(range, cJSON_CreateString("content-length-range"));
    cJSON_AddItemToArray(range, cJSON_CreateNumber((double)spec->size));
    cJSON_AddItemToArray(range, cJSON_CreateNumber((double)spec->size));
    cJSON_AddItemToArray(conds, range);
    ctype = cJSON_CreateArray();
    cJSON_AddItemToArray(ctype, cJSON_CreateString("eq"));
    cJSON_AddItemToArray(ctype, cJSON_CreateString("$Content-Type"));
    cJSON_AddItemToArray(ctype, cJSON_CreateString(spec->mime));
    cJSON_AddItemToArray(conds, ctype);

    char *json = cJSON_PrintUnformatted(policy);
    size_t jl = strlen(json);
    char *b64 = eg_arena_alloc(a, 4 * ((jl + 2) / 3) + 1);
    eg_base64_encode(json, jl, b64);
    free(json);
    cJSON_Delete(policy);
    out->policy = b64;

    char *sig = eg_arena_alloc(a, 65);
    sign(secret, date8, b64, sig);
    out->signature = sig;
}

/* ---- Verification --------------------------------------------------------------------------- */

/* "2024-04-08T17:02:27.887Z" (fraction optional) to ms; -1 when malformed. */
static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    s += n;
    if (*s == '.') {
        int digits = 0;
        for (s++; isdigit((unsigned char)*s); s++)
            if (digits++ < 3)
                ms = ms * 10 + (*s - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (*s != 'Z' || s[1])
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* "type/subtype" lowercased without parameters, in a. */
static const char *mime_base(eg_arena_t *a, const char *m)
{
    size_t n = strcspn(m, ";");
    while (n && isspace((unsigned char)m[n - 1]))
        n--;
    while (n && isspace((unsigned char)*m))
        m++, n--;
    char *r = eg_arena_strndup(a, m, n);
    for (char *p = r; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return r;
}

static bool mime_generic(const char *m)
{
    return !m || !*m || strcmp(m, "application/octet-stream") == 0;
}

/* The form's value of a policy field ("$x-amz-date" or "x-amz-date"); NULL when the form has no
 * such field. */
static const char *field(const eg_upload_form_t *f, const char *name)
{
    if (*name == '$')
        name++;
    if (strcasecmp(name, "key") == 0)
        return f->key;
    if (strcasecmp(name, "x-amz-algorithm") == 0)
        return f->algorithm;
    if (strcasecmp(name, "x-amz-credential") == 0)
        return f->credential;
    if (strcasecmp(name, "x-amz-date") == 0)
        return f->amz_date;
    if (strcasecmp(name, "x-amz-security-token") == 0)
        return f->session_token;
    return NULL;
}

typedef struct {
    eg_arena_t *a;
    const eg_upload_form_t *form;
    eg_upload_spec_t *spec;
    const char **why;
    bool have_range, have_type;
} verify_t;

/* The Content-Type condition: the form's Content-Type field when it has one, otherwise the file
 * part's own type unless that is generic (browsers send application/octet-stream for a type
 * they do not know; the declared type then stands). */
static eg_upload_refusal_t check_type(verify_t *v, const char *want)
{
    const char *got = v->form->content_type ? v->form->content_type : v->form->file_type;
    v->spec->mime = eg_arena_strdup(v->a, want); /* the policy tree goes */
    v->have_type = true;
    if (!v->form->content_type && (!got || mime_generic(mime_base(v->a, got))))
        return EG_UPLOAD_OK;
    if (strcmp(mime_base(v->a, got), mime_base(v->a, want)) != 0) {
        *v->why = eg_arena_printf(v->a,
                                  "Invalid according to Policy: Policy Condition failed: "
                                  "[\"eq\", \"$Content-Type\", \"%s\"] (the file is %s)",
                                  want, got);
        return EG_UPLOAD_DENIED;
    }
    return EG_UPLOAD_OK;
}

static eg_upload_refusal_t check_eq(verify_t *v, const char *name, const char *want, bool prefix)
{
    if (strcasecmp(name[0] == '$' ? name + 1 : name, "Content-Type") == 0 && !prefix)
        return check_type(v, want);
    const char *got = field(v->form, name);
    if (!got || (prefix ? strncmp(got, want, strlen(want)) != 0 : strcmp(got, want) != 0)) {
        *v->why = eg_arena_printf(v->a,
                                  "Invalid according to Policy: Policy Condition failed: "
                                  "[\"%s\", \"%s\", \"%s\"]",
                                  prefix ? "starts-with" : "eq", name, want);
        return EG_UPLOAD_DENIED;
    }
    return EG_UPLOAD_OK;
}

static eg_upload_refusal_t check_range(verify_t *v, const cJSON *c)
{
    const cJSON *lo = cJSON_GetArrayItem(c, 1), *hi = cJSON_GetArrayItem(c, 2);
    if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi)) {
        *v->why = "the policy's content-length-range is malformed";
        return EG_UPLOAD_MALFORMED;
    }
    v->have_range = true;
    v->spec->size = (int64_t)hi->valuedouble;
    if ((double)v->form->len > hi->valuedouble) {
        *v->why = eg_arena_printf(v->a,
                                  "Your proposed upload exceeds the maximum allowed size "
                                  "(%zu bytes, at most %.0f)",
                                  v->form->len, hi->valuedouble);
        return EG_UPLOAD_TOO_LARGE;
    }
    if ((double)v->form->len < lo->valuedouble) {
        *v->why = eg_arena_printf(v->a,
                                  "Your proposed upload is smaller than the minimum allowed "
                                  "size (%zu bytes, at least %.0f)",
                                  v->form->len, lo->valuedouble);
        return EG_UPLOAD_TOO_SMALL;
    }
    return EG_UPLOAD_OK;
}

static eg_upload_refusal_t check_condition(verify_t *v, const cJSON *c)
{
    if (cJSON_IsObject(c) && c->child && !c->child->next && cJSON_IsString(c->child))
        return check_eq(v, c->child->string, c->child->valuestring, false);
    const cJSON *op = cJSON_GetArrayItem(c, 0);
    if (cJSON_IsArray(c) && cJSON_IsString(op)) {
        if (strcasecmp(op->valuestring, "content-length-range") == 0)
            return check_range(v, c);
        const cJSON *name = cJSON_GetArrayItem(c, 1), *val = cJSON_GetArrayItem(c, 2);
        if (cJSON_IsString(name) && cJSON_IsString(val) &&
            (strcasecmp(op->valuestring, "eq") == 0 ||
             strcasecmp(op->valuestring, "starts-with") == 0))
            return check_eq(v, name->valuestring, val->valuestring,
                            strcasecmp(op->valuestring, "starts-with") == 0);
    }
    *v->why = "the policy has a condition engram does not know";
    return EG_UPLOAD_MALFORMED;
}

eg_upload_refusal_t eg_upload_verify(eg_arena_t *a, const char *secret,
                                     const eg_upload_form_t *form, int64_t now_ms,
                                     eg_upload_spec_t *spec, const char **token, const char **why)
{
    static const struct {
        const char *name;
        size_t off;
    } required[] = {
        {"key", offsetof(eg_upload_form_t, key)},
        {"policy", offsetof(eg_upload_form_t, policy)},
        {"x-amz-algorithm", offsetof(eg_upload_form_t, algorithm)},
        {"x-amz-credential", offsetof(eg_upload_form_t, credential)},
        {"x-amz-date", offsetof(eg_upload_form_t, amz_date)},
        {"x-amz-signature", offsetof(eg_upload_form_t, signature)},
        {"x-amz-security-token", offsetof(eg_upload_form_t, session_token)},
    };
    eg_upload_refusal_t r = EG_UPLOAD_OK;
    char date8[9], want[65];
    cJSON *policy = NULL;

    memset(spec, 0, sizeof *spec);
    *token = NULL;
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!*(const char *const *)((const char *)form + required[i].off)) {
            *why =
                eg_arena_printf(a, "Bucket POST must contain a field named '%s'", required[i].name);
            return EG_UPLOAD_MALFORMED;
        }
    if (strcmp(form->algorithm, EG_UPLOAD_ALGORITHM) != 0) {
        *why = "x-amz-algorithm must be " EG_UPLOAD_ALGORITHM;
        return EG_UPLOAD_MALFORMED;
    }
    /* <access key>/<yyyymmdd>/<region>/s3/aws4_request */
    const char *cr = form->credential;
    size_t akl = strlen(ACCESS_KEY);
    if (strncmp(cr, ACCESS_KEY "/", akl + 1) != 0 || strlen(cr) < akl + 10 ||
        strcmp(cr + akl + 9, "/" EG_UPLOAD_REGION "/s3/aws4_request") != 0) {
        *why = "x-amz-credential is not an engram upload credential";
        return EG_UPLOAD_MALFORMED;
    }
    memcpy(date8, cr + akl + 1, 8);
    date8[8] = '\0';
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)date8[i])) {
            *why = "x-amz-credential has a malformed date";
            return EG_UPLOAD_MALFORMED;
        }

    sign(secret, date8, form->policy, want);
    if (strlen(form->signature) != 64 || !eg_consttime_eq(want, form->signature, 64)) {
        *why = "The request signature we calculated does not match the signature you provided";
        return EG_UPLOAD_BAD_SIGNATURE;
    }

    /* The policy is ours (the signature says so), but still parsed with care. */
    size_t plen = strlen(form->policy), jlen = 0;
    unsigned char *json = eg_arena_alloc(a, plen + 1);
    if (mbedtls_base64_decode(json, plen, &jlen, (const unsigned char *)form->policy, plen) != 0 ||
        !(policy = cJSON_ParseWithLength((const char *)json, jlen)) || !cJSON_IsObject(policy)) {
        *why = "the policy is not base64 JSON";
        r = EG_UPLOAD_MALFORMED;
        goto done;
    }
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(policy, "expiration");
    int64_t exp_ms = parse_time(cJSON_IsString(exp) ? exp->valuestring : NULL);
    if (exp_ms < 0) {
        *why = "the policy has no valid expiration";
        r = EG_UPLOAD_MALFORMED;
        goto done;
    }
    if (now_ms > exp_ms) {
        *why = "Invalid according to Policy: Policy expired.";
        r = EG_UPLOAD_DENIED;
        goto done;
    }
    verify_t v = {.a = a, .form = form, .spec = spec, .why = why};
    const cJSON *conds = cJSON_GetObjectItemCaseSensitive(policy, "conditions"), *c;
    if (!cJSON_IsArray(conds)) {
        *why = "the policy has no conditions";
        r = EG_UPLOAD_MALFORMED;
        goto done;
    }
    /* The first failing condition is the answer. */
    cJSON_ArrayForEach(c, conds)
    {
        if ((r = check_condition(&v, c)) != EG_UPLOAD_OK)
            break;
    }
    if (r)
        goto done;
    /* The key condition matched the form's key, and the key names the memory. */
    const char *k = form->key, *s1 = strchr(k, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!v.have_range || !v.have_type || !s1 || !s2 || s1 == k || s2 == s1 + 1 || !s2[1] ||
        strchr(s2 + 1, '/') || strcmp(s2 + 1, form->session_token) != 0) {
        *why = "the policy is not an engram upload grant";
        r = EG_UPLOAD_MALFORMED;
        goto done;
    }
    spec->ws_id = eg_arena_strndup(a, k, (size_t)(s1 - k));
    spec->memory_id = eg_arena_strndup(a, s1 + 1, (size_t)(s2 - s1 - 1));
    *token = eg_arena_strdup(a, s2 + 1);
done:
    cJSON_Delete(policy);
    return r;
}
