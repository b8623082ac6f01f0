/* Datasets beyond IDX, on files the test writes: CIFAR-10 binary batches (good, truncated,
 * mislabeled), image folders of PNG / JPEG / BMP (good, corrupt, empty), resizing, the seeded
 * split, and the loader's transforms (crop with padding, flip, resize) with and without the
 * prefetch thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "testutil.h"

static const char *sub(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", test_dir(), name);
    return p;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* n records: label (i * 3 + file) % 10, pixel j of record i = (i + j + file) & 255. */
static void write_cifar(const char *dir, const char *name, int n, int file, int bad_label_at) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char *b = malloc((size_t)n * 3073);
    for (int i = 0; i < n; i++) {
        b[i * 3073] = (unsigned char)(i == bad_label_at ? 12 : (i * 3 + file) % 10);
        for (int j = 0; j < 3072; j++) b[i * 3073 + 1 + j] = (unsigned char)((i + j + file) & 255);
    }
    write_bytes(path, b, (size_t)n * 3073);
    free(b);
}

START_TEST(test_cifar10) {
    const char *dir = sub("cifar");
    mkdir(dir, 0700);
    for (int f = 1; f <= 5; f++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", f);
        write_cifar(dir, name, 4, f, -1);
    }
    write_cifar(dir, "test_batch.bin", 3, 0, -1);
    cvn_dataset *tr = CK_NOTNULL(cvn_dataset_cifar10(dir, true));
    ck_assert_int_eq(cvn_dataset_len(tr), 20);
    ck_assert_str_eq(cvn_dataset_class_name(tr, 9), "truck");
    const int32_t *lab = cvn_dataset_labels(tr)->data;
    ck_assert_int_eq(lab[4 + 2], (2 * 3 + 2) % 10); /* file 2, record 2 */
    const uint8_t *px = cvn_dataset_images(tr)->data;
    ck_assert_int_eq(px[(4 + 2) * 3072 + 1024 + 5], (2 + 1024 + 5 + 2) & 255); /* green plane */
    cvn_dataset_free(tr);
    /* class names from batches.meta.txt */
    const char meta[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    char path[600];
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    write_bytes(path, (const unsigned char *)meta, strlen(meta));
    cvn_dataset *te = CK_NOTNULL(cvn_dataset_cifar10(dir, false));
    ck_assert_int_eq(cvn_dataset_len(te), 3);
    ck_assert_str_eq(cvn_dataset_class_name(te, 1), "b");
    cvn_dataset_free(te);
    /* a truncated batch, a mislabeled record, a missing file */
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    truncate(path, 3073 * 2 + 100);
    ck_assert_ptr_null(cvn_dataset_cifar10(dir, false));
    ck_assert_msg(strstr(cvn_last_error(), "whole number of 3073-byte records"), "%s",
                  cvn_last_error());
    write_cifar(dir, "test_batch.bin", 3, 0, 1);
    ck_assert_ptr_null(cvn_dataset_cifar10(dir, false));
    ck_assert_msg(strstr(cvn_last_error(), "record 1 has label 12"), "%s", cvn_last_error());
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    remove(path);
    ck_assert_ptr_null(cvn_dataset_cifar10(dir, true));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_IO);
}
END_TEST

static void make_folder_set(const char *root) {
    mkdir(root, 0700);
    char d[600], p[700];
    const char *classes[] = {"cats", "dogs"};
    for (int c = 0; c < 2; c++) {
        snprintf(d, sizeof d, "%s/%s", root, classes[c]);
        mkdir(d, 0700);
        for (int i = 0; i < 3; i++) {
            /* 4x4 RGB, red = 40 * c + 10 * i, green 100, blue = column * 60 */
            unsigned char img[4 * 4 * 3];
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++) {
                    unsigned char *q = img + (y * 4 + x) * 3;
                    q[0] = (unsigned char)(40 * c + 10 * i), q[1] = 100,
                    q[2] = (unsigned char)(x * 60);
                }
            if (i == 2) {
                snprintf(p, sizeof p, "%s/img%d.bmp", d, i);
                stbi_write_bmp(p, 4, 4, 3, img);
            } else {
                snprintf(p, sizeof p, "%s/img%d.png", d, i);
                stbi_write_png(p, 4, 4, 3, img, 12);
            }
        }
        snprintf(p, sizeof p, "%s/notes.txt", d); /* not an image: ignored */
        write_bytes(p, (const unsigned char *)"x", 1);
    }
}

