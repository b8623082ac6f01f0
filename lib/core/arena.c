/* The per-device bump allocator behind every tape.
 *
 * Under ASan (SANITIZE=1), where the backend's memory is host memory, every byte not handed out
 * is poisoned: a chunk when it comes and when the arena is reset, and a guard of 64 bytes after
 * each allocation, so that a kernel reading or writing past its tensor is reported although the
 * next tensor lies right behind it (the CPU's kernels, and the CUDA kernels on the emulation). */
#include <string.h>

#include "core/core.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK (1u << 20)

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_GUARD 64
#else
#define ARENA_GUARD 0
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

static void poison(const cvn_arena *a, void *p, size_t bytes, bool on) {
    if (!a->be->host_memory) return;
    if (on)
        ASAN_POISON_MEMORY_REGION(p, bytes);
    else
        ASAN_UNPOISON_MEMORY_REGION(p, bytes);
}

struct cvn_chunk {
    cvn_chunk *next;
    char *base; /* from the backend (device memory for a GPU arena) */
    size_t size, used;
};

void cvn_arena_init(cvn_arena *a, const cvn_backend *be) {
    a->be = be;
    a->chunks = NULL;
    a->used = a->capacity = a->peak = 0;
    a->spares = NULL;
    a->n_spares = a->cap_spares = 0;
}

static void free_chunks(cvn_arena *a) {
    for (cvn_chunk *c = a->chunks, *next; c; c = next) {
        next = c->next;
        poison(a, c->base, c->size, false);
        a->be->free(c->base);
        cvn_free(c);
    }
    a->chunks = NULL;
    a->capacity = 0;
}

void cvn_arena_release(cvn_arena *a) {
    free_chunks(a);
    a->used = 0;
    cvn_free(a->spares);
    a->spares = NULL;
    a->n_spares = a->cap_spares = 0;
}

static cvn_chunk *new_chunk(cvn_arena *a, size_t size) {
    cvn_chunk *c = cvn_malloc(sizeof *c);
    if (!c) return NULL;
    c->base = a->be->alloc(size);
    if (!c->base) {
        cvn_free(c);
        return NULL;
    }
    c->size = size;
    c->used = 0;
    poison(a, c->base, size, true);
    c->next = a->chunks;
    a->chunks = c;
    a->capacity += size;
    return c;
}

/* The rounded size of a block of `bytes` (with the guard under ASan). */
static size_t block_size(size_t bytes) {
    size_t need = (bytes + ARENA_GUARD + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    return need ? need : ARENA_ALIGN;
}

/* The smallest spare that holds need and is at most twice its size (a larger one would hold
 * memory a later, larger request could use), taken off the list; NULL when none. */
static void *take_spare(cvn_arena *a, size_t need) {
    int best = -1;
    for (int i = 0; i < a->n_spares; i++) {
        size_t s = a->spares[i].size;
        if (s >= need && s / 2 <= need && (best < 0 || s < a->spares[best].size)) best = i;
    }
    if (best < 0) return NULL;
    void *p = a->spares[best].p;
    a->spares[best] = a->spares[--a->n_spares];
    return p;
}

void *cvn_arena_alloc(cvn_arena *a, size_t bytes) {
    size_t need = block_size(bytes);
    void *spare = take_spare(a, need);
    if (spare) {
        poison(a, spare, bytes, false);
        return spare;
    }
    cvn_chunk *c = a->chunks;
    if (!c || c->size - c->used < need) {
        size_t size = a->capacity > ARENA_MIN_CHUNK ? a->capacity : ARENA_MIN_CHUNK;
        if (size < need + ARENA_ALIGN) size = need + ARENA_ALIGN;
        c = new_chunk(a, size);
        if (!c) return NULL;
    }
    /* the backend's allocation may be less aligned than we promise: align inside the chunk */
    uintptr_t p = (uintptr_t)(c->base + c->used);
    size_t pad = (ARENA_ALIGN - (p & (ARENA_ALIGN - 1))) & (ARENA_ALIGN - 1);
    if (c->size - c->used < need + pad) {
        c = new_chunk(a, need + ARENA_ALIGN);
        if (!c) return NULL;
        p = (uintptr_t)c->base;
        pad = (ARENA_ALIGN - (p & (ARENA_ALIGN - 1))) & (ARENA_ALIGN - 1);
    }
    c->used += pad + need;
    a->used += pad + need;
    if (a->used > a->peak) a->peak = a->used;
    poison(a, (void *)(p + pad), bytes, false);
    return (void *)(p + pad);
}

void cvn_arena_give_back(cvn_arena *a, void *p, size_t bytes) {
    if (!p) return;
    if (a->n_spares == a->cap_spares) {
        int cap = a->cap_spares ? 2 * a->cap_spares : 64;
        const bool clean = cvn_last_status() == CVN_OK;
        cvn_spare *grown = cvn_malloc((size_t)cap * sizeof *grown);
        if (!grown) { /* the block just stays unused until the reset: not an error */
            if (clean) cvn_clear_error();
            return;
        }
        if (a->n_spares) memcpy(grown, a->spares, (size_t)a->n_spares * sizeof *grown);
        cvn_free(a->spares);
        a->spares = grown, a->cap_spares = cap;
    }
    const size_t size = block_size(bytes);
    poison(a, p, size, true);
    a->spares[a->n_spares++] = (cvn_spare){p, size};
}

void cvn_arena_reset(cvn_arena *a) {
    a->n_spares = 0;
    if (a->chunks && a->chunks->next) {
        /* Several chunks: replace them by one that holds the peak, so steps of this size fit. */
        size_t total = a->peak + ARENA_ALIGN * 64;
        free_chunks(a);
        new_chunk(a, total); /* on failure the next alloc retries */
    }
    if (a->chunks) {
        a->chunks->used = 0;
        poison(a, a->chunks->base, a->chunks->size, true);
    }
    a->used = 0;
}
