/* Text processing for the memory engine: UTF-8 scanning, the tokenizer behind BM25 and the
 * builtin extractor, sentences, chunks and the token estimator.
 *
 * There is no Unicode database here on purpose: the engine needs stable, fast answers for the
 * scripts people actually write memories in, and a few range tables give that. Anything outside
 * them is treated as a letter (so unknown scripts still tokenize) unless it sits in a known
 * punctuation, symbol or emoji block. */
#include <stdlib.h>
#include <string.h>

#include "engram/text.h"
#include "engram/util.h"
#include "memory/text_int.h"

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

uint32_t eg__utf8_decode(const char *s, size_t len, size_t i, size_t *n)
{
    const unsigned char *u = (const unsigned char *)s + i;
    size_t avail = len - i;
    uint32_t cp;
    size_t need, k;

    if (u[0] < 0x80) {
        *n = 1;
        return u[0];
    }
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        need = 2;
        cp = u[0] & 0x1F;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        need = 3;
        cp = u[0] & 0x0F;
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        need = 4;
        cp = u[0] & 0x07;
    } else {
        goto bad;
    }
    if (avail < need)
        goto bad;
    for (k = 1; k < need; k++) {
        if ((u[k] & 0xC0) != 0x80)
            goto bad;
        cp = (cp << 6) | (u[k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not characters. */
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        goto bad;
    *n = need;
    return cp;
bad:
    *n = 1;
    return EG__UTF8_BAD;
}

size_t eg__utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t eg_text_codepoints(const char *text, size_t len)
{
    size_t i = 0, n, count = 0;

    while (i < len) {
        eg__utf8_decode(text, len, i, &n);
        i += n;
        count++;
    }
    return count;
}

/* ---- Character classes ---------------------------------------------------------------------- */

typedef struct {
    uint32_t lo, hi;
} cp_range_t;

/* Punctuation, symbols, spaces and emoji above Latin-1 (sorted, non-overlapping). */
static const cp_range_t non_word_ranges[] = {
    {0x037E, 0x037E},   {0x0387, 0x0387},    {0x055A, 0x055F}, {0x0589, 0x058A}, {0x05BE, 0x05BE},
    {0x05C0, 0x05C0},   {0x05C3, 0x05C3},    {0x05F3, 0x05F4}, {0x0600, 0x060F}, {0x061B, 0x061F},
    {0x066A, 0x066D},   {0x06D4, 0x06D4},    {0x0964, 0x0965}, {0x0E4F, 0x0E4F}, {0x0E5A, 0x0E5B},
    {0x1680, 0x1680},   {0x2000, 0x2BFF},    {0x2E00, 0x2E7F}, {0x3000, 0x303F}, {0xD800, 0xF8FF},
    {0xFE00, 0xFE0F},   {0xFE10, 0xFE1F},    {0xFE30, 0xFE6F}, {0xFEFF, 0xFEFF}, {0xFF00, 0xFF0F},
    {0xFF1A, 0xFF20},   {0xFF3B, 0xFF40},    {0xFF5B, 0xFF65}, {0xFFF0, 0xFFFF}, {0x1F000, 0x1FAFF},
    {0xE0000, 0xE007F}, {0xF0000, 0x10FFFF},
};

static bool in_ranges(uint32_t cp, const cp_range_t *r, size_t n)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool eg__text_is_word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (cp == EG__UTF8_BAD)
        return false;
    if (cp < 0xC0) /* Latin-1 punctuation and symbols, except the ordinal indicators and micro */
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
    if (cp == 0xD7 || cp == 0xF7)
        return false;
    return !in_ranges(cp, non_word_ranges, EG_ARRAY_SIZE(non_word_ranges));
}

bool eg__text_is_cjk(uint32_t cp)
{
    return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0x20000 && cp <= 0x2FFFF);
}

