/* Data formats to readable text: JSON as indented "key: value" lines (YAML-like, so a chunk
 * of it still says what each value is), CSV and TSV as one line per row with the header row
 * kept. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/error.h"
#include "library/docconv_int.h"

/* ---- JSON ----------------------------------------------------------------------------------- */

/* Start a line at column ind; the first line of an array item carries its pending "- " marks
 * (one per array level opened on that line) in place of the last columns of indentation. */
static void indent(eg_buf_t *out, int ind, int *dashes)
{
    for (int i = 0; i < ind - 2 * *dashes; i++)
        eg_buf_append(out, " ", 1);
    for (; *dashes > 0; --*dashes)
        eg_buf_append(out, "- ", 2);
}

static bool is_container(const cJSON *j)
{
    return (cJSON_IsObject(j) || cJSON_IsArray(j)) && j->child;
}

/* A scalar (or an empty container) on the rest of the current line. */
static void scalar(eg_buf_t *out, const cJSON *j)
{
    if (cJSON_IsString(j)) {
        eg_buf_puts(out, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            eg_buf_puts(out, s);
        free(s);
    } else if (cJSON_IsBool(j)) {
        eg_buf_puts(out, cJSON_IsTrue(j) ? "true" : "false");
    } else if (cJSON_IsNull(j)) {
        eg_buf_puts(out, "null");
    }
    /* empty objects and arrays: nothing after the key */
}

static void emit(eg_buf_t *out, const cJSON *j, int ind, int dashes)
{
    const cJSON *c;
    if (cJSON_IsObject(j)) {
        cJSON_ArrayForEach(c, j)
        {
            indent(out, ind, &dashes);
            eg_buf_puts(out, c->string ? c->string : "");
            eg_buf_append(out, ":", 1);
            if (is_container(c)) {
                eg_buf_append(out, "\n", 1);
                emit(out, c, ind + 2, 0);
            } else {
                if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
                    eg_buf_append(out, " ", 1);
                scalar(out, c);
                eg_buf_append(out, "\n", 1);
            }
        }
    } else if (cJSON_IsArray(j)) {
        cJSON_ArrayForEach(c, j)
        {
            if (is_container(c)) {
                emit(out, c, ind + 2, dashes + 1);
                dashes = 0;
            } else {
                indent(out, ind, &dashes);
                eg_buf_append(out, "- ", 2);
                scalar(out, c);
                eg_buf_append(out, "\n", 1);
            }
        }
    } else {
        indent(out, ind, &dashes);
        scalar(out, j);
        eg_buf_append(out, "\n", 1);
    }
}

int eg__doc_json(eg_buf_t *out, const char *s, size_t len, const char **why)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, false);
    if (!j) {
        *why = "unreadable JSON: malformed document";
        return EG_EINVAL;
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < s + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j);
            *why = "unreadable JSON: data after the document";
            return EG_EINVAL;
        }
    emit(out, j, 0, 0);
    cJSON_Delete(j);
    return 0;
}

/* ---- CSV / TSV ------------------------------------------------------------------------------ */

/* The separator of the first record: comma, semicolon or tab, whichever appears most outside
 * quotes (comma on a tie). */
static char guess_sep(const char *s, size_t len)
{
    size_t n[3] = {0, 0, 0};
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"')
            q = !q;
        else if (!q && c == '\n')
            break;
        else if (!q)
            n[0] += c == ',', n[1] += c == ';', n[2] += c == '\t';
    }
    if (n[1] > n[0] && n[1] >= n[2])
        return ';';
    if (n[2] > n[0] && n[2] > n[1])
        return '\t';
    return ',';
}

void eg__doc_csv(eg_buf_t *out, const char *s, size_t len, char sep)
{
    eg_buf_t row = EG_BUF_INIT, field = EG_BUF_INIT;
    size_t nfields = 0;
    bool any = false; /* the row has a non-empty field */

    if (!sep)
        sep = guess_sep(s, len);
    for (size_t i = 0; i <= len;) {
        /* One field starting at i. */
        bool quoted = false;
        eg_buf_clear(&field);
        while (i < len && (s[i] == ' ' || (s[i] == '\t' && sep != '\t')))
            i++;
        if (i < len && s[i] == '"') {
            quoted = true;
            i++;
            while (i < len) {
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        eg_buf_append(&field, "\"", 1);
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                /* Keep each row on one line. */
                eg_buf_append(&field, s[i] == '\n' ? " " : &s[i], 1);
                i++;
            }
        }
        /* Unquoted text (or stray text after a closing quote) up to the separator; blanks
         * around it go, those inside the quotes stay. */
        size_t keep = quoted ? field.len : 0;
        while (i < len && s[i] != sep && s[i] != '\n')
            eg_buf_append(&field, &s[i++], 1);
        while (field.len > keep && (field.data[field.len - 1] == ' ' ||
                                    (field.data[field.len - 1] == '\t' && sep != '\t')))
            field.len--;
        if (nfields++)
            eg_buf_append(&row, ", ", 2);
        if (field.len) {
            eg_buf_append(&row, field.data, field.len);
            any = true;
        }
        if (i < len && s[i] == sep) {
            i++;
            continue;
        }
        /* End of the record. */
        if (any) {
            eg_buf_append(out, row.data, row.len);
            eg_buf_append(out, "\n", 1);
        }
        eg_buf_clear(&row);
        nfields = 0;
        any = false;
        i++;
    }
    eg_buf_free(&row);
    eg_buf_free(&field);
}
