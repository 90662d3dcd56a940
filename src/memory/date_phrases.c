/* Date phrases in sentences ("yesterday", "last May", "3 weeks ago", "May 5, 2023") resolved
 * against the item's timestamp into an occurred_start/occurred_end interval.
 *
 * A small hand-written matcher per phrase shape, tried at every word start: the shapes are few and
 * fixed, and explicit matchers keep each rule's precedence and edge cases readable. Everything is
 * in the UTC calendar (items carry UTC timestamps and no user time zone). */
#include <string.h>

#include "engram/text.h"
#include "engram/util.h"
#include "memory/text_int.h"

/* ---- Date expressions ----------------------------------------------------------------------- */

/* A cursor over the sentence; matchers advance it only on success. */
typedef struct {
    const char *s;
    size_t len, i;
} cur_t;

/* The reference time broken down once. */
typedef struct {
    int64_t day; /* days since the epoch */
    int64_t y;
    unsigned m, d, wd; /* wd: Monday = 0 */
} ref_t;

typedef struct {
    size_t end;
    int64_t start_us, end_us;
} match_t;

static const char *const month_names[] = {"january",   "february", "march",    "april",
                                          "may",       "june",     "july",     "august",
                                          "september", "october",  "november", "december"};
static const char *const weekday_names[] = {"monday", "tuesday",  "wednesday", "thursday",
                                            "friday", "saturday", "sunday"};

