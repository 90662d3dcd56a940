/* Router: a segment trie over path templates. Literal segments win over {param} segments; a
 * request path is split on '/', each segment percent-decoded on its own (so an encoded '/' stays
 * inside a parameter), and matched with backtracking so /a/{x}/c and /a/b/d can coexist. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/http.h"
#include "engram/util.h"

#define EG_ROUTER_MAX_SEGS 32

typedef struct eg_rnode_s eg_rnode_t;

struct eg_rnode_s {
    char *seg;             /* literal segment (NULL for the param child) */
    char *param;           /* parameter name when this is a {param} node */
    eg_rnode_t **children; /* literal children */
    size_t nchildren;
    eg_rnode_t *param_child;
    eg_route_t **routes; /* routes ending here, one per method */
    size_t nroutes;
};

struct eg_router_s {
    eg_rnode_t root;
    const eg_face_t **faces;
    size_t nfaces;
    size_t nbody_limits; /* routes with their own body limit (0: no lookup while parsing) */
};

eg_router_t *eg_router_new(void)
{
    return eg_xcalloc(1, sizeof(eg_router_t));
}

static void node_free(eg_rnode_t *n)
{
    for (size_t i = 0; i < n->nchildren; i++) {
        node_free(n->children[i]);
        free(n->children[i]);
    }
    if (n->param_child) {
        node_free(n->param_child);
        free(n->param_child);
    }
    for (size_t i = 0; i < n->nroutes; i++) {
        free((char *)n->routes[i]->tmpl);
        free(n->routes[i]);
    }
    free(n->children);
    free(n->routes);
    free(n->seg);
    free(n->param);
}

void eg_router_free(eg_router_t *r)
{
    if (r == NULL)
        return;
    node_free(&r->root);
    free(r->faces);
    free(r);
}

static void remember_face(eg_router_t *r, const eg_face_t *face)
{
    for (size_t i = 0; i < r->nfaces; i++)
        if (r->faces[i] == face)
            return;
    r->faces = eg_xrealloc(r->faces, (r->nfaces + 1) * sizeof(*r->faces));
    r->faces[r->nfaces++] = face;
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

int eg_router_add(eg_router_t *r, const eg_face_t *face, const char *method, const char *tmpl,
                  eg_handler_fn handler, unsigned flags)
{
    const char *prefix = face ? face->prefix : "";
    char full[1024];
    eg_rnode_t *node = &r->root;
    char *p, *save = NULL, *seg;
    int n;

    if (tmpl == NULL || tmpl[0] != '/' || method == NULL || handler == NULL)
        return EG_EINVAL;
    n = snprintf(full, sizeof(full), "%s%s", prefix, tmpl);
    if (n < 0 || (size_t)n >= sizeof(full))
        return EG_EINVAL;
    /* "/v1/x/" registers as "/v1/x"; the root template "/" is the root node itself. */
    if (n > 1 && full[n - 1] == '/')
        full[--n] = '\0';

    char work[1024];
    memcpy(work, full, (size_t)n + 1);
    for (p = strtok_r(work, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        seg = p;
        size_t len = strlen(seg);
        if (seg[0] == '{') {
            if (len < 3 || seg[len - 1] != '}' || !valid_param_name(seg + 1, len - 2))
                return EG_EINVAL;
            if (node->param_child == NULL) {
                node->param_child = eg_xcalloc(1, sizeof(eg_rnode_t));
                node->param_child->param = eg_xstrndup(seg + 1, len - 2);
            } else if (strncmp(node->param_child->param, seg + 1, len - 2) != 0 ||
                       node->param_child->param[len - 2] != '\0') {
                /* Two names for one position would make eg_req_param ambiguous. */
                return EG_EINVAL;
            }
            node = node->param_child;
            continue;
        }
        if (strchr(seg, '{') || strchr(seg, '}'))
            return EG_EINVAL;
        eg_rnode_t *next = NULL;
        for (size_t i = 0; i < node->nchildren; i++)
            if (strcmp(node->children[i]->seg, seg) == 0)
                next = node->children[i];
        if (next == NULL) {
            next = eg_xcalloc(1, sizeof(eg_rnode_t));
            next->seg = eg_xstrdup(seg);
            node->children =
                eg_xrealloc(node->children, (node->nchildren + 1) * sizeof(*node->children));
            node->children[node->nchildren++] = next;
        }
        node = next;
    }
    /* An empty segment ("//") would have been skipped by strtok: reject it explicitly. */
    if (strstr(full, "//"))
        return EG_EINVAL;

    for (size_t i = 0; i < node->nroutes; i++)
        if (strcmp(node->routes[i]->method, method) == 0)
            return EG_EINVAL;

    eg_route_t *route = eg_xcalloc(1, sizeof(*route));
    route->method = method;
    route->tmpl = eg_xstrdup(full);
    route->handler = handler;
    route->flags = flags;
    route->face = face ? face : &eg_face_engram;
    node->routes = eg_xrealloc(node->routes, (node->nroutes + 1) * sizeof(*node->routes));
    node->routes[node->nroutes++] = route;
    remember_face(r, route->face);
    return 0;
}

typedef struct {
    char **segs;
    size_t nsegs;
    const char *method;
    const eg_rnode_t *terminals[8]; /* nodes the path reached, for the 405 Allow list */
    size_t nterminals;
    const char *bound[EG_ROUTER_MAX_SEGS]; /* param values along the current path */
    const char *names[EG_ROUTER_MAX_SEGS];
    size_t nbound;
} match_ctx_t;

static const eg_route_t *route_for(const eg_rnode_t *n, const char *method)
{
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i]->method, method) == 0)
            return n->routes[i];
    return NULL;
}

