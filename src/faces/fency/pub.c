/* Fency face: the public routes the browser SDK calls with a publishable key and a one-action
 * client token (fency.md §3, §4) — create a stream, create an agent task on a stream, the two
 * download links — plus the GET behind a response download link, and /pub/ct/types. Sessions and
 * the SSE route are mounted from here too (sessions.c, sse.c).
 *
 * A client token is looked at first (eg_ctoken_peek) and consumed only once everything else about
 * the request is known to be good, so a bad body or a wrong stream token does not burn it; the
 * consumption is atomic, so of two requests racing with one token exactly one goes through. */
#include <stdio.h>
#include <string.h>

#include "engram/ctokens.h"
#include "engram/error.h"
#include "engram/pstream.h"
#include "engram/tasks.h"
#include "engram/util.h"
#include "fency_int.h"

#define DOWNLOAD_TTL_MS (5 * 60 * 1000) /* life of a response download link */

/* State of one /pub request across its steps (in the request arena). */
typedef struct pub_s {
    eg_req_t *req;
    const char *ctoken;
    const char *stoken;
    cJSON *body;
    const cJSON *task;   /* agent tasks: the one task object of the body */
    eg_task_type_t type; /* agent tasks: its type */
    cJSON *payload;      /* the client token's payload (deleted with the arena) */
    const char *id;      /* the id the body names (download links) */
    char stream_id[EG_PSTREAM_ID_MAX];
    char *query;
} pub_t;

static void json_delete(void *p)
{
    cJSON_Delete(p);
}

/* The request is gone: release it. True when the caller must stop. */
static bool gone(eg_req_t *req)
{
    if (!req->gone)
        return false;
    eg_res_send(req, 499, NULL, NULL, 0);
    return true;
}

/* Answer a client-token failure. */
static void ct_fail(eg_req_t *req, int err)
{
    if (err == EG_EAUTH)
        eg__fy_error(req, 401, "Invalid client token");
    else if (err == EG_EFORBIDDEN)
        eg__fy_error(req, 403, "Client token is not valid for this action or workspace");
    else
        eg__fy_fail(req, err, "client token");
}

/* Start a request's state after the publishable key passed: records who it is, takes the client
 * token header (NULL after answering 401). */
static pub_t *pub_begin(eg_req_t *req, const eg_auth_t *auth)
{
    const char *ct = eg_req_header(req, "X-Fency-Client-Token");
    pub_t *p;

    req->auth = *auth;
    if (ct == NULL || ct[0] == '\0') {
        eg__fy_error(req, 401, "Invalid client token");
        return NULL;
    }
    p = eg_arena_calloc(&req->arena, sizeof(*p));
    p->req = req;
    p->ctoken = ct;
    return p;
}

/* Keep a copy of a token payload for the rest of the request. */
static void keep_payload(pub_t *p, const cJSON *payload)
{
    p->payload = cJSON_Duplicate(payload, true);
    eg_arena_defer(&p->req->arena, json_delete, p->payload);
}

/* ---- POST /pub/ct/streams -------------------------------------------------------------------- */

static void on_stream_created(void *udata, int err, const eg_pstream_t *s)
{
    pub_t *p = udata;
    char created[EG_FY_TIME_MAX];
    cJSON *j;

    if (gone(p->req))
        return;
    if (err != 0) {
        eg__fy_fail(p->req, err, "stream");
        return;
    }
    eg_time_iso_us(s->created_us, created);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", s->id);
    cJSON_AddStringToObject(j, "createdAt", created);
    cJSON_AddStringToObject(j, "token", s->token);
    eg_res_json(p->req, 201, j);
}

static void on_stream_token(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    int rc;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    rc = eg_pstream_create(p->req->auth.workspace_id, on_stream_created, p);
    if (rc != 0)
        eg__fy_fail(p->req, rc, "stream");
}

static void streams_authed(eg_req_t *req, const eg_auth_t *auth)
{
    pub_t *p = pub_begin(req, auth);
    int rc;

    if (p == NULL)
        return;
    rc = eg_ctoken_consume(p->ctoken, auth->workspace_id, EG_CTOKEN_CREATE_STREAM, on_stream_token,
                           p);
    if (rc != 0)
        ct_fail(req, rc);
}

