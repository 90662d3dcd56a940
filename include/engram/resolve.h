/* Entity resolution: decide, for each entity name a retain batch mentions, whether it is an entity
 * the bank already has or a new one, with Hindsight's scoring:
 *
 *   candidates  existing entities whose name has trigram similarity >= 0.15 with the mention
 *               (pg_trgm's measure), at most 200, most similar first;
 *   score       0.5 * name similarity (Python difflib.SequenceMatcher(None, a, b).ratio() of the
 *                     lowercased names)
 *             + 0.3 * co-occurrence (the share of the other names in the same fact that the
 *                     candidate has appeared with before)
 *             + 0.2 * recency max(0, 1 - days between the fact's time and the candidate's
 *                     last_seen / 7);
 *   decision    the best candidate when its score > 0.6 (the first one on ties); else a
 *               candidate with the same name case-insensitively (names are unique that way in a
 *               bank: Hindsight's insert of the "new" entity hits that row); else a new entity.
 *
 * New names of one batch merge with each other: case-insensitively equal names always, and names
 * whose trigram sets have Jaccard similarity >= 0.5 (only among the first 250 new names, to bound
 * the quadratic cost). A mention with resolve = false (the item's resolve_entities: false) only
 * matches an existing entity or another new name of the same case-insensitive spelling.
 *
 * Everything here is pure computation over what the caller supplies (the bank index feeds the
 * candidates), so it runs and is tested without Redis. Names are UTF-8; lowercasing follows
 * Python's str.lower() for Latin, Greek and Cyrillic. */
#ifndef ENGRAM_RESOLVE_H
#define ENGRAM_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"

#define EG_RESOLVE_CAND_MIN_SIM 0.15 /* trigram similarity of a candidate */
#define EG_RESOLVE_CAND_MAX     200  /* candidates per name */
#define EG_RESOLVE_THRESHOLD    0.6  /* reuse an entity when the best score is above this */
#define EG_RESOLVE_MERGE_SIM    0.5  /* within-batch merge: trigram Jaccard */
#define EG_RESOLVE_MERGE_MAX    250  /* new names considered for the within-batch merge */
#define EG_RESOLVE_W_NAME       0.5
#define EG_RESOLVE_W_COOC       0.3
#define EG_RESOLVE_W_TIME       0.2
#define EG_RESOLVE_RECENCY_DAYS 7.0
#define EG_RESOLVE_NAME_MAX_CP  1000 /* longer names are compared by their first 1000 */

/* ---- measures ------------------------------------------------------------------------------- */

/* Python's difflib.SequenceMatcher(None, a, b).ratio() over the code points of a and b as given
 * (autojunk included: when b has 200 or more code points, those occurring more than 1% + 1 times
 * are not used to seed matches). 2 * matches / (len a + len b); 1.0 when both are empty. */
double eg_resolve_seq_ratio(const char *a, size_t alen, const char *b, size_t blen);

/* The same on str.lower() of both: the name similarity of the score. */
double eg_resolve_name_similarity(const char *a, const char *b);

/* Lowercase s as Python's str.lower() does (Latin-1, Latin Extended-A, Greek, Cyrillic; other
 * code points unchanged), in the arena. */
char *eg_resolve_lower(eg_arena_t *a, const char *s);

/* eg_resolve_lower(s) equals low (without allocating when s is ASCII). */
bool eg_resolve_lower_eq(const char *s, const char *low);

/* Trigrams of a name as pg_trgm makes them: lowercased words (runs of letters and digits), each
 * padded with two spaces in front and one behind, every 3 consecutive code points; distinct,
 * sorted. A trigram is 3 code points packed 21 bits each. Returns the count, *out in the arena. */
size_t eg_resolve_trigrams(eg_arena_t *a, const char *s, uint64_t **out);

/* pg_trgm similarity of two trigram sets: shared / (na + nb - shared); 0 when both are empty. */
double eg_resolve_trigram_sim(const uint64_t *ta, size_t na, const uint64_t *tb, size_t nb);

/* The same from two names. */
double eg_resolve_name_trigram_sim(const char *a, const char *b);

/* ---- a dictionary of entity names for candidate search --------------------------------------- */

typedef struct eg_resolve_dict_s eg_resolve_dict_t;

eg_resolve_dict_t *eg_resolve_dict_new(void);
void eg_resolve_dict_free(eg_resolve_dict_t *d);

/* Add a name under the caller's number for it (e.g. the index's entity number; numbers are
 * expected to be dense: per-number arrays cover the largest one). A number already present is
 * left as it is (remove it first to rename). */
