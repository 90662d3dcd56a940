/* tools/bench/recall_rank: in-process recall latency (eg_recall_rank over a detached bank index).
 *
 * Builds N synthetic personal-assistant facts from a fixed-seed generator (people, places,
 * activities, dates over two years, a few tags), stores them in an index the way retain does
 * (builtin embeddings, recognised entities, dates resolved against the item time; no semantic
 * links), then times eg_recall_rank for generated questions at budget mid with the default request
 * (all types, entities on, graph and temporal arms on; every fourth question names a month so the
 * temporal arm runs). No Redis: this is recall's own cost, the floor under its HTTP latency.
 *
 * It also compares the semantic arm's sketch-screened top 300 (eg_vindex_search with .screen)
 * with the exact scan for the same queries: the overlap of the two lists, how many exact hits
 * above the 0.3 floor the screen missed, the slots it scored and the time of each.
 *
 * With "http" as third argument the facts and questions are those of tools/bench/recall.mjs
 * (the HTTP benchmark's corpus, same generator and seed: "Mara Velkan reviewed the kasorel
 * budget in Lisbon on 2023-05-04.", "What did Mara Velkan review in Lisbon? (kasorel)").
 *
 *   build-release/tools/bench/bench_recall_rank [facts (100000)] [queries (1000)] [assistant|http]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/mindex.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/vindex_int.h"

static uint64_t rng_state = 0x6a09e667f3bcc908ULL;

static uint64_t rnd(void)
{
    /* splitmix64: fixed seed, so every run builds the same bank. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *pick(const char *const *v, size_t n)
{
    /* Skewed: the first entries are much more frequent, as in real memories. */
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    return v[(size_t)(u * u * (double)n)];
}

#define PICK(v) pick(v, EG_ARRAY_SIZE(v))

static const char *const people[] = {
    "Priya", "Jordan", "Sofia",  "Daniel", "Kevin", "Sarah",  "Arjun", "Ben",    "Nisha", "Tomás",
    "Helen", "Lisa",   "Raj",    "Anjali", "Leo",   "Marcus", "Elena", "Omar",   "Grace", "Hiro",
    "Amara", "Felix",  "Ingrid", "Jonas",  "Keiko", "Lucas",  "Mateo", "Noor",   "Olga",  "Pavel",
    "Quinn", "Rosa",   "Sven",   "Tariq",  "Uma",   "Victor", "Wen",   "Ximena", "Yusuf", "Zara"};
static const char *const places[] = {"Lisbon",    "Seattle",   "Portland", "Kyoto",  "Austin",
                                     "Pune",      "Amsterdam", "Berlin",   "Denver", "Chicago",
                                     "Toronto",   "Oaxaca",    "Nairobi",  "Oslo",   "Melbourne",
                                     "Reykjavik", "Boston",    "Madrid",   "Hanoi",  "Lima"};
static const char *const doing[] = {"had dinner with",
                                    "went hiking with",
                                    "called",
                                    "played tennis with",
                                    "visited",
                                    "helped",
                                    "borrowed a book from",
                                    "cooked paella for",
                                    "argued about politics with",
                                    "went to a concert with",
                                    "planned a trip with",
                                    "watched a movie with",
                                    "went climbing with",
                                    "lent money to",
                                    "bought a gift for",
                                    "started a podcast with",
                                    "ran a half marathon with",
                                    "studied Portuguese with"};
static const char *const things[] = {
    "a new espresso machine", "concert tickets",  "a road bike",     "a sourdough starter",
    "a rescue dog",           "a used Subaru",    "a standing desk", "noise cancelling headphones",
    "a pottery class",        "a cooking course", "a camping stove", "a vintage camera"};
static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};
static const char *const tags[] = {"user:maya", "work", "family", "travel"};

static void gen_fact(char *out, size_t cap)
{
    switch (rnd() % 4) {
    case 0:
        snprintf(out, cap, "Maya %s %s in %s.", PICK(doing), PICK(people), PICK(places));
        break;
    case 1:
        snprintf(out, cap, "%s recommended %s to Maya.", PICK(people), PICK(things));
        break;
    case 2:
        snprintf(out, cap, "Maya bought %s in %s %d.", PICK(things), PICK(months),
                 2023 + (int)(rnd() % 2));
        break;
    default:
        snprintf(out, cap, "%s moved to %s and works as a nurse near %s.", PICK(people),
                 PICK(places), PICK(places));
    }
}

