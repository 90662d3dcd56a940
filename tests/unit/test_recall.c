/* Recall's pure parts: request defaults and checks, tag filters, the temporal window, RRF fusion,
 * final scores, score floors and the token fills (hand-computed values). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engram/error.h"
#include "engram/recall.h"
#include "engram/text.h"

#define DAY EG_TEXT_US_PER_DAY

static int64_t iso(const char *s)
{
    int64_t us = 0;
    cr_assert_eq(eg_text_parse_iso(s, strlen(s), &us), 0, "%s", s);
    return us;
}

/* ---- request ----------------------------------------------------------------------------------
 */

Test(recall, request_defaults_and_enums)
{
    eg_recall_req_t r;
    eg_recall_budget_t b;
    eg_tags_match_t m;
    unsigned mask = 0;
    const char *why = "x";

    eg_recall_req_init(&r);
    cr_assert_eq(r.types, 7u);
    cr_assert_eq(r.budget, EG_RECALL_BUDGET_MID);
    cr_assert_eq(r.max_tokens, 4096);
    cr_assert(r.entities && r.entities_max_tokens == 500);
    cr_assert(!r.chunks && r.chunks_max_tokens == 8192);
    cr_assert(isnan(r.min_semantic) && isnan(r.min_keyword) && isnan(r.min_final));
    cr_assert(r.graph && r.temporal && !r.trace && !r.has_window);
    cr_assert_eq(r.query_timestamp, EG_MEM_TIME_NONE);
    cr_assert_eq(eg_recall_req_check(&r, &why), 0);
    cr_assert_null(why);

    cr_assert_eq(eg_recall_budget_parse("low", &b), 0);
    cr_assert_eq(eg_recall_budget_depth(b), 100);
    cr_assert_eq(eg_recall_budget_parse("mid", &b), 0);
    cr_assert_eq(eg_recall_budget_depth(b), 300);
    cr_assert_eq(eg_recall_budget_parse("high", &b), 0);
    cr_assert_eq(eg_recall_budget_depth(b), 1000);
    cr_assert_eq(eg_recall_budget_parse("HIGH", &b), EG_EINVAL);

    cr_assert_eq(eg_recall_type_add("opinion", &mask), 0);
    cr_assert_eq(mask, 0u, "opinion matches nothing");
    cr_assert_eq(eg_recall_type_add("experience", &mask), 0);
    cr_assert_eq(mask, 1u << EG_FACT_EXPERIENCE);
    cr_assert_eq(eg_recall_type_add("world", &mask), 0);
    cr_assert_eq(eg_recall_type_add("observation", &mask), 0);
    cr_assert_eq(mask, 7u);
    cr_assert_eq(eg_recall_type_add("opinions", &mask), EG_EINVAL);

    const char *names[] = {"any", "all", "any_strict", "all_strict", "exact"};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(eg_tags_match_parse(names[i], &m), 0);
        cr_assert_eq((int)m, i);
        cr_assert_str_eq(eg_tags_match_name(m), names[i]);
    }
    cr_assert_eq(eg_tags_match_parse("some", &m), EG_EINVAL);
}

Test(recall, request_checks)
{
    eg_recall_req_t r;
    const char *why = NULL;
    char q[4000];
    eg_tag_group_t leaf = {.kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ANY_STRICT};
    eg_tag_group_t two[2] = {leaf, leaf};
    eg_tag_group_t bad_not = {.kind = EG_TAG_GROUP_NOT, .children = two, .nchildren = 2};

    eg_recall_req_init(&r);
    /* 600 words of one letter-run each: ~600 estimated tokens. */
    q[0] = '\0';
    for (int i = 0; i < 600; i++)
        strcat(q, "word ");
    r.query = q;
    r.query_len = strlen(q);
    cr_assert_eq(eg_recall_req_check(&r, &why), EG_EINVAL);
    cr_assert_not_null(why);
    r.query_len = 5 * 400; /* 400 words fit */
    cr_assert_eq(eg_recall_req_check(&r, &why), 0);

    r.has_window = true;
    r.window_start = 10;
    r.window_end = 5;
    cr_assert_eq(eg_recall_req_check(&r, &why), EG_EINVAL);
    r.window_end = 10;
    cr_assert_eq(eg_recall_req_check(&r, NULL), 0);

    r.tag_groups = &bad_not;
    r.ntag_groups = 1;
    cr_assert_eq(eg_recall_req_check(&r, &why), EG_EINVAL);
    bad_not.nchildren = 1;
    cr_assert_eq(eg_recall_req_check(&r, &why), 0);
}