static const eg_route_t *match_node(match_ctx_t *m, const eg_rnode_t *n, size_t i)
{
    if (i == m->nsegs) {
        if (n->nroutes == 0)
            return NULL;
        if (m->nterminals < EG_ARRAY_SIZE(m->terminals))
            m->terminals[m->nterminals++] = n;
        return route_for(n, m->method);
    }
    const char *seg = m->segs[i];
    for (size_t c = 0; c < n->nchildren; c++) {
        if (strcmp(n->children[c]->seg, seg) == 0) {
            const eg_route_t *r = match_node(m, n->children[c], i + 1);
            if (r)
                return r;
            break;
        }
    }
    if (n->param_child && seg[0] != '\0') {
        size_t mark = m->nbound;
        m->names[mark] = n->param_child->param;
        m->bound[mark] = seg;
        m->nbound = mark + 1;
        const eg_route_t *r = match_node(m, n->param_child, i + 1);
        if (r)
            return r;
        m->nbound = mark;
    }
    return NULL;
}

const eg_route_t *eg_router_match(const eg_router_t *r, const char *method, const char *path,
                                  eg_arena_t *a, eg_kv_t **params, size_t *nparams, char *allow,
                                  size_t allowlen, bool *bad_path)
{
    char *segs[EG_ROUTER_MAX_SEGS];
    match_ctx_t m = {0};
    const eg_route_t *route;
    size_t len;

    *params = NULL;
    *nparams = 0;
    *bad_path = false;
    if (allowlen)
        allow[0] = '\0';
    if (path == NULL || path[0] != '/')
        return NULL;

    /* Split into decoded segments; a single trailing slash is ignored. */
    len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        len--;
    char *copy = eg_arena_strndup(a, path, len);
    size_t nsegs = 0;
    char *p = copy + 1;
    if (len > 1) {
        for (;;) {
            char *slash = strchr(p, '/');
            if (slash)
                *slash = '\0';
            if (nsegs == EG_ROUTER_MAX_SEGS)
                return NULL;
            if (eg_percent_decode(p, false, NULL) != 0) {
                *bad_path = true;
                return NULL;
            }
            segs[nsegs++] = p;
            if (!slash)
                break;
            p = slash + 1;
        }
    }
    /* Empty segments ("//") never match a template. */
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i][0] == '\0')
            return NULL;

    m.segs = segs;
    m.nsegs = nsegs;
    m.method = method;
    route = match_node(&m, &r->root, 0);
    if (route) {
        if (m.nbound) {
            eg_kv_t *kv = eg_arena_alloc(a, m.nbound * sizeof(*kv));
            for (size_t i = 0; i < m.nbound; i++) {
                kv[i].name = m.names[i];
                kv[i].value = m.bound[i];
            }
            *params = kv;
            *nparams = m.nbound;
        }
        return route;
    }
    if (m.nterminals && allowlen) {
        /* Union of the methods of every template the path matched, plus HEAD where GET is. */
        const char *meths[32];
        size_t nm = 0, off = 0;
        bool has_get = false, has_head = false;
        for (size_t t = 0; t < m.nterminals; t++) {
            for (size_t i = 0; i < m.terminals[t]->nroutes; i++) {
                const char *meth = m.terminals[t]->routes[i]->method;
                bool seen = false;
                for (size_t k = 0; k < nm; k++)
                    seen |= strcmp(meths[k], meth) == 0;
                if (!seen && nm < EG_ARRAY_SIZE(meths))
                    meths[nm++] = meth;
                has_get |= strcmp(meth, "GET") == 0;
                has_head |= strcmp(meth, "HEAD") == 0;
            }
        }
        if (has_get && !has_head && nm < EG_ARRAY_SIZE(meths))
            meths[nm++] = "HEAD";
        for (size_t i = 0; i < nm; i++) {
            int w = snprintf(allow + off, allowlen - off, "%s%s", off ? ", " : "", meths[i]);
            if (w < 0 || (size_t)w >= allowlen - off)
                break;
            off += (size_t)w;
        }
    }
    return NULL;
}

