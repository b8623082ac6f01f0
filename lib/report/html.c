/* A self-contained HTML report: headings, paragraphs, preformatted text, tables and SVG charts
 * (inlined from their files), one page with its own style sheet, written atomically. */
#include <string.h>

#include "core/core.h"

struct cvn_report {
    cvn_strbuf body;
    char *title;
};

static void escape(cvn_strbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            cvn_strbuf_append(b, "&lt;", 4);
            break;
        case '>':
            cvn_strbuf_append(b, "&gt;", 4);
            break;
        case '&':
            cvn_strbuf_append(b, "&amp;", 5);
            break;
        case '"':
            cvn_strbuf_append(b, "&quot;", 6);
            break;
        default:
            cvn_strbuf_append(b, s, 1);
        }
    }
}

cvn_report *cvn_report_new(const char *title) {
    cvn_report *r = cvn_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->title = cvn_strdup(title ? title : "libcvnet report");
    if (!r->title) {
        cvn_free(r);
        return NULL;
    }
    return r;
}

void cvn_report_free(cvn_report *r) {
    if (!r) return;
    cvn_strbuf_free(&r->body);
    cvn_free(r->title);
    cvn_free(r);
}

void cvn_report_heading(cvn_report *r, const char *text) {
    if (!r) return;
    cvn_strbuf_printf(&r->body, "<h2>");
    escape(&r->body, text);
    cvn_strbuf_printf(&r->body, "</h2>\n");
}

void cvn_report_paragraph(cvn_report *r, const char *text) {
    if (!r) return;
    cvn_strbuf_printf(&r->body, "<p>");
    escape(&r->body, text);
    cvn_strbuf_printf(&r->body, "</p>\n");
}

void cvn_report_pre(cvn_report *r, const char *text) {
    if (!r) return;
    cvn_strbuf_printf(&r->body, "<pre>");
    escape(&r->body, text);
    cvn_strbuf_printf(&r->body, "</pre>\n");
}

void cvn_report_table(cvn_report *r, int rows, int cols, const char *const *cells) {
    if (!r || rows < 1 || cols < 1 || !cells) return;
    cvn_strbuf_printf(&r->body, "<table>\n");
    for (int i = 0; i < rows; i++) {
        cvn_strbuf_printf(&r->body, "<tr>");
        for (int j = 0; j < cols; j++) {
            const char *tag = i == 0 ? "th" : "td";
            cvn_strbuf_printf(&r->body, "<%s>", tag);
            escape(&r->body, cells[i * cols + j]);
            cvn_strbuf_printf(&r->body, "</%s>", tag);
        }
        cvn_strbuf_printf(&r->body, "</tr>\n");
    }
    cvn_strbuf_printf(&r->body, "</table>\n");
}

cvn_status cvn_report_svg(cvn_report *r, const char *svg_path, const char *caption) {
    if (!r || !svg_path) return cvn_set_error(CVN_ERR_ARG, "report_svg: NULL argument");
    FILE *f = fopen(svg_path, "rb");
    if (!f) return cvn_set_error(CVN_ERR_IO, "%s: cannot open", svg_path);
    cvn_strbuf_printf(&r->body, "<figure>");
    char buf[4096];
    size_t n;
    bool in_prolog = true;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        const char *start = buf;
        if (in_prolog) { /* drop an XML declaration: not allowed inside HTML */
            const char *svg = memmem(buf, n, "<svg", 4);
            if (svg) {
                n -= (size_t)(svg - buf);
                start = svg;
                in_prolog = false;
            } else {
                continue;
            }
        }
        cvn_strbuf_append(&r->body, start, n);
    }
    fclose(f);
    if (caption) {
        cvn_strbuf_printf(&r->body, "<figcaption>");
        escape(&r->body, caption);
        cvn_strbuf_printf(&r->body, "</figcaption>");
    }
    cvn_strbuf_printf(&r->body, "</figure>\n");
    return CVN_OK;
}

static const char style[] =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:980px;"
    "margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
    "h1{font-weight:600;border-bottom:2px solid #1f77b4;padding-bottom:.3em}"
    "h2{font-weight:600;margin-top:1.8em;color:#1f4e79}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
    "th,td{border:1px solid #ccd;padding:4px 10px;text-align:right}"
    "th{background:#eef3fa}td:first-child,th:first-child{text-align:left}"
    "tr:nth-child(even) td{background:#fafbfd}"
    "pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:12px;border-radius:6px}"
    "figure{margin:1.2em 0}figcaption{color:#555;font-size:14px}"
    "footer{margin-top:3em;color:#888;font-size:12px}";

cvn_status cvn_report_write(cvn_report *r, const char *path) {
    if (!r || !path) return cvn_set_error(CVN_ERR_ARG, "report_write: NULL argument");
    if (r->body.failed) return cvn_set_error(CVN_ERR_NOMEM, "report_write: out of memory");
    char tmp[4096];
    FILE *f = cvn_file_begin(path, tmp, sizeof tmp);
    if (!f) return cvn_last_status();
    cvn_strbuf head = {0};
    cvn_strbuf_printf(&head, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                             "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    escape(&head, r->title);
    cvn_strbuf_printf(&head, "</title><style>%s</style></head>\n<body>\n<h1>", style);
    escape(&head, r->title);
    cvn_strbuf_printf(&head, "</h1>\n");
    if (head.failed) {
        fclose(f);
        remove(tmp);
        cvn_strbuf_free(&head);
        return cvn_set_error(CVN_ERR_NOMEM, "report_write: out of memory");
    }
    fwrite(head.data, 1, head.len, f);
    if (r->body.len) fwrite(r->body.data, 1, r->body.len, f);
    fputs("<footer>Written by libcvnet.</footer>\n</body></html>\n", f);
    cvn_strbuf_free(&head);
    return cvn_file_commit(f, tmp, path);
}
