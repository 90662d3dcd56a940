/* engramd configuration: defaults, ENGRAM_* environment variables, then command-line flags. */
#ifndef ENGRAM_CONFIG_H
#define ENGRAM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engram/log.h"

#define EG_FACE_COUNT 5

typedef struct eg_config_s {
    char listen_host[256];             /* ENGRAM_LISTEN host part, default 127.0.0.1 */
    int listen_port;                   /* default 8080 */
    char redis_url[512];               /* ENGRAM_REDIS_URL, default redis://127.0.0.1:6379/0 */
    int redis_pool;                    /* ENGRAM_REDIS_POOL shared command connections, default 4 */
    uint64_t redis_timeout_ms;         /* ENGRAM_REDIS_TIMEOUT command timeout, default 5s */
    uint64_t redis_connect_timeout_ms; /* ENGRAM_REDIS_CONNECT_TIMEOUT, default 2s */
    size_t max_header_bytes;           /* ENGRAM_MAX_HEADER_SIZE, default 16k */
    size_t max_body_bytes;             /* ENGRAM_MAX_BODY_SIZE, default 10m */
    size_t max_url_bytes;              /* ENGRAM_MAX_URL_SIZE, default 8k */
    uint64_t idle_timeout_ms;          /* ENGRAM_IDLE_TIMEOUT keep-alive idle, default 60s */
    uint64_t read_timeout_ms;          /* ENGRAM_READ_TIMEOUT header/body read, default 30s */
    uint64_t drain_timeout_ms;         /* ENGRAM_DRAIN_TIMEOUT on shutdown, default 10s */
    int max_connections;               /* ENGRAM_MAX_CONNECTIONS, default 10000 */
    int max_pipeline;           /* ENGRAM_MAX_PIPELINE in-flight requests per conn, default 64 */
    size_t max_output_bytes;    /* ENGRAM_MAX_OUTPUT_BUFFER before a conn is paused, 1m */
    uint64_t ws_ping_ms;               /* ENGRAM_WS_PING_INTERVAL, default 30s */
    uint64_t auth_cache_ttl_ms; /* ENGRAM_AUTH_CACHE_TTL, default 30s */
    size_t index_memory_bytes;  /* ENGRAM_INDEX_MEMORY cap of the bank indexes, 1g; 0 = none */
    eg_log_level_t log_level;   /* ENGRAM_LOG_LEVEL, default info */
    bool access_log;            /* ENGRAM_ACCESS_LOG, default true */
    char cors_origins[1024];    /* ENGRAM_CORS_ORIGINS comma list or "*", default "*" */
    char mount[EG_FACE_COUNT][128]; /* ENGRAM_MOUNT_<FACE>, defaults /hindsight ... */
    char anonymous_workspace[128];  /* ENGRAM_ANONYMOUS_WORKSPACE, "" = off (keys required) */
} eg_config_t;

/* Face names in mount[] order: hindsight, fency, faosx, fiberwise, cadenya. */
extern const char *const eg_config_face_names[EG_FACE_COUNT];

/* Fill cfg with built-in defaults. */
void eg_config_defaults(eg_config_t *cfg);

/* Apply ENGRAM_* variables from envp-style getter (NULL = getenv). 0, or EG_EINVAL with errbuf set.
 */
int eg_config_from_env(eg_config_t *cfg, const char *(*get)(const char *name), char *errbuf,
                       size_t errlen);

/* Apply flags (--listen, --redis-url, ...) from argv[first..argc). 0, EG_EINVAL with errbuf set,
 * or 1 when --help was given (help text printed by the caller via eg_config_usage). */
int eg_config_from_args(eg_config_t *cfg, int argc, char **argv, int first, char *errbuf,
                        size_t errlen);

/* Parse "host:port", ":port" or "port" into cfg->listen_*. */
int eg_config_parse_listen(eg_config_t *cfg, const char *s);

/* Normalise a mount prefix: "" or "/" mean root; ensures a leading '/' and no trailing '/'. */
int eg_config_normalize_prefix(const char *in, char *out, size_t outlen);

/* Print the --help text for "engramd serve". */
void eg_config_usage(FILE *out);

#endif