bool eg__text_is_upper_cp(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z';
    if (cp >= 0xC0 && cp <= 0xDE)
        return cp != 0xD7;
    /* Latin Extended-A alternates upper/lower, with the parity flipping at U+0139 and U+014A. */
    if (cp >= 0x100 && cp <= 0x137)
        return cp % 2 == 0;
    if (cp >= 0x139 && cp <= 0x148)
        return cp % 2 == 1;
    if (cp >= 0x14A && cp <= 0x177)
        return cp % 2 == 0;
    if (cp == 0x178)
        return true;
    if (cp >= 0x179 && cp <= 0x17E)
        return cp % 2 == 1;
    return (cp >= 0x391 && cp <= 0x3A9) || (cp >= 0x400 && cp <= 0x42F);
}

bool eg__text_is_space_cp(uint32_t cp)
{
    return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* ASCII replacement of each Latin-1 / Latin Extended-A letter from U+00C0 to U+017F: lowercased
 * and without diacritics, so "José" and "Jose" index alike. */
static const char *const latin_fold[] = {
    /* C0 */ "a",  "a", "a",  "a",  "a", "a", "ae", "c",
    "e",           "e", "e",  "e",  "i", "i", "i",  "i",
    /* D0 */ "d",  "n", "o",  "o",  "o", "o", "o",  "",
    "o",           "u", "u",  "u",  "u", "y", "th", "ss",
    /* E0 */ "a",  "a", "a",  "a",  "a", "a", "ae", "c",
    "e",           "e", "e",  "e",  "i", "i", "i",  "i",
    /* F0 */ "d",  "n", "o",  "o",  "o", "o", "o",  "",
    "o",           "u", "u",  "u",  "u", "y", "th", "y",
    /* 100 */ "a", "a", "a",  "a",  "a", "a", "c",  "c",
    "c",           "c", "c",  "c",  "c", "c", "d",  "d",
    /* 110 */ "d", "d", "e",  "e",  "e", "e", "e",  "e",
    "e",           "e", "e",  "e",  "g", "g", "g",  "g",
    /* 120 */ "g", "g", "g",  "g",  "h", "h", "h",  "h",
    "i",           "i", "i",  "i",  "i", "i", "i",  "i",
    /* 130 */ "i", "i", "ij", "ij", "j", "j", "k",  "k",
    "k",           "l", "l",  "l",  "l", "l", "l",  "l",
    /* 140 */ "l", "l", "l",  "n",  "n", "n", "n",  "n",
    "n",           "n", "n",  "n",  "o", "o", "o",  "o",
    /* 150 */ "o", "o", "oe", "oe", "r", "r", "r",  "r",
    "r",           "r", "s",  "s",  "s", "s", "s",  "s",
    /* 160 */ "s", "s", "t",  "t",  "t", "t", "t",  "t",
    "u",           "u", "u",  "u",  "u", "u", "u",  "u",
    /* 170 */ "u", "u", "u",  "u",  "w", "w", "y",  "y",
    "y",           "z", "z",  "z",  "z", "z", "z",  "s",
};

/* Append the folded form of cp to out (at most 4 bytes); returns the bytes written. Combining
 * marks vanish, so a decomposed "e\u0301" folds like the precomposed "é". */
static size_t fold_cp(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        return 1;
    }
    if (cp >= 0xC0 && cp <= 0x17F) {
        const char *f = latin_fold[cp - 0xC0];
        size_t n = strlen(f);
        memcpy(out, f, n);
        return n;
    }
    if (cp >= 0x300 && cp <= 0x36F)
        return 0;
    if ((cp >= 0x391 && cp <= 0x3A9) || (cp >= 0x410 && cp <= 0x42F))
        cp += 0x20;
    else if (cp >= 0x400 && cp <= 0x40F)
        cp += 0x50;
    return eg__utf8_encode(cp, out);
}

static bool is_apostrophe(uint32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == 0x02BC;
}

