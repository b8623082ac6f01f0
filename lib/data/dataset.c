/* In-memory datasets (u8 images, i32 labels, class names) and the batch loader. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

#define MAX_CLASSES 1000

struct cvn_dataset {
    cvn_tensor *images; /* u8 [N, C, H, W] */
    cvn_tensor *labels; /* i32 [N] */
    int64_t n;          /* samples in use (limit) */
    int n_classes;
    char **class_names;
};

void cvn_dataset_free(cvn_dataset *ds) {
    if (!ds) return;
    cvn_tensor_free(ds->images);
    cvn_tensor_free(ds->labels);
    for (int i = 0; ds->class_names && i < ds->n_classes; i++) cvn_free(ds->class_names[i]);
    cvn_free(ds->class_names);
    cvn_free(ds);
}

static cvn_status set_class_names(cvn_dataset *ds, int n, const char *const *names) {
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
    if (set_class_names(ds, max_label + 1, NULL)) {
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
    if (set_class_names(ds, 10, fashion_classes)) {
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

/* ------------------------------------------------------------------ loader */

struct cvn_loader {
    const cvn_dataset *ds;
    cvn_loader_config cfg;
    int32_t *order; /* sample indices of this epoch */
    float *host_x;  /* one batch, converted on the host */
    int32_t *host_y;
    int64_t pos; /* next position in order */
    int epoch;
    float scale[3], shift[3]; /* pixel * scale + shift per channel */
};

static void start_epoch(cvn_loader *l) {
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++) l->order[i] = (int32_t)i;
    if (l->cfg.shuffle) {
        cvn_rng r;
        cvn_rng_seed(&r, l->cfg.seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(l->epoch + 1));
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)(cvn_rng_next(&r) % (uint64_t)(i + 1));
            int32_t k = l->order[i];
            l->order[i] = l->order[j], l->order[j] = k;
        }
    }
    l->pos = 0;
}

cvn_loader *cvn_loader_new(const cvn_dataset *ds, const cvn_loader_config *config) {
    if (!ds || !config || config->batch_size < 1) {
        cvn_set_error(CVN_ERR_ARG, "loader_new: needs a dataset and a batch size >= 1");
        return NULL;
    }
    if (ds->n > INT32_MAX) {
        cvn_set_error(CVN_ERR_ARG, "loader_new: %lld samples are too many", (long long)ds->n);
        return NULL;
    }
    cvn_loader *l = cvn_calloc(1, sizeof *l);
    if (!l) return NULL;
    l->ds = ds;
    l->cfg = *config;
    int64_t pixels = ds->images->shape[1] * ds->images->shape[2] * ds->images->shape[3];
    l->order = cvn_malloc((size_t)ds->n * sizeof *l->order);
    l->host_x = cvn_malloc((size_t)(config->batch_size * pixels) * sizeof(float));
    l->host_y = cvn_malloc((size_t)config->batch_size * sizeof(int32_t));
    if (!l->order || !l->host_x || !l->host_y) {
        cvn_loader_free(l);
        return NULL;
    }
    for (int c = 0; c < 3; c++) {
        float sd = config->std[c] != 0.0f ? config->std[c] : 1.0f;
        l->scale[c] = 1.0f / (255.0f * sd);
        l->shift[c] = -config->mean[c] / sd;
    }
    start_epoch(l);
    return l;
}

void cvn_loader_free(cvn_loader *l) {
    if (!l) return;
    cvn_free(l->order);
    cvn_free(l->host_x);
    cvn_free(l->host_y);
    cvn_free(l);
}

int64_t cvn_loader_num_batches(const cvn_loader *l) {
    if (!l) return 0;
    int64_t n = l->ds->n, b = l->cfg.batch_size;
    return l->cfg.drop_last ? n / b : (n + b - 1) / b;
}

int cvn_loader_epoch(const cvn_loader *l) {
    return l ? l->epoch : 0;
}

bool cvn_loader_next(cvn_loader *l, cvn_tape *t, cvn_tensor **x, cvn_tensor **y) {
    if (x) *x = NULL;
    if (y) *y = NULL;
    if (!l || !t || !x || !y) {
        cvn_set_error(CVN_ERR_ARG, "loader_next: loader, tape, x and y are needed");
        return false;
    }
    int64_t left = l->ds->n - l->pos;
    if (left <= 0 || (l->cfg.drop_last && left < l->cfg.batch_size)) {
        l->epoch++;
        start_epoch(l);
        cvn_clear_error();
        return false;
    }
    int64_t b = left < l->cfg.batch_size ? left : l->cfg.batch_size;
    const cvn_tensor *img = l->ds->images;
    int64_t ch = img->shape[1], plane = img->shape[2] * img->shape[3], pixels = ch * plane;
    const uint8_t *src = img->data;
    const int32_t *labels = l->ds->labels->data;
    for (int64_t i = 0; i < b; i++) {
        int32_t k = l->order[l->pos + i];
        for (int64_t c = 0; c < ch; c++) {
            const uint8_t *p = src + (int64_t)k * pixels + c * plane;
            float *q = l->host_x + i * pixels + c * plane;
            float sc = l->scale[c < 3 ? c : 2], sh = l->shift[c < 3 ? c : 2];
            for (int64_t j = 0; j < plane; j++) q[j] = (float)p[j] * sc + sh;
        }
        l->host_y[i] = labels[k];
    }
    l->pos += b;
    int64_t xs[4] = {b, ch, img->shape[2], img->shape[3]};
    *x = cvn_tape_tensor(t, CVN_F32, 4, xs);
    *y = cvn_tape_tensor(t, CVN_I32, 1, xs);
    if (!*x || !*y) return false;
    const cvn_backend *be = cvn_backend_get((*x)->device);
    be->upload((*x)->data, l->host_x, (size_t)(b * pixels) * sizeof(float));
    be->upload((*y)->data, l->host_y, (size_t)b * sizeof(int32_t));
    return true;
}