static void streams_post(eg_req_t *req)
{
    eg__fy_pk_auth(req, streams_authed);
}

/* ---- POST /pub/ct-st/agent-tasks ------------------------------------------------------------- */

static void on_task_created(void *udata, int err, const cJSON *task)
{
    pub_t *p = udata;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(task, "id");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(task, "createdAt");
    cJSON *j;

    if (gone(p->req))
        return;
    if (err != 0) {
        eg__fy_fail(p->req, err, "agent task");
        return;
    }
    if (!cJSON_IsString(id) || !cJSON_IsString(created)) {
        eg__fy_fail(p->req, EG_EINTERNAL, "agent task");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id->valuestring);
    cJSON_AddStringToObject(j, "createdAt", created->valuestring);
    cJSON_AddStringToObject(j, "type", eg_task_type_name(p->type));
    eg_res_json(p->req, 201, j);
}

/* The token is ours now: create the task on the stream. */
static void on_task_token_used(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    eg_task_spec_t spec;
    int rc;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    spec = (eg_task_spec_t){
        .ws_id = p->req->auth.workspace_id,
        .type = p->type,
        .request = p->task,
        .session = p->payload,
        .stream_id = p->stream_id,
    };
    rc = eg_task_create(&spec, on_task_created, p);
    if (rc != 0)
        eg__fy_fail(p->req, rc, "agent task");
}

static void on_task_stream(void *udata, int err, const eg_pstream_t *s)
{
    pub_t *p = udata;
    int rc;

    if (gone(p->req))
        return;
    if (err == EG_ENOTFOUND || err == EG_EAUTH) {
        eg__fy_error(p->req, 401, "Invalid stream token");
        return;
    }
    if (err != 0) {
        eg__fy_fail(p->req, err, "stream");
        return;
    }
    snprintf(p->stream_id, sizeof(p->stream_id), "%s", s->id);
    rc = eg_ctoken_consume(p->ctoken, p->req->auth.workspace_id, EG_CTOKEN_CREATE_AGENT_TASK,
                           on_task_token_used, p);
    if (rc != 0)
        ct_fail(p->req, rc);
}

static void on_task_token(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    const cJSON *tt;
    eg_task_type_t want;
    int rc;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    tt = cJSON_GetObjectItemCaseSensitive(payload, "taskType");
    if (!cJSON_IsString(tt) || eg_task_type_parse(tt->valuestring, &want) != 0) {
        eg__fy_fail(p->req, EG_EINTERNAL, "client token");
        return;
    }
    if (want != p->type) {
        eg__fy_error(p->req, 403,
                     "Client token was issued for a %s task, not %s (send %s with this token)",
                     eg_task_type_name(want), eg_task_type_name(p->type), eg_task_type_key(want));
        return;
    }
    keep_payload(p, payload);
    rc = eg_pstream_check(p->req->auth.workspace_id, NULL, p->stoken, on_task_stream, p);
    if (rc != 0)
        on_task_stream(p, rc, NULL);
}

static void tasks_authed(eg_req_t *req, const eg_auth_t *auth)
{
    pub_t *p = pub_begin(req, auth);
    const char *why = NULL;
    int rc;

    if (p == NULL)
        return;
    p->stoken = eg_req_header(req, "X-Fency-Stream-Token");
    if (p->stoken == NULL || p->stoken[0] == '\0') {
        eg__fy_error(req, 401, "missing X-Fency-Stream-Token header");
        return;
    }
    p->body = eg__fy_body(req);
    if (p->body == NULL)
        return;
    if (eg_task_request_check(p->body, &p->type, &why) != 0) {
        eg__fy_error(req, 400, "%s", why ? why : "invalid agent task request");
        return;
    }
    p->task = cJSON_GetObjectItemCaseSensitive(p->body, eg_task_type_key(p->type));
    rc = eg_ctoken_peek(p->ctoken, auth->workspace_id, EG_CTOKEN_CREATE_AGENT_TASK, on_task_token,
                        p);
    if (rc != 0)
        ct_fail(req, rc);
}

