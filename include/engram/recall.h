/* Recall: the memory engine's retrieval, usable by every face (no HTTP in here).
 *
 * A recall runs entirely over the bank's in-memory index (engram/mindex.h): four arms — semantic
 * (cosine >= 0.3), keyword (BM25 over text + context), graph (spreading from 20 semantic seeds
 * through shared entities, semantic and causal links) and temporal (units dated in the query's
 * window, spreading over temporal and causal links) — run per requested fact type, are fused with
 * reciprocal rank fusion (k = 60, cut to 300 candidates), scored (rank score x recency x temporal
 * proximity x proof boosts, as Hindsight scores without a cross-encoder), filtered by min_scores,
 * cut to 2 x budget and filled greedily up to max_tokens. Only then are the records of the kept
 * results (and their chunks) fetched from Redis (engram/mstore.h), in one round trip.
 *
 * The file is split by concept: recall_request.c (request defaults, parsing of the enums, tag
 * filters, the temporal window), recall_rank.c (fusion, final scores, token fills), recall_graph.c
 * (the graph and temporal arms over an abstract adjacency), recall.c (the whole ranking over an
 * index) and recall_fetch.c (the asynchronous entry point, which fetches the records). Times are
 * int64 microseconds since the epoch, UTC, or EG_MEM_TIME_NONE. Not thread-safe: everything runs on
 * the loop thread. */
#ifndef ENGRAM_RECALL_H
#define ENGRAM_RECALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/topk.h"

/* ---- constants (Hindsight's, ../shared/faces/hindsight.md section 6) ------------------------ */

#define EG_RECALL_DEPTH_LOW           100 /* budget low: results per arm per fact type */
#define EG_RECALL_DEPTH_MID           300
#define EG_RECALL_DEPTH_HIGH          1000
#define EG_RECALL_MAX_TOKENS          4096 /* default max_tokens */
#define EG_RECALL_ENTITY_TOKENS       500  /* default include.entities.max_tokens */
#define EG_RECALL_CHUNK_TOKENS        8192 /* default include.chunks.max_tokens */
#define EG_RECALL_SOURCE_FACT_TOKENS  4096 /* default include.source_facts.max_tokens */
#define EG_RECALL_QUERY_TOKENS_MAX    500  /* a longer query is refused */
#define EG_RECALL_SEMANTIC_MIN        0.3f /* cosine floor of the semantic arm and graph seeds */
#define EG_RECALL_RRF_K               60.0
#define EG_RECALL_CANDIDATES          300 /* fused candidates kept for scoring */
#define EG_RECALL_GRAPH_SEEDS         20
#define EG_RECALL_GRAPH_ENTITY_UNITS  200  /* units looked at per shared entity */
#define EG_RECALL_TEMPORAL_HITS       60   /* ANN hits in the window */
#define EG_RECALL_TEMPORAL_MIN        0.1f /* their cosine floor, and the neighbours' */
#define EG_RECALL_TEMPORAL_ENTRIES    10
#define EG_RECALL_TEMPORAL_BUCKETS    8
#define EG_RECALL_TEMPORAL_NEIGHBOURS 10 /* links followed per node */
#define EG_RECALL_TEMPORAL_ITERATIONS 5
#define EG_RECALL_TEMPORAL_LINK_MIN   0.1f                           /* link weight floor */
#define EG_RECALL_TEMPORAL_WINDOW_US  (INT64_C(24) * 3600 * 1000000) /* temporal link window */
#define EG_RECALL_RECENCY_DAYS        365.0
#define EG_RECALL_RECENCY_FLOOR       0.1

/* ---- the request ------------------------------------------------------------------------------
 */

typedef enum {
    EG_RECALL_BUDGET_LOW = 0,
    EG_RECALL_BUDGET_MID,
    EG_RECALL_BUDGET_HIGH
} eg_recall_budget_t;

/* How a tag list is matched against a unit's tags. any / all include untagged units, the strict
 * forms exclude them, exact wants the unit's tag set equal to the list (an empty list selecting
 * exactly the untagged units). */
