/* Hindsight memory unit routes other than retain and recall: the listing, one memory, its
 * curation (PATCH), deleting one, its observation history, and clearing a bank's memories. Thin:
 * parse and check the vendor's shapes, call the memories module (engram/memories.h) or the store,
 * render ListUnit / MemoryDetail. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/memories.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const char *const tags_match_values[] = {"any",        "all",   "any_strict",
                                                "all_strict", "exact", NULL};

static const char *unit_not_found(eg_req_t *req)
{
    return eg_arena_printf(&req->arena, "Memory unit '%s' not found",
                           eg_req_param(req, "memory_id"));
}

/* Answer a failed read or edit of one memory: an id the store refuses names no memory. */
static void unit_fail(eg_req_t *req, int err)
{
    eg__hs_fail(req, err == EG_EINVAL ? EG_ENOTFOUND : err, unit_not_found(req));
}

/* ---- rendering --------------------------------------------------------------------------------
 */

/* The date Hindsight shows for a fact (its event date): occurred_start, else mentioned_at. */
static int64_t event_date(const eg_mem_unit_t *u)
{
    return u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
}

static void add_date(cJSON *o, const eg_mem_unit_t *u)
{
    char when[EG_TEXT_ISO_MAX] = "";

    if (event_date(u) != EG_MEM_TIME_NONE)
        eg_text_format_iso(event_date(u), when);
    cJSON_AddStringToObject(o, "date", when);
}

static cJSON *strings_json(const char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

static cJSON *metadata_json(const eg_mem_unit_t *u)
{
    return u->metadata ? cJSON_Duplicate(u->metadata, true) : cJSON_CreateObject();
}

static void add_state(cJSON *o, const eg_mem_unit_t *u)
{
    cJSON_AddStringToObject(o, "state", u->invalidated ? "invalidated" : "valid");
    if (u->invalidation_reason)
        cJSON_AddStringToObject(o, "invalidation_reason", u->invalidation_reason);
    eg__hs_add_time_us(o, "invalidated_at", u->invalidated_at);
    eg__hs_add_time_us(o, "edited_at", u->edited_at);
}

/* An observation's history as Hindsight shows it: {previous_text, changed_at (ISO), reason,
 * new_text, source_memory_ids?} per change, oldest first; [] for a fact. */
static cJSON *history_json(const eg_mem_unit_t *u)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *e;

    if (u->type != EG_FACT_OBSERVATION || u->history == NULL)
        return out;
    cJSON_ArrayForEach(e, u->history)
    {
        cJSON *c = cJSON_Duplicate(e, true);
        cJSON *at = cJSON_GetObjectItemCaseSensitive(c, "changed_at");

        if (cJSON_IsNumber(at)) {
            int64_t us = (int64_t)at->valuedouble;

            cJSON_DeleteItemFromObjectCaseSensitive(c, "changed_at");
            eg__hs_add_time_us(c, "changed_at", us);
        }
        cJSON_AddItemToArray(out, c);
    }
    return out;
}

/* ListUnit: entities as one comma-joined string. */
static cJSON *list_unit_json(const eg_memory_t *m)
{
    const eg_mem_unit_t *u = m->unit;
    cJSON *o = cJSON_CreateObject();
    eg_buf_t names = EG_BUF_INIT;

    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "text", u->text);
    cJSON_AddStringToObject(o, "context", u->context ? u->context : "");
    add_date(o, u);
    cJSON_AddStringToObject(o, "fact_type", eg_fact_type_name(u->type));
    if (u->document_id)
        cJSON_AddStringToObject(o, "document_id", u->document_id);
    eg__hs_add_time_us(o, "mentioned_at", u->mentioned_at);
    eg__hs_add_time_us(o, "occurred_start", u->occurred_start);
    eg__hs_add_time_us(o, "occurred_end", u->occurred_end);
    for (size_t i = 0; i < m->nentity_names; i++)
        eg_buf_printf(&names, "%s%s", i ? ", " : "", m->entity_names[i]);
    eg_buf_puts(&names, "");
    cJSON_AddStringToObject(o, "entities", names.data ? names.data : "");
    eg_buf_free(&names);
    if (u->chunk_id)
        cJSON_AddStringToObject(o, "chunk_id", u->chunk_id);
    cJSON_AddNumberToObject(o, "proof_count", u->proof_count > 0 ? u->proof_count : 1);
    cJSON_AddItemToObject(o, "tags", strings_json(u->tags, u->ntags));
    cJSON_AddItemToObject(o, "metadata", metadata_json(u));
    if (u->type != EG_FACT_OBSERVATION) {
        eg__hs_add_time_us(o, "consolidated_at",
                           u->consolidated_at > 0 ? u->consolidated_at : EG_MEM_TIME_NONE);
        eg__hs_add_time_us(o, "consolidation_failed_at", u->consolidation_failed_at > 0
                                                             ? u->consolidation_failed_at
                                                             : EG_MEM_TIME_NONE);
    }
    add_state(o, u);
    eg__hs_add_time_us(o, "updated_at", u->updated_at);
    cJSON_AddItemToObject(o, "source_memory_ids", strings_json(u->source_ids, u->nsources));
    return o;
}

