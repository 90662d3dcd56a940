/* Fency face: file uploads. POST /v1/memories/{id}/uploads (secret key) answers the
 * awsS3PostRequest a client posts its file with; POST /uploads/s3 (public: the signed policy is
 * the credential) takes that multipart form the way S3 would and answers 204, or an S3-style XML
 * error. The grant, the verification and the hand-over live in engram/uploads.h. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/multipart.h"
#include "engram/uploads.h"
#include "engram/util.h"
#include "fency_int.h"

/* Room for the form fields and part headers around the file. */
#define FORM_OVERHEAD ((size_t)64 << 10)

/* ---- POST /v1/memories/{id}/uploads ------------------------------------------------------- */

/* "type/subtype" with token characters, parameters allowed. */
static bool mime_valid(const char *m)
{
    static const char tspecials[] = "()<>@,;:\\\"/[]?=";
    const char *p = m;
    int slashes = 0;
    size_t n = strcspn(m, ";");
    if (n == 0 || strlen(m) > 255)
        return false;
    for (size_t i = 0; i < n; i++, p++) {
        if (*p == '/') {
            if (i == 0 || i + 1 == n || ++slashes > 1)
                return false;
        } else if (*p <= ' ' || *p >= 0x7F || strchr(tspecials, *p)) {
            return false;
        }
    }
    return slashes == 1;
}

/* The absolute URL of the form endpoint, as the client reached this server: Host header (and
 * X-Forwarded-Proto behind a TLS-terminating proxy). NULL when Host is missing or unusable. */
static const char *upload_url(eg_req_t *req)
{
    const char *host = eg_req_header(req, "Host");
    const char *proto = eg_req_header(req, "X-Forwarded-Proto");
    const char *scheme = "http";
    if (!host || !*host || strlen(host) > 255)
        return NULL;
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_:[]", *p))
            return NULL;
    if (proto) {
        size_t n = strcspn(proto, ", ");
        if (n == 5 && strncasecmp(proto, "https", 5) == 0)
            scheme = "https";
    }
    return eg_arena_printf(&req->arena, "%s://%s%s/uploads/s3", scheme, host,
                           strcmp(eg__fy_face.prefix, "/") == 0 ? "" : eg__fy_face.prefix);
}

static void on_grant(void *udata, int err, const char *why, const eg_upload_grant_t *g)
{
    eg_req_t *req = udata;
    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err == EG_EINVAL) {
        eg__fy_error(req, 400, "%s", why ? why : "invalid request");
        return;
    }
    if (err) {
        eg__fy_fail(req, err, "memory");
        return;
    }
    cJSON *res = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(res, "awsS3PostRequest");
    cJSON_AddStringToObject(p, "amzDate", g->amz_date);
    cJSON_AddStringToObject(p, "amzSignature", g->signature);
    cJSON_AddStringToObject(p, "amzAlgorithm", g->algorithm);
    cJSON_AddStringToObject(p, "amzCredential", g->credential);
    cJSON_AddStringToObject(p, "policy", g->policy);
    cJSON_AddStringToObject(p, "key", g->key);
    cJSON_AddStringToObject(p, "uploadUrl", req->udata);
    cJSON_AddStringToObject(p, "sessionToken", g->session_token);
    eg_res_json(req, 200, res);
}

static void upload_create(eg_req_t *req)
{
    const char *id = eg_req_param(req, "id");
    cJSON *body = eg__fy_body(req);
    if (!body)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "fileName");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(body, "fileSize");
    const cJSON *mime = cJSON_GetObjectItemCaseSensitive(body, "mimeType");
    size_t max = eg_upload_max_bytes();

    if (!cJSON_IsString(name) || !*name->valuestring) {
        eg__fy_error(req, 400, "fileName is required: the file's name");
        return;
    }
    if (strlen(name->valuestring) > EG_UPLOAD_NAME_MAX) {
        eg__fy_error(req, 400, "fileName is longer than %d bytes", EG_UPLOAD_NAME_MAX);
        return;
    }
    for (const char *p = name->valuestring; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F) {
            eg__fy_error(req, 400, "fileName must not contain control characters");
            return;
        }
    /* Range first: a double out of int64_t's range must not be converted. */
    if (!cJSON_IsNumber(size) || size->valuedouble < 0 || size->valuedouble > 9007199254740992.0 ||
        size->valuedouble != floor(size->valuedouble)) {
        eg__fy_error(req, 400, "fileSize is required: the file's size in bytes (an integer >= 0)");
        return;
    }
    if (size->valuedouble > (double)max) {
        eg__fy_error(req, 400, "fileSize %.0f bytes is over the upload limit of %zu bytes",
                     size->valuedouble, max);
        return;
    }
    /* Browsers give File.type "" for a type they do not know: the file name decides then. */
    if (!cJSON_IsString(mime) || (*mime->valuestring && !mime_valid(mime->valuestring))) {
        eg__fy_error(req, 400, "mimeType is required: a content type such as application/pdf");
        return;
    }
    req->udata = (void *)upload_url(req);
    if (!req->udata) {
        eg__fy_error(req, 400, "the request has no usable Host header to build uploadUrl from");
        return;
    }
    eg_upload_spec_t spec = {
        .ws_id = req->auth.workspace_id,
        .memory_id = id,
        .file_name = name->valuestring,
        .mime = *mime->valuestring ? mime->valuestring : "application/octet-stream",
        .size = (int64_t)size->valuedouble,
    };
    int rc = eg_upload_create(&spec, on_grant, req);
    if (rc)
        eg__fy_fail(req, rc, "memory");
}

