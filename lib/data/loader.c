/* The batch loader: a shuffled order per epoch, per-sample transforms (resize, random crop with
 * padding, horizontal flip, per-channel normalization) from a counter-based seed, and optionally a
 * background thread that prepares the next batch while the current one trains. The same seed
 * gives the same batches with or without the thread.
 * Batches are uploaded asynchronously: on a GPU the two batch slots are page-locked the first time
 * a batch goes there, the copy is queued ahead of the step's kernels, and the slot is handed back
 * to the producer only at the next call, once the copy is done (on the CPU the copy is done at
 * once, through the same path). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"

typedef struct {
    float *x;
    int32_t *y;
    int64_t b;
    bool end; /* marks the end of an epoch instead of a batch */
} slot;

struct cvn_loader {
    const cvn_dataset *ds;
    cvn_loader_config cfg;
    int c, h, w;              /* output image shape */
    float scale[3], shift[3]; /* pixel * scale + shift per channel */
    /* producer side: its own epoch and position, possibly a batch ahead of the consumer */
    int32_t *order;
    int64_t pos;
    int p_epoch;
    uint8_t *scratch; /* one resized image */
    slot slots[2];
    /* both slots' buffers, in whole pages from pages on (so a device can page-lock them) */
    void *block, *pages;
    size_t pages_bytes;
    const cvn_backend *pinned;  /* the backend that page-locked them, or NULL */
    bool pin_failed, in_flight; /* in_flight: the head slot is still being uploaded */
    int head, count;            /* ring of ready slots */
    int epoch;                  /* consumer's epoch */
    bool threaded, started, stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void start_epoch(cvn_loader *l) {
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++) l->order[i] = (int32_t)i;
    if (l->cfg.shuffle) {
        cvn_rng r;
        cvn_rng_seed(&r, l->cfg.seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(l->p_epoch + 1));
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)(cvn_rng_next(&r) % (uint64_t)(i + 1));
            int32_t k = l->order[i];
            l->order[i] = l->order[j], l->order[j] = k;
        }
    }
    l->pos = 0;
}

/* One sample into out [c, h, w]: resize, crop, flip, normalize. */
static void transform(cvn_loader *l, float *out, int32_t k, int64_t position) {
    const cvn_tensor *img = l->ds->images;
    int sh = (int)img->shape[2], sw = (int)img->shape[3], c = l->c, h = l->h, w = l->w;
    const uint8_t *src = (const uint8_t *)img->data + (int64_t)k * c * sh * sw;
    if (sh != h || sw != w) {
        cvn_resize_u8(l->scratch, h, w, src, c, sh, sw);
        src = l->scratch;
    }
    int dy = 0, dx = 0;
    bool flip = false;
    if (l->cfg.crop_padding > 0 || l->cfg.hflip) {
        cvn_rng r; /* a generator per sample: same draws in any thread, any batch split */
        cvn_rng_seed(&r, l->cfg.seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(l->p_epoch + 1)) ^
                             (0x8CB92BA72F3D8DD7ULL * (uint64_t)(position + 1)));
        int p = l->cfg.crop_padding;
        if (p > 0) {
            dy = (int)(cvn_rng_next(&r) % (uint64_t)(2 * p + 1)) - p;
            dx = (int)(cvn_rng_next(&r) % (uint64_t)(2 * p + 1)) - p;
        }
        flip = l->cfg.hflip && (cvn_rng_next(&r) >> 63);
    }
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *p = src + (int64_t)ch * h * w;
        float *q = out + (int64_t)ch * h * w;
        float sc = l->scale[ch < 3 ? ch : 2], sf = l->shift[ch < 3 ? ch : 2];
        if (!dy && !dx && !flip) {
            for (int64_t j = 0; j < (int64_t)h * w; j++) q[j] = (float)p[j] * sc + sf;
            continue;
        }
        for (int y = 0; y < h; y++) {
            int sy = y + dy;
            for (int x = 0; x < w; x++) {
                int sx = (flip ? w - 1 - x : x) + dx;
                uint8_t v = sy >= 0 && sy < h && sx >= 0 && sx < w ? p[sy * w + sx] : 0;
                q[y * w + x] = (float)v * sc + sf;
            }
        }
    }
}

/* The producer's next item into s: a batch, or the end of its epoch (then it starts the next). */
static void produce(cvn_loader *l, slot *s) {
    int64_t left = l->ds->n - l->pos, bs = l->cfg.batch_size;
    if (left <= 0 || (l->cfg.drop_last && left < bs)) {
        s->end = true;
        l->p_epoch++;
        start_epoch(l);
        return;
    }
    int64_t b = left < bs ? left : bs, pixels = (int64_t)l->c * l->h * l->w;
    const int32_t *labels = l->ds->labels->data;
    for (int64_t i = 0; i < b; i++) {
        int32_t k = l->order[l->pos + i];
        transform(l, s->x + i * pixels, k, l->pos + i);
        s->y[i] = labels[k];
    }
    s->b = b;
    s->end = false;
    l->pos += b;
}

static void *worker(void *arg) {
    cvn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->count == 2 && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop) break;
        slot *s = &l->slots[(l->head + l->count) % 2];
        pthread_mutex_unlock(&l->mu);
        produce(l, s);
        pthread_mutex_lock(&l->mu);
        l->count++;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

