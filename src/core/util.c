/* Small shared helpers. The randomness here backs API keys, ids and tokens, so it comes from a
 * CSPRNG (mbedTLS CTR-DRBG seeded from the OS), never from rand(). */
#include "engram/util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "engram/error.h"
#include "engram/log.h"

/* ------------------------------------------------------------------------------------------------
 * Allocation
 */

/* Out of memory is not recoverable for a server that promises every acknowledged write is in
 * Redis: crash loudly (the supervisor restarts us) rather than limp on with half-built state. The
 * log line is built on the stack because the heap is exactly what just failed. */
static void eg_oom(size_t n)
{
    char line[160];
    char ts[32];
    int len;

    eg_time_iso8601(eg_now_ms(), ts);
    len = snprintf(line, sizeof(line),
                   "{\"time\":\"%s\",\"level\":\"error\",\"msg\":\"out of memory allocating %zu "
                   "bytes\"}",
                   ts, n);
    if (len > 0)
        eg_log_json(EG_LOG_ERROR, line, EG_MIN((size_t)len, sizeof(line) - 1));
    abort();
}

void *eg_xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);

    if (p == NULL)
        eg_oom(n);
    return p;
}

void *eg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

    if (p == NULL)
        eg_oom(n * size);
    return p;
}

void *eg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);

    if (q == NULL)
        eg_oom(n);
    return q;
}

char *eg_xstrdup(const char *s)
{
    return s != NULL ? eg_xstrndup(s, strlen(s)) : NULL;
}

char *eg_xstrndup(const char *s, size_t n)
{
    char *p;

    n = strnlen(s, n);
    p = eg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * Randomness
 */

static pthread_mutex_t eg_rng_lock = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context eg_rng_entropy;
static mbedtls_ctr_drbg_context eg_rng_drbg;
static bool eg_rng_seeded;
static pid_t eg_rng_pid;

static int eg_random_init_locked(void)
{
    static const char pers[] = "engram csprng";
    int rc;

    if (eg_rng_seeded)
        return 0;
    mbedtls_entropy_init(&eg_rng_entropy);
    mbedtls_ctr_drbg_init(&eg_rng_drbg);
    rc = mbedtls_ctr_drbg_seed(&eg_rng_drbg, mbedtls_entropy_func, &eg_rng_entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0)
        goto fail;
    eg_rng_pid = getpid();
    eg_rng_seeded = true;
    return 0;

fail:
    mbedtls_ctr_drbg_free(&eg_rng_drbg);
    mbedtls_entropy_free(&eg_rng_entropy);
    return EG_EINTERNAL;
}

int eg_random_init(void)
{
    int rc;

    pthread_mutex_lock(&eg_rng_lock);
    rc = eg_random_init_locked();
    pthread_mutex_unlock(&eg_rng_lock);
    return rc;
}

void eg_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    pid_t pid;
    int rc = 0;

    pthread_mutex_lock(&eg_rng_lock);
    if (eg_random_init_locked() != 0) {
        rc = -1;
        goto done;
    }
    /* Worker processes are forked after the parent may have seeded: without a reseed every child
     * would continue the same DRBG stream and hand out identical keys and ids. */
    pid = getpid();
    if (pid != eg_rng_pid) {
        rc = mbedtls_ctr_drbg_reseed(&eg_rng_drbg, (const unsigned char *)&pid, sizeof(pid));
        if (rc != 0)
            goto done;
        eg_rng_pid = pid;
    }
    while (n > 0) {
        size_t chunk = EG_MIN(n, (size_t)MBEDTLS_CTR_DRBG_MAX_REQUEST);

        rc = mbedtls_ctr_drbg_random(&eg_rng_drbg, p, chunk);
        if (rc != 0)
            goto done;
        p += chunk;
        n -= chunk;
    }

done:
    pthread_mutex_unlock(&eg_rng_lock);
    if (rc != 0) {
        /* Handing out predictable bytes for keys would be far worse than stopping. */
        eg_log_error("random: CSPRNG failure (mbedTLS -0x%04x)", (unsigned)-rc);
        abort();
    }
}

