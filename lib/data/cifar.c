/* CIFAR-10's binary format (https://www.cs.toronto.edu/~kriz/cifar.html): files of records, each
 * one label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32); class names
 * one per line in batches.meta.txt. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"

#define RECORD 3073

static const char *const cifar_classes[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* Class names from batches.meta.txt when present (else CIFAR-10's), into names[10]. */
static cvn_status read_names(const char *dir, char names[10][64]) {
    for (int i = 0; i < 10; i++) snprintf(names[i], 64, "%s", cifar_classes[i]);
    char path[1024];
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return CVN_OK;
    char line[256];
    int n = 0;
    while (n < 10 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        snprintf(names[n++], 64, "%.63s", line);
    }
    fclose(f);
    if (n != 10)
        return cvn_set_error(CVN_ERR_FORMAT, "%s: %d class names; CIFAR-10 has 10", path, n);
    return CVN_OK;
}

cvn_dataset *cvn_dataset_cifar10(const char *dir, bool train) {
    if (!dir) {
        cvn_set_error(CVN_ERR_ARG, "dataset_cifar10: directory is NULL");
        return NULL;
    }
    char names[10][64];
    if (read_names(dir, names)) return NULL;
    int n_files = train ? 5 : 1;
    char paths[5][1024];
    int64_t records = 0;
    for (int i = 0; i < n_files; i++) {
        if (train)
            snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1);
        else
            snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            cvn_set_error(CVN_ERR_IO, "%s: not found (CIFAR-10 binary version expected in %s)",
                          paths[i], dir);
            return NULL;
        }
        if (st.st_size == 0 || st.st_size % RECORD) {
            cvn_set_error(CVN_ERR_FORMAT,
                          "%s: %lld bytes is not a whole number of %d-byte records (truncated?)",
                          paths[i], (long long)st.st_size, RECORD);
            return NULL;
        }
        records += st.st_size / RECORD;
    }
    int64_t shape[4] = {records, 3, 32, 32};
    cvn_tensor *img = cvn_tensor_new(CVN_U8, 4, shape), *lab = cvn_tensor_new(CVN_I32, 1, shape);
    if (!img || !lab) {
        cvn_tensor_free(img), cvn_tensor_free(lab);
        return NULL;
    }
    uint8_t *px = img->data;
    int32_t *labels = lab->data;
    int64_t at = 0;
    unsigned char rec[RECORD];
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            cvn_set_error(CVN_ERR_IO, "%s: cannot open", paths[i]);
            goto fail;
        }
        int64_t k = 0;
        while (at < records && fread(rec, 1, RECORD, f) == RECORD) {
            if (rec[0] >= 10) {
                cvn_set_error(CVN_ERR_FORMAT, "%s: record %lld has label %d; CIFAR-10 has 0-9",
                              paths[i], (long long)k, rec[0]);
                fclose(f);
                goto fail;
            }
            labels[at] = rec[0];
            memcpy(px + at * 3072, rec + 1, 3072);
            at++, k++;
        }
        bool err = ferror(f);
        fclose(f);
        if (err) {
            cvn_set_error(CVN_ERR_IO, "%s: read failed", paths[i]);
            goto fail;
        }
    }
    if (at != records) {
        cvn_set_error(CVN_ERR_IO, "%s: changed while being read", dir);
        goto fail;
    }
    const char *ptrs[10];
    for (int i = 0; i < 10; i++) ptrs[i] = names[i];
    return cvn_dataset_make(img, lab, 10, ptrs);
fail:
    cvn_tensor_free(img), cvn_tensor_free(lab);
    return NULL;
}
