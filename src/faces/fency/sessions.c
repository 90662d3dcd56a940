/* Fency face: POST /v1/sessions — a backend (secret key) asks for a one-action client token for
 * the browser (fency.md §4). The session is the token: its id and type are reported, the token
 * carries the session's object as its payload (engram/ctokens.h). */
#include <string.h>

#include "engram/ctokens.h"
#include "engram/error.h"
#include "engram/library.h"
#include "engram/tasks.h"
#include "engram/util.h"
#include "fency_int.h"

static const struct {
    const char *key;
    eg_ctoken_purpose_t purpose;
} s_kinds[] = {
    {"createStream", EG_CTOKEN_CREATE_STREAM},
    {"createAgentTask", EG_CTOKEN_CREATE_AGENT_TASK},
    {"createAgentTaskFileDownload", EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD},
    {"getAgentTaskResponse", EG_CTOKEN_GET_AGENT_TASK_RESPONSE},
};

typedef struct session_s {
    eg_req_t *req;
    eg_ctoken_purpose_t purpose;
    char id[EG_FY_ID_MAX];
    char created[EG_FY_TIME_MAX];
} session_t;

/* A field that may be absent or null, else of the given cJSON type. */
static bool optional_is(const cJSON *v, int type)
{
    return v == NULL || cJSON_IsNull(v) || (v->type & 0xFF) == type;
}

/* The createAgentTask object's payload (known keys only), or NULL after answering 400. */
static cJSON *agent_task_payload(eg_req_t *req, const cJSON *o)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "taskType");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    const cJSON *cnv = cJSON_GetObjectItemCaseSensitive(o, "conversationId");
    const cJSON *bg = cJSON_GetObjectItemCaseSensitive(o, "background");
    const cJSON *gr = cJSON_GetObjectItemCaseSensitive(o, "guardRails");
    static const char *const keys[] = {"taskType", "metadata", "conversationId", "background",
                                       "guardRails"};
    eg_task_type_t t;
    eg_lib_scope_t scope;
    const char *why = NULL;
    cJSON *p;

    if (!cJSON_IsString(type) || eg_task_type_parse(type->valuestring, &t) != 0) {
        eg__fy_error(req, 400,
                     "createAgentTask.taskType must be one of MEMORY_CHAT, MEMORY_SEARCH, "
                     "EXPLORE_MEMORIES, STREAMING_CHAT_COMPLETION, STRUCTURED_CHAT_COMPLETION");
        return NULL;
    }
    if (!optional_is(meta, cJSON_Object)) {
        eg__fy_error(req, 400, "createAgentTask.metadata must be an object");
        return NULL;
    }
    if (!optional_is(cnv, cJSON_String) || (cJSON_IsString(cnv) && cnv->valuestring[0] == '\0')) {
        eg__fy_error(req, 400, "createAgentTask.conversationId must be a non-empty string");
        return NULL;
    }
    if (bg != NULL && !cJSON_IsNull(bg) && !cJSON_IsBool(bg)) {
        eg__fy_error(req, 400, "createAgentTask.background must be a boolean");
        return NULL;
    }
    if (!optional_is(gr, cJSON_Object)) {
        eg__fy_error(req, 400, "createAgentTask.guardRails must be an object");
        return NULL;
    }
    if (cJSON_IsObject(gr) && eg_lib_scope_parse(&req->arena, gr, &scope, &why) != 0) {
        eg__fy_error(req, 400, "createAgentTask.guardRails: %s", why ? why : "invalid");
        return NULL;
    }
    p = cJSON_CreateObject();
    for (size_t i = 0; i < EG_ARRAY_SIZE(keys); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (v != NULL && !cJSON_IsNull(v))
            cJSON_AddItemToObject(p, keys[i], cJSON_Duplicate(v, true));
    }
    return p;
}

/* A payload {<key>: "<non-empty string>"}, or NULL after answering 400. */
static cJSON *id_payload(eg_req_t *req, const char *kind, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cJSON *p;

    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        eg__fy_error(req, 400, "%s.%s is required (a string)", kind, key);
        return NULL;
    }
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, key, v->valuestring);
    return p;
}

static void on_issued(void *udata, int err, const char *token)
{
    session_t *s = udata;
    eg_req_t *req = s->req;
    cJSON *j;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "session");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", s->id);
    cJSON_AddStringToObject(j, "createdAt", s->created);
    cJSON_AddStringToObject(j, "type", eg_ctoken_purpose_name(s->purpose));
    cJSON_AddStringToObject(j, "clientToken", token);
    eg_res_json(req, 200, j);
}

static void sessions_post(eg_req_t *req)
{
    cJSON *body = eg__fy_body(req), *payload = NULL;
    const cJSON *obj = NULL;
    int found = -1, rc;
    session_t *s;

    if (body == NULL)
        return;
    for (size_t i = 0; i < EG_ARRAY_SIZE(s_kinds); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, s_kinds[i].key);
        if (v == NULL || cJSON_IsNull(v))
            continue;
        if (found >= 0) {
            found = -2;
            break;
        }
        found = (int)i;
        obj = v;
    }
    if (found < 0) {
        eg__fy_error(req, 400,
                     "exactly one of createStream, createAgentTask, createAgentTaskFileDownload "
                     "or getAgentTaskResponse must be set");
        return;
    }
    if (!cJSON_IsObject(obj)) {
        eg__fy_error(req, 400, "%s must be an object", s_kinds[found].key);
        return;
    }
    switch (s_kinds[found].purpose) {
    case EG_CTOKEN_CREATE_STREAM:
        payload = cJSON_CreateObject();
        break;
    case EG_CTOKEN_CREATE_AGENT_TASK:
        payload = agent_task_payload(req, obj);
        break;
    case EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD:
        payload = id_payload(req, s_kinds[found].key, obj, "agentTaskFileId");
        break;
    case EG_CTOKEN_GET_AGENT_TASK_RESPONSE:
        payload = id_payload(req, s_kinds[found].key, obj, "agentTaskId");
        break;
    default:
        break;
    }
    if (payload == NULL)
        return; /* answered */
    s = eg_arena_calloc(&req->arena, sizeof(*s));
    s->req = req;
    s->purpose = s_kinds[found].purpose;
    eg_hexid_new("ses", s->id, EG_FY_ID_MAX);
    eg_time_iso_us(eg_now_ms() * 1000, s->created);
    rc = eg_ctoken_issue(req->auth.workspace_id, s->purpose, payload, s->id, 0, on_issued, s);
    cJSON_Delete(payload);
    if (rc != 0)
        eg__fy_fail(req, rc, "session");
}

int eg__fy_sessions_mount(eg_router_t *r)
{
    static const eg__fy_route_t routes[] = {
        {"POST", "/v1/sessions", sessions_post},
    };

    return eg__fy_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
