/* The SVG chart writer: a valid document with every series, labels escaped, written atomically;
 * errors for charts with nothing to draw. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

START_TEST(test_line_chart) {
    char path[256];
    snprintf(path, sizeof path, "%s/chart.svg", test_dir());
    float y1[5] = {2.0f, 1.5f, 1.2f, 1.1f, 1.05f}, y2[5] = {2.2f, NAN, 1.0f, 0.8f, 0.7f};
    float x[5] = {1, 2, 3, 4, 5};
    cvn_series s[2] = {{.name = "SGD <m=0.9>", .n = 5, .x = x, .y = y1},
                       {.name = "Adam & co", .n = 5, .y = y2}};
    cvn_chart c = {"Loss \"per\" epoch", "epoch", "loss", 0, 0, false};
    CK_OK(cvn_svg_line_chart(path, &c, 2, s));
    char *svg = slurp(path);
    ck_assert_ptr_nonnull(svg);
    ck_assert(strncmp(svg, "<svg ", 5) == 0);
    ck_assert(strstr(svg, "</svg>") != NULL);
    ck_assert(strstr(svg, "SGD &lt;m=0.9&gt;") && strstr(svg, "Adam &amp; co"));
    ck_assert(strstr(svg, "Loss &quot;per&quot; epoch") != NULL);
    /* series 1 is one polyline; series 2 is split in two by its NaN */
    ck_assert_int_eq(count(svg, "<polyline"), 3);
    /* the y axis covers 0.7 .. 2.2 with nice ticks: 0.6 (or lower) to 2.2 (or higher) */
    ck_assert(strstr(svg, ">2.2<") || strstr(svg, ">2.4<") || strstr(svg, ">2.5<"));
    free(svg);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0); /* no temp file left behind */
    remove(path);

    /* a log axis: ticks at powers of ten, non-positive values dropped */
    float yl[4] = {0.05f, 0.5f, 3.0f, -1.0f};
    cvn_series sl = {.name = "log", .n = 4, .y = yl};
    cvn_chart cl = {"log", "x", "y", 0, 0, true};
    CK_OK(cvn_svg_line_chart(path, &cl, 1, &sl));
    svg = slurp(path);
    ck_assert(strstr(svg, ">0.01<") && strstr(svg, ">0.1<") && strstr(svg, ">1<") &&
              strstr(svg, ">10<"));
    ck_assert_int_eq(count(svg, "<polyline"), 1);
    free(svg);
    remove(path);

    float nan_only[2] = {NAN, NAN};
    cvn_series bad = {.name = "x", .n = 2, .y = nan_only};
    ck_assert_int_eq(cvn_svg_line_chart(path, &c, 1, &bad), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_line_chart(path, &c, 0, s), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_line_chart("/nonexistent/dir/x.svg", &c, 2, s), CVN_ERR_IO);
}
END_TEST

/* The points of the first polyline in svg, in pixels; returns how many (up to cap). */
static int polyline_points(const char *svg, double *px, double *py, int cap) {
    const char *p = strstr(svg, "<polyline");
    p = p ? strstr(p, "points=\"") : NULL;
    if (!p) return 0;
    p += 8;
    int n = 0;
    double x, y;
    int used;
    while (n < cap && sscanf(p, "%lf,%lf %n", &x, &y, &used) == 2)
        px[n] = x, py[n++] = y, p += used;
    return n;
}

static double segment_distance(double x, double y, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(x - ax - t * dx, y - ay - t * dy);
}

/* Long series are thinned to what the pixels show: a straight line keeps its two ends, a curve of
 * 20,000 points a few dozen, and every point left out stays within 0.3 px (+ the 0.1 px the
 * coordinates are printed to) of the line drawn. */
