/* The OpenAI-compatible wire format as pure functions: chat and embeddings request bodies, chat
 * responses whole or streamed (SSE chunks), error bodies, Retry-After. Nothing here does I/O, so
 * every odd shape a server or a model produces can be tested byte by byte. */
#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engram/error.h"
#include "engram/util.h"
#include "llm/llm_int.h"

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- request ----------------------------------------------------------------------------------
 */

static const char *role_name(eg_llm_role_t r)
{
    switch (r) {
    case EG_LLM_SYSTEM:
        return "system";
    case EG_LLM_USER:
        return "user";
    case EG_LLM_ASSISTANT:
        return "assistant";
    case EG_LLM_TOOL:
        return "tool";
    }
    return NULL;
}

/* The instruction JSON mode carries in place of response_format's schema. */
static char *json_mode_instruction(const char *base, const cJSON *schema)
{
    char *txt = cJSON_PrintUnformatted(schema);
    eg_buf_t b = EG_BUF_INIT;

    if (base != NULL && base[0] != '\0')
        eg_buf_printf(&b, "%s\n\n", base);
    eg_buf_printf(&b,
                  "Respond with a single JSON value only (no prose, no code fences) that "
                  "matches this JSON Schema:\n%s",
                  txt != NULL ? txt : "{}");
    cJSON_free(txt);
    return b.data;
}

static cJSON *msg_json(const eg_llm_msg_t *m, const char *content_override, char *err,
                       size_t errlen)
{
    const char *role = role_name(m->role);
    const char *content = content_override != NULL ? content_override : m->content;
    cJSON *o;

    if (role == NULL) {
        errf(err, errlen, "message with an unknown role %d", (int)m->role);
        return NULL;
    }
    if (m->role == EG_LLM_TOOL && m->tool_call_id == NULL) {
        errf(err, errlen, "tool message without tool_call_id");
        return NULL;
    }
    if (content == NULL && !(m->role == EG_LLM_ASSISTANT && m->ntool_calls > 0)) {
        errf(err, errlen, "%s message without content", role);
        return NULL;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "role", role);
    if (content != NULL)
        cJSON_AddStringToObject(o, "content", content);
    else
        cJSON_AddNullToObject(o, "content");
    if (m->role == EG_LLM_ASSISTANT && m->ntool_calls > 0) {
        cJSON *tcs = cJSON_AddArrayToObject(o, "tool_calls");

        for (size_t i = 0; i < m->ntool_calls; i++) {
            const eg_llm_tool_call_t *tc = &m->tool_calls[i];
            cJSON *t = cJSON_CreateObject(), *fn;

            cJSON_AddStringToObject(t, "id", tc->id != NULL ? tc->id : "");
            cJSON_AddStringToObject(t, "type", "function");
            fn = cJSON_AddObjectToObject(t, "function");
            cJSON_AddStringToObject(fn, "name", tc->name != NULL ? tc->name : "");
            cJSON_AddStringToObject(fn, "arguments", tc->arguments != NULL ? tc->arguments : "{}");
            cJSON_AddItemToArray(tcs, t);
        }
    }
    if (m->role == EG_LLM_TOOL)
        cJSON_AddStringToObject(o, "tool_call_id", m->tool_call_id);
    return o;
}

static cJSON *tools_json(const eg_llm_req_t *req, char *err, size_t errlen)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; i < req->ntools; i++) {
        const eg_llm_tool_t *t = &req->tools[i];
        cJSON *o, *fn, *params;

        if (t->name == NULL || t->name[0] == '\0') {
            errf(err, errlen, "tool %zu has no name", i);
            goto fail;
        }
        if (t->parameters != NULL) {
            params = cJSON_Parse(t->parameters);
            if (!cJSON_IsObject(params)) {
                cJSON_Delete(params);
                errf(err, errlen, "tool \"%s\": parameters are not a JSON Schema object", t->name);
                goto fail;
            }
        } else {
            params = cJSON_CreateObject();
            cJSON_AddStringToObject(params, "type", "object");
            cJSON_AddObjectToObject(params, "properties");
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "function");
        fn = cJSON_AddObjectToObject(o, "function");
        cJSON_AddStringToObject(fn, "name", t->name);
        if (t->description != NULL)
            cJSON_AddStringToObject(fn, "description", t->description);
        cJSON_AddItemToObject(fn, "parameters", params);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;

fail:
    cJSON_Delete(arr);
    return NULL;
}

