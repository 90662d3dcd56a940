/* What the LLM extractor sends: the system prompt of each mode, the user message of one chunk and
 * the JSON Schema of the answer. The prompts follow the structure of Hindsight's (selective
 * "concise" facts by default, "verbose" detail, "custom" guidelines in place of the concise ones,
 * "verbatim" metadata only; a FOCUS section for the bank's retain mission; a causal section only
 * when causal links are on), because banks tuned against Hindsight expect facts of that grain:
 * what / when / where / who / why, relative dates resolved against the "Event Date". */
#include <string.h>

#include "engram/buf.h"
#include "engram/extract.h"
#include "engram/text.h"

#define RULE "--------------------------------------------------------------------------------\n"

static void section(eg_buf_t *b, const char *title)
{
    eg_buf_puts(b, "\n\n" RULE);
    eg_buf_puts(b, title);
    eg_buf_puts(b, "\n" RULE "\n");
}

static void language(eg_buf_t *b, const eg_extract_config_t *cfg)
{
    if (cfg->output_language && cfg->output_language[0])
        eg_buf_printf(b,
                      "LANGUAGE: write every output value in %s, whatever the language of the "
                      "input.",
                      cfg->output_language);
    else
        eg_buf_puts(b, "LANGUAGE: write every output value in the language of the input text. "
                       "Never translate it into another language.");
}

static void mission(eg_buf_t *b, const eg_extract_config_t *cfg)
{
    if (!cfg->mission || !cfg->mission[0])
        return;
    section(b, "FOCUS - what this memory bank retains");
    eg_buf_puts(b, cfg->mission);
}

static const char concise_guidelines[] =
    "Keep ONLY facts that would still be worth recalling months from now:\n"
    "- who people are: names, relationships, roles, background\n"
    "- preferences, habits, likes and dislikes\n"
    "- significant events: milestones, decisions, achievements, changes\n"
    "- plans, goals, deadlines and commitments\n"
    "- skills, expertise, experience\n"
    "- important context: projects, problems, constraints\n"
    "- feelings, sensations and descriptive details that characterise an experience or person\n"
    "Skip greetings, pleasantries, filler (\"thanks\", \"ok\", \"sure\"), process chatter (\"let "
    "me check\") and anything already stated. Merge related statements into one fact.";

static const char concise_examples[] =
    "Event Date June 10, 2024. Input: \"Hi! How are you? I'm planning my wedding, I want a small "
    "outdoor ceremony. Yesterday I was at Emily's wedding, she married Sarah in a rooftop garden. "
    "I grabbed a coffee on the way.\"\n"
    "Two facts (the greeting and the coffee are skipped):\n"
    "0. what=\"User is planning a wedding and wants a small outdoor ceremony\", who=\"user\", "
    "fact_kind=\"conversation\", entities=[\"user\", \"wedding\"]\n"
    "1. what=\"Emily married Sarah in a rooftop garden on June 9, 2024\", who=\"Emily (user's "
    "friend), Sarah\", fact_kind=\"event\", occurred_start=\"2024-06-09\", "
    "occurred_end=\"2024-06-09\", entities=[\"Emily\", \"Sarah\", \"wedding\"]";

static const char format_concise[] =
    "- what: the core fact, complete but short (one or two sentences)\n"
    "- when: when it happened, with the day name when known; \"N/A\" if not mentioned\n"
    "- where: the location if relevant; \"N/A\" otherwise\n"
    "- who: the people involved and how they relate; \"N/A\" for general information\n"
    "- why: context or significance only when it matters; \"N/A\" when obvious";

static const char format_verbose[] =
    "Capture EVERY detail, never summarise:\n"
    "- what: a complete description with all specifics (actions, objects, quantities)\n"
    "- when: the time with its day name (\"Saturday, June 8, 2024\"); \"N/A\" only when no time "
    "is mentioned at all\n"
    "- where: the specific place (city, venue, address); \"N/A\" only when there is none\n"
    "- who: everyone involved, with full names, roles and relationships\n"
    "- why: feelings, motivations, preferences and significance; for assistant facts, what the "
    "user asked that led to the interaction";

static const char format_verbatim[] =
    "The text is stored exactly as given; your only job is its metadata.\n"
    "- Return EXACTLY ONE entry for the chunk, without a \"what\" field.\n"
    "- when, where, who: as below; fact_kind, occurred_start/occurred_end for a datable event.\n"
    "- entities: every person, place, organisation, object and concept it mentions.\n"
    "- fact_type: \"world\" unless the text is clearly an interaction with the assistant.";