static void gen_query(char *out, size_t cap, size_t i)
{
    if (i % 4 == 3)
        snprintf(out, cap, "What did Maya buy in %s 2024?", PICK(months));
    else if (i % 4 == 2)
        snprintf(out, cap, "Who recommended %s?", PICK(things));
    else if (i % 4 == 1)
        snprintf(out, cap, "Where does %s live now?", PICK(people));
    else
        snprintf(out, cap, "When did Maya go out with %s in %s?", PICK(people), PICK(places));
}

/* ---- the corpus of tools/bench/recall.mjs (xorshift32, the same sequence as its rnd()) ---- */

static uint32_t js_seed = 0x2545f491u;

static double js_rnd(void)
{
    js_seed ^= js_seed << 13;
    js_seed ^= js_seed >> 17;
    js_seed ^= js_seed << 5;
    return (double)js_seed / 4294967296.0;
}

#define JS_PICK(v) (v)[(size_t)(js_rnd() * (double)EG_ARRAY_SIZE(v))]

static const char *const js_syll[] = {"ka",  "ro", "mi", "tan", "el",  "sor", "vi",  "len",
                                      "dra", "pe", "lu", "ni",  "gar", "to",  "bel", "sha"};
static const char *const js_cities[] = {"Lisbon",  "Berlin",  "Nairobi", "Osaka", "Lima",
                                        "Toronto", "Oslo",    "Hanoi",   "Quito", "Perth",
                                        "Dublin",  "Seville", "Krakow",  "Tunis", "Austin",
                                        "Denver",  "Porto",   "Bergen",  "Cusco", "Zagreb"};
static const char *const js_actions[][3] = {
    {"reviewed the", "budget", "What did {p} review in {c}?"},
    {"presented the", "roadmap", "What did {p} present in {c}?"},
    {"fixed a bug in the", "service", "Which service did {p} fix in {c}?"},
    {"signed the", "contract", "What contract did {p} sign in {c}?"},
    {"hired a designer for the", "project", "Who did {p} hire in {c}?"},
    {"moved the", "servers", "Where did {p} move the {w} servers?"},
    {"cancelled the", "launch", "Why was the {w} launch cancelled by {p}?"},
    {"bought a bike for the", "team", "What did {p} buy in {c}?"},
};
static char js_first[400][8], js_last[400][12];

static void js_word(char *out, size_t n, bool cap)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        strcat(out, JS_PICK(js_syll));
    if (cap)
        out[0] = (char)(out[0] - 'a' + 'A');
}

static void js_init(void)
{
    for (size_t i = 0; i < 400; i++)
        js_word(js_first[i], 2, true);
    for (size_t i = 0; i < 400; i++)
        js_word(js_last[i], 3, true);
}

/* Fact i of recall.mjs (called in order) and its question. */
static void js_fact(char *text, size_t cap, char *q, size_t qcap)
{
    char p[24], w[12], out[160];
    const char *f = js_first[(size_t)(js_rnd() * 400)], *l = js_last[(size_t)(js_rnd() * 400)];
    const char *c = JS_PICK(js_cities);
    const char *const *a = js_actions[(size_t)(js_rnd() * 8)];
    int y, m, d;
    size_t o = 0;

    snprintf(p, sizeof(p), "%s %s", f, l);
    js_word(w, 3, false);
    y = 2020 + (int)(js_rnd() * 5);
    m = 1 + (int)(js_rnd() * 12);
    d = 1 + (int)(js_rnd() * 28);
    snprintf(text, cap, "%s %s %s %s in %s on %d-%02d-%02d.", p, a[0], w, a[1], c, y, m, d);
    /* JS String.replace with a string pattern replaces the first occurrence only. */
    for (const char *t = a[2]; *t && o + 24 < sizeof(out);) {
        const char *sub = t[0] == '{' && t[2] == '}' ? (t[1] == 'p'   ? p
                                                        : t[1] == 'c' ? c
                                                        : t[1] == 'w' ? w
                                                                      : NULL)
                                                     : NULL;
        if (sub) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", sub);
            t += 3;
        } else {
            out[o++] = *t++;
        }
    }
    out[o] = 0;
    snprintf(q, qcap, "%s (%s)", out, w);
}

