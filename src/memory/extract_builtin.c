/* The builtin extractor: facts by rule, with no model. One fact per sentence-level statement keeps
 * every retained statement recallable on its own, which is what the four recall arms rank; the
 * judgements (filler, entities, dates, first person) are cheap heuristics that prefer to miss:
 * a missed date or entity only weakens one arm, a wrong one misleads it. */
#include <stdlib.h>
#include <string.h>

#include "engram/extract.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/extract_int.h"
#include "memory/text_int.h"

typedef struct {
    eg_extract_fact_t *v;
    size_t n, cap;
} facts_t;

static eg_extract_fact_t *fact_push(eg_arena_t *a, facts_t *f)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        eg_extract_fact_t *v = eg_arena_alloc(a, cap * sizeof(*v));
        if (f->n)
            memcpy(v, f->v, f->n * sizeof(*v));
        f->v = v;
        f->cap = cap;
    }
    eg_extract_fact_t *x = &f->v[f->n++];
    memset(x, 0, sizeof(*x));
    x->type = EG_FACT_WORLD;
    x->occurred_start = x->occurred_end = EG_MEM_TIME_NONE;
    return x;
}

/* ---- sentence judgements -------------------------------------------------------------------- */

/* Folded first-person words (sorted). Ambiguous folds are left out: "id" (I'd / ID), "ill" (I'll
 * / ill), "were" (we're / were), "us" (US). */
static const char *const first_person[] = {
    "i", "im", "ive", "me", "mine", "my", "myself", "our", "ours", "ourselves", "we", "weve",
};

static bool is_first_person(const char *s, size_t len)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;

    eg_text_tokenizer_init(&t, s, len, 0);
    while (eg_text_tokenizer_next(&t, &tok))
        if (eg__text_in_list(first_person, EG_ARRAY_SIZE(first_person), tok.term, tok.len))
            return true;
    return false;
}

/* Fewer than two words is an interjection ("Congratulations!"), not a statement. */
static bool too_short(const char *s, size_t len)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    size_t n = 0;

    eg_text_tokenizer_init(&t, s, len, 0);
    while (n < 2 && eg_text_tokenizer_next(&t, &tok))
        n++;
    return n < 2;
}

/* A question: its last character other than closing quotes and brackets is '?'. */
static bool is_question(const char *s, size_t len)
{
    while (len > 0 && strchr("\"')]}* \t", s[len - 1]))
        len--;
    if (len >= 3 && memcmp(s + len - 3, "\xE2\x80\x9D", 3) == 0) /* ” */
        len -= 3;
    return len > 0 &&
           (s[len - 1] == '?' || (len >= 3 && memcmp(s + len - 3, "\xEF\xBC\x9F", 3) == 0));
}

/* A sentence opening with a consequence marker ("So ...", "As a result, ...") was caused by the
 * statement before it. */
static bool is_consequence(const char *s, size_t len)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    char w[4][EG_TEXT_TERM_MAX + 8];
    size_t n = 0;

    eg_text_tokenizer_init(&t, s, len, 0);
    while (n < 4 && eg_text_tokenizer_next(&t, &tok))
        memcpy(w[n++], tok.term, tok.len + 1);
    if (n == 0)
        return false;
#define W(i, s) (n > (i) && strcmp(w[i], s) == 0)
    if (W(0, "so"))
        return n > 1 && !W(1, "far") && !W(1, "much") && !W(1, "many") && !W(1, "long") &&
               !W(1, "what");
    if (W(0, "therefore") || W(0, "consequently") || W(0, "thus") || W(0, "hence"))
        return true;
    if (W(0, "as") && W(1, "a") && (W(2, "result") || W(2, "consequence")))
        return true;
    if (W(0, "because") && W(1, "of") && (W(2, "this") || W(2, "that")))
        return true;
    if (W(0, "thats") && W(1, "why"))
        return true;
    return W(0, "that") && W(1, "is") && W(2, "why");
#undef W
}

/* Skip a list marker at the start of a sentence: "- ", "* ", "+ ", "> ", "• ", "– ", "#... ",
 * "12. ", "3) ". */
static void strip_marker(const char *s, size_t *off, size_t *len)
{
    const char *p = s + *off;
    size_t n = *len, k = 0;

    if (n >= 2 && strchr("-*+>", p[0]) && p[1] == ' ')
        k = 2;
    else if (n >= 4 && (memcmp(p, "\xE2\x80\xA2", 3) == 0 || memcmp(p, "\xE2\x80\x93", 3) == 0) &&
             p[3] == ' ')
        k = 4;
    else if (p[0] == '#') {
        while (k < n && p[k] == '#')
            k++;
        if (k >= n || p[k] != ' ')
            k = 0;
    } else {
        while (k < n && k < 3 && p[k] >= '0' && p[k] <= '9')
            k++;
        if (!(k > 0 && k + 1 < n && (p[k] == '.' || p[k] == ')') && p[k + 1] == ' '))
            k = 0;
        else
            k++;
    }
    while (k < n && (p[k] == ' ' || p[k] == '\t'))
        k++;
    *off += k;
    *len -= k;
}

/* The first date of s resolved against ref. Without a reference ("unset"), only a date that
 * does not depend on one counts: it must resolve the same from two distant references. */