typedef enum {
    EG_TAGS_ANY = 0,
    EG_TAGS_ALL,
    EG_TAGS_ANY_STRICT,
    EG_TAGS_ALL_STRICT,
    EG_TAGS_EXACT,
} eg_tags_match_t;

typedef enum {
    EG_TAG_GROUP_LEAF = 0, /* tags + match (default match of a leaf: any_strict) */
    EG_TAG_GROUP_AND,      /* every child (none: true) */
    EG_TAG_GROUP_OR,       /* at least one child (none: false) */
    EG_TAG_GROUP_NOT,      /* not its one child */
} eg_tag_group_kind_t;

/* One node of a tag_groups expression (Hindsight's TagGroupLeaf / And / Or / Not). */
typedef struct eg_tag_group_s {
    eg_tag_group_kind_t kind;
    eg_tags_match_t match;                 /* leaf */
    const char *const *tags;               /* leaf */
    size_t ntags;                          /* leaf */
    const struct eg_tag_group_s *children; /* and / or: nchildren; not: exactly 1 */
    size_t nchildren;
} eg_tag_group_t;

/* The face-independent recall request. Strings and arrays are the caller's; eg_recall copies
 * what it keeps. */
typedef struct eg_recall_req_s {
    const char *query;
    size_t query_len;
    unsigned types; /* bit (1u << eg_fact_type_t); 0 matches nothing ("opinion" alone) */
    eg_recall_budget_t budget;
    size_t max_tokens;
    int64_t query_timestamp; /* anchors relative dates and recency; NONE = now */
    const char *const *tags;
    size_t ntags;
    eg_tags_match_t tags_match;
    const eg_tag_group_t *tag_groups; /* the list is AND-ed (with tags too) */
    size_t ntag_groups;
    /* Score floors, NAN = none (Hindsight's min_scores). semantic replaces the semantic arm's
     * cosine floor and keyword sets the keyword arm's BM25 floor (retrieval-level, they prune
     * before fusion); reranker (the rank score) and final filter the scored results. */
    float min_semantic, min_keyword, min_reranker, min_final;
    bool has_window; /* temporal_window given: it replaces the dates parsed from the query */
    int64_t window_start, window_end;
    bool entities; /* include.entities (default on) */
    size_t entities_max_tokens;
    bool chunks; /* include.chunks (default off) */
    size_t chunks_max_tokens;
    /* include.source_facts (default off): the source facts of the observation results. A
     * per-observation budget >= 0 gives each observation that many tokens of its own and the
     * total is then unused; otherwise they share the total; negative = unlimited (defaults
     * 4096 total, -1 per observation). */
    bool source_facts;
    int64_t source_facts_max_tokens;
    int64_t source_facts_max_tokens_per_observation;
    bool trace;
    /* prefer_observations: a fact that is a source of an observation among the results is
     * dropped from them (after the token fill; observations say it already). */
    bool prefer_observations;
    bool graph, temporal; /* the bank's enable_graph_retrieval / enable_temporal_retrieval */
    /* The query's embedding (query_dim floats, L2-normalised) from the bank's embedder, or NULL:
     * the builtin embedding is computed inline. A dimension other than the index's is refused. */
    const float *query_vec;
    size_t query_dim;
} eg_recall_req_t;

#define EG_RECALL_TYPES_ALL ((1u << EG_FACT_NTYPES) - 1)

/* Hindsight's defaults: every type, budget mid, max_tokens 4096, no tags, no floors, no window,
 * entities on (500 tokens), chunks off (8192 tokens when turned on), source facts off (4096
 * tokens, no per-observation cap), no trace, graph and temporal arms on. */
void eg_recall_req_init(eg_recall_req_t *r);

/* Check a request: EG_EINVAL with *why set ("query is too long", ...) or 0. The query may hold
 * at most EG_RECALL_QUERY_TOKENS_MAX estimated tokens; a window needs start <= end. */
int eg_recall_req_check(const eg_recall_req_t *r, const char **why);

/* "low" | "mid" | "high"; 0 or EG_EINVAL. */
int eg_recall_budget_parse(const char *s, eg_recall_budget_t *out);
/* Results per arm: 100 / 300 / 1000. */
size_t eg_recall_budget_depth(eg_recall_budget_t b);
/* Add the type named s to *mask: world, experience, observation; "opinion" is accepted and adds
 * nothing (Hindsight 0.9.1 never stores it). 0 or EG_EINVAL. */
