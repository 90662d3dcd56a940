/* Conversation-shaped text read as messages: a JSON array of message objects (what chat APIs
 * produce), JSON lines, or a transcript of "Name: text" lines (what Hindsight's docs tell callers
 * to send). Both the structural chunker and the builtin extractor read text through here, so a
 * chunk boundary always falls between turns the extractor will recognise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/mstore.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/extract_int.h"
#include "memory/text_int.h"

#define SPEAKER_MAX_BYTES 40
#define SPEAKER_MAX_WORDS 3

typedef struct {
    const char *word;
    eg__spk_class_t cls;
    const char *display;
} role_t;

/* Role words, sorted (case-insensitive lookup). */
static const role_t roles[] = {
    {"agent", EG__SPK_ASSISTANT, "Agent"},
    {"ai", EG__SPK_ASSISTANT, "AI"},
    {"assistant", EG__SPK_ASSISTANT, "Assistant"},
    {"bot", EG__SPK_ASSISTANT, "Bot"},
    {"chatbot", EG__SPK_ASSISTANT, "Chatbot"},
    {"chatgpt", EG__SPK_ASSISTANT, "ChatGPT"},
    {"claude", EG__SPK_ASSISTANT, "Claude"},
    {"client", EG__SPK_USER, "Client"},
    {"copilot", EG__SPK_ASSISTANT, "Copilot"},
    {"customer", EG__SPK_USER, "Customer"},
    {"developer", EG__SPK_SYSTEM, "Developer"},
    {"function", EG__SPK_SYSTEM, "Function"},
    {"gpt", EG__SPK_ASSISTANT, "GPT"},
    {"human", EG__SPK_USER, "Human"},
    {"model", EG__SPK_ASSISTANT, "Model"},
    {"system", EG__SPK_SYSTEM, "System"},
    {"tool", EG__SPK_SYSTEM, "Tool"},
    {"user", EG__SPK_USER, "User"},
};

/* Line labels that look like a speaker but head a note ("Note: ..."), folded, sorted. */
static const char *const labels[] = {
    "answer",    "date",     "description", "disclaimer", "edit",  "error",   "example",  "fyi",
    "important", "location", "nb",          "note",       "notes", "ps",      "question", "re",
    "result",    "results",  "source",      "status",     "step",  "subject", "summary",  "tags",
    "time",      "tip",      "title",       "todo",       "total", "update",  "warning",
};

static const role_t *role_find(const char *s, size_t len)
{
    char low[16];

    if (len == 0 || len >= sizeof(low))
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    low[len] = '\0';
    for (size_t i = 0; i < EG_ARRAY_SIZE(roles); i++)
        if (strcmp(roles[i].word, low) == 0)
            return &roles[i];
    return NULL;
}

eg__spk_class_t eg__conv_speaker_class(const char *s, size_t len)
{
    const role_t *r = role_find(s, len);
    return r ? r->cls : EG__SPK_NAMED;
}

static bool is_label(const char *s, size_t len)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    size_t ntok = 0;
    bool hit = false;

    eg_text_tokenizer_init(&t, s, len, 0);
    while (eg_text_tokenizer_next(&t, &tok)) {
        if (++ntok > 1)
            return false;
        hit = eg__text_in_list(labels, EG_ARRAY_SIZE(labels), tok.term, tok.len);
    }
    return hit;
}

/* A speaker name: 1..3 words of word characters (and . ' - _ inside), each starting with an
 * uppercase letter unless the whole name is a role word; an all-caps word longer than 3 bytes
 * ("TODO") is a label, not a name. */
static bool valid_name(const char *s, size_t len)
{
    size_t words = 0, i = 0, n;

    if (len == 0 || len > SPEAKER_MAX_BYTES)
        return false;
    if (role_find(s, len))
        return true;
    if (is_label(s, len))
        return false;
    while (i < len) {
        size_t start = i, nupper = 0, nletters = 0;
        uint32_t cp = eg__utf8_decode(s, len, i, &n);
        if (!eg__text_is_upper_cp(cp))
            return false;
        while (i < len && s[i] != ' ') {
            cp = eg__utf8_decode(s, len, i, &n);
            if (eg__text_is_word_cp(cp)) {
                nletters++;
                nupper += eg__text_is_upper_cp(cp);
            } else if (!(i > start && (cp == '.' || cp == '\'' || cp == '-' || cp == '_'))) {
                return false;
            }
            i += n;
        }
        if (nletters > 3 && nupper == nletters)
            return false;
        if (++words > SPEAKER_MAX_WORDS)
            return false;
        if (i < len) {
            i++; /* the single space between words */
            if (i == len || s[i] == ' ')
                return false;
        }
    }
    return words > 0;
}

