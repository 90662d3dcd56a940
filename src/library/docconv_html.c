/* HTML to readable text. Not a full HTML5 parser: a single pass over tags and text that is
 * tolerant of broken markup. Scripts, styles, templates, SVG, noscript fallbacks and the document
 * head (title included) are dropped; block elements end lines (paragraph-like ones leave a blank
 * line); list items get a "- "; table cells are separated by a space; runs of whitespace collapse
 * to one space except inside <pre>; character references (named, decimal, hexadecimal) are
 * decoded. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "library/docconv_int.h"

/* ---- Character references ------------------------------------------------------------------- */

/* Latin-1 U+00A0..U+00FF in order. */
static const char *const latin1[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml",
};

static const struct {
    const char *name;
    uint32_t cp;
} named[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},       {"quot", '"'},
    {"apos", '\''},     {"OElig", 0x152},   {"oelig", 0x153},  {"Scaron", 0x160},
    {"scaron", 0x161},  {"Yuml", 0x178},    {"fnof", 0x192},   {"circ", 0x2C6},
    {"tilde", 0x2DC},   {"ensp", 0x2002},   {"emsp", 0x2003},  {"thinsp", 0x2009},
    {"zwnj", 0x200C},   {"zwj", 0x200D},    {"lrm", 0x200E},   {"rlm", 0x200F},
    {"ndash", 0x2013},  {"mdash", 0x2014},  {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"sbquo", 0x201A},  {"ldquo", 0x201C},  {"rdquo", 0x201D}, {"bdquo", 0x201E},
    {"dagger", 0x2020}, {"Dagger", 0x2021}, {"bull", 0x2022},  {"hellip", 0x2026},
    {"permil", 0x2030}, {"prime", 0x2032},  {"Prime", 0x2033}, {"lsaquo", 0x2039},
    {"rsaquo", 0x203A}, {"oline", 0x203E},  {"frasl", 0x2044}, {"euro", 0x20AC},
    {"trade", 0x2122},  {"larr", 0x2190},   {"uarr", 0x2191},  {"rarr", 0x2192},
    {"darr", 0x2193},   {"harr", 0x2194},   {"minus", 0x2212}, {"infin", 0x221E},
    {"asymp", 0x2248},  {"ne", 0x2260},     {"le", 0x2264},    {"ge", 0x2265},
    {"alpha", 0x3B1},   {"beta", 0x3B2},    {"gamma", 0x3B3},  {"delta", 0x3B4},
    {"pi", 0x3C0},      {"sigma", 0x3C3},   {"mu", 0x3BC},     {"lambda", 0x3BB},
    {"Alpha", 0x391},   {"Beta", 0x392},    {"Gamma", 0x393},  {"Delta", 0x394},
    {"Omega", 0x3A9},   {"omega", 0x3C9},   {"check", 0x2713}, {"star", 0x2606},
};

static bool lookup_named(const char *name, size_t n, uint32_t *cp)
{
    for (size_t i = 0; i < 96; i++)
        if (strlen(latin1[i]) == n && memcmp(latin1[i], name, n) == 0) {
            *cp = 0xA0 + (uint32_t)i;
            return true;
        }
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == n && memcmp(named[i].name, name, n) == 0) {
            *cp = named[i].cp;
            return true;
        }
    return false;
}

/* Decode the reference at s[0] == '&' into out; returns the bytes consumed (1 when it is not a
 * reference: the '&' is literal). */