cvn_loader *cvn_loader_new(const cvn_dataset *ds, const cvn_loader_config *config) {
    if (!ds || !config || config->batch_size < 1 || config->crop_padding < 0 ||
        config->resize_h < 0 || config->resize_w < 0 || config->resize_h > 4096 ||
        config->resize_w > 4096 || (config->resize_h > 0) != (config->resize_w > 0)) {
        cvn_set_error(CVN_ERR_ARG, "loader_new: needs a dataset, a batch size >= 1, crop padding "
                                   ">= 0 and both or neither resize sizes (up to 4096)");
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
    l->c = (int)ds->images->shape[1];
    l->h = config->resize_h ? config->resize_h : (int)ds->images->shape[2];
    l->w = config->resize_w ? config->resize_w : (int)ds->images->shape[3];
    int64_t pixels = (int64_t)l->c * l->h * l->w;
    l->order = cvn_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *l->order);
    l->scratch = cvn_malloc((size_t)pixels);
    /* x then y of each slot, each 64-byte aligned, inside whole pages */
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096;
    size_t xb = ((size_t)(config->batch_size * pixels) * sizeof(float) + 63) / 64 * 64;
    size_t yb = ((size_t)config->batch_size * sizeof(int32_t) + 63) / 64 * 64;
    l->pages_bytes = (2 * (xb + yb) + page - 1) / page * page;
    l->block = cvn_malloc(l->pages_bytes + page);
    bool ok = l->order && l->scratch && l->block;
    if (ok) {
        l->pages = (void *)(((uintptr_t)l->block + page - 1) / page * page);
        for (int i = 0; i < 2; i++) {
            void *x = (char *)l->pages + i * (xb + yb), *y = (char *)x + xb;
            l->slots[i].x = x;
            l->slots[i].y = y;
        }
    }
    if (!ok) {
        cvn_loader_free(l);
        return NULL;
    }
    for (int c = 0; c < 3; c++) {
        float sd = config->std[c] != 0.0f ? config->std[c] : 1.0f;
        l->scale[c] = 1.0f / (255.0f * sd);
        l->shift[c] = -config->mean[c] / sd;
    }
    start_epoch(l);
    l->threaded = config->prefetch;
    return l;
}

void cvn_loader_free(cvn_loader *l) {
    if (!l) return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    if (l->in_flight) l->pinned->upload_wait();
    if (l->pinned) l->pinned->host_unregister(l->pages);
    cvn_free(l->order);
    cvn_free(l->scratch);
    cvn_free(l->block);
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

void cvn_loader_image_shape(const cvn_loader *l, int *c, int *h, int *w) {
    if (c) *c = l ? l->c : 0;
    if (h) *h = l ? l->h : 0;
    if (w) *w = l ? l->w : 0;
}

/* The next ready slot: from the worker, or made here. */
static slot *take(cvn_loader *l) {
    if (!l->threaded) {
        produce(l, &l->slots[0]);
        return &l->slots[0];
    }
    if (!l->started) {
        if (pthread_mutex_init(&l->mu, NULL) || pthread_cond_init(&l->cv, NULL) ||
            pthread_create(&l->thread, NULL, worker, l)) {
            l->threaded = false; /* no thread to be had: load in this one */
            return take(l);
        }
        l->started = true;
    }
    pthread_mutex_lock(&l->mu);
    while (l->count == 0) pthread_cond_wait(&l->cv, &l->mu);
    slot *s = &l->slots[l->head];
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Whether be can upload from the slots asynchronously: they are page-locked for it once (a loader
 * whose pages cannot be locked, or already locked for another device, copies synchronously). */
static bool pinned_for(cvn_loader *l, const cvn_backend *be) {
    if (!be->upload_async || !be->host_register) return false;
    if (l->pinned || l->pin_failed) return l->pinned == be;
    if (be->host_register(l->pages, l->pages_bytes))
        l->pinned = be;
    else
        l->pin_failed = true;
    return l->pinned == be;
}

static void release(cvn_loader *l) {
    if (!l->started) return;
    pthread_mutex_lock(&l->mu);
    l->head = (l->head + 1) % 2;
    l->count--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

bool cvn_loader_next(cvn_loader *l, cvn_tape *t, cvn_tensor **x, cvn_tensor **y) {
    if (x) *x = NULL;
    if (y) *y = NULL;
    if (!l || !t || !x || !y) {
        cvn_set_error(CVN_ERR_ARG, "loader_next: loader, tape, x and y are needed");
        return false;
    }
    if (l->in_flight) { /* the last batch's upload: done before its slot is refilled */
        l->pinned->upload_wait();
        l->in_flight = false;
        release(l);
    }
    slot *s = take(l);
    if (s->end) {
        release(l);
        l->epoch++;
        cvn_clear_error();
        return false;
    }
    int64_t b = s->b, pixels = (int64_t)l->c * l->h * l->w;
    int64_t xs[4] = {b, l->c, l->h, l->w};
    *x = cvn_tape_tensor(t, CVN_F32, 4, xs);
    *y = cvn_tape_tensor(t, CVN_I32, 1, xs);
    if (*x && *y) {
        const cvn_backend *be = cvn_backend_get((*x)->device);
        if (pinned_for(l, be)) {
            be->upload_async((*x)->data, s->x, (size_t)(b * pixels) * sizeof(float));
            be->upload_async((*y)->data, s->y, (size_t)b * sizeof(int32_t));
            l->in_flight = true; /* released at the next call */
            return true;
        }
        be->upload((*x)->data, s->x, (size_t)(b * pixels) * sizeof(float));
        be->upload((*y)->data, s->y, (size_t)b * sizeof(int32_t));
    }
    release(l);
    return *x && *y;
}
