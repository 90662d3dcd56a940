/* The Hindsight face's direct JSON writer: a RecallResponse (and any other large answer) is
 * written straight into a buffer, in the members' order and with the numbers cJSON would print,
 * instead of building a cJSON tree.
 *
 * A recall at the default 4096 tokens shows a few hundred results: building them as a cJSON tree
 * (a malloc per member, numbers printed and re-scanned) and printing it cost more than the whole
 * ranking. Absent (null) members are left out, as eg__hs_send does. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engram/text.h"
#include "hindsight_int.h"

/* Scores are floats: print them rounded to 6 decimals, not as the float's exact double. */
double eg__hs_score(float v)
{
    return round((double)v * 1e6) / 1e6;
}

void eg__hs_w_key(eg_buf_t *b, const char *key)
{
    size_t n = strlen(key);
    char *p;

    eg_buf_reserve(b, n + 4);
    p = b->data + b->len;
    p[0] = ',';
    p[1] = '"';
    memcpy(p + 2, key, n);
    p[n + 2] = '"';
    p[n + 3] = ':';
    b->len += n + 4;
    b->data[b->len] = '\0';
}

/* A JSON string: plain printable ASCII (most of what a recall shows) is copied in one go, anything
 * else goes through eg_buf_json_str. */
void eg__hs_w_jstr(eg_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;

    if (!s) {
        eg_buf_json_str(b, s);
        return;
    }
    while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        p++;
    if (*p) {
        eg_buf_json_str(b, s);
        return;
    }
    n = (size_t)(p - (const unsigned char *)s);
    eg_buf_reserve(b, n + 2);
    b->data[b->len] = '"';
    memcpy(b->data + b->len + 1, s, n);
    b->data[b->len + n + 1] = '"';
    b->len += n + 2;
    b->data[b->len] = '\0';
}

void eg__hs_w_str(eg_buf_t *b, const char *key, const char *v)
{
    eg__hs_w_key(b, key);
    eg__hs_w_jstr(b, v);
}

void eg__hs_w_strings(eg_buf_t *b, const char *key, const char *const *s, size_t n)
{
    eg__hs_w_key(b, key);
    eg_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            eg_buf_append(b, ",", 1);
        eg__hs_w_jstr(b, s[i]);
    }
    eg_buf_append(b, "]", 1);
}

/* A score rounded to 6 decimals, as cJSON prints the double eg__hs_score() gives: the decimal
 * itself
 * (%1.15g of it), trailing zeros dropped. Tiny and huge values take cJSON's own format. */
void eg__hs_w_number(eg_buf_t *b, float v)
{
    double d = eg__hs_score(v);
    char out[40], *p = out + sizeof(out);
    long long m;
    bool neg;
    int frac;

    if (!isfinite(d) || fabs(d) >= 1e9 || (d != 0 && fabs(d) < 1e-4)) {
        if (!isfinite(d))
            eg_buf_append(b, "null", 4);
        else
            eg_buf_printf(b, d == (double)(int)d ? "%.0f" : "%1.15g", d);
        return;
    }
    m = llround(d * 1e6);
    neg = m < 0;
    if (neg)
        m = -m;
    frac = (int)(m % 1000000);
    m /= 1000000;
    if (frac) {
        int digits = 6;

        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        while (digits--) {
            *--p = (char)('0' + frac % 10);
            frac /= 10;
        }
        *--p = '.';
    }
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (neg)
        *--p = '-';
    eg_buf_append(b, p, (size_t)(out + sizeof(out) - p));
}

/* A score member, left out when the arm did not surface the result (NAN). */
void eg__hs_w_score(eg_buf_t *b, const char *key, float v)
{
    if (isnan(v))
        return;
    eg__hs_w_key(b, key);
    eg__hs_w_number(b, v);
}

static char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* An ISO time as eg_text_format_iso writes it (Python's isoformat), without printf. */
void eg__hs_w_time(eg_buf_t *b, const char *key, int64_t us)
{
    const int64_t day = INT64_C(86400000000);
    char out[EG_TEXT_ISO_MAX], *p = out;
    int64_t days, rem, y;
    unsigned m, d, secs, frac;

    if (us == EG_MEM_TIME_NONE)
        return;
    eg__hs_w_key(b, key);
    days = us >= 0 ? us / day : -((-us + day - 1) / day);
    rem = us - days * day;
    eg_text_civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) {
        size_t n = eg_text_format_iso(us, out);

        eg_buf_append(b, "\"", 1);
        eg_buf_append(b, out, n);
        eg_buf_append(b, "\"", 1);
        return;
    }
    secs = (unsigned)(rem / 1000000);
    frac = (unsigned)(rem % 1000000);
    *p++ = '"';
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = '-';
    p = put2(p, m);
    *p++ = '-';
    p = put2(p, d);
    *p++ = 'T';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    if (frac) {
        *p++ = '.';
        p = put2(p, frac / 10000);
        p = put2(p, frac / 100 % 100);
        p = put2(p, frac % 100);
    }
    memcpy(p, "+00:00\"", 7);
    eg_buf_append(b, out, (size_t)(p + 7 - out));
}

/* A cJSON value (metadata), nulls dropped as everywhere else. */
void eg__hs_w_json(eg_buf_t *b, const char *key, const cJSON *v)
{
    cJSON *c;
    char *text;

    eg__hs_w_key(b, key);
    if (!v || !v->child) {
        eg_buf_append(b, "{}", 2);
        return;
    }
    c = cJSON_Duplicate(v, true);
    eg__hs_strip_nulls(c, NULL);
    text = cJSON_PrintUnformatted(c);
    eg_buf_puts(b, text ? text : "{}");
    cJSON_free(text);
    cJSON_Delete(c);
}
