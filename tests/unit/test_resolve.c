/* Entity resolution: Python's SequenceMatcher.ratio() and str.lower(), pg_trgm similarity, the
 * name dictionary, Hindsight's score and the batch decisions. Reference ratios were computed with
 * CPython 3's difflib. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engram/arena.h"
#include "engram/resolve.h"
#include "engram/util.h"

static eg_arena_t arena;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(resolve, .init = setup, .fini = teardown);

#define US_DAY (INT64_C(86400) * 1000000)
#define NONE   INT64_MIN

static double ratio(const char *a, const char *b)
{
    return eg_resolve_seq_ratio(a, strlen(a), b, strlen(b));
}

static char *rep(const char *s, size_t times)
{
    size_t n = strlen(s);
    char *out = eg_arena_alloc(&arena, n * times + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * n, s, n);
    out[n * times] = '\0';
    return out;
}

Test(resolve, sequence_matcher_matches_python)
{
    cr_assert_float_eq(ratio("alice", "alicia"), 0.7272727272727273, 1e-12);
    cr_assert_float_eq(ratio("abcd", "bcde"), 0.75, 1e-12);
    cr_assert_float_eq(ratio("bob smith", "robert smith"), 0.7619047619047619, 1e-12);
    cr_assert_float_eq(ratio("google", "google inc"), 0.75, 1e-12);
    cr_assert_float_eq(ratio("new york city", "new york"), 0.7619047619047619, 1e-12);
    cr_assert_float_eq(ratio("jon", "john"), 0.8571428571428571, 1e-12);
    cr_assert_float_eq(ratio("microsoft", "microsfot"), 0.8888888888888888, 1e-12);
    cr_assert_float_eq(ratio("", "abc"), 0.0, 1e-12);
    cr_assert_float_eq(ratio("", ""), 1.0, 1e-12);
    /* Code points, not bytes: "é" is one element. */
    cr_assert_float_eq(ratio("josé", "jose"), 0.75, 1e-12);
    cr_assert_float_eq(ratio("straße", "strasse"), 0.7692307692307693, 1e-12);
}

Test(resolve, sequence_matcher_is_asymmetric_like_python)
{
    /* The difflib documentation's example: the longest match is searched in a, seeded from b. */
    cr_assert_float_eq(ratio("tide", "diet"), 0.25, 1e-12);
    cr_assert_float_eq(ratio("diet", "tide"), 0.5, 1e-12);
}

Test(resolve, sequence_matcher_autojunk)
{
    /* With 200+ elements in b, elements occurring over 1% + 1 times cannot seed a match. */
    cr_assert_float_eq(ratio(rep("ab", 150), rep("ba", 150)), 0.0, 1e-12);
    char *x = eg_arena_printf(&arena, "%s%s", rep("x", 100), rep("y", 100));
    char *y = eg_arena_printf(&arena, "%s%s", rep("y", 100), rep("x", 100));
    cr_assert_float_eq(ratio(x, y), 0.0, 1e-12);
    char *p = eg_arena_printf(&arena, "%sb", rep("a", 199));
    char *q = eg_arena_printf(&arena, "b%s", rep("a", 199));
    cr_assert_float_eq(ratio(p, q), 0.005, 1e-12);
    /* A popular element still extends a match seeded elsewhere, and equal strings are 1.0. */
    cr_assert_float_eq(ratio(rep("a", 200), rep("a", 200)), 1.0, 1e-12);
    /* Below 200 there is no autojunk: 199 'a's match whole. */
    cr_assert_float_eq(ratio(rep("a", 199), rep("a", 199)), 1.0, 1e-12);
}