static bool is_letter_cp(uint32_t cp)
{
    return eg__text_is_word_cp(cp) && !(cp >= '0' && cp <= '9');
}

/* ---- Stopwords and stemming ----------------------------------------------------------------- */

/* Sorted bytewise for bsearch; folded, so contractions lose their apostrophe. */
static const char *const stopwords[] = {
    "a",      "about",  "above",    "after",      "again",  "against", "ain",        "all",
    "also",   "am",     "an",       "and",        "any",    "are",     "arent",      "as",
    "at",     "be",     "because",  "been",       "before", "being",   "below",      "between",
    "both",   "but",    "by",       "can",        "cant",   "could",   "couldnt",    "d",
    "did",    "didnt",  "do",       "does",       "doesnt", "doing",   "dont",       "down",
    "during", "each",   "few",      "for",        "from",   "further", "had",        "hadnt",
    "has",    "hasnt",  "have",     "havent",     "having", "he",      "hed",        "her",
    "here",   "heres",  "hers",     "herself",    "hes",    "him",     "himself",    "his",
    "how",    "hows",   "i",        "id",         "if",     "im",      "in",         "into",
    "is",     "isnt",   "it",       "its",        "itself", "ive",     "just",       "lets",
    "ll",     "m",      "ma",       "me",         "more",   "most",    "mustnt",     "my",
    "myself", "no",     "nor",      "not",        "now",    "of",      "off",        "on",
    "once",   "only",   "or",       "other",      "ought",  "our",     "ours",       "ourselves",
    "out",    "over",   "own",      "re",         "s",      "same",    "shant",      "she",
    "shes",   "should", "shouldnt", "so",         "some",   "such",    "t",          "than",
    "that",   "thats",  "the",      "their",      "theirs", "them",    "themselves", "then",
    "there",  "theres", "these",    "they",       "theyd",  "theyll",  "theyre",     "theyve",
    "this",   "those",  "through",  "to",         "too",    "under",   "until",      "up",
    "ve",     "very",   "was",      "wasnt",      "we",     "well",    "were",       "werent",
    "weve",   "what",   "whats",    "when",       "whens",  "where",   "wheres",     "which",
    "while",  "who",    "whom",     "whos",       "why",    "whys",    "will",       "with",
    "wont",   "would",  "wouldnt",  "y",          "you",    "youd",    "youll",      "your",
    "youre",  "yours",  "yourself", "yourselves", "youve",
};

typedef struct {
    const char *s;
    size_t n;
} word_key_t;

static int cmp_word_key(const void *k, const void *e)
{
    const word_key_t *key = k;
    const char *w = *(const char *const *)e;
    size_t wn = strlen(w);
    int c = memcmp(key->s, w, EG_MIN(key->n, wn));

    if (c != 0)
        return c;
    return key->n < wn ? -1 : key->n > wn;
}

bool eg__text_in_list(const char *const *list, size_t n, const char *w, size_t wn)
{
    word_key_t key = {w, wn};

    return bsearch(&key, list, n, sizeof(list[0]), cmp_word_key) != NULL;
}

bool eg_text_is_stopword(const char *w, size_t n)
{
    return eg__text_in_list(stopwords, EG_ARRAY_SIZE(stopwords), w, n);
}

static bool ends_with(const char *w, size_t n, const char *suf)
{
    size_t k = strlen(suf);

    return n >= k && memcmp(w + n - k, suf, k) == 0;
}

static bool has_vowel(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("aeiouy", w[i]) != NULL)
            return true;
    return false;
}

static size_t undouble(const char *w, size_t n)
{
    if (n >= 2 && w[n - 1] == w[n - 2] && strchr("aeiouylsz", w[n - 1]) == NULL)
        return n - 1;
    return n;
}