/* ---- tag filters ------------------------------------------------------------------------------
 */

/* The bank knows tags a = 0, b = 1, c = 2. */
static uint32_t lookup(void *ud, const char *tag)
{
    (void)ud;
    if (!strcmp(tag, "a"))
        return 0;
    if (!strcmp(tag, "b"))
        return 1;
    if (!strcmp(tag, "c"))
        return 2;
    return EG_MINDEX_NONE;
}

/* Units: untagged, {a}, {b}, {a, b}, {c}. */
static const uint32_t U_A[] = {0}, U_B[] = {1}, U_AB[] = {0, 1}, U_C[] = {2};
static const uint32_t *const UNITS[] = {NULL, U_A, U_B, U_AB, U_C};
static const size_t NUNIT[] = {0, 1, 1, 2, 1};

/* expect: one char per unit, '1' passes, '0' does not. */
static void check_filter(const eg_tagfilter_t *f, const char *expect, const char *what)
{
    for (int u = 0; u < 5; u++)
        cr_assert_eq(eg_tagfilter_match(f, UNITS[u], NUNIT[u]), expect[u] == '1',
                     "%s: unit %d should %s", what, u, expect[u] == '1' ? "pass" : "not pass");
}

static eg_tagfilter_t *compile(eg_arena_t *a, const char *const *tags, size_t n, eg_tags_match_t m,
                               const eg_tag_group_t *g, size_t ng)
{
    eg_tagfilter_t *f = (eg_tagfilter_t *)1;
    eg_tagfilter_compile(a, tags, n, m, g, ng, lookup, NULL, &f);
    return f;
}

Test(recall, tags_match_modes)
{
    eg_arena_t a;
    const char *ta[] = {"a"}, *tab[] = {"a", "b"}, *tz[] = {"zz"}, *taz[] = {"a", "zz"},
               *taa[] = {"a", "a"}, *tba[] = {"b", "a"};

    eg_arena_init(&a);
    /* No tags: nothing filters, except exact, which selects the untagged units. */
    cr_assert_null(compile(&a, NULL, 0, EG_TAGS_ANY, NULL, 0));
    cr_assert_null(compile(&a, NULL, 0, EG_TAGS_ALL_STRICT, NULL, 0));
    check_filter(NULL, "11111", "no filter");
    check_filter(compile(&a, NULL, 0, EG_TAGS_EXACT, NULL, 0), "10000", "exact []");

    /*                                                       u  a  b  ab c */
    check_filter(compile(&a, ta, 1, EG_TAGS_ANY, NULL, 0), "11010", "any [a]");
    check_filter(compile(&a, ta, 1, EG_TAGS_ANY_STRICT, NULL, 0), "01010", "any_strict [a]");
    check_filter(compile(&a, tab, 2, EG_TAGS_ANY, NULL, 0), "11110", "any [a,b]");
    check_filter(compile(&a, tab, 2, EG_TAGS_ALL, NULL, 0), "10010", "all [a,b]");
    check_filter(compile(&a, tab, 2, EG_TAGS_ALL_STRICT, NULL, 0), "00010", "all_strict [a,b]");
    check_filter(compile(&a, ta, 1, EG_TAGS_ALL, NULL, 0), "11010", "all [a]");
    check_filter(compile(&a, ta, 1, EG_TAGS_EXACT, NULL, 0), "01000", "exact [a]");
    check_filter(compile(&a, tba, 2, EG_TAGS_EXACT, NULL, 0), "00010", "exact [b,a]");
    check_filter(compile(&a, taa, 2, EG_TAGS_EXACT, NULL, 0), "01000", "exact [a,a]");

    /* A tag no unit carries: it overlaps nothing and is contained in nothing. */
    check_filter(compile(&a, tz, 1, EG_TAGS_ANY, NULL, 0), "10000", "any [zz]");
    check_filter(compile(&a, tz, 1, EG_TAGS_ANY_STRICT, NULL, 0), "00000", "any_strict [zz]");
    check_filter(compile(&a, taz, 2, EG_TAGS_ANY_STRICT, NULL, 0), "01010", "any_strict [a,zz]");
    check_filter(compile(&a, taz, 2, EG_TAGS_ALL, NULL, 0), "10000", "all [a,zz]");
    check_filter(compile(&a, taz, 2, EG_TAGS_EXACT, NULL, 0), "00000", "exact [a,zz]");
    eg_arena_destroy(&a);
}