void eg_resolve_dict_add(eg_resolve_dict_t *d, uint32_t id, const char *name);

/* Remove number id, which was added with name (the same text: its trigrams are recomputed to find
 * its entries). Absent numbers are ignored. Costs the length of the name's posting lists. */
void eg_resolve_dict_remove(eg_resolve_dict_t *d, uint32_t id, const char *name);

/* Names in the dictionary; whether a number is present; heap bytes held. */
size_t eg_resolve_dict_size(const eg_resolve_dict_t *d);
bool eg_resolve_dict_has(const eg_resolve_dict_t *d, uint32_t id);
size_t eg_resolve_dict_bytes(const eg_resolve_dict_t *d);

typedef struct eg_resolve_hit_s {
    uint32_t id;
    double sim; /* trigram similarity */
} eg_resolve_hit_t;

/* Up to max names with trigram similarity >= min_sim to name, most similar first (then by id).
 * Returns the count written to out. Uses scratch space inside d, so one search at a time. */
size_t eg_resolve_dict_search(eg_resolve_dict_t *d, const char *name, double min_sim,
                              eg_resolve_hit_t *out, size_t max);

/* ---- scoring and the batch ------------------------------------------------------------------ */

/* An existing entity offered as a candidate. */
typedef struct eg_resolve_cand_s {
    const char *id;
    const char *name;  /* canonical name */
    int64_t last_seen; /* µs, or INT64_MIN when unknown */
    /* Names of the entities it has appeared with in earlier facts (any case). Hindsight compares
     * names here, not ids: the other mentions of a fact are not resolved yet. eg_resolve_batch
     * with an overlap callback ignores these and asks the callback instead. */
    const char *const *cooc;
    size_t ncooc;
    uint32_t ref; /* the lookup's own number for the candidate (for the overlap callback) */
} eg_resolve_cand_t;

/* The score of candidate c for a mention of name, whose fact also mentions nearby[0..nnearby)
 * (names other than this one) and happened at event (µs, INT64_MIN = unknown). */
double eg_resolve_score(const char *name, const char *const *nearby, size_t nnearby, int64_t event,
                        const eg_resolve_cand_t *c);

/* Candidates for a name: the caller's lookup (trigram similarity >= EG_RESOLVE_CAND_MIN_SIM, at
 * most EG_RESOLVE_CAND_MAX, most similar first), allocated in a. Returns the count. */
typedef size_t (*eg_resolve_lookup_fn)(void *ctx, eg_arena_t *a, const char *name,
                                       eg_resolve_cand_t **out);

/* How many of nearby_low[0..n) (lowercased, unique names) are among the names candidate c has
 * appeared with — what its cooc field would give, compared lowercased (eg_resolve_lower_eq). */
typedef size_t (*eg_resolve_overlap_fn)(void *ctx, const eg_resolve_cand_t *c,
                                        const char *const *nearby_low, size_t n);

/* One entity mention of a batch. */
typedef struct eg_resolve_mention_s {
    const char *name; /* as written */
    size_t fact;      /* the fact mentioning it (mentions of one fact are "nearby" each other) */
    int64_t event;    /* the fact's time: occurred_start, else mentioned_at; INT64_MIN = none */
    bool resolve;     /* false: case-insensitive exact match only */
} eg_resolve_mention_t;

/* A new entity the batch creates. */
typedef struct eg_resolve_new_s {
    const char *name; /* canonical name: its first spelling in the batch */
    size_t mentions;
    int64_t first_seen, last_seen; /* over its mentions' events; INT64_MIN when none had one */
} eg_resolve_new_t;

/* Where one mention went. */
typedef struct eg_resolve_out_s {
    const char *entity_id; /* an existing entity, or NULL: new entity news[new_index] */
    size_t new_index;
    double score; /* the chosen candidate's score; 0 for a new entity */
} eg_resolve_out_t;

/* Resolve n mentions (out[n] filled); new entities go to *news (in a, *nnew of them). lookup is
 * called once per distinct spelling; overlap (NULL: the candidates' cooc fields are used) only
 * for a candidate whose score could still decide the mention: candidates are bounded first by the
 * cheap parts of the score (recency, and an upper bound of the name ratio: difflib's
 * quick_ratio) and skipped when they cannot beat the best so far or the threshold. The
 * decisions are those of scoring every candidate. */
void eg_resolve_batch(eg_arena_t *a, const eg_resolve_mention_t *m, size_t n,
                      eg_resolve_lookup_fn lookup, eg_resolve_overlap_fn overlap, void *ctx,
                      eg_resolve_out_t *out, eg_resolve_new_t **news, size_t *nnew);

#endif
