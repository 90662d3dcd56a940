/* Sentences and chunks: where retain cuts text before extraction.
 *
 * The splitter is rule-based (terminator + space + capital, with abbreviation guards) rather than
 * statistical: retain needs the same cut every time, and a missed split only merges two facts. */
#include <stdlib.h>
#include <string.h>

#include "engram/text.h"
#include "engram/util.h"
#include "memory/text_int.h"

/* ---- Sentences ------------------------------------------------------------------------------ */

/* Words after which a '.' is not a sentence end: titles, and abbreviations usually followed by a
 * capital or a number. Words that often end sentences ("etc", "Inc", "No") are left out. */
static const char *const abbrevs[] = {
    "adm", "approx", "apr",  "aug", "capt", "cmdr", "col",  "dec",  "dept", "dr",  "esp",
    "feb", "fig",    "ft",   "gen", "gov",  "hon",  "jan",  "jr",   "jul",  "jun", "lt",
    "mar", "mr",     "mrs",  "ms",  "mt",   "nov",  "oct",  "pres", "prof", "rep", "rev",
    "sen", "sep",    "sept", "sgt", "sr",   "st",   "supt", "vol",  "vs",
};

static bool is_abbrev_word(const char *w, size_t n)
{
    char low[8];

    if (n == 0 || n >= sizeof(low))
        return false;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
    return eg__text_in_list(abbrevs, EG_ARRAY_SIZE(abbrevs), low, n);
}

static bool is_ascii_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does the '.' at text[dot] follow an abbreviation, a dotted word or an initial? */
static bool dot_after_abbrev(const char *text, size_t dot)
{
    size_t b = dot;

    /* Bytes, not code points: every delimiter we stop at is ASCII. */
    while (b > 0 && strchr(" \t\r\n\f\v([\"", text[b - 1]) == NULL)
        b--;
    if (b == dot)
        return false;
    if (dot - b == 1 && text[b] >= 'A' && text[b] <= 'Z')
        return true; /* an initial: "J. R. R. Tolkien" */
    /* Inner dots between letters: "e.g", "i.e", "U.S", "a.m". */
    for (size_t i = b + 1; i + 1 < dot; i++)
        if (text[i] == '.' && is_ascii_alnum(text[i - 1]) && is_ascii_alnum(text[i + 1]))
            return true;
    return is_abbrev_word(text + b, dot - b);
}

/* Closing quotes and brackets that stay with the sentence they end. */
static bool is_closer(uint32_t cp)
{
    return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == 0x201D || cp == 0x2019 ||
           cp == 0xBB;
}

/* Can a sentence start with cp? */
static bool starts_sentence(uint32_t cp)
{
    if (cp >= '0' && cp <= '9')
        return true;
    if (cp == '"' || cp == '\'' || cp == '(' || cp == '[' || cp == 0x201C || cp == 0x2018 ||
        cp == 0xAB || cp == 0xBF || cp == 0xA1)
        return true;
    if (eg__text_is_upper_cp(cp))
        return true;
    /* Scripts without case (Hebrew, Arabic, CJK, ...) give no signal: accept. */
    return cp >= 0x590 && eg__text_is_word_cp(cp);
}

static bool is_terminator(uint32_t cp)
{
    return cp == '.' || cp == '!' || cp == '?' || cp == 0x2026;
}

/* Full-width terminators end a sentence with no space after them. */
static bool is_cjk_terminator(uint32_t cp)
{
    return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F;
}

typedef struct {
    eg_text_span_t *v;
    size_t n, cap;
} span_vec_t;

static void span_push(span_vec_t *sv, size_t off, size_t len)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 16;
        sv->v = eg_xrealloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n].off = off;
    sv->v[sv->n].len = len;
    sv->n++;
}

/* Push text[start..end) trimmed of whitespace, if anything is left. */
static void span_push_trimmed(span_vec_t *sv, const char *text, size_t start, size_t end)
{
    size_t n;

    while (start < end) {
        uint32_t cp = eg__utf8_decode(text, end, start, &n);
        if (!eg__text_is_space_cp(cp))
            break;
        start += n;
    }
    while (end > start) {
        size_t b = end - 1;
        while (b > start && ((unsigned char)text[b] & 0xC0) == 0x80)
            b--;
        if (!eg__text_is_space_cp(eg__utf8_decode(text, end, b, &n)))
            break;
        end = b;
    }
    if (end > start)
        span_push(sv, start, end - start);
}

static size_t span_finish(eg_arena_t *a, span_vec_t *sv, eg_text_span_t **out)
{
    *out = NULL;
    if (sv->n > 0) {
        *out = eg_arena_alloc(a, sv->n * sizeof(**out));
        memcpy(*out, sv->v, sv->n * sizeof(**out));
    }
    free(sv->v);
    return sv->n;
}

/* If a sentence ends at the terminator starting at i, return the byte after it (and its closing
 * quotes); otherwise 0. */
