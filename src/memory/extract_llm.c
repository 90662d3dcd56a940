/* The LLM extractor: one structured-output chat call per chunk (extract_llm_prompt.c builds what
 * is sent), and a lenient reading of the answer. Lenient because Hindsight reads it that way: a
 * fact the model got half wrong (a missing field, a bad date, a causal link forward) loses the
 * bad part, not the chunk; only a failed call fails the chunk, and retain then fails the whole
 * item before anything is written (extraction precedes every store write). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engram/error.h"
#include "engram/extract.h"
#include "engram/llm.h"
#include "engram/text.h"
#include "engram/util.h"

/* ---- reading the answer ---------------------------------------------------------------------- */

/* A string member with surrounding whitespace removed, or NULL when it is absent, not a string,
 * empty or "N/A" (Hindsight's get_value). */
static const char *value(eg_arena_t *a, const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    const char *s, *e;

    if (!cJSON_IsString(v) || !v->valuestring)
        return NULL;
    s = v->valuestring;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    if (e == s || ((size_t)(e - s) == 3 && strncasecmp(s, "N/A", 3) == 0))
        return NULL;
    return eg_arena_strndup(a, s, (size_t)(e - s));
}

static eg_fact_type_t fact_type(const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "fact_type");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "fact_kind");

    if (cJSON_IsString(t) && strcmp(t->valuestring, "assistant") == 0)
        return EG_FACT_EXPERIENCE;
    if (cJSON_IsString(t) && strcmp(t->valuestring, "world") == 0)
        return EG_FACT_WORLD;
    /* A model that swapped the two fields. */
    if (cJSON_IsString(k) && strcmp(k->valuestring, "assistant") == 0)
        return EG_FACT_EXPERIENCE;
    return EG_FACT_WORLD;
}

/* A date the model wrote: ISO 8601, else the first date expression in it (relative ones only
 * when the item has a timestamp to resolve them against). */
static bool parse_date(const char *s, int64_t ref, int64_t *out)
{
    eg_text_date_t d;

    if (!s)
        return false;
    if (eg_text_parse_iso(s, strlen(s), out) == 0)
        return true;
    if (ref != EG_MEM_TIME_NONE && eg_text_find_date(s, strlen(s), 0, ref, &d)) {
        *out = d.start_us;
        return true;
    }
    return false;
}

/* occurred_start/end of an entry: only events are dated (Hindsight); an event without a usable
 * start takes the first date expression of its text, and a point event ends where it starts. */
static void dates(eg_arena_t *a, const cJSON *o, const char *text, int64_t ref,
                  eg_extract_fact_t *f)
{
    const char *kind = value(a, o, "fact_kind");
    int64_t s, e;
    eg_text_date_t d;

    f->occurred_start = f->occurred_end = EG_MEM_TIME_NONE;
    if (!kind || strcmp(kind, "event") != 0)
        return;
    if (!parse_date(value(a, o, "occurred_start"), ref, &s)) {
        if (ref == EG_MEM_TIME_NONE || !text || !eg_text_find_date(text, strlen(text), 0, ref, &d))
            return;
        s = d.start_us;
    }
    if (!parse_date(value(a, o, "occurred_end"), ref, &e) || e < s)
        e = s;
    f->occurred_start = s;
    f->occurred_end = e;
}

static bool has_name(const char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], name) == 0)
            return true;
    return false;
}

/* Append the entry's entities (strings or {text}) to f, unique case-insensitively. */
static void entities(eg_arena_t *a, const cJSON *o, eg_extract_fact_t *f, size_t *cap)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "entities"), *e;

    if (!cJSON_IsArray(list))
        return;
    cJSON_ArrayForEach(e, list)
    {
        const char *name = NULL;
        if (cJSON_IsString(e)) {
            name = e->valuestring;
        } else if (cJSON_IsObject(e)) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "text");
            if (cJSON_IsString(t))
                name = t->valuestring;
        }
        if (!name)
            continue;
        while (*name == ' ' || *name == '\t' || *name == '\n')
            name++;
        size_t len = strlen(name);
        while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t' || name[len - 1] == '\n'))
            len--;
        if (len == 0)
            continue;
        char *n = eg_arena_strndup(a, name, len);
        if (has_name(f->entities, f->nentities, n))
            continue;
        if (f->nentities == *cap) {
            size_t ncap = *cap ? *cap * 2 : 8;
            const char **v = eg_arena_alloc(a, ncap * sizeof(*v));
            if (f->nentities)
                memcpy(v, f->entities, f->nentities * sizeof(*v));
            f->entities = v;
            *cap = ncap;
        }
        f->entities[f->nentities++] = n;
    }
}

