/* Fency face: GET /sse/streams/{streamId} — a progress stream as Server-Sent Events (fency.md
 * §5). Authentication is the publishable key and the stream token in headers; the serving itself
 * (replay, live delivery, keep-alive, expiry) is the core's (engram/pstream.h). */
#include <string.h>

#include "engram/error.h"
#include "engram/pstream.h"
#include "engram/util.h"
#include "fency_int.h"

static void on_checked(void *udata, int err, const eg_pstream_t *s)
{
    eg_req_t *req = udata;
    const char *id = eg_req_param(req, "streamId");
    eg_pstream_sse_opts_t opts = {.last_event_id = eg_req_header(req, "Last-Event-ID")};
    int rc;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    switch (err) {
    case 0:
        rc = eg_pstream_sse(req, s, &opts);
        if (rc != 0)
            eg__fy_fail(req, rc, "stream");
        return;
    case EG_ENOTFOUND:
        /* The SDK fails the stream's pending tasks on this event; a 4xx would be fatal too but
         * says nothing about which stream. */
        eg_pstream_sse_once(req, "STREAM_NOT_FOUND", id);
        return;
    case EG_EAUTH:
        eg__fy_error(req, 401, "Invalid stream token");
        return;
    default:
        eg__fy_fail(req, err, "stream");
    }
}

static void sse_authed(eg_req_t *req, const eg_auth_t *auth)
{
    const char *token = eg_req_header(req, "X-Fency-Stream-Token");
    int rc;

    req->auth = *auth;
    if (token == NULL || token[0] == '\0') {
        eg__fy_error(req, 401, "missing X-Fency-Stream-Token header");
        return;
    }
    rc =
        eg_pstream_check(auth->workspace_id, eg_req_param(req, "streamId"), token, on_checked, req);
    if (rc != 0)
        on_checked(req, rc, NULL);
}

static void sse_get(eg_req_t *req)
{
    eg__fy_pk_auth(req, sse_authed);
}

int eg__fy_sse_mount(eg_router_t *r)
{
    static const eg__fy_route_t routes[] = {
        {"GET", "/sse/streams/{streamId}", sse_get},
    };

    return eg__fy_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_PUBLIC);
}
