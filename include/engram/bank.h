/* Memory banks: the per-workspace container of documents and facts, its profile (name, mission,
 * disposition) and its configuration overrides. Usable by every face; no HTTP in here. */
#ifndef ENGRAM_BANK_H
#define ENGRAM_BANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define EG_BANK_ID_MAX        256 /* bytes */
#define EG_BANK_DISPOSITION   3   /* default of each trait */
#define EG_BANK_TRAIT_MIN     1
#define EG_BANK_TRAIT_MAX     5
#define EG_BANK_LIST_SCAN_MAX 10000 /* banks one list call looks at */

/* A bank as stored. Strings and the config tree are valid only during the callback. */
typedef struct eg_bank_s {
    const char *id;
    const char *name;    /* the bank id until a name is set */
    const char *mission; /* "" when unset (config key reflect_mission) */
    int skepticism, literalism, empathy;
    const cJSON *overrides; /* object: config key -> value, only what was set on this bank */
    int64_t created_ms, updated_ms;
    /* Counters kept by the memory engine in the bank record (retain increments them). */
    int64_t fact_count, document_count, chunk_count, link_count;
    int64_t last_document_ms, last_write_ms; /* 0 = never */
    int64_t last_consolidated_ms;            /* a consolidation run finished; 0 = never */
} eg_bank_t;

/* A profile and config change. NULL / 0 leave a field unchanged. */
typedef struct eg_bank_update_s {
    const char *name;
    const char *mission;                 /* stored as the config key reflect_mission */
    int skepticism, literalism, empathy; /* 1..5, stored as disposition_* config keys */
    /* Config overrides to set: canonical keys and values (a NULL value removes the override). */
    const char *const *cfg_keys;
    const cJSON *const *cfg_values;
    size_t ncfg;
    bool cfg_reset; /* drop every override (and with it mission and disposition) first */
} eg_bank_update_t;

/* Value types of configuration keys. */
typedef enum {
    EG_BANK_CFG_STR,
    EG_BANK_CFG_INT,
    EG_BANK_CFG_BOOL,
    EG_BANK_CFG_ENUM
} eg_bank_cfg_type_t;

/* One per-bank configuration key: its type, default (NULL = none) and bounds. */
typedef struct eg_bank_cfg_key_s {
    const char *name;
    eg_bank_cfg_type_t type;
    const char *def;           /* default as JSON text, NULL when there is none */
    int64_t min, max;          /* EG_BANK_CFG_INT bounds (inclusive) */
    const char *const *values; /* EG_BANK_CFG_ENUM choices, NULL-terminated */
} eg_bank_cfg_key_t;

/* Why a config value was refused (faces word it in their vendor's style). */
typedef enum {
    EG_BANK_CFG_OK = 0,
    EG_BANK_CFG_BAD_TYPE,   /* not a string / integer / boolean */
    EG_BANK_CFG_BAD_PARSE,  /* a string that does not parse as integer / boolean */
    EG_BANK_CFG_FRACTION,   /* a number with a fractional part for an integer */
    EG_BANK_CFG_TOO_SMALL,  /* below min */
    EG_BANK_CFG_TOO_LARGE,  /* above max */
    EG_BANK_CFG_BAD_CHOICE, /* not one of values */
} eg_bank_cfg_why_t;

/* True when id (len bytes) is a valid bank id: 1..EG_BANK_ID_MAX bytes of UTF-8 without control
 * characters. */
bool eg_bank_id_valid(const char *id, size_t len);

/* The configuration key named name: a field name (retain_chunk_size) or its environment name
 * (HINDSIGHT_API_RETAIN_CHUNK_SIZE); NULL when it is not a per-bank key. */
const eg_bank_cfg_key_t *eg_bank_cfg_find(const char *name);

/* Every per-bank configuration key, in display order; *n gets the count. */
const eg_bank_cfg_key_t *eg_bank_cfg_keys(size_t *n);

/* Check and normalise a value for key k (lax: "3000" is an integer, "true" a boolean). Returns a
 * new tree in *out (caller deletes) or EG_BANK_CFG_* != 0. JSON null is allowed and means
 * "remove the override" (*out = NULL). */
eg_bank_cfg_why_t eg_bank_cfg_coerce(const eg_bank_cfg_key_t *k, const cJSON *in, cJSON **out);

/* The resolved configuration of a bank: defaults, then its overrides (a new object; caller
 * deletes). bank may be NULL (a bank that does not exist has the defaults). */
cJSON *eg_bank_config_resolved(const eg_bank_t *bank);

/* cb(udata, err, bank, created): err 0 with the bank, EG_ENOTFOUND or a store error. */
typedef void (*eg_bank_fn)(void *udata, int err, const eg_bank_t *bank, bool created);

/* Create the bank if missing (name = id, no mission, disposition 3/3/3), then apply u (may be
 * NULL). The workspace's bank index is updated too. */
int eg_bank_put(const char *ws_id, const char *bank_id, const eg_bank_update_t *u, eg_bank_fn cb,
                void *udata);

/* Apply u to an existing bank; EG_ENOTFOUND when it does not exist (nothing is created). */
int eg_bank_patch(const char *ws_id, const char *bank_id, const eg_bank_update_t *u, eg_bank_fn cb,
                  void *udata);

/* Read one bank; EG_ENOTFOUND when it does not exist. */
int eg_bank_get(const char *ws_id, const char *bank_id, eg_bank_fn cb, void *udata);

/* Drop every config override of an existing bank; EG_ENOTFOUND (nothing created) otherwise. */
int eg_bank_config_reset(const char *ws_id, const char *bank_id, eg_bank_fn cb, void *udata);

typedef struct eg_bank_query_s {
    const char *q; /* case-insensitive substring of id or name; NULL = all */
    size_t limit, offset;
} eg_bank_query_t;

/* One page of a workspace's banks, most recently written first (last_write, then created, both
 * descending, then id). total counts every match. */
typedef void (*eg_bank_list_fn)(void *udata, int err, const eg_bank_t *banks, size_t n,
                                size_t total);
int eg_bank_list(const char *ws_id, const eg_bank_query_t *q, eg_bank_list_fn cb, void *udata);

/* Delete a bank: its record, config and index entry. cb gets existed = false when there was no
 * such bank, and deleted = the facts it held. */
typedef void (*eg_bank_deleted_fn)(void *udata, int err, bool existed, int64_t deleted);
int eg_bank_delete(const char *ws_id, const char *bank_id, eg_bank_deleted_fn cb, void *udata);

#endif
