/* Timestamps: the civil calendar, ISO 8601 in and Python isoformat() out. Hindsight's wire format
 * is Python's, so the output matches it byte for byte (microseconds only when non-zero). */
#include <stdio.h>
#include <string.h>

#include "engram/error.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/text_int.h"

/* ---- Civil calendar (Howard Hinnant's algorithms, exact for the proleptic Gregorian calendar) */

int64_t eg_text_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void eg_text_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

bool eg__is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned eg__days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && eg__is_leap(y) ? 29 : dim[m - 1];
}

int64_t eg__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- ISO 8601 ------------------------------------------------------------------------------- */

/* Exactly count digits at s[*i]; false if fewer. */
static bool fixed_digits(const char *s, size_t len, size_t *i, int count, int *out)
{
    int v = 0;

    for (int k = 0; k < count; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return true;
}

int eg_text_parse_iso(const char *s, size_t len, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0, oh, om = 0;
    int64_t frac = 0;
    size_t i = 0;

    if (s == NULL || !fixed_digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' ||
        !fixed_digits(s, len, &i, 2, &mo) || i >= len || s[i++] != '-' ||
        !fixed_digits(s, len, &i, 2, &d))
        return EG_EINVAL;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > eg__days_in_month(y, (unsigned)mo))
        return EG_EINVAL;
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return EG_EINVAL;
        i++;
        if (!fixed_digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' ||
            !fixed_digits(s, len, &i, 2, &mi))
            return EG_EINVAL;
        if (i < len && s[i] == ':') {
            i++;
            if (!fixed_digits(s, len, &i, 2, &sec))
                return EG_EINVAL;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                int digits = 0;
                i++;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                    if (digits < 6)
                        frac = frac * 10 + (s[i] - '0');
                    digits++;
                    i++;
                }
                if (digits == 0 || digits > 9)
                    return EG_EINVAL;
                for (; digits < 6; digits++)
                    frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return EG_EINVAL;
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i++] == '-' ? -1 : 1;
            if (!fixed_digits(s, len, &i, 2, &oh))
                return EG_EINVAL;
            if (i < len && s[i] == ':')
                i++;
            if (i < len && !fixed_digits(s, len, &i, 2, &om))
                return EG_EINVAL;
            if (oh > 23 || om > 59)
                return EG_EINVAL;
            off = sign * (oh * 60 + om);
        }
        if (i != len)
            return EG_EINVAL;
    }
    *us = ((eg_text_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
            sec - (int64_t)off * 60) *
           EG_TEXT_US_PER_SEC) +
          frac;
    return 0;
}

size_t eg_text_format_iso(int64_t us, char out[EG_TEXT_ISO_MAX])
{
    const int64_t lo = eg_text_days_from_civil(1, 1, 1) * EG_TEXT_US_PER_DAY;
    const int64_t hi = eg_text_days_from_civil(10000, 1, 1) * EG_TEXT_US_PER_DAY - 1;
    int64_t days, rem, y;
    unsigned m, d, secs;
    int frac, n;

    if (us < lo)
        us = lo;
    if (us > hi)
        us = hi;
    days = eg__floor_div(us, EG_TEXT_US_PER_DAY);
    rem = us - days * EG_TEXT_US_PER_DAY;
    eg_text_civil_from_days(days, &y, &m, &d);
    secs = (unsigned)(rem / EG_TEXT_US_PER_SEC);
    frac = (int)(rem % EG_TEXT_US_PER_SEC);
    /* Python writes the microseconds only when they are not zero. */
    if (frac != 0)
        n = snprintf(out, EG_TEXT_ISO_MAX, "%04d-%02u-%02uT%02u:%02u:%02u.%06d+00:00", (int)y, m, d,
                     secs / 3600, secs / 60 % 60, secs % 60, frac);
    else
        n = snprintf(out, EG_TEXT_ISO_MAX, "%04d-%02u-%02uT%02u:%02u:%02u+00:00", (int)y, m, d,
                     secs / 3600, secs / 60 % 60, secs % 60);
    return (size_t)n;
}