Test(resolve, lower_like_python)
{
    cr_assert_str_eq(eg_resolve_lower(&arena, "Alice O'NEIL"), "alice o'neil");
    cr_assert_str_eq(eg_resolve_lower(&arena, "ŸÀÉÎ"), "ÿàéî");
    /* Final sigma, and İ lowering to i + combining dot above (two code points). */
    cr_assert_str_eq(eg_resolve_lower(&arena, "ΟΔΟΣ ΣΑΣ"), "οδος σας");
    cr_assert_str_eq(eg_resolve_lower(&arena, "İstanbul"), "i\xCC\x87stanbul");
    cr_assert_str_eq(eg_resolve_lower(&arena, "МОСКВА Ёж"), "москва ёж");
    cr_assert_float_eq(eg_resolve_name_similarity("İstanbul", "istanbul"), 0.9411764705882353,
                       1e-12);
    cr_assert_float_eq(eg_resolve_name_similarity("ALICE", "alicia"), 0.7272727272727273, 1e-12);
}

Test(resolve, trigrams_like_pg_trgm)
{
    uint64_t *t;

    /* show_trgm('word') = {"  w"," wo","ord","rd ","wor"} */
    cr_assert_eq(eg_resolve_trigrams(&arena, "word", &t), 5);
    /* Words are runs of letters and digits; case and punctuation do not matter. */
    cr_assert_eq(eg_resolve_trigrams(&arena, "Two, WORDS!", &t), 10);
    cr_assert_eq(eg_resolve_trigrams(&arena, "a", &t), 2);
    cr_assert_eq(eg_resolve_trigrams(&arena, "--", &t), 0);
    /* similarity('word', 'two words') = 4 / (5 + 10 - 4), pg_trgm's documented 0.363636. */
    cr_assert_float_eq(eg_resolve_name_trigram_sim("word", "two words"), 4.0 / 11.0, 1e-12);
    cr_assert_float_eq(eg_resolve_name_trigram_sim("Acme Corp.", "ACME corp"), 1.0, 1e-12);
    cr_assert_float_eq(eg_resolve_name_trigram_sim("", ""), 0.0, 1e-12);
    /* Repeated trigrams count once: "aaa aaa" has the trigrams of "aaa". */
    cr_assert_float_eq(eg_resolve_name_trigram_sim("aaa aaa", "aaa"), 1.0, 1e-12);
}

Test(resolve, dictionary_search)
{
    eg_resolve_dict_t *d = eg_resolve_dict_new();
    eg_resolve_hit_t hits[8];
    static const char *names[] = {"Alice Smith",   "Alice",  "Bob",
                                  "Alicia Smythe", "Google", "Smith & Wesson"};

    for (uint32_t i = 0; i < 6; i++)
        eg_resolve_dict_add(d, 100 + i, names[i]);
    cr_assert_eq(eg_resolve_dict_size(d), 6);

    size_t n = eg_resolve_dict_search(d, "alice smith", 0.15, hits, 8);
    cr_assert_geq(n, 3);
    cr_assert_eq(hits[0].id, 100);
    cr_assert_float_eq(hits[0].sim, 1.0, 1e-12);
    for (size_t i = 0; i < n; i++) {
        cr_assert_float_eq(hits[i].sim,
                           eg_resolve_name_trigram_sim("alice smith", names[hits[i].id - 100]),
                           1e-12);
        cr_assert_geq(hits[i].sim, 0.15);
        if (i)
            cr_assert_geq(hits[i - 1].sim, hits[i].sim);
    }
    /* Nothing shared, nothing found; max bounds the answer. */
    cr_assert_eq(eg_resolve_dict_search(d, "Zyx", 0.15, hits, 8), 0);
    cr_assert_eq(eg_resolve_dict_search(d, "alice smith", 0.0, hits, 1), 1);
    /* The search's scratch space is reset between calls. */
    cr_assert_eq(eg_resolve_dict_search(d, "bob", 0.15, hits, 8), 1);
    cr_assert_eq(hits[0].id, 102);
    cr_assert_float_eq(hits[0].sim, 1.0, 1e-12);
    eg_resolve_dict_free(d);
}

Test(resolve, dictionary_grows)
{
    eg_resolve_dict_t *d = eg_resolve_dict_new();
    eg_resolve_hit_t hits[4];

    for (uint32_t i = 0; i < 5000; i++)
        eg_resolve_dict_add(d, i, eg_arena_printf(&arena, "Person %u Example", i));
    size_t n = eg_resolve_dict_search(d, "Person 4321 Example", 0.5, hits, 4);
    cr_assert_geq(n, 1);
    cr_assert_eq(hits[0].id, 4321);
    cr_assert_float_eq(hits[0].sim, 1.0, 1e-12);
    eg_resolve_dict_free(d);
}

