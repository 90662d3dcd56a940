/* Small shared helpers: allocation, randomness, ids, hashing, encodings, time. */
#ifndef ENGRAM_UTIL_H
#define ENGRAM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EG_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define EG_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define EG_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define EG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* malloc/calloc/realloc/strdup that abort with a log line on out-of-memory (as Redis zmalloc). */
void *eg_xmalloc(size_t n);
void *eg_xcalloc(size_t n, size_t size);
void *eg_xrealloc(void *p, size_t n);
char *eg_xstrdup(const char *s);
char *eg_xstrndup(const char *s, size_t n);

/* Seed the process CSPRNG (mbedTLS CTR-DRBG over the OS entropy source). 0 or EG_EINTERNAL. */
int eg_random_init(void);

/* Fill buf with n cryptographically random bytes (seeds on first use; aborts if that fails). */
void eg_random_bytes(void *buf, size_t n);

/* Write n random base62 characters plus NUL into out (out has n+1 bytes), without modulo bias. */
void eg_random_base62(char *out, size_t n);

/* Write a random RFC 4122 version-4 UUID (36 chars + NUL). */
void eg_uuid_v4(char out[37]);

/* A version-4-shaped UUID from the first 32 lowercase hex digits of hex (the version and variant
 * bits overwritten): equal inputs give equal ids, e.g. ids derived from a hash. */
void eg_uuid_from_hex(const char *hex, char out[37]);

/* True if s is a canonical lowercase or uppercase UUID string. */
bool eg_uuid_valid(const char *s);

/* SHA-256 of data as 64 lowercase hex characters plus NUL. */
void eg_sha256_hex(const void *data, size_t len, char out[65]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void eg_hex_encode(const void *data, size_t n, char *out);

/* Standard base64 (with padding) of n bytes; returns the length written, out needs 4*ceil(n/3)+1.
 */
size_t eg_base64_encode(const void *data, size_t n, char *out);

/* Constant-time comparison of two equal-length buffers. */
bool eg_consttime_eq(const void *a, const void *b, size_t n);

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t eg_now_ms(void);

/* Wall-clock time in microseconds since the Unix epoch. */
int64_t eg_now_us(void);

/* Monotonic time in nanoseconds. */
uint64_t eg_mono_ns(void);

/* RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-23T08:56:39.123Z (25 bytes incl. NUL). */
void eg_time_iso8601(int64_t ms, char out[32]);

/* ISO 8601 UTC with microseconds and 'Z', e.g. 2024-04-08T17:02:27.887295Z (28 bytes incl. NUL),
 * from microseconds since the epoch (Fency's timestamps). */
void eg_time_iso_us(int64_t us, char out[32]);

/* A random id: prefix + '_' + 32 lowercase hex characters (128 bits); out has cap bytes, at least
 * strlen(prefix) + 34. */
void eg_hexid_new(const char *prefix, char *out, size_t cap);

/* Is id prefix + '_' + exactly 32 lowercase hex characters? */
bool eg_hexid_valid(const char *id, const char *prefix);

/* Case-insensitive ASCII equality. */
bool eg_strcaseeq(const char *a, const char *b);

/* Parse a decimal integer in [min,max]; 0 on success, EG_EINVAL otherwise. */
int eg_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parse a size with optional k/m/g suffix (binary units), e.g. "16k", "10m". */
int eg_parse_size(const char *s, size_t *out);

/* Parse a duration with optional ms/s/m/h suffix (default seconds) into milliseconds. */
int eg_parse_duration_ms(const char *s, uint64_t *out);

/* Percent-decode in place (also '+' to space when plus_is_space); EG_EINVAL on bad escapes. */
int eg_percent_decode(char *s, bool plus_is_space, size_t *out_len);

#endif
