/* Pure text processing for the memory engine: tokenizer and token estimator (text.c), sentence
 * splitter and chunker (sentences.c), filler detector and entity recogniser (entities.c), ISO 8601
 * timestamps (dates.c) and date phrases resolved against a reference time (date_phrases.c). Nothing
 * here does I/O or keeps global state; every function is safe to call from any thread. Offsets are
 * byte offsets into the caller's input, which is UTF-8 of an explicit length (NUL bytes are
 * ordinary separators). Invalid UTF-8 bytes are treated as separators and never split or copied
 * half-way. */
#ifndef ENGRAM_TEXT_H
#define ENGRAM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"

/* ---- Tokenizer ------------------------------------------------------------------------------ */

/* Longest term a token carries, in bytes; a longer word is cut at a code point boundary (its
 * offsets still cover the whole word). */
#define EG_TEXT_TERM_MAX 64

/* Tokenizer flags. */
#define EG_TEXT_STOPWORDS                                                                          \
    0x1u                  /* drop English stopwords (the keyword arm; embeddings keep them)        \
                           */
#define EG_TEXT_STEM 0x2u /* apply eg_text_stem() to each term */

/* One token. Terms are folded: ASCII and Greek/Cyrillic lowercased, Latin-1 and Latin
 * Extended-A letters lowercased and stripped of diacritics ("José" -> "jose", "Straße" ->
 * "strasse", "Œuvre" -> "oeuvre"). Words are runs of letters and digits; an apostrophe (' or
 * U+2019) between two letters is dropped ("don't" -> "dont") and a possessive "'s" at the end of a
 * word is removed ("Alice's" -> "alice"). Each CJK ideograph or kana is a token of its own, since
 * those scripts do not separate words with spaces. */
typedef struct {
    const char *term; /* folded (and maybe stemmed) term, NUL-terminated */
    size_t len;       /* strlen(term) */
    size_t off;       /* byte offset of the word in the input */
    size_t src_len;   /* bytes the word spans in the input */
} eg_text_token_t;

/* Streaming tokenizer: no allocation; a token's term lives in the tokenizer until the next call. */
typedef struct {
    const char *text;
    size_t len, pos;
    unsigned flags;
    char term[EG_TEXT_TERM_MAX + 8];
} eg_text_tokenizer_t;

void eg_text_tokenizer_init(eg_text_tokenizer_t *t, const char *text, size_t len, unsigned flags);

/* Next token into *tok; false at the end of the input. */
bool eg_text_tokenizer_next(eg_text_tokenizer_t *t, eg_text_token_t *tok);

/* All tokens of text as an array in the arena (terms copied there too); returns the count and sets
 * *out (NULL when there are none). */
size_t eg_text_tokenize(eg_arena_t *a, const char *text, size_t len, unsigned flags,
                        eg_text_token_t **out);

/* The same tokens as bare terms, the shape eg_bm25_add()/eg_bm25_search() take. */
size_t eg_text_terms(eg_arena_t *a, const char *text, size_t len, unsigned flags,
                     const char ***out);

/* True if the folded term w (n bytes) is an English stopword (about 150 words, contractions in
 * their folded apostrophe-less form: "dont", "im", "youre"). */
bool eg_text_is_stopword(const char *w, size_t n);

/* Light English suffix stripper over a folded term, in place; returns the new length (the term
 * is re-terminated). Rules, first match wins, only on terms of 4+ bytes without digits, and never
 * leaving fewer than 3 bytes: -sses -> -ss, -ies -> -y, -es after s/x/z/ch/sh, -s (not -ss, -us,
 * -is), -ing and -ed when the rest has a vowel (then a doubled final consonant other than l/s/z
 * is undoubled: "running" -> "run"), and finally a trailing -e is dropped so "make", "makes" and
 * "making" all give "mak". Limits: no irregular forms (ran, mice, went), no -ly/-ness/-ment,
 * some over-stemming ("news" -> "new", "during" -> "dur"); it exists to make plurals and verb
 * forms meet, not to produce words. */
size_t eg_text_stem(char *w, size_t n);

/* ---- Sentences and chunks ------------------------------------------------------------------- */

typedef struct {
    size_t off, len; /* bytes of the input */
} eg_text_span_t;