/* Entity ids by name: open addressing, grown at half load. */
typedef struct {
    char **names, **ids;
    size_t cap, n;
} ent_map_t;

static size_t ent_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static char **ent_find(ent_map_t *m, const char *name)
{
    size_t i = ent_hash(name) & (m->cap - 1);

    while (m->names[i] && strcmp(m->names[i], name))
        i = (i + 1) & (m->cap - 1);
    return &m->names[i];
}

/* The id of name's entity, and whether it is new. */
static const char *ent_id(ent_map_t *m, const char *name, bool *added)
{
    char **slot;

    if (2 * (m->n + 1) > m->cap) {
        ent_map_t g = {eg_xcalloc(m->cap ? 2 * m->cap : 1024, sizeof(char *)),
                       eg_xcalloc(m->cap ? 2 * m->cap : 1024, sizeof(char *)),
                       m->cap ? 2 * m->cap : 1024, m->n};
        for (size_t i = 0; i < m->cap; i++)
            if (m->names[i]) {
                char **to = ent_find(&g, m->names[i]);
                *to = m->names[i];
                g.ids[to - g.names] = m->ids[i];
            }
        free(m->names);
        free(m->ids);
        *m = g;
    }
    slot = ent_find(m, name);
    *added = !*slot;
    if (!*slot) {
        char idbuf[37];
        eg_uuid_v4(idbuf);
        *slot = eg_xstrdup(name);
        m->ids[slot - m->names] = eg_xstrdup(idbuf);
        m->n++;
    }
    return m->ids[slot - m->names];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("  %-34s p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms\n", what, ns[n / 2] / 1e6,
           ns[n * 99 / 100] / 1e6, ns[n - 1] / 1e6);
}

/* The whole ranking with the semantic arm screened against exact: how many of the kept results
 * are the same, whether the top 5 is the same, and (recall.mjs corpus) how often the fact a
 * question is about is in the top 5 either way. */
static void screen_recall(eg_mindex_t *ix, bool http, char **questions, size_t nfacts, size_t nq,
                          int64_t now, const eg__vscreen_params_t *p)
{
    eg__vscreen_params_t off = EG__VSCREEN_DEFAULTS, on = EG__VSCREEN_DEFAULTS;
    size_t same = 0, total = 0, top5_same = 0, hit_ex = 0, hit_sc = 0;
    eg_arena_t a;
    char buf[256];

    off.min_cands = SIZE_MAX;
    if (p)
        on = *p;
    eg_arena_init(&a);
    for (size_t q = 0; q < nq; q++) {
        eg_recall_req_t req;
        eg_recall_ranked_t ex, sc;
        uint32_t want = (uint32_t)((q * 7919) % nfacts);
        bool eq5 = true;

        if (http)
            snprintf(buf, sizeof(buf), "%s", questions[want]);
        else
            gen_query(buf, sizeof(buf), q);
        eg_recall_req_init(&req);
        req.query = buf;
        req.query_len = strlen(buf);
        req.query_timestamp = now;
        eg__vindex_screen_set(&off);
        if (eg_recall_rank(&a, ix, &req, now, &ex) != 0)
            break;
        eg__vindex_screen_set(&on);
        if (eg_recall_rank(&a, ix, &req, now, &sc) != 0)
            break;
        for (size_t i = 0; i < ex.n; i++) {
            bool in = false;
            for (size_t j = 0; j < sc.n && !in; j++)
                in = sc.results[j].slot == ex.results[i].slot;
            same += in;
        }
        total += ex.n > sc.n ? ex.n : sc.n;
        for (size_t i = 0; i < 5; i++)
            if (i < ex.n || i < sc.n)
                eq5 = eq5 && i < ex.n && i < sc.n && ex.results[i].slot == sc.results[i].slot;
        top5_same += eq5;
        /* Facts are stored in order from slot 0, so fact i is in slot i. */
        for (size_t i = 0; http && i < 5; i++) {
            hit_ex += i < ex.n && ex.results[i].slot == want;
            hit_sc += i < sc.n && sc.results[i].slot == want;
        }
        eg_arena_reset(&a);
    }
    eg__vindex_screen_set(NULL);
    printf("whole recall (budget mid, 4096 tokens), screened vs exact semantic arm over %zu "
           "queries:\n  results in common %.4f, same top 5 (in order) %.3f",
           nq, total ? (double)same / (double)total : 1.0, (double)top5_same / (double)nq);
    if (http)
        printf(", asked fact in the top 5: exact %.3f, screened %.3f", (double)hit_ex / (double)nq,
               (double)hit_sc / (double)nq);
    printf("\n");
    eg_arena_destroy(&a);
}