char *eg__oai_chat_body(const eg_llm_req_t *req, const eg__oai_body_opts_t *o, char *err,
                        size_t errlen)
{
    cJSON *root = cJSON_CreateObject(), *msgs, *m;
    char *instr = NULL, *out = NULL;
    bool json_mode = o->json_mode && o->schema != NULL;
    bool put_instr = false;

    cJSON_AddStringToObject(root, "model", o->model != NULL ? o->model : "");
    msgs = cJSON_AddArrayToObject(root, "messages");
    if (json_mode) {
        size_t first_sys = req->nmsgs;

        for (size_t i = 0; i < req->nmsgs; i++) {
            if (req->msgs[i].role == EG_LLM_SYSTEM) {
                first_sys = i;
                break;
            }
        }
        if (first_sys == req->nmsgs) {
            instr = json_mode_instruction(NULL, o->schema);
            m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "system");
            cJSON_AddStringToObject(m, "content", instr);
            cJSON_AddItemToArray(msgs, m);
            free(instr);
            instr = NULL;
        } else {
            instr = json_mode_instruction(req->msgs[first_sys].content, o->schema);
            put_instr = true;
        }
    }
    for (size_t i = 0; i < req->nmsgs; i++) {
        const char *over = NULL;

        if (put_instr && req->msgs[i].role == EG_LLM_SYSTEM) {
            over = instr;
            put_instr = false;
        }
        if ((m = msg_json(&req->msgs[i], over, err, errlen)) == NULL)
            goto done;
        cJSON_AddItemToArray(msgs, m);
    }
    if (o->repair_answer != NULL) {
        char *ask = NULL;
        eg_buf_t b = EG_BUF_INIT;

        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", o->repair_answer);
        cJSON_AddItemToArray(msgs, m);
        eg_buf_printf(&b,
                      "Your answer does not match the required JSON schema: %s. Reply again "
                      "with only the corrected JSON.",
                      o->repair_error != NULL ? o->repair_error : "invalid JSON");
        ask = b.data;
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", ask);
        cJSON_AddItemToArray(msgs, m);
        eg_buf_free(&b);
    }
    if (req->ntools > 0) {
        cJSON *tools = tools_json(req, err, errlen);

        if (tools == NULL)
            goto done;
        cJSON_AddItemToObject(root, "tools", tools);
        switch (req->tool_choice) {
        case EG_LLM_TOOLS_AUTO:
            break;
        case EG_LLM_TOOLS_NONE:
            cJSON_AddStringToObject(root, "tool_choice", "none");
            break;
        case EG_LLM_TOOLS_REQUIRED:
            cJSON_AddStringToObject(root, "tool_choice", "required");
            break;
        case EG_LLM_TOOLS_NAMED: {
            cJSON *tc, *fn;

            if (req->tool_choice_name == NULL) {
                errf(err, errlen, "tool_choice names no tool");
                goto done;
            }
            tc = cJSON_AddObjectToObject(root, "tool_choice");
            cJSON_AddStringToObject(tc, "type", "function");
            fn = cJSON_AddObjectToObject(tc, "function");
            cJSON_AddStringToObject(fn, "name", req->tool_choice_name);
            break;
        }
        }
    }
    if (o->schema != NULL) {
        cJSON *rf = cJSON_AddObjectToObject(root, "response_format");

        if (json_mode) {
            cJSON_AddStringToObject(rf, "type", "json_object");
        } else {
            cJSON *js;

            cJSON_AddStringToObject(rf, "type", "json_schema");
            js = cJSON_AddObjectToObject(rf, "json_schema");
            cJSON_AddStringToObject(js, "name",
                                    req->schema_name != NULL ? req->schema_name : "response");
            cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(o->schema, true));
            cJSON_AddTrueToObject(js, "strict");
        }
    }
    if (req->temperature >= 0)
        cJSON_AddNumberToObject(root, "temperature", req->temperature);
    if (req->top_p > 0)
        cJSON_AddNumberToObject(root, "top_p", req->top_p);
    if (req->max_tokens > 0)
        cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens);
    if (o->stream) {
        cJSON_AddTrueToObject(root, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage");
    }
    out = cJSON_PrintUnformatted(root);
done:
    free(instr);
    cJSON_Delete(root);
    return out;
}