Test(recall, tag_groups)
{
    eg_arena_t a;
    const char *ta[] = {"a"}, *tb[] = {"b"}, *tc[] = {"c"};
    /* Leaves default to any_strict. */
    eg_tag_group_t la = {
        .kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ANY_STRICT, .tags = ta, .ntags = 1};
    eg_tag_group_t lb = {
        .kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ANY_STRICT, .tags = tb, .ntags = 1};
    eg_tag_group_t lc = {
        .kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ANY_STRICT, .tags = tc, .ntags = 1};
    eg_tag_group_t or_ac[2] = {la, lc};
    eg_tag_group_t groups[2] = {
        {.kind = EG_TAG_GROUP_OR, .children = or_ac, .nchildren = 2},
        {.kind = EG_TAG_GROUP_NOT, .children = &lb, .nchildren = 1},
    };
    eg_tag_group_t and_ab[2] = {la, lb};
    eg_tag_group_t g_and = {.kind = EG_TAG_GROUP_AND, .children = and_ab, .nchildren = 2};
    eg_tag_group_t g_not_a = {.kind = EG_TAG_GROUP_NOT, .children = &la, .nchildren = 1};
    eg_tag_group_t g_empty_and = {.kind = EG_TAG_GROUP_AND};
    eg_tag_group_t g_empty_or = {.kind = EG_TAG_GROUP_OR};
    eg_tag_group_t l_empty_all = {.kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ALL_STRICT};
    eg_tag_group_t l_empty_any = {.kind = EG_TAG_GROUP_LEAF, .match = EG_TAGS_ANY};

    eg_arena_init(&a);
    /*                                                                 u  a  b  ab c */
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, groups, 2), "01001", "(a|c) & !b");
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &g_and, 1), "00010", "a & b");
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &g_not_a, 1), "10101", "!a");
    /* tags and tag_groups are AND-ed. */
    check_filter(compile(&a, ta, 1, EG_TAGS_ANY, &g_not_a, 1), "10000", "any [a] & !a");
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &g_empty_and, 1), "11111", "and []");
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &g_empty_or, 1), "00000", "or []");
    /* A leaf with no tags is matched literally (overlap with nothing, containment of nothing). */
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &l_empty_all, 1), "01111", "all_strict []");
    check_filter(compile(&a, NULL, 0, EG_TAGS_ANY, &l_empty_any, 1), "10000", "any []");
    eg_arena_destroy(&a);
}

/* ---- temporal window --------------------------------------------------------------------------
 */

Test(recall, temporal_window)
{
    eg_recall_req_t r;
    int64_t s = 0, e = 0, now = iso("2024-03-15T10:00:00Z");

    eg_recall_req_init(&r);
    r.query = "what did I eat yesterday?";
    r.query_len = strlen(r.query);
    /* Against now when there is no query_timestamp. */
    cr_assert(eg_recall_window(&r, now, &s, &e));
    cr_assert_eq(s, iso("2024-03-14"));
    cr_assert_eq(e, iso("2024-03-15") - 1);
    /* query_timestamp anchors it. */
    r.query_timestamp = iso("2023-06-01T12:00:00Z");
    cr_assert(eg_recall_window(&r, now, &s, &e));
    cr_assert_eq(s, iso("2023-05-31"));
    /* An explicit window replaces the parsing. */
    r.has_window = true;
    r.window_start = iso("2020-01-01");
    r.window_end = iso("2020-02-01");
    cr_assert(eg_recall_window(&r, now, &s, &e));
    cr_assert_eq(s, iso("2020-01-01"));
    cr_assert_eq(e, iso("2020-02-01"));
    /* No date, no window. */
    r.has_window = false;
    r.query = "where does Alice work?";
    r.query_len = strlen(r.query);
    cr_assert_not(eg_recall_window(&r, now, &s, &e));
}

/* ---- fusion and scores ------------------------------------------------------------------------
 */