/* caused_by relations of raw entry i: targets are raw indexes below i whose entry was kept
 * (kept[t] is its index in the result, SIZE_MAX when dropped), at most EG_EXTRACT_CAUSES_MAX. */
static void causes(const cJSON *o, size_t i, const size_t *kept, eg_extract_fact_t *f)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "causal_relations"), *r;

    if (!cJSON_IsArray(list))
        return;
    cJSON_ArrayForEach(r, list)
    {
        if (f->ncauses >= EG_EXTRACT_CAUSES_MAX)
            break;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "target_index");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(r, "relation_type");
        if (!cJSON_IsObject(r) || !cJSON_IsNumber(t) || !cJSON_IsString(k) ||
            strcmp(k->valuestring, "caused_by") != 0)
            continue;
        double d = t->valuedouble;
        if (d < 0 || d >= (double)i || d != (double)(size_t)d)
            continue;
        size_t target = kept[(size_t)d];
        if (target == SIZE_MAX)
            continue;
        bool dup = false;
        for (size_t q = 0; q < f->ncauses; q++)
            dup = dup || f->causes[q] == target;
        if (!dup)
            f->causes[f->ncauses++] = target;
    }
}

/* "what | When: … | Involving: … | why", the parts present. */
static char *fact_text(eg_arena_t *a, const char *what, const char *when, const char *who,
                       const char *why)
{
    return eg_arena_printf(a, "%s%s%s%s%s%s%s", what, when ? " | When: " : "", when ? when : "",
                           who ? " | Involving: " : "", who ? who : "", why ? " | " : "",
                           why ? why : "");
}

static void parse_verbatim(eg_arena_t *a, const eg_extract_input_t *in, const cJSON *list,
                           eg_extract_result_t *out)
{
    eg_extract_fact_t *f = eg_arena_calloc(a, sizeof(*f));
    const cJSON *o;
    size_t cap = 0;
    bool first = true;

    f->text = eg_arena_strndup(a, in->text ? in->text : "", in->text ? in->len : 0);
    f->type = EG_FACT_WORLD;
    f->occurred_start = f->occurred_end = EG_MEM_TIME_NONE;
    cJSON_ArrayForEach(o, list)
    {
        if (!cJSON_IsObject(o))
            continue;
        if (first) {
            f->type = fact_type(o);
            dates(a, o, f->text, in->timestamp, f);
            first = false;
        }
        if (!in->cfg->no_free_form_entities)
            entities(a, o, f, &cap);
    }
    out->facts = f;
    out->nfacts = 1;
}

int eg_extract_llm_parse(eg_arena_t *a, const eg_extract_input_t *in, const cJSON *answer,
                         eg_extract_result_t *out)
{
    const eg_extract_config_t *cfg = in->cfg;
    const cJSON *list, *o;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(answer))
        return EG_EUPSTREAM;
    list = cJSON_GetObjectItemCaseSensitive(answer, "facts");
    if (list && !cJSON_IsArray(list) && !cJSON_IsNull(list))
        return EG_EUPSTREAM;
    if (cfg->mode == EG_EXTRACT_VERBATIM) {
        parse_verbatim(a, in, list, out);
        return 0;
    }
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    size_t *kept = eg_arena_alloc(a, (n + 1) * sizeof(*kept));
    out->facts = eg_arena_calloc(a, (n + 1) * sizeof(*out->facts));
    cJSON_ArrayForEach(o, list)
    {
        kept[i] = SIZE_MAX;
        const char *what = cJSON_IsObject(o) ? value(a, o, "what") : NULL;
        if (what) {
            eg_extract_fact_t *f = &out->facts[out->nfacts];
            size_t cap = 0;
            f->text =
                fact_text(a, what, value(a, o, "when"), value(a, o, "who"), value(a, o, "why"));
            f->type = fact_type(o);
            dates(a, o, f->text, in->timestamp, f);
            if (!cfg->no_free_form_entities)
                entities(a, o, f, &cap);
            if (cfg->causal_links)
                causes(o, i, kept, f);
            kept[i] = out->nfacts++;
        }
        i++;
    }
    return 0;
}

/* ---- the extractor --------------------------------------------------------------------------- */

