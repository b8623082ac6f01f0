/* A growing string for reports and tables built piece by piece. */
#include <stdarg.h>
#include <string.h>

#include "core/core.h"

void cvn_strbuf_printf(cvn_strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room && b->data) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *grown = cvn_malloc(cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        if (b->data) memcpy(grown, b->data, b->len + 1);
        cvn_free(b->data);
        b->data = grown;
        b->cap = cap;
    }
}

void cvn_strbuf_append(cvn_strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->cap - b->len <= n || !b->data) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= n) cap *= 2;
        char *grown = cvn_malloc(cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        if (b->data) memcpy(grown, b->data, b->len + 1);
        cvn_free(b->data);
        b->data = grown;
        b->cap = cap;
    }
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
