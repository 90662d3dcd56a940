/* Router: template matching, parameter decoding, 404 vs 405, mount prefixes, face lookup. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/http.h"

/* Distinct handlers so a test can tell which route matched. */
static void h_a(eg_req_t *req) { (void)req; }
static void h_b(eg_req_t *req) { (void)req; }
static void h_c(eg_req_t *req) { (void)req; }
static void h_d(eg_req_t *req) { (void)req; }

static eg_face_t face_root = {.name = "root", .prefix = "", .render_error = NULL};
static eg_face_t face_hs = {.name = "hindsight", .prefix = "/hindsight", .render_error = NULL};
static eg_face_t face_fency = {.name = "fency", .prefix = "/fency", .render_error = NULL};
static eg_face_t face_nested = {.name = "nested", .prefix = "/hindsight/v2", .render_error = NULL};

static eg_router_t *r;
static eg_arena_t arena;

static void setup(void)
{
    r = eg_router_new();
    cr_assert_not_null(r);
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_router_free(r);
    eg_arena_destroy(&arena);
}

TestSuite(router, .init = setup, .fini = teardown);

/* Result of one match, with everything the caller gets back. */
typedef struct {
    const eg_route_t *route;
    eg_kv_t *params;
    size_t nparams;
    char allow[128];
    bool bad_path;
} match_t;

static match_t match(const char *method, const char *path)
{
    match_t m;
    memset(&m, 0, sizeof m);
    strcpy(m.allow, "sentinel");
    m.route = eg_router_match(r, method, path, &arena, &m.params, &m.nparams, m.allow,
                              sizeof m.allow, &m.bad_path);
    return m;
}

static const char *param(const match_t *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return m->params[i].value;
    return NULL;
}

/* True if the comma-separated list contains the method (spaces around commas tolerated). */
static bool allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    const char *p = allow;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && strncmp(p, method, n) == 0)
            return true;
        p = e;
    }
    return false;
}

Test(router, literal_route_matches)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/health", h_a, EG_ROUTE_PUBLIC), 0);
    match_t m = match("GET", "/health");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a);
    cr_assert_eq(m.nparams, 0);
    cr_assert_not(m.bad_path);
    cr_assert_str_eq(m.route->method, "GET");
    cr_assert_str_eq(m.route->tmpl, "/health");
    cr_assert_eq(m.route->face, &face_root);
    cr_assert_eq(m.route->flags, EG_ROUTE_PUBLIC);
}

Test(router, flags_are_kept)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/whoami", h_a, EG_ROUTE_AUTH), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/stream", h_b,
                               EG_ROUTE_AUTH_PK | EG_ROUTE_TOKEN_QS),
                 0);
    match_t m = match("GET", "/engram/v1/whoami");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->flags, EG_ROUTE_AUTH);
    m = match("GET", "/engram/v1/stream");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->flags, EG_ROUTE_AUTH_PK | EG_ROUTE_TOKEN_QS);
}

Test(router, literal_beats_param_literal_added_last)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/stats", h_b, 0), 0);
    match_t m = match("GET", "/v1/banks/stats");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b, "literal segment must win over {param}");
    m = match("GET", "/v1/banks/other");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a);
    cr_assert_str_eq(param(&m, "bank_id"), "other");
}

Test(router, literal_beats_param_literal_added_first)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/stats", h_b, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks/stats");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b, "literal segment must win over {param}");
    m = match("GET", "/v1/banks/b1");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a);
    cr_assert_str_eq(param(&m, "bank_id"), "b1");
}

Test(router, literal_precedence_is_per_segment_with_backtracking)
{
    /* /v1/banks/stats/{x} exists only for GET ...; a path under a literal segment that does not
     * continue in the literal subtree must fall back to the {param} branch. */
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/stats/summary", h_b, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}/memories", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks/stats/memories");
    cr_assert_not_null(m.route, "must backtrack from the literal 'stats' into {bank_id}");
    cr_assert_eq(m.route->handler, h_a);
    cr_assert_str_eq(param(&m, "bank_id"), "stats");
    m = match("GET", "/v1/banks/stats/summary");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
}