/* ---- responses --------------------------------------------------------------------------------
 */

void eg__oai_result_reset(eg__oai_result_t *r)
{
    eg_buf_free(&r->content);
    for (size_t i = 0; i < r->ntcs; i++) {
        free(r->tcs[i].id);
        free(r->tcs[i].name);
        eg_buf_free(&r->tcs[i].args);
    }
    free(r->tcs);
    free(r->finish_reason);
    free(r->model);
    memset(r, 0, sizeof(*r));
}

static int64_t num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

void eg__oai_parse_usage(const cJSON *usage, eg_usage_t *u)
{
    memset(u, 0, sizeof(*u));
    if (!cJSON_IsObject(usage))
        return;
    u->input_tokens = num(usage, "prompt_tokens");
    u->output_tokens = num(usage, "completion_tokens");
    u->total_tokens = num(usage, "total_tokens");
    if (u->total_tokens == 0)
        u->total_tokens = u->input_tokens + u->output_tokens;
    u->cached_tokens =
        num(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"), "cached_tokens");
    u->thoughts_tokens = num(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details"),
                             "reasoning_tokens");
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static eg__oai_tc_t *tc_at(eg__oai_result_t *r, size_t i)
{
    if (i >= r->ntcs) {
        r->tcs = eg_xrealloc(r->tcs, (i + 1) * sizeof(*r->tcs));
        memset(r->tcs + r->ntcs, 0, (i + 1 - r->ntcs) * sizeof(*r->tcs));
        r->ntcs = i + 1;
    }
    return &r->tcs[i];
}

/* Arguments are normally a JSON string; a few servers send the object itself. */
static void append_args(eg_buf_t *b, const cJSON *args)
{
    if (cJSON_IsString(args)) {
        eg_buf_puts(b, args->valuestring);
    } else if (args != NULL && !cJSON_IsNull(args)) {
        char *txt = cJSON_PrintUnformatted(args);
        if (txt != NULL)
            eg_buf_puts(b, txt);
        cJSON_free(txt);
    }
}

/* Calls without an id (some local servers) get one, so a tool result can still answer them. */
static void fill_missing_ids(eg__oai_result_t *r)
{
    for (size_t i = 0; i < r->ntcs; i++) {
        if (r->tcs[i].id == NULL) {
            char id[32];
            snprintf(id, sizeof(id), "call_%zu", i);
            r->tcs[i].id = eg_xstrdup(id);
        }
        if (r->tcs[i].name == NULL)
            r->tcs[i].name = eg_xstrdup("");
        if (r->tcs[i].args.data == NULL)
            eg_buf_puts(&r->tcs[i].args, "");
    }
}

int eg__oai_parse_response(const char *body, size_t len, eg__oai_result_t *r, char *err,
                           size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *choice, *msg, *tcs, *tc;
    const char *s;
    int rc = EG_EUPSTREAM;

    eg__oai_result_reset(r);
    if (!cJSON_IsObject(root)) {
        errf(err, errlen, "response is not a JSON object");
        goto done;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "error") != NULL) {
        char msgbuf[200];
        eg__oai_error_message(body, len, msgbuf, sizeof(msgbuf));
        errf(err, errlen, "server error: %s", msgbuf);
        goto done;
    }
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(msg)) {
        errf(err, errlen, "response has no choices[0].message");
        goto done;
    }
    if ((s = str(msg, "content")) != NULL)
        eg_buf_puts(&r->content, s);
    tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    cJSON_ArrayForEach(tc, tcs)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        eg__oai_tc_t *t = tc_at(r, r->ntcs);

        if ((s = str(tc, "id")) != NULL)
            t->id = eg_xstrdup(s);
        if ((s = str(fn, "name")) != NULL)
            t->name = eg_xstrdup(s);
        append_args(&t->args, cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
    }
    fill_missing_ids(r);
    if ((s = str(choice, "finish_reason")) != NULL)
        r->finish_reason = eg_xstrdup(s);
    if ((s = str(root, "model")) != NULL)
        r->model = eg_xstrdup(s);
    eg__oai_parse_usage(cJSON_GetObjectItemCaseSensitive(root, "usage"), &r->usage);
    if (r->content.data == NULL)
        eg_buf_puts(&r->content, "");
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- streams ----------------------------------------------------------------------------------
 */

void eg__oai_sse_init(eg__oai_sse_t *p, eg__oai_result_t *res, eg_llm_delta_fn on_delta,
                      void *udata)
{
    memset(p, 0, sizeof(*p));
    p->res = res;
    p->on_delta = on_delta;
    p->udata = udata;
    eg__oai_result_reset(res);
}

void eg__oai_sse_free(eg__oai_sse_t *p)
{
    eg_buf_free(&p->line);
    eg_buf_free(&p->data);
}

/* One chunk object of the stream. */
static int sse_chunk(eg__oai_sse_t *p, const char *data, size_t len)
{
    eg__oai_result_t *r = p->res;
    cJSON *root = cJSON_ParseWithLength(data, len);
    const cJSON *choices, *choice, *usage;
    const char *s;
    int rc = 0;

    if (!cJSON_IsObject(root)) {
        snprintf(p->err, sizeof(p->err), "stream chunk is not a JSON object");
        rc = EG_EUPSTREAM;
        goto done;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "error") != NULL) {
        char msg[200];
        eg__oai_error_message(data, len, msg, sizeof(msg));
        snprintf(p->err, sizeof(p->err), "server error in stream: %s", msg);
        rc = EG_EUPSTREAM;
        goto done;
    }
    if (r->model == NULL && (s = str(root, "model")) != NULL)
        r->model = eg_xstrdup(s);
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage))
        eg__oai_parse_usage(usage, &r->usage); /* cumulative where a server repeats it */
    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    cJSON_ArrayForEach(choice, choices)
    {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta"), *tc;

        if (num(choice, "index") != 0)
            continue;
        if ((s = str(delta, "content")) != NULL && s[0] != '\0') {
            size_t n = strlen(s);

            eg_buf_append(&r->content, s, n);
            if (p->on_delta != NULL) {
                p->deltas = true;
                if (p->on_delta(p->udata, s, n) != 0) {
                    snprintf(p->err, sizeof(p->err), "stream aborted by the caller");
                    rc = EG_ECANCELED;
                    goto done;
                }
            }
        }
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(delta, "tool_calls"))
        {
            const cJSON *idx = cJSON_GetObjectItemCaseSensitive(tc, "index");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            size_t i = cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < 1024
                           ? (size_t)idx->valuedouble
                           : r->ntcs;
            eg__oai_tc_t *t = tc_at(r, i);

            if ((s = str(tc, "id")) != NULL && s[0] != '\0' && t->id == NULL)
                t->id = eg_xstrdup(s);
            /* The name comes whole in the call's first delta; later ones may repeat it. */
            if ((s = str(fn, "name")) != NULL && s[0] != '\0' && t->name == NULL)
                t->name = eg_xstrdup(s);
            append_args(&t->args, cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
        }
        if ((s = str(choice, "finish_reason")) != NULL) {
            free(r->finish_reason);
            r->finish_reason = eg_xstrdup(s);
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* The end of an event (a blank line): its data is one chunk or the [DONE] marker. */
static int sse_dispatch(eg__oai_sse_t *p)
{
    int rc = 0;

    if (p->data.len == 0)
        return 0;
    if (p->data.len == 6 && memcmp(p->data.data, "[DONE]", 6) == 0)
        p->done = true;
    else if (!p->done)
        rc = sse_chunk(p, p->data.data, p->data.len);
    eg_buf_clear(&p->data);
    return rc;
}

static int sse_line(eg__oai_sse_t *p, const char *l, size_t n)
{
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (n == 0)
        return sse_dispatch(p);
    if (l[0] == ':')
        return 0; /* comment / keep-alive */
    if (n >= 5 && memcmp(l, "data:", 5) == 0) {
        l += 5;
        n -= 5;
        if (n > 0 && l[0] == ' ') {
            l++;
            n--;
        }
        if (p->data.len > 0)
            eg_buf_append(&p->data, "\n", 1);
        eg_buf_append(&p->data, l, n);
        return 0;
    }
    /* A bare JSON line (some servers forget the "data:" prefix) is taken as a whole event. */
    if (l[0] == '{') {
        int rc = sse_dispatch(p);
        if (rc != 0)
            return rc;
        eg_buf_append(&p->data, l, n);
        return sse_dispatch(p);
    }
    return 0; /* event:, id:, retry: */
}

int eg__oai_sse_feed(eg__oai_sse_t *p, const char *data, size_t len)
{
    const char *end = data + len;
    int rc;

    while (data < end) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));

        if (nl == NULL) {
            eg_buf_append(&p->line, data, (size_t)(end - data));
            return 0;
        }
        if (p->line.len > 0) {
            eg_buf_append(&p->line, data, (size_t)(nl - data));
            rc = sse_line(p, p->line.data, p->line.len);
            eg_buf_clear(&p->line);
        } else {
            rc = sse_line(p, data, (size_t)(nl - data));
        }
        if (rc != 0)
            return rc;
        data = nl + 1;
    }
    return 0;
}