static const char common_rules[] =
    "Resolve references to names when both appear: \"my roommate\" and \"Emily\" become "
    "\"Emily (user's roommate)\".\n\n"
    "fact_kind: \"event\" for a specific, datable occurrence (set occurred_start and "
    "occurred_end); \"conversation\" for ongoing states, preferences and traits (no dates).\n"
    "fact_type: \"world\" for facts about other people, external events and general knowledge; "
    "\"assistant\" for first-person actions, experiences or observations of the speaker or "
    "author (\"I changed X\", \"I found Y\") and for interactions with the user (requests, "
    "recommendations).\n\n"
    "Dates: the \"Event Date\" of the input is the reference for relative expressions. Write "
    "resolved absolute dates in the fact text (\"yesterday\" becomes \"on November 12, 2024\"). "
    "occurred_start and occurred_end are ISO 8601 (\"2024-11-12\" or \"2024-11-12T15:00:00Z\"); "
    "a point event has occurred_end equal to occurred_start. A date named in the text keeps its "
    "own year.\n\n"
    "Entities: people, organisations, places, significant objects and abstract concepts "
    "(career, friendship) that could link related facts; include \"user\" when the fact is "
    "about the user.";

static const char causal_rules[] =
    "Link a fact to EARLIER facts of your list that caused it, in causal_relations (at most 2 "
    "per fact): {\"target_index\": <index of the earlier fact, 0-based, smaller than this "
    "fact's>, \"relation_type\": \"caused_by\"}.\n"
    "Example: lost job -> could not pay rent -> moved out: fact 1 is caused_by fact 0, fact 2 "
    "is caused_by fact 1.";

char *eg_extract_llm_system_prompt(eg_arena_t *a, const eg_extract_config_t *cfg)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_extract_mode_t mode = cfg->mode;
    bool causal = cfg->causal_links && mode != EG_EXTRACT_VERBATIM;

    if (mode == EG_EXTRACT_CUSTOM && (!cfg->custom_instructions || !cfg->custom_instructions[0]))
        mode = EG_EXTRACT_CONCISE; /* as Hindsight: custom without instructions is concise */

    if (mode == EG_EXTRACT_VERBOSE)
        eg_buf_puts(&b, "Extract facts from the text into a structured form with five "
                        "dimensions. Be EXTREMELY detailed.\n\n");
    else if (mode == EG_EXTRACT_VERBATIM)
        eg_buf_puts(&b, "Describe the text's metadata for a memory store that keeps the text "
                        "verbatim.\n\n");
    else
        eg_buf_puts(&b, "Extract SIGNIFICANT facts from the text for a long-term memory. Be "
                        "SELECTIVE: keep only what is worth remembering.\n\n");
    language(&b, cfg);
    mission(&b, cfg);

    if (mode == EG_EXTRACT_CUSTOM) {
        section(&b, "GUIDELINES");
        eg_buf_puts(&b, cfg->custom_instructions);
    } else if (mode == EG_EXTRACT_CONCISE) {
        section(&b, "SELECTIVITY");
        eg_buf_puts(&b, concise_guidelines);
    } else if (mode == EG_EXTRACT_VERBATIM) {
        section(&b, "VERBATIM MODE - metadata only");
        eg_buf_puts(&b, format_verbatim);
    }

    if (mode != EG_EXTRACT_VERBATIM) {
        section(&b, "FACT FORMAT");
        eg_buf_puts(&b, mode == EG_EXTRACT_VERBOSE ? format_verbose : format_concise);
    }
    section(&b, "RULES");
    eg_buf_puts(&b, common_rules);
    if (cfg->no_free_form_entities)
        eg_buf_puts(&b, "\nThis bank takes no free-form entities: leave entities empty.");
    if (mode == EG_EXTRACT_CONCISE) {
        section(&b, "EXAMPLE");
        eg_buf_puts(&b, concise_examples);
    }
    if (causal) {
        section(&b, "CAUSAL RELATIONSHIPS");
        eg_buf_puts(&b, causal_rules);
    }

    char *out = eg_arena_strndup(a, b.data, b.len);
    eg_buf_free(&b);
    return out;
}

/* ---- the user message ------------------------------------------------------------------------ */

static const char *const weekdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};

/* "Monday, June 10, 2024 (2024-06-10T09:00:00+00:00)", Hindsight's Event Date line. */
static void event_date(eg_buf_t *b, int64_t ts)
{
    char iso[EG_TEXT_ISO_MAX];
    int64_t days = ts / EG_TEXT_US_PER_DAY, y;
    unsigned m, d;

    if (ts % EG_TEXT_US_PER_DAY < 0)
        days--;
    eg_text_civil_from_days(days, &y, &m, &d);
    /* 1970-01-01 was a Thursday (index 3 from Monday). */
    int64_t wd = ((days % 7) + 7 + 3) % 7;
    eg_text_format_iso(ts, iso);
    eg_buf_printf(b, "%s, %s %02u, %lld (%s)", weekdays[wd], months[m - 1], d, (long long)y, iso);
}