/* MemoryDetail. */
static cJSON *detail_json(const eg_memory_t *m, const eg_memory_t *sources, size_t nsources)
{
    const eg_mem_unit_t *u = m->unit;
    cJSON *o = cJSON_CreateObject(), *src;

    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "text", u->text);
    cJSON_AddStringToObject(o, "context", u->context ? u->context : "");
    add_date(o, u);
    cJSON_AddStringToObject(o, "type", eg_fact_type_name(u->type));
    eg__hs_add_time_us(o, "mentioned_at", u->mentioned_at);
    eg__hs_add_time_us(o, "occurred_start", u->occurred_start);
    eg__hs_add_time_us(o, "occurred_end", u->occurred_end);
    cJSON_AddItemToObject(o, "entities", strings_json(m->entity_names, m->nentity_names));
    if (u->document_id)
        cJSON_AddStringToObject(o, "document_id", u->document_id);
    if (u->chunk_id)
        cJSON_AddStringToObject(o, "chunk_id", u->chunk_id);
    cJSON_AddItemToObject(o, "tags", strings_json(u->tags, u->ntags));
    cJSON_AddItemToObject(o, "metadata", metadata_json(u));
    add_state(o, u);
    if (u->type != EG_FACT_OBSERVATION)
        return o;
    cJSON_AddItemToObject(o, "history", history_json(u)); /* deprecated: see /history */
    if (u->nsources == 0)
        return o;
    cJSON_AddItemToObject(o, "source_memory_ids", strings_json(u->source_ids, u->nsources));
    src = cJSON_AddArrayToObject(o, "source_memories");
    for (size_t i = 0; i < nsources; i++) {
        const eg_mem_unit_t *s = sources[i].unit;
        cJSON *e = cJSON_CreateObject();

        cJSON_AddStringToObject(e, "id", s->id);
        cJSON_AddStringToObject(e, "text", s->text);
        cJSON_AddStringToObject(e, "type", eg_fact_type_name(s->type));
        cJSON_AddStringToObject(e, "context", s->context ? s->context : "");
        eg__hs_add_time_us(e, "occurred_start", s->occurred_start);
        eg__hs_add_time_us(e, "mentioned_at", s->mentioned_at);
        cJSON_AddItemToArray(src, e);
    }
    return o;
}

/* ---- GET B/memories/list ----------------------------------------------------------------------
 */

static void on_listed(void *udata, int err, const eg_memory_t *items, size_t n, size_t total)
{
    eg_req_t *req = udata;
    eg_memories_query_t *q = req->udata;
    cJSON *j, *arr;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, list_unit_json(&items[i]));
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    cJSON_AddNumberToObject(j, "offset", (double)q->offset);
    eg__hs_send(req, 200, j);
}

/* Parse a fact type filter: a known name sets *types; anything else matches nothing. */
static void type_filter(const char *type, unsigned *types, bool *none)
{
    eg_fact_type_t t;

    if (type == NULL)
        return;
    if (eg_fact_type_parse(type, &t) == 0)
        *types = 1u << t;
    else
        *none = true; /* e.g. "opinion": Hindsight 0.9.1 never stores one */
}

/* tags (repeated) into q, in the request arena. */
static void query_tags(eg_req_t *req, const char ***tags, size_t *ntags)
{
    size_t n = eg_req_query_all(req, "tags", NULL, 0);

    *tags = NULL;
    *ntags = 0;
    if (n == 0)
        return;
    *tags = eg_arena_alloc(&req->arena, n * sizeof(**tags));
    *ntags = eg_req_query_all(req, "tags", *tags, n);
}

