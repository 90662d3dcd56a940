/* The builtin extractor's sentence judgements: social filler to skip, and the names a sentence
 * mentions. Both are deliberately conservative heuristics: a missed greeting costs one useless
 * fact, a wrong entity pollutes the graph, so the entity rules prefer to miss. */
#include <stdlib.h>
#include <string.h>

#include "engram/text.h"
#include "engram/util.h"
#include "memory/text_int.h"

#define IN_LIST(list, w, n) eg__text_in_list(list, EG_ARRAY_SIZE(list), w, n)

/* ---- Filler --------------------------------------------------------------------------------- */

/* Words that make up small talk (folded, sorted). */
static const char *const filler_words[] = {
    "a",          "absolutely", "again",      "agreed",      "ah",       "all",       "alright",
    "am",         "and",        "appreciate", "appreciated", "are",      "awesome",   "bye",
    "care",       "cheers",     "cool",       "course",      "day",      "doing",     "evening",
    "everything", "exactly",    "excellent",  "fine",        "for",      "going",     "good",
    "goodbye",    "goodnight",  "got",        "gotcha",      "great",    "greetings", "ha",
    "haha",       "hahaha",     "hallo",      "have",        "hear",     "hehe",      "hello",
    "help",       "here",       "hey",        "hi",          "hiya",     "hmm",       "how",
    "howdy",      "hows",       "i",          "im",          "indeed",   "is",        "it",
    "k",          "kk",         "later",      "lol",         "lot",      "lots",      "lovely",
    "me",         "meet",       "morning",    "much",        "nah",      "nice",      "night",
    "no",         "nope",       "noted",      "np",          "of",       "oh",        "ok",
    "okay",       "oops",       "perfect",    "please",      "pleasure", "problem",   "right",
    "same",       "see",        "so",         "soon",        "sounds",   "sup",       "sure",
    "talk",       "thank",      "thanks",     "that",        "the",      "there",     "thx",
    "to",         "too",        "ty",         "u",           "uh",       "um",        "understood",
    "up",         "very",       "weekend",    "welcome",     "well",     "what",      "whats",
    "wonderful",  "worries",    "wow",        "ya",          "yeah",     "yep",       "yes",
    "you",        "youre",      "yup",
};

/* Words that make a sentence social on their own (greetings, thanks, farewells, acks). */
static const char *const filler_triggers[] = {
    "alright", "bye",   "cheers", "cool", "goodbye", "goodnight", "great", "hello", "hey",
    "hi",      "hiya",  "howdy",  "k",    "kk",      "morning",   "ok",    "okay",  "perfect",
    "sup",     "thank", "thanks", "thx",  "ty",      "welcome",   "yeah",  "yep",   "yes",
};

bool eg_text_is_filler(const char *text, size_t len)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    size_t words = 0, names = 0, n;
    bool trigger = false;

    eg_text_tokenizer_init(&t, text, len, 0);
    while (eg_text_tokenizer_next(&t, &tok)) {
        if (++words > 8)
            return false;
        if (IN_LIST(filler_words, tok.term, tok.len)) {
            trigger |= IN_LIST(filler_triggers, tok.term, tok.len);
            continue;
        }
        /* One addressee is allowed: "Thanks, Bob!" is still just thanks. */
        if (eg__text_is_upper_cp(eg__utf8_decode(text, len, tok.off, &n)) && names == 0) {
            names++;
            continue;
        }
        return false;
    }
    return names == 0 || trigger;
}

/* ---- Entities ------------------------------------------------------------------------------- */

/* Lowercase words that may sit inside a name ("Bank of America"). */
static const char *const connectors[] = {"da", "de", "del", "der", "di",  "du",
                                         "la", "le", "of",  "the", "van", "von"};

/* Titles whose dot does not end a name ("Dr. Smith"). */
static const char *const titles[] = {"capt", "col", "dr",   "gen", "gov", "jr",  "lt",  "mr", "mrs",
                                     "ms",   "mt",  "prof", "rep", "rev", "sen", "sgt", "sr", "st"};

/* Capitalised words that are not names when they open a sentence (folded, sorted). */
static const char *const common_openers[] = {
    "a",      "after", "all",   "also",      "an",    "and",       "anyway", "as",       "at",
    "before", "but",   "dear",  "during",    "every", "finally",   "for",    "from",     "good",
    "great",  "he",    "her",   "here",      "hey",   "hi",        "his",    "how",      "however",
    "i",      "id",    "if",    "im",        "in",    "it",        "its",    "ive",      "just",
    "last",   "later", "let",   "lets",      "maybe", "meanwhile", "my",     "next",     "nice",
    "no",     "now",   "oh",    "ok",        "okay",  "on",        "our",    "please",   "recently",
    "she",    "since", "so",    "some",      "sure",  "thanks",    "that",   "the",      "their",
    "then",   "there", "these", "they",      "this",  "those",     "today",  "tomorrow", "tonight",
    "until",  "we",    "well",  "what",      "when",  "where",     "which",  "while",    "who",
    "why",    "with",  "yes",   "yesterday", "you",   "your",
};

