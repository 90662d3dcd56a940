/* Upload grants: the signed S3 POST policy (shape, SigV4 signature recomputed here), and the
 * verification of posted forms: good, tampered, expired, wrong type, wrong size, missing fields,
 * another secret. */
#include <criterion/criterion.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "engram/uploads.h"
#include "engram/util.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NOW    1775667747000LL /* 2026-04-08T17:02:27Z */
#define TOKEN  "00112233445566778899aabbccddeeff"

static eg_arena_t A;
static eg_upload_grant_t G;
static const eg_upload_spec_t SPEC = {
    .ws_id = "ws_1",
    .memory_id = "mem_0123456789abcdef0123456789abcdef",
    .file_name = "report.pdf",
    .mime = "application/pdf",
    .size = 5,
};

static void setup(void)
{
    eg_arena_init(&A);
    eg_upload_sign(&A, SECRET, &SPEC, TOKEN, NOW, &G);
}

static void teardown(void)
{
    eg_arena_destroy(&A);
}

TestSuite(uploads, .init = setup, .fini = teardown);

/* The form a browser would post with G and a file. */
static eg_upload_form_t form_of(const char *data, size_t len, const char *file_type)
{
    eg_upload_form_t f = {
        .key = G.key,
        .policy = G.policy,
        .algorithm = G.algorithm,
        .credential = G.credential,
        .amz_date = G.amz_date,
        .signature = G.signature,
        .session_token = G.session_token,
        .file_type = file_type,
        .data = data,
        .len = len,
    };
    return f;
}

static eg_upload_refusal_t verify(const eg_upload_form_t *f, int64_t now, const char **why)
{
    eg_upload_spec_t spec;
    const char *token;
    *why = NULL;
    return eg_upload_verify(&A, SECRET, f, now, &spec, &token, why);
}

static void hmac(const void *k, size_t kl, const char *m, unsigned char out[32])
{
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), k, kl, (const unsigned char *)m,
                    strlen(m), out);
}

Test(uploads, grant_fields_and_policy)
{
    cr_assert_str_eq(G.amz_date, "20260408T170227Z");
    cr_assert_str_eq(G.algorithm, "AWS4-HMAC-SHA256");
    cr_assert_str_eq(G.credential, "engram/20260408/engram/s3/aws4_request");
    cr_assert_str_eq(G.key, "ws_1/mem_0123456789abcdef0123456789abcdef/" TOKEN);
    cr_assert_str_eq(G.session_token, TOKEN);

    unsigned char json[2048];
    size_t n = 0;
    cr_assert_eq(mbedtls_base64_decode(json, sizeof json - 1, &n, (const unsigned char *)G.policy,
                                       strlen(G.policy)),
                 0);
    json[n] = '\0';
    cJSON *p = cJSON_Parse((const char *)json);
    cr_assert_not_null(p);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "expiration")->valuestring, "2026-04-08T17:17:27.000Z");
    char *conds = cJSON_PrintUnformatted(cJSON_GetObjectItem(p, "conditions"));
    cr_assert_str_eq(conds, "[{\"key\":\"ws_1/mem_0123456789abcdef0123456789abcdef/" TOKEN "\"},"
                            "{\"x-amz-algorithm\":\"AWS4-HMAC-SHA256\"},"
                            "{\"x-amz-credential\":\"engram/20260408/engram/s3/aws4_request\"},"
                            "{\"x-amz-date\":\"20260408T170227Z\"},"
                            "{\"x-amz-security-token\":\"" TOKEN "\"},"
                            "[\"content-length-range\",5,5],"
                            "[\"eq\",\"$Content-Type\",\"application/pdf\"]]");
    free(conds);
    cJSON_Delete(p);

    /* SigV4 recomputed independently. */
    unsigned char k[32];
    char hex[65];
    hmac("AWS4" SECRET, strlen("AWS4" SECRET), "20260408", k);
    hmac(k, 32, "engram", k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, G.policy, k);
    eg_hex_encode(k, 32, hex);
    hex[64] = '\0';
    cr_assert_str_eq(G.signature, hex);
}

Test(uploads, good_form_is_accepted)
{
    eg_upload_form_t f = form_of("%PDF-", 5, "application/pdf");
    eg_upload_spec_t spec;
    const char *token, *why = NULL;
    cr_assert_eq(eg_upload_verify(&A, SECRET, &f, NOW + 60000, &spec, &token, &why), EG_UPLOAD_OK,
                 "%s", why);
    cr_assert_str_eq(spec.ws_id, "ws_1");
    cr_assert_str_eq(spec.memory_id, SPEC.memory_id);
    cr_assert_str_eq(spec.mime, "application/pdf");
    cr_assert_eq(spec.size, 5);
    cr_assert_str_eq(token, TOKEN);

    /* A generic or missing file type leaves the declared type standing; a Content-Type field with
     * parameters and other case matches too. */
    f.file_type = "application/octet-stream";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_OK, "%s", why);
    f.file_type = NULL;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_OK, "%s", why);
    f.content_type = "Application/PDF; x=1";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_OK, "%s", why);
    /* Up to the last millisecond of the policy. */
    cr_assert_eq(verify(&f, NOW + EG_UPLOAD_TTL_MS, &why), EG_UPLOAD_OK, "%s", why);
}