Test(recall, rrf_fusion)
{
    eg_arena_t a;
    eg_hit_t sem[] = {
        {.slot = 5, .score = 0.9f}, {.slot = 3, .score = 0.8f}, {.slot = 7, .score = 0.5f}};
    eg_hit_t kw[] = {
        {.slot = 3, .score = 4.0f}, {.slot = 9, .score = 2.0f}, {.slot = 3, .score = 1.0f}};
    eg_hit_t tmp[] = {{.slot = 7, .score = 0.9f}};
    float prox[] = {0.8f};
    eg_recall_list_t lists[EG_RECALL_NARMS] = {
        [EG_RECALL_ARM_SEMANTIC] = {sem, 3, NULL},
        [EG_RECALL_ARM_KEYWORD] = {kw, 3, NULL},
        [EG_RECALL_ARM_TEMPORAL] = {tmp, 1, prox},
    };
    eg_recall_cand_t *c;
    size_t n;

    eg_arena_init(&a);
    /* 3: 1/62 + 1/61 = 0.0325221; 7: 1/63 + 1/61 = 0.0322664; 5: 1/61; 9: 1/62. The repeated 3
     * in the keyword list counts once. */
    n = eg_recall_fuse(&a, lists, EG_RECALL_CANDIDATES, &c);
    cr_assert_eq(n, 4);
    cr_assert_eq(c[0].slot, 3);
    cr_assert_float_eq(c[0].rrf, 1.0 / 62 + 1.0 / 61, 1e-7);
    cr_assert_eq(c[0].rank[EG_RECALL_ARM_SEMANTIC], 2);
    cr_assert_eq(c[0].rank[EG_RECALL_ARM_KEYWORD], 1);
    cr_assert_eq(c[0].rank[EG_RECALL_ARM_GRAPH], 0);
    cr_assert_float_eq(c[0].arm[EG_RECALL_ARM_KEYWORD], 4.0f, 1e-6);
    cr_assert(isnan(c[0].arm[EG_RECALL_ARM_GRAPH]));
    cr_assert(isnan(c[0].proximity));
    cr_assert_eq(c[1].slot, 7);
    cr_assert_float_eq(c[1].rrf, 1.0 / 63 + 1.0 / 61, 1e-7);
    cr_assert_float_eq(c[1].proximity, 0.8f, 1e-6);
    cr_assert_eq(c[1].rank[EG_RECALL_ARM_TEMPORAL], 1);
    cr_assert_eq(c[2].slot, 5);
    cr_assert_eq(c[3].slot, 9);
    cr_assert_eq(c[3].when, EG_MEM_TIME_NONE);
    cr_assert(isnan(c[3].arm[EG_RECALL_ARM_SEMANTIC]));

    /* The cut keeps the best. */
    cr_assert_eq(eg_recall_fuse(&a, lists, 2, &c), 2);
    cr_assert_eq(c[0].slot, 3);
    cr_assert_eq(c[1].slot, 7);
    /* Equal RRF scores: the better best rank first, then the lower slot. */
    eg_hit_t s2[] = {{.slot = 8, .score = 1}}, k2[] = {{.slot = 4, .score = 1}};
    eg_recall_list_t l2[EG_RECALL_NARMS] = {{s2, 1, NULL}, {k2, 1, NULL}};
    cr_assert_eq(eg_recall_fuse(&a, l2, 10, &c), 2);
    cr_assert_eq(c[0].slot, 4);
    cr_assert_eq(c[1].slot, 8);
    eg_recall_list_t none[EG_RECALL_NARMS] = {{NULL, 0, NULL}};
    cr_assert_eq(eg_recall_fuse(&a, none, 10, &c), 0);
    eg_arena_destroy(&a);
}