int eg_recall_type_add(const char *s, unsigned *mask);
/* "any" | "all" | "any_strict" | "all_strict" | "exact"; 0 or EG_EINVAL. */
int eg_tags_match_parse(const char *s, eg_tags_match_t *out);
const char *eg_tags_match_name(eg_tags_match_t m);

/* ---- tag filters ------------------------------------------------------------------------------
 */

/* A request's tags and tag_groups compiled against one bank's interned tags. */
typedef struct eg_tagfilter_s eg_tagfilter_t;

/* Interned id of tag in the bank, or EG_MINDEX_NONE when no unit carries it. */
typedef uint32_t (*eg_tag_lookup_fn)(void *udata, const char *tag);

/* Compile tags/tags_match and the tag_groups (AND-ed) into a filter in the arena. *out is NULL
 * when nothing filters (no tags in a non-exact mode, no groups): every unit passes. */
void eg_tagfilter_compile(eg_arena_t *a, const char *const *tags, size_t ntags,
                          eg_tags_match_t match, const eg_tag_group_t *groups, size_t ngroups,
                          eg_tag_lookup_fn lookup, void *udata, eg_tagfilter_t **out);

/* True when a unit with these interned tag ids (ascending, no duplicates: the index's order)
 * passes f. A NULL filter passes everything. */
bool eg_tagfilter_match(const eg_tagfilter_t *f, const uint32_t *tags, size_t n);

/* ---- the temporal window ----------------------------------------------------------------------
 */

/* The window of the temporal arm: the request's temporal_window, else the first date phrase of
 * the query (eg_text_find_date) resolved against query_timestamp, or now_us when that is NONE.
 * Returns false when there is none (the arm does not run). */
bool eg_recall_window(const eg_recall_req_t *r, int64_t now_us, int64_t *start, int64_t *end);

/* ---- fusion and scoring -----------------------------------------------------------------------
 */

typedef enum {
    EG_RECALL_ARM_SEMANTIC = 0,
    EG_RECALL_ARM_KEYWORD,
    EG_RECALL_ARM_GRAPH,
    EG_RECALL_ARM_TEMPORAL,
    EG_RECALL_NARMS
} eg_recall_arm_t;

/* "semantic" | "keyword" | "graph" | "temporal". */
const char *eg_recall_arm_name(eg_recall_arm_t arm);

/* A fused candidate and, once scored, its scores. NAN marks "not surfaced by that arm". */
typedef struct eg_recall_cand_s {
    uint32_t slot;
    uint32_t rank[EG_RECALL_NARMS]; /* 1-based rank in each arm's list, 0 = absent */
    float arm[EG_RECALL_NARMS];     /* that arm's score (cosine, BM25, activation, temporal) */
    float rrf;                      /* sum of 1 / (60 + rank), ties at their mean rank */
    /* Filled by the caller before eg_recall_score (eg_recall_fuse sets the defaults): */
    int64_t when;    /* the unit's date for recency (occurred_start, else mentioned_at, else
                      * occurred_end), NONE = unknown */
    float proximity; /* temporal proximity from the temporal arm, NAN = none (0.5) */
    int proof_count; /* 0 or 1 for facts (neutral) */
    /* Set by eg_recall_score: */
    float rank_score; /* 1 - 0.9 rank / (n - 1) over the RRF order (ties: mean rank) */
    float recency;    /* 0.1 .. 1, 0.5 when undated */
    float final;
} eg_recall_cand_t;

/* One arm's ranked list, best first (duplicates after the first occurrence are ignored).
 * proximity: optional, aligned with hits (the temporal arm's per-unit temporal proximity). */
typedef struct eg_recall_list_s {
    const eg_hit_t *hits;
    size_t n;
    const float *proximity;
} eg_recall_list_t;