static bool find_date(const char *s, size_t len, int64_t ref, eg_text_date_t *d)
{
    if (ref != EG_MEM_TIME_NONE)
        return eg_text_find_date(s, len, 0, ref, d);
    const int64_t ref_a = eg_text_days_from_civil(2000, 6, 15) * EG_TEXT_US_PER_DAY;
    const int64_t ref_b = eg_text_days_from_civil(2090, 1, 20) * EG_TEXT_US_PER_DAY;
    for (size_t from = 0; from < len && eg_text_find_date(s, len, from, ref_a, d);) {
        eg_text_date_t d2;
        if (eg_text_find_date(s, len, d->off, ref_b, &d2) && d2.off == d->off &&
            d2.start_us == d->start_us && d2.end_us == d->end_us)
            return true;
        from = d->off + (d->len ? d->len : 1);
    }
    return false;
}

/* ---- entities ------------------------------------------------------------------------------- */

static bool has_name(const eg_extract_fact_t *f, const char *name)
{
    for (size_t i = 0; i < f->nentities; i++)
        if (eg_strcaseeq(f->entities[i], name))
            return true;
    return false;
}

/* The fact's entities: the speaker's name (if a person), then the recogniser's over s. */
static void fact_entities(eg_arena_t *a, eg_extract_fact_t *f, const char *speaker, const char *s,
                          size_t len)
{
    eg_text_entity_t *ents;
    size_t n = eg_text_entities(a, s, len, &ents);

    f->entities = eg_arena_alloc(a, (n + 1) * sizeof(*f->entities));
    f->nentities = 0;
    if (speaker)
        f->entities[f->nentities++] = speaker;
    for (size_t i = 0; i < n && f->nentities < EG_MEM_ENTITIES_MAX; i++)
        if (!has_name(f, ents[i].text))
            f->entities[f->nentities++] = ents[i].text;
}

static void fact_date(eg_extract_fact_t *f, const char *s, size_t len, int64_t ref)
{
    eg_text_date_t d;

    if (find_date(s, len, ref, &d)) {
        f->occurred_start = d.start_us;
        f->occurred_end = d.end_us;
    }
}

/* ---- messages ------------------------------------------------------------------------------- */

static void extract_message(eg_arena_t *a, const eg_extract_input_t *in, const eg__msg_t *m,
                            facts_t *facts)
{
    eg_text_span_t *sents;
    size_t nsents = eg_text_sentences(a, m->text, m->len, &sents);
    size_t first = facts->n;
    int64_t ref = m->time != EG_MEM_TIME_NONE ? m->time : in->timestamp;
    const char *person = m->cls == EG__SPK_NAMED ? m->speaker : NULL;

    for (size_t i = 0; i < nsents; i++) {
        size_t off = sents[i].off, len = sents[i].len;
        strip_marker(m->text, &off, &len);
        const char *s = m->text + off;
        if (len == 0 || too_short(s, len) || eg_text_is_filler(s, len) || is_question(s, len))
            continue;

        eg_extract_fact_t *f = fact_push(a, facts);
        f->text = m->speaker ? eg_arena_printf(a, "%s: %.*s", m->speaker, (int)len, s)
                             : eg_arena_strndup(a, s, len);
        if ((m->cls == EG__SPK_ASSISTANT || m->cls == EG__SPK_NONE) && is_first_person(s, len))
            f->type = EG_FACT_EXPERIENCE;
        fact_entities(a, f, person, s, len);
        fact_date(f, s, len, ref);
        if (in->cfg && in->cfg->causal_links && facts->n - 1 > first && is_consequence(s, len))
            f->causes[f->ncauses++] = facts->n - 2;
    }
}

void eg_extract_builtin_run(eg_arena_t *a, const eg_extract_input_t *in, eg_extract_result_t *out)
{
    facts_t facts = {0};
    eg_extract_mode_t mode = in->cfg ? in->cfg->mode : EG_EXTRACT_CONCISE;
    const char *text = in->text ? in->text : "";
    size_t len = in->text ? in->len : 0;

    memset(out, 0, sizeof(*out));
    while (len > 0 && strchr(" \t\r\n", text[len - 1]))
        len--;
    if (len == 0)
        return;

    if (mode == EG_EXTRACT_VERBATIM || mode == EG_EXTRACT_CHUNKS) {
        eg_extract_fact_t *f = fact_push(a, &facts);
        f->text = eg_arena_strndup(a, text, len);
        if (mode == EG_EXTRACT_VERBATIM) {
            fact_entities(a, f, NULL, text, len);
            fact_date(f, text, len, in->timestamp);
        }
    } else {
        eg__msg_t *msgs, plain;
        size_t nmsgs;
        if (eg__conv_parse(a, text, len, &msgs, &nmsgs) == EG__CONV_NONE) {
            memset(&plain, 0, sizeof(plain));
            plain.text = text;
            plain.len = len;
            plain.cls = EG__SPK_NONE;
            plain.time = EG_MEM_TIME_NONE;
            msgs = &plain;
            nmsgs = 1;
        }
        for (size_t i = 0; i < nmsgs; i++)
            if (msgs[i].cls != EG__SPK_SYSTEM)
                extract_message(a, in, &msgs[i], &facts);
    }
    out->facts = facts.v;
    out->nfacts = facts.n;
}

/* ---- the vtable ----------------------------------------------------------------------------- */

static int builtin_extract(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in,
                           eg_extract_cb cb, void *udata)
{
    eg_extract_result_t res;

    eg_extract_builtin_run(a, in, &res);
    cb(x, 0, &res, udata);
    return 0;
}

static void builtin_destroy(eg_extractor_t *x)
{
    free(x);
}

eg_extractor_t *eg_extract_builtin_new(void)
{
    eg_extractor_t *x = eg_xcalloc(1, sizeof(*x));

    x->name = "builtin-rules-v1";
    x->extract = builtin_extract;
    x->destroy = builtin_destroy;
    return x;
}