Test(recall, rrf_ties_share_their_mean_rank)
{
    eg_arena_t a;
    /* The graph arm lists 4 units of equal score after one better one: they share rank
     * (2 + 3 + 4 + 5) / 4 = 3.5, whatever order they come in. */
    eg_hit_t g[] = {{.slot = 1, .score = 0.9f},  {.slot = 40, .score = 0.5f},
                    {.slot = 30, .score = 0.5f}, {.slot = 20, .score = 0.5f},
                    {.slot = 10, .score = 0.5f}, {.slot = 2, .score = 0.1f}};
    eg_hit_t k[] = {{.slot = 30, .score = 2.0f}};
    eg_recall_list_t lists[EG_RECALL_NARMS] = {
        [EG_RECALL_ARM_GRAPH] = {g, 6, NULL}, [EG_RECALL_ARM_KEYWORD] = {k, 1, NULL}};
    eg_recall_cand_t *c;

    eg_arena_init(&a);
    cr_assert_eq(eg_recall_fuse(&a, lists, 100, &c), 6);
    /* 30: keyword 1/61 + graph 1/63.5; 1: 1/61; then 10, 20, 40 at 1/63.5 (by slot); 2: 1/66. */
    cr_assert_eq(c[0].slot, 30);
    cr_assert_float_eq(c[0].rrf, 1.0 / 61 + 1.0 / 63.5, 1e-7);
    cr_assert_eq(c[0].rank[EG_RECALL_ARM_GRAPH], 2);
    cr_assert_eq(c[1].slot, 1);
    cr_assert_eq(c[2].slot, 10);
    cr_assert_eq(c[3].slot, 20);
    cr_assert_eq(c[4].slot, 40);
    for (int i = 2; i < 5; i++) {
        cr_assert_float_eq(c[i].rrf, 1.0 / 63.5, 1e-7);
        cr_assert_eq(c[i].rank[EG_RECALL_ARM_GRAPH], 2);
    }
    cr_assert_eq(c[5].slot, 2);
    cr_assert_eq(c[5].rank[EG_RECALL_ARM_GRAPH], 6);
    cr_assert_float_eq(c[5].rrf, 1.0 / 66, 1e-7);

    /* Equal fused evidence, equal rank score: 10, 20, 40 are positions 2..4 of 6, mean 3:
     * 1 - 0.9 x 3 / 5 = 0.46. */
    eg_recall_score(c, 6, 0);
    cr_assert_float_eq(c[0].rank_score, 1.0f, 1e-6);
    cr_assert_float_eq(c[1].rank_score, 0.82f, 1e-6);
    for (int i = 2; i < 5; i++)
        cr_assert_float_eq(c[i].rank_score, 0.46f, 1e-6);
    cr_assert_eq(c[2].slot, 10, "ties keep the fused order");
    cr_assert_float_eq(c[5].rank_score, 0.1f, 1e-6);
    eg_arena_destroy(&a);
}

Test(recall, recency)
{
    int64_t now = iso("2024-06-01T00:00:00Z");

    cr_assert_float_eq(eg_recall_recency(now, now), 1.0, 1e-12);
    cr_assert_float_eq(eg_recall_recency(now + 5 * DAY, now), 1.0, 1e-12);
    cr_assert_float_eq(eg_recall_recency(now - DAY * 365 / 2, now), 0.5, 1e-9);
    cr_assert_float_eq(eg_recall_recency(now - 73 * DAY, now), 0.8, 1e-9);
    cr_assert_float_eq(eg_recall_recency(now - 400 * DAY, now), 0.1, 1e-12);
    cr_assert_float_eq(eg_recall_recency(EG_MEM_TIME_NONE, now), 0.5, 1e-12);
}

