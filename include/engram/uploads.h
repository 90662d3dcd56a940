/* File uploads for the library's FILE memories, in the style of an S3 browser POST: a grant
 * (POST /v1/memories/{id}/uploads) hands the client the form fields to post with its file (key,
 * base64 policy, AWS SigV4-style signature, credential, date, session token); the form posted
 * back is verified here (signature, expiry, key, size range, content type) and its file handed
 * to eg_lib_memory_set_file exactly once.
 *
 * Signing key: derived SigV4-style from one secret that the first engramd creates in Redis
 * (SET NX), so every process verifies every grant. Upload state (which grant is current, and
 * whether it was used) lives in the memory's workspace slot. */
#ifndef ENGRAM_UPLOADS_H
#define ENGRAM_UPLOADS_H

#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"

#define EG_UPLOAD_ALGORITHM "AWS4-HMAC-SHA256"
#define EG_UPLOAD_REGION    "engram"
#define EG_UPLOAD_TTL_MS    (15 * 60 * 1000) /* a grant's policy expires after 15 minutes */
#define EG_UPLOAD_MAX_DEF   ((size_t)25 << 20)
#define EG_UPLOAD_NAME_MAX  1024 /* bytes of a file name */

/* Largest file an upload accepts: ENGRAM_FENCY_UPLOAD_MAX (a size such as 25m), default 25 MiB. */
size_t eg_upload_max_bytes(void);

/* What an upload accepts: the file of one FILE memory, with its declared name, type and size. */
typedef struct eg_upload_spec_s {
    const char *ws_id, *memory_id;
    const char *file_name, *mime;
    int64_t size;
} eg_upload_spec_t;

/* The signed form fields a client posts along with its file (all NUL-terminated, in an arena).
 * key is "<ws id>/<memory id>/<token>" and session_token the token (32 hex characters). */
typedef struct eg_upload_grant_s {
    const char *amz_date;   /* 20240408T170227Z */
    const char *signature;  /* 64 lowercase hex characters */
    const char *algorithm;  /* EG_UPLOAD_ALGORITHM */
    const char *credential; /* engram/<yyyymmdd>/engram/s3/aws4_request */
    const char *policy;     /* base64 of the policy JSON */
    const char *key;
    const char *session_token;
} eg_upload_grant_t;

/* Build and sign the POST policy of spec for the upload token at now_ms: expiration now + 15
 * minutes, conditions key, x-amz-* fields, content-length-range [size, size] and Content-Type
 * equal to spec->mime. Pure (no I/O). */
void eg_upload_sign(eg_arena_t *a, const char *secret, const eg_upload_spec_t *spec,
                    const char *token, int64_t now_ms, eg_upload_grant_t *out);

/* A posted form: its fields (NULL when absent) and its file. */
typedef struct eg_upload_form_s {
    const char *key, *policy, *algorithm, *credential, *amz_date, *signature, *session_token;
    const char *content_type; /* the form's own Content-Type field */
    const char *file_type;    /* the file part's Content-Type header */
    const void *data;         /* the file */
    size_t len;
} eg_upload_form_t;

/* Why a form was refused, S3 style. */
typedef enum {
    EG_UPLOAD_OK = 0,
    EG_UPLOAD_MALFORMED,     /* 400 a field missing or not what a grant contains */
    EG_UPLOAD_BAD_SIGNATURE, /* 403 the signature does not match the policy */
    EG_UPLOAD_DENIED,        /* 403 expired, a condition failed, the grant used or replaced */
    EG_UPLOAD_TOO_LARGE,     /* 400 the file is larger than the declared size */
    EG_UPLOAD_TOO_SMALL,     /* 400 the file is smaller than the declared size */
    EG_UPLOAD_NO_MEMORY,     /* 404 the memory is gone */
    EG_UPLOAD_UNAVAILABLE,   /* 503 storage */
} eg_upload_refusal_t;

/* S3's error code for a refusal ("AccessDenied", "SignatureDoesNotMatch", ...) and its HTTP
 * status. */
const char *eg_upload_refusal_code(eg_upload_refusal_t r);
int eg_upload_refusal_status(eg_upload_refusal_t r);

/* Verify a form against its policy at now_ms: the signature (constant time), the algorithm and
 * credential, the expiry and every condition. On success fills *spec (workspace, memory and
 * declared type/size from the policy) and *token. Otherwise returns the refusal with *why.
 * Pure (no I/O). */
eg_upload_refusal_t eg_upload_verify(eg_arena_t *a, const char *secret,
                                     const eg_upload_form_t *form, int64_t now_ms,
                                     eg_upload_spec_t *spec, const char **token, const char **why);

/* Create a grant for spec (fields already validated by the caller; size <= the maximum): the
 * memory must exist (EG_ENOTFOUND) and be a FILE memory (EG_EINVAL with why). The new grant
 * replaces any earlier one of the memory. cb gets the grant (valid during the call). 0, or
 * EG_EUNAVAIL when storage is down (cb not called). */
typedef void (*eg_upload_grant_fn)(void *udata, int err, const char *why,
                                   const eg_upload_grant_t *grant);
int eg_upload_create(const eg_upload_spec_t *spec, eg_upload_grant_fn cb, void *udata);

/* Accept a posted form: verify it, claim its grant once (a grant replaced by a newer one, or
 * already used, is refused), hand the file to the library and retire the grant. The form's data
 * must stay valid until cb. cb(udata, refusal, why): EG_UPLOAD_OK once the library has the
 * file. */
typedef void (*eg_upload_accept_fn)(void *udata, eg_upload_refusal_t r, const char *why);
void eg_upload_accept(const eg_upload_form_t *form, eg_upload_accept_fn cb, void *udata);

#endif
