/* Timestamps (ISO 8601 in, Python isoformat out) and date expressions resolved against a
 * reference time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engram/error.h"
#include "engram/text.h"

static int64_t iso(const char *s)
{
    int64_t us = 0;

    cr_assert_eq(eg_text_parse_iso(s, strlen(s), &us), 0, "parse %s", s);
    return us;
}

static const char *fmt(int64_t us)
{
    static char buf[EG_TEXT_ISO_MAX];

    eg_text_format_iso(us, buf);
    return buf;
}

/* ---- ISO 8601 ---- */

Test(dates, parse_forms)
{
    cr_assert_eq(iso("1970-01-01"), 0);
    cr_assert_eq(iso("1970-01-01T00:00:01Z"), 1000000);
    cr_assert_eq(iso("2024-10-15"), INT64_C(1728950400) * 1000000);
    cr_assert_eq(iso("2023-05-30T23:40:00"), INT64_C(1685490000) * 1000000);
    cr_assert_eq(iso("2023-05-30 23:40:00"), iso("2023-05-30T23:40:00"));
    cr_assert_eq(iso("2023-05-30t23:40"), iso("2023-05-30T23:40:00"));
    cr_assert_eq(iso("2023-05-30T23:40:00Z"), iso("2023-05-30T23:40:00+00:00"));
    cr_assert_eq(iso("2023-05-31T01:40:00+02:00"), iso("2023-05-30T23:40:00Z"));
    cr_assert_eq(iso("2023-05-30T18:10:00-05:30"), iso("2023-05-30T23:40:00Z"));
    cr_assert_eq(iso("2023-05-31T01:40:00+0200"), iso("2023-05-30T23:40:00Z"));
    cr_assert_eq(iso("2023-05-31T01:40:00+02"), iso("2023-05-30T23:40:00Z"));
    cr_assert_eq(iso("1970-01-01T00:00:00.5Z"), 500000);
    cr_assert_eq(iso("1970-01-01T00:00:00.123456Z"), 123456);
    cr_assert_eq(iso("1970-01-01T00:00:00,25"), 250000);
    cr_assert_eq(iso("1970-01-01T00:00:00.123456789Z"), 123456); /* truncated */
    cr_assert_eq(iso("1969-12-31T23:59:59.999999Z"), -1);
    cr_assert_eq(iso("0001-01-01"), INT64_C(-62135596800) * 1000000);
}

Test(dates, parse_rejects)
{
    static const char *const bad[] = {
        "",
        "2024",
        "2024-1-15",
        "2024-13-01",
        "2024-00-10",
        "2023-02-29",
        "2024-04-31",
        "2024-01-15T",
        "2024-01-15T25:00",
        "2024-01-15T10:60",
        "2024-01-15T10:00:60",
        "2024-01-15T10:00:00.",
        "2024-01-15T10:00:00.1234567890",
        "2024-01-15T10:00:00+2",
        "2024-01-15T10:00:00+24:00",
        "2024-01-15T10:00:00 Z",
        " 2024-01-15",
        "2024-01-15x",
        "0000-01-01",
        "2024/01/15",
    };
    int64_t us;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(eg_text_parse_iso(bad[i], strlen(bad[i]), &us), EG_EINVAL, "%s", bad[i]);
    cr_assert_eq(eg_text_parse_iso(NULL, 0, &us), EG_EINVAL);
}

Test(dates, leap_years)
{
    int64_t us;

    cr_assert_eq(eg_text_parse_iso("2024-02-29", 10, &us), 0);
    cr_assert_eq(eg_text_parse_iso("2000-02-29", 10, &us), 0);
    cr_assert_eq(eg_text_parse_iso("1900-02-29", 10, &us), EG_EINVAL);
    cr_assert_eq(eg_text_parse_iso("2100-02-29", 10, &us), EG_EINVAL);
    cr_assert_str_eq(fmt(iso("2024-02-28T12:00:00Z") + INT64_C(86400000000)),
                     "2024-02-29T12:00:00+00:00");
    cr_assert_str_eq(fmt(iso("2023-02-28T12:00:00Z") + INT64_C(86400000000)),
                     "2023-03-01T12:00:00+00:00");
}