Test(resolve, score_parts)
{
    const char *cooc[] = {"Bob", "Paris"};
    eg_resolve_cand_t c = {"e1", "Alice", NONE, cooc, 2, 0};
    const char *nearby[] = {"bob", "London", "Alice"};

    /* Name only: 0.5 * 1.0 (case does not matter). */
    cr_assert_float_eq(eg_resolve_score("ALICE", NULL, 0, NONE, &c), 0.5, 1e-12);
    /* Co-occurrence: "alice" itself is not nearby; 1 of {bob, london} shared -> 0.3 * 1/2. */
    cr_assert_float_eq(eg_resolve_score("Alice", nearby, 3, NONE, &c), 0.5 + 0.15, 1e-12);
    /* Recency: 3.5 days apart -> 0.2 * (1 - 3.5/7); 7+ days -> nothing. */
    c.last_seen = 10 * US_DAY;
    cr_assert_float_eq(eg_resolve_score("Alice", NULL, 0, 10 * US_DAY + US_DAY * 7 / 2, &c),
                       0.5 + 0.1, 1e-12);
    cr_assert_float_eq(eg_resolve_score("Alice", NULL, 0, 10 * US_DAY - US_DAY * 7 / 2, &c),
                       0.5 + 0.1, 1e-12);
    cr_assert_float_eq(eg_resolve_score("Alice", NULL, 0, 17 * US_DAY, &c), 0.5, 1e-12);
    /* All three. */
    /* ... where only the exact spelling is left out: "Alice" is nearby for "alicia", so 1 of
     * {bob, london, alice} is shared. */
    cr_assert_float_eq(eg_resolve_score("alicia", nearby, 3, 10 * US_DAY, &c),
                       0.5 * 0.7272727272727273 + 0.1 + 0.2, 1e-12);
}

/* A lookup over a fixed set of candidates through the dictionary, as retain does over the index. */
typedef struct {
    eg_resolve_cand_t *c;
    size_t n;
    eg_resolve_dict_t *d;
    int calls;
} fixture_t;

static size_t lookup(void *ctx, eg_arena_t *a, const char *name, eg_resolve_cand_t **out)
{
    fixture_t *f = ctx;
    eg_resolve_hit_t hits[EG_RESOLVE_CAND_MAX];
    size_t n =
        eg_resolve_dict_search(f->d, name, EG_RESOLVE_CAND_MIN_SIM, hits, EG_RESOLVE_CAND_MAX);

    f->calls++;
    *out = eg_arena_alloc(a, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++)
        (*out)[i] = f->c[hits[i].id];
    return n;
}

static void fixture_init(fixture_t *f, eg_resolve_cand_t *c, size_t n)
{
    f->c = c;
    f->n = n;
    f->calls = 0;
    f->d = eg_resolve_dict_new();
    for (size_t i = 0; i < n; i++)
        eg_resolve_dict_add(f->d, (uint32_t)i, c[i].name);
}