START_TEST(test_image_folder) {
    const char *root = sub("folder");
    make_folder_set(root);
    cvn_dataset *ds = CK_NOTNULL(cvn_dataset_image_folder(root, 3, 4, 4));
    ck_assert_int_eq(cvn_dataset_len(ds), 6);
    ck_assert_int_eq(cvn_dataset_num_classes(ds), 2);
    ck_assert_str_eq(cvn_dataset_class_name(ds, 1), "dogs");
    const uint8_t *px = cvn_dataset_images(ds)->data;
    const int32_t *lab = cvn_dataset_labels(ds)->data;
    ck_assert_int_eq(lab[4], 1);
    ck_assert_int_eq(px[4 * 48 + 0], 50);       /* dogs/img1: red plane */
    ck_assert_int_eq(px[4 * 48 + 16 + 5], 100); /* green */
    ck_assert_int_eq(px[4 * 48 + 32 + 3], 180); /* blue, column 3 */
    ck_assert_int_eq(px[5 * 48 + 32 + 2], 120); /* the BMP */
    cvn_dataset_free(ds);
    /* gray and resized to 2x2: each output pixel is the mean of a 2x2 block (bilinear at half
     * pixel centres); gray = (299 R + 587 G + 114 B) / 1000 as stb_image computes it */
    ds = CK_NOTNULL(cvn_dataset_image_folder(root, 1, 2, 2));
    px = cvn_dataset_images(ds)->data;
    ck_assert_int_eq(cvn_dataset_images(ds)->shape[1], 1);
    int g0 = (0 * 77 + 100 * 150 + 0 * 29) >> 8, g1 = (0 * 77 + 100 * 150 + 60 * 29) >> 8;
    ck_assert_int_le(abs(px[0] - (g0 + g1 + 1) / 2), 1);
    cvn_dataset_free(ds);
    /* a corrupt image is named */
    char p[700];
    snprintf(p, sizeof p, "%s/cats/broken.jpg", root);
    write_bytes(p, (const unsigned char *)"\xff\xd8\xff\xe0 not really a jpeg", 22);
    ck_assert_ptr_null(cvn_dataset_image_folder(root, 3, 4, 4));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
    ck_assert_msg(strstr(cvn_last_error(), "broken.jpg"), "%s", cvn_last_error());
    /* no class folders; a missing root; bad sizes */
    const char *empty = sub("empty");
    mkdir(empty, 0700);
    ck_assert_ptr_null(cvn_dataset_image_folder(empty, 3, 4, 4));
    ck_assert_msg(strstr(cvn_last_error(), "0 class folders"), "%s", cvn_last_error());
    ck_assert_ptr_null(cvn_dataset_image_folder(sub("nope"), 3, 4, 4));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_IO);
    ck_assert_ptr_null(cvn_dataset_image_folder(root, 2, 4, 4));
}
END_TEST

/* 100 8x8 gray images; image i has every pixel = i, label i % 7. */
static cvn_dataset *numbered(int n, int h, int w) {
    unsigned char *img = malloc(16 + (size_t)n * h * w), lab[8 + 256];
    unsigned char hi[16] = {0, 0, 8, 3,
                            0, 0, 0, (unsigned char)n,
                            0, 0, 0, (unsigned char)h,
                            0, 0, 0, (unsigned char)w};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    memcpy(img, hi, 16), memcpy(lab, hl, 8);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < h * w; j++) img[16 + i * h * w + j] = (unsigned char)i;
        lab[8 + i] = (unsigned char)(i % 7);
    }
    write_bytes(sub("num-img"), img, 16 + (size_t)n * h * w);
    write_bytes(sub("num-lab"), lab, 8 + (size_t)n);
    free(img);
    return cvn_dataset_idx(sub("num-img"), sub("num-lab"));
}

START_TEST(test_split) {
    cvn_dataset *ds = CK_NOTNULL(numbered(100, 2, 2));
    cvn_dataset *parts[3];
    CK_OK(cvn_dataset_split(ds, 3, (float[]){70, 15, 15}, 5, parts));
    ck_assert_int_eq(cvn_dataset_len(parts[0]), 70);
    ck_assert_int_eq(cvn_dataset_len(parts[1]), 15);
    ck_assert_int_eq(cvn_dataset_len(parts[2]), 15);
    int seen[100] = {0};
    for (int p = 0; p < 3; p++) {
        const uint8_t *px = cvn_dataset_images(parts[p])->data;
        const int32_t *lab = cvn_dataset_labels(parts[p])->data;
        for (int i = 0; i < cvn_dataset_len(parts[p]); i++) {
            seen[px[i * 4]]++;
            ck_assert_int_eq(lab[i], px[i * 4] % 7); /* labels travel with their images */
        }
    }
    for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
    /* the same seed gives the same split; another seed another */
    cvn_dataset *again[3], *other[3];
    CK_OK(cvn_dataset_split(ds, 3, (float[]){0.7f, 0.15f, 0.15f}, 5, again));
    CK_OK(cvn_dataset_split(ds, 3, (float[]){0.7f, 0.15f, 0.15f}, 6, other));
    ck_assert(!memcmp(cvn_dataset_images(again[1])->data, cvn_dataset_images(parts[1])->data, 60));
    ck_assert(memcmp(cvn_dataset_images(other[1])->data, cvn_dataset_images(parts[1])->data, 60));
    for (int p = 0; p < 3; p++)
        cvn_dataset_free(parts[p]), cvn_dataset_free(again[p]), cvn_dataset_free(other[p]);
    ck_assert_int_eq(cvn_dataset_split(ds, 2, (float[]){1, 0}, 5, parts), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_dataset_split(ds, 2, (float[]){1000, 1}, 5, parts), CVN_ERR_ARG);
    cvn_dataset_free(ds);
}
END_TEST

