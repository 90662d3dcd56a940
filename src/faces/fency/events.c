/* Fency face: the event listing — GET /v1/events (paged, ?type= filter) and GET /v1/events/{id}
 * over the core event log (engram/events.h, 30 days), Fency's five event types only, each in
 * Fency's envelope (engram/events_fency.h). Fency documents 30-day access to events but no route;
 * engram serves these because issue 6 asks for the events to be listable (docs/fency.md).
 *
 * Page tokens are base64url of "n:<event id>" (the events after it in display order) or
 * "p:<event id>" (the events before it); a previous page is read in the opposite order and
 * reversed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/events.h"
#include "engram/events_fency.h"
#include "engram/util.h"
#include "fency_int.h"

#define EV_READS_MAX 8 /* log reads one page may take when a type filter skips many events */

static const char *const s_types[] = {"memory.created", "memory.updated", "memory.deleted",
                                      "agent.task.created", "agent.task.updated"};

typedef struct ev_list_s {
    eg_req_t *req;
    const char *types[EG_ARRAY_SIZE(s_types)];
    size_t ntypes;
    bool desc;      /* display order newest first */
    bool backwards; /* a previousPageToken page: read against the display order */
    bool had_token;
    size_t limit, n, reads;
    char **items; /* envelopes in read order */
    char **ids;   /* their event ids */
    char cursor[EG_EVENT_ID_MAX];
    bool has_more;
} ev_list_t;

/* ---- page tokens ------------------------------------------------------------------------- */

static char *token_encode(eg_arena_t *a, char dir, const char *event_id)
{
    char raw[EG_EVENT_ID_MAX + 2];
    char *out;
    size_t n;

    n = (size_t)snprintf(raw, sizeof(raw), "%c:%s", dir, event_id);
    out = eg_arena_alloc(a, 4 * ((n + 2) / 3) + 1);
    n = eg_base64_encode(raw, n, out);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *s = out; *s; s++)
        *s = *s == '+' ? '-' : *s == '/' ? '_' : *s;
    return out;
}

/* The direction ('n' or 'p') and event id of a token; false when it is not one of ours. */
static bool token_decode(const char *token, char *dir, char id[EG_EVENT_ID_MAX])
{
    unsigned char b64[96], raw[72];
    size_t n = strlen(token), olen = 0;

    if (n == 0 || n > 80)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];

        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
        b64[i] = (unsigned char)c;
    }
    while (n % 4)
        b64[n++] = '=';
    if (mbedtls_base64_decode(raw, sizeof(raw) - 1, &olen, b64, n) != 0 || olen < 3 ||
        olen - 2 >= EG_EVENT_ID_MAX || raw[1] != ':' || (raw[0] != 'n' && raw[0] != 'p'))
        return false;
    raw[olen] = '\0';
    *dir = (char)raw[0];
    memcpy(id, raw + 2, olen - 1);
    return eg_event_id_parse(id, NULL, NULL) == 0;
}

/* ---- GET /v1/events ---------------------------------------------------------------------- */

static int list_read(ev_list_t *l);

static void list_render(ev_list_t *l)
{
    eg_req_t *req = l->req;
    eg_buf_t b = EG_BUF_INIT;
    const char *prev = NULL, *next = NULL;
    const char *first, *last;

    /* In display order the items are ids[0..n) forwards, or reversed for a previous page. */
    first = l->n == 0 ? NULL : l->backwards ? l->ids[l->n - 1] : l->ids[0];
    last = l->n == 0 ? NULL : l->backwards ? l->ids[0] : l->ids[l->n - 1];
    if (!l->backwards) {
        if (l->has_more)
            next = token_encode(&req->arena, 'n', l->cursor);
        if (l->had_token && first != NULL)
            prev = token_encode(&req->arena, 'p', first);
    } else {
        if (l->has_more)
            prev = token_encode(&req->arena, 'p', l->cursor);
        if (last != NULL)
            next = token_encode(&req->arena, 'n', last);
    }
    eg_buf_puts(&b, "{\"items\":[");
    for (size_t i = 0; i < l->n; i++) {
        size_t k = l->backwards ? l->n - 1 - i : i;

        if (i > 0)
            eg_buf_puts(&b, ",");
        eg_buf_puts(&b, l->items[k]);
    }
    eg_buf_puts(&b, "],\"pagination\":{\"previousPageToken\":");
    if (prev != NULL)
        eg_buf_json_str(&b, prev);
    else
        eg_buf_puts(&b, "null");
    eg_buf_puts(&b, ",\"nextPageToken\":");
    if (next != NULL)
        eg_buf_json_str(&b, next);
    else
        eg_buf_puts(&b, "null");
    eg_buf_puts(&b, "}}");
    eg_res_send(req, 200, "application/json", b.data, b.len);
    eg_buf_free(&b);
}

static void on_list_page(void *udata, int err, const eg_event_page_t *page)
{
    ev_list_t *l = udata;
    eg_req_t *req = l->req;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "events");
        return;
    }
    for (size_t i = 0; i < page->n && l->n < l->limit; i++) {
        char *s = eg_event_fency_json(req->auth.workspace_id, &page->events[i]);

        if (s == NULL)
            continue; /* not a well-formed event: nothing a client could use */
        l->items[l->n] = eg_arena_strdup(&req->arena, s);
        l->ids[l->n++] = eg_arena_strdup(&req->arena, page->events[i].id);
        free(s);
    }
    l->has_more = page->has_more;
    if (page->next_cursor != NULL)
        snprintf(l->cursor, sizeof(l->cursor), "%s", page->next_cursor);
    /* A type filter may leave a page short while the log goes on: read on from the cursor. */
    if (l->has_more && l->n < l->limit && ++l->reads < EV_READS_MAX) {
        int rc = list_read(l);

        if (rc != 0)
            eg__fy_fail(req, rc, "events");
        return;
    }
    list_render(l);
}

