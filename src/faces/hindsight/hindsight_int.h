/* Hindsight face internals shared by its files: response shaping (nulls dropped, Python
 * timestamps), FastAPI/pydantic v2 style validation errors, body and query parsing. */
#ifndef ENGRAM_HINDSIGHT_INT_H
#define ENGRAM_HINDSIGHT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/bank.h"
#include "engram/buf.h"
#include "engram/http.h"
#include "engram/recall.h"

#define EG_HS_API_VERSION "0.9.1"

/* The face (prefix and anonymous workspace set at mount). */
extern eg_face_t eg__hs_face;

/* One route of the face. */
typedef struct eg__hs_route_s {
    const char *method, *tmpl;
    eg_handler_fn fn;
} eg__hs_route_t;

/* Add routes[0..n) under the face's prefix with the router flags (EG_ROUTE_AUTH, ...). */
int eg__hs_add_routes(eg_router_t *r, const eg__hs_route_t *routes, size_t n, unsigned flags);

/* Bank routes (banks.c). */
int eg__hs_banks_mount(eg_router_t *r);

/* Bank webhook routes (webhooks.c). */
int eg__hs_webhooks_mount(eg_router_t *r);

/* Memory unit routes other than retain and recall (memories.c); graph, tags, entities, stats
 * (browse.c); documents and chunks (documents.c); operations (operations.c). */
int eg__hs_memories_mount(eg_router_t *r);
int eg__hs_browse_mount(eg_router_t *r);
int eg__hs_documents_mount(eg_router_t *r);
int eg__hs_operations_mount(eg_router_t *r);

/* Directives (directives.c), mental models (mental_models.c), the routes answered 501
 * (unimplemented.c) and POST B/health/llm (health_llm.c). */
int eg__hs_directives_mount(eg_router_t *r);
int eg__hs_mental_models_mount(eg_router_t *r);
int eg__hs_unimplemented_mount(eg_router_t *r);
int eg__hs_health_llm_mount(eg_router_t *r);

/* Retain (retain.c) and recall (recall.c). */
int eg__hs_retain_mount(eg_router_t *r);

/* Consolidation and observation routes (observations.c). */
int eg__hs_observations_mount(eg_router_t *r);
int eg__hs_recall_mount(eg_router_t *r);

/* Reflect (reflect.c): POST B/reflect and POST B/mental-models/{id}/dry-run-refresh. */
int eg__hs_reflect_mount(eg_router_t *r);

/* Parse body.tag_groups (absent or null: *n stays 0) into the request arena, as recall does; 0,
 * or EG_EINVAL after adding a validation error to errs. */
int eg__hs_tag_groups(eg_req_t *req, const cJSON *body, const eg_tag_group_t **out, size_t *n,
                      cJSON *errs);

/* Drop null-valued object members recursively, except members named in keep (NULL-terminated,
 * may be NULL): fields the spec marks required and nullable. */
void eg__hs_strip_nulls(cJSON *j, const char *const *keep);

/* Finish with a JSON body (nulls dropped); takes ownership of j. */
void eg__hs_send(eg_req_t *req, int status, cJSON *j);

/* Add an ISO timestamp member in Python isoformat (eg_text_format_iso), or nothing when ms is 0. */
void eg__hs_add_time(cJSON *obj, const char *name, int64_t ms);

/* A list of validation errors, rendered as 422 {"detail":[{type,loc,msg,input,ctx?}]}. loc is
 * where ("body", "query", "path") followed by up to two field names (NULL ends it). input may be
 * NULL (rendered as null); ctx is adopted (may be NULL). */
void eg__hs_verr(cJSON *errs, const char *where, const char *f1, const char *f2, const char *type,
                 const char *msg, const cJSON *input, cJSON *ctx);

/* The same with any loc (an array of strings and list indexes, adopted), for nested fields such
 * as ["body", "items", 0, "content"]. */
void eg__hs_verr_loc(cJSON *errs, cJSON *loc, const char *type, const char *msg, const cJSON *input,
                     cJSON *ctx);

/* Shorthands for the common pydantic errors. */
void eg__hs_verr_missing(cJSON *errs, const char *f1, const char *f2, const cJSON *parent);
void eg__hs_verr_type(cJSON *errs, const char *f1, const char *f2, const char *what,
                      const cJSON *input);

/* Answer 422 with errs (takes ownership). */
void eg__hs_send_422(eg_req_t *req, cJSON *errs);