/* Crop with padding 2 and flips: every output is the input shifted by (dy, dx) in [-2, 2] with
 * zeros shifted in, possibly mirrored; the draws vary; prefetching gives the same batches. */
START_TEST(test_loader_transforms) {
    /* 40 images of 6x6 with pixel (y, x) = 1 + y * 6 + x (distinct, nonzero) */
    int n = 40, h = 6, w = 6;
    unsigned char *img = malloc(16 + (size_t)n * h * w), lab[8 + 40];
    unsigned char hi[16] = {0, 0, 8, 3, 0, 0, 0, 40, 0, 0, 0, 6, 0, 0, 0, 6};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, 40};
    memcpy(img, hi, 16), memcpy(lab, hl, 8);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < h * w; j++) img[16 + i * h * w + j] = (unsigned char)(1 + j);
        lab[8 + i] = (unsigned char)(i % 3);
    }
    write_bytes(sub("t-img"), img, 16 + (size_t)n * h * w);
    write_bytes(sub("t-lab"), lab, 8 + (size_t)n);
    free(img);
    cvn_dataset *ds = CK_NOTNULL(cvn_dataset_idx(sub("t-img"), sub("t-lab")));
    cvn_loader_config cfg = {.batch_size = 7,
                             .shuffle = true,
                             .seed = 3,
                             .std = {1.0f / 255.0f},
                             .crop_padding = 2,
                             .hflip = true};
    cvn_loader *a = CK_NOTNULL(cvn_loader_new(ds, &cfg));
    cfg.prefetch = true;
    cvn_loader *b = CK_NOTNULL(cvn_loader_new(ds, &cfg));
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    int shifts[5][5] = {{0}}, flips = 0, batches = 0;
    for (int epoch = 0; epoch < 3; epoch++) {
        cvn_tensor *xa, *ya, *xb, *yb;
        for (;;) {
            bool ha = cvn_loader_next(a, t, &xa, &ya), hb = cvn_loader_next(b, t, &xb, &yb);
            ck_assert_int_eq(ha, hb);
            if (!ha) break;
            batches++;
            ck_assert_int_eq(xa->shape[0], xb->shape[0]);
            ck_assert(!memcmp(xa->data, xb->data, (size_t)cvn_numel(xa) * 4));
            ck_assert(!memcmp(ya->data, yb->data, (size_t)cvn_numel(ya) * 4));
            const float *v = xa->data; /* pixel values, since std = 1/255 and mean 0 */
            for (int64_t i = 0; i < xa->shape[0]; i++) {
                const float *im = v + i * 36;
                bool found = false;
                for (int dy = -2; dy <= 2 && !found; dy++)
                    for (int dx = -2; dx <= 2 && !found; dx++)
                        for (int f = 0; f < 2 && !found; f++) {
                            bool match = true;
                            for (int y = 0; y < 6 && match; y++)
                                for (int x = 0; x < 6 && match; x++) {
                                    int sy = y + dy, sx = (f ? 5 - x : x) + dx;
                                    float want = sy >= 0 && sy < 6 && sx >= 0 && sx < 6
                                                     ? (float)(1 + sy * 6 + sx)
                                                     : 0.0f;
                                    match = im[y * 6 + x] == want;
                                }
                            if (match) found = true, shifts[dy + 2][dx + 2]++, flips += f;
                        }
                ck_assert_msg(found, "image %lld of a batch is not a padded crop or flip",
                              (long long)i);
            }
            cvn_tape_reset(t);
        }
    }
    ck_assert_int_eq(batches, 18);
    int distinct = 0;
    for (int i = 0; i < 25; i++) distinct += shifts[i / 5][i % 5] > 0;
    ck_assert_int_ge(distinct, 15); /* 120 draws over 25 shifts */
    ck_assert(flips > 30 && flips < 90);
    cvn_loader_free(a), cvn_loader_free(b);
    /* resize in the loader: 6x6 -> 3x3 */
    cvn_loader_config rc = {.batch_size = 40, .std = {1.0f / 255.0f}, .resize_h = 3, .resize_w = 3};
    cvn_loader *c = CK_NOTNULL(cvn_loader_new(ds, &rc));
    cvn_tensor *x, *y;
    ck_assert(cvn_loader_next(c, t, &x, &y));
    ck_assert_int_eq(x->shape[2], 3);
    /* output (0, 0): mean of pixels (0,0) (0,1) (1,0) (1,1) = (1 + 2 + 7 + 8) / 4 = 4.5 -> 5 */
    ck_assert_float_eq(((float *)x->data)[0], 5.0f);
    cvn_loader_free(c);
    rc.resize_w = 0;
    ck_assert_ptr_null(cvn_loader_new(ds, &rc));
    cvn_tape_free(t);
    cvn_dataset_free(ds);
}
END_TEST

int main(void) {
    Suite *s = suite_create("images");
    TCase *tc = tcase_create("images");
    tcase_add_test(tc, test_cifar10);
    tcase_add_test(tc, test_image_folder);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_loader_transforms);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