static int list_read(ev_list_t *l)
{
    eg_event_query_t q = {0};

    q.after = l->cursor[0] != '\0' ? l->cursor : NULL;
    q.types = l->types;
    q.ntypes = l->ntypes;
    q.limit = (int)(l->limit - l->n);
    q.desc = l->backwards ? !l->desc : l->desc;
    return eg_events_read(l->req->auth.workspace_id, &q, on_list_page, l);
}

/* ?type= (repeatable): Fency's event types only; none = all five. false after answering 400. */
static bool list_types(eg_req_t *req, ev_list_t *l)
{
    const char *given[EG_EVENT_TYPES_MAX + 1];
    size_t n = eg_req_query_all(req, "type", given, EG_ARRAY_SIZE(given));

    if (n == 0) {
        for (size_t i = 0; i < EG_ARRAY_SIZE(s_types); i++)
            l->types[l->ntypes++] = s_types[i];
        return true;
    }
    for (size_t i = 0; i < n && i < EG_ARRAY_SIZE(given); i++) {
        bool dup = false;

        if (!eg_event_fency_type(given[i])) {
            eg__fy_error(req, 400,
                         "type must be one of memory.created, memory.updated, memory.deleted, "
                         "agent.task.created, agent.task.updated");
            return false;
        }
        for (size_t j = 0; j < l->ntypes; j++)
            dup = dup || strcmp(l->types[j], given[i]) == 0;
        if (!dup)
            l->types[l->ntypes++] = given[i];
    }
    return true;
}

static void events_list(eg_req_t *req)
{
    const char *next = eg_req_query(req, "nextPageToken");
    const char *prev = eg_req_query(req, "previousPageToken");
    const char *limit = eg_req_query(req, "limit"), *asc = eg_req_query(req, "asc");
    ev_list_t *l = eg_arena_calloc(&req->arena, sizeof(*l));
    const char *token;
    int64_t v = EG_FY_LIMIT_DEF;
    char dir;
    int rc;

    l->req = req;
    if (next != NULL && next[0] == '\0')
        next = NULL;
    if (prev != NULL && prev[0] == '\0')
        prev = NULL;
    if (next != NULL && prev != NULL) {
        eg__fy_error(req, 400,
                     "nextPageToken and previousPageToken are mutually exclusive: send one");
        return;
    }
    token = next != NULL ? next : prev;
    if (token != NULL) {
        if (!token_decode(token, &dir, l->cursor) || dir != (next != NULL ? 'n' : 'p')) {
            eg__fy_error(req, 400, "%s is not a valid page token",
                         next != NULL ? "nextPageToken" : "previousPageToken");
            return;
        }
        l->had_token = true;
        l->backwards = prev != NULL;
    }
    if (limit != NULL && eg_parse_int64(limit, 1, EG_FY_LIMIT_MAX, &v) != 0) {
        eg__fy_error(req, 400, "limit must be an integer from 1 to %d", EG_FY_LIMIT_MAX);
        return;
    }
    l->limit = (size_t)v;
    l->desc = true;
    if (asc != NULL) {
        if (strcmp(asc, "true") == 0 || strcmp(asc, "1") == 0) {
            l->desc = false;
        } else if (strcmp(asc, "false") != 0 && strcmp(asc, "0") != 0) {
            eg__fy_error(req, 400, "asc must be true or false");
            return;
        }
    }
    if (!list_types(req, l))
        return;
    l->items = eg_arena_calloc(&req->arena, l->limit * sizeof(*l->items));
    l->ids = eg_arena_calloc(&req->arena, l->limit * sizeof(*l->ids));
    rc = list_read(l);
    if (rc != 0)
        eg__fy_fail(req, rc, "events");
}

/* ---- GET /v1/events/{id} ----------------------------------------------------------------- */

static void on_event(void *udata, int err, const eg_event_t *ev)
{
    eg_req_t *req = udata;
    char *s;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err == 0 && !eg_event_fency_type(ev->type))
        err = EG_ENOTFOUND; /* engram's other events are not Fency's */
    if (err != 0) {
        eg__fy_fail(req, err, "event");
        return;
    }
    s = eg_event_fency_json(req->auth.workspace_id, ev);
    if (s == NULL) {
        eg__fy_fail(req, EG_ENOTFOUND, "event");
        return;
    }
    eg_res_send(req, 200, "application/json", s, strlen(s));
    free(s);
}

static void events_get(eg_req_t *req)
{
    char id[EG_EVENT_ID_MAX];
    int rc = eg_event_fency_id_parse(req->auth.workspace_id, eg_req_param(req, "id"), id);

    if (rc == 0)
        rc = eg_events_get(req->auth.workspace_id, id, on_event, req);
    if (rc != 0)
        eg__fy_fail(req, rc, "event");
}

int eg__fy_events_mount(eg_router_t *r)
{
    static const eg__fy_route_t routes[] = {
        {"GET", "/v1/events", events_list},
        {"GET", "/v1/events/{id}", events_get},
    };

    return eg__fy_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