/* Reciprocal rank fusion of the arms' lists (k = 60): every slot of any list becomes one
 * candidate with its per-arm rank and score, and scores sum 1 / (60 + rank) over the arms. Hits
 * of equal score in one list share the mean of their positions (fractional ranking: 1, 2.5, 2.5,
 * 4), so the order an arm happens to list its ties in does not count; rank[] records the first
 * position of the tie (1, 2, 2, 4). Candidates are ordered by RRF score descending
 * (ties: better best rank, then lower slot) and cut to max (EG_RECALL_CANDIDATES). Returns the
 * count, *out in the arena. */
size_t eg_recall_fuse(eg_arena_t *a, const eg_recall_list_t lists[EG_RECALL_NARMS], size_t max,
                      eg_recall_cand_t **out);

/* Recency of a unit dated when, seen from now: linear decay over 365 days to a floor of 0.1
 * (1 for today or the future), 0.5 when when is NONE. */
double eg_recall_recency(int64_t when, int64_t now);

/* Final scores of fused candidates c[0..n) (in RRF order): rank_score = 1 - 0.9 rank / (n - 1)
 * (1 for a single candidate), where candidates of equal RRF score share the mean of their
 * 0-based positions as rank; final = rank_score x (1 + 0.2 (recency - 0.5)) x (1 + 0.2
 * (temporal - 0.5)) x (1 + 0.1 (proof - 0.5)) with temporal = proximity or 0.5 and proof =
 * clamp(0.5 + ln(proof_count) / 10) (0.5 below 1). Then sorts c by final descending (ties keep
 * the RRF order). */
void eg_recall_score(eg_recall_cand_t *c, size_t n, int64_t now);

/* Drop the candidates under the request's reranker / final floors (NAN: none), keeping order;
 * returns the new count. */
size_t eg_recall_min_scores(eg_recall_cand_t *c, size_t n, float min_reranker, float min_final);

/* Token fill: how many of the first n items (token counts tokens[i]) fit max_tokens when added in
 * order, stopping at the first that does not fit (Hindsight's rule: nothing after it is tried).
 * *used (optional) gets the tokens of the kept ones. */
size_t eg_recall_fill(const uint32_t *tokens, size_t n, size_t max_tokens, size_t *used);

/* The chunk fill: chunks in rank order with token counts tokens[i] share budget; whole chunks
 * while they fit, then the first that does not is cut to the remaining tokens (keep[i] set to
 * that count and *truncated_at = i) and nothing follows. Returns how many chunks are included
 * (the cut one counted); keep[i] is tokens[i] for whole ones. *truncated_at = SIZE_MAX when none
 * was cut. A cut to 0 tokens drops the chunk instead. */
size_t eg_recall_fill_chunks(const uint32_t *tokens, size_t n, size_t budget, uint32_t *keep,
                             size_t *truncated_at);

/* The source-fact fill (Hindsight's select_source_facts_within_budget). Observations o in rank
 * order list their sources as indexes srcs[o][0 .. nsrcs[o]) into the distinct source facts
 * 0 .. nfacts; tokens[f] is a fact's estimated tokens, or UINT32_MAX when it did not resolve
 * (deleted, invalidated: skipped, not a cut). With
 * per_obs >= 0 each observation spends its own per_obs tokens on its sources (a fact two
 * observations share counts in each) and total is unused; otherwise every fact is considered once,
 * at its first mention, against the shared total (negative: unlimited). A fact that does not fit
 * is skipped and the fill goes on. Sets keep[f] for the facts kept (false for the rest); returns
 * true when a resolvable fact was left out (truncated). */
bool eg_recall_fill_sources(const uint32_t *tokens, size_t nfacts, const uint32_t *const *srcs,
                            const size_t *nsrcs, size_t nobs, int64_t total, int64_t per_obs,
                            bool *keep);

/* The longest prefix of text (len bytes), ending at a word boundary, whose estimated token count
 * (eg_text_estimate_tokens) is at most max_tokens; returns its length in bytes (trailing
 * whitespace excluded). */
size_t eg_recall_cut_tokens(const char *text, size_t len, size_t max_tokens);

/* ---- the graph and temporal arms over an abstract adjacency ---------------------------------- */

/* What the arms need to know about the bank, as callbacks (the index supplies them; unit tests
 * supply small arrays). Pointers returned stay valid until the arm returns. */