int eg__oai_sse_end(eg__oai_sse_t *p)
{
    bool cut = p->line.len > 0 || p->data.len > 0; /* an event without its blank line */
    int rc = 0;

    if (p->line.len > 0) {
        rc = sse_line(p, p->line.data, p->line.len);
        eg_buf_clear(&p->line);
    }
    if (rc == 0)
        rc = sse_dispatch(p);
    if (rc == EG_EUPSTREAM && cut && !p->done) {
        snprintf(p->err, sizeof(p->err),
                 "stream ended early (cut inside an event after %zu content bytes)",
                 p->res->content.len);
        return rc;
    }
    if (rc != 0)
        return rc;
    fill_missing_ids(p->res);
    if (p->res->content.data == NULL)
        eg_buf_puts(&p->res->content, "");
    if (!p->done && p->res->finish_reason == NULL) {
        snprintf(p->err, sizeof(p->err),
                 "stream ended early (no finish_reason and no [DONE] after %zu content bytes)",
                 p->res->content.len);
        return EG_EUPSTREAM;
    }
    return 0;
}

/* ---- errors and retries -----------------------------------------------------------------------
 */

static void sanitize(const char *s, size_t len, char *out, size_t outlen)
{
    size_t j = 0;

    if (outlen == 0)
        return;
    for (size_t i = 0; i < len && j + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

void eg__oai_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    cJSON *root = body != NULL ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *s = NULL;

    if (cJSON_IsObject(e))
        s = str(e, "message");
    else if (cJSON_IsString(e))
        s = e->valuestring;
    if (s == NULL)
        s = str(root, "message");
    if (s == NULL)
        s = str(root, "detail");
    if (s != NULL)
        sanitize(s, strlen(s), out, outlen);
    else if (body != NULL && len > 0)
        sanitize(body, EG_MIN(len, (size_t)200), out, outlen);
    else
        snprintf(out, outlen, "(empty body)");
    cJSON_Delete(root);
}

bool eg__oai_schema_unsupported(const char *msg)
{
    return msg != NULL &&
           (strcasestr(msg, "response_format") != NULL || strcasestr(msg, "json_schema") != NULL);
}

int64_t eg__oai_retry_after_ms(const char *v, int64_t now_ms)
{
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime */
    };
    char *end;
    double secs;

    if (v == NULL)
        return -1;
    while (isspace((unsigned char)*v))
        v++;
    if (isdigit((unsigned char)*v)) {
        secs = strtod(v, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (*end == '\0' && isfinite(secs) && secs >= 0)
            return secs > 1e9 ? INT64_C(1000000000000) : (int64_t)(secs * 1000.0 + 0.5);
        return -1;
    }
    for (size_t i = 0; i < EG_ARRAY_SIZE(formats); i++) {
        struct tm tm;

        memset(&tm, 0, sizeof(tm));
        end = strptime(v, formats[i], &tm);
        if (end != NULL) {
            while (isspace((unsigned char)*end))
                end++;
            if (*end == '\0') {
                int64_t at = (int64_t)timegm(&tm) * 1000;
                return at > now_ms ? at - now_ms : 0;
            }
        }
    }
    return -1;
}

void eg__oai_strip_fences(const char *s, size_t len, const char **out, size_t *outlen)
{
    const char *end = s + len, *f;

    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s < end && *s != '{' && *s != '[' && (f = memmem(s, (size_t)(end - s), "```", 3)) != NULL) {
        const char *body = memchr(f, '\n', (size_t)(end - f));
        const char *close;

        if (body != NULL) {
            body++;
            close = memmem(body, (size_t)(end - body), "```", 3);
            s = body;
            end = close != NULL ? close : end;
            while (s < end && isspace((unsigned char)*s))
                s++;
            while (end > s && isspace((unsigned char)end[-1]))
                end--;
        }
    }
    *out = s;
    *outlen = (size_t)(end - s);
}