/* The semantic arm's list, screened against exact, for the same queries over all units. */
static void screen_quality(eg_mindex_t *ix, bool http, char **questions, size_t nfacts, size_t nq)
{
    const size_t dim = EG_EMBED_DEFAULT_DIM, K = EG_RECALL_DEPTH_MID, SEEDS = EG_RECALL_GRAPH_SEEDS;
    eg_vindex_t *vi = eg_mindex_vectors(ix);
    eg_hit_t *ex = eg_xmalloc(K * sizeof(*ex)), *sc = eg_xmalloc(K * sizeof(*sc));
    uint64_t *t_ex = eg_xmalloc(nq * sizeof(uint64_t)), *t_sc = eg_xmalloc(nq * sizeof(uint64_t));
    float *vec = eg_xmalloc(dim * sizeof(float));
    size_t same = 0, total = 0, seed_same = 0, seed_total = 0, missed_floor = 0, short_q = 0;
    size_t exact_hits = 0, scored = 0, extended = 0, refused = 0, nscreened = 0, worst_q = 0;
    double worst = 1.0;
    char buf[256];

    if (!eg_vindex_sketched(vi))
        eg_vindex_sketch_enable(vi);
    for (size_t q = 0; q < nq; q++) {
        eg_vsearch_t o = EG_VSEARCH_INIT(K);
        eg__vscreen_stats_t st = {0};
        size_t ne, ns, common = 0, scommon = 0, t;

        if (http)
            snprintf(buf, sizeof(buf), "%s", questions[(q * 7919) % nfacts]);
        else
            gen_query(buf, sizeof(buf), q);
        eg_embed_builtin_vec(buf, strlen(buf), vec, dim);
        o.min_score = EG_RECALL_SEMANTIC_MIN;
        t = eg_mono_ns();
        ne = eg_vindex_search(vi, vec, &o, ex);
        t_ex[q] = eg_mono_ns() - t;
        o.screen = true;
        t = eg_mono_ns();
        ns = eg_vindex_search(vi, vec, &o, sc);
        t_sc[q] = eg_mono_ns() - t;
        eg__vindex_screen_last(&st);
        if (st.allowed) {
            nscreened++;
            scored += st.scored;
            extended += st.extended;
            refused += st.ext_refused != 0;
        }
        /* Screened scores are exact, so a hit of the exact list is in the screened one iff its
         * slot is; count the exact hits (all above the floor) the screen did not find. */
        for (size_t i = 0; i < ne; i++) {
            bool in = false;
            for (size_t j = 0; j < ns && !in; j++)
                in = sc[j].slot == ex[i].slot;
            common += in;
            if (i < SEEDS)
                scommon += in;
        }
        exact_hits += ne;
        missed_floor += ne - common;
        short_q += ns < ne;
        same += common;
        total += ne;
        seed_same += scommon;
        seed_total += ne < SEEDS ? ne : SEEDS;
        if (ne && (double)common / (double)ne < worst) {
            worst = (double)common / (double)ne;
            worst_q = q;
        }
    }
    printf("semantic arm, top %zu at cosine >= %.1f over all %zu units, screened vs exact (%zu "
           "queries, %zu screened):\n",
           K, (double)EG_RECALL_SEMANTIC_MIN, eg_vindex_count(vi), nq, nscreened);
    report("exact int8 scan", t_ex, nq);
    report("sketch screen + exact rescore", t_sc, nq);
    printf("  overlap top-%zu %.4f (worst query %zu: %.3f), top-%zu (graph seeds) %.4f\n", K,
           total ? (double)same / (double)total : 1.0, worst_q, worst, SEEDS,
           seed_total ? (double)seed_same / (double)seed_total : 1.0);
    printf("  exact hits above the floor %.1f per query; missed by the screen %zu in all (%.4f%%), "
           "queries with fewer hits %zu\n",
           (double)exact_hits / (double)nq, missed_floor,
           exact_hits ? 100.0 * (double)missed_floor / (double)exact_hits : 0.0, short_q);
    printf("  scored exactly %.0f per screened query (widened %.0f; widening refused in %zu)\n",
           nscreened ? (double)scored / (double)nscreened : 0.0,
           nscreened ? (double)extended / (double)nscreened : 0.0, refused);
    free(ex);
    free(sc);
    free(t_ex);
    free(t_sc);
    free(vec);
}