/* A chunk whose answer ran out of output tokens is split in two and each half extracted, as
 * Hindsight does on OutputTooLongError, down to this many halvings and pieces of this size. */
#define SPLIT_DEPTH_MAX 3
#define SPLIT_MIN_BYTES 200

typedef struct {
    const char *text;
    size_t len;
    int depth;
} piece_t;

/* One extraction: the chunk's pieces, extracted in order (one call each), and their facts. */
typedef struct {
    eg_extractor_t *x;
    eg_arena_t *a;
    eg_extract_input_t in; /* the chunk; pieces[next] replaces its text for a call */
    eg_extract_cb cb;
    void *udata;
    piece_t pieces[1 << SPLIT_DEPTH_MAX];
    size_t npieces, next;
    eg_extract_fact_t *facts;
    size_t nfacts, cap;
    eg_usage_t usage;
    eg_extract_input_t cur; /* the input of the call in flight */
    eg_llm_msg_t msgs[2];
    eg_llm_req_t req;
} call_t;

/* Model failures reach retain as EG_EUPSTREAM (the client's request was fine; 400/401 from the
 * provider are the server's configuration), except a timeout and a cancellation (shutdown: the
 * queued job is retried). */
static int map_err(int err)
{
    return err == EG_EUPTIMEOUT || err == EG_ECANCELED ? err : EG_EUPSTREAM;
}

/* Complete with an error and free c. */
static void fail(call_t *c, int err, const char *why)
{
    eg_extract_result_t res;

    memset(&res, 0, sizeof(res));
    res.error = eg_arena_printf(c->a, "fact extraction failed: %s", why);
    res.usage = c->usage;
    c->cb(c->x, map_err(err), &res, c->udata);
    free(c);
}

/* Append a piece's facts; their causal targets move by the facts already kept. */
static void append(call_t *c, const eg_extract_result_t *r)
{
    if (c->nfacts + r->nfacts > c->cap) {
        size_t cap = (c->nfacts + r->nfacts) * 2;
        eg_extract_fact_t *v = eg_arena_alloc(c->a, cap * sizeof(*v));
        if (c->nfacts)
            memcpy(v, c->facts, c->nfacts * sizeof(*v));
        c->facts = v;
        c->cap = cap;
    }
    for (size_t i = 0; i < r->nfacts; i++) {
        eg_extract_fact_t *f = &c->facts[c->nfacts + i];
        *f = r->facts[i];
        for (size_t k = 0; k < f->ncauses; k++)
            f->causes[k] += c->nfacts;
    }
    c->nfacts += r->nfacts;
}

/* Split piece i in two at a sentence end near its middle (else at a character boundary there),
 * as Hindsight's auto-split does; false when it is too small or too deep to split. */
static bool split(call_t *c, size_t i)
{
    piece_t p = c->pieces[i];
    static const char *const ends[] = {". ", "! ", "? ", "\n\n"};
    size_t mid = p.len / 2, lo = mid - p.len / 5, hi = mid + p.len / 5, cut = 0;

    if (p.depth >= SPLIT_DEPTH_MAX || p.len < 2 * SPLIT_MIN_BYTES ||
        c->npieces >= sizeof(c->pieces) / sizeof(c->pieces[0]))
        return false;
    /* The last occurrence of the first kind of sentence end found within 20% of the middle. */
    for (size_t e = 0; e < sizeof(ends) / sizeof(ends[0]) && cut == 0; e++) {
        size_t el = strlen(ends[e]);
        for (size_t k = hi - el + 1; k-- > lo;) {
            if (memcmp(p.text + k, ends[e], el) == 0) {
                cut = k + el;
                break;
            }
        }
    }
    if (cut == 0) {
        cut = mid;
        while (cut > 0 && ((unsigned char)p.text[cut] & 0xC0) == 0x80)
            cut--;
    }
    piece_t a = {p.text, cut, p.depth + 1}, b = {p.text + cut, p.len - cut, p.depth + 1};
    while (a.len > 0 && (a.text[a.len - 1] == ' ' || a.text[a.len - 1] == '\n'))
        a.len--;
    while (b.len > 0 && (b.text[0] == ' ' || b.text[0] == '\n')) {
        b.text++;
        b.len--;
    }
    if (a.len == 0 || b.len == 0)
        return false;
    memmove(&c->pieces[i + 2], &c->pieces[i + 1], (c->npieces - i - 1) * sizeof(piece_t));
    c->pieces[i] = a;
    c->pieces[i + 1] = b;
    c->npieces++;
    return true;
}