Test(uploads, expired_policy_is_denied)
{
    eg_upload_form_t f = form_of("%PDF-", 5, "application/pdf");
    const char *why;
    cr_assert_eq(verify(&f, NOW + EG_UPLOAD_TTL_MS + 1, &why), EG_UPLOAD_DENIED);
    cr_assert_str_eq(why, "Invalid according to Policy: Policy expired.");
    cr_assert_str_eq(eg_upload_refusal_code(EG_UPLOAD_DENIED), "AccessDenied");
    cr_assert_eq(eg_upload_refusal_status(EG_UPLOAD_DENIED), 403);
}

Test(uploads, tampering_breaks_the_signature)
{
    const char *why;
    eg_upload_form_t f = form_of("%PDF-", 5, "application/pdf");

    /* A policy re-encoded with a larger size range. */
    eg_upload_spec_t big = SPEC;
    eg_upload_grant_t g2;
    big.size = 1 << 30;
    eg_upload_sign(&A, "another secret", &big, TOKEN, NOW, &g2);
    f.policy = g2.policy;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_BAD_SIGNATURE);
    cr_assert_eq(eg_upload_refusal_status(EG_UPLOAD_BAD_SIGNATURE), 403);
    cr_assert_str_eq(eg_upload_refusal_code(EG_UPLOAD_BAD_SIGNATURE), "SignatureDoesNotMatch");

    /* One flipped character of the signature, or of the policy. */
    f = form_of("%PDF-", 5, "application/pdf");
    char *sig = eg_arena_strdup(&A, G.signature);
    sig[10] = sig[10] == 'a' ? 'b' : 'a';
    f.signature = sig;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_BAD_SIGNATURE);
    f = form_of("%PDF-", 5, "application/pdf");
    char *pol = eg_arena_strdup(&A, G.policy);
    pol[20] = pol[20] == 'A' ? 'B' : 'A';
    f.policy = pol;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_BAD_SIGNATURE);
    /* A signature in upper case or cut short. */
    f = form_of("%PDF-", 5, "application/pdf");
    f.signature = "ABC";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_BAD_SIGNATURE);

    /* Verified with another secret (another deployment). */
    f = form_of("%PDF-", 5, "application/pdf");
    eg_upload_spec_t spec;
    const char *token;
    cr_assert_eq(eg_upload_verify(&A, "not the secret", &f, NOW, &spec, &token, &why),
                 EG_UPLOAD_BAD_SIGNATURE);
}

Test(uploads, fields_must_match_the_policy)
{
    const char *why;
    eg_upload_form_t f = form_of("%PDF-", 5, "application/pdf");
    /* Another memory's key with this grant's policy and signature. */
    f.key = "ws_1/mem_ffffffffffffffffffffffffffffffff/" TOKEN;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_DENIED);
    cr_assert(strstr(why, "Policy Condition failed") && strstr(why, "key"), "%s", why);
    f = form_of("%PDF-", 5, "application/pdf");
    f.session_token = "ffffffffffffffffffffffffffffffff";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_DENIED);
}

Test(uploads, content_type_is_enforced)
{
    const char *why;
    eg_upload_form_t f = form_of("hello", 5, "text/plain");
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_DENIED);
    cr_assert(strstr(why, "$Content-Type") && strstr(why, "text/plain"), "%s", why);
    /* The form's own field wins over the part's type, and must match as well. */
    f.file_type = "application/pdf";
    f.content_type = "image/png";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_DENIED);
}

Test(uploads, size_range_is_enforced)
{
    const char *why;
    eg_upload_form_t f = form_of("%PDF-1", 6, "application/pdf");
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_TOO_LARGE);
    cr_assert(strstr(why, "exceeds the maximum allowed size"), "%s", why);
    cr_assert_str_eq(eg_upload_refusal_code(EG_UPLOAD_TOO_LARGE), "EntityTooLarge");
    cr_assert_eq(eg_upload_refusal_status(EG_UPLOAD_TOO_LARGE), 400);
    f = form_of("%PDF", 4, "application/pdf");
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_TOO_SMALL);
}

Test(uploads, missing_or_malformed_fields)
{
    const char *why;
    eg_upload_form_t f = form_of("%PDF-", 5, "application/pdf");
    f.signature = NULL;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_MALFORMED);
    cr_assert_str_eq(why, "Bucket POST must contain a field named 'x-amz-signature'");
    f = form_of("%PDF-", 5, "application/pdf");
    f.policy = NULL;
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_MALFORMED);
    f = form_of("%PDF-", 5, "application/pdf");
    f.algorithm = "AWS4-HMAC-SHA1";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_MALFORMED);
    f = form_of("%PDF-", 5, "application/pdf");
    f.credential = "AKIA/20260408/us-east-1/s3/aws4_request";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_MALFORMED);
    f.credential = "engram/2026040x/engram/s3/aws4_request";
    cr_assert_eq(verify(&f, NOW, &why), EG_UPLOAD_MALFORMED);
    cr_assert_eq(eg_upload_refusal_status(EG_UPLOAD_MALFORMED), 400);
}

Test(uploads, max_bytes_default)
{
    /* The test runs without ENGRAM_FENCY_UPLOAD_MAX. */
    cr_assert_eq(eg_upload_max_bytes(), (size_t)25 << 20);
}