typedef struct {
    size_t name_off, name_len; /* in the input */
    size_t rest_off;           /* the message text after "Name: " */
    int64_t time;
} speaker_line_t;

/* "Name: text", "Name (time): text" or "Name:" alone on the line [off, end). */
static bool speaker_line(const char *s, size_t off, size_t end, speaker_line_t *sl)
{
    size_t i = off, name_end;

    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    sl->name_off = i;
    while (i < end && s[i] != ':' && s[i] != '(' && s[i] != '\n' && i - sl->name_off <= 64)
        i++;
    if (i >= end || (s[i] != ':' && s[i] != '('))
        return false;
    name_end = i;
    while (name_end > sl->name_off && s[name_end - 1] == ' ')
        name_end--;
    sl->name_len = name_end - sl->name_off;
    if (!valid_name(s + sl->name_off, sl->name_len))
        return false;
    sl->time = EG_MEM_TIME_NONE;
    if (s[i] == '(') {
        size_t t0 = i + 1, t1 = t0;
        while (t1 < end && s[t1] != ')')
            t1++;
        if (t1 >= end || t1 - t0 > 64)
            return false;
        int64_t us;
        size_t a = t0, b = t1;
        while (a < b && s[a] == ' ')
            a++;
        while (b > a && s[b - 1] == ' ')
            b--;
        if (eg_text_parse_iso(s + a, b - a, &us) == 0)
            sl->time = us;
        i = t1 + 1;
        while (i < end && s[i] == ' ')
            i++;
        if (i >= end || s[i] != ':')
            return false;
    }
    i++; /* ':' */
    if (i < end && s[i] != ' ' && s[i] != '\t')
        return false; /* "http://...", "10:30" */
    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    sl->rest_off = i;
    return true;
}

/* ---- growing message array ------------------------------------------------------------------ */

typedef struct {
    eg__msg_t *v;
    size_t n, cap;
} msgs_t;

static eg__msg_t *msg_push(eg_arena_t *a, msgs_t *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        eg__msg_t *v = eg_arena_alloc(a, cap * sizeof(*v));
        if (m->n)
            memcpy(v, m->v, m->n * sizeof(*v));
        m->v = v;
        m->cap = cap;
    }
    eg__msg_t *msg = &m->v[m->n++];
    memset(msg, 0, sizeof(*msg));
    msg->time = EG_MEM_TIME_NONE;
    return msg;
}

/* ---- "Name: text" lines --------------------------------------------------------------------- */

static size_t line_end(const char *s, size_t len, size_t i)
{
    const char *nl = memchr(s + i, '\n', len - i);
    return nl ? (size_t)(nl - s) : len;
}