int main(int argc, char **argv)
{
    size_t nfacts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    bool http = argc > 3 && !strcmp(argv[3], "http");
    const size_t dim = EG_EMBED_DEFAULT_DIM;
    const int64_t t0 = INT64_C(1672531200) * EG_TEXT_US_PER_SEC; /* 2023-01-01 */
    const int64_t span = 2 * 365 * EG_TEXT_US_PER_DAY;
    eg_mindex_t *ix = eg_mindex_new(dim);
    float *vec = eg_xmalloc(dim * sizeof(float));
    uint64_t *t_all = eg_xmalloc(nq * sizeof(uint64_t)),
             *t_base = eg_xmalloc(nq * sizeof(uint64_t));
    uint64_t t, load_ns;
    eg_hit_t *hits = eg_xmalloc(EG_RECALL_DEPTH_MID * sizeof(eg_hit_t));
    double arm_ms[EG_RECALL_NARMS] = {0}, filter_ms = 0, rest_ms = 0;
    size_t kept = 0, fused = 0;
    ent_map_t ents_map = {0};
    char **questions = NULL;
    eg_arena_t a;
    char buf[256], qbuf[256], idbuf[37];

    eg_arena_init(&a);
    printf("bench_recall_rank: %zu facts, %zu queries, builtin embedding (%zu dims), budget mid, "
           "%s corpus\n",
           nfacts, nq, dim, http ? "recall.mjs" : "assistant");
    if (http) {
        js_init();
        questions = eg_xcalloc(nfacts, sizeof(char *));
    }
    t = eg_mono_ns();
    for (size_t i = 0; i < nfacts; i++) {
        eg_text_entity_t *ents;
        eg_text_date_t d;
        const char *eids[16], *tagv[1];
        size_t ne, n_eids = 0;
        int64_t at = t0 + (int64_t)((double)span * (double)i / (double)nfacts);

        if (http) {
            js_fact(buf, sizeof(buf), qbuf, sizeof(qbuf));
            questions[i] = eg_xstrdup(qbuf);
        } else {
            gen_fact(buf, sizeof(buf));
        }
        ne = eg_text_entities(&a, buf, strlen(buf), &ents);
        for (size_t j = 0; j < ne && n_eids < 16; j++) {
            bool added;
            const char *id = ent_id(&ents_map, ents[j].text, &added);
            if (added) {
                eg_mem_entity_t e = {.id = id,
                                     .canonical_name = ents[j].text,
                                     .mention_count = 1,
                                     .first_seen = at,
                                     .last_seen = at};
                eg_mindex_put_entity(ix, &e);
            }
            eids[n_eids++] = id;
        }
        tagv[0] = tags[rnd() % EG_ARRAY_SIZE(tags)];
        eg_uuid_v4(idbuf);
        eg_mem_unit_t u = {.id = idbuf,
                           .text = buf,
                           .context = "",
                           .type = !http && i % 10 == 0 ? EG_FACT_EXPERIENCE : EG_FACT_WORLD,
                           .occurred_start = EG_MEM_TIME_NONE,
                           .occurred_end = EG_MEM_TIME_NONE,
                           .mentioned_at = at,
                           .created_at = at,
                           .updated_at = at,
                           .tags = tagv,
                           .ntags = 1,
                           .entity_ids = eids,
                           .nentities = n_eids,
                           .invalidated_at = EG_MEM_TIME_NONE,
                           .edited_at = EG_MEM_TIME_NONE,
                           .proof_count = 1};
        if (eg_text_find_date(buf, strlen(buf), 0, at, &d)) {
            u.occurred_start = d.start_us;
            u.occurred_end = d.end_us;
        }
        eg_embed_builtin_vec(buf, strlen(buf), vec, dim);
        if (eg_mindex_put_unit(ix, &u, vec, NULL, 0) != 0) {
            fprintf(stderr, "put_unit failed at %zu\n", i);
            return 1;
        }
        eg_arena_reset(&a);
    }
    load_ns = eg_mono_ns() - t;
    printf("  loaded in %.1f s (%.0f facts/s), %zu entities, index %.0f B/fact\n", load_ns / 1e9,
           nfacts / (load_ns / 1e9), ents_map.n, (double)eg_mindex_bytes(ix) / (double)nfacts);

    for (size_t q = 0; q < nq; q++) {
        eg_recall_req_t req;
        eg_recall_ranked_t r;

        if (http)
            snprintf(buf, sizeof(buf), "%s", questions[(q * 7919) % nfacts]);
        else
            gen_query(buf, sizeof(buf), q);
        eg_recall_req_init(&req);
        req.query = buf;
        req.query_len = strlen(buf);
        req.query_timestamp = t0 + span;
        t = eg_mono_ns();
        if (eg_recall_rank(&a, ix, &req, t0 + span, &r) != 0) {
            fprintf(stderr, "recall failed\n");
            return 1;
        }
        t_all[q] = eg_mono_ns() - t;
        /* The baseline in the same conditions: embedding the query and one int8 vector scan for
         * the semantic arm's top 300 over every unit (what recall does at least once). */
        t = eg_mono_ns();
        eg_embed_builtin_vec(buf, strlen(buf), vec, dim);
        eg_vsearch_t vs = EG_VSEARCH_INIT(EG_RECALL_DEPTH_MID);
        vs.min_score = EG_RECALL_SEMANTIC_MIN;
        eg_vindex_search(eg_mindex_vectors(ix), vec, &vs, hits);
        t_base[q] = eg_mono_ns() - t;
        for (int k = 0; k < EG_RECALL_NARMS; k++)
            arm_ms[k] += r.stats.arm_ms[k];
        filter_ms += r.stats.filter_ms;
        rest_ms += r.stats.fuse_ms + r.stats.score_ms;
        kept += r.n;
        fused += r.stats.fused;
        eg_arena_reset(&a);
    }
    printf("recall (eg_recall_rank, no Redis) over %zu queries:\n", nq);
    report("total", t_all, nq);
    report("baseline: embed + one int8 scan", t_base, nq);
    printf("  mean per stage: filters %.3f ms, semantic %.3f, keyword %.3f, graph %.3f, temporal "
           "%.3f, fuse+score+fill %.3f ms\n",
           filter_ms / nq, arm_ms[0] / nq, arm_ms[1] / nq, arm_ms[2] / nq, arm_ms[3] / nq,
           rest_ms / nq);
    printf("  mean candidates %.0f, results kept %.0f\n", (double)fused / nq, (double)kept / nq);

    screen_quality(ix, http, questions, nfacts, nq);
    screen_recall(ix, http, questions, nfacts, nq, t0 + span, NULL);
    /* ENGRAM_BENCH_SCREEN="mult floor ext_z ext_max; ...": the comparison again with other
     * screen settings (to choose the defaults). */
    for (const char *e = getenv("ENGRAM_BENCH_SCREEN"); e && *e;) {
        eg__vscreen_params_t p = EG__VSCREEN_DEFAULTS;
        int used = 0;
        if (sscanf(e, " %zu %zu %lf %zu%n", &p.mult, &p.floor_cands, &p.ext_z, &p.ext_max, &used) !=
            4)
            break;
        printf("screen: mult %zu, floor %zu, widen z %.1f up to %zu\n", p.mult, p.floor_cands,
               p.ext_z, p.ext_max);
        eg__vindex_screen_set(&p);
        screen_quality(ix, http, questions, nfacts, nq);
        screen_recall(ix, http, questions, nfacts, nq, t0 + span, &p);
        e += used;
        while (*e == ';' || *e == ' ')
            e++;
    }
    eg__vindex_screen_set(NULL);
    for (size_t i = 0; i < ents_map.cap; i++) {
        free(ents_map.names[i]);
        free(ents_map.ids[i]);
    }
    free(ents_map.names);
    free(ents_map.ids);
    for (size_t i = 0; http && i < nfacts; i++)
        free(questions[i]);
    free(questions);
    free(vec);
    free(hits);
    free(t_all);
    free(t_base);
    eg_arena_destroy(&a);
    eg_mindex_free(ix);
    return 0;
}
