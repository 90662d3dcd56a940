/* Process metrics, rendered in the Prometheus text exposition format at GET /metrics. */
#ifndef ENGRAM_METRICS_H
#define ENGRAM_METRICS_H

#include <stdbool.h>

#include "engram/buf.h"

/* Count one finished HTTP request: route template (or "unmatched"), method, status, duration. */
void eg_metrics_http(const char *route, const char *method, int status, double seconds);

/* Count one Redis command and its round-trip latency; error is true for failures/timeouts. */
void eg_metrics_redis(double seconds, bool error);

/* Adjust the open-connections gauge by delta. */
void eg_metrics_conn_open(int delta);

/* Count a connection refused because max_connections was reached. */
void eg_metrics_conn_rejected(void);

/* Set a named gauge (e.g. engram_redis_connected) to value; creates it on first use. */
void eg_metrics_gauge_set(const char *name, const char *help, double value);

/* Append the whole exposition text to out. */
void eg_metrics_render(eg_buf_t *out);

/* Drop every series (tests). */
void eg_metrics_reset(void);

#endif