Test(recall, final_scores_and_floors)
{
    eg_arena_t a;
    int64_t now = iso("2024-06-01T00:00:00Z");
    eg_hit_t sem[] = {
        {.slot = 5, .score = 0.9f}, {.slot = 3, .score = 0.8f}, {.slot = 7, .score = 0.5f}};
    eg_hit_t kw[] = {{.slot = 3, .score = 4.0f}, {.slot = 9, .score = 2.0f}};
    eg_hit_t tmp[] = {{.slot = 7, .score = 0.9f}};
    float prox[] = {0.8f};
    eg_recall_list_t lists[EG_RECALL_NARMS] = {
        {sem, 3, NULL}, {kw, 2, NULL}, {NULL, 0, NULL}, {tmp, 1, prox}};
    eg_recall_cand_t *c;
    size_t n;

    eg_arena_init(&a);
    n = eg_recall_fuse(&a, lists, 300, &c); /* order 3, 7, 5, 9 */
    cr_assert_eq(n, 4);
    /* 3: proof_count e^5 -> proof 1 -> x1.05. 5: 400 days old -> recency 0.1 -> x0.92.
     * 9: dated now -> recency 1 -> x1.1. 7: proximity 0.8 -> x1.06. */
    c[0].proof_count = 148; /* ln 148 = 4.997 -> proof 0.9997 */
    c[2].when = now - 400 * DAY;
    c[3].when = now;
    eg_recall_score(c, n, now);
    cr_assert_eq(c[0].slot, 3);
    cr_assert_float_eq(c[0].rank_score, 1.0f, 1e-6);
    cr_assert_float_eq(c[0].final, 1.0 * (1 + 0.1 * (0.5 + log(148.0) / 10 - 0.5)), 1e-5);
    cr_assert_eq(c[1].slot, 7);
    cr_assert_float_eq(c[1].rank_score, 0.7f, 1e-6);
    cr_assert_float_eq(c[1].final, 0.7 * 1.06, 1e-5);
    cr_assert_eq(c[2].slot, 5);
    cr_assert_float_eq(c[2].rank_score, 0.4f, 1e-6);
    cr_assert_float_eq(c[2].recency, 0.1f, 1e-6);
    cr_assert_float_eq(c[2].final, 0.4 * 0.92, 1e-5);
    cr_assert_eq(c[3].slot, 9);
    cr_assert_float_eq(c[3].final, 0.1 * 1.1, 1e-5);

    /* Boosts reorder candidates whose rank scores are close: of 11 (rank scores 1, 0.91, 0.82,
     * ...), the third, dated today (0.82 x 1.1 = 0.902), passes the second, 400 days old
     * (0.91 x 0.92 = 0.8372). */
    eg_recall_cand_t many[11];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 11; i++) {
        many[i].slot = (uint32_t)(100 + i);
        many[i].rrf = 1.0f / (float)(61 + i);
        many[i].when = EG_MEM_TIME_NONE;
        many[i].proximity = NAN;
    }
    many[1].when = now - 400 * DAY;
    many[2].when = now;
    eg_recall_score(many, 11, now);
    cr_assert_eq(many[0].slot, 100);
    cr_assert_eq(many[1].slot, 102);
    cr_assert_float_eq(many[1].final, 0.82 * 1.1, 1e-5);
    cr_assert_eq(many[2].slot, 101);
    cr_assert_float_eq(many[2].final, 0.91 * 0.92, 1e-5);
    cr_assert_eq(many[3].slot, 103);
    cr_assert_float_eq(many[10].final, 0.1f, 1e-6);

    eg_recall_cand_t one = c[0];
    eg_recall_score(&one, 1, now);
    cr_assert_float_eq(one.rank_score, 1.0f, 1e-6);

    /* Floors: final >= 0.2 drops 9 (0.11); reranker >= 0.5 drops 5 (0.4) too. */
    cr_assert_eq(eg_recall_min_scores(c, 4, NAN, NAN), 4);
    cr_assert_eq(eg_recall_min_scores(c, 4, NAN, 0.2f), 3);
    cr_assert_eq(c[2].slot, 5);
    cr_assert_eq(eg_recall_min_scores(c, 3, 0.5f, NAN), 2);
    cr_assert_eq(c[0].slot, 3);
    cr_assert_eq(c[1].slot, 7);
    eg_arena_destroy(&a);
}

/* ---- fills ------------------------------------------------------------------------------------
 */

Test(recall, token_fill_stops_at_first_misfit)
{
    uint32_t t[] = {10, 20, 30, 5};
    size_t used = 0;

    /* 10 + 20 fit 35; 30 does not, and the 5 after it is not tried. */
    cr_assert_eq(eg_recall_fill(t, 4, 35, &used), 2);
    cr_assert_eq(used, 30);
    cr_assert_eq(eg_recall_fill(t, 4, 65, &used), 4);
    cr_assert_eq(used, 65);
    cr_assert_eq(eg_recall_fill(t, 4, 9, &used), 0);
    cr_assert_eq(used, 0);
    cr_assert_eq(eg_recall_fill(t, 0, 100, NULL), 0);
}

Test(recall, chunk_fill_cuts_the_last)
{
    uint32_t t[] = {100, 200, 300}, keep[3];
    size_t cut;

    cr_assert_eq(eg_recall_fill_chunks(t, 3, 250, keep, &cut), 2);
    cr_assert_eq(keep[0], 100);
    cr_assert_eq(keep[1], 150);
    cr_assert_eq(cut, 1);
    /* Exactly full: nothing is cut and nothing follows. */
    cr_assert_eq(eg_recall_fill_chunks(t, 3, 300, keep, &cut), 2);
    cr_assert_eq(keep[1], 200);
    cr_assert_eq(cut, SIZE_MAX);
    cr_assert_eq(eg_recall_fill_chunks(t, 3, 1000, keep, &cut), 3);
    cr_assert_eq(cut, SIZE_MAX);
    cr_assert_eq(eg_recall_fill_chunks(t, 3, 0, keep, &cut), 0);
}