Test(resolve, batch_reuses_and_creates)
{
    const char *alice_cooc[] = {"Acme"};
    eg_resolve_cand_t cands[] = {
        {"e-alice", "Alice Johnson", 5 * US_DAY, alice_cooc, 1, 0},
        {"e-bob", "Bob", NONE, NULL, 0, 1},
    };
    fixture_t f;
    fixture_init(&f, cands, 2);

    eg_resolve_mention_t m[] = {
        /* "Alice Johnson" seen a day ago with Acme nearby: 0.5 + 0.3 + 0.2 * 6/7 -> reuse. */
        {"Alice Johnson", 0, 6 * US_DAY, true},
        {"Acme", 0, 6 * US_DAY, true},
        /* "Bob": 0.5 by name only, no co-occurrence or date: not above 0.6, but the same name
         * case-insensitively is the same entity. */
        {"bob", 1, NONE, true},
        /* "Alice J." alone, 30 days later: name 0.5*ratio, no recency -> new entity. */
        {"Alice J.", 2, 36 * US_DAY, true},
        /* Spelled like the first new one, differently cased: joins it. */
        {"ACME", 3, 7 * US_DAY, true},
        /* A close variant of a new name of the batch: merged into it (checked below). */
        {"Acme Inc", 3, 7 * US_DAY, true},
    };
    eg_resolve_out_t out[6];
    eg_resolve_new_t *news;
    size_t nnew;

    eg_resolve_batch(&arena, m, 6, lookup, NULL, &f, out, &news, &nnew);

    cr_assert_str_eq(out[0].entity_id, "e-alice");
    cr_assert_float_eq(out[0].score, 0.5 + 0.3 + 0.2 * (6.0 / 7.0), 1e-9);
    cr_assert_null(out[1].entity_id);
    cr_assert_str_eq(out[2].entity_id, "e-bob");
    cr_assert_float_eq(out[2].score, 0.5, 1e-12);
    cr_assert_null(out[3].entity_id);
    cr_assert_null(out[4].entity_id);
    cr_assert_eq(out[4].new_index, out[1].new_index);
    cr_assert_str_eq(news[out[1].new_index].name, "Acme");
    cr_assert_eq(news[out[1].new_index].mentions, 3); /* Acme, ACME, Acme Inc */
    cr_assert_eq(news[out[1].new_index].first_seen, 6 * US_DAY);
    cr_assert_eq(news[out[1].new_index].last_seen, 7 * US_DAY);
    /* trigram Jaccard("acme", "acme inc") = 5 / 9 >= 0.5: merged into "Acme". */
    cr_assert_float_eq(eg_resolve_name_trigram_sim("acme", "acme inc"), 5.0 / 9.0, 1e-12);
    cr_assert_eq(out[5].new_index, out[1].new_index);
    cr_assert_str_eq(news[out[3].new_index].name, "Alice J.");
    cr_assert_eq(nnew, 2);
    /* One lookup per distinct spelling. */
    cr_assert_eq(f.calls, 6);
    eg_resolve_dict_free(f.d);
}

Test(resolve, batch_exact_only)
{
    eg_resolve_cand_t cands[] = {{"e-1", "Project Apollo", 1 * US_DAY, NULL, 0, 0}};
    fixture_t f;
    fixture_init(&f, cands, 1);

    eg_resolve_mention_t m[] = {
        /* Without resolution, a near miss never matches, even when recent. */
        {"Project Apolo", 0, 1 * US_DAY, false},
        {"project apollo", 1, NONE, false},
        /* ... and new names only merge when spelled alike. */
        {"PROJECT APOLO", 2, NONE, false},
        {"Project Apolo!", 3, NONE, false},
    };
    eg_resolve_out_t out[4];
    eg_resolve_new_t *news;
    size_t nnew;

    eg_resolve_batch(&arena, m, 4, lookup, NULL, &f, out, &news, &nnew);
    cr_assert_null(out[0].entity_id);
    cr_assert_str_eq(out[1].entity_id, "e-1");
    cr_assert_null(out[2].entity_id);
    cr_assert_eq(out[2].new_index, out[0].new_index);
    cr_assert_null(out[3].entity_id);
    cr_assert_neq(out[3].new_index, out[0].new_index);
    cr_assert_eq(nnew, 2);
    eg_resolve_dict_free(f.d);

    /* With resolution on, the same near miss scores 0.5 * 0.963 + 0.2 = 0.68: reused. */
    fixture_init(&f, cands, 1);
    m[0].resolve = true;
    eg_resolve_batch(&arena, m, 1, lookup, NULL, &f, out, &news, &nnew);
    cr_assert_str_eq(out[0].entity_id, "e-1");
    cr_assert_eq(nnew, 0);
    eg_resolve_dict_free(f.d);
}