static bool blank(const char *s, size_t off, size_t end)
{
    for (size_t i = off; i < end; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static void speaker_fill(eg_arena_t *a, eg__msg_t *m, const char *s, size_t off, size_t len)
{
    const role_t *r = role_find(s + off, len);

    m->cls = r ? r->cls : EG__SPK_NAMED;
    m->speaker = r ? r->display : eg_arena_strndup(a, s + off, len);
}

static void lines_finish(eg_arena_t *a, const char *s, eg__msg_t *m, size_t text_off, size_t end)
{
    while (end > text_off && (s[end - 1] == '\r' || s[end - 1] == ' ' || s[end - 1] == '\n'))
        end--;
    m->span = end - m->off;
    m->text = eg_arena_strndup(a, s + text_off, end - text_off);
    m->len = end - text_off;
}

static bool parse_lines(eg_arena_t *a, const char *s, size_t len, msgs_t *out)
{
    size_t nonempty = 0, speakers = 0, role_speakers = 0;
    speaker_line_t sl;

    for (size_t i = 0; i < len;) {
        size_t e = line_end(s, len, i);
        if (!blank(s, i, e)) {
            nonempty++;
            if (speaker_line(s, i, e, &sl)) {
                speakers++;
                role_speakers += role_find(s + sl.name_off, sl.name_len) != NULL;
            }
        }
        i = e + 1;
    }
    if (speakers == 0 || speakers * 2 < nonempty || (speakers < 2 && role_speakers == 0))
        return false;

    eg__msg_t *cur = NULL;
    size_t text_off = 0, last_end = 0;
    for (size_t i = 0; i < len;) {
        size_t e = line_end(s, len, i);
        if (!blank(s, i, e)) {
            if (speaker_line(s, i, e, &sl)) {
                if (cur)
                    lines_finish(a, s, cur, text_off, last_end);
                cur = msg_push(a, out);
                cur->off = sl.name_off;
                cur->time = sl.time;
                speaker_fill(a, cur, s, sl.name_off, sl.name_len);
                text_off = sl.rest_off;
            } else if (!cur) {
                /* A header before the first speaker: a message of its own, no speaker. */
                cur = msg_push(a, out);
                cur->off = i;
                text_off = i;
            }
            last_end = e;
        }
        i = e + 1;
    }
    if (cur)
        lines_finish(a, s, cur, text_off, last_end);
    return true;
}

/* ---- JSON messages -------------------------------------------------------------------------- */

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* The text parts of a content list (strings or {"text": ...}) joined by newlines; NULL when it
 * has none. */
static char *json_parts(eg_arena_t *a, const cJSON *v)
{
    size_t total = 0;
    const cJSON *p;

    cJSON_ArrayForEach(p, v)
    {
        const char *t = cJSON_IsString(p) ? p->valuestring : json_str(p, "text");
        if (t)
            total += strlen(t) + 1;
    }
    if (total == 0)
        return NULL;
    char *out = eg_arena_alloc(a, total + 1), *w = out;
    cJSON_ArrayForEach(p, v)
    {
        const char *t = cJSON_IsString(p) ? p->valuestring : json_str(p, "text");
        if (!t)
            continue;
        if (w != out)
            *w++ = '\n';
        size_t l = strlen(t);
        memcpy(w, t, l);
        w += l;
    }
    *w = '\0';
    return out;
}

/* The message content: a string, or a list of parts (strings or {"text": ...}). */
static char *json_content(eg_arena_t *a, const cJSON *o)
{
    static const char *const keys[] = {"content", "text", "message", "body"};

    for (size_t k = 0; k < EG_ARRAY_SIZE(keys); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (cJSON_IsString(v))
            return eg_arena_strdup(a, v->valuestring);
        if (cJSON_IsArray(v)) {
            char *joined = json_parts(a, v);
            if (joined)
                return joined;
        }
    }
    return NULL;
}

/* "key: value, key: value" over the scalar fields, for records that are not messages. */
static char *json_summary(eg_arena_t *a, const cJSON *o)
{
    size_t total = 1;
    const cJSON *v;
    char num[64];

    cJSON_ArrayForEach(v, o)
    {
        if (cJSON_IsString(v))
            total += strlen(v->string) + strlen(v->valuestring) + 4;
        else if (cJSON_IsNumber(v) || cJSON_IsBool(v))
            total += strlen(v->string) + sizeof(num) + 4;
    }
    char *out = eg_arena_alloc(a, total), *w = out;
    cJSON_ArrayForEach(v, o)
    {
        const char *val;
        if (cJSON_IsString(v)) {
            val = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
            snprintf(num, sizeof(num), "%.15g", v->valuedouble);
            val = num;
        } else if (cJSON_IsBool(v)) {
            val = cJSON_IsTrue(v) ? "true" : "false";
        } else {
            continue;
        }
        w += sprintf(w, "%s%s: %s", w == out ? "" : ", ", v->string, val);
    }
    *w = '\0';
    return out;
}

static int64_t json_time(const cJSON *o)
{
    static const char *const keys[] = {"timestamp", "created_at", "time", "date"};
    int64_t us;

    for (size_t k = 0; k < EG_ARRAY_SIZE(keys); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (cJSON_IsString(v) &&
            eg_text_parse_iso(v->valuestring, strlen(v->valuestring), &us) == 0)
            return us;
        /* Epoch seconds, or milliseconds when too large to be seconds. */
        if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e15) {
            double sec = v->valuedouble > 1e11 ? v->valuedouble / 1e3 : v->valuedouble;
            return (int64_t)(sec * 1e6);
        }
    }
    return EG_MEM_TIME_NONE;
}

/* Fill a message from one parsed object. */
static void json_message(eg_arena_t *a, const cJSON *o, eg__msg_t *m)
{
    const char *name = json_str(o, "name"), *role = json_str(o, "role");
    const cJSON *author = cJSON_GetObjectItemCaseSensitive(o, "author");

    if (!role && cJSON_IsObject(author)) {
        role = json_str(author, "role");
        if (!name)
            name = json_str(author, "name");
    }
    if (!role && !name)
        name = json_str(o, "speaker");
    if (!role && !name)
        name = json_str(o, "author");
    if (role) {
        const role_t *r = role_find(role, strlen(role));
        m->cls = r ? r->cls : EG__SPK_NAMED;
        m->speaker = r ? r->display : eg_arena_strdup(a, role);
        if (name && valid_name(name, strlen(name))) {
            m->speaker = eg_arena_strdup(a, name);
            if (m->cls == EG__SPK_USER)
                m->cls = EG__SPK_NAMED;
        }
    } else if (name) {
        const role_t *r = role_find(name, strlen(name));
        m->cls = r ? r->cls : EG__SPK_NAMED;
        m->speaker = r ? r->display : eg_arena_strdup(a, name);
    }
    char *text = json_content(a, o);
    if (!text) {
        text = json_summary(a, o);
        m->speaker = NULL;
        m->cls = EG__SPK_NONE;
    }
    m->text = text;
    m->len = strlen(text);
    m->time = json_time(o);
}

/* Parse s[off, off+n) as exactly one JSON object (surrounding whitespace allowed). */
static cJSON *parse_object(const char *s, size_t off, size_t n)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s + off, n, &end, false);

    if (!o)
        return NULL;
    while (end && end < s + off + n &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!cJSON_IsObject(o) || end != s + off + n) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The byte spans of a top-level JSON array's elements (trimmed); false when s is not one array
 * whose elements are all objects. Elements are validated by parse_object afterwards. */