/* ---- embeddings -------------------------------------------------------------------------------
 */

char *eg__oai_embed_body(const char *model, const char *const *texts, size_t n, size_t dim)
{
    cJSON *root = cJSON_CreateObject(), *in;
    char *out;

    cJSON_AddStringToObject(root, "model", model != NULL ? model : "");
    in = cJSON_AddArrayToObject(root, "input");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(in, cJSON_CreateString(texts[i] != NULL ? texts[i] : ""));
    if (dim > 0)
        cJSON_AddNumberToObject(root, "dimensions", (double)dim);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

int eg__oai_embed_parse(const char *body, size_t len, size_t n, size_t dim, float *out, char *err,
                        size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data"), *it;
    bool *seen = eg_xcalloc(n > 0 ? n : 1, sizeof(bool));
    size_t pos = 0, got = 0;
    int rc = EG_EUPSTREAM;

    if (!cJSON_IsArray(data)) {
        errf(err, errlen, "embeddings response has no data array");
        goto done;
    }
    cJSON_ArrayForEach(it, data)
    {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(it, "index");
        const cJSON *vec = cJSON_GetObjectItemCaseSensitive(it, "embedding"), *x;
        size_t i = pos, k = 0;
        double norm = 0;
        float *v;

        if (cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < (double)n)
            i = (size_t)idx->valuedouble;
        else if (idx != NULL && !cJSON_IsNull(idx))
            i = n;
        pos++;
        if (i >= n || seen[i]) {
            errf(err, errlen, "embeddings response: bad or repeated index");
            goto done;
        }
        if (!cJSON_IsArray(vec) || (size_t)cJSON_GetArraySize(vec) != dim) {
            errf(err, errlen, "embedding %zu has %d dimensions, expected %zu", i,
                 cJSON_IsArray(vec) ? cJSON_GetArraySize(vec) : 0, dim);
            goto done;
        }
        v = out + i * dim;
        cJSON_ArrayForEach(x, vec)
        {
            if (!cJSON_IsNumber(x)) {
                errf(err, errlen, "embedding %zu holds a non-number", i);
                goto done;
            }
            v[k++] = (float)x->valuedouble;
            norm += x->valuedouble * x->valuedouble;
        }
        if (norm > 0) {
            float inv = (float)(1.0 / sqrt(norm));
            for (k = 0; k < dim; k++)
                v[k] *= inv;
        }
        seen[i] = true;
        got++;
    }
    if (got != n) {
        errf(err, errlen, "embeddings response holds %zu vectors for %zu inputs", got, n);
        goto done;
    }
    rc = 0;
done:
    free(seen);
    cJSON_Delete(root);
    return rc;
}