typedef struct eg_recall_graph_s {
    void *udata;
    /* True when slot is a live unit that passes the request's filters (type, state, tags). */
    bool (*allowed)(void *udata, uint32_t slot);
    /* The entities a unit mentions; the units an entity is mentioned by (the index lists them by
     * ascending slot). */
    size_t (*unit_entities)(void *udata, uint32_t slot, const uint32_t **out);
    size_t (*entity_units)(void *udata, uint32_t entity, const uint32_t **out);
    /* A unit's stored (semantic and causal) links, both directions. */
    size_t (*links)(void *udata, uint32_t slot, const eg_mindex_link_t **out);
    /* Temporal neighbours (type EG_LINK_TEMPORAL, weight set), at most max into out. */
    size_t (*time_near)(void *udata, uint32_t slot, size_t max, eg_mindex_link_t *out);
    /* The unit's date for proximity: the middle of occurred_start..occurred_end, else either
     * one, else mentioned_at; NONE when undated. */
    int64_t (*when)(void *udata, uint32_t slot);
    /* Cosine of the unit with the query. */
    float (*similarity)(void *udata, uint32_t slot);
} eg_recall_graph_t;

/* The graph arm from seeds (the best semantic hits, <= 20 at cosine >= 0.3): every allowed unit
 * other than the seeds scores tanh(0.5 shared) over the (seed, entity) pairs it shares with
 * them (of an entity with more than 200 units, the last 200 of its list are looked at), plus the
 * weight of its strongest semantic link and of its strongest causal link to a seed. Writes the best
 * k to out (room for k), best first (ties by lower slot), and returns the count. */
size_t eg_recall_graph_arm(eg_arena_t *a, const eg_recall_graph_t *g, const eg_hit_t *seeds,
                           size_t nseeds, size_t k, eg_hit_t *out);

/* Temporal proximity of a unit dated when to the window: 1 - |when - mid| / (span / 2), floored at
 * 0 (1 for an instant window); NAN when when is NONE. */
double eg_recall_proximity(int64_t when, int64_t start, int64_t end);

/* The temporal arm. hits: up to 60 semantic hits (cosine >= 0.1) among the units dated in the
 * window, best first. Up to 10 entry points are taken from them over 8 equal time buckets of the
 * window (round robin over the buckets, best first within each); each scores its proximity and
 * carries an activation of 1. From there, breadth-first for at most 5 levels, each node follows
 * its 10 strongest temporal and causal links of weight >= 0.1 to allowed, unvisited units with
 * cosine >= 0.1; a neighbour scores max(its proximity (0.3 when undated), parent activation x
 * weight x boost x 0.7) with boost 2 for causes / caused_by, 1.5 for enables / prevents, 1
 * otherwise, and spreads further when that is above 0.2. At most k units in all. Writes them to
 * out (room for k) sorted by score (best first, ties by lower slot), their proximities (0.3 for
 * undated neighbours, 0.5 for undated entries) to prox[i], and returns the count. */
size_t eg_recall_temporal_arm(eg_arena_t *a, const eg_recall_graph_t *g, const eg_hit_t *hits,
                              size_t nhits, int64_t start, int64_t end, size_t k, eg_hit_t *out,
                              float *prox);

/* ---- recall over an index (in process) --------------------------------------------------------
 */

/* Per-arm statistics of one recall. */
typedef struct eg_recall_stats_s {
    size_t arm_hits[EG_RECALL_NARMS]; /* results of each arm (over all fact types) */
    double arm_ms[EG_RECALL_NARMS];
    double filter_ms, fuse_ms, score_ms, total_ms;
    size_t allowed;     /* units that passed the type, state and tag filters */
    size_t fused;       /* candidates after fusion and the 300 cut */
    size_t after_floor; /* after min_scores */
    size_t kept;        /* after the 2 x budget cut and the token fill */
    size_t tokens;      /* tokens of the kept results */
    bool has_window;
    int64_t window_start, window_end;
    int64_t now; /* the reference time used for recency */
} eg_recall_stats_t;

/* The ranked outcome over an index: the kept results, best first, and (req.trace only) every
 * fused candidate as scored, before the floors and the fill. */