Test(resolve, batch_merge_bounded)
{
    /* 300 unrelated new names, where the 101st is a variant of the 11th (merged: both among the
     * first 250 new names), and a variant of the 281st at the end (past 250: exact spellings
     * only, so a new entity). */
    size_t n = 301;
    eg_resolve_mention_t *m = eg_arena_calloc(&arena, n * sizeof(*m));
    eg_resolve_out_t *out = eg_arena_alloc(&arena, n * sizeof(*out));
    eg_resolve_new_t *news;
    size_t nnew;

    for (size_t i = 0; i < 300; i++) {
        /* Two pseudo-random 6-letter words: pairwise trigram Jaccard stays under 0.17. */
        char w[14];
        uint32_t x = (uint32_t)(i * 2654435761u + 12345u);
        for (size_t k = 0, p = 0; k < 12; k++) {
            x = (x * 1103515245u + 12345u) & 0x7fffffffu;
            w[p++] = (char)('a' + (x >> 16) % 26);
            if (k == 5)
                w[p++] = ' ';
        }
        w[13] = '\0';
        m[i].name = eg_arena_strdup(&arena, w);
        m[i].fact = i;
        m[i].event = NONE;
        m[i].resolve = true;
    }
    m[100].name = eg_arena_printf(&arena, "%s.", m[10].name);
    m[300] = (eg_resolve_mention_t){eg_arena_printf(&arena, "%s.", m[280].name), 300, NONE, true};
    eg_resolve_batch(&arena, m, n, NULL, NULL, NULL, out, &news, &nnew);
    cr_assert_eq(nnew, 300);
    cr_assert_eq(out[100].new_index, out[10].new_index);
    cr_assert_eq(news[out[10].new_index].mentions, 2);
    cr_assert_neq(out[300].new_index, out[280].new_index);
}

/* ---- pruned scoring decides as full scoring ------------------------------------------------ */

static uint64_t prng = 0x853c49e6748fea9bULL;

static size_t pick(size_t n)
{
    prng ^= prng << 13;
    prng ^= prng >> 7;
    prng ^= prng << 17;
    return (size_t)(prng % n);
}

