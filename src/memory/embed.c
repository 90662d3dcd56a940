/* Embedding providers and the builtin hashed lexical embedding.
 *
 * The builtin embedding is a bag of hashed features projected into dim buckets with random signs
 * (the "hashing trick"): texts sharing words, word pairs or word fragments share buckets with the
 * same sign, so their dot product grows with lexical overlap, while unrelated features cancel out
 * on average instead of piling up. Character trigrams make "moved"/"move" or "Paris"/"Paris's"
 * similar without a stemmer, and bigrams reward shared phrasing. Everything is hashed with a fixed,
 * unseeded function so vectors are stable across processes (they are persisted). */
#include "engram/embed.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"

/* Relative feature weights. Unigrams carry most meaning; a word of n letters yields n trigrams,
 * so each trigram weighs little to keep long words from drowning short texts' unigrams. */
#define W_UNIGRAM 1.0f
#define W_BIGRAM  0.6f
#define W_TRIGRAM 0.25f

/* Feature kinds are hashed into disjoint namespaces by seeding the hash differently. */
enum { KIND_UNIGRAM = 1, KIND_BIGRAM = 2, KIND_TRIGRAM = 3 };

/* Words longer than this are truncated: they are URLs, hashes or base64 and their tail adds
 * nothing but cost. */
#define MAX_WORD 48

typedef struct {
    uint64_t h;
    float w;
} feature_t;

typedef struct {
    feature_t *v;
    size_t len, cap;
} features_t;

/* English function words: they occur in almost every fact, so as features they would make all
 * texts look alike. Kept sorted for bsearch. "s" and "t" come from split contractions. */
static const char *const stopwords[] = {
    "a",      "about", "after", "all",  "also",  "am",    "an",   "and",   "any",   "are",
    "as",     "at",    "be",    "been", "being", "both",  "but",  "by",    "can",   "could",
    "d",      "did",   "do",    "does", "each",  "for",   "from", "had",   "has",   "have",
    "he",     "her",   "hers",  "him",  "his",   "how",   "i",    "if",    "in",    "into",
    "is",     "it",    "its",   "just", "ll",    "m",     "me",   "more",  "my",    "no",
    "nor",    "not",   "of",    "on",   "or",    "our",   "ours", "re",    "s",     "she",
    "should", "so",    "some",  "such", "t",     "than",  "that", "the",   "their", "them",
    "then",   "there", "these", "they", "this",  "those", "to",   "too",   "up",    "us",
    "ve",     "very",  "was",   "we",   "were",  "what",  "when", "where", "which", "while",
    "who",    "whom",  "why",   "will", "with",  "would", "you",  "your",
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_stopword(const char *w)
{
    return bsearch(&w, stopwords, EG_ARRAY_SIZE(stopwords), sizeof(stopwords[0]), cmp_str) != NULL;
}

/* FNV-1a over bytes continuing from h, then the murmur3 finaliser: FNV alone leaves the low bits
 * (which pick the bucket) poorly mixed for short keys. */
static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t seed_for(int kind)
{
    return 0xcbf29ce484222325ULL ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ULL);
}

static void push(features_t *f, uint64_t h, float w)
{
    if (f->len == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->v = eg_xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->len].h = fmix64(h);
    f->v[f->len].w = w;
    f->len++;
}

static int cmp_feature(const void *a, const void *b)
{
    uint64_t x = ((const feature_t *)a)->h, y = ((const feature_t *)b)->h;
    return x < y ? -1 : x > y;
}

/* Bytes that belong to words: ASCII letters and digits, and every byte of a non-ASCII UTF-8
 * sequence, so accented and non-Latin words stay whole (they are not lowercased). */
static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

typedef struct {
    char s[MAX_WORD + 1];
    size_t len;
    bool stop;
} word_t;

static bool ends_with(const char *s, size_t n, const char *suf, size_t m)
{
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* Length of a crude English stem of w: strips -ing, -ed, -es, -s, then a final e, so
 * likes/liked/like and hikes/hiking share a unigram. Trigrams cover what this misses; it only has
 * to be consistent, not linguistically right. */
static size_t stem_len(const char *w, size_t n)
{
    if (n > 5 && ends_with(w, n, "ing", 3))
        n -= 3;
    else if (n > 4 && (ends_with(w, n, "ed", 2) || ends_with(w, n, "es", 2)))
        n -= 2;
    else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's')
        n -= 1;
    if (n > 3 && w[n - 1] == 'e')
        n -= 1;
    return n;
}

