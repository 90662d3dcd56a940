/* Dispatch of a fully received request: request id, CORS preflight, routing (404/405),
 * query parsing, authentication, then the route's handler. */
#include <string.h>

#include "engram/error.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "net_int.h"

static bool valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0 && n <= 64;
}

/* Header values echoed into Access-Control-Allow-Headers must be a plain token list. */
static bool valid_header_list(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == ',' || c == ' '))
            return false;
    }
    return true;
}

static void handle_options(eg_req_t *req)
{
    eg_server_t *s = req->server;
    const char *origin = eg_req_header(req, "Origin");
    const char *acrm = eg_req_header(req, "Access-Control-Request-Method");
    char allow[256];
    eg_kv_t *params;
    size_t nparams;
    bool bad;

    (void)eg_router_match(s->router, "OPTIONS", req->path, &req->arena, &params, &nparams, allow,
                          sizeof(allow), &bad);
    if (origin && acrm) {
        const char *allowed = eg__cors_allow(s, origin);
        if (allowed == NULL) {
            eg_res_error(req, EG_EFORBIDDEN, "origin %s is not allowed (see ENGRAM_CORS_ORIGINS)",
                         origin);
            return;
        }
        const char *acrh = eg_req_header(req, "Access-Control-Request-Headers");
        eg_res_header(req, "Access-Control-Allow-Methods",
                      allow[0] ? eg_arena_printf(&req->arena, "%s, OPTIONS", allow)
                               : "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        eg_res_header(
            req, "Access-Control-Allow-Headers",
            acrh && valid_header_list(acrh) ? acrh : "Authorization, Content-Type, X-Request-Id");
        eg_res_header(req, "Access-Control-Max-Age", "600");
        if (strcmp(allowed, "*") != 0)
            eg_res_header(req, "Vary", "Origin, Access-Control-Request-Headers");
        eg_res_send(req, 204, NULL, NULL, 0);
        return;
    }
    if (allow[0] == '\0') {
        eg_res_error(req, EG_ENOTFOUND, "no route for %s", req->path);
        return;
    }
    eg_res_header(req, "Allow", eg_arena_printf(&req->arena, "%s, OPTIONS", allow));
    eg_res_send(req, 204, NULL, NULL, 0);
}

static void run_handler(eg_req_t *req)
{
    req->in_handler = 1;
    req->route->handler(req);
    /* req may be freed here: the handler can answer synchronously. */
}

/* A key-less request to a face that allows anonymous access acts on its configured workspace, as
 * with a secret key of that workspace. */
static void run_anonymous(eg_req_t *req)
{
    const eg_face_t *face = req->route->face;

    if (face->anonymous_workspace_id[0] == '\0') {
        eg_res_error(req, EG_EUNAVAIL, "the anonymous workspace '%s' is not resolved yet",
                     face->anonymous_workspace);
        return;
    }
    memset(&req->auth, 0, sizeof(req->auth));
    snprintf(req->auth.workspace_id, sizeof(req->auth.workspace_id), "%s",
             face->anonymous_workspace_id);
    req->auth.kind = EG_KEY_SECRET;
    run_handler(req);
}

static void on_auth(void *udata, int err, const eg_auth_t *auth)
{
    eg_req_t *req = udata;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0); /* releases the request */
        return;
    }
    if (err == EG_EAUTH) {
        eg_res_error(req, EG_EAUTH, "invalid API key");
        return;
    }
    if (err != 0) {
        eg_res_error(req, err, "cannot verify the API key: %s", eg_strerror(err));
        return;
    }
    if ((req->route->flags & EG_ROUTE_AUTH_PK) == 0 && auth->kind != EG_KEY_SECRET) {
        eg_res_error(req, EG_EAUTH, "this route requires a secret API key (sk_...)");
        return;
    }
    req->auth = *auth;
    run_handler(req);
}

void eg__dispatch(eg_req_t *req)
{
    eg_server_t *s = req->server;
    const char *rid = eg_req_header(req, "X-Request-Id");
    const char *target = req->target;
    const eg_route_t *route;
    char allow[256];
    bool bad_path;
    char *path, *q;

    if (rid && valid_request_id(rid))
        snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
    else
        eg__request_id(s, req->request_id);

    /* Absolute-form targets (proxies) carry scheme and authority before the path. */
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : "/";
    }
    if (target[0] != '/') {
        req->face = &eg_face_engram;
        eg_res_error(req, EG_EBADHTTP, "request target must be an absolute path");
        return;
    }
    path = eg_arena_strdup(&req->arena, target);
    q = strchr(path, '?');
    if (q) {
        *q = '\0';
        req->query = q + 1;
    }
    /* Fragments are never sent by clients, but must not reach the router. */
    if ((q = strchr(path, '#')) != NULL)
        *q = '\0';
    req->path = path;
    req->face = eg_router_face_for(s->router, path);

    if (strcmp(req->method, "OPTIONS") == 0) {
        handle_options(req);
        return;
    }
    req->is_head = strcmp(req->method, "HEAD") == 0;
    route = eg_router_match(s->router, req->method, path, &req->arena, &req->params, &req->nparams,
                            allow, sizeof(allow), &bad_path);
    if (route == NULL && req->is_head)
        route = eg_router_match(s->router, "GET", path, &req->arena, &req->params, &req->nparams,
                                allow, sizeof(allow), &bad_path);
    if (route == NULL) {
        if (bad_path) {
            eg_res_error(req, EG_EINVAL, "malformed percent-encoding in the request path");
        } else if (allow[0]) {
            eg_res_header(req, "Allow", allow);
            eg_res_error(req, EG_EMETHOD, "method %s is not allowed on %s (allowed: %s)",
                         req->method, path, allow);
        } else {
            eg_res_error(req, EG_ENOTFOUND, "no route for %s %s", req->method, path);
        }
        return;
    }
    req->route = route;
    req->face = route->face;
    if (eg_query_parse(&req->arena, req->query, &req->qs, &req->nqs) != 0) {
        eg_res_error(req, EG_EINVAL, "malformed percent-encoding in the query string");
        return;
    }
    if (route->flags & (EG_ROUTE_AUTH | EG_ROUTE_AUTH_PK)) {
        const char *token = eg_auth_token_from_header(eg_req_header(req, "Authorization"));
        if (token == NULL && (route->flags & EG_ROUTE_TOKEN_QS))
            token = eg_req_query(req, "token");
        if ((token == NULL || token[0] == '\0') && route->face->anonymous_workspace) {
            run_anonymous(req);
            return;
        }
        if (token == NULL || token[0] == '\0') {
            eg_res_error(req, EG_EAUTH,
                         "missing API key: send it as 'Authorization: Bearer <key>'");
            return;
        }
        eg_auth_check(token, on_auth, req);
        return;
    }
    run_handler(req);
}