static size_t sentence_end_at(const char *text, size_t len, size_t i)
{
    size_t j = i, n, run = 0, m;
    uint32_t cp;

    while (j < len && is_terminator(cp = eg__utf8_decode(text, len, j, &n))) {
        j += n;
        run++;
    }
    while (j < len && is_closer(cp = eg__utf8_decode(text, len, j, &n)))
        j += n;
    if (j == len)
        return j;
    cp = eg__utf8_decode(text, len, j, &n);
    if (!eg__text_is_space_cp(cp))
        return 0; /* "3.14", "e.g.," and "Yahoo!" inside a word */
    m = j;
    while (m < len && text[m] != '\n' &&
           eg__text_is_space_cp(cp = eg__utf8_decode(text, len, m, &n)))
        m += n;
    if (m == len || text[m] == '\n')
        return j;
    if (!starts_sentence(eg__utf8_decode(text, len, m, &n)))
        return 0;
    if (run == 1 && text[i] == '.' && dot_after_abbrev(text, i))
        return 0;
    return j;
}

size_t eg_text_sentences(eg_arena_t *a, const char *text, size_t len, eg_text_span_t **out)
{
    span_vec_t sv = {0};
    size_t start = 0, i = 0, n;

    if (text == NULL)
        len = 0;
    while (i < len) {
        uint32_t cp = eg__utf8_decode(text, len, i, &n);
        size_t end;

        if (cp == '\n' || cp == 0x2028 || cp == 0x2029) {
            span_push_trimmed(&sv, text, start, i);
            start = i += n;
            continue;
        }
        if (is_cjk_terminator(cp)) {
            span_push_trimmed(&sv, text, start, i + n);
            start = i += n;
            continue;
        }
        if (is_terminator(cp) && (end = sentence_end_at(text, len, i)) != 0) {
            span_push_trimmed(&sv, text, start, end);
            start = i = end;
            continue;
        }
        if (is_terminator(cp)) { /* step over the whole run so "?!" is judged once */
            while (i < len && is_terminator(eg__utf8_decode(text, len, i, &n)))
                i += n;
            continue;
        }
        i += n;
    }
    span_push_trimmed(&sv, text, start, len);
    return span_finish(a, &sv, out);
}

/* ---- Chunks --------------------------------------------------------------------------------- */

/* Cut an over-long sentence text[off..end) into pieces of at most max_cp code points, at spaces
 * where possible. */
static void split_long(span_vec_t *sv, const char *text, size_t off, size_t end, size_t max_cp)
{
    size_t pos = off, n;

    while (pos < end) {
        size_t i = pos, count = 0, brk = 0;
        bool prev_space = false;

        while (pos < end && eg__text_is_space_cp(eg__utf8_decode(text, end, pos, &n)))
            pos += n;
        if (pos >= end)
            break;
        i = pos;
        while (i < end && count < max_cp) {
            uint32_t cp = eg__utf8_decode(text, end, i, &n);
            bool sp = eg__text_is_space_cp(cp);
            if (sp && !prev_space && i > pos)
                brk = i; /* the end of the last complete word */
            prev_space = sp;
            i += n;
            count++;
        }
        if (i < end && !eg__text_is_space_cp(eg__utf8_decode(text, end, i, &n)) && brk > pos)
            i = brk; /* the limit falls inside a word: end at the previous word */
        span_push_trimmed(sv, text, pos, i);
        pos = i;
    }
}

size_t eg_text_chunks(eg_arena_t *a, const char *text, size_t len, size_t max_cp,
                      eg_text_span_t **out)
{
    eg_arena_t tmp;
    eg_text_span_t *sent;
    span_vec_t sv = {0};
    size_t ns, cur_off = 0, cur_end = 0, cur_cp = 0;
    bool have = false;

    if (max_cp == 0)
        max_cp = EG_TEXT_CHUNK_DEFAULT;
    eg_arena_init(&tmp);
    ns = eg_text_sentences(&tmp, text, len, &sent);
    for (size_t i = 0; i < ns; i++) {
        size_t s_off = sent[i].off, s_end = sent[i].off + sent[i].len;
        size_t s_cp = eg_text_codepoints(text + s_off, sent[i].len);

        if (have) {
            size_t joined = cur_cp + eg_text_codepoints(text + cur_end, s_off - cur_end) + s_cp;
            if (joined <= max_cp) {
                cur_end = s_end;
                cur_cp = joined;
                continue;
            }
            span_push(&sv, cur_off, cur_end - cur_off);
            have = false;
        }
        if (s_cp > max_cp) {
            split_long(&sv, text, s_off, s_end, max_cp);
            continue;
        }
        cur_off = s_off;
        cur_end = s_end;
        cur_cp = s_cp;
        have = true;
    }
    if (have)
        span_push(&sv, cur_off, cur_end - cur_off);
    eg_arena_destroy(&tmp);
    return span_finish(a, &sv, out);
}
