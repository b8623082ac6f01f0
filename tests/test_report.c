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
    cvn_series s[2] = {{"SGD <m=0.9>", 5, x, y1}, {"Adam & co", 5, NULL, y2}};
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
    cvn_series sl = {"log", 4, NULL, yl};
    cvn_chart cl = {"log", "x", "y", 0, 0, true};
    CK_OK(cvn_svg_line_chart(path, &cl, 1, &sl));
    svg = slurp(path);
    ck_assert(strstr(svg, ">0.01<") && strstr(svg, ">0.1<") && strstr(svg, ">1<") &&
              strstr(svg, ">10<"));
    ck_assert_int_eq(count(svg, "<polyline"), 1);
    free(svg);
    remove(path);

    float nan_only[2] = {NAN, NAN};
    cvn_series bad = {"x", 2, NULL, nan_only};
    ck_assert_int_eq(cvn_svg_line_chart(path, &c, 1, &bad), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_line_chart(path, &c, 0, s), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_line_chart("/nonexistent/dir/x.svg", &c, 2, s), CVN_ERR_IO);
}
END_TEST

int main(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, test_line_chart);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
