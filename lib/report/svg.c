/* SVG line charts: "nice" axis ticks (1, 2, 5 times a power of ten), one polyline per series
 * thinned to what the pixels show, a legend, written atomically. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` intervals over span. */
static double nice_step(double span, int want) {
    double raw = span / want, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* The plotted coordinate of a value: itself, or its log10 on a log axis (NaN for y <= 0). */
static double map_y(float y, bool lg) {
    if (!lg) return y;
    return y > 0.0f ? log10((double)y) : NAN;
}

static void xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Opens the atomic file and writes the SVG header, a white page and the title centred at x. */
static FILE *svg_begin(const char *path, char *tmp, size_t tmp_size, int w, int h,
                       const char *title, double x) {
    FILE *f = cvn_file_begin(path, tmp, tmp_size);
    if (!f) return NULL;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"24\" font-size=\"15\" font-weight=\"bold\" "
            "text-anchor=\"middle\">",
            w, h, w, h, x);
    xml_text(f, title);
    fputs("</text>\n", f);
    return f;
}

/* Polyline thinning in pixel space, in one pass (the "sleeve" method): from the last written point
 * (the anchor), a point may be left out while the segment from the anchor to a later point passes
 * within TOL pixels of it. The window [lo, hi] holds the directions from the anchor that pass near
 * every point left out so far; a point outside it, or one going back towards the anchor, ends the
 * segment at the point before. A smooth curve of 20,000 points keeps about 50. */
#define THIN_TOL 0.3
typedef struct {
    FILE *f;
    int state; /* 0: no anchor, 1: anchor only, 2: points pending after the anchor */
    double ax, ay, px, py, base, lo, hi, dmax;
    bool window;
} thinner;

static void thin_emit(thinner *t, double x, double y) {
    fprintf(t->f, "%.1f,%.1f ", x, y);
    t->ax = x, t->ay = y, t->state = 1, t->window = false, t->dmax = 0;
}

static void thin_add(thinner *t, double x, double y) {
    if (t->state == 0) return thin_emit(t, x, y);
    double dx = x - t->ax, dy = y - t->ay, d = hypot(dx, dy);
    if (d > THIN_TOL) {
        double th = atan2(dy, dx);
        if (!t->window) t->base = th, t->lo = -M_PI, t->hi = M_PI;
        double rel = remainder(th - t->base, 2 * M_PI), half = asin(THIN_TOL / d);
        if (t->state == 2 && (rel < t->lo || rel > t->hi || d < t->dmax - THIN_TOL)) {
            thin_emit(t, t->px, t->py); /* the segment ends at the last point that fit */
            return thin_add(t, x, y);
        }
        t->lo = fmax(t->lo, rel - half), t->hi = fmin(t->hi, rel + half);
        t->window = true;
        t->dmax = fmax(t->dmax, d);
    }
    t->px = x, t->py = y, t->state = 2;
}

static void thin_end(thinner *t) {
    if (t->state == 2) thin_emit(t, t->px, t->py);
    t->state = 0;
}

static void tick_label(char *buf, size_t size, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    if (step >= 1 && fabs(v) < 1e6)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.*g", step < 1e-3 ? 3 : 4, v);
}

cvn_status cvn_svg_line_chart(const char *path, const cvn_chart *chart, int n_series,
                              const cvn_series *series) {
    if (!path || !chart || n_series < 1 || !series)
        return cvn_set_error(CVN_ERR_ARG, "svg_line_chart: needs a path, a chart and series");
    bool lg = chart->log_y, integral_x = true;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x ? series[s].x[i] : i + 1, y = map_y(series[s].y[i], lg);
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
            integral_x = integral_x && x == floor(x);
        }
    if (!(x0 <= x1))
        return cvn_set_error(CVN_ERR_ARG, "svg_line_chart: \"%s\" has no finite points",
                             chart->title ? chart->title : "");
    if (x1 == x0) x0 -= 0.5, x1 += 0.5;
    if (y1 == y0) y0 -= 0.5, y1 += 0.5;
    double xs = nice_step(x1 - x0, 8), ys = lg ? 1.0 : nice_step(y1 - y0, 6);
    if (integral_x && xs < 1.0) xs = 1.0; /* epochs, iterations: no fractional ticks */
    double xa = floor(x0 / xs) * xs, xb = ceil(x1 / xs) * xs;
    double ya = floor(y0 / ys) * ys, yb = ceil(y1 / ys) * ys;
    if (lg && yb - ya < 1.0) yb = ya + 1.0;
    int w = chart->width > 0 ? chart->width : 720, h = chart->height > 0 ? chart->height : 420;
    double left = 70, right = w - 180, top = 40, bottom = h - 55;