size_t eg_text_stem(char *w, size_t n)
{
    size_t i;

    if (n < 4)
        return n;
    for (i = 0; i < n; i++)
        if (!(w[i] >= 'a' && w[i] <= 'z'))
            return n; /* digits, capitals or another script: leave alone */

    if (ends_with(w, n, "sses")) {
        n -= 2;
    } else if (ends_with(w, n, "ies")) {
        if (n > 4) {
            n -= 2;
            w[n - 1] = 'y';
        } else {
            n -= 1; /* "ties" -> "tie" */
        }
    } else if (ends_with(w, n, "es") && n - 2 >= 3 &&
               (strchr("sxz", w[n - 3]) != NULL || ends_with(w, n - 2, "ch") ||
                ends_with(w, n - 2, "sh"))) {
        n -= 2;
    } else if (w[n - 1] == 's' && !ends_with(w, n, "ss") && !ends_with(w, n, "us") &&
               !ends_with(w, n, "is")) {
        n -= 1;
    } else if (ends_with(w, n, "ing") && n - 3 >= 3 && has_vowel(w, n - 3)) {
        n = undouble(w, n - 3);
    } else if (ends_with(w, n, "ed") && n - 2 >= 3 && has_vowel(w, n - 2)) {
        n = undouble(w, n - 2);
    }
    /* Drop a silent e last, so the bare verb meets its -ing and -ed forms. */
    if (n > 3 && w[n - 1] == 'e')
        n--;
    w[n] = '\0';
    return n;
}

/* ---- Tokenizer ------------------------------------------------------------------------------ */

void eg_text_tokenizer_init(eg_text_tokenizer_t *t, const char *text, size_t len, unsigned flags)
{
    t->text = text;
    t->len = text != NULL ? len : 0;
    t->pos = 0;
    t->flags = flags;
    t->term[0] = '\0';
}

/* Scan one word at t->pos (which starts a word character) into t->term; returns the term length
 * and leaves t->pos after the word. */
static size_t scan_word(eg_text_tokenizer_t *t, uint32_t first, size_t first_n)
{
    const char *s = t->text;
    size_t len = t->len, tl = 0, n;
    bool full = false;
    char tmp[8];

    if (eg__text_is_cjk(first)) {
        tl = eg__utf8_encode(first, t->term);
        t->pos += first_n;
        t->term[tl] = '\0';
        return tl;
    }
    while (t->pos < len) {
        uint32_t cp = eg__utf8_decode(s, len, t->pos, &n);

        if (eg__text_is_word_cp(cp) && !eg__text_is_cjk(cp)) {
            size_t k = fold_cp(cp, tmp);
            if (!full && tl + k <= EG_TEXT_TERM_MAX) {
                memcpy(t->term + tl, tmp, k);
                tl += k;
            } else {
                full = true; /* keep whole code points; never resume after a cut */
            }
            t->pos += n;
            continue;
        }
        if (is_apostrophe(cp) && tl > 0 && t->pos + n < len) {
            size_t n2, n3 = 0;
            uint32_t next = eg__utf8_decode(s, len, t->pos + n, &n2);
            uint32_t after = EG__UTF8_BAD;

            if (!is_letter_cp(next))
                break;
            if (t->pos + n + n2 < len)
                after = eg__utf8_decode(s, len, t->pos + n + n2, &n3);
            if ((next == 's' || next == 'S') && !eg__text_is_word_cp(after)) {
                t->pos += n + n2; /* possessive: "Alice's" is about Alice */
                break;
            }
            t->pos += n; /* contraction: drop the apostrophe, keep going */
            continue;
        }
        break;
    }
    t->term[tl] = '\0';
    return tl;
}

