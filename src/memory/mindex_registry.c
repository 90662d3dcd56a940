/* Memory index: the per-process registry of loaded banks.
 *
 * Banks are found by their hash tag "<ws>/<bank>" in a chained hash table and kept on a list in
 * order of their last acquire. After every round the registry re-measures the bank that changed
 * and evicts whole banks from the cold end of the list while the total passes the cap; a bank
 * with a round running, one whose callbacks are running, and the one just served are never
 * evicted (so the total can exceed the cap by the size of the banks in use).
 *
 * A bank entry outlives its registration when it must: forgetting a bank with a round running
 * only takes it out of the table (a new acquire starts a fresh entry), and the old entry is freed
 * once its round settles and its waiters are answered. One uv_idle handle applies the slices of
 * every load in progress (mindex_load.c), about 1 ms per loop turn. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/mindex_int.h"

#define EG_MX_TICK_NS 1000000 /* slice work per loop turn */

typedef struct registry_s {
    uv_loop_t *loop;
    uv_idle_t idle;
    size_t cap;
    eg__mx_bank_t **table;
    size_t nbuckets, nbanks;
    eg__mx_bank_t *lru_head, *lru_tail;
    size_t total; /* sum of bytes of the registered banks */
} registry_t;

static registry_t *reg;

static void publish(void)
{
    eg_metrics_gauge_set("engram_index_bytes", "Bytes held by the loaded memory bank indexes.",
                         reg ? (double)reg->total : 0);
    eg_metrics_gauge_set("engram_index_banks", "Memory bank indexes loaded in this process.",
                         reg ? (double)reg->nbanks : 0);
}

/* ---- table and LRU ---------------------------------------------------------------------- */

static size_t bucket(const char *tag)
{
    return (size_t)(eg__mx_hash(tag, strlen(tag)) & (reg->nbuckets - 1));
}

static eg__mx_bank_t *find(const char *tag)
{
    eg__mx_bank_t *b;

    for (b = reg->table[bucket(tag)]; b; b = b->hnext)
        if (strcmp(b->tag, tag) == 0)
            return b;
    return NULL;
}

static void lru_unlink(eg__mx_bank_t *b)
{
    if (b->lru_prev)
        b->lru_prev->lru_next = b->lru_next;
    else if (reg->lru_head == b)
        reg->lru_head = b->lru_next;
    if (b->lru_next)
        b->lru_next->lru_prev = b->lru_prev;
    else if (reg->lru_tail == b)
        reg->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = NULL;
}

static void lru_front(eg__mx_bank_t *b)
{
    lru_unlink(b);
    b->lru_next = reg->lru_head;
    if (reg->lru_head)
        reg->lru_head->lru_prev = b;
    reg->lru_head = b;
    if (!reg->lru_tail)
        reg->lru_tail = b;
}

static void rehash(size_t nb)
{
    eg__mx_bank_t **old = reg->table;
    size_t onb = reg->nbuckets;

    reg->table = eg_xcalloc(nb, sizeof(*reg->table));
    reg->nbuckets = nb;
    for (size_t i = 0; i < onb; i++) {
        while (old[i]) {
            eg__mx_bank_t *b = old[i];
            size_t k = bucket(b->tag);
            old[i] = b->hnext;
            b->hnext = reg->table[k];
            reg->table[k] = b;
        }
    }
    free(old);
}

static eg__mx_bank_t *bank_new(const char *ws_id, const char *bank_id)
{
    static const char *const suffix[EG__MXK_N] = {"bank", "x", "u", "v", "l", "e", "es", "d"};
    eg__mx_bank_t *b = eg_xcalloc(1, sizeof(*b));
    size_t k;

    eg_arena_init(&b->arena);
    b->tag = eg_arena_printf(&b->arena, "%s/%s", ws_id, bank_id);
    for (int i = 0; i < EG__MXK_N; i++)
        b->keys[i] = eg_key(&b->arena, "b", b->tag, "%s", suffix[i]);
    snprintf(b->last_id, sizeof(b->last_id), "0-0");
    if ((reg->nbanks + 1) * 2 > reg->nbuckets)
        rehash(reg->nbuckets * 2);
    k = bucket(b->tag);
    b->hnext = reg->table[k];
    reg->table[k] = b;
    reg->nbanks++;
    lru_front(b);
    return b;
}

/* Take b out of the table, the LRU list and the totals; it stays allocated. */
static void unregister(eg__mx_bank_t *b)
{
    eg__mx_bank_t **pp;

    if (b->forgotten)
        return;
    for (pp = &reg->table[bucket(b->tag)]; *pp != b; pp = &(*pp)->hnext)
        ;
    *pp = b->hnext;
    b->hnext = NULL;
    lru_unlink(b);
    reg->nbanks--;
    reg->total -= b->bytes;
    b->forgotten = true;
}

static void bank_free(eg__mx_bank_t *b)
{
    eg__mx_load_drop(b);
    eg_mindex_free(b->ix);
    eg_arena_destroy(&b->arena);
    free(b);
}

/* Free b if nothing refers to it any more. */
static void maybe_free(eg__mx_bank_t *b)
{
    if (b->forgotten && !b->busy && !b->inflight && b->pins == 0 && !b->waiters)
        bank_free(b);
}

/* ---- eviction ------------------------------------------------------------------------------ */