static char lower(char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

static bool word_at(const cur_t *c, size_t i)
{
    size_t n;

    return i < c->len && eg__text_is_word_cp(eg__utf8_decode(c->s, c->len, i, &n));
}

/* Match word w (lowercase) case-insensitively, ending at a word boundary. */
static bool kw(cur_t *c, const char *w)
{
    size_t n = strlen(w);

    if (c->len - c->i < n)
        return false;
    for (size_t k = 0; k < n; k++)
        if (lower(c->s[c->i + k]) != w[k])
            return false;
    if (word_at(c, c->i + n))
        return false;
    c->i += n;
    return true;
}

/* One or more spaces or tabs (no newline: a date does not continue on the next line). */
static bool ws(cur_t *c)
{
    size_t i = c->i;

    while (i < c->len && (c->s[i] == ' ' || c->s[i] == '\t'))
        i++;
    if (i == c->i)
        return false;
    c->i = i;
    return true;
}

/* Whitespace then keyword, all or nothing. */
static bool ws_kw(cur_t *c, const char *w)
{
    cur_t t = *c;

    if (!ws(&t) || !kw(&t, w))
        return false;
    *c = t;
    return true;
}

/* 1..maxd digits, not followed by another digit; the value must lie in [lo, hi]. */
static bool number(cur_t *c, int maxd, int lo, int hi, int *out)
{
    size_t i = c->i;
    int v = 0, k = 0;

    while (i < c->len && c->s[i] >= '0' && c->s[i] <= '9' && k <= maxd) {
        v = v * 10 + (c->s[i++] - '0');
        k++;
    }
    if (k == 0 || k > maxd || v < lo || v > hi)
        return false;
    c->i = i;
    *out = v;
    return true;
}

/* A day of the month with an optional ordinal suffix ("5", "5th", "21st"). */
static bool day_num(cur_t *c, int *d)
{
    cur_t t = *c;

    if (!number(&t, 2, 1, 31, d))
        return false;
    if (!kw(&t, "st") && !kw(&t, "nd") && !kw(&t, "rd") && !kw(&t, "th") && word_at(&t, t.i))
        return false;
    *c = t;
    return true;
}

/* A four-digit year, not glued to a following word. */
static bool year_num(cur_t *c, int *y)
{
    cur_t t = *c;

    if (!number(&t, 4, 1000, 9999, y) || word_at(&t, t.i))
        return false;
    *c = t;
    return true;
}

/* A month name (full, or a three-letter abbreviation with an optional dot): 1..12, or 0. Names
 * must be capitalised unless any_case, since "may" and "march" are everyday verbs. */
static unsigned month_name(cur_t *c, bool any_case)
{
    if (c->i >= c->len || (!any_case && !(c->s[c->i] >= 'A' && c->s[c->i] <= 'Z')))
        return 0;
    for (unsigned m = 0; m < 12; m++) {
        char abbr[5];
        if (kw(c, month_names[m]))
            return m + 1;
        memcpy(abbr, month_names[m], 3);
        abbr[3] = '\0';
        if (m != 4 && kw(c, abbr)) {
            if (c->i < c->len && c->s[c->i] == '.')
                c->i++;
            return m + 1;
        }
    }
    if (kw(c, "sept")) {
        if (c->i < c->len && c->s[c->i] == '.')
            c->i++;
        return 9;
    }
    return 0;
}

/* A weekday name: 1 (Monday) .. 7, or 0. */
static unsigned weekday_name(cur_t *c, bool any_case)
{
    if (c->i >= c->len || (!any_case && !(c->s[c->i] >= 'A' && c->s[c->i] <= 'Z')))
        return 0;
    for (unsigned w = 0; w < 7; w++)
        if (kw(c, weekday_names[w]))
            return w + 1;
    return 0;
}

static void set_days(match_t *r, const cur_t *c, int64_t first, int64_t last)
{
    r->end = c->i;
    r->start_us = first * EG_TEXT_US_PER_DAY;
    r->end_us = (last + 1) * EG_TEXT_US_PER_DAY - 1;
}

static void set_month(match_t *r, const cur_t *c, int64_t y, unsigned m)
{
    set_days(r, c, eg_text_days_from_civil(y, m, 1),
             eg_text_days_from_civil(y, m, eg__days_in_month(y, m)));
}

static void set_year(match_t *r, const cur_t *c, int64_t y, int64_t years)
{
    set_days(r, c, eg_text_days_from_civil(y, 1, 1), eg_text_days_from_civil(y + years, 1, 1) - 1);
}

/* Day d of month m with no year: the most recent one on or before the reference day. */
static bool set_recent_day(match_t *r, const cur_t *c, const ref_t *ref, unsigned m, int d)
{
    for (int64_t y = ref->y; y >= ref->y - 8; y--) {
        if ((unsigned)d > eg__days_in_month(y, m))
            continue; /* Feb 29 falls back to the last leap year */
        int64_t day = eg_text_days_from_civil(y, m, (unsigned)d);
        if (day <= ref->day) {
            set_days(r, c, day, day);
            return true;
        }
    }
    return false;
}

/* "2023-05-30" (the whole day) or "2023-05-30T10:00:00+02:00" (an instant). */
static bool match_iso(cur_t c, match_t *r)
{
    size_t start = c.i, end = c.i;
    int64_t us;

    while (end < c.len && c.s[end] != '\0' && strchr("0123456789-:.,+TtZz", c.s[end]) != NULL)
        end++;
    /* Back off trailing punctuation ("on 2023-05-30.") until the text parses. */
    for (; end >= start + 10; end--) {
        if (end < c.len && c.s[end] >= '0' && c.s[end] <= '9')
            continue; /* never stop inside a number */
        if (eg_text_parse_iso(c.s + start, end - start, &us) != 0)
            continue;
        c.i = end;
        if (end - start == 10) {
            int64_t day = eg__floor_div(us, EG_TEXT_US_PER_DAY);
            set_days(r, &c, day, day);
        } else {
            r->end = end;
            r->start_us = r->end_us = us;
        }
        return true;
    }
    return false;
}

/* "May 5, 2023", "May 5th 2023", "May 2023", "May 5" (any_case after a preposition). */
static bool match_month_first(cur_t c, const ref_t *ref, bool any_case, match_t *r)
{
    unsigned m = month_name(&c, any_case);
    cur_t t;
    int d, y;

    if (m == 0)
        return false;
    t = c;
    if (ws(&t) && day_num(&t, &d)) {
        cur_t u = t;
        if (u.i < u.len && u.s[u.i] == ',')
            u.i++;
        if (ws(&u) && year_num(&u, &y)) {
            if ((unsigned)d > eg__days_in_month(y, m))
                return false;
            int64_t day = eg_text_days_from_civil(y, m, (unsigned)d);
            set_days(r, &u, day, day);
            return true;
        }
        if ((unsigned)d <= eg__days_in_month(2000, m))
            return set_recent_day(r, &t, ref, m, d);
        return false;
    }
    t = c;
    if (t.i < t.len && t.s[t.i] == ',')
        t.i++;
    if (ws(&t) && year_num(&t, &y)) {
        set_month(r, &t, y, m);
        return true;
    }
    return false;
}

/* "5 May 2023", "5th of May, 2023", "5 May". */
static bool match_day_first(cur_t c, const ref_t *ref, match_t *r)
{
    unsigned m;
    cur_t t;
    int d, y;

    if (!day_num(&c, &d))
        return false;
    ws_kw(&c, "of");
    if (!ws(&c) || (m = month_name(&c, false)) == 0 || (unsigned)d > eg__days_in_month(2000, m))
        return false;
    t = c;
    if (t.i < t.len && t.s[t.i] == ',')
        t.i++;
    if (ws(&t) && year_num(&t, &y)) {
        if ((unsigned)d > eg__days_in_month(y, m))
            return false;
        int64_t day = eg_text_days_from_civil(y, m, (unsigned)d);
        set_days(r, &t, day, day);
        return true;
    }
    return set_recent_day(r, &c, ref, m, d);
}

/* "the 1990s", "the '90s", "the 90s", "1990s", "1990's". */
static bool match_decade(cur_t c, const ref_t *ref, match_t *r)
{
    bool the = kw(&c, "the") && ws(&c);
    int v;
    int64_t y;

    if (c.i < c.len && (c.s[c.i] == '\'' || c.s[c.i] == '`')) {
        c.i++;
        if (!number(&c, 2, 0, 90, &v))
            return false;
        y = 2000 + v <= ref->y ? 2000 + v : 1900 + v;
    } else if (number(&c, 4, 1000, 9990, &v)) {
        y = v;
    } else if (the && number(&c, 2, 0, 90, &v)) {
        y = 2000 + v <= ref->y ? 2000 + v : 1900 + v;
    } else {
        return false;
    }
    if (y % 10 != 0)
        return false;
    if (c.i < c.len && c.s[c.i] == '\'')
        c.i++;
    if (!kw(&c, "s"))
        return false;
    set_year(r, &c, y, 10);
    return true;
}

/* Parts of a day: [from, to) hours. */
static bool day_part(cur_t *c, int *from, int *to)
{
    if (kw(c, "morning")) {
        *from = 6, *to = 12;
    } else if (kw(c, "afternoon")) {
        *from = 12, *to = 18;
    } else if (kw(c, "evening") || kw(c, "night")) {
        *from = 18, *to = 24;
    } else {
        return false;
    }
    return true;
}

static void set_hours(match_t *r, const cur_t *c, int64_t day, int from, int to)
{
    r->end = c->i;
    r->start_us = day * EG_TEXT_US_PER_DAY + from * 3600 * EG_TEXT_US_PER_SEC;
    r->end_us = day * EG_TEXT_US_PER_DAY + to * 3600 * EG_TEXT_US_PER_SEC - 1;
}

/* today, yesterday, tomorrow and their parts of the day. */
static bool match_day_words(cur_t c, const ref_t *ref, match_t *r)
{
    int64_t day;
    int from, to;
    cur_t t;

    if (kw(&c, "the") && ws_kw(&c, "day")) {
        if (ws_kw(&c, "before") && ws_kw(&c, "yesterday"))
            day = ref->day - 2;
        else if (ws_kw(&c, "after") && ws_kw(&c, "tomorrow"))
            day = ref->day + 2;
        else
            return false;
        set_days(r, &c, day, day);
        return true;
    }
    if (kw(&c, "tonight")) {
        set_hours(r, &c, ref->day, 18, 24);
        return true;
    }
    if (kw(&c, "last") && ws_kw(&c, "night")) {
        set_hours(r, &c, ref->day - 1, 18, 30); /* into the small hours of today */
        return true;
    }
    if (kw(&c, "this")) {
        if (!ws(&c) || !day_part(&c, &from, &to))
            return false;
        set_hours(r, &c, ref->day, from, to);
        return true;
    }
    if (kw(&c, "today"))
        day = ref->day;
    else if (kw(&c, "yesterday"))
        day = ref->day - 1;
    else if (kw(&c, "tomorrow"))
        day = ref->day + 1;
    else
        return false;
    t = c;
    if (ws(&t) && day_part(&t, &from, &to)) {
        set_hours(r, &t, day, from, to);
        return true;
    }
    set_days(r, &c, day, day);
    return true;
}

static void months_back(const ref_t *ref, int64_t back, int64_t *y, unsigned *m)
{
    int64_t total = ref->y * 12 + (ref->m - 1) - back;

    *y = eg__floor_div(total, 12);
    *m = (unsigned)(total - *y * 12) + 1;
}

/* last/this/next week, weekend, month, year. */
static bool match_period(cur_t c, const ref_t *ref, match_t *r)
{
    int dir;
    int64_t monday = ref->day - ref->wd, y;
    unsigned m;

    if (kw(&c, "last") || kw(&c, "past") || kw(&c, "previous"))
        dir = -1;
    else if (kw(&c, "this") || kw(&c, "current"))
        dir = 0;
    else if (kw(&c, "next") || kw(&c, "coming"))
        dir = 1;
    else
        return false;
    if (!ws(&c))
        return false;
    if (kw(&c, "week")) {
        set_days(r, &c, monday + 7 * dir, monday + 7 * dir + 6);
    } else if (kw(&c, "weekend")) {
        /* Weeks run Monday to Sunday, so "this weekend" ends this week and "last weekend" is
         * the one before it even when said on a Sunday. */
        int64_t sat = monday + 5 + 7 * dir;
        set_days(r, &c, sat, sat + 1);
    } else if (kw(&c, "month")) {
        months_back(ref, -dir, &y, &m);
        set_month(r, &c, y, m);
    } else if (kw(&c, "year")) {
        set_year(r, &c, ref->y + dir, 1);
    } else {
        return false;
    }
    return true;
}

static bool count_word(cur_t *c, int *n)
{
    static const char *const words[] = {"one",   "two",   "three", "four", "five",   "six",
                                        "seven", "eight", "nine",  "ten",  "eleven", "twelve"};
    cur_t t = *c;

    if (number(c, 4, 1, 9999, n))
        return true;
    for (int k = 0; k < 12; k++)
        if (kw(c, words[k])) {
            *n = k + 1;
            return true;
        }
    if (kw(&t, "a") || kw(&t, "an")) {
        cur_t u = t;
        if (ws_kw(&u, "couple")) {
            ws_kw(&u, "of");
            *n = 2;
            *c = u;
            return true;
        }
        u = t;
        if (ws_kw(&u, "few")) {
            *n = 3;
            *c = u;
            return true;
        }
        *n = 1;
        *c = t;
        return true;
    }
    return false;
}

/* "3 days ago", "two weeks ago", "a month ago", "a couple of years ago". */
static bool match_ago(cur_t c, const ref_t *ref, match_t *r)
{
    int n, unit;
    int64_t y;
    unsigned m;

    if (!count_word(&c, &n) || !ws(&c))
        return false;
    if (kw(&c, "day") || kw(&c, "days"))
        unit = 0;
    else if (kw(&c, "week") || kw(&c, "weeks"))
        unit = 1;
    else if (kw(&c, "month") || kw(&c, "months"))
        unit = 2;
    else if (kw(&c, "year") || kw(&c, "years"))
        unit = 3;
    else
        return false;
    if (!ws_kw(&c, "ago"))
        return false;
    switch (unit) {
    case 0:
        set_days(r, &c, ref->day - n, ref->day - n);
        break;
    case 1: {
        int64_t monday = ref->day - ref->wd - 7 * (int64_t)n;
        set_days(r, &c, monday, monday + 6);
        break;
    }
    case 2:
        months_back(ref, n, &y, &m);
        set_month(r, &c, y, m);
        break;
    default:
        set_year(r, &c, ref->y - n, 1);
        break;
    }
    return true;
}

/* "last Monday", "next Friday", "on Tuesday", "this Sunday", a capitalised bare "Monday". */
static bool match_weekday(cur_t c, const ref_t *ref, match_t *r)
{
    int mode = 0; /* 0: most recent, today included; -1: before today; 1: after today */
    unsigned w;
    int64_t back;

    if (kw(&c, "last") || kw(&c, "past"))
        mode = -1;
    else if (kw(&c, "next") || kw(&c, "coming"))
        mode = 1;
    else if (!kw(&c, "on") && !kw(&c, "this"))
        mode = 2; /* bare */
    if (mode != 2 && !ws(&c))
        return false;
    if ((w = weekday_name(&c, mode != 2)) == 0)
        return false;
    back = ((int64_t)ref->wd - (int64_t)(w - 1) + 7) % 7;
    if (mode == -1 && back == 0)
        back = 7;
    if (mode == 1)
        back = back == 0 ? -7 : back - 7;
    set_days(r, &c, ref->day - back, ref->day - back);
    return true;
}

/* "in May", "last May", "in May 2023", "on May 5", "in 2019", "in early 2019", "the year 2019". */
static bool match_prep(cur_t c, const ref_t *ref, match_t *r)
{
    bool last = false, on = false;
    unsigned m;
    int y;

    if (kw(&c, "the")) {
        if (!ws_kw(&c, "year") || !ws(&c) || !year_num(&c, &y))
            return false;
        set_year(r, &c, y, 1);
        return true;
    }
    if (kw(&c, "last"))
        last = true;
    else if (kw(&c, "on"))
        on = true;
    else if (!kw(&c, "in") && !kw(&c, "during") && !kw(&c, "since") && !kw(&c, "by") &&
             !kw(&c, "of") && !kw(&c, "from") && !kw(&c, "this") && !kw(&c, "early") &&
             !kw(&c, "mid") && !kw(&c, "late"))
        return false;
    if (!ws(&c))
        return false;
    if (!last && !on && (kw(&c, "early") || kw(&c, "mid") || kw(&c, "late")) && !ws(&c))
        return false;
    if (match_month_first(c, ref, true, r))
        return true;
    if (on)
        return match_day_first(c, ref, r);
    if (!last && year_num(&c, &y)) {
        set_year(r, &c, y, 1);
        return true;
    }
    if ((m = month_name(&c, false)) == 0)
        return false;
    /* The most recent such month: this one counts for "in", not for "last". */
    y = (int)ref->y;
    if (m > ref->m || (last && m == ref->m))
        y--;
    set_month(r, &c, y, m);
    return true;
}

static bool match_month_first_cap(cur_t c, const ref_t *ref, match_t *r)
{
    return match_month_first(c, ref, false, r);
}

static bool word_start(const char *s, size_t i)
{
    size_t b = i, n;

    if (i == 0)
        return true;
    do
        b--;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80);
    return !eg__text_is_word_cp(eg__utf8_decode(s, i, b, &n));
}