#define PX(x) (left + ((x)-xa) / (xb - xa) * (right - left))
#define PY(y) (bottom - ((y)-ya) / (yb - ya) * (bottom - top))
    char tmp[4096];
    FILE *f = svg_begin(path, tmp, sizeof tmp, w, h, chart->title, (left + right) / 2);
    if (!f) return cvn_last_status();
    char lab[32];
    for (double v = xa; v <= xb + xs * 1e-6; v += xs) { /* x grid and ticks */
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n",
                PX(v), top, PX(v), bottom);
        tick_label(lab, sizeof lab, v, xs);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", PX(v),
                bottom + 16, lab);
    }
    for (double v = ya; v <= yb + ys * 1e-6; v += ys) { /* y grid and ticks */
        /* log axis: a labelled line at each power of ten, light ones at 2 and 5 times it */
        for (int sub = 0; sub < (lg ? 3 : 1); sub++) {
            double at = lg ? v + log10((double[]){1, 2, 5}[sub]) : v;
            if (at > yb + 1e-9) break;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                    left, PY(at), right, PY(at), sub ? "#f2f2f2" : "#e5e5e5");
            if (lg)
                tick_label(lab, sizeof lab, pow(10.0, at), pow(10.0, floor(at)));
            else
                tick_label(lab, sizeof lab, v, ys);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 6,
                    PY(at) + 4, lab);
        }
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            left, top, right - left, bottom - top);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (left + right) / 2, h - 14);
    xml_text(f, chart->x_label);
    fprintf(f,
            "</text>\n<text transform=\"translate(18 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">",
            (top + bottom) / 2);
    xml_text(f, chart->y_label);
    fputs("</text>\n", f);
    for (int s = 0; s < n_series; s++) {
        const char *color = palette[s % (int)(sizeof palette / sizeof palette[0])];
        bool open = false, dots = series[s].points;
        thinner th = {.f = f};
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x ? series[s].x[i] : i + 1, y = map_y(series[s].y[i], lg);
            if (dots) {
                if (isfinite(x) && isfinite(y))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(x),
                            PY(y), color);
                continue;
            }
            if (!isfinite(x) || !isfinite(y)) { /* a gap */
                if (open) thin_end(&th), fputs("\"/>\n", f);
                open = false;
                continue;
            }
            if (!open)
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                        color);
            thin_add(&th, PX(x), PY(y));
            open = true;
        }
        if (open) thin_end(&th), fputs("\"/>\n", f);
        double ly = top + 10 + 20 * s;
        if (dots)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", right + 26, ly,
                    color);
        else
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"3\"/>\n",
                    right + 14, ly, right + 38, ly, color);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", right + 44, ly + 4);
        xml_text(f, series[s].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    return cvn_file_commit(f, tmp, path);
}

cvn_status cvn_svg_heatmap(const char *path, const char *title, int n, const char *const *names,
                           const int64_t *values) {
    if (!path || n < 1 || n > 1000 || !values)
        return cvn_set_error(CVN_ERR_ARG, "svg_heatmap: needs a path, 1 to 1000 classes, values");
    int cell = n <= 10 ? 44 : n <= 30 ? 24 : 12, left = 130, top = 60;
    int w = left + n * cell + 30, h = top + n * cell + 110;
    char tmp[4096];
    FILE *f = svg_begin(path, tmp, sizeof tmp, w, h, title ? title : "Confusion matrix", w / 2.0);
    if (!f) return cvn_last_status();
    for (int i = 0; i < n; i++) {
        int64_t row = 0;
        for (int j = 0; j < n; j++) row += values[i * n + j];
        for (int j = 0; j < n; j++) {
            int64_t v = values[i * n + j];
            double share = row ? (double)v / (double)row : 0.0;
            /* white to the palette's blue by the share of the true class */
            int r = (int)(255 - share * (255 - 31)), g = (int)(255 - share * (255 - 119)),
                b = (int)(255 - share * (255 - 180));
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" "
                    "stroke=\"#ddd\"><title>true %d, predicted %d: %lld</title></rect>\n",
                    left + j * cell, top + i * cell, cell, cell, r, g, b, i, j, (long long)v);
            if (cell >= 24)
                fprintf(f,
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                        "fill=\"%s\">%lld</text>\n",
                        left + j * cell + cell / 2, top + i * cell + cell / 2 + 4,
                        cell >= 40 ? 11 : 8, share > 0.5 ? "white" : "#222", (long long)v);
        }
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6,
                top + i * cell + cell / 2 + 4);
        xml_text(f, names ? names[i] : num);
        fputs("</text>\n", f);
        int cx = left + i * cell + cell / 2, cy = top + n * cell + 8;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" transform=\"rotate(-45 %d %d)\">",
                cx, cy + 4, cx, cy);
        xml_text(f, names ? names[i] : num);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">predicted</text>\n",
            left + n * cell / 2, h - 10);
    fprintf(f,
            "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">true "
            "class</text>\n</svg>\n",
            top + n * cell / 2, top + n * cell / 2);
    return cvn_file_commit(f, tmp, path);
}