Test(dates, format_like_python_isoformat)
{
    /* Python: datetime(2024,1,15,10,30,0,123456,tzinfo=timezone.utc).isoformat() */
    cr_assert_str_eq(fmt(iso("2024-01-15T10:30:00.123456Z")), "2024-01-15T10:30:00.123456+00:00");
    cr_assert_str_eq(fmt(iso("2024-01-15T10:30:00Z")), "2024-01-15T10:30:00+00:00");
    cr_assert_str_eq(fmt(iso("2024-01-15T10:30:00.1Z")), "2024-01-15T10:30:00.100000+00:00");
    cr_assert_str_eq(fmt(iso("2024-01-15T10:30:00.000001Z")), "2024-01-15T10:30:00.000001+00:00");
    cr_assert_str_eq(fmt(0), "1970-01-01T00:00:00+00:00");
    cr_assert_str_eq(fmt(-1), "1969-12-31T23:59:59.999999+00:00");
    cr_assert_str_eq(fmt(iso("0099-03-04")), "0099-03-04T00:00:00+00:00");
    cr_assert_str_eq(fmt(iso("9999-12-31T23:59:59.999999Z")), "9999-12-31T23:59:59.999999+00:00");
    cr_assert_str_eq(fmt(INT64_MAX), "9999-12-31T23:59:59.999999+00:00");
    cr_assert_str_eq(fmt(INT64_MIN), "0001-01-01T00:00:00+00:00");
    cr_assert_eq(strlen(fmt(-1)), 32);
}

Test(dates, round_trips)
{
    static const char *const py[] = {
        "2024-01-15T10:30:00.123456+00:00", "2024-01-15T10:30:00+00:00",
        "2000-02-29T23:59:59.999999+00:00", "1999-12-31T00:00:00+00:00",
        "1969-07-20T20:17:40+00:00",        "2038-01-19T03:14:08+00:00",
    };

    for (size_t i = 0; i < sizeof(py) / sizeof(py[0]); i++)
        cr_assert_str_eq(fmt(iso(py[i])), py[i]);
    for (int64_t us = -INT64_C(5000000000000000); us < INT64_C(5000000000000000);
         us += INT64_C(123456789012347))
        cr_assert_eq(iso(fmt(us)), us);
}

Test(dates, civil_round_trip)
{
    for (int64_t d = -800000; d < 800000; d += 97) {
        int64_t y;
        unsigned m, dd;
        eg_text_civil_from_days(d, &y, &m, &dd);
        cr_assert_eq(eg_text_days_from_civil(y, m, dd), d);
    }
}

/* ---- Date expressions ---- */

/* Resolve s against ref; returns the interval as "start..end" (date-only when whole days). */
static const char *resolve(const char *s, const char *ref)
{
    static char buf[128];
    eg_text_date_t d;
    char a[EG_TEXT_ISO_MAX], b[EG_TEXT_ISO_MAX];

    if (!eg_text_find_date(s, strlen(s), 0, iso(ref), &d))
        return "none";
    eg_text_format_iso(d.start_us, a);
    eg_text_format_iso(d.end_us, b);
    if (strcmp(a + 10, "T00:00:00+00:00") == 0 && strcmp(b + 10, "T23:59:59.999999+00:00") == 0) {
        a[10] = b[10] = '\0';
    }
    snprintf(buf, sizeof(buf), "%s..%s", a, b);
    return buf;
}

/* 2024-03-15 is a Friday. */
#define REF "2024-03-15T10:00:00Z"

Test(dates, day_words)
{
    cr_assert_str_eq(resolve("I went there yesterday.", REF), "2024-03-14..2024-03-14");
    cr_assert_str_eq(resolve("Today is sunny", REF), "2024-03-15..2024-03-15");
    cr_assert_str_eq(resolve("see you tomorrow", REF), "2024-03-16..2024-03-16");
    cr_assert_str_eq(resolve("the day before yesterday", REF), "2024-03-13..2024-03-13");
    cr_assert_str_eq(resolve("the day after tomorrow", REF), "2024-03-17..2024-03-17");
    cr_assert_str_eq(resolve("this morning I ran", REF),
                     "2024-03-15T06:00:00+00:00..2024-03-15T11:59:59.999999+00:00");
    cr_assert_str_eq(resolve("this evening", REF),
                     "2024-03-15T18:00:00+00:00..2024-03-15T23:59:59.999999+00:00");
    cr_assert_str_eq(resolve("yesterday afternoon", REF),
                     "2024-03-14T12:00:00+00:00..2024-03-14T17:59:59.999999+00:00");
    cr_assert_str_eq(resolve("last night", REF),
                     "2024-03-14T18:00:00+00:00..2024-03-15T05:59:59.999999+00:00");
    cr_assert_str_eq(resolve("Yesterdays are gone", REF), "none");
}