/* Lone weekday and month names are dates, not entities. */
static const char *const calendar_words[] = {
    "april",     "august", "december", "february", "friday",    "january", "july",
    "june",      "march",  "may",      "monday",   "november",  "october", "saturday",
    "september", "sunday", "thursday", "tuesday",  "wednesday",
};

typedef struct {
    size_t off, end; /* the word's bytes */
    size_t name_end; /* end without a possessive "'s" */
    bool cap;        /* starts with an uppercase letter */
    char term[EG_TEXT_TERM_MAX + 8];
    size_t tlen;
} word_t;

typedef struct {
    eg_text_entity_t *v;
    size_t n, cap;
} ent_vec_t;

static void ent_push(ent_vec_t *ev, size_t off, size_t len)
{
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 16;
        ev->v = eg_xrealloc(ev->v, ev->cap * sizeof(*ev->v));
    }
    ev->v[ev->n].text = NULL;
    ev->v[ev->n].off = off;
    ev->v[ev->n].len = len;
    ev->n++;
}

/* Scan the word starting at s[i]: word characters, plus apostrophes and hyphens between them. */
static void scan_word(const char *s, size_t len, size_t i, word_t *w)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    size_t n;

    w->off = i;
    w->name_end = 0;
    while (i < len) {
        uint32_t cp = eg__utf8_decode(s, len, i, &n);
        if (eg__text_is_word_cp(cp)) {
            i += n;
            continue;
        }
        if ((cp == '\'' || cp == 0x2019 || cp == '-') && i + n < len) {
            size_t n2;
            uint32_t next = eg__utf8_decode(s, len, i + n, &n2);
            if (eg__text_is_word_cp(next)) {
                /* "Alice's": the name ends before the apostrophe. */
                if (cp != '-' && (next == 's' || next == 'S') &&
                    (i + n + n2 >= len ||
                     !eg__text_is_word_cp(eg__utf8_decode(s, len, i + n + n2, &n2))))
                    w->name_end = i;
                i += n;
                continue;
            }
        }
        break;
    }
    w->end = i;
    if (w->name_end == 0)
        w->name_end = i;
    w->cap = eg__text_is_upper_cp(eg__utf8_decode(s, len, w->off, &n));
    eg_text_tokenizer_init(&t, s + w->off, w->name_end - w->off, 0);
    w->tlen = 0;
    w->term[0] = '\0';
    if (eg_text_tokenizer_next(&t, &tok)) {
        memcpy(w->term, tok.term, tok.len + 1);
        w->tlen = tok.len;
    }
}

static bool is_title_or_initial(const char *s, const word_t *w)
{
    if (w->end - w->off == 1 && s[w->off] >= 'A' && s[w->off] <= 'Z')
        return true;
    return IN_LIST(titles, w->term, w->tlen);
}

/* May words a and b belong to one name? Only spaces between them, or " & ", or the dot of a
 * title or initial ("Dr. Smith", "J.R.R. Tolkien"). */
