/* Structured logging: one JSON object per line on stderr. */
#ifndef ENGRAM_LOG_H
#define ENGRAM_LOG_H

#include <stddef.h>

typedef enum {
    EG_LOG_DEBUG = 0,
    EG_LOG_INFO,
    EG_LOG_WARN,
    EG_LOG_ERROR,
    EG_LOG_OFF
} eg_log_level_t;

/* Set the minimum level that is written. */
void eg_log_set_level(eg_log_level_t level);

/* Current minimum level. */
eg_log_level_t eg_log_get_level(void);

/* Parse "debug|info|warn|error|off"; returns 0 and sets *out, or EG_EINVAL. */
int eg_log_parse_level(const char *s, eg_log_level_t *out);

/* Write {"time":..,"level":..,"msg":..} with the formatted message. */
void eg_log(eg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write a pre-built JSON object line (no trailing newline in json) if level passes. */
void eg_log_json(eg_log_level_t level, const char *json, size_t len);

#define eg_log_debug(...) eg_log(EG_LOG_DEBUG, __VA_ARGS__)
#define eg_log_info(...)  eg_log(EG_LOG_INFO, __VA_ARGS__)
#define eg_log_warn(...)  eg_log(EG_LOG_WARN, __VA_ARGS__)
#define eg_log_error(...) eg_log(EG_LOG_ERROR, __VA_ARGS__)

#endif
