/* POST B/health/llm: probe the LLM of each bank operation (retain, consolidation, reflect) with
 * eg_llm_probe and report status only — never the provider, model, endpoint or error text. The
 * three probes run at once; the answer goes when the last one reports. */
#include <string.h>

#include "engram/llm.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const struct {
    const char *name;
    eg_llm_op_t op;
} probes[] = {
    {"retain", EG_LLM_OP_RETAIN},
    {"consolidation", EG_LLM_OP_CONSOLIDATION},
    {"reflect", EG_LLM_OP_REFLECT},
};

#define NPROBES EG_ARRAY_SIZE(probes)

typedef struct health_s {
    eg_req_t *req;
    size_t pending;
    struct {
        const char *status;
        uint64_t latency_ms;
    } res[NPROBES];
} health_t;

typedef struct slot_s {
    health_t *h;
    size_t i;
} slot_t;

static void on_probe(void *udata, const char *status, uint64_t latency_ms)
{
    slot_t *s = udata;
    health_t *h = s->h;
    cJSON *j, *ops;

    h->res[s->i].status = status;
    h->res[s->i].latency_ms = latency_ms;
    if (--h->pending > 0)
        return;
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(h->req, "bank_id"));
    ops = cJSON_AddArrayToObject(j, "operations");
    for (size_t i = 0; i < NPROBES; i++) {
        cJSON *o = cJSON_CreateObject();
        bool ok = strcmp(h->res[i].status, "connected") == 0;

        cJSON_AddStringToObject(o, "operation", probes[i].name);
        cJSON_AddBoolToObject(o, "ok", ok);
        cJSON_AddStringToObject(o, "status", h->res[i].status);
        if (strcmp(h->res[i].status, "not_configured") != 0)
            cJSON_AddNumberToObject(o, "latency_ms", (double)h->res[i].latency_ms);
        cJSON_AddItemToArray(ops, o);
    }
    eg__hs_send(h->req, 200, j);
}

static void h_health_llm(eg_req_t *req)
{
    health_t *h;
    slot_t *slots;

    if (eg__hs_bank_id(req) == NULL)
        return;
    /* Request-arena state: the response is sent from the last probe callback, and the arena
     * lives until then. A probe may report before eg_llm_probe returns (not configured). */
    h = eg_arena_calloc(&req->arena, sizeof(*h));
    slots = eg_arena_calloc(&req->arena, NPROBES * sizeof(*slots));
    h->req = req;
    h->pending = NPROBES;
    for (size_t i = 0; i < NPROBES; i++) {
        slots[i].h = h;
        slots[i].i = i;
        eg_llm_probe(probes[i].op, on_probe, &slots[i]);
    }
}

int eg__hs_health_llm_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"POST", B "/health/llm", h_health_llm},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