Test(router, multiple_params)
{
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/default/banks/{bank_id}/documents/{doc_id}",
                               h_a, 0),
                 0);
    match_t m = match("GET", "/hindsight/v1/default/banks/b-1/documents/d.2");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.nparams, 2);
    cr_assert_str_eq(param(&m, "bank_id"), "b-1");
    cr_assert_str_eq(param(&m, "doc_id"), "d.2");
}

Test(router, params_are_percent_decoded)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks/a%20b%C3%A9");
    cr_assert_not_null(m.route);
    cr_assert_str_eq(param(&m, "bank_id"), "a b\xc3\xa9");
}

Test(router, encoded_slash_stays_inside_param)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}/stats", h_b, 0), 0);
    match_t m = match("GET", "/v1/banks/a%2Fstats");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a, "%%2F must not split the segment");
    cr_assert_str_eq(param(&m, "bank_id"), "a/stats");
    m = match("GET", "/v1/banks/a%2fb/stats");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
    cr_assert_str_eq(param(&m, "bank_id"), "a/b");
}

Test(router, plus_is_not_space_in_path)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks/a+b");
    cr_assert_not_null(m.route);
    cr_assert_str_eq(param(&m, "bank_id"), "a+b", "'+' is literal in a path (only queries use it)");
}

Test(router, param_does_not_match_empty_segment)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}/stats", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks//stats");
    cr_assert_null(m.route);
}

Test(router, not_found_gives_empty_allow)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/health", h_a, 0), 0);
    match_t m = match("GET", "/nope");
    cr_assert_null(m.route);
    cr_assert_not(m.bad_path);
    cr_assert_str_eq(m.allow, "", "404 must leave allow empty, got '%s'", m.allow);
    m = match("GET", "/health/deeper");
    cr_assert_null(m.route);
    cr_assert_str_eq(m.allow, "");
}

Test(router, wrong_method_gives_allow_list)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/keys", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "POST", "/engram/v1/keys", h_b, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "DELETE", "/engram/v1/keys/{id}", h_c, 0), 0);
    match_t m = match("PUT", "/engram/v1/keys");
    cr_assert_null(m.route);
    cr_assert_not(m.bad_path);
    cr_assert(allow_has(m.allow, "GET"), "allow='%s'", m.allow);
    cr_assert(allow_has(m.allow, "POST"), "allow='%s'", m.allow);
    cr_assert_not(allow_has(m.allow, "DELETE"), "allow='%s'", m.allow);
    cr_assert_not(allow_has(m.allow, "PUT"), "allow='%s'", m.allow);

    m = match("GET", "/engram/v1/keys/k1");
    cr_assert_null(m.route);
    cr_assert(allow_has(m.allow, "DELETE"), "allow='%s'", m.allow);
    cr_assert_not(allow_has(m.allow, "POST"), "allow='%s'", m.allow);
}

Test(router, allow_list_considers_param_routes_too)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/stats", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "DELETE", "/v1/banks/{bank_id}", h_b, 0), 0);
    /* The literal route has no DELETE, so DELETE /v1/banks/stats goes to the {param} route. */
    match_t m = match("DELETE", "/v1/banks/stats");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
    cr_assert_str_eq(param(&m, "bank_id"), "stats");
    /* PUT matches neither: both methods are allowed on that path. */
    m = match("PUT", "/v1/banks/stats");
    cr_assert_null(m.route);
    cr_assert(allow_has(m.allow, "GET"), "allow='%s'", m.allow);
    cr_assert(allow_has(m.allow, "DELETE"), "allow='%s'", m.allow);
}

Test(router, method_is_case_sensitive_exact)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/health", h_a, 0), 0);
    match_t m = match("POST", "/health");
    cr_assert_null(m.route);
    cr_assert(allow_has(m.allow, "GET"), "allow='%s'", m.allow);
}

Test(router, trailing_slash_tolerated)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/keys", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "DELETE", "/engram/v1/keys/{id}", h_b, 0), 0);
    match_t m = match("GET", "/engram/v1/keys/");
    cr_assert_not_null(m.route, "trailing slash must match the route without it");
    cr_assert_eq(m.route->handler, h_a);
    m = match("DELETE", "/engram/v1/keys/k1/");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
    cr_assert_str_eq(param(&m, "id"), "k1");
}