START_TEST(test_line_chart_thinning) {
    char path[256];
    snprintf(path, sizeof path, "%s/thin.svg", test_dir());
    enum { N = 20000 };
    static float x[N], y[N];
    static double px[N], py[N];
    cvn_chart c = {"thin", "x", "y", 0, 0, false};
    for (int i = 0; i < N; i++) x[i] = (float)i / (N - 1), y[i] = 0.25f + 0.5f * x[i];
    cvn_series line = {.name = "line", .n = N, .x = x, .y = y};
    CK_OK(cvn_svg_line_chart(path, &c, 1, &line));
    char *svg = slurp(path);
    ck_assert_int_eq(polyline_points(svg, px, py, N), 2);
    free(svg);

    for (int i = 0; i < N; i++) y[i] = x[i] + 0.3f * sinf(12.0f * x[i]);
    cvn_series curve = {.name = "curve", .n = N, .x = x, .y = y};
    CK_OK(cvn_svg_line_chart(path, &c, 1, &curve));
    svg = slurp(path);
    int m = polyline_points(svg, px, py, N);
    free(svg);
    remove(path);
    ck_assert_int_gt(m, 20);
    ck_assert_int_lt(m, 1000);
    /* the pixel mapping is affine; its ends are the first and last points, kept exactly */
    double sx = (px[m - 1] - px[0]) / (x[N - 1] - x[0]),
           sy = (py[m - 1] - py[0]) / (y[N - 1] - y[0]);
    double worst = 0;
    for (int i = 0, k = 0; i < N; i++) {
        double qx = px[0] + (x[i] - x[0]) * sx, qy = py[0] + (y[i] - y[0]) * sy;
        while (k + 2 < m && px[k + 1] < qx) k++; /* the segment around qx (x increases) */
        double d = segment_distance(qx, qy, px[k], py[k], px[k + 1], py[k + 1]);
        if (k > 0) d = fmin(d, segment_distance(qx, qy, px[k - 1], py[k - 1], px[k], py[k]));
        worst = fmax(worst, d);
    }
    ck_assert_double_lt(worst, 0.45);
}
END_TEST

/* The predicted class is torch.argmax's: the first maximum on ties, a row's first NaN where it
 * has one (so a model gone to NaN shows in the confusion matrix, as cvn_evaluate counts it). */
START_TEST(test_confusion_argmax_rule) {
    const float probs[4 * 3] = {0.4f, 0.4f, 0.2f, NAN, 0.9f, 0.1f, 0.1f, NAN, NAN, 0.2f, 0.3f, NAN};
    const int32_t labels[4] = {1, 1, 2, 2};
    cvn_predictions *p = CK_NOTNULL(cvn_predictions_new(4, 3, probs, labels));
    int64_t cm[9];
    CK_OK(cvn_confusion_matrix(p, cm));
    const int64_t want_cm[9] = {0, 0, 0, 2, 0, 0, 0, 1, 1}; /* predicted 0, 0, 1, 2 */
    for (int i = 0; i < 9; i++) ck_assert_int_eq(cm[i], want_cm[i]);
    cvn_predictions_free(p);
}
END_TEST

/* Six samples of three classes, worked out by hand (see the comments). */
static const float hand_probs[6 * 3] = {0.7f, 0.2f, 0.1f, 0.1f, 0.6f, 0.3f, 0.2f, 0.5f, 0.3f,
                                        0.3f, 0.3f, 0.4f, 0.5f, 0.1f, 0.4f, 0.1f, 0.8f, 0.1f};
static const int32_t hand_labels[6] = {0, 0, 1, 2, 2, 1};