void eg_random_base62(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char pool[64];
    size_t i = 0;

    /* 248 = 4 * 62: bytes at or above it are discarded so every character is equally likely. */
    while (i < n) {
        size_t want = EG_MIN(n - i + (n - i) / 8 + 1, sizeof(pool));

        eg_random_bytes(pool, want);
        for (size_t j = 0; j < want && i < n; j++) {
            if (pool[j] < 248)
                out[i++] = alphabet[pool[j] % 62];
        }
    }
    out[n] = '\0';
    mbedtls_platform_zeroize(pool, sizeof(pool));
}

void eg_uuid_from_hex(const char *hex, char out[37])
{
    static const char digits[] = "0123456789abcdef";
    const char *v = strchr(digits, hex[16]);

    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    out[14] = '4'; /* version 4 */
    memcpy(out + 15, hex + 13, 3);
    out[18] = '-';
    out[19] = digits[8 + (v && *v ? (v - digits) & 3 : 0)]; /* RFC 4122 variant 10xx */
    memcpy(out + 20, hex + 17, 3);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
}

void eg_uuid_v4(char out[37])
{
    unsigned char b[16];
    char hex[33];

    eg_random_bytes(b, sizeof(b));
    eg_hex_encode(b, sizeof(b), hex);
    eg_uuid_from_hex(hex, out);
}

bool eg_uuid_valid(const char *s)
{
    bool lower = false, upper = false;
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; i < 36; i++) {
        char c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (c >= 'a' && c <= 'f') {
            lower = true;
        } else if (c >= 'A' && c <= 'F') {
            upper = true;
        } else if (!(c >= '0' && c <= '9')) {
            return false;
        }
    }
    /* Mixed case is not canonical; ids are used verbatim in Redis keys, so be strict. */
    return s[36] == '\0' && !(lower && upper);
}

/* ------------------------------------------------------------------------------------------------
 * Hashing and encodings
 */

void eg_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char digest[32];

    /* mbedtls_sha256_ret only fails on hardware-accelerator errors, which this build has none of.
     */
    mbedtls_sha256_ret(data, len, digest, 0);
    eg_hex_encode(digest, sizeof(digest), out);
    mbedtls_platform_zeroize(digest, sizeof(digest));
}

void eg_hex_encode(const void *data, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

size_t eg_base64_encode(const void *data, size_t n, char *out)
{
    size_t olen = 0;
    size_t cap = 4 * ((n + 2) / 3) + 1;

    out[0] = '\0';
    if (n == 0)
        return 0;
    if (mbedtls_base64_encode((unsigned char *)out, cap, &olen, data, n) != 0) {
        /* Only possible if the caller's size arithmetic overflowed. */
        eg_log_error("base64: cannot encode %zu bytes", n);
        abort();
    }
    return olen;
}

bool eg_consttime_eq(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char diff = 0;

    /* No early exit: the time taken must not reveal where the first difference is. */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}

/* ------------------------------------------------------------------------------------------------
 * Time
 */

int64_t eg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t eg_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t eg_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void eg_time_iso8601(int64_t ms, char out[32])
{
    /* Floor division so instants before 1970 still get a 0..999 millisecond part. */
    int64_t secs = ms / 1000;
    int64_t frac = ms % 1000;
    time_t t;
    struct tm tm;
    size_t n;

    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)frac);
}

void eg_time_iso_us(int64_t us, char out[32])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    time_t t;
    struct tm tm;
    size_t n;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000000Z");
        return;
    }
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06dZ", (int)frac);
}

/* ------------------------------------------------------------------------------------------------
 * Ids
 */

void eg_hexid_new(const char *prefix, char *out, size_t cap)
{
    unsigned char raw[16];
    char hex[33];

    eg_random_bytes(raw, sizeof(raw));
    eg_hex_encode(raw, sizeof(raw), hex);
    snprintf(out, cap, "%s_%s", prefix, hex);
}