bool eg_text_tokenizer_next(eg_text_tokenizer_t *t, eg_text_token_t *tok)
{
    size_t n;

    while (t->pos < t->len) {
        uint32_t cp = eg__utf8_decode(t->text, t->len, t->pos, &n);
        size_t start = t->pos, tl;

        if (!eg__text_is_word_cp(cp)) {
            t->pos += n;
            continue;
        }
        tl = scan_word(t, cp, n);
        if (tl == 0) /* a lone combining mark */
            continue;
        if ((t->flags & EG_TEXT_STOPWORDS) && eg_text_is_stopword(t->term, tl))
            continue;
        if (t->flags & EG_TEXT_STEM)
            tl = eg_text_stem(t->term, tl);
        tok->term = t->term;
        tok->len = tl;
        tok->off = start;
        tok->src_len = t->pos - start;
        return true;
    }
    return false;
}

size_t eg_text_tokenize(eg_arena_t *a, const char *text, size_t len, unsigned flags,
                        eg_text_token_t **out)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok, *v = NULL;
    size_t n = 0, cap = 0;

    /* Count first so the arena holds exactly one array. */
    eg_text_tokenizer_init(&t, text, len, flags);
    while (eg_text_tokenizer_next(&t, &tok))
        cap++;
    *out = NULL;
    if (cap == 0)
        return 0;
    v = eg_arena_alloc(a, cap * sizeof(*v));
    eg_text_tokenizer_init(&t, text, len, flags);
    while (n < cap && eg_text_tokenizer_next(&t, &tok)) {
        v[n] = tok;
        v[n].term = eg_arena_strndup(a, tok.term, tok.len);
        n++;
    }
    *out = v;
    return n;
}

size_t eg_text_terms(eg_arena_t *a, const char *text, size_t len, unsigned flags, const char ***out)
{
    eg_text_token_t *toks;
    size_t n = eg_text_tokenize(a, text, len, flags, &toks);
    const char **v;

    *out = NULL;
    if (n == 0)
        return 0;
    v = eg_arena_alloc(a, n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = toks[i].term;
    *out = v;
    return n;
}

/* ---- Token estimate ------------------------------------------------------------------------- */

/* Tokens for a letter run of the given weight (2-byte letters weigh 2). */
static size_t letter_tokens(size_t weight)
{
    return weight <= 8 ? 1 : 1 + (weight - 8 + 5) / 6;
}

size_t eg_text_estimate_tokens(const char *text, size_t len)
{
    size_t i = 0, n, tokens = 0;

    if (text == NULL)
        return 0;
    while (i < len) {
        uint32_t cp = eg__utf8_decode(text, len, i, &n);

        if (eg__text_is_space_cp(cp)) {
            bool nl = false;
            while (i < len && eg__text_is_space_cp(cp = eg__utf8_decode(text, len, i, &n))) {
                nl |= cp == '\n';
                i += n;
            }
            tokens += nl;
        } else if (cp >= '0' && cp <= '9') {
            size_t run = 0;
            while (i < len && text[i] >= '0' && text[i] <= '9') {
                i++;
                run++;
            }
            tokens += (run + 2) / 3;
        } else if (is_letter_cp(cp) && n <= 2) {
            size_t w = 0;
            while (i < len) {
                cp = eg__utf8_decode(text, len, i, &n);
                if (!is_letter_cp(cp) || n > 2)
                    break;
                w += n;
                i += n;
            }
            tokens += letter_tokens(w);
        } else if (cp == '\'' && i > 0 && i + 1 < len && is_letter_cp((unsigned char)text[i - 1]) &&
                   is_letter_cp((unsigned char)text[i + 1])) {
            /* A contraction suffix ("'t", "'re", "'ll") is one token with its apostrophe. */
            size_t w = 0;
            i++;
            while (i < len && is_letter_cp((unsigned char)text[i])) {
                i++;
                w++;
            }
            tokens += letter_tokens(w);
        } else if (cp < 0x80) {
            size_t run = 0;
            char c = text[i];
            while (i < len && text[i] == c) {
                i++;
                run++;
            }
            tokens += (run + 1) / 2;
        } else {
            tokens += n == 4 ? 2 : 1;
            i += n;
        }
    }
    return tokens;
}
