/* Structured logging: one JSON object per line on stderr, so log shippers need no parsing rules.
 * Each line goes out in a single write(2); with O_APPEND files and pipes (up to PIPE_BUF) that
 * keeps lines from the worker processes of one engramd from interleaving. */
#include "engram/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/util.h"

static eg_log_level_t eg_log_level = EG_LOG_INFO;

static const char *const eg_log_names[] = {"debug", "info", "warn", "error", "off"};

void eg_log_set_level(eg_log_level_t level)
{
    eg_log_level = level;
}

eg_log_level_t eg_log_get_level(void)
{
    return eg_log_level;
}

int eg_log_parse_level(const char *s, eg_log_level_t *out)
{
    if (s == NULL)
        return EG_EINVAL;
    for (size_t i = 0; i < EG_ARRAY_SIZE(eg_log_names); i++) {
        if (eg_strcaseeq(s, eg_log_names[i])) {
            *out = (eg_log_level_t)i;
            return 0;
        }
    }
    if (eg_strcaseeq(s, "warning")) {
        *out = EG_LOG_WARN;
        return 0;
    }
    return EG_EINVAL;
}

static bool eg_log_enabled(eg_log_level_t level)
{
    return level >= eg_log_level && level < EG_LOG_OFF && level >= EG_LOG_DEBUG;
}

/* Write all of p; a short write only happens for huge lines or signals, and then finishing the
 * line beats dropping its tail. */
static void eg_log_write(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

void eg_log(eg_log_level_t level, const char *fmt, ...)
{
    eg_buf_t line = EG_BUF_INIT;
    eg_buf_t msg = EG_BUF_INIT;
    char ts[32];
    va_list ap;
    int saved_errno = errno;

    if (!eg_log_enabled(level))
        return;
    va_start(ap, fmt);
    eg_buf_vprintf(&msg, fmt, ap);
    va_end(ap);

    eg_time_iso8601(eg_now_ms(), ts);
    eg_buf_reserve(&line, msg.len + 96);
    eg_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, eg_log_names[level]);
    eg_buf_json_str(&line, msg.data != NULL ? msg.data : "");
    eg_buf_append(&line, "}\n", 2);
    eg_log_write(line.data, line.len);

    eg_buf_free(&msg);
    eg_buf_free(&line);
    /* Callers often log and then inspect errno; logging must not disturb it. */
    errno = saved_errno;
}

void eg_log_json(eg_log_level_t level, const char *json, size_t len)
{
    char stackbuf[2048];
    char *p = stackbuf;
    int saved_errno = errno;

    if (!eg_log_enabled(level))
        return;
    /* The line and its newline must leave in one write(2), so copy them together. The stack
     * buffer covers typical access-log lines without touching the heap; this path is also used
     * by the out-of-memory handler, which must not allocate. */
    if (len + 1 > sizeof(stackbuf)) {
        p = malloc(len + 1);
        if (p == NULL) {
            struct iovec iov[2] = {{(void *)json, len}, {"\n", 1}};

            if (writev(STDERR_FILENO, iov, 2) < 0) {
                /* Nowhere left to report a failure to write the log. */
            }
            goto done;
        }
    }
    memcpy(p, json, len);
    p[len] = '\n';
    eg_log_write(p, len + 1);
    if (p != stackbuf)
        free(p);

done:
    errno = saved_errno;
}