bool eg_hexid_valid(const char *id, const char *prefix)
{
    size_t p = strlen(prefix), n = 0;

    if (id == NULL || strncmp(id, prefix, p) != 0 || id[p] != '_')
        return false;
    for (const char *s = id + p + 1; *s; s++, n++)
        if (n == 32 || !((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return n == 32;
}

/* ------------------------------------------------------------------------------------------------
 * Parsing
 */

static int eg_ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

bool eg_strcaseeq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    while (*a != '\0' && eg_ascii_lower((unsigned char)*a) == eg_ascii_lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

/* Parse leading decimal digits of s into *out; returns the first unparsed byte, or NULL on no
 * digits or overflow of uint64. */
static const char *eg_parse_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

int eg_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    bool neg = false;
    uint64_t mag;
    int64_t v;
    const char *end;

    if (s == NULL)
        return EG_EINVAL;
    if (*s == '-') {
        neg = true;
        s++;
    }
    end = eg_parse_digits(s, &mag);
    if (end == NULL || *end != '\0')
        return EG_EINVAL;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return EG_EINVAL;
        v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return EG_EINVAL;
        v = (int64_t)mag;
    }
    if (v < min || v > max)
        return EG_EINVAL;
    *out = v;
    return 0;
}

typedef struct {
    const char *suffix;
    uint64_t scale;
} eg_unit_t;

/* Parse digits followed by one of units' suffixes (case-insensitive) into value * scale, which
 * must not exceed max. */
static int eg_parse_scaled(const char *s, const eg_unit_t *units, size_t nunits, uint64_t max,
                           uint64_t *out)
{
    uint64_t v;
    const char *end;

    if (s == NULL)
        return EG_EINVAL;
    end = eg_parse_digits(s, &v);
    if (end == NULL)
        return EG_EINVAL;
    for (size_t i = 0; i < nunits; i++) {
        if (!eg_strcaseeq(end, units[i].suffix))
            continue;
        if (v > max / units[i].scale)
            return EG_EINVAL;
        *out = v * units[i].scale;
        return 0;
    }
    return EG_EINVAL;
}

int eg_parse_size(const char *s, size_t *out)
{
    static const eg_unit_t units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"kb", 1ull << 10},
        {"kib", 1ull << 10},
        {"m", 1ull << 20},
        {"mb", 1ull << 20},
        {"mib", 1ull << 20},
        {"g", 1ull << 30},
        {"gb", 1ull << 30},
        {"gib", 1ull << 30},
        {"t", 1ull << 40},
        {"tb", 1ull << 40},
        {"tib", 1ull << 40},
    };
    uint64_t v;
    int rc = eg_parse_scaled(s, units, EG_ARRAY_SIZE(units), SIZE_MAX, &v);

    if (rc == 0)
        *out = (size_t)v;
    return rc;
}

int eg_parse_duration_ms(const char *s, uint64_t *out)
{
    static const eg_unit_t units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };

    return eg_parse_scaled(s, units, EG_ARRAY_SIZE(units), UINT64_MAX, out);
}

static int eg_hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int eg_percent_decode(char *s, bool plus_is_space, size_t *out_len)
{
    const char *r;
    char *w;

    /* Validate before writing so a rejected input is left untouched for the error message. A
     * decoded NUL is refused because everything downstream treats these as C strings, and a
     * truncation there is a classic way to smuggle one value past a check on another. */
    for (r = s; *r != '\0'; r++) {
        if (*r != '%')
            continue;
        if (eg_hex_val((unsigned char)r[1]) < 0 || eg_hex_val((unsigned char)r[2]) < 0)
            return EG_EINVAL;
        if (r[1] == '0' && r[2] == '0')
            return EG_EINVAL;
        r += 2;
    }
    /* Leave strings that need no decoding untouched (no writes at all): the common case for path
     * segments and keys, and safe even for read-only input. */
    r = s + strcspn(s, plus_is_space ? "%+" : "%");
    if (*r == '\0') {
        if (out_len != NULL)
            *out_len = (size_t)(r - s);
        return 0;
    }
    for (w = (char *)r; *r != '\0'; r++, w++) {
        if (*r == '%') {
            *w = (char)(eg_hex_val((unsigned char)r[1]) << 4 | eg_hex_val((unsigned char)r[2]));
            r += 2;
        } else if (*r == '+' && plus_is_space) {
            *w = ' ';
        } else {
            *w = *r;
        }
    }
    *w = '\0';
    if (out_len != NULL)
        *out_len = (size_t)(w - s);
    return 0;
}