/* Split text into sentences, each trimmed of surrounding whitespace (empty ones are skipped).
 * A sentence ends at '.', '!', '?' or '…' (runs like "?!" or "..." count once, closing quotes and
 * brackets stay with it) when whitespace follows and the next word starts with an uppercase
 * letter, a digit, a quote or an opening bracket, or at the end of the text. Every newline is a
 * hard break. A '.' does not end a sentence after a known abbreviation (Mr, Mrs, Dr, Prof, St,
 * vs, ...), a word with inner dots (e.g., i.e., U.S.), or a single capital initial ("J. R. R.").
 * Decimals (3.14) never split because no whitespace follows the dot. Returns the count, *out in
 * the arena. */
size_t eg_text_sentences(eg_arena_t *a, const char *text, size_t len, eg_text_span_t **out);

/* Default chunk size: Hindsight's retain_chunk_size. */
#define EG_TEXT_CHUNK_DEFAULT 3000

/* Number of Unicode code points in text (an invalid byte counts as one, like Python's
 * surrogateescape would). */
size_t eg_text_codepoints(const char *text, size_t len);

/* Chunk text into spans of at most max_cp code points (Python len(), as Hindsight counts; 0
 * selects EG_TEXT_CHUNK_DEFAULT). Whole sentences are packed greedily; a chunk spans from its
 * first sentence's start to its last sentence's end, whitespace between them included. A
 * sentence longer than max_cp is cut at word boundaries, and a single word longer than max_cp is
 * cut at a code point boundary, so no chunk is ever empty, over-long, or split inside a UTF-8
 * sequence. Returns the count, *out in the arena. */
size_t eg_text_chunks(eg_arena_t *a, const char *text, size_t len, size_t max_cp,
                      eg_text_span_t **out);

/* ---- Extraction helpers --------------------------------------------------------------------- */

/* True if the sentence is social filler with nothing to remember: greetings, thanks,
 * acknowledgements, farewells and small talk ("hi", "hello there!", "thanks!", "ok",
 * "sounds good", "bye", "how are you?"), optionally addressed to one capitalised name ("Thanks,
 * Bob!"). Empty or punctuation/emoji-only text is filler too. At most 8 words. */
bool eg_text_is_filler(const char *text, size_t len);

typedef struct {
    const char *text; /* surface form, NUL-terminated, in the arena */
    size_t off, len;  /* first occurrence in the input */
} eg_text_entity_t;

/* Builtin entity recogniser. Finds (1) runs of Capitalised words, allowing the connectors of,
 * the, de, del, der, da, di, du, la, le, van, von and '&' inside ("Bank of America", "Charles de
 * Gaulle"), titles and initials with their dot ("Dr. Smith", "J. R. R. Tolkien"), possessives cut
 * ("Alice's" -> "Alice"); and (2) quoted names in "…", '…', “…”, ‘…’ or «…» of up to 6 words that
 * start with a capital or digit and hold no sentence punctuation ("War and Peace"). Leading
 * sentence words that are common (I, The, A, This, Yesterday, Then, ...) are dropped, and so is a
 * lone weekday or month name ("Monday", "May") unless it is part of a longer name ("May Day
 * Parade"). Surface forms are unique case-insensitively, in order of first occurrence. Returns the
 * count, *out in the arena. */
size_t eg_text_entities(eg_arena_t *a, const char *text, size_t len, eg_text_entity_t **out);

/* Estimated cl100k_base token count of text. Tokens are counted per pre-token the way cl100k
 * splits text: a letter run of up to 8 letters is one token and a longer one adds one per further
 * 6 letters (common English words are single tokens, rare long words split into a few pieces); a
 * digit run is one token per 3 digits; each punctuation or symbol character is one token, except
 * that runs of the same ASCII punctuation ("...", "---") count per 2; whitespace is free except
 * that each run containing a newline is one token; a 2-byte letter counts as 2 letters, each
 * 3-byte code point (CJK, kana) is one token and each 4-byte code point (emoji) two. Calibrated
 * so "hello world" = 2 and "The quick brown fox jumps over the lazy dog." = 10; expect ±15% on
 * English prose, worse on code or unusual scripts. */
size_t eg_text_estimate_tokens(const char *text, size_t len);

/* ---- Timestamps (dates.c, date_phrases.c)
 * ---------------------------------------------------------------- */

/* Times are int64 microseconds since the Unix epoch, UTC: Hindsight's wire format carries
 * microseconds, and int64 microseconds cover years 1..9999. */