/* A name of two words from few syllables: many close spellings, as in a large bank. */
static char *syllable_name(void)
{
    static const char *syl[] = {"ka", "ro", "mi", "tan", "el", "sor", "vi", "len"};
    char buf[64];
    size_t n = 0;
    for (int w = 0; w < 2; w++) {
        for (size_t k = 0, m = 2 + pick(2); k < m; k++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", syl[pick(8)]);
        if (w == 0)
            buf[n++] = ' ';
    }
    buf[n] = '\0';
    buf[0] = (char)(buf[0] - 32); /* capitalised, so lowercasing matters */
    return eg_arena_strdup(&arena, buf);
}

/* The overlap callback computed from the candidates' own cooc fields. */
static size_t overlap_from_fields(void *ctx, const eg_resolve_cand_t *c, const char *const *near,
                                  size_t nn)
{
    size_t hits = 0;
    (void)ctx;
    for (size_t j = 0; j < nn; j++)
        for (size_t k = 0; k < c->ncooc; k++)
            if (eg_resolve_lower_eq(c->cooc[k], near[j])) {
                hits++;
                break;
            }
    return hits;
}

static size_t lookup_counting(void *ctx, eg_arena_t *a, const char *name, eg_resolve_cand_t **out)
{
    return lookup(ctx, a, name, out);
}

/* The reference: every candidate scored with eg_resolve_score, the first best above 0.6, else
 * the same name case-insensitively, else new. */
static const char *reference(fixture_t *f, const eg_resolve_mention_t *m, size_t n, size_t i)
{
    eg_resolve_cand_t *c;
    size_t nc = lookup(f, &arena, m[i].name, &c), best = SIZE_MAX;
    const char **near = eg_arena_alloc(&arena, (n + 1) * sizeof(*near));
    size_t nn = 0;
    double best_score = 0.0;
    char *low = eg_resolve_lower(&arena, m[i].name);

    for (size_t k = 0; k < n; k++)
        if (k != i && m[k].fact == m[i].fact)
            near[nn++] = m[k].name;
    if (!m[i].resolve) {
        for (size_t k = 0; k < nc; k++)
            if (strcmp(eg_resolve_lower(&arena, c[k].name), low) == 0)
                return c[k].id;
        return NULL;
    }
    for (size_t k = 0; k < nc; k++) {
        double s = eg_resolve_score(m[i].name, near, nn, m[i].event, &c[k]);
        if (s > best_score) {
            best_score = s;
            best = k;
        }
    }
    if (best != SIZE_MAX && best_score > EG_RESOLVE_THRESHOLD)
        return c[best].id;
    for (size_t k = 0; k < nc; k++)
        if (strcmp(eg_resolve_lower(&arena, c[k].name), low) == 0)
            return c[k].id;
    return NULL;
}

Test(resolve, pruned_scoring_decides_as_full_scoring)
{
    size_t ncand = 600, nm = 400, reused = 0;
    eg_resolve_cand_t *cands = eg_arena_calloc(&arena, ncand * sizeof(*cands));
    eg_resolve_mention_t *m = eg_arena_calloc(&arena, nm * sizeof(*m));
    eg_resolve_out_t *out = eg_arena_alloc(&arena, nm * sizeof(*out));
    eg_resolve_out_t *out2 = eg_arena_alloc(&arena, nm * sizeof(*out2));
    char **pool = eg_arena_alloc(&arena, 40 * sizeof(*pool));
    eg_resolve_new_t *news;
    size_t nnew;
    fixture_t f;

    for (size_t i = 0; i < 40; i++)
        pool[i] = syllable_name();
    for (size_t i = 0; i < ncand; i++) {
        const char **cooc = eg_arena_alloc(&arena, 4 * sizeof(*cooc));
        size_t nco = pick(4);
        for (size_t k = 0; k < nco; k++)
            cooc[k] = pool[pick(40)];
        /* Canonical names unique case-insensitively, as in a bank. */
        char *name;
        bool dup;
        do {
            name = syllable_name();
            dup = false;
            for (size_t k = 0; k < i && !dup; k++)
                dup = strcasecmp(cands[k].name, name) == 0;
        } while (dup);
        cands[i] = (eg_resolve_cand_t){eg_arena_printf(&arena, "e-%zu", i),
                                       name,
                                       pick(3) ? (int64_t)pick(40) * US_DAY : NONE,
                                       cooc,
                                       nco,
                                       (uint32_t)i};
    }
    fixture_init(&f, cands, ncand);
    for (size_t i = 0; i < nm; i++) {
        /* Existing names (in other cases), near misses and new ones; facts of 1 to 3 names. */
        const char *name = pick(3) == 0   ? pool[pick(40)]
                           : pick(2) == 0 ? eg_resolve_lower(&arena, cands[pick(ncand)].name)
                                          : syllable_name();
        m[i] = (eg_resolve_mention_t){name, i / 2 - pick(2) * (i % 2),
                                      pick(4) ? (int64_t)pick(40) * US_DAY : NONE, pick(8) != 0};
    }
    eg_resolve_batch(&arena, m, nm, lookup_counting, NULL, &f, out, &news, &nnew);
    eg_resolve_batch(&arena, m, nm, lookup_counting, overlap_from_fields, &f, out2, &news, &nnew);
    for (size_t i = 0; i < nm; i++) {
        const char *want = reference(&f, m, nm, i);
        if (want == NULL) {
            cr_assert_null(out[i].entity_id, "mention %zu (%s)", i, m[i].name);
            cr_assert_null(out2[i].entity_id);
            continue;
        }
        reused++;
        cr_assert_not_null(out[i].entity_id, "mention %zu (%s) wants %s", i, m[i].name, want);
        cr_assert_str_eq(out[i].entity_id, want, "mention %zu (%s)", i, m[i].name);
        cr_assert_str_eq(out2[i].entity_id, want);
        cr_assert_float_eq(out[i].score, out2[i].score, 1e-15);
    }
    /* The set exercises both outcomes. */
    cr_assert_gt(reused, nm / 10);
    cr_assert_lt(reused, nm * 9 / 10);
    eg_resolve_dict_free(f.d);
}