static void evict(eg__mx_bank_t *keep)
{
    eg__mx_bank_t *b = reg->lru_tail;

    while (reg->cap && reg->total > reg->cap && b) {
        eg__mx_bank_t *prev = b->lru_prev;
        if (b != keep && !b->busy && b->pins == 0 && !b->waiters) {
            eg_log_debug("mindex: evicting %s (%zu bytes; %zu loaded over a cap of %zu)", b->tag,
                         b->bytes, reg->total, reg->cap);
            unregister(b);
            maybe_free(b);
        }
        b = prev;
    }
}

/* ---- rounds ------------------------------------------------------------------------------- */

void eg__mx_settled(eg__mx_bank_t *b, int err, uint64_t seq)
{
    eg__mx_waiter_t *ready = NULL, **tail = &ready, **pp;

    b->busy = false;
    if (!err && b->dirty && b->ix) {
        size_t nb = eg_mindex_bytes(b->ix);
        if (!b->forgotten)
            reg->total = reg->total - b->bytes + nb;
        b->bytes = nb;
        b->dirty = false;
    }
    if (!b->forgotten && reg) {
        evict(b);
        publish();
    }
    /* Everyone on error; else those whose acquire came before the sync this round sent. */
    for (pp = &b->waiters; *pp;) {
        eg__mx_waiter_t *w = *pp;
        if (err || w->need <= seq) {
            *pp = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    b->pins++;
    while (ready) {
        eg__mx_waiter_t *w = ready;
        ready = w->next;
        w->cb(w->udata, err, err ? NULL : b->ix);
        free(w);
    }
    b->pins--;
    /* Acquires that arrived while the round ran need one more. */
    if (b->waiters && !b->busy) {
        int rc = b->cancel ? EG_ECANCELED : eg__mx_round(b);
        if (rc != 0) {
            eg__mx_settled(b, rc, 0);
            return;
        }
    }
    maybe_free(b);
}

/* ---- the idle handler ---------------------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
    if (!eg__mx_load_tick(eg_mono_ns() + EG_MX_TICK_NS))
        uv_idle_stop(h);
}

void eg__mx_wake(void)
{
    if (reg && !uv_is_closing((uv_handle_t *)&reg->idle))
        uv_idle_start(&reg->idle, on_idle);
}

/* ---- API --------------------------------------------------------------------------------- */

int eg_mindex_init(uv_loop_t *loop, size_t cap_bytes)
{
    if (reg || !loop)
        return EG_EINVAL;
    reg = eg_xcalloc(1, sizeof(*reg));
    reg->loop = loop;
    reg->cap = cap_bytes;
    reg->nbuckets = 16;
    reg->table = eg_xcalloc(reg->nbuckets, sizeof(*reg->table));
    uv_idle_init(loop, &reg->idle);
    reg->idle.data = reg;
    publish();
    return 0;
}

static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

void eg_mindex_shutdown(void)
{
    registry_t *r = reg;

    if (!r)
        return;
    while (r->lru_head) {
        eg__mx_bank_t *b = r->lru_head;
        unregister(b);
        b->cancel = true;
        eg__mx_load_drop(b);
        /* A round waiting on Redis ends in its reply callback; one waiting only on slices to
         * apply (or on nothing) ends here. */
        if (b->busy && !b->inflight)
            eg__mx_settled(b, EG_ECANCELED, 0);
        else
            maybe_free(b);
    }
    free(r->table);
    r->table = NULL;
    reg = NULL;
    uv_close((uv_handle_t *)&r->idle, on_idle_closed);
}

int eg_mindex_acquire(const char *ws_id, const char *bank_id, eg_mindex_fn cb, void *udata)
{
    eg__mx_bank_t *b;
    eg__mx_waiter_t *w, **pp;
    char *tag;
    int rc;

    if (!ws_id || !ws_id[0] || !bank_id || !eg_bank_id_valid(bank_id, strlen(bank_id)) || !cb)
        return EG_EINVAL;
    if (!reg)
        return EG_EUNAVAIL;
    tag = eg_xmalloc(strlen(ws_id) + strlen(bank_id) + 2);
    strcpy(tag, ws_id);
    strcat(tag, "/");
    strcat(tag, bank_id);
    b = find(tag);
    free(tag);
    if (!b)
        b = bank_new(ws_id, bank_id);
    lru_front(b);
    w = eg_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->udata = udata;
    w->need = b->sent_seq + 1;
    for (pp = &b->waiters; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    if (b->busy)
        return 0;
    if ((rc = eg__mx_round(b)) != 0) {
        /* Nothing started: this acquire fails at once (no other waiter can exist while idle). */
        *pp = NULL;
        free(w);
        if (!b->ix) {
            unregister(b);
            maybe_free(b);
        }
        return rc;
    }
    return 0;
}

void eg_mindex_forget(const char *ws_id, const char *bank_id)
{
    eg__mx_bank_t *b;
    char *tag;

    if (!reg || !ws_id || !bank_id)
        return;
    tag = eg_xmalloc(strlen(ws_id) + strlen(bank_id) + 2);
    strcpy(tag, ws_id);
    strcat(tag, "/");
    strcat(tag, bank_id);
    b = find(tag);
    free(tag);
    if (!b)
        return;
    unregister(b);
    maybe_free(b);
    publish();
}

size_t eg_mindex_total_bytes(size_t *nbanks)
{
    if (nbanks)
        *nbanks = reg ? reg->nbanks : 0;
    return reg ? reg->total : 0;
}