#define EG_TEXT_US_PER_SEC INT64_C(1000000)
#define EG_TEXT_US_PER_DAY (INT64_C(86400) * EG_TEXT_US_PER_SEC)

/* Buffer size for eg_text_format_iso(): "9999-12-31T23:59:59.999999+00:00" plus NUL. */
#define EG_TEXT_ISO_MAX 40

/* Parse ISO 8601 as Hindsight accepts it: a bare date "2024-10-15" (midnight UTC), a naive
 * date-time "2023-05-30T23:40:00" (read as UTC; 'T', 't' or a space separates; seconds optional),
 * fractional seconds of 1-9 digits (beyond microseconds truncated; ',' also accepted), and an
 * optional zone "Z", "+hh:mm", "+hhmm" or "+hh" (also '-'), converted to UTC. Years 0001-9999;
 * fields are range-checked (Feb 29 only in leap years, no leap seconds). The whole input must
 * match. 0 on success, EG_EINVAL otherwise. */
int eg_text_parse_iso(const char *s, size_t len, int64_t *us);

/* Format exactly as Python's datetime.isoformat() writes an aware UTC datetime:
 * "2024-01-15T10:30:00.123456+00:00", or "2024-01-15T10:30:00+00:00" when the microseconds are
 * 0. Times outside years 1..9999 are clamped to that range. Returns the length written. */
size_t eg_text_format_iso(int64_t us, char out[EG_TEXT_ISO_MAX]);

/* Civil date helpers (proleptic Gregorian, UTC). */
int64_t eg_text_days_from_civil(int64_t y, unsigned m, unsigned d);
void eg_text_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* A date expression found in text and the interval it denotes. The interval is inclusive on both
 * ends: "yesterday" from 2024-03-15T10:00Z is 2024-03-14T00:00:00 .. 2024-03-14T23:59:59.999999.
 * An explicit date-time ("2023-05-30T10:00:00Z") is an instant (start == end). */
typedef struct {
    size_t off, len;  /* bytes of the expression in the input */
    int64_t start_us; /* occurred_start */
    int64_t end_us;   /* occurred_end */
} eg_text_date_t;

/* Find the first date expression in text[from..len) and resolve it against the reference time
 * ref_us (the item's timestamp), in the UTC calendar. Recognised (case-insensitive unless noted):
 *   ISO dates and date-times "2023-05-30", "2023-05-30T10:00:00+02:00" (day or instant);
 *   "May 5, 2023", "May 5th 2023", "5 May 2023", "5th of May, 2023" (day); "May 5" without a year
 *     is the most recent such day on or before the reference;
 *   "May 2023" (month); "in/last/this May" (month; "in"/"this" is the most recent May including
 *     the current month, "last" the most recent one before it) — month names must be capitalised
 *     and a bare month needs in/last/this/during/since/early/mid/late before it, since "may" and
 *     "march" are also verbs;
 *   "in/during/since/by/of/from/early/mid/late 2019", "the year 2019", "in early 2019" (year);
 *   "the 1990s", "the '90s", "the 90s", "1990s" (decade);
 *   today, tonight, yesterday, tomorrow, the day before yesterday, the day after tomorrow (day);
 *   this/yesterday/tomorrow morning (06-12), afternoon (12-18), evening (18-24), last night
 *     (yesterday 18:00 to today 06:00);
 *   last/this/next week (Monday-Sunday), weekend (Saturday-Sunday), month, year;
 *   "N days/weeks/months/years ago" with N a number, a/an/one..twelve, "a couple of" (2) or
 *     "a few" (3): the day, its Monday-Sunday week, its calendar month, its calendar year;
 *   "last Monday" (the most recent Monday before today), "next Monday" (the next after today),
 *     "on/this Monday" or a capitalised bare "Monday" (the most recent Monday, today included).
 * Precedence: the expression starting earliest wins; among those starting at the same byte, the
 * longest ("May 5, 2023" over "May 5"). Returns true and fills *out, or false when none is found.
 * Not recognised: slash dates (05/30/2023, ambiguous between locales), times of day without a
 * date ("at 5pm"), ranges ("from May to June" yields May), future phrasing ("in 3 days"). */
bool eg_text_find_date(const char *text, size_t len, size_t from, int64_t ref_us,
                       eg_text_date_t *out);

#endif