/* ---- POST /uploads/s3 --------------------------------------------------------------------- */

/* S3's error document. */
static void s3_error(eg_req_t *req, eg_upload_refusal_t r, const char *message)
{
    eg_buf_t b = EG_BUF_INIT;
    int status = eg_upload_refusal_status(r);
    eg_buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>",
                  eg_upload_refusal_code(r));
    for (const char *p = message ? message : ""; *p; p++) {
        switch (*p) {
        case '<':
            eg_buf_puts(&b, "&lt;");
            break;
        case '>':
            eg_buf_puts(&b, "&gt;");
            break;
        case '&':
            eg_buf_puts(&b, "&amp;");
            break;
        case '"':
            eg_buf_puts(&b, "&quot;");
            break;
        default:
            eg_buf_append(&b, p, 1);
        }
    }
    eg_buf_printf(&b, "</Message><RequestId>%s</RequestId></Error>\n", req->request_id);
    if (status == 503)
        eg_res_header(req, "Retry-After", "30");
    eg_res_send(req, status, "application/xml", b.data, b.len);
    eg_buf_free(&b);
}

static void on_accepted(void *udata, eg_upload_refusal_t r, const char *why)
{
    eg_req_t *req = udata;
    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (r == EG_UPLOAD_OK) {
        eg_res_send(req, 204, NULL, NULL, 0);
        return;
    }
    s3_error(req, r, why);
}

static const char *part_text(eg_req_t *req, const eg_multipart_part_t *p)
{
    return eg_arena_strndup(&req->arena, p->data, p->len);
}

static void upload_post(eg_req_t *req)
{
    eg_multipart_part_t *parts;
    size_t n;
    const char *why;
    const char *boundary = eg_multipart_boundary(&req->arena, eg_req_header(req, "Content-Type"));
    eg_upload_form_t *f = eg_arena_calloc(&req->arena, sizeof *f);
    bool file = false;

    if (!boundary) {
        s3_error(req, EG_UPLOAD_MALFORMED,
                 "The body of your POST request is not well-formed multipart/form-data");
        return;
    }
    if (eg_multipart_parse(&req->arena, boundary, req->body.data ? req->body.data : "",
                           req->body.len, &parts, &n, &why) != 0) {
        s3_error(req, EG_UPLOAD_MALFORMED, why);
        return;
    }
    /* Like S3: field names are case-insensitive, the file comes last and what follows it is
     * ignored. */
    for (size_t i = 0; i < n && !file; i++) {
        const eg_multipart_part_t *p = &parts[i];
        const char **slot = NULL;
        if (strcasecmp(p->name, "file") == 0) {
            f->data = p->data;
            f->len = p->len;
            f->file_type = p->content_type;
            file = true;
            continue;
        }
        if (strcasecmp(p->name, "key") == 0)
            slot = &f->key;
        else if (strcasecmp(p->name, "policy") == 0)
            slot = &f->policy;
        else if (strcasecmp(p->name, "x-amz-algorithm") == 0)
            slot = &f->algorithm;
        else if (strcasecmp(p->name, "x-amz-credential") == 0)
            slot = &f->credential;
        else if (strcasecmp(p->name, "x-amz-date") == 0)
            slot = &f->amz_date;
        else if (strcasecmp(p->name, "x-amz-signature") == 0)
            slot = &f->signature;
        else if (strcasecmp(p->name, "x-amz-security-token") == 0)
            slot = &f->session_token;
        else if (strcasecmp(p->name, "Content-Type") == 0)
            slot = &f->content_type;
        if (slot && !*slot)
            *slot = part_text(req, p);
    }
    if (!file) {
        s3_error(req, EG_UPLOAD_MALFORMED, "POST requires exactly one file upload per request");
        return;
    }
    eg_upload_accept(f, on_accepted, req);
}

int eg__fy_uploads_mount(eg_router_t *r)
{
    static const eg__fy_route_t secret[] = {
        {"POST", "/v1/memories/{id}/uploads", upload_create},
    };
    static const eg__fy_route_t open[] = {
        {"POST", "/uploads/s3", upload_post},
    };
    int rc = eg__fy_add_routes(r, secret, EG_ARRAY_SIZE(secret), EG_ROUTE_AUTH);
    if (!rc)
        rc = eg__fy_add_routes(r, open, EG_ARRAY_SIZE(open), EG_ROUTE_PUBLIC);
    /* The form carries a whole file: its own body limit instead of ENGRAM_MAX_BODY_SIZE. */
    if (!rc)
        rc = eg_router_set_max_body(r, &eg__fy_face, "POST", "/uploads/s3",
                                    eg_upload_max_bytes() + FORM_OVERHEAD);
    return rc;
}
