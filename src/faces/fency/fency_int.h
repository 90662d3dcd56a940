/* Fency face internals shared by its files: the error shape, page tokens, publishable-key
 * authentication and the mount functions of each route group. Ids ("mem_" + 32 hex) and
 * timestamps with microseconds come from engram/util.h (eg_hexid_new, eg_hexid_valid,
 * eg_time_iso_us). The wire contract is ../shared/faces/fency.md. */
#ifndef ENGRAM_FENCY_INT_H
#define ENGRAM_FENCY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/http.h"
#include "engram/zpage.h"

#define EG_FY_ID_MAX     40 /* "<prefix>_" + 32 hex + NUL, for prefixes up to 6 characters */
#define EG_FY_TIME_MAX   32 /* "2024-04-08T17:02:27.887295Z" + NUL */
#define EG_FY_LIMIT_DEF  20 /* default page size */
#define EG_FY_LIMIT_MAX  100
#define EG_FY_SDK_HEADER "X-Fency-Sdk-Version"

/* The face (prefix set at mount). */
extern eg_face_t eg__fy_face;

/* One route of the face. */
typedef struct eg__fy_route_s {
    const char *method, *tmpl;
    eg_handler_fn fn;
} eg__fy_route_t;

/* Add routes[0..n) under the face's prefix with the router flags (EG_ROUTE_AUTH, ...). */
int eg__fy_add_routes(eg_router_t *r, const eg__fy_route_t *routes, size_t n, unsigned flags);

/* Answer {"error":{"message": ...}} at an explicit status. */
void eg__fy_error(eg_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answer a core error (EG_*) at its Fency status: what names the thing ("memory", "stream");
 * EG_ENOTFOUND says "<what> not found", storage errors answer 503 with Retry-After. */
void eg__fy_fail(eg_req_t *req, int err, const char *what);

/* The request body as a JSON object, or NULL after answering 400 (malformed JSON, not an object,
 * empty). */
cJSON *eg__fy_body(eg_req_t *req);

/* Pagination query: nextPageToken or previousPageToken (both → 400), limit (1..100, default 20)
 * and asc (true|false, default false). Fills q's cursor, backwards, limit and asc (keys are the
 * caller's); false after answering 400. */
bool eg__fy_page_query(eg_req_t *req, eg_zpage_req_t *q);

/* {"items": items, "pagination": {"previousPageToken", "nextPageToken"}} with null at either
 * end; takes ownership of items. */
cJSON *eg__fy_page_json(cJSON *items, const eg_zpage_t *page);

/* Publishable-key authentication of /pub and /sse requests: X-Fency-Publishable-Key must be a
 * pk_ key of a workspace. Calls cb(req, auth) once it is, or answers 401 itself. */
typedef void (*eg__fy_auth_fn)(eg_req_t *req, const eg_auth_t *auth);
void eg__fy_pk_auth(eg_req_t *req, eg__fy_auth_fn cb);

/* Route groups, one mount function each (face.c calls them all):
 * memories, memory types and bulk jobs; uploads; sessions, /pub and /sse; agent tasks and
 * conversations; events. */
int eg__fy_library_mount(eg_router_t *r);
int eg__fy_uploads_mount(eg_router_t *r);
int eg__fy_pub_mount(eg_router_t *r);
int eg__fy_tasks_mount(eg_router_t *r);
int eg__fy_events_mount(eg_router_t *r);

/* Mounted by eg__fy_pub_mount: POST /v1/sessions (sessions.c), GET /sse/streams/{id} (sse.c). */
int eg__fy_sessions_mount(eg_router_t *r);
int eg__fy_sse_mount(eg_router_t *r);

#endif