START_TEST(test_metrics_by_hand) {
    cvn_predictions *p = CK_NOTNULL(cvn_predictions_new(6, 3, hand_probs, hand_labels));
    int64_t cm[9];
    CK_OK(cvn_confusion_matrix(p, cm));
    const int64_t want_cm[9] = {1, 1, 0, 0, 2, 0, 1, 0, 1}; /* rows: true class */
    for (int i = 0; i < 9; i++) ck_assert_int_eq(cm[i], want_cm[i]);
    cvn_class_metric m[3];
    CK_OK(cvn_class_metrics(p, m));
    /* class 0: tp 1 of 2, predicted twice; class 1: tp 2 of 2, predicted 3 times; class 2: 1 of
     * 2, predicted once */
    ck_assert_float_eq_tol(m[0].precision, 0.5f, 1e-6f);
    ck_assert_float_eq_tol(m[0].recall, 0.5f, 1e-6f);
    ck_assert_float_eq_tol(m[1].precision, 2.0f / 3.0f, 1e-6f);
    ck_assert_float_eq_tol(m[1].f1, 0.8f, 1e-6f);
    ck_assert_float_eq_tol(m[2].f1, 2.0f / 3.0f, 1e-6f);
    /* AUC as the share of (positive, negative) pairs ranked right, ties one half: class 0 has
     * positives 0.7, 0.1 against 0.2, 0.3, 0.5, 0.1: (4 + 0.5) / 8; class 1: 7 / 8; class 2: 1 */
    ck_assert_float_eq_tol(m[0].auc, 4.5f / 8.0f, 1e-6f);
    ck_assert_float_eq_tol(m[1].auc, 7.0f / 8.0f, 1e-6f);
    ck_assert_float_eq_tol(m[2].auc, 1.0f, 1e-6f);
    cvn_metrics s;
    CK_OK(cvn_metrics_summary(p, &s));
    ck_assert_float_eq_tol(s.accuracy, 4.0f / 6.0f, 1e-6f);
    ck_assert_float_eq_tol(s.macro_auc, (4.5f / 8 + 7.0f / 8 + 1) / 3, 1e-6f);
    float fpr[8], tpr[8];
    ck_assert_int_eq(cvn_roc_curve(p, 0, fpr, tpr), 6);
    const float wf[6] = {0, 0, 0.25f, 0.5f, 0.75f, 1}, wt[6] = {0, 0.5f, 0.5f, 0.5f, 0.5f, 1};
    for (int i = 0; i < 6; i++) {
        ck_assert_float_eq_tol(fpr[i], wf[i], 1e-6f);
        ck_assert_float_eq_tol(tpr[i], wt[i], 1e-6f);
    }
    ck_assert_int_eq(cvn_roc_curve(p, 3, fpr, tpr), -1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const char *names[] = {"plane", "car", "bird"};
    CK_OK(cvn_print_class_accuracy(f, p, names));
    fclose(f);
    ck_assert_msg(strstr(buf, "Accuracy for class: plane is 50.0 %\n") &&
                      strstr(buf, "Accuracy for class: car   is 100.0 %\n"),
                  "%s", buf);
    free(buf);
    cvn_predictions_free(p);
    ck_assert_ptr_null(cvn_predictions_new(6, 3, hand_probs, (int32_t[]){0, 0, 1, 2, 3, 1}));
}
END_TEST

START_TEST(test_html_report) {
    char svg[256], html[256];
    snprintf(svg, sizeof svg, "%s/cm.svg", test_dir());
    snprintf(html, sizeof html, "%s/report.html", test_dir());
    const char *names[] = {"a<b", "c"};
    CK_OK(cvn_svg_heatmap(svg, "Confusion", 2, names, (const int64_t[]){5, 1, 0, 4}));
    cvn_report *r = CK_NOTNULL(cvn_report_new("Run & test"));
    cvn_report_heading(r, "Results");
    cvn_report_paragraph(r, "accuracy <90 %>");
    const char *cells[] = {"class", "recall", "a", "0.5"};
    cvn_report_table(r, 2, 2, cells);
    cvn_report_pre(r, "Layer  [1, 2]");
    CK_OK(cvn_report_svg(r, svg, "confusion matrix"));
    ck_assert_int_eq(cvn_report_svg(r, "/nonexistent.svg", NULL), CVN_ERR_IO);
    CK_OK(cvn_report_write(r, html));
    cvn_report_free(r);
    FILE *f = fopen(html, "r");
    char page[16384];
    size_t n = fread(page, 1, sizeof page - 1, f);
    page[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(page, "<title>Run &amp; test</title>"), "%s", page);
    ck_assert(strstr(page, "<p>accuracy &lt;90 %&gt;</p>"));
    ck_assert(strstr(page, "<th>class</th><th>recall</th>"));
    ck_assert(strstr(page, "<td>0.5</td>"));
    ck_assert(strstr(page, "<svg xmlns") && strstr(page, "a&lt;b") && strstr(page, ">5</text>"));
    ck_assert(strstr(page, "<figcaption>confusion matrix</figcaption>"));
    ck_assert(strstr(page, "</html>"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, test_line_chart);
    tcase_add_test(tc, test_line_chart_thinning);
    tcase_add_test(tc, test_metrics_by_hand);
    tcase_add_test(tc, test_confusion_argmax_rule);
    tcase_add_test(tc, test_html_report);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