static void tasks_post(eg_req_t *req)
{
    eg__fy_pk_auth(req, tasks_authed);
}

/* ---- download links -------------------------------------------------------------------------- */

/* "<scheme>://<host><prefix>" of this request, for absolute links (NULL when Host is missing or
 * not a plain host[:port]). X-Forwarded-Proto https (a TLS-terminating proxy) gives https. */
static const char *base_url(eg_req_t *req)
{
    const char *host = eg_req_header(req, "Host");
    const char *proto = eg_req_header(req, "X-Forwarded-Proto");

    if (host == NULL || host[0] == '\0' || strlen(host) > 255)
        return NULL;
    for (const char *s = host; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == ':' || *s == '[' || *s == ']'))
            return NULL;
    return eg_arena_printf(&req->arena, "%s://%s%s",
                           proto != NULL && eg_strcaseeq(proto, "https") ? "https" : "http", host,
                           eg__fy_face.prefix);
}

/* The body's id field (a non-empty string) must be the one the token's session named. NULL after
 * answering. */
static const char *body_id(pub_t *p, const cJSON *payload, const char *key)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(payload, key);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(p->body, key);

    if (!cJSON_IsString(got) || got->valuestring[0] == '\0') {
        eg__fy_error(p->req, 400, "%s is required (a string)", key);
        return NULL;
    }
    if (!cJSON_IsString(want) || strcmp(want->valuestring, got->valuestring) != 0) {
        eg__fy_error(p->req, 403, "Client token was issued for another %s", key);
        return NULL;
    }
    return got->valuestring;
}

static void on_file_token(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    const char *id;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    id = body_id(p, payload, "agentTaskFileId");
    if (id == NULL)
        return;
    /* engram's agent tasks produce no files (no report generation): no file id exists. The token
     * is not consumed, as for any unsuccessful use. */
    eg__fy_error(p->req, 404, "agent task file %s not found", id);
}

static void file_link_authed(eg_req_t *req, const eg_auth_t *auth)
{
    pub_t *p = pub_begin(req, auth);
    int rc;

    if (p == NULL || (p->body = eg__fy_body(req)) == NULL)
        return;
    rc = eg_ctoken_peek(p->ctoken, auth->workspace_id, EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD,
                        on_file_token, p);
    if (rc != 0)
        ct_fail(req, rc);
}

static void file_link_post(eg_req_t *req)
{
    eg__fy_pk_auth(req, file_link_authed);
}

static void on_link_issued(void *udata, int err, const char *token)
{
    pub_t *p = udata;
    const char *base;
    cJSON *j;

    if (gone(p->req))
        return;
    if (err != 0) {
        eg__fy_fail(p->req, err, "download link");
        return;
    }
    base = base_url(p->req);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(
        j, "downloadLink",
        eg_arena_printf(&p->req->arena, "%s/pub/downloads/%s", base ? base : "", token));
    if (p->query != NULL)
        cJSON_AddStringToObject(j, "query", p->query);
    else
        cJSON_AddNullToObject(j, "query");
    eg_res_json(p->req, 200, j);
}

static void on_response_token_used(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    cJSON *link;
    int rc;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    link = cJSON_CreateObject();
    cJSON_AddStringToObject(link, "ws", p->req->auth.workspace_id);
    cJSON_AddStringToObject(link, "agentTaskId", p->id);
    rc = eg_ctoken_issue(p->req->auth.workspace_id, EG_CTOKEN_DOWNLOAD, link, NULL, DOWNLOAD_TTL_MS,
                         on_link_issued, p);
    cJSON_Delete(link);
    if (rc != 0)
        eg__fy_fail(p->req, rc, "download link");
}

static void on_response_archive(void *udata, int err, const char *json, const char *query)
{
    pub_t *p = udata;
    int rc;

    if (gone(p->req))
        return;
    if (err == EG_ENOTFOUND) {
        eg__fy_error(p->req, 404, "agent task %s not found", p->id);
        return;
    }
    if (err != 0) {
        eg__fy_fail(p->req, err, "agent task");
        return;
    }
    p->query = query != NULL ? eg_arena_strdup(&p->req->arena, query) : NULL;
    rc = eg_ctoken_consume(p->ctoken, p->req->auth.workspace_id, EG_CTOKEN_GET_AGENT_TASK_RESPONSE,
                           on_response_token_used, p);
    if (rc != 0)
        ct_fail(p->req, rc);
}