/* Parse the JSON body into a tree owned by the request arena. A missing body is 422 "Field
 * required" when required, else an empty object; malformed JSON and a non-object are 422 too.
 * On failure the response is sent and NULL returned. */
cJSON *eg__hs_body(eg_req_t *req, bool required);

/* Optional typed body fields: absent or null leave *out alone and return false; a wrong type
 * adds a validation error and returns false. */
bool eg__hs_opt_string(const cJSON *obj, const char *f1, const char *f2, const char **out,
                       cJSON *errs);
bool eg__hs_opt_int(const cJSON *obj, const char *f1, const char *f2, int64_t min, int64_t max,
                    int64_t *out, cJSON *errs);
bool eg__hs_opt_bool(const cJSON *obj, const char *f1, const char *f2, bool *out, cJSON *errs);

/* An integer query parameter >= min, default def; false after adding a validation error. */
bool eg__hs_query_int(eg_req_t *req, const char *name, int64_t def, int64_t min, int64_t *out,
                      cJSON *errs);

/* The same with an upper bound too (pydantic's ge/le on a query parameter). */
bool eg__hs_query_int_in(eg_req_t *req, const char *name, int64_t def, int64_t min, int64_t max,
                         int64_t *out, cJSON *errs);

/* A boolean query parameter (pydantic's lax words: true/false, 1/0, yes/no, on/off, t/f, y/n),
 * default def; false after adding a validation error. */
bool eg__hs_query_bool(eg_req_t *req, const char *name, bool def, bool *out, cJSON *errs);

/* A query parameter that must be one of values (NULL-terminated; a Literal in the spec), default
 * def; false after adding a literal_error. */
bool eg__hs_query_enum(eg_req_t *req, const char *name, const char *const *values, const char *def,
                       const char **out, cJSON *errs);

/* Add pydantic's literal_error ("Input should be 'a', 'b' or 'c'") at loc [where, f1, f2]. */
void eg__hs_verr_literal(cJSON *errs, const char *where, const char *f1, const char *f2,
                         const char *const *values, const cJSON *input);

/* An optional list[str] body field: false when absent or null (out untouched) or after adding
 * validation errors (list_type, or string_type at [body, field, i]); true with the strings in
 * the request arena. */
bool eg__hs_opt_strings(eg_req_t *req, const cJSON *obj, const char *field, const char ***out,
                        size_t *n, cJSON *errs);

/* Add an ISO timestamp member (µs, Python isoformat), or nothing for EG_MEM_TIME_NONE. */
void eg__hs_add_time_us(cJSON *obj, const char *name, int64_t us);

/* Word a refused config value the way pydantic does, at loc [where, f1, f2]. */
void eg__hs_verr_cfg(cJSON *errs, const char *f1, const char *f2, const eg_bank_cfg_key_t *k,
                     eg_bank_cfg_why_t why, const cJSON *input);

/* The decoded {bank_id} path parameter, or NULL after answering 422 (too long, control
 * characters, not UTF-8). */
const char *eg__hs_bank_id(eg_req_t *req);

/* ---- the direct JSON writer (jsonw.c): members appended to b, each with its leading comma ---- */

/* A score rounded to 6 decimals (floats are not printed as their exact double). */
double eg__hs_score(float v);
/* ,"key": */
void eg__hs_w_key(eg_buf_t *b, const char *key);
/* A JSON string value (NULL writes null). */
void eg__hs_w_jstr(eg_buf_t *b, const char *s);
/* ,"key":"value" / ,"key":["a","b"] */
void eg__hs_w_str(eg_buf_t *b, const char *key, const char *v);
void eg__hs_w_strings(eg_buf_t *b, const char *key, const char *const *s, size_t n);
/* A number as cJSON prints eg__hs_score(v); the member form is left out for NAN. */
void eg__hs_w_number(eg_buf_t *b, float v);
void eg__hs_w_score(eg_buf_t *b, const char *key, float v);
/* ,"key":"<isoformat>" ; nothing for EG_MEM_TIME_NONE. */
void eg__hs_w_time(eg_buf_t *b, const char *key, int64_t us);
/* ,"key":<object> with nulls dropped ({} for none). */
void eg__hs_w_json(eg_buf_t *b, const char *key, const cJSON *v);

/* Answer a core error: 404 (with what), 409 for a conflict, 502/504 when a model provider failed,
 * 503 for the store, 500 otherwise. */
void eg__hs_fail(eg_req_t *req, int err, const char *what);

#endif