static void on_chat(void *udata, int err, const eg_llm_resp_t *resp);

/* Start the call of the next piece, or complete with every piece's facts. */
static void next_piece(call_t *c)
{
    eg_llm_t *llm = c->x->impl;
    eg_extract_result_t res;

    if (c->next >= c->npieces) {
        memset(&res, 0, sizeof(res));
        res.facts = c->facts;
        res.nfacts = c->nfacts;
        res.usage = c->usage;
        c->cb(c->x, 0, &res, c->udata);
        free(c);
        return;
    }
    c->cur = c->in;
    c->cur.text = c->pieces[c->next].text;
    c->cur.len = c->pieces[c->next].len;
    c->msgs[1].content = eg_extract_llm_user_message(c->a, &c->cur);
    int rc = llm->chat(llm, &c->req, on_chat, c, NULL);
    if (rc != 0)
        fail(c, rc, eg_strerror(rc)); /* accepted all the same: the extraction fails, with why */
}

static void on_chat(void *udata, int err, const eg_llm_resp_t *resp)
{
    call_t *c = udata;
    eg_extract_result_t res;

    if (resp)
        eg_usage_add(&c->usage, &resp->usage);
    if (err != 0) {
        /* Output cut at the token limit: the halves may fit. */
        if (resp && resp->finish_reason && strcmp(resp->finish_reason, "length") == 0 &&
            split(c, c->next)) {
            next_piece(c);
            return;
        }
        fail(c, err, resp && resp->error && resp->error[0] ? resp->error : eg_strerror(err));
        return;
    }
    cJSON *parsed = NULL;
    const cJSON *answer = resp->json;
    if (!answer && resp->content) {
        parsed = cJSON_ParseWithLength(resp->content, resp->content_len);
        answer = parsed;
    }
    int rc = eg_extract_llm_parse(c->a, &c->cur, answer, &res);
    cJSON_Delete(parsed);
    if (rc != 0) {
        fail(c, EG_EUPSTREAM, "the model's answer is not an object with a facts list");
        return;
    }
    append(c, &res);
    c->next++;
    next_piece(c);
}

/* Mode chunks: the chunk is the fact, as given (no call, no entities, no dates). */
static void chunk_fact(eg_arena_t *a, const eg_extract_input_t *in, eg_extract_result_t *res)
{
    eg_extract_fact_t *f = eg_arena_calloc(a, sizeof(*f));

    memset(res, 0, sizeof(*res));
    f->text = eg_arena_strndup(a, in->text ? in->text : "", in->text ? in->len : 0);
    f->type = EG_FACT_WORLD;
    f->occurred_start = f->occurred_end = EG_MEM_TIME_NONE;
    res->facts = f;
    res->nfacts = 1;
}

static int llm_extract(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in,
                       eg_extract_cb cb, void *udata)
{
    eg_extract_result_t res;

    if (!in->cfg)
        return EG_EINVAL;
    if (in->cfg->mode == EG_EXTRACT_CHUNKS) {
        chunk_fact(a, in, &res);
        cb(x, 0, &res, udata);
        return 0;
    }
    call_t *c = eg_xcalloc(1, sizeof(*c));
    c->x = x;
    c->a = a;
    c->in = *in;
    c->cb = cb;
    c->udata = udata;
    c->pieces[0] = (piece_t){in->text ? in->text : "", in->text ? in->len : 0, 0};
    c->npieces = 1;
    c->msgs[0].role = EG_LLM_SYSTEM;
    c->msgs[0].content = eg_extract_llm_system_prompt(a, in->cfg);
    c->msgs[1].role = EG_LLM_USER;
    c->req.msgs = c->msgs;
    c->req.nmsgs = 2;
    c->req.schema = eg_extract_llm_schema(a, in->cfg);
    c->req.schema_name = "facts";
    c->req.temperature = 0.1;
    c->req.scope = "retain";
    next_piece(c);
    return 0;
}

static void llm_destroy(eg_extractor_t *x)
{
    free(x);
}

eg_extractor_t *eg_extract_llm_new(struct eg_llm_s *llm)
{
    eg_extractor_t *x;

    if (!llm)
        return NULL;
    x = eg_xcalloc(1, sizeof(*x));
    x->name = "llm-v1";
    x->extract = llm_extract;
    x->destroy = llm_destroy;
    x->impl = llm;
    return x;
}