static void on_response_token(void *udata, int err, const cJSON *payload)
{
    pub_t *p = udata;
    const char *id;
    int rc;

    if (gone(p->req))
        return;
    if (err != 0) {
        ct_fail(p->req, err);
        return;
    }
    id = body_id(p, payload, "agentTaskId");
    if (id == NULL)
        return; /* answered: p is gone with the request */
    p->id = id;
    rc = eg_task_archive(p->req->auth.workspace_id, p->id, on_response_archive, p);
    if (rc != 0)
        on_response_archive(p, rc, NULL, NULL);
}

static void response_link_authed(eg_req_t *req, const eg_auth_t *auth)
{
    pub_t *p = pub_begin(req, auth);
    int rc;

    if (p == NULL || (p->body = eg__fy_body(req)) == NULL)
        return;
    rc = eg_ctoken_peek(p->ctoken, auth->workspace_id, EG_CTOKEN_GET_AGENT_TASK_RESPONSE,
                        on_response_token, p);
    if (rc != 0)
        ct_fail(req, rc);
}

static void response_link_post(eg_req_t *req)
{
    eg__fy_pk_auth(req, response_link_authed);
}

/* ---- GET /pub/downloads/{token}: the archive behind a response download link ----------------- */

static void on_download_archive(void *udata, int err, const char *json, const char *query)
{
    eg_req_t *req = udata;

    if (gone(req))
        return;
    if (err == EG_ENOTFOUND) {
        eg__fy_error(req, 404, "agent task not found");
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "agent task");
        return;
    }
    eg_res_header(req, "Cache-Control", "private, no-store");
    eg_res_send(req, 200, "application/json", json, strlen(json));
}

static void on_download_token(void *udata, int err, const cJSON *payload)
{
    eg_req_t *req = udata;
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(payload, "ws");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(payload, "agentTaskId");
    int rc;

    if (gone(req))
        return;
    if (err == EG_EAUTH || err == EG_EFORBIDDEN) {
        eg__fy_error(req, 403, "This download link is invalid or has expired");
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "download link");
        return;
    }
    if (!cJSON_IsString(ws) || !cJSON_IsString(id)) {
        eg__fy_fail(req, EG_EINTERNAL, "download link");
        return;
    }
    snprintf(req->auth.workspace_id, sizeof(req->auth.workspace_id), "%s", ws->valuestring);
    rc = eg_task_archive(ws->valuestring, id->valuestring, on_download_archive, req);
    if (rc != 0)
        on_download_archive(req, rc, NULL, NULL);
}

static void download_get(eg_req_t *req)
{
    int rc = eg_ctoken_peek(eg_req_param(req, "token"), NULL, EG_CTOKEN_DOWNLOAD, on_download_token,
                            req);

    if (rc != 0)
        on_download_token(req, rc, NULL);
}

/* ---- POST /pub/ct/types ---------------------------------------------------------------------- */

static void types_post(eg_req_t *req)
{
    /* Exists in Fency's API for code generation only. */
    eg_res_json(req, 200, cJSON_CreateObject());
}

int eg__fy_pub_mount(eg_router_t *r)
{
    static const eg__fy_route_t routes[] = {
        {"POST", "/pub/ct/streams", streams_post},
        {"POST", "/pub/ct-st/agent-tasks", tasks_post},
        {"POST", "/pub/ct/agent-task-files/download-link", file_link_post},
        {"POST", "/pub/ct/agent-task-response/download-link", response_link_post},
        {"GET", "/pub/downloads/{token}", download_get},
        {"POST", "/pub/ct/types", types_post},
    };
    int rc = eg__fy_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_PUBLIC);

    if (rc == 0)
        rc = eg__fy_sessions_mount(r);
    if (rc == 0)
        rc = eg__fy_sse_mount(r);
    return rc;
}
