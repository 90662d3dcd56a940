/* Accounts, workspaces and API keys; request authentication with an in-process cache. */
#ifndef ENGRAM_TENANCY_H
#define ENGRAM_TENANCY_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "engram/http.h"

#define EG_DEFAULT_ACCOUNT   "default"
#define EG_DEFAULT_WORKSPACE "default"

typedef struct eg_workspace_s {
    char id[40];
    char name[128];
    char account_id[40];
    int64_t created_ms;
} eg_workspace_t;

typedef struct eg_apikey_s {
    char id[40];
    char workspace_id[40];
    char name[160]; /* up to 128 bytes of UTF-8 */
    eg_key_kind_t kind;
    char prefix[16]; /* first characters of the secret, for display ("sk_AbC1...") */
    int64_t created_ms;
    int64_t last_used_ms; /* 0 = never */
} eg_apikey_t;

/* Start the auth cache and its pub/sub invalidation. ttl_ms bounds staleness. */
int eg_tenancy_init(uv_loop_t *loop, uint64_t cache_ttl_ms);

/* Release the auth cache. */
void eg_tenancy_shutdown(void);

/* Ensure account "default" with workspace "default" exists (idempotent). cb(udata, err, ws). */
typedef void (*eg_ws_fn)(void *udata, int err, const eg_workspace_t *ws);
int eg_tenancy_bootstrap(eg_ws_fn cb, void *udata);

/* Create a workspace in the default account; EG_ECONFLICT if the name exists. */
int eg_workspace_create(const char *name, eg_ws_fn cb, void *udata);

/* Resolve a workspace by name or id. EG_ENOTFOUND when absent. */
int eg_workspace_get(const char *name_or_id, eg_ws_fn cb, void *udata);

/* List every workspace. cb gets an array of n. */
typedef void (*eg_ws_list_fn)(void *udata, int err, const eg_workspace_t *ws, size_t n);
int eg_workspace_list(eg_ws_list_fn cb, void *udata);

/* Create an API key in a workspace. cb gets the record and the full secret (shown once). */
typedef void (*eg_key_created_fn)(void *udata, int err, const eg_apikey_t *key, const char *secret);
int eg_apikey_create(const char *workspace_id, eg_key_kind_t kind, const char *name,
                     eg_key_created_fn cb, void *udata);

/* List keys (workspace_id NULL = all workspaces). */
typedef void (*eg_key_list_fn)(void *udata, int err, const eg_apikey_t *keys, size_t n);
int eg_apikey_list(const char *workspace_id, eg_key_list_fn cb, void *udata);

/* Revoke a key by id (workspace_id NULL = any workspace); publishes a cache invalidation.
 * EG_ENOTFOUND when absent or in another workspace. */
typedef void (*eg_done_fn)(void *udata, int err);
int eg_apikey_revoke(const char *workspace_id, const char *key_id, eg_done_fn cb, void *udata);

/* Generate a key secret: "sk_" or "pk_" + 40 base62 chars (out has 64 bytes). */
void eg_apikey_generate(eg_key_kind_t kind, char out[64]);

/* "secret" or "publishable". */
const char *eg_apikey_kind_name(eg_key_kind_t kind);

/* Extract the key from "Authorization: Bearer <key>" or a bare "Authorization: <key>". NULL if
 * absent or empty. */
const char *eg_auth_token_from_header(const char *authorization);

/* Authenticate a presented key. cb(udata, err, auth): err 0, EG_EAUTH or a store error.
 * May call cb synchronously on a cache hit (returns 1 then) — otherwise returns 0. */
typedef void (*eg_auth_fn)(void *udata, int err, const eg_auth_t *auth);
int eg_auth_check(const char *token, eg_auth_fn cb, void *udata);

/* Drop every cached entry (tests, resync after pub/sub reconnect). */
void eg_auth_cache_flush(void);

#endif