static void h_list(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *match, *cs, *state, *entity;
    eg_memories_query_t *q;
    const char **tags;
    cJSON *errs;
    int64_t limit, offset;
    int rc;

    if (id == NULL)
        return;
    q = eg_arena_calloc(&req->arena, sizeof(*q));
    errs = cJSON_CreateArray();
    eg__hs_query_enum(req, "tags_match", tags_match_values, "any", &match, errs);
    eg__hs_query_int(req, "limit", 100, 0, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    cs = eg_req_query(req, "consolidation_state");
    if (cs && eg_strcaseeq(cs, "pending"))
        q->consolidation = EG_MEM_CONSOLIDATION_PENDING;
    else if (cs && eg_strcaseeq(cs, "done"))
        q->consolidation = EG_MEM_CONSOLIDATION_DONE;
    else if (cs && eg_strcaseeq(cs, "failed"))
        q->consolidation = EG_MEM_CONSOLIDATION_FAILED;
    else if (cs) {
        eg_res_error_status(
            req, 400, EG_EINVAL,
            "Invalid consolidation_state '%s': expected 'failed', 'pending', or 'done'.", cs);
        return;
    }
    state = eg_req_query(req, "state");
    if (state && strcmp(state, "invalidated") == 0)
        q->state = EG_MEM_STATE_INVALIDATED;
    else if (state && strcmp(state, "valid") != 0) {
        eg_res_error_status(req, 400, EG_EINVAL,
                            "Invalid state '%s': expected 'valid' or 'invalidated'.", state);
        return;
    }
    entity = eg_req_query(req, "entity_id");
    if (entity && !eg_uuid_valid(entity)) {
        eg_res_error_status(req, 400, EG_EINVAL, "Invalid entity_id: '%s' is not a valid UUID",
                            entity);
        return;
    }
    type_filter(eg_req_query(req, "type"), &q->types, &q->none);
    q->text = eg_req_query(req, "q");
    q->document_id = eg_req_query(req, "document_id");
    q->entity_id = entity;
    query_tags(req, &tags, &q->ntags);
    q->tags = tags;
    eg_tags_match_parse(match, &q->tags_match);
    q->limit = (size_t)limit;
    q->offset = (size_t)offset;
    req->udata = q;
    rc = eg_memories_list(req->auth.workspace_id, id, q, on_listed, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/memories/{memory_id} and its history ---------------------------------------------- */

static void on_got(void *udata, int err, const eg_memory_t *m, const eg_memory_t *sources,
                   size_t nsources)
{
    eg_req_t *req = udata;

    if (err) {
        unit_fail(req, err);
        return;
    }
    eg__hs_send(req, 200, detail_json(m, sources, nsources));
}

static void h_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_memories_get(req->auth.workspace_id, id, eg_req_param(req, "memory_id"), on_got, req);
    if (rc)
        unit_fail(req, rc);
}

static void on_history(void *udata, int err, const eg_memory_t *m, const eg_memory_t *sources,
                       size_t nsources)
{
    eg_req_t *req = udata;

    (void)sources;
    (void)nsources;
    if (err) {
        unit_fail(req, err);
        return;
    }
    /* Only observations have a history (the changes consolidation made to them); a fact's is
     * always empty. */
    eg__hs_send(req, 200, history_json(m->unit));
}

static void h_history(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_memories_get(req->auth.workspace_id, id, eg_req_param(req, "memory_id"), on_history,
                         req);
    if (rc)
        unit_fail(req, rc);
}

/* ---- PATCH B/memories/{memory_id} ------------------------------------------------------------ */

static void on_patched(void *udata, int err, const char *why, const eg_memory_t *m)
{
    eg_req_t *req = udata;

    if (err == EG_EINVAL && why) {
        eg_res_error_status(req, 400, EG_EINVAL, "%s", why);
        return;
    }
    if (err == EG_ECONFLICT) {
        eg_res_error_status(req, 409, EG_ECONFLICT,
                            "Memory unit '%s' kept changing during the edit; retry",
                            eg_req_param(req, "memory_id"));
        return;
    }
    if (err) {
        unit_fail(req, err);
        return;
    }
    eg__hs_send(req, 200, detail_json(m, NULL, 0));
}

/* A date field: "" clears it, else ISO 8601. False after answering 400. */
static bool patch_date(eg_req_t *req, const char *field, const char *v, bool *set, int64_t *out)
{
    if (v == NULL)
        return true;
    *set = true;
    *out = EG_MEM_TIME_NONE;
    if (v[0] == '\0' || eg_text_parse_iso(v, strlen(v), out) == 0)
        return true;
    eg_res_error_status(req, 400, EG_EINVAL,
                        "Invalid %s format: '%s'. Expected ISO format like "
                        "'2024-01-15T10:30:00Z', or '' to clear it.",
                        field, v);
    return false;
}

static void h_patch(eg_req_t *req)
{
    static const char *const strs[] = {"text",      "context", "occurred_start", "occurred_end",
                                       "fact_type", "state",   "reason"};
    const char *id = eg__hs_bank_id(req), *v[EG_ARRAY_SIZE(strs)] = {0};
    eg_memory_patch_t p = {0};
    const char **ents = NULL;
    bool resolve = true;
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    for (size_t i = 0; i < EG_ARRAY_SIZE(strs); i++)
        eg__hs_opt_string(body, strs[i], NULL, &v[i], errs);
    p.set_entities = eg__hs_opt_strings(req, body, "entities", &ents, &p.nentities, errs);
    p.entities = ents;
    eg__hs_opt_bool(body, "resolve_entities", NULL, &resolve, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (!v[0] && !v[1] && !v[2] && !v[3] && !v[4] && !v[5] && !p.set_entities) {
        eg_res_error_status(req, 422, EG_EUNPROCESSABLE, "No fields to update");
        return;
    }
    if (v[0] && v[0][0] == '\0') {
        eg_res_error_status(req, 400, EG_EINVAL, "text must not be empty");
        return;
    }
    p.text = v[0];
    p.context = v[1];
    p.literal_entities = !resolve;
    if (!patch_date(req, "occurred_start", v[2], &p.set_occurred_start, &p.occurred_start) ||
        !patch_date(req, "occurred_end", v[3], &p.set_occurred_end, &p.occurred_end))
        return;
    if (v[4]) {
        if (strcmp(v[4], "world") != 0 && strcmp(v[4], "experience") != 0) {
            eg_res_error_status(req, 400, EG_EINVAL,
                                "Invalid fact_type '%s': expected 'world' or 'experience'.", v[4]);
            return;
        }
        p.set_type = true;
        eg_fact_type_parse(v[4], &p.type);
    }
    if (v[5]) {
        if (strcmp(v[5], "valid") != 0 && strcmp(v[5], "invalidated") != 0) {
            eg_res_error_status(req, 400, EG_EINVAL,
                                "Invalid state '%s': expected 'valid' or 'invalidated'.", v[5]);
            return;
        }
        p.set_state = true;
        p.invalidated = strcmp(v[5], "invalidated") == 0;
    }
    p.reason = v[6];
    rc = eg_memories_patch(req->auth.workspace_id, id, eg_req_param(req, "memory_id"), &p,
                           on_patched, req);
    if (rc)
        unit_fail(req, rc);
}

/* ---- DELETE B/memories/{memory_id} ------------------------------------------------------------
 */

static void on_unit_deleted(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == 0 && n == 0)
        err = EG_ENOTFOUND;
    if (err == EG_EINVAL) /* an id the store cannot hold names no memory */
        err = EG_ENOTFOUND;
    if (err) {
        unit_fail(req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(j, "unit_id", eg_req_param(req, "memory_id"));
    cJSON_AddStringToObject(j, "message", "Memory unit and all its links deleted successfully");
    eg__hs_send(req, 200, j);
}

static void h_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    const char *ids[1] = {eg_req_param(req, "memory_id")};
    int rc;

    if (id == NULL)
        return;
    rc = eg_mem_units_delete(req->auth.workspace_id, id, ids, 1, on_unit_deleted, req);
    if (rc)
        on_unit_deleted(req, rc, 0);
}

/* ---- DELETE B/memories ------------------------------------------------------------------------
 */

static void on_cleared(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == EG_ENOTFOUND) { /* no bank: nothing to clear */
        err = 0;
        n = 0;
    }
    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(
        j, "message", eg_arena_printf(&req->arena, "Deleted %lld memory units", (long long)n));
    cJSON_AddNumberToObject(j, "deleted_count", (double)n);
    eg__hs_send(req, 200, j);
}

static void h_clear(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *type;
    unsigned mask = (1u << EG_FACT_NTYPES) - 1;
    eg_fact_type_t t;
    int rc;

    if (id == NULL)
        return;
    type = eg_req_query(req, "type");
    if (type && eg_fact_type_parse(type, &t) != 0) {
        on_cleared(req, 0, 0); /* a type no memory has */
        return;
    }
    if (type)
        mask = 1u << t;
    rc = eg_mem_clear(req->auth.workspace_id, id, mask, on_cleared, req);
    if (rc)
        on_cleared(req, rc, 0);
}

int eg__hs_memories_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/memories/list", h_list},
        {"GET", B "/memories/{memory_id}", h_get},
        {"PATCH", B "/memories/{memory_id}", h_patch},
        {"DELETE", B "/memories/{memory_id}", h_delete},
        {"GET", B "/memories/{memory_id}/history", h_history},
        {"DELETE", B "/memories", h_clear},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
