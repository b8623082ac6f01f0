/* In-memory datasets (u8 images, i32 labels, class names) and the batch loader. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

#include "data/data.h"

void cvn_dataset_free(cvn_dataset *ds) {
    if (!ds) return;
    cvn_tensor_free(ds->images);
    cvn_tensor_free(ds->labels);
    for (int i = 0; ds->class_names && i < ds->n_classes; i++) cvn_free(ds->class_names[i]);
    cvn_free(ds->class_names);
    cvn_free(ds);
}

cvn_status cvn_dataset_set_classes(cvn_dataset *ds, int n, const char *const *names) {
    ds->class_names = cvn_calloc((size_t)n, sizeof(char *));
    if (!ds->class_names) return CVN_ERR_NOMEM;
    ds->n_classes = n;
    for (int i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        ds->class_names[i] = cvn_strdup(names ? names[i] : num);
        if (!ds->class_names[i]) return CVN_ERR_NOMEM;
    }
    return CVN_OK;
}

cvn_dataset *cvn_dataset_idx(const char *images_path, const char *labels_path) {
    cvn_tensor *img = cvn_idx_load(images_path);
    cvn_tensor *lab = img ? cvn_idx_load(labels_path) : NULL;
    if (!img || !lab) {
        cvn_tensor_free(img);
        return NULL;
    }
    cvn_dataset *ds = NULL;
    if ((img->ndim != 3 && img->ndim != 4) || lab->ndim != 1 || img->shape[0] != lab->shape[0]) {
        char a[96], b[96];
        cvn_set_error(CVN_ERR_FORMAT,
                      "dataset: images %s (%s) and labels %s (%s) must be [N, H, W] or "
                      "[N, C, H, W] and [N] with the same N",
                      cvn_shape_str(img, a, sizeof a), images_path, cvn_shape_str(lab, b, sizeof b),
                      labels_path);
        goto fail;
    }
    ds = cvn_calloc(1, sizeof *ds);
    if (!ds) goto fail;
    if (img->ndim == 3) { /* [N, H, W] -> [N, 1, H, W]: same bytes */
        int64_t shape[4] = {img->shape[0], 1, img->shape[1], img->shape[2]};
        cvn_tensor_set_shape(img, 4, shape);
    }
    ds->images = img;
    ds->n = img->shape[0];
    ds->labels = cvn_tensor_new(CVN_I32, 1, lab->shape);
    if (!ds->labels) goto fail;
    int max_label = -1;
    const uint8_t *lv = lab->data;
    int32_t *out = ds->labels->data;
    for (int64_t i = 0; i < ds->n; i++) {
        out[i] = lv[i];
        if (lv[i] > max_label) max_label = lv[i];
    }
    cvn_tensor_free(lab);
    if (cvn_dataset_set_classes(ds, max_label + 1, NULL)) {
        cvn_dataset_free(ds);
        return NULL;
    }
    return ds;
fail:
    if (ds) {
        ds->images = NULL; /* still owned below */
        cvn_dataset_free(ds);
    }
    cvn_tensor_free(img);
    cvn_tensor_free(lab);
    return NULL;
}

static const char *const fashion_classes[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                "Bag",         "Ankle boot"};

cvn_dataset *cvn_dataset_fashion_mnist(const char *dir, bool train) {
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    char img[1024], lab[1024];
    const char *split = train ? "train" : "t10k";
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    struct stat st;
    if (stat(img, &st) != 0 || stat(lab, &st) != 0) {
        cvn_set_error(CVN_ERR_IO,
                      "FashionMNIST not found in %s (install Debian's dataset-fashion-mnist: "
                      "apt-get install dataset-fashion-mnist, or scripts/install-deps.sh)",
                      dir);
        return NULL;
    }
    cvn_dataset *ds = cvn_dataset_idx(img, lab);
    if (!ds) return NULL;
    if (ds->n_classes > 10) {
        cvn_set_error(CVN_ERR_FORMAT, "%s: labels go up to %d; FashionMNIST has 10 classes", lab,
                      ds->n_classes - 1);
        cvn_dataset_free(ds);
        return NULL;
    }
    for (int i = 0; i < ds->n_classes; i++) cvn_free(ds->class_names[i]);
    cvn_free(ds->class_names);
    if (cvn_dataset_set_classes(ds, 10, fashion_classes)) {
        cvn_dataset_free(ds);
        return NULL;
    }
    return ds;
}