static size_t decode_ref(eg_buf_t *out, const char *s, size_t len)
{
    size_t i = 1;
    uint32_t cp = 0;
    if (i < len && s[i] == '#') {
        bool hex = i + 1 < len && (s[i + 1] == 'x' || s[i + 1] == 'X');
        size_t start = i = i + 1 + hex, digits = 0;
        while (i < len && (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) {
            int d = isdigit((unsigned char)s[i]) ? s[i] - '0'
                                                 : (tolower((unsigned char)s[i]) - 'a' + 10);
            if (cp <= 0x10FFFF)
                cp = cp * (hex ? 16 : 10) + (uint32_t)d;
            i++, digits++;
        }
        if (!digits || i == start)
            goto literal;
        if (i < len && s[i] == ';')
            i++;
        eg__doc_put_cp(out, cp);
        return i;
    }
    size_t n = 0;
    while (i + n < len && n < 32 && isalnum((unsigned char)s[i + n]))
        n++;
    if (!n || !lookup_named(s + i, n, &cp))
        goto literal;
    if (i + n < len && s[i + n] == ';')
        n++;
    else if (i + n < len && s[i + n] == '=') /* "?a=1&copy=2" in a URL is not a reference */
        goto literal;
    if (cp == 0xA0) /* no-break spaces collapse like spaces */
        cp = ' ';
    if (cp == 0xAD) /* soft hyphens are invisible */
        return i + n;
    eg__doc_put_cp(out, cp);
    return i + n;
literal:
    eg_buf_append(out, "&", 1);
    return 1;
}

/* ---- Output with whitespace collapsing ------------------------------------------------------ */

typedef struct {
    eg_buf_t *b;
    int nl;       /* line breaks pending before the next text (capped at 2) */
    bool sp;      /* a space pending before the next text */
    eg_buf_t tmp; /* decoded text */
} writer_t;

static void flush_pending(writer_t *w)
{
    if (w->b->len) {
        if (w->nl)
            eg_buf_append(w->b, "\n\n", (size_t)(w->nl > 2 ? 2 : w->nl));
        else if (w->sp && w->b->data[w->b->len - 1] != ' ')
            eg_buf_append(w->b, " ", 1);
    }
    w->nl = 0;
    w->sp = false;
}

static void line_break(writer_t *w, int n)
{
    if (n > w->nl)
        w->nl = n;
}

/* Text between tags: decoded, then collapsed (or kept as is inside <pre>). */
static void text(writer_t *w, const char *s, size_t len, bool pre)
{
    eg_buf_clear(&w->tmp);
    for (size_t i = 0; i < len;) {
        if (s[i] == '&') {
            i += decode_ref(&w->tmp, s + i, len - i);
        } else {
            size_t j = i + 1;
            while (j < len && s[j] != '&')
                j++;
            eg_buf_append(&w->tmp, s + i, j - i);
            i = j;
        }
    }
    const char *t = w->tmp.data;
    for (size_t i = 0; i < w->tmp.len; i++) {
        char c = t[i];
        if (c == '\xC2' && i + 1 < w->tmp.len && t[i + 1] == '\xA0') {
            c = ' '; /* a literal no-break space counts as a space, like &nbsp; */
            i++;
        }
        if (pre) {
            if (c == '\n') {
                w->nl++;
                continue;
            }
        } else if (c == ' ' || c == '\n' || c == '\t') {
            w->sp = true;
            continue;
        }
        flush_pending(w);
        eg_buf_append(w->b, &c, 1);
    }
}

/* ---- Tags ----------------------------------------------------------------------------------- */

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

/* Blocks that stand apart by a blank line, and those that only end a line. */
static const char *const para_tags[] = {
    "p",      "h1",   "h2",      "h3",   "h4",    "h5",      "h6",      "blockquote", "pre",
    "table",  "ul",   "ol",      "dl",   "hr",    "section", "article", "header",     "footer",
    "figure", "form", "address", "main", "aside", "nav",     "details", "fieldset",   NULL,
};
static const char *const line_tags[] = {
    "br",      "div",    "li",    "dt",     "dd",       "tr",     "caption", "figcaption",
    "summary", "legend", "body",  "html",   "option",   "center", "menu",    "dialog",
    "tbody",   "thead",  "tfoot", "hgroup", "frameset", "frame",  NULL,
};
/* Elements whose content is dropped with them. */
static const char *const drop_tags[] = {
    "script", "style", "noscript", "template", "svg", "title", "iframe", "object", "textarea", NULL,
};
/* Elements that may appear in <head>; any other tag ends it (the HTML5 rule). */
static const char *const head_tags[] = {
    "head", "title", "meta", "link", "style", "script", "base", "noscript", "template", NULL,
};

/* Case-insensitive search for "</name" from s; returns its offset or len. */
static size_t find_close(const char *s, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i + 2 + n <= len; i++)
        if (s[i] == '<' && s[i + 1] == '/' && strncasecmp(s + i + 2, name, n) == 0 &&
            (i + 2 + n == len || !isalnum((unsigned char)s[i + 2 + n])))
            return i;
    return len;
}

