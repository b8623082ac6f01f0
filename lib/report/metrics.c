/* Classification metrics from predicted probabilities: confusion matrix, per-class precision /
 * recall / F1, one-vs-rest ROC curves and their AUC, and the course's per-class accuracy lines. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct cvn_predictions {
    int64_t n;
    int classes;
    float *probs;    /* [n, classes] */
    int32_t *labels; /* [n] */
};

cvn_predictions *cvn_predictions_new(int64_t n, int classes, const float *probs,
                                     const int32_t *labels) {
    if (n < 1 || classes < 2 || !probs || !labels) {
        cvn_set_error(CVN_ERR_ARG,
                      "predictions_new: %lld samples of %d classes (needs >= 1, >= 2 "
                      "and both arrays)",
                      (long long)n, classes);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            cvn_set_error(CVN_ERR_ARG, "predictions_new: label %d of sample %lld is not a class",
                          labels[i], (long long)i);
            return NULL;
        }
    cvn_predictions *p = cvn_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->probs = cvn_malloc((size_t)(n * classes) * sizeof(float));
    p->labels = cvn_malloc((size_t)n * sizeof(int32_t));
    if (!p->probs || !p->labels) {
        cvn_predictions_free(p);
        return NULL;
    }
    memcpy(p->probs, probs, (size_t)(n * classes) * sizeof(float));
    memcpy(p->labels, labels, (size_t)n * sizeof(int32_t));
    p->n = n;
    p->classes = classes;
    return p;
}

void cvn_predictions_free(cvn_predictions *p) {
    if (!p) return;
    cvn_free(p->probs);
    cvn_free(p->labels);
    cvn_free(p);
}

int64_t cvn_predictions_len(const cvn_predictions *p) {
    return p ? p->n : 0;
}

/* Grows an array of elem-byte items to hold at least need items. */
static bool reserve(void **a, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return true;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *g = cvn_malloc((size_t)c * elem);
    if (!g) return false;
    if (*cap) memcpy(g, *a, (size_t)*cap * elem);
    cvn_free(*a);
    *a = g;
    *cap = c;
    return true;
}

cvn_predictions *cvn_predict(cvn_module *model, cvn_tape *t, cvn_loader *loader) {
    if (!model || !t || !loader) {
        cvn_set_error(CVN_ERR_ARG, "predict: model, tape and loader are needed");
        return NULL;
    }
    bool was_training = cvn_module_is_training(model), grad = cvn_tape_set_grad_enabled(t, false);
    cvn_module_train(model, false);
    float *probs = NULL;
    int32_t *labels = NULL;
    int64_t cap_p = 0, cap_l = 0, n = 0;
    int classes = 0;
    cvn_tensor *x, *y;
    bool ok = true;
    while (ok && cvn_loader_next(loader, t, &x, &y)) {
        cvn_tensor *p = cvn_softmax(t, cvn_module_forward(model, t, x), 1);
        if (!p || p->ndim != 2 || (classes && p->shape[1] != classes)) {
            if (p) cvn_set_error(CVN_ERR_SHAPE, "predict: the model's output is not [N, classes]");
            ok = false;
            break;
        }
        classes = (int)p->shape[1];
        int64_t b = y->shape[0];
        ok = reserve((void **)&probs, &cap_p, (n + b) * classes, sizeof(float)) &&
             reserve((void **)&labels, &cap_l, n + b, sizeof(int32_t)) &&
             !cvn_tensor_read(p, probs + n * classes, (size_t)(b * classes) * sizeof(float)) &&
             !cvn_tensor_read(y, labels + n, (size_t)b * sizeof(int32_t));
        n += b;
        cvn_tape_reset(t);
    }
    if (cvn_last_status()) ok = false;
    cvn_tape_reset(t);
    cvn_tape_set_grad_enabled(t, grad);
    cvn_module_train(model, was_training);
    cvn_predictions *out = NULL;
    if (ok && n > 0)
        out = cvn_predictions_new(n, classes, probs, labels);
    else if (ok)
        cvn_set_error(CVN_ERR_ARG, "predict: the loader gave no batch");
    cvn_free(probs), cvn_free(labels);
    return out;
}

cvn_status cvn_confusion_matrix(const cvn_predictions *p, int64_t *out) {
    if (!p || !out) return cvn_set_error(CVN_ERR_ARG, "confusion_matrix: NULL argument");
    memset(out, 0, (size_t)p->classes * (size_t)p->classes * sizeof *out);
    for (int64_t i = 0; i < p->n; i++)
        out[p->labels[i] * p->classes + cvn_argmax(p->probs + i * p->classes, p->classes)]++;
    return CVN_OK;
}

/* Pairs of (score, positive) sorted by score, highest first. */
typedef struct {
    float score;
    bool positive;
} scored;

static int by_score_desc(const void *a, const void *b) {
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return x > y ? -1 : x < y;
}