/* Two observations in rank order over four distinct sources: o0 = {f0, f1, f2}, o1 = {f2, f3};
 * f1 is deleted (UINT32_MAX). */
Test(recall, source_fill_budgets)
{
    const uint32_t t[] = {10, UINT32_MAX, 30, 5};
    const uint32_t o0[] = {0, 1, 2}, o1[] = {2, 3};
    const uint32_t *const srcs[] = {o0, o1};
    const size_t ns[] = {3, 2};
    bool keep[4];

    /* Unlimited: everything that exists, nothing truncated; a deleted fact is no cut. */
    cr_assert_not(eg_recall_fill_sources(t, 4, srcs, ns, 2, -1, -1, keep));
    cr_assert(keep[0] && !keep[1] && keep[2] && keep[3]);
    /* Exactly enough for the three that exist. */
    cr_assert_not(eg_recall_fill_sources(t, 4, srcs, ns, 2, 45, -1, keep));
    cr_assert(keep[0] && keep[2] && keep[3]);
    /* Shared total 20: f2 (30) does not fit and is skipped, the fill goes on to f3. */
    cr_assert(eg_recall_fill_sources(t, 4, srcs, ns, 2, 20, -1, keep));
    cr_assert(keep[0] && !keep[2] && keep[3]);
    /* Total 0: nothing, truncated. */
    cr_assert(eg_recall_fill_sources(t, 4, srcs, ns, 2, 0, -1, keep));
    cr_assert(!keep[0] && !keep[2] && !keep[3]);
    /* Per observation 35 replaces the total (1 here): o0 keeps f0 then cannot fit f2 (10 + 30),
     * o1 has its own 35 and keeps f2 and f3, so nothing is missing in the end. */
    cr_assert_not(eg_recall_fill_sources(t, 4, srcs, ns, 2, 1, 35, keep));
    cr_assert(keep[0] && keep[2] && keep[3]);
    /* Per observation 10: f0 (o0) and f3 (o1); f2 fits neither. */
    cr_assert(eg_recall_fill_sources(t, 4, srcs, ns, 2, -1, 10, keep));
    cr_assert(keep[0] && !keep[2] && keep[3]);
    /* A fact two observations share counts in each one's budget: o1 = {f0} again at 9 each. */
    {
        const uint32_t t2[] = {9, 1};
        const uint32_t p0[] = {0, 1}, p1[] = {0};
        const uint32_t *const s2[] = {p0, p1};
        const size_t n2[] = {2, 1};

        cr_assert(eg_recall_fill_sources(t2, 2, s2, n2, 2, -1, 9, keep));
        cr_assert(keep[0] && !keep[1]);
    }
    /* No observations, no facts. */
    cr_assert_not(eg_recall_fill_sources(NULL, 0, NULL, NULL, 0, 10, -1, NULL));
}

Test(recall, cut_tokens_at_word_boundaries)
{
    const char *s = "The quick brown fox jumps over the lazy dog.";
    size_t len = strlen(s), n;

    cr_assert_eq(eg_text_estimate_tokens(s, len), 10);
    cr_assert_eq(eg_recall_cut_tokens(s, len, 10), len);
    cr_assert_eq(eg_recall_cut_tokens(s, len, 100), len);
    n = eg_recall_cut_tokens(s, len, 3);
    cr_assert_eq(n, strlen("The quick brown"), "cut at %zu", n);
    n = eg_recall_cut_tokens(s, len, 9);
    cr_assert_eq(n, strlen("The quick brown fox jumps over the lazy"), "cut at %zu", n);
    cr_assert_eq(eg_recall_cut_tokens(s, len, 0), 0);
    cr_assert_eq(eg_recall_cut_tokens("  \n", 3, 0), 0);
    /* Trailing whitespace never counts. */
    cr_assert_eq(eg_recall_cut_tokens("hello world \n\n", 14, 5), 11);

    /* A long text with many words takes the heap path. */
    char big[6000];
    big[0] = '\0';
    for (int i = 0; i < 1000; i++)
        strcat(big, "word ");
    n = eg_recall_cut_tokens(big, strlen(big), 300);
    cr_assert_eq(eg_text_estimate_tokens(big, n), 300);
    cr_assert_eq(n, 300 * 5 - 1);
}