int64_t cvn_dataset_len(const cvn_dataset *ds) {
    return ds ? ds->n : 0;
}
int cvn_dataset_num_classes(const cvn_dataset *ds) {
    return ds ? ds->n_classes : 0;
}
const char *cvn_dataset_class_name(const cvn_dataset *ds, int label) {
    if (!ds || label < 0 || label >= ds->n_classes) return "";
    return ds->class_names[label];
}
void cvn_dataset_image_shape(const cvn_dataset *ds, int *c, int *h, int *w) {
    if (c) *c = ds ? (int)ds->images->shape[1] : 0;
    if (h) *h = ds ? (int)ds->images->shape[2] : 0;
    if (w) *w = ds ? (int)ds->images->shape[3] : 0;
}
cvn_status cvn_dataset_limit(cvn_dataset *ds, int64_t n) {
    if (!ds || n < 1 || n > ds->images->shape[0])
        return cvn_set_error(CVN_ERR_ARG, "dataset_limit: %lld samples asked, %lld available",
                             (long long)n, ds ? (long long)ds->images->shape[0] : 0LL);
    ds->n = n;
    return CVN_OK;
}
const cvn_tensor *cvn_dataset_images(const cvn_dataset *ds) {
    return ds ? ds->images : NULL;
}
const cvn_tensor *cvn_dataset_labels(const cvn_dataset *ds) {
    return ds ? ds->labels : NULL;
}

cvn_dataset *cvn_dataset_make(cvn_tensor *images, cvn_tensor *labels, int n_classes,
                              const char *const *names) {
    cvn_dataset *ds = images && labels ? cvn_calloc(1, sizeof *ds) : NULL;
    if (!ds) {
        cvn_tensor_free(images);
        cvn_tensor_free(labels);
        return NULL;
    }
    ds->images = images;
    ds->labels = labels;
    ds->n = images->shape[0];
    if (cvn_dataset_set_classes(ds, n_classes, names)) {
        cvn_dataset_free(ds);
        return NULL;
    }
    return ds;
}

/* A new dataset holding samples idx[0..n) of ds, with its class names. */
static cvn_dataset *subset(const cvn_dataset *ds, const int64_t *idx, int64_t n) {
    int64_t shape[4] = {n, ds->images->shape[1], ds->images->shape[2], ds->images->shape[3]};
    int64_t pixels = shape[1] * shape[2] * shape[3];
    cvn_tensor *img = cvn_tensor_new(CVN_U8, 4, shape), *lab = cvn_tensor_new(CVN_I32, 1, shape);
    if (img && lab)
        for (int64_t i = 0; i < n; i++) {
            memcpy((uint8_t *)img->data + i * pixels,
                   (const uint8_t *)ds->images->data + idx[i] * pixels, (size_t)pixels);
            ((int32_t *)lab->data)[i] = ((const int32_t *)ds->labels->data)[idx[i]];
        }
    return cvn_dataset_make(img, lab, ds->n_classes, (const char *const *)ds->class_names);
}

cvn_status cvn_dataset_split(const cvn_dataset *ds, int parts, const float *ratios, uint64_t seed,
                             cvn_dataset **out) {
    if (!ds || !ratios || !out || parts < 1 || parts > 8)
        return cvn_set_error(CVN_ERR_ARG, "dataset_split: a dataset and 1 to 8 ratios are needed");
    double total = 0;
    for (int i = 0; i < parts; i++) {
        if (!(ratios[i] > 0.0f))
            return cvn_set_error(CVN_ERR_ARG, "dataset_split: ratio %d is %g; must be > 0", i,
                                 (double)ratios[i]);
        total += ratios[i];
    }
    int64_t n = ds->n, *idx = cvn_malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return CVN_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(cvn_rng_next(&r) % (uint64_t)(i + 1)), k = idx[i];
        idx[i] = idx[j], idx[j] = k;
    }
    int64_t start = 0;
    double acc = 0;
    cvn_status st = CVN_OK;
    for (int i = 0; i < parts; i++) out[i] = NULL;
    for (int i = 0; i < parts && !st; i++) {
        acc += ratios[i];
        int64_t end = i == parts - 1 ? n : (int64_t)(acc / total * (double)n + 0.5);
        if (end <= start) {
            st = cvn_set_error(CVN_ERR_ARG, "dataset_split: part %d of %lld samples would be empty",
                               i, (long long)n);
            break;
        }
        out[i] = subset(ds, idx + start, end - start);
        if (!out[i]) st = cvn_last_status() ? cvn_last_status() : CVN_ERR_NOMEM;
        start = end;
    }
    if (st)
        for (int i = 0; i < parts; i++) cvn_dataset_free(out[i]), out[i] = NULL;
    cvn_free(idx);
    return st;
}
