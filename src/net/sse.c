/* Server-Sent Events encoding. The event stream format has no escaping: a field ends at the
 * first CR or LF, so data is carried one line per "data:" field and the fields that cannot be
 * split (id, event) refuse line breaks instead of being cut silently. */
#include <string.h>

#include "engram/error.h"
#include "engram/sse.h"

/* True if s may be a single-line field value. */
static int field_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static void put_field(eg_buf_t *out, const char *name, size_t nlen, const char *v, size_t vlen)
{
    /* The client strips exactly one space after the colon; writing "name: value" keeps a value
     * that itself starts with a space intact. */
    eg_buf_append(out, name, nlen);
    eg_buf_append(out, ": ", 2);
    eg_buf_append(out, v, vlen);
    eg_buf_append(out, "\n", 1);
}

/* One "<prefix> line\n" per line of text; lines end at \n, \r\n or \r. A trailing line break
 * yields a final empty line, so "a\n" round-trips as "a\n". */
static void put_lines(eg_buf_t *out, const char *prefix, size_t plen, const char *s, size_t n)
{
    size_t start = 0, i = 0;

    eg_buf_reserve(out, n + plen + 3);
    for (;;) {
        while (i < n && s[i] != '\n' && s[i] != '\r')
            i++;
        eg_buf_append(out, prefix, plen);
        if (i > start) {
            eg_buf_append(out, " ", 1);
            eg_buf_append(out, s + start, i - start);
        }
        eg_buf_append(out, "\n", 1);
        if (i >= n)
            break;
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            i++;
        start = ++i;
    }
}

int eg_sse_encode(eg_buf_t *out, const eg_sse_event_t *ev)
{
    if (ev->id && !field_ok(ev->id))
        return EG_EINVAL;
    if (ev->event && (ev->event[0] == '\0' || !field_ok(ev->event)))
        return EG_EINVAL;
    if (ev->id)
        put_field(out, "id", 2, ev->id, strlen(ev->id));
    if (ev->event)
        put_field(out, "event", 5, ev->event, strlen(ev->event));
    if (ev->retry_ms >= 0)
        eg_buf_printf(out, "retry: %lld\n", (long long)ev->retry_ms);
    if (ev->data)
        put_lines(out, "data:", 5, ev->data, ev->data_len);
    eg_buf_append(out, "\n", 1);
    return 0;
}

int eg_sse_encode_data(eg_buf_t *out, const char *event, const char *data)
{
    eg_sse_event_t ev = {
        .event = event, .data = data, .data_len = data ? strlen(data) : 0, .retry_ms = -1};
    return eg_sse_encode(out, &ev);
}

void eg_sse_encode_comment(eg_buf_t *out, const char *text)
{
    put_lines(out, ":", 1, text ? text : "", text ? strlen(text) : 0);
    eg_buf_append(out, "\n", 1);
}

int eg_sse_last_event_id(const char *value, char *out, size_t cap)
{
    size_t n;

    if (cap == 0)
        return EG_EINVAL;
    out[0] = '\0';
    if (value == NULL)
        return 0;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n >= cap || n > EG_SSE_MAX_ID)
        return EG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            return EG_EINVAL;
    memcpy(out, value, n);
    out[n] = '\0';
    return 0;
}