int eg_router_set_max_body(eg_router_t *r, const eg_face_t *face, const char *method,
                           const char *tmpl, size_t max)
{
    char full[1024], *save = NULL;
    eg_rnode_t *node = &r->root;
    int n = snprintf(full, sizeof(full), "%s%s", face ? face->prefix : "", tmpl ? tmpl : "");

    if (tmpl == NULL || method == NULL || n < 0 || (size_t)n >= sizeof(full))
        return EG_ENOTFOUND;
    /* Walk the trie the way eg_router_add built it. */
    for (char *seg = strtok_r(full, "/", &save); seg && node; seg = strtok_r(NULL, "/", &save)) {
        eg_rnode_t *next = NULL;
        if (seg[0] == '{') {
            next = node->param_child;
        } else {
            for (size_t i = 0; i < node->nchildren && !next; i++)
                if (strcmp(node->children[i]->seg, seg) == 0)
                    next = node->children[i];
        }
        node = next;
    }
    for (size_t i = 0; node && i < node->nroutes; i++)
        if (strcmp(node->routes[i]->method, method) == 0) {
            if (node->routes[i]->max_body == 0 && max)
                r->nbody_limits++;
            else if (node->routes[i]->max_body && !max)
                r->nbody_limits--;
            node->routes[i]->max_body = max;
            return 0;
        }
    return EG_ENOTFOUND;
}

size_t eg_router_body_limit(const eg_router_t *r, const char *method, const char *target,
                            size_t dflt)
{
    if (r == NULL || r->nbody_limits == 0 || target == NULL)
        return dflt;
    /* The same target handling as dispatch: absolute form, query and fragment cut off. */
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : "/";
    }
    eg_arena_t a;
    eg_kv_t *params;
    size_t nparams;
    char allow[8];
    bool bad;
    eg_arena_init(&a);
    char *path = eg_arena_strndup(&a, target, strcspn(target, "?#"));
    const eg_route_t *route =
        eg_router_match(r, method, path, &a, &params, &nparams, allow, sizeof(allow), &bad);
    size_t limit = route && route->max_body ? route->max_body : dflt;
    eg_arena_destroy(&a);
    return limit;
}

const eg_face_t *eg_router_face_for(const eg_router_t *r, const char *path)
{
    const eg_face_t *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < r->nfaces; i++) {
        const eg_face_t *f = r->faces[i];
        size_t plen = strlen(f->prefix);
        if (plen == 0 && f != &eg_face_engram) {
            if (best == NULL)
                best = f;
            continue;
        }
        if (plen && strncmp(path, f->prefix, plen) == 0 &&
            (path[plen] == '/' || path[plen] == '\0') && plen > best_len) {
            best = f;
            best_len = plen;
        }
    }
    /* engram's own paths always keep engram's shape, even under a face mounted at root. */
    if (strncmp(path, "/engram/", 8) == 0 || strncmp(path, "/health", 7) == 0)
        return best_len ? best : &eg_face_engram;
    return best ? best : &eg_face_engram;
}