static bool json_array(eg_arena_t *a, const char *s, size_t len, msgs_t *out)
{
    size_t i = 0, depth = 0, start = 0;
    bool in_str = false, seen_elem = false;

    while (i < len && is_ws(s[i]))
        i++;
    if (i >= len || s[i] != '[')
        return false;
    depth = 1;
    start = ++i;
    for (; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                break;
        }
        if (c == ',' && depth == 1) {
            size_t a0 = start, b0 = i;
            while (a0 < b0 && is_ws(s[a0]))
                a0++;
            while (b0 > a0 && is_ws(s[b0 - 1]))
                b0--;
            if (a0 == b0 || s[a0] != '{')
                return false;
            eg__msg_t *m = msg_push(a, out);
            m->off = a0;
            m->span = b0 - a0;
            start = i + 1;
            seen_elem = true;
        }
    }
    if (i >= len || depth != 0)
        return false;
    /* The last element, then nothing but whitespace after the ']'. */
    size_t a0 = start, b0 = i;
    while (a0 < b0 && is_ws(s[a0]))
        a0++;
    while (b0 > a0 && is_ws(s[b0 - 1]))
        b0--;
    if (a0 < b0) {
        if (s[a0] != '{')
            return false;
        eg__msg_t *m = msg_push(a, out);
        m->off = a0;
        m->span = b0 - a0;
    } else if (seen_elem) {
        return false; /* trailing comma */
    }
    for (i++; i < len; i++)
        if (!is_ws(s[i]))
            return false;
    return out->n > 0;
}

static bool json_lines(eg_arena_t *a, const char *s, size_t len, msgs_t *out)
{
    for (size_t i = 0; i < len;) {
        size_t e = line_end(s, len, i), a0 = i, b0 = e;
        while (a0 < b0 && is_ws(s[a0]))
            a0++;
        while (b0 > a0 && is_ws(s[b0 - 1]))
            b0--;
        if (a0 < b0) {
            if (s[a0] != '{' || s[b0 - 1] != '}')
                return false;
            eg__msg_t *m = msg_push(a, out);
            m->off = a0;
            m->span = b0 - a0;
        }
        i = e + 1;
    }
    return out->n > 0;
}

/* Parse every element found by json_array / json_lines; false (and nothing kept) when one is
 * not an object. */
static bool json_fill(eg_arena_t *a, const char *s, msgs_t *m)
{
    for (size_t k = 0; k < m->n; k++) {
        cJSON *o = parse_object(s, m->v[k].off, m->v[k].span);
        if (!o)
            return false;
        json_message(a, o, &m->v[k]);
        cJSON_Delete(o);
    }
    return true;
}

eg__conv_kind_t eg__conv_parse(eg_arena_t *a, const char *text, size_t len, eg__msg_t **out,
                               size_t *n)
{
    msgs_t m = {0};
    eg__conv_kind_t kind = EG__CONV_NONE;
    size_t i = 0;

    *out = NULL;
    *n = 0;
    while (i < len && is_ws(text[i]))
        i++;
    if (i < len && text[i] == '[') {
        if (json_array(a, text, len, &m) && json_fill(a, text, &m))
            kind = EG__CONV_JSON;
    } else if (i < len && text[i] == '{') {
        if (json_lines(a, text, len, &m) && json_fill(a, text, &m))
            kind = EG__CONV_JSONL;
    } else if (parse_lines(a, text, len, &m)) {
        kind = EG__CONV_LINES;
    }
    if (kind == EG__CONV_NONE)
        return kind;
    *out = m.v;
    *n = m.n;
    return kind;
}
