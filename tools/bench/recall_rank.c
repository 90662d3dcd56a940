/* tools/bench/recall_rank: in-process recall latency (eg_recall_rank over a detached bank index).
 *
 * Builds N synthetic personal-assistant facts from a fixed-seed generator (people, places,
 * activities, dates over two years, a few tags), stores them in an index the way retain does
 * (builtin embeddings, recognised entities, dates resolved against the item time; no semantic
 * links), then times eg_recall_rank for generated questions at budget mid with the default request
 * (all types, entities on, graph and temporal arms on; every fourth question names a month so the
 * temporal arm runs). No Redis: this is recall's own cost, the floor under its HTTP latency.
 *
 *   build-release/tools/bench/bench_recall_rank [facts (100000)] [queries (1000)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/mindex.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"

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

int main(int argc, char **argv)
{
    size_t nfacts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
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
    size_t kept = 0, fused = 0, entity_n = 0;
    char **ent_ids = NULL, **ent_names = NULL;
    eg_arena_t a;
    char buf[256], idbuf[37];

    eg_arena_init(&a);
    printf("bench_recall_rank: %zu facts, %zu queries, builtin embedding (%zu dims), budget mid\n",
           nfacts, nq, dim);
    t = eg_mono_ns();
    for (size_t i = 0; i < nfacts; i++) {
        eg_text_entity_t *ents;
        eg_text_date_t d;
        const char *eids[16], *tagv[1];
        size_t ne, n_eids = 0;
        int64_t at = t0 + (int64_t)((double)span * (double)i / (double)nfacts);

        gen_fact(buf, sizeof(buf));
        ne = eg_text_entities(&a, buf, strlen(buf), &ents);
        for (size_t j = 0; j < ne && n_eids < 16; j++) {
            size_t k;
            for (k = 0; k < entity_n && strcmp(ent_names[k], ents[j].text); k++)
                ;
            if (k == entity_n) {
                eg_mem_entity_t e = {.canonical_name = ents[j].text,
                                     .mention_count = 1,
                                     .first_seen = at,
                                     .last_seen = at};
                ent_ids = eg_xrealloc(ent_ids, (entity_n + 1) * sizeof(char *));
                ent_names = eg_xrealloc(ent_names, (entity_n + 1) * sizeof(char *));
                eg_uuid_v4(idbuf);
                ent_ids[entity_n] = eg_xstrdup(idbuf);
                ent_names[entity_n] = eg_xstrdup(ents[j].text);
                e.id = ent_ids[entity_n++];
                eg_mindex_put_entity(ix, &e);
            }
            eids[n_eids++] = ent_ids[k];
        }
        tagv[0] = tags[rnd() % EG_ARRAY_SIZE(tags)];
        eg_uuid_v4(idbuf);
        eg_mem_unit_t u = {.id = idbuf,
                           .text = buf,
                           .context = "",
                           .type = i % 10 == 0 ? EG_FACT_EXPERIENCE : EG_FACT_WORLD,
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
           nfacts / (load_ns / 1e9), entity_n, (double)eg_mindex_bytes(ix) / (double)nfacts);

    for (size_t q = 0; q < nq; q++) {
        eg_recall_req_t req;
        eg_recall_ranked_t r;

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

    for (size_t i = 0; i < entity_n; i++) {
        free(ent_ids[i]);
        free(ent_names[i]);
    }
    free(ent_ids);
    free(ent_names);
    free(vec);
    free(hits);
    free(t_all);
    free(t_base);
    eg_arena_destroy(&a);
    eg_mindex_free(ix);
    return 0;
}