Test(router, duplicate_route_rejected)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/keys", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/engram/v1/keys", h_b, 0), EG_EINVAL);
    /* Same template with another method is fine. */
    cr_assert_eq(eg_router_add(r, &face_root, "POST", "/engram/v1/keys", h_b, 0), 0);
    /* The first registration is kept. */
    match_t m = match("GET", "/engram/v1/keys");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a);
}

Test(router, duplicate_after_prefix_join_rejected)
{
    /* "/hindsight" + "/v1/x" and root + "/hindsight/v1/x" are the same full template. */
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/x", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/hindsight/v1/x", h_b, 0), EG_EINVAL);
}

Test(router, bad_templates_rejected)
{
    static const char *bad[] = {
        "",            /* empty */
        "v1/keys",     /* no leading slash */
        "/v1/{",       /* unclosed brace */
        "/v1/{id",     /* unclosed brace */
        "/v1/{}",      /* empty parameter name */
        "/v1/}",       /* stray closing brace */
        "/v1/{a{b}}",  /* nested braces */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(eg_router_add(r, &face_root, "GET", bad[i], h_a, 0), EG_EINVAL,
                     "template '%s' must be rejected", bad[i]);
}

Test(router, bad_template_leaves_router_usable)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/{", h_a, 0), EG_EINVAL);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/ok", h_b, 0), 0);
    match_t m = match("GET", "/v1/ok");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
}

Test(router, prefix_join_root_and_mounted)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/banks", h_b, 0), 0);
    match_t m = match("GET", "/v1/banks");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_a);
    cr_assert_str_eq(m.route->tmpl, "/v1/banks");
    cr_assert_eq(m.route->face, &face_root);

    m = match("GET", "/hindsight/v1/banks");
    cr_assert_not_null(m.route);
    cr_assert_eq(m.route->handler, h_b);
    cr_assert_str_eq(m.route->tmpl, "/hindsight/v1/banks", "route->tmpl is the joined template");
    cr_assert_eq(m.route->face, &face_hs);
}

Test(router, mounted_route_not_reachable_without_prefix)
{
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    match_t m = match("GET", "/v1/banks/x");
    cr_assert_null(m.route);
    cr_assert_str_eq(m.allow, "");
    m = match("GET", "/hindsightx/v1/banks/x");
    cr_assert_null(m.route);
    m = match("GET", "/hindsight/v1/banks/x");
    cr_assert_not_null(m.route);
    cr_assert_str_eq(param(&m, "bank_id"), "x");
}

Test(router, face_for_longest_prefix)
{
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/a", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_nested, "GET", "/a", h_b, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_fency, "GET", "/v1/memories", h_c, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/health", h_d, 0), 0);

    cr_assert_eq(eg_router_face_for(r, "/hindsight/v1/anything"), &face_hs);
    cr_assert_eq(eg_router_face_for(r, "/hindsight"), &face_hs);
    cr_assert_eq(eg_router_face_for(r, "/hindsight/"), &face_hs);
    cr_assert_eq(eg_router_face_for(r, "/hindsight/v2/x"), &face_nested);
    cr_assert_eq(eg_router_face_for(r, "/hindsight/v2"), &face_nested);
    cr_assert_eq(eg_router_face_for(r, "/fency/v1/unknown"), &face_fency);
}

Test(router, face_for_matches_whole_segments_only)
{
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/a", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_nested, "GET", "/a", h_b, 0), 0);
    const eg_face_t *f = eg_router_face_for(r, "/hindsightx/v1");
    cr_assert_neq(f, &face_hs, "'/hindsight' must not claim '/hindsightx'");
    cr_assert_eq(eg_router_face_for(r, "/hindsight/v2x"), &face_hs,
                 "'/hindsight/v2' must not claim '/hindsight/v2x'");
}