/* Offset just past the '>' ending the tag that starts at s[0] (quotes respected), or len. */
static size_t tag_end(const char *s, size_t len)
{
    char q = 0;
    for (size_t i = 1; i < len; i++) {
        if (q) {
            if (s[i] == q)
                q = 0;
        } else if (s[i] == '"' || s[i] == '\'') {
            /* A quote opens a value only after '=' (or whitespace following it). */
            size_t k = i;
            while (k > 1 && (s[k - 1] == ' ' || s[k - 1] == '\t' || s[k - 1] == '\n'))
                k--;
            if (s[k - 1] == '=')
                q = s[i];
        } else if (s[i] == '>') {
            return i + 1;
        }
    }
    return len;
}

static size_t skip_past(const char *s, size_t len, size_t from, const char *end)
{
    size_t n = strlen(end);
    for (size_t i = from; i + n <= len; i++)
        if (memcmp(s + i, end, n) == 0)
            return i + n;
    return len;
}

void eg__doc_html(eg_buf_t *out, const char *s, size_t len)
{
    writer_t w = {.b = out};
    bool in_head = false;
    int pre = 0;
    size_t i = 0;

    while (i < len) {
        if (s[i] != '<') {
            size_t j = i + 1;
            while (j < len && s[j] != '<')
                j++;
            if (!in_head)
                text(&w, s + i, j - i, pre > 0);
            i = j;
            continue;
        }
        /* Markup declarations, comments, processing instructions. */
        if (i + 4 <= len && memcmp(s + i, "<!--", 4) == 0) {
            i = skip_past(s, len, i + 4, "-->");
            continue;
        }
        if (i + 9 <= len && memcmp(s + i, "<![CDATA[", 9) == 0) {
            size_t e = skip_past(s, len, i + 9, "]]>");
            size_t tl = (e == len ? len : e - 3) - (i + 9);
            if (!in_head)
                text(&w, s + i + 9, tl, pre > 0);
            i = e;
            continue;
        }
        if (i + 1 < len && (s[i + 1] == '!' || s[i + 1] == '?')) {
            i += tag_end(s + i, len - i);
            continue;
        }
        bool close = i + 1 < len && s[i + 1] == '/';
        size_t ns = i + 1 + close, ne = ns;
        if (ne >= len || !isalpha((unsigned char)s[ne])) {
            /* A '<' that starts no tag ("a < b") is text. */
            if (!in_head)
                text(&w, "<", 1, pre > 0);
            i++;
            continue;
        }
        char name[16];
        size_t nl = 0;
        while (ne < len && (isalnum((unsigned char)s[ne]) || s[ne] == '-' || s[ne] == ':')) {
            if (nl < sizeof name - 1)
                name[nl++] = (char)tolower((unsigned char)s[ne]);
            ne++;
        }
        name[nl] = '\0';
        size_t te = tag_end(s + i, len - i);
        bool self_closing = te >= 2 && s[i + te - 1] == '>' && s[i + te - 2] == '/';
        i += te;

        if (!close && in_list(name, drop_tags)) {
            /* "<svg .../>" is complete (foreign elements honour the slash). */
            if (!(self_closing && strcmp(name, "svg") == 0)) {
                i += find_close(s + i, len - i, name);
                if (i < len)
                    i += tag_end(s + i, len - i);
            }
            w.sp = true;
            continue;
        }
        if (strcmp(name, "head") == 0) {
            in_head = !close;
            continue;
        }
        if (in_head && !in_list(name, head_tags))
            in_head = false;
        if (strcmp(name, "pre") == 0)
            pre += close ? (pre > 0 ? -1 : 0) : 1;
        if (in_list(name, para_tags)) {
            line_break(&w, 2);
        } else if (strcmp(name, "br") == 0) {
            w.nl = w.nl < 2 ? w.nl + 1 : 2;
        } else if (in_list(name, line_tags)) {
            line_break(&w, 1);
            if (!close && strcmp(name, "li") == 0) {
                flush_pending(&w);
                eg_buf_append(w.b, "- ", 2);
            }
        } else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
            w.sp = true;
        } else if (strcmp(name, "img") == 0 || strcmp(name, "input") == 0) {
            w.sp = true;
        }
    }
    eg_buf_free(&w.tmp);
}
