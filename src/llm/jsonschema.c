/* The JSON Schema subset a model's structured answer is checked against. Models given a schema
 * in JSON mode (or servers that accept json_schema without enforcing it) still drift: a missing
 * field, a string where a number belongs, an extra key. The checks here are the ones those
 * drifts trip, with a message precise enough to send back to the model for a repair. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "llm/llm_int.h"

#define PATH_MAX_DEPTH 64

typedef struct {
    eg_buf_t path;
    char *err;
    size_t errlen;
    int depth;
} vctx_t;

static const char *type_of(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    return "unknown";
}

static bool is_integer(const cJSON *v)
{
    double d = v->valuedouble;
    return cJSON_IsNumber(v) && isfinite(d) && floor(d) == d;
}

static bool type_matches(const char *t, const cJSON *v)
{
    if (strcmp(t, "integer") == 0)
        return is_integer(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    return strcmp(t, type_of(v)) == 0;
}

static int fail(vctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(vctx_t *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (c->err != NULL && c->errlen > 0) {
        n = snprintf(c->err, c->errlen, "%s: ", c->path.data != NULL ? c->path.data : "$");
        if (n >= 0 && (size_t)n < c->errlen) {
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return EG_EINVAL;
}

/* Two JSON values are equal (for enum and const). */
static bool json_equal(const cJSON *a, const cJSON *b)
{
    return cJSON_Compare(a, b, true);
}

static int check(vctx_t *c, const cJSON *s, const cJSON *v);

static int check_child(vctx_t *c, const cJSON *s, const cJSON *v, const char *key, int index)
{
    size_t keep = c->path.len;
    int rc;

    if (key != NULL)
        eg_buf_printf(&c->path, ".%s", key);
    else
        eg_buf_printf(&c->path, "[%d]", index);
    rc = check(c, s, v);
    c->path.len = keep;
    c->path.data[keep] = '\0';
    return rc;
}

static int check_type(vctx_t *c, const cJSON *type, const cJSON *v)
{
    const cJSON *t;
    eg_buf_t want = EG_BUF_INIT;
    int rc;

    if (cJSON_IsString(type)) {
        if (type_matches(type->valuestring, v))
            return 0;
        return fail(c, "expected %s, got %s", type->valuestring, type_of(v));
    }
    if (!cJSON_IsArray(type))
        return 0;
    cJSON_ArrayForEach(t, type)
    {
        if (cJSON_IsString(t) && type_matches(t->valuestring, v))
            return 0;
    }
    cJSON_ArrayForEach(t, type)
    {
        if (cJSON_IsString(t))
            eg_buf_printf(&want, "%s%s", want.len ? " or " : "", t->valuestring);
    }
    rc = fail(c, "expected %s, got %s", want.data != NULL ? want.data : "nothing", type_of(v));
    eg_buf_free(&want);
    return rc;
}

static int check_object(vctx_t *c, const cJSON *s, const cJSON *v)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *it;
    int rc;

    cJSON_ArrayForEach(it, req)
    {
        if (cJSON_IsString(it) && cJSON_GetObjectItemCaseSensitive(v, it->valuestring) == NULL)
            return fail(c, "missing required property \"%s\"", it->valuestring);
    }
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *ps =
            cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, it->string) : NULL;
        if (ps != NULL) {
            if ((rc = check_child(c, ps, it, it->string, 0)) != 0)
                return rc;
        } else if (cJSON_IsFalse(addl)) {
            return fail(c, "unexpected property \"%s\"", it->string);
        } else if (cJSON_IsObject(addl)) {
            if ((rc = check_child(c, addl, it, it->string, 0)) != 0)
                return rc;
        }
    }
    return 0;
}

static int check_array(vctx_t *c, const cJSON *s, const cJSON *v)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    int n = cJSON_GetArraySize(v), i = 0, rc;
    const cJSON *it;

    if (cJSON_IsNumber(mn) && n < mn->valuedouble)
        return fail(c, "%d items, fewer than minItems %g", n, mn->valuedouble);
    if (cJSON_IsNumber(mx) && n > mx->valuedouble)
        return fail(c, "%d items, more than maxItems %g", n, mx->valuedouble);
    if (!cJSON_IsObject(items))
        return 0;
    cJSON_ArrayForEach(it, v)
    {
        if ((rc = check_child(c, items, it, NULL, i++)) != 0)
            return rc;
    }
    return 0;
}

/* Length of a UTF-8 string in code points (what JSON Schema counts). */
static size_t utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int check(vctx_t *c, const cJSON *s, const cJSON *v)
{
    const cJSON *k;
    int rc;

    if (!cJSON_IsObject(s))
        return 0; /* true, {} or something we do not read: anything goes */
    if (++c->depth > PATH_MAX_DEPTH) {
        c->depth--;
        return fail(c, "nested too deeply");
    }
    rc = 0;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "type")) != NULL &&
        (rc = check_type(c, k, v)) != 0)
        goto out;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "enum")) != NULL && cJSON_IsArray(k)) {
        const cJSON *e;
        bool found = false;

        cJSON_ArrayForEach(e, k)
        {
            if (json_equal(e, v)) {
                found = true;
                break;
            }
        }
        if (!found) {
            char *txt = cJSON_PrintUnformatted(k);
            rc = fail(c, "value is not one of %s", txt != NULL ? txt : "the enum");
            cJSON_free(txt);
            goto out;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "const")) != NULL && !json_equal(k, v)) {
        rc = fail(c, "value is not the required constant");
        goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf")) != NULL && cJSON_IsArray(k)) {
        const cJSON *alt;
        bool any = false;

        cJSON_ArrayForEach(alt, k)
        {
            vctx_t sub = {EG_BUF_INIT, NULL, 0, c->depth};
            eg_buf_puts(&sub.path, "$");
            any = check(&sub, alt, v) == 0;
            eg_buf_free(&sub.path);
            if (any)
                break;
        }
        if (!any) {
            rc = fail(c, "value matches none of anyOf");
            goto out;
        }
    }
    if (cJSON_IsNumber(v)) {
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");

        if (cJSON_IsNumber(mn) && v->valuedouble < mn->valuedouble) {
            rc = fail(c, "%g is less than minimum %g", v->valuedouble, mn->valuedouble);
            goto out;
        }
        if (cJSON_IsNumber(mx) && v->valuedouble > mx->valuedouble) {
            rc = fail(c, "%g is greater than maximum %g", v->valuedouble, mx->valuedouble);
            goto out;
        }
    } else if (cJSON_IsString(v)) {
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minLength");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
        size_t n = utf8_len(v->valuestring);

        if (cJSON_IsNumber(mn) && (double)n < mn->valuedouble) {
            rc = fail(c, "string shorter than minLength %g", mn->valuedouble);
            goto out;
        }
        if (cJSON_IsNumber(mx) && (double)n > mx->valuedouble) {
            rc = fail(c, "string longer than maxLength %g", mx->valuedouble);
            goto out;
        }
    } else if (cJSON_IsObject(v)) {
        rc = check_object(c, s, v);
    } else if (cJSON_IsArray(v)) {
        rc = check_array(c, s, v);
    }
out:
    c->depth--;
    return rc;
}

int eg__jschema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen)
{
    vctx_t c = {EG_BUF_INIT, err, errlen, 0};
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    eg_buf_puts(&c.path, "$");
    rc = check(&c, schema, v);
    eg_buf_free(&c.path);
    return rc;
}