static bool joinable(const char *s, const word_t *a, const word_t *b)
{
    size_t i = a->end, amp = 0;

    if (a->name_end != a->end) /* a possessive ends the name */
        return false;
    if (i < b->off && s[i] == '.' && is_title_or_initial(s, a))
        i++;
    for (; i < b->off; i++) {
        if (s[i] == '&' && amp++ == 0)
            continue;
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return true;
}

static void add_run(ent_vec_t *ev, const char *s, const word_t *w, size_t first, size_t last,
                    bool sentence_start)
{
    /* Sentence openers ("The", "Yesterday") are capitalised by grammar, not by being names. */
    if (sentence_start) {
        while (first <= last && w[first].cap &&
               IN_LIST(common_openers, w[first].term, w[first].tlen)) {
            first++;
            while (first <= last && !w[first].cap)
                first++; /* and any connector that followed it */
        }
        if (first > last)
            return;
    }
    if (first == last) {
        const word_t *o = &w[first];
        if ((o->tlen == 1 && o->term[0] == 'i') ||
            (o->tlen == 2 && memcmp(o->term, "im", 2) == 0) ||
            IN_LIST(calendar_words, o->term, o->tlen) || IN_LIST(titles, o->term, o->tlen))
            return;
    }
    ent_push(ev, w[first].off, w[last].name_end - w[first].off);
    (void)s;
}

/* Capitalised runs of one sentence text[off..end). */
static void sentence_entities(ent_vec_t *ev, const char *s, size_t off, size_t end)
{
    word_t *w = NULL;
    size_t nw = 0, cap = 0, i = off, n;

    while (i < end) {
        uint32_t cp = eg__utf8_decode(s, end, i, &n);
        if (!eg__text_is_word_cp(cp)) {
            i += n;
            continue;
        }
        if (nw == cap) {
            cap = cap ? cap * 2 : 16;
            w = eg_xrealloc(w, cap * sizeof(*w));
        }
        scan_word(s, end, i, &w[nw]);
        i = w[nw].end;
        nw++;
    }
    for (i = 0; i < nw;) {
        size_t j, last;

        if (!w[i].cap) {
            i++;
            continue;
        }
        last = i;
        for (j = i + 1; j < nw && joinable(s, &w[j - 1], &w[j]); j++) {
            if (w[j].cap)
                last = j;
            else if (!IN_LIST(connectors, w[j].term, w[j].tlen))
                break;
        }
        add_run(ev, s, w, i, last, i == 0);
        i = last + 1;
    }
    free(w);
}

static bool is_open_quote(uint32_t cp, uint32_t *close)
{
    switch (cp) {
    case '"':
        *close = '"';
        return true;
    case '\'':
        *close = '\'';
        return true;
    case 0x201C:
        *close = 0x201D;
        return true;
    case 0x2018:
        *close = 0x2019;
        return true;
    case 0xAB:
        *close = 0xBB;
        return true;
    default:
        return false;
    }
}

/* Quoted names: returns the end of the quote handled at i (or 0), pushing the name if it is one. */
static size_t quoted_at(ent_vec_t *ev, const char *s, size_t len, size_t i)
{
    uint32_t close, cp = eg__utf8_decode(s, len, i, &(size_t){0});
    size_t n, start, j, words = 0;
    bool in_word = false;

    if (!is_open_quote(cp, &close))
        return 0;
    /* A straight quote opens only at a word start; otherwise it is an apostrophe or a closer. */
    if (i > 0 && (cp == '"' || cp == '\'') && strchr(" \t\r\n([{", s[i - 1]) == NULL)
        return 0;
    eg__utf8_decode(s, len, i, &n);
    start = i + n;
    for (j = start; j < len; j += n) {
        cp = eg__utf8_decode(s, len, j, &n);
        if (cp == '\n' || j - start > 80)
            return 0;
        if (cp == close) {
            /* A straight single quote closes only at a word end ("'Jaws' is" but not "isn't"). */
            if (close == '\'' && j + 1 < len && eg__text_is_word_cp((unsigned char)s[j + 1]))
                continue;
            break;
        }
        if (cp == '!' || cp == '?' || cp == ';' || cp == ':')
            return 0;
        if (eg__text_is_word_cp(cp) != in_word) {
            in_word = !in_word;
            words += in_word;
        }
    }
    if (j >= len || j == start || words == 0 || words > 6)
        return 0;
    cp = eg__utf8_decode(s, len, start, &n);
    if (!eg__text_is_upper_cp(cp) && !(cp >= '0' && cp <= '9'))
        return 0;
    if (s[j - 1] == '.' || s[j - 1] == ',' || s[j - 1] == ' ')
        return 0;
    ent_push(ev, start, j - start);
    eg__utf8_decode(s, len, j, &n);
    return j + n;
}

static int cmp_ent_off(const void *a, const void *b)
{
    const eg_text_entity_t *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

static bool same_name(const char *s, const eg_text_entity_t *a, const eg_text_entity_t *b)
{
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        char x = s[a->off + i], y = s[b->off + i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

size_t eg_text_entities(eg_arena_t *a, const char *text, size_t len, eg_text_entity_t **out)
{
    ent_vec_t ev = {0};
    eg_arena_t tmp;
    eg_text_span_t *sent;
    size_t ns, i, k, nq, uniq = 0;
    size_t *qspan = NULL; /* pairs: quoted regions, skipped by the capitalised-run pass */

    *out = NULL;
    if (text == NULL || len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        size_t e = quoted_at(&ev, text, len, i);
        if (e != 0) {
            qspan = eg_xrealloc(qspan, 2 * ev.n * sizeof(*qspan));
            qspan[2 * (ev.n - 1)] = i;
            qspan[2 * (ev.n - 1) + 1] = e;
            i = e - 1;
        }
    }
    nq = ev.n;

    eg_arena_init(&tmp);
    ns = eg_text_sentences(&tmp, text, len, &sent);
    for (i = 0; i < ns; i++) {
        size_t before = ev.n;
        sentence_entities(&ev, text, sent[i].off, sent[i].off + sent[i].len);
        /* Drop runs that overlap a quoted name: the quote already gave the whole name. */
        for (k = before; k < ev.n;) {
            bool overlap = false;
            for (size_t q = 0; q < nq; q++)
                if (ev.v[k].off < qspan[2 * q + 1] && ev.v[k].off + ev.v[k].len > qspan[2 * q])
                    overlap = true;
            if (overlap)
                ev.v[k] = ev.v[--ev.n];
            else
                k++;
        }
    }
    eg_arena_destroy(&tmp);
    free(qspan);

    if (ev.n == 0) {
        free(ev.v);
        return 0;
    }
    qsort(ev.v, ev.n, sizeof(*ev.v), cmp_ent_off);
    for (i = 0; i < ev.n; i++) {
        bool dup = false;
        for (k = 0; k < uniq && !dup; k++)
            dup = same_name(text, &ev.v[k], &ev.v[i]);
        if (!dup)
            ev.v[uniq++] = ev.v[i];
    }
    *out = eg_arena_alloc(a, uniq * sizeof(**out));
    for (i = 0; i < uniq; i++) {
        (*out)[i] = ev.v[i];
        (*out)[i].text = eg_arena_strndup(a, text + ev.v[i].off, ev.v[i].len);
    }
    free(ev.v);
    return uniq;
}
