/* Private helpers shared by the text module's files (text.c, sentences.c, entities.c, dates.c,
 * date_phrases.c). */
#ifndef ENGRAM_MEMORY_TEXT_INT_H
#define ENGRAM_MEMORY_TEXT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by eg__utf8_decode for a byte that does not start a valid sequence. */
#define EG__UTF8_BAD 0xFFFFFFFFu

/* Decode the code point at s[i] (i < len); *n gets its byte length (1 for an invalid byte). */
uint32_t eg__utf8_decode(const char *s, size_t len, size_t i, size_t *n);

/* Write code point cp as UTF-8 into out (room for 4 bytes); returns the bytes written. */
size_t eg__utf8_encode(uint32_t cp, char *out);

/* Word characters: letters, digits and combining marks of any script (not punctuation, symbols,
 * spaces or emoji). */
bool eg__text_is_word_cp(uint32_t cp);

/* Ideographs and kana, which are tokens on their own. */
bool eg__text_is_cjk(uint32_t cp);

/* Uppercase letters of the scripts we fold (Latin, Greek, Cyrillic). */
bool eg__text_is_upper_cp(uint32_t cp);

/* Whitespace, including NBSP and the Unicode spaces. */
bool eg__text_is_space_cp(uint32_t cp);

/* True if w (wn bytes) is in list, an array of n NUL-terminated strings sorted bytewise. */
bool eg__text_in_list(const char *const *list, size_t n, const char *w, size_t wn);

/* Proleptic Gregorian helpers. */
bool eg__is_leap(int64_t y);
unsigned eg__days_in_month(int64_t y, unsigned m);

/* Division rounding towards negative infinity (times before 1970 are negative). */
int64_t eg__floor_div(int64_t a, int64_t b);

#endif