int cvn_roc_curve(const cvn_predictions *p, int cls, float *fpr, float *tpr) {
    if (!p || cls < 0 || cls >= p->classes || !fpr || !tpr) {
        cvn_set_error(CVN_ERR_ARG, "roc_curve: class %d of %d", cls, p ? p->classes : 0);
        return -1;
    }
    scored *s = cvn_malloc((size_t)p->n * sizeof *s);
    if (!s) return -1;
    int64_t pos = 0;
    for (int64_t i = 0; i < p->n; i++) {
        s[i].score = p->probs[i * p->classes + cls];
        s[i].positive = p->labels[i] == cls;
        pos += s[i].positive;
    }
    int64_t neg = p->n - pos;
    qsort(s, (size_t)p->n, sizeof *s, by_score_desc);
    /* one point per distinct threshold, as sklearn's roc_curve(drop_intermediate=False) */
    int k = 0;
    int64_t tp = 0, fp = 0;
    fpr[k] = 0.0f, tpr[k] = 0.0f, k++;
    for (int64_t i = 0; i < p->n;) {
        float v = s[i].score;
        for (; i < p->n && s[i].score == v; i++) s[i].positive ? tp++ : fp++;
        fpr[k] = neg ? (float)fp / (float)neg : 0.0f;
        tpr[k] = pos ? (float)tp / (float)pos : 0.0f;
        k++;
    }
    cvn_free(s);
    return k;
}

/* Area under the ROC curve by the trapezoid rule (ties count one half: the Mann-Whitney U). NaN
 * when the class has no positive or no negative sample. */
static float auc_of(const cvn_predictions *p, int cls, float *fpr, float *tpr) {
    int64_t pos = 0;
    for (int64_t i = 0; i < p->n; i++) pos += p->labels[i] == cls;
    if (pos == 0 || pos == p->n) return NAN;
    int k = cvn_roc_curve(p, cls, fpr, tpr);
    double a = 0;
    for (int i = 1; i < k; i++) a += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2.0;
    return (float)a;
}

cvn_status cvn_class_metrics(const cvn_predictions *p, cvn_class_metric *out) {
    if (!p || !out) return cvn_set_error(CVN_ERR_ARG, "class_metrics: NULL argument");
    int c = p->classes;
    int64_t *cm = cvn_malloc((size_t)c * (size_t)c * sizeof *cm);
    float *fpr = cvn_malloc((size_t)(p->n + 2) * sizeof *fpr);
    float *tpr = cvn_malloc((size_t)(p->n + 2) * sizeof *tpr);
    if (!cm || !fpr || !tpr) {
        cvn_free(cm), cvn_free(fpr), cvn_free(tpr);
        return CVN_ERR_NOMEM;
    }
    cvn_confusion_matrix(p, cm);
    for (int k = 0; k < c; k++) {
        int64_t tp = cm[k * c + k], support = 0, predicted = 0;
        for (int j = 0; j < c; j++) support += cm[k * c + j], predicted += cm[j * c + k];
        cvn_class_metric *m = &out[k];
        m->support = support;
        m->recall = support ? (float)tp / (float)support : NAN;
        m->precision = predicted ? (float)tp / (float)predicted : NAN;
        m->f1 = support && predicted && tp
                    ? 2 * m->precision * m->recall / (m->precision + m->recall)
                : support || predicted ? 0.0f
                                       : NAN;
        m->auc = auc_of(p, k, fpr, tpr);
    }
    cvn_free(cm), cvn_free(fpr), cvn_free(tpr);
    return CVN_OK;
}

/* Mean over the classes where the value is defined; field 0 precision, 1 recall, 2 F1, 3 AUC. */
static float nanmean(const cvn_class_metric *m, int n, int field) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        float v = field == 0   ? m[i].precision
                  : field == 1 ? m[i].recall
                  : field == 2 ? m[i].f1
                               : m[i].auc;
        if (v == v) s += v, k++;
    }
    return k ? (float)(s / k) : NAN;
}

cvn_status cvn_metrics_summary(const cvn_predictions *p, cvn_metrics *out) {
    if (!p || !out) return cvn_set_error(CVN_ERR_ARG, "metrics_summary: NULL argument");
    cvn_class_metric *m = cvn_malloc((size_t)p->classes * sizeof *m);
    if (!m) return CVN_ERR_NOMEM;
    cvn_status st = cvn_class_metrics(p, m);
    if (!st) {
        int64_t correct = 0;
        for (int64_t i = 0; i < p->n; i++)
            correct += cvn_argmax(p->probs + i * p->classes, p->classes) == p->labels[i];
        out->accuracy = (float)correct / (float)p->n;
        out->macro_precision = nanmean(m, p->classes, 0);
        out->macro_recall = nanmean(m, p->classes, 1);
        out->macro_f1 = nanmean(m, p->classes, 2);
        out->macro_auc = nanmean(m, p->classes, 3);
    }
    cvn_free(m);
    return st;
}

cvn_status cvn_print_class_accuracy(FILE *f, const cvn_predictions *p, const char *const *names) {
    if (!f || !p) return cvn_set_error(CVN_ERR_ARG, "print_class_accuracy: NULL argument");
    cvn_class_metric *m = cvn_malloc((size_t)p->classes * sizeof *m);
    if (!m) return CVN_ERR_NOMEM;
    cvn_status st = cvn_class_metrics(p, m);
    for (int k = 0; !st && k < p->classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        fprintf(f, "Accuracy for class: %-5s is %.1f %%\n", names ? names[k] : num,
                m[k].support ? 100.0 * m[k].recall : 0.0);
    }
    cvn_free(m);
    return st;
}