cvn_status cvn_svg_bar_chart(const char *path, const char *title, const char *x_label, int n,
                             const char *const *names, const double *values) {
    if (!path || n < 1 || n > 1000 || !names || !values)
        return cvn_set_error(CVN_ERR_ARG, "svg_bar_chart: needs a path and 1 to 1000 bars");
    double top_value = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(values[i]) || values[i] < 0 || !names[i])
            return cvn_set_error(CVN_ERR_ARG, "svg_bar_chart: bar %d has no name or value %g < 0",
                                 i, values[i]);
        top_value = fmax(top_value, values[i]);
    }
    double step = nice_step(top_value > 0 ? top_value : 1, 5);
    double axis_end = ceil((top_value > 0 ? top_value : 1) / step) * step;
    int bar = 26, w = 720, left = 170, right = w - 60, top = 44, h = top + n * bar + 56;
    char tmp[4096];
    FILE *f = svg_begin(path, tmp, sizeof tmp, w, h, title, (left + right) / 2.0);
    if (!f) return cvn_last_status();
    double bottom = top + n * bar;
    char lab[32];
    for (double v = 0; v <= axis_end + step * 1e-6; v += step) {
        double x = left + v / axis_end * (right - left);
        tick_label(lab, sizeof lab, v, step);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, top, x, bottom, x, bottom + 16, lab);
    }
    for (int i = 0; i < n; i++) {
        double y = top + i * bar, len = values[i] / axis_end * (right - left);
        fprintf(f,
                "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">",
                left, y + 4, len, bar - 8, palette[0], left - 6, y + bar / 2.0 + 4);
        xml_text(f, names[i]);
        fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\">%.3g</text>\n", left + len + 4,
                y + bar / 2.0 + 4, values[i]);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n", left, top,
            left, bottom);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (left + right) / 2.0, h - 12);
    xml_text(f, x_label);
    fputs("</text>\n</svg>\n", f);
    return cvn_file_commit(f, tmp, path);
}

/* An axis's plotted range: its values' span (log10 on a log axis, 0..n-1 for categories). True
 * when the values are all one number (the range is then that number +- 0.5). */
