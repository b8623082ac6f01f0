/* The IDX reader on files the test writes: good ones (plain and gzip), and truncated, corrupted,
 * oversized and trailing-garbage ones, each of which must give an error, not a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"

static char dir[] = "/tmp/cvn_idx_XXXXXX";

static void write_file(const char *path, const unsigned char *b, size_t n, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* A valid 3 x 2 x 2 image file: magic 0 0 8 3, sizes, then 12 bytes 0..11. */
static size_t good_file(unsigned char *b) {
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    memcpy(b, h, 16);
    for (int i = 0; i < 12; i++) b[16 + i] = (unsigned char)i;
    return 28;
}

START_TEST(test_idx_good) {
    unsigned char b[64];
    size_t n = good_file(b);
    char path[128];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/good%s", dir, gz ? ".gz" : "");
        write_file(path, b, n, gz);
        cvn_tensor *t = CK_NOTNULL(cvn_idx_load(path));
        ck_assert_int_eq(t->dtype, CVN_U8);
        ck_assert_int_eq(t->ndim, 3);
        ck_assert_int_eq(t->shape[0], 3);
        ck_assert_int_eq(t->shape[2], 2);
        ck_assert_int_eq(((uint8_t *)t->data)[11], 11);
        cvn_tensor_free(t);
    }
}
END_TEST

START_TEST(test_idx_bad) {
    unsigned char b[64];
    size_t n = good_file(b);
    char path[128];
    snprintf(path, sizeof path, "%s/bad", dir);
    /* every truncation, plain and compressed */
    for (size_t cut = 0; cut < n; cut++)
        for (int gz = 0; gz < 2; gz++) {
            write_file(path, b, cut, gz);
            ck_assert_msg(cvn_idx_load(path) == NULL, "truncated to %zu bytes was accepted", cut);
            ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
        }
    unsigned char c[64];
    /* wrong type byte, zero dims, too many dims, huge sizes, trailing bytes */
    const struct {
        int at;
        unsigned char v;
    } edits[] = {{2, 0x0D}, {3, 0}, {3, 9}, {4, 0xFF}, {0, 1}};
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(c, b, n);
        c[edits[e].at] = edits[e].v;
        write_file(path, c, n, false);
        ck_assert_msg(cvn_idx_load(path) == NULL, "edit %zu was accepted", e);
    }
    memcpy(c, b, n);
    c[n] = 7;
    write_file(path, c, n + 1, false);
    ck_assert_ptr_null(cvn_idx_load(path));
    ck_assert(strstr(cvn_last_error(), "past") != NULL);
    /* random corruption of a gzip stream: an error or a valid tensor, never a crash */
    srand(5);
    for (int trial = 0; trial < 200; trial++) {
        snprintf(path, sizeof path, "%s/fuzz.gz", dir);
        write_file(path, b, n, true);
        FILE *f = fopen(path, "r+b");
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, rand() % len, SEEK_SET);
        fputc(rand() & 0xFF, f);
        fclose(f);
        cvn_tensor_free(cvn_idx_load(path));
    }
    ck_assert_ptr_null(cvn_idx_load("/nonexistent/file"));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_IO);
}
END_TEST

int main(void) {
    if (!mkdtemp(dir)) return 1;
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("idx");
    tcase_add_test(tc, test_idx_good);
    tcase_add_test(tc, test_idx_bad);
    suite_add_tcase(s, tc);
    int failed = run_suite(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
    return failed ? 1 : 0;
}