char *eg_extract_llm_user_message(eg_arena_t *a, const eg_extract_input_t *in)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_printf(&b,
                  "Extract facts from the following text chunk.\n\nChunk: %zu/%zu\nEvent Date: ",
                  in->chunk_index + 1, in->nchunks ? in->nchunks : 1);
    if (in->timestamp == EG_MEM_TIME_NONE)
        eg_buf_puts(&b, "Unknown");
    else
        event_date(&b, in->timestamp);
    eg_buf_printf(&b, "\nContext: %s", in->context && in->context[0] ? in->context : "none");
    if (cJSON_IsObject(in->metadata) && in->metadata->child) {
        const cJSON *m;
        eg_buf_puts(&b, "\nMetadata:");
        cJSON_ArrayForEach(m, in->metadata)
        {
            if (cJSON_IsString(m))
                eg_buf_printf(&b, "\n  %s: %s", m->string, m->valuestring);
        }
    }
    if (in->nentities > 0) {
        eg_buf_puts(&b, "\nKnown entities:");
        for (size_t i = 0; i < in->nentities; i++)
            eg_buf_printf(&b, "%s %s", i ? "," : "", in->entities[i]);
    }
    eg_buf_puts(&b, "\n\nText:\n");
    eg_buf_append(&b, in->text ? in->text : "", in->text ? in->len : 0);

    char *out = eg_arena_strndup(a, b.data, b.len);
    eg_buf_free(&b);
    return out;
}

/* ---- the answer's schema --------------------------------------------------------------------- */

static cJSON *prop(cJSON *props, const char *name, const char *type, const char *desc)
{
    cJSON *p = cJSON_AddObjectToObject(props, name);
    cJSON_AddStringToObject(p, "type", type);
    if (desc)
        cJSON_AddStringToObject(p, "description", desc);
    return p;
}

static void nullable_string(cJSON *props, const char *name, const char *desc)
{
    cJSON *p = cJSON_AddObjectToObject(props, name);
    cJSON *any = cJSON_AddArrayToObject(p, "anyOf");
    cJSON *s = cJSON_CreateObject(), *n = cJSON_CreateObject();

    cJSON_AddStringToObject(s, "type", "string");
    cJSON_AddStringToObject(n, "type", "null");
    cJSON_AddItemToArray(any, s);
    cJSON_AddItemToArray(any, n);
    cJSON_AddStringToObject(p, "description", desc);
}

char *eg_extract_llm_schema(eg_arena_t *a, const eg_extract_config_t *cfg)
{
    bool verbatim = cfg->mode == EG_EXTRACT_VERBATIM;
    bool causal = cfg->causal_links && !verbatim;
    cJSON *root = cJSON_CreateObject(), *fact = cJSON_CreateObject(), *props, *p, *req;

    cJSON_AddStringToObject(root, "type", "object");
    p = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "properties"), "facts");
    cJSON_AddStringToObject(p, "type", "array");
    cJSON_AddStringToObject(p, "description",
                            verbatim ? "Exactly one metadata entry"
                                     : "The extracted facts, in order");
    cJSON_AddItemToObject(p, "items", fact);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "required"), cJSON_CreateString("facts"));

    cJSON_AddStringToObject(fact, "type", "object");
    props = cJSON_AddObjectToObject(fact, "properties");
    if (!verbatim)
        prop(props, "what", "string", "The core fact, complete but concise");
    prop(props, "when", "string", "When it happened; 'N/A' if unknown");
    prop(props, "where", "string", "The location if relevant; 'N/A' if none");
    prop(props, "who", "string", "The people involved with their relationships; 'N/A' if none");
    if (!verbatim)
        prop(props, "why", "string", "Context or significance; 'N/A' if obvious");
    prop(props, "fact_kind", "string", "'event' (datable) or 'conversation'");
    nullable_string(props, "occurred_start", "ISO 8601 start of an event, else null");
    nullable_string(props, "occurred_end", "ISO 8601 end of an event, else null");
    p = prop(props, "fact_type", "string", "'world' or 'assistant'");
    cJSON *en = cJSON_AddArrayToObject(p, "enum");
    cJSON_AddItemToArray(en, cJSON_CreateString("world"));
    cJSON_AddItemToArray(en, cJSON_CreateString("assistant"));
    p = prop(props, "entities", "array", "People, places, organisations, objects, concepts");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "items"), "type", "string");
    if (causal) {
        p = prop(props, "causal_relations", "array",
                 "Earlier facts that caused this one (target_index < this fact's index), at "
                 "most 2");
        cJSON *rel = cJSON_AddObjectToObject(p, "items"), *rp;
        cJSON_AddStringToObject(rel, "type", "object");
        rp = cJSON_AddObjectToObject(rel, "properties");
        prop(rp, "target_index", "integer", "0-based index of an earlier fact");
        cJSON *rt = prop(rp, "relation_type", "string", NULL);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(rt, "enum"), cJSON_CreateString("caused_by"));
        cJSON *rr = cJSON_AddArrayToObject(rel, "required");
        cJSON_AddItemToArray(rr, cJSON_CreateString("target_index"));
        cJSON_AddItemToArray(rr, cJSON_CreateString("relation_type"));
    }
    /* Hindsight's required set; the rest may be left out by a lenient server. */
    req = cJSON_AddArrayToObject(fact, "required");
    static const char *const required[] = {"what", "when", "where", "who", "why", "fact_type"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!verbatim || (strcmp(required[i], "what") != 0 && strcmp(required[i], "why") != 0))
            cJSON_AddItemToArray(req, cJSON_CreateString(required[i]));

    char *txt = cJSON_PrintUnformatted(root);
    char *out = eg_arena_strdup(a, txt);
    cJSON_free(txt);
    cJSON_Delete(root);
    return out;
}