static void add_word_features(features_t *f, const word_t *w, const word_t *prev)
{
    char padded[MAX_WORD + 3];
    size_t sl = stem_len(w->s, w->len);

    /* Unigrams and bigrams use stems; trigrams use the surface form. */
    push(f, fnv1a(seed_for(KIND_UNIGRAM), w->s, sl), W_UNIGRAM);
    if (prev) {
        uint64_t h = fnv1a(seed_for(KIND_BIGRAM), prev->s, stem_len(prev->s, prev->len));
        h = fnv1a(h, " ", 1);
        push(f, fnv1a(h, w->s, sl), W_BIGRAM);
    }
    /* "^paris$" gives ^pa par ari ris is$: the markers let prefixes and suffixes count. */
    padded[0] = '^';
    memcpy(padded + 1, w->s, w->len);
    padded[w->len + 1] = '$';
    for (size_t i = 0; i + 3 <= w->len + 2; i++)
        push(f, fnv1a(seed_for(KIND_TRIGRAM), padded + i, 3), W_TRIGRAM);
}

/* Extract features of all words; content_only skips stopwords (and bigrams bridge over them). */
static void extract(features_t *f, const char *text, size_t len, bool content_only)
{
    word_t cur, prev;
    bool have_prev = false;
    size_t i = 0;

    while (i < len) {
        while (i < len && !word_byte((unsigned char)text[i]))
            i++;
        if (i >= len)
            break;
        cur.len = 0;
        while (i < len && word_byte((unsigned char)text[i])) {
            unsigned char c = (unsigned char)text[i++];
            if (cur.len < MAX_WORD)
                cur.s[cur.len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        cur.s[cur.len] = '\0';
        cur.stop = is_stopword(cur.s);
        if (content_only && cur.stop)
            continue;
        add_word_features(f, &cur, have_prev ? &prev : NULL);
        prev = cur;
        have_prev = true;
    }
}

static void embed_one(features_t *f, const char *text, size_t len, float *out, size_t dim)
{
    double norm = 0;

    memset(out, 0, dim * sizeof(*out));
    f->len = 0;
    extract(f, text, len, true);
    if (f->len == 0) /* nothing but stopwords ("who are you"): better than a zero vector */
        extract(f, text, len, false);
    if (f->len == 0)
        return;

    /* Sorting groups repeats of a feature so each gets 1 + ln(tf): a word said five times is
     * more relevant than once, but not five times more. */
    qsort(f->v, f->len, sizeof(*f->v), cmp_feature);
    for (size_t i = 0; i < f->len;) {
        size_t j = i + 1;
        while (j < f->len && f->v[j].h == f->v[i].h)
            j++;
        uint64_t h = f->v[i].h;
        float w = f->v[i].w * (1.0f + logf((float)(j - i)));
        size_t bucket = (size_t)((uint32_t)h % dim);
        out[bucket] += (h >> 63) ? -w : w;
        i = j;
    }
    for (size_t d = 0; d < dim; d++)
        norm += (double)out[d] * out[d];
    if (norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (size_t d = 0; d < dim; d++)
            out[d] *= inv;
    }
}

void eg_embed_builtin_vec(const char *text, size_t len, float *out, size_t dim)
{
    features_t f = {0};

    embed_one(&f, text, len, out, dim);
    free(f.v);
}

static int builtin_embed(eg_embedder_t *e, const char *const *texts, size_t n, float *out,
                         eg_embed_cb cb, void *udata)
{
    features_t f = {0};

    if (!texts && n)
        return EG_EINVAL;
    /* One scratch array for the whole batch: retain embeds many facts at once. */
    for (size_t i = 0; i < n; i++)
        embed_one(&f, texts[i], texts[i] ? strlen(texts[i]) : 0, out + i * e->dim, e->dim);
    free(f.v);
    if (cb)
        cb(e, 0, udata);
    return 0;
}

static void builtin_destroy(eg_embedder_t *e)
{
    free(e);
}

bool eg_embed_is_builtin(const eg_embedder_t *e)
{
    return e != NULL && e->embed == builtin_embed;
}

eg_embedder_t *eg_embed_builtin_new(size_t dim)
{
    eg_embedder_t *e = eg_xcalloc(1, sizeof(*e));

    e->name = "builtin-hash-v1";
    e->dim = dim ? dim : EG_EMBED_DEFAULT_DIM;
    e->embed = builtin_embed;
    e->destroy = builtin_destroy;
    return e;
}

int eg_embed_run(eg_embedder_t *e, const char *const *texts, size_t n, float *out, eg_embed_cb cb,
                 void *udata)
{
    if (!e || !out)
        return EG_EINVAL;
    return e->embed(e, texts, n, out, cb, udata);
}

void eg_embed_destroy(eg_embedder_t *e)
{
    if (e && e->destroy)
        e->destroy(e);
}