static bool axis_range(const cvn_axis *a, int j, int n_axes, int n_lines, const double *values,
                       double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    if (a->n_labels) {
        *lo = 0, *hi = a->n_labels - 1;
    } else {
        for (int i = 0; i < n_lines; i++) {
            double v = values[(size_t)i * n_axes + j];
            if (a->log) v = v > 0 ? log10(v) : NAN;
            if (isfinite(v)) *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
    }
    if (!(*lo <= *hi)) *lo = 0, *hi = 1;
    if (*lo != *hi) return false;
    *lo -= 0.5, *hi += 0.5;
    return !a->n_labels;
}

cvn_status cvn_svg_parallel_coordinates(const char *path, const char *title, int n_axes,
                                        const cvn_axis *axes, int n_lines, const double *values,
                                        int color_axis, bool best_low) {
    if (!path || n_axes < 2 || n_axes > 100 || !axes || n_lines < 0 || (n_lines && !values) ||
        color_axis < 0 || color_axis >= n_axes)
        return cvn_set_error(CVN_ERR_ARG,
                             "svg_parallel_coordinates: needs a path, 2 to 100 axes, values and a "
                             "colour axis among them");
    double *lo = cvn_malloc(3 * (size_t)n_axes * sizeof *lo);
    if (!lo) return cvn_last_status();
    double *hi = lo + n_axes, *single = lo + 2 * n_axes; /* single: 1 for a one-value axis */
    for (int j = 0; j < n_axes; j++)
        single[j] = axis_range(&axes[j], j, n_axes, n_lines, values, &lo[j], &hi[j]);
    int gap = n_axes > 8 ? 90 : 120, left = 70, w = left * 2 + gap * (n_axes - 1), h = 460;
    double top = 60, bottom = h - 60;
    char tmp[4096];
    FILE *f = svg_begin(path, tmp, sizeof tmp, w, h, title, w / 2.0);
    if (!f) {
        cvn_free(lo);
        return cvn_last_status();
    }
    /* lines, lightest (worst) first so the best lie on top */
    int *order = cvn_malloc((size_t)(n_lines ? n_lines : 1) * sizeof *order);
    if (!order) {
        fclose(f);
        remove(tmp);
        cvn_free(lo);
        return cvn_last_status();
    }
    for (int i = 0; i < n_lines; i++) order[i] = i;
    for (int i = 1; i < n_lines; i++) { /* insertion sort by the colour value, best last */
        int k = order[i], at = i;
        double v = values[(size_t)k * n_axes + color_axis];
        while (at > 0) {
            double u = values[(size_t)order[at - 1] * n_axes + color_axis];
            if (!(best_low ? u < v : u > v)) break;
            order[at] = order[at - 1];
            at--;
        }
        order[at] = k;
    }
    double c_lo = lo[color_axis], c_hi = hi[color_axis];
    for (int r = 0; r < n_lines; r++) {
        const double *row = values + (size_t)order[r] * n_axes;
        double cv = row[color_axis];
        if (axes[color_axis].log) cv = cv > 0 ? log10(cv) : NAN;
        double shade = isfinite(cv) ? (cv - c_lo) / (c_hi - c_lo) : 0;
        if (best_low) shade = 1 - shade;
        /* light grey-blue to the palette's blue */
        int cr = (int)(200 - shade * (200 - 31)), cg = (int)(215 - shade * (215 - 119)),
            cb = (int)(235 - shade * (235 - 180));
        fprintf(f,
                "<polyline fill=\"none\" stroke=\"rgb(%d,%d,%d)\" stroke-width=\"1.5\" points=\"",
                cr, cg, cb);
        for (int j = 0; j < n_axes; j++) {
            double v = row[j];
            if (axes[j].log) v = v > 0 ? log10(v) : NAN;
            if (!isfinite(v)) continue; /* this line has no value on this axis */
            fprintf(f, "%d,%.1f ", left + gap * j,
                    bottom - (v - lo[j]) / (hi[j] - lo[j]) * (bottom - top));
        }
        fputs("\"/>\n", f);
    }
    char lab[32];
    for (int j = 0; j < n_axes; j++) {
        const cvn_axis *a = &axes[j];
        int x = left + gap * j;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, top,
                x, bottom);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" font-weight=\"bold\">", x,
                top - 12);
        xml_text(f, a->name);
        fputs("</text>\n", f);
        /* categories: one tick each; one value only (a range widened by 1): that value */
        int ticks = a->n_labels ? a->n_labels : single[j] != 0 ? 1 : 5;
        for (int k = 0; k < ticks && k < 12; k++) {
            double v = a->n_labels      ? k
                       : single[j] != 0 ? lo[j] + 0.5
                                        : lo[j] + (hi[j] - lo[j]) * k / 4.0;
            double y = bottom - (v - lo[j]) / (hi[j] - lo[j]) * (bottom - top);
            fprintf(f,
                    "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n"
                    "<text x=\"%d\" y=\"%.1f\" font-size=\"10\">",
                    x - 3, y, x + 3, y, x + 5, y + 3);
            if (a->n_labels) {
                xml_text(f, a->labels ? a->labels[k] : "?");
            } else {
                snprintf(lab, sizeof lab, "%.3g", a->log ? pow(10.0, v) : v);
                xml_text(f, lab);
            }
            fputs("</text>\n", f);
        }
    }
    fputs("</svg>\n", f);
    cvn_free(order);
    cvn_free(lo);
    return cvn_file_commit(f, tmp, path);
}
