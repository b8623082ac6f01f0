/* Data: the IDX reader on files the test writes — good ones (plain and gzip), and truncated,
 * corrupted, oversized and trailing-garbage ones, each of which must give an error, not a crash —
 * datasets built from them, and the batch loader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"

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
        snprintf(path, sizeof path, "%s/good%s", test_dir(), gz ? ".gz" : "");
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
    snprintf(path, sizeof path, "%s/bad", test_dir());
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
        snprintf(path, sizeof path, "%s/fuzz.gz", test_dir());
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

/* Ten 4x3 images whose pixels are 12 i + j, labels i % 3. */
static void write_dataset(const char *img_path, const char *lab_path, int n_labels) {
    unsigned char b[16 + 120];
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 3};
    memcpy(b, h, 16);
    for (int i = 0; i < 120; i++) b[16 + i] = (unsigned char)i;
    write_file(img_path, b, sizeof b, true);
    unsigned char l[8 + 10] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n_labels};
    for (int i = 0; i < 10; i++) l[8 + i] = (unsigned char)(i % 3);
    write_file(lab_path, l, 8 + (size_t)n_labels, false);
}

START_TEST(test_dataset_and_loader) {
    char img[128], lab[128];
    snprintf(img, sizeof img, "%s/img.gz", test_dir());
    snprintf(lab, sizeof lab, "%s/lab", test_dir());
    write_dataset(img, lab, 10);
    cvn_dataset *ds = CK_NOTNULL(cvn_dataset_idx(img, lab));
    ck_assert_int_eq(cvn_dataset_len(ds), 10);
    ck_assert_int_eq(cvn_dataset_num_classes(ds), 3);
    ck_assert_str_eq(cvn_dataset_class_name(ds, 2), "2");
    int c, h, w;
    cvn_dataset_image_shape(ds, &c, &h, &w);
    ck_assert(c == 1 && h == 4 && w == 3);

    cvn_loader_config cfg = {.batch_size = 4, .shuffle = true, .seed = 11};
    cfg.mean[0] = 0.5f, cfg.std[0] = 0.25f;
    cvn_loader *l = CK_NOTNULL(cvn_loader_new(ds, &cfg));
    cvn_loader *twin = CK_NOTNULL(cvn_loader_new(ds, &cfg));
    ck_assert_int_eq(cvn_loader_num_batches(l), 3);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    int order[2][10], at = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
        int seen[10] = {0}, batches = 0;
        cvn_tensor *x, *y, *x2, *y2;
        at = 0;
        while (cvn_loader_next(l, t, &x, &y)) {
            ck_assert(cvn_loader_next(twin, t, &x2, &y2));
            ck_assert(memcmp(x->data, x2->data, (size_t)cvn_numel(x) * 4) == 0);
            ck_assert_int_eq(x->shape[0], batches < 2 ? 4 : 2);
            for (int64_t i = 0; i < x->shape[0]; i++) {
                const float *px = (const float *)x->data + i * 12;
                /* pixel 0 of sample k is 12 k: undo the normalization to find k */
                float raw = (px[0] * 0.25f + 0.5f) * 255.0f;
                int k = (int)lroundf(raw / 12.0f);
                ck_assert_float_eq_tol(raw, 12.0f * k, 1e-3f);
                ck_assert_float_eq_tol(px[5], ((12.0f * k + 5) / 255.0f - 0.5f) / 0.25f, 1e-5f);
                ck_assert_int_eq(((int32_t *)y->data)[i], k % 3);
                seen[k]++;
                order[epoch][at++] = k;
            }
            batches++;
        }
        ck_assert(!cvn_loader_next(twin, t, &x2, &y2));
        ck_assert_int_eq(batches, 3);
        for (int k = 0; k < 10; k++) ck_assert_int_eq(seen[k], 1);
        cvn_tape_reset(t);
    }
    ck_assert_int_eq(cvn_loader_epoch(l), 2);
    ck_assert_msg(memcmp(order[0], order[1], sizeof order[0]) != 0, "epochs share one order");
    cvn_loader_free(l), cvn_loader_free(twin);

    cfg.drop_last = true, cfg.shuffle = false;
    l = cvn_loader_new(ds, &cfg);
    ck_assert_int_eq(cvn_loader_num_batches(l), 2);
    cvn_tensor *x, *y;
    int batches = 0;
    while (cvn_loader_next(l, t, &x, &y)) batches++;
    ck_assert_int_eq(batches, 2);
    cvn_loader_free(l);
    CK_OK(cvn_dataset_limit(ds, 6));
    ck_assert_int_eq(cvn_dataset_len(ds), 6);
    ck_assert_int_eq(cvn_dataset_limit(ds, 11), CVN_ERR_ARG);
    cvn_tape_free(t);
    cvn_dataset_free(ds);

    /* image and label counts that disagree */
    write_dataset(img, lab, 9);
    ck_assert_ptr_null(cvn_dataset_idx(img, lab));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
    /* a missing FashionMNIST names its package */
    ck_assert_ptr_null(cvn_dataset_fashion_mnist("/nonexistent", true));
    ck_assert(strstr(cvn_last_error(), "dataset-fashion-mnist") != NULL);
}
END_TEST

/* Debian's FashionMNIST, when installed: sizes and class names. */
START_TEST(test_fashion_mnist) {
    cvn_dataset *ds = cvn_dataset_fashion_mnist(NULL, false);
    if (!ds) {
        printf("test_data: FashionMNIST check skipped: %s\n", cvn_last_error());
        return;
    }
    ck_assert_int_eq(cvn_dataset_len(ds), 10000);
    ck_assert_str_eq(cvn_dataset_class_name(ds, 9), "Ankle boot");
    int counts[10] = {0};
    const int32_t *y = cvn_dataset_labels(ds)->data;
    for (int i = 0; i < 10000; i++) counts[y[i]]++;
    for (int k = 0; k < 10; k++) ck_assert_int_eq(counts[k], 1000); /* balanced test set */
    cvn_dataset_free(ds);
}
END_TEST

int main(void) {
    test_dir(); /* made here, before Check forks, so every test shares it */
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_test(tc, test_idx_good);
    tcase_add_test(tc, test_idx_bad);
    tcase_add_test(tc, test_dataset_and_loader);
    tcase_add_test(tc, test_fashion_mnist);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