Test(dates, periods)
{
    cr_assert_str_eq(resolve("last week", REF), "2024-03-04..2024-03-10");
    cr_assert_str_eq(resolve("this week", REF), "2024-03-11..2024-03-17");
    cr_assert_str_eq(resolve("next week", REF), "2024-03-18..2024-03-24");
    cr_assert_str_eq(resolve("last weekend", REF), "2024-03-09..2024-03-10");
    cr_assert_str_eq(resolve("last month", REF), "2024-02-01..2024-02-29");
    cr_assert_str_eq(resolve("this month", REF), "2024-03-01..2024-03-31");
    cr_assert_str_eq(resolve("last year", REF), "2023-01-01..2023-12-31");
    cr_assert_str_eq(resolve("next year", REF), "2025-01-01..2025-12-31");
}

Test(dates, month_ends_and_year_boundaries)
{
    cr_assert_str_eq(resolve("last month", "2024-03-31T12:00:00Z"), "2024-02-01..2024-02-29");
    cr_assert_str_eq(resolve("last month", "2023-03-31T12:00:00Z"), "2023-02-01..2023-02-28");
    cr_assert_str_eq(resolve("last month", "2024-01-10T00:00:00Z"), "2023-12-01..2023-12-31");
    cr_assert_str_eq(resolve("next month", "2024-12-10T00:00:00Z"), "2025-01-01..2025-01-31");
    cr_assert_str_eq(resolve("last December", "2024-01-05T00:00:00Z"), "2023-12-01..2023-12-31");
    cr_assert_str_eq(resolve("yesterday", "2024-01-01T00:00:00Z"), "2023-12-31..2023-12-31");
    cr_assert_str_eq(resolve("yesterday", "2024-03-01T08:00:00Z"), "2024-02-29..2024-02-29");
    cr_assert_str_eq(resolve("last week", "2024-01-03T00:00:00Z"), "2023-12-25..2023-12-31");
    cr_assert_str_eq(resolve("a year ago", "2024-02-29T00:00:00Z"), "2023-01-01..2023-12-31");
}

Test(dates, ago)
{
    cr_assert_str_eq(resolve("3 days ago", REF), "2024-03-12..2024-03-12");
    cr_assert_str_eq(resolve("two weeks ago", REF), "2024-02-26..2024-03-03");
    cr_assert_str_eq(resolve("a month ago", REF), "2024-02-01..2024-02-29");
    cr_assert_str_eq(resolve("a couple of months ago", REF), "2024-01-01..2024-01-31");
    cr_assert_str_eq(resolve("a few years ago", REF), "2021-01-01..2021-12-31");
    cr_assert_str_eq(resolve("15 months ago", REF), "2022-12-01..2022-12-31");
    cr_assert_str_eq(resolve("3 days later", REF), "none");
}

Test(dates, weekdays)
{
    /* The reference is a Friday. */
    cr_assert_str_eq(resolve("last Monday", REF), "2024-03-11..2024-03-11");
    cr_assert_str_eq(resolve("on Monday", REF), "2024-03-11..2024-03-11");
    cr_assert_str_eq(resolve("on friday", REF), "2024-03-15..2024-03-15");
    cr_assert_str_eq(resolve("last Friday", REF), "2024-03-08..2024-03-08");
    cr_assert_str_eq(resolve("next Friday", REF), "2024-03-22..2024-03-22");
    cr_assert_str_eq(resolve("next Monday", REF), "2024-03-18..2024-03-18");
    cr_assert_str_eq(resolve("We met Saturday", REF), "2024-03-09..2024-03-09");
    cr_assert_str_eq(resolve("we met saturday", REF), "none"); /* bare names must be capitalised */
}