bool eg_text_find_date(const char *text, size_t len, size_t from, int64_t ref_us,
                       eg_text_date_t *out)
{
    typedef bool (*matcher_fn)(cur_t, const ref_t *, match_t *);
    static const matcher_fn matchers[] = {match_month_first_cap, match_day_first, match_decade,
                                          match_day_words,       match_period,    match_ago,
                                          match_weekday,         match_prep};
    ref_t ref;

    if (text == NULL)
        return false;
    ref.day = eg__floor_div(ref_us, EG_TEXT_US_PER_DAY);
    eg_text_civil_from_days(ref.day, &ref.y, &ref.m, &ref.d);
    ref.wd = (unsigned)((ref.day % 7 + 7 + 3) % 7);

    for (size_t i = from; i < len; i++) {
        cur_t c = {text, len, i};
        match_t best = {0}, r;
        unsigned char ch = (unsigned char)text[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '\'') ||
            !word_start(text, i))
            continue;
        if (ch >= '0' && ch <= '9' && match_iso(c, &r))
            best = r;
        for (size_t k = 0; k < EG_ARRAY_SIZE(matchers); k++)
            if (matchers[k](c, &ref, &r) && r.end > best.end)
                best = r;
        if (best.end > i) {
            out->off = i;
            out->len = best.end - i;
            out->start_us = best.start_us;
            out->end_us = best.end_us;
            return true;
        }
    }
    return false;
}
