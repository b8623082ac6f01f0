/* A growing string for reports and tables built piece by piece. */
#include <stdarg.h>
#include <string.h>

#include "core/core.h"

/* Makes room for n more bytes and a NUL; false (and failed set) when memory runs out. */
static bool reserve(cvn_strbuf *b, size_t n) {
    if (b->failed) return false;
    if (b->data && b->cap - b->len > n) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) cap *= 2;
    char *grown = cvn_malloc(cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    if (b->data)
        memcpy(grown, b->data, b->len + 1);
    else
        grown[0] = '\0';
    cvn_free(b->data);
    b->data = grown;
    b->cap = cap;
    return true;
}

void cvn_strbuf_printf(cvn_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) b->failed = true;
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cvn_strbuf_append(cvn_strbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

char *cvn_strbuf_take(cvn_strbuf *b) {
    char *s = b->failed ? NULL : b->data;
    if (!s && !b->failed) s = cvn_strdup("");
    if (b->failed) {
        cvn_free(b->data);
        cvn_set_error(CVN_ERR_NOMEM, "out of memory building a text");
    }
    *b = (cvn_strbuf){0};
    return s;
}

void cvn_strbuf_free(cvn_strbuf *b) {
    cvn_free(b->data);
    *b = (cvn_strbuf){0};
}

void cvn_text_free(char *text) {
    cvn_free(text);
}