Test(dates, months)
{
    cr_assert_str_eq(resolve("in May", REF), "2023-05-01..2023-05-31");
    cr_assert_str_eq(resolve("last May", REF), "2023-05-01..2023-05-31");
    cr_assert_str_eq(resolve("in March", REF), "2024-03-01..2024-03-31");
    cr_assert_str_eq(resolve("last March", REF), "2023-03-01..2023-03-31");
    cr_assert_str_eq(resolve("in February", REF), "2024-02-01..2024-02-29");
    cr_assert_str_eq(resolve("May 2023", REF), "2023-05-01..2023-05-31");
    cr_assert_str_eq(resolve("in Sept. 2021", REF), "2021-09-01..2021-09-30");
    cr_assert_str_eq(resolve("You may go", REF), "none");
    cr_assert_str_eq(resolve("May I help?", REF), "none");
}

Test(dates, full_dates)
{
    cr_assert_str_eq(resolve("May 5, 2023", REF), "2023-05-05..2023-05-05");
    cr_assert_str_eq(resolve("on May 5th 2023 we", REF), "2023-05-05..2023-05-05");
    cr_assert_str_eq(resolve("5 May 2023", REF), "2023-05-05..2023-05-05");
    cr_assert_str_eq(resolve("the 21st of December, 2012", REF), "2012-12-21..2012-12-21");
    cr_assert_str_eq(resolve("Dec 25", REF), "2023-12-25..2023-12-25");
    cr_assert_str_eq(resolve("March 10", REF), "2024-03-10..2024-03-10");
    cr_assert_str_eq(resolve("Feb 29", REF), "2024-02-29..2024-02-29");
    cr_assert_str_eq(resolve("Feb 29", "2025-06-01T00:00:00Z"), "2024-02-29..2024-02-29");
    cr_assert_str_eq(resolve("February 30, 2024", REF), "none");
}

Test(dates, iso_in_text)
{
    cr_assert_str_eq(resolve("It happened on 2023-05-30.", REF), "2023-05-30..2023-05-30");
    cr_assert_str_eq(resolve("at 2023-05-30T10:00:00+02:00 sharp", REF),
                     "2023-05-30T08:00:00+00:00..2023-05-30T08:00:00+00:00");
    cr_assert_str_eq(resolve("id 2023-05-301", REF), "none");
}

Test(dates, years_and_decades)
{
    cr_assert_str_eq(resolve("in 2019", REF), "2019-01-01..2019-12-31");
    cr_assert_str_eq(resolve("in early 2019", REF), "2019-01-01..2019-12-31");
    cr_assert_str_eq(resolve("the year 1989", REF), "1989-01-01..1989-12-31");
    cr_assert_str_eq(resolve("the 1990s", REF), "1990-01-01..1999-12-31");
    cr_assert_str_eq(resolve("back in the '80s", REF), "1980-01-01..1989-12-31");
    cr_assert_str_eq(resolve("the 90s", REF), "1990-01-01..1999-12-31");
    cr_assert_str_eq(resolve("the 20s", REF), "2020-01-01..2029-12-31");
    cr_assert_str_eq(resolve("1960s music", REF), "1960-01-01..1969-12-31");
    cr_assert_str_eq(resolve("I have 2019 apples", REF), "none");
    cr_assert_str_eq(resolve("the 1995s", REF), "none");
}

Test(dates, offsets_and_precedence)
{
    const char *s = "Bob said yesterday that May 5, 2023 was great.";
    eg_text_date_t d;

    cr_assert(eg_text_find_date(s, strlen(s), 0, iso(REF), &d));
    cr_assert_eq(d.off, 9);
    cr_assert_eq(d.len, 9);
    /* Scanning on from the first finds the second, the longest form at its position. */
    cr_assert(eg_text_find_date(s, strlen(s), d.off + d.len, iso(REF), &d));
    cr_assert_eq(d.off, 24);
    cr_assert_eq(d.len, 11);
    cr_assert_eq(d.start_us, iso("2023-05-05"));
    cr_assert_not(eg_text_find_date(s, strlen(s), d.off + d.len, iso(REF), &d));
    cr_assert_not(eg_text_find_date("", 0, 0, 0, &d));
    cr_assert_not(eg_text_find_date("no dates here", 13, 0, 0, &d));
}

Test(dates, reference_time_zone_is_utc)
{
    /* 2024-03-15T23:30-05:00 is 2024-03-16T04:30Z: "yesterday" is the UTC 15th. */
    cr_assert_str_eq(resolve("yesterday", "2024-03-15T23:30:00-05:00"), "2024-03-15..2024-03-15");
}