Test(router, face_for_defaults_to_engram)
{
    cr_assert_eq(eg_router_add(r, &face_hs, "GET", "/v1/a", h_a, 0), 0);
    cr_assert_eq(eg_router_face_for(r, "/unknown/path"), &eg_face_engram);
    cr_assert_eq(eg_router_face_for(r, "/"), &eg_face_engram);
    cr_assert_eq(eg_router_face_for(r, "/health"), &eg_face_engram);
}

Test(router, bad_percent_escape_is_bad_path)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    static const char *bad[] = {"/v1/banks/%zz", "/v1/banks/%2", "/v1/banks/%", "/v1/banks/a%g1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        match_t m = match("GET", bad[i]);
        cr_expect_null(m.route, "path '%s' must not match", bad[i]);
        cr_expect(m.bad_path, "path '%s' must set bad_path", bad[i]);
    }
}

Test(router, good_path_clears_bad_path)
{
    cr_assert_eq(eg_router_add(r, &face_root, "GET", "/v1/banks/{bank_id}", h_a, 0), 0);
    bool bad = true;
    eg_kv_t *params = NULL;
    size_t n = 0;
    char allow[64] = "";
    const eg_route_t *rt =
        eg_router_match(r, "GET", "/v1/banks/ok", &arena, &params, &n, allow, sizeof allow, &bad);
    cr_assert_not_null(rt);
    cr_assert_not(bad, "bad_path must be false after a good match");
}

Test(router, many_routes)
{
    static char tmpls[200][48];
    for (int i = 0; i < 200; i++) {
        snprintf(tmpls[i], sizeof tmpls[i], "/v1/r%d/{id}/x%d", i, i);
        cr_assert_eq(eg_router_add(r, &face_root, "GET", tmpls[i], (i % 2) ? h_a : h_b, 0), 0);
    }
    for (int i = 0; i < 200; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/r%d/id%d/x%d", i, i, i);
        match_t m = match("GET", path);
        cr_assert_not_null(m.route, "%s", path);
        cr_assert_eq(m.route->handler, (i % 2) ? h_a : h_b);
        char want[16];
        snprintf(want, sizeof want, "id%d", i);
        cr_assert_str_eq(param(&m, "id"), want);
    }
}

Test(router, route_body_limits)
{
    cr_assert_eq(eg_router_add(r, &face_fency, "POST", "/uploads/s3", h_a, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_fency, "GET", "/uploads/s3", h_b, 0), 0);
    cr_assert_eq(eg_router_add(r, &face_fency, "POST", "/v1/m/{id}/x", h_c, 0), 0);
    /* No route has its own limit: the default, without matching. */
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/uploads/s3", 10), 10);

    cr_assert_eq(eg_router_set_max_body(r, &face_fency, "POST", "/uploads/s3", 1000), 0);
    cr_assert_eq(eg_router_set_max_body(r, &face_fency, "POST", "/v1/m/{id}/x", 5), 0);
    cr_assert_eq(eg_router_set_max_body(r, &face_fency, "PUT", "/uploads/s3", 1), EG_ENOTFOUND);
    cr_assert_eq(eg_router_set_max_body(r, &face_fency, "POST", "/uploads", 1), EG_ENOTFOUND);
    cr_assert_eq(eg_router_set_max_body(r, &face_hs, "POST", "/uploads/s3", 1), EG_ENOTFOUND);

    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/uploads/s3", 10), 1000);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/uploads/s3/?a=1#f", 10), 1000);
    cr_assert_eq(eg_router_body_limit(r, "POST", "http://h:1/fency/uploads/s3?x", 10), 1000);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/v1/m/mem_1/x", 10), 5);
    /* Another method, another path, an unknown path: the default. */
    cr_assert_eq(eg_router_body_limit(r, "GET", "/fency/uploads/s3", 10), 10);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/uploads", 10), 10);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/nowhere", 10), 10);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/%zz/x", 10), 10);

    /* Back to the default. */
    cr_assert_eq(eg_router_set_max_body(r, &face_fency, "POST", "/uploads/s3", 0), 0);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/uploads/s3", 10), 10);
    cr_assert_eq(eg_router_body_limit(r, "POST", "/fency/v1/m/mem_1/x", 10), 5);
}