typedef struct eg_recall_ranked_s {
    eg_recall_cand_t *results;
    size_t n;
    eg_recall_cand_t *scored; /* NULL unless req.trace */
    size_t nscored;
    eg_recall_stats_t stats;
} eg_recall_ranked_t;

/* Run the whole ranking of a recall over ix synchronously: filters, the four arms per requested
 * fact type, fusion, scoring, min_scores, the 2 x budget cut and the token fill. Nothing is read
 * from Redis; the arrays are in the arena and hold slots of ix (valid while ix is unchanged).
 * now_us: the wall clock (recency uses query_timestamp when set). 0, or EG_EINVAL for a request
 * that fails eg_recall_req_check or whose query_vec has another dimension than the index. */
int eg_recall_rank(eg_arena_t *a, eg_mindex_t *ix, const eg_recall_req_t *req, int64_t now_us,
                   eg_recall_ranked_t *out);

/* ---- recall with records (asynchronous) -------------------------------------------------------
 */

/* One recalled memory: its record and scores (RecallResult). */
typedef struct eg_recall_item_s {
    const eg_mem_unit_t *unit;       /* the stored record */
    const char *const *entity_names; /* canonical names of its entities */
    size_t nentity_names;
    float final;
    float semantic, keyword; /* NAN when that arm did not surface it */
    float rank_score;        /* the rank-derived relevance (there is no cross-encoder) */
} eg_recall_item_t;

/* An entity of the results, with the observations about it that fit the entity budget. */
typedef struct eg_recall_entity_s {
    const char *id;
    const char *canonical_name;
    const eg_mem_unit_t *const *observations; /* observation units mentioning it, newest first */
    size_t nobservations;
} eg_recall_entity_t;

/* A chunk of the results' source text (text cut when it overflowed the chunk budget). */
typedef struct eg_recall_chunk_s {
    const char *id;
    const char *text;
    size_t chunk_index;
    bool truncated;
} eg_recall_chunk_t;

/* One scored candidate for the trace. */
typedef struct eg_recall_trace_cand_s {
    const char *id;
    eg_recall_cand_t c;
} eg_recall_trace_cand_t;

typedef struct eg_recall_result_s {
    eg_recall_item_t *items; /* best first */
    size_t n;
    eg_recall_entity_t *entities; /* NULL/0 unless req.entities; order of first mention */
    size_t nentities;
    eg_recall_chunk_t *chunks; /* unless req.chunks; rank order */
    size_t nchunks;
    /* req.source_facts only (else NULL/0/false): the records of the observation results' source
     * facts that fit the budgets (eg_recall_fill_sources), in order of first mention over the
     * observations in rank order; source facts that are deleted or invalidated are left out.
     * NULL when no observation result names a source (Hindsight then answers no map at all).
     * source_facts_truncated: the budget left out at least one that exists. Each observation
     * lists all its sources in unit->source_ids either way. */
    const eg_mem_unit_t *const *source_facts;
    size_t nsource_facts;
    bool source_facts_truncated;
    /* req.trace only (else NULL/0): statistics and every scored candidate. */
    const eg_recall_stats_t *stats;
    const eg_recall_trace_cand_t *candidates;
    size_t ncandidates;
    double fetch_ms; /* the record fetch round trip */
} eg_recall_result_t;

/* err 0 with the result (valid only during the callback), or a store error. */
typedef void (*eg_recall_fn)(void *udata, int err, const eg_recall_result_t *res);

/* Recall from a bank: acquire its index, rank (eg_recall_rank), then fetch the kept results'
 * records, their entities' observations and (include.chunks) their chunks from Redis in one round
 * trip (include.source_facts: a second reads the sources that are not results). An unknown or
 * empty bank answers an empty result, not an error. Results whose record vanished in between are
 * skipped. The request is copied: the caller may free it on return. Returns 0 (cb runs exactly
 * once, later) or EG_EINVAL (bad request) / EG_EUNAVAIL. */
int eg_recall(const char *ws_id, const char *bank_id, const eg_recall_req_t *req, eg_recall_fn cb,
              void *udata);

#endif
