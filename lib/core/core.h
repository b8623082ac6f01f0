/* Private core of libcvnet: errors, heap, arena, tape nodes. Included by lib/ and kernels/ code,
 * never installed. */
#ifndef CVN_CORE_H
#define CVN_CORE_H

#include "cvnet.h"
#include "backend.h"

#ifdef __GNUC__
#define CVN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CVN_PRINTF(a, b)
#endif

/* ---- errors: sets the calling thread's message; returns s for `return cvn_set_error(...)`. */
cvn_status cvn_set_error(cvn_status s, const char *fmt, ...) CVN_PRINTF(2, 3);

/* ---- heap: every allocation of the library goes through the user's allocator hook. */
void *cvn_malloc(size_t size);
void *cvn_calloc(size_t n, size_t size);
void cvn_free(void *p);
char *cvn_strdup(const char *s);
/* Makes room for need elements of elem bytes in the array *arr of capacity *cap (doubling, at
 * least 8; the contents are copied into a new block, as the allocator hook has no realloc).
 * False, with *arr and *cap untouched and the error set, when memory runs out. */
bool cvn_grow_array(void **arr, int *cap, int need, size_t elem);

/* ---- growing strings: printf/append set failed on allocation failure; take returns the text
 * (caller frees with cvn_free) or NULL with an error set, and leaves the buffer empty. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} cvn_strbuf;
void cvn_strbuf_printf(cvn_strbuf *b, const char *fmt, ...) CVN_PRINTF(2, 3);
void cvn_strbuf_append(cvn_strbuf *b, const char *s, size_t n);
char *cvn_strbuf_take(cvn_strbuf *b);
void cvn_strbuf_free(cvn_strbuf *b);

/* ---- atomic files: begin opens "<path>.tmp" (tmp receives its name), commit flushes, fsyncs,
 * closes and renames it over path, removing it on any failure. */
#include <stdio.h>
FILE *cvn_file_begin(const char *path, char *tmp, size_t tmp_size);
cvn_status cvn_file_commit(FILE *f, const char *tmp, const char *path);

/* ---- arena: a bump allocator over chunks from one backend. Reset is O(1); when a step needed
 * more than one chunk, reset merges them into one chunk of the total size, so the next step of
 * the same shape allocates nothing. Blocks given back before the reset (a backward's dead
 * gradients and scratch) are spares that later allocations of about their size take first, so a
 * step's peak is what is live at once rather than all it ever allocated. */
typedef struct cvn_chunk cvn_chunk;
typedef struct {
    void *p;
    size_t size; /* the block's rounded size */
} cvn_spare;
typedef struct {
    const cvn_backend *be;
    cvn_chunk *chunks; /* newest first */
    size_t used;       /* bytes handed out since reset, over all chunks (spares included) */
    size_t capacity;   /* bytes in all chunks */
    size_t peak;       /* largest `used` seen */
    cvn_spare *spares; /* host array; emptied by reset */
    int n_spares, cap_spares;
} cvn_arena;

void cvn_arena_init(cvn_arena *a, const cvn_backend *be);
void cvn_arena_release(cvn_arena *a);
void *cvn_arena_alloc(cvn_arena *a, size_t bytes); /* 64-byte aligned; NULL + error on failure */
/* Gives back a block of `bytes` from cvn_arena_alloc for reuse before the reset (NULL ignored).
 * The caller must not touch it again; on a device, work already queued on the backend's stream
 * that uses it runs before any reuse does. */
void cvn_arena_give_back(cvn_arena *a, void *p, size_t bytes);
void cvn_arena_reset(cvn_arena *a);

/* ---- tensors */
enum {
    CVN_TF_HEAP = 1u << 0,       /* struct and data on the heap (user-owned) */
    CVN_TF_VIEW = 1u << 1,       /* data belongs to another tensor */
    CVN_TF_GRAD_HEAP = 1u << 2,  /* grad buffer on the heap (kept across tape resets) */
    CVN_TF_RETAIN_GRAD = 1u << 3 /* an op result whose gradient backward keeps */
};

/* Fills in shape and contiguous strides. */
void cvn_tensor_set_shape(cvn_tensor *t, int ndim, const int64_t *shape);
bool cvn_same_shape(const cvn_tensor *a, const cvn_tensor *b);

/* ---- tape */
typedef struct cvn_node cvn_node;
typedef void (*cvn_backward_fn)(cvn_tape *t, cvn_node *n);

/* An op's attributes as an exporter (ONNX) reads them; the node's describe function fills the
 * fields its op has and leaves the rest zero. */
typedef struct {
    cvn_window win;                         /* convolution (one group's channels), pooling */
    int groups;                             /* convolution */
    bool activation;                        /* an activation node; kind says which */
    int kind;                               /* activation: a cvn_activation */
    float alpha, beta;                      /* leaky slope; affine_scalar: scale, shift */
    float eps;                              /* batch norm */
    bool training;                          /* batch norm ran on batch statistics */
    cvn_tensor *running_mean, *running_var; /* batch norm */
    int dim;                                /* softmax, log_softmax, concat */
    bool reduced[CVN_MAX_DIMS], keepdim;    /* sum, mean */
} cvn_node_attrs;
typedef void (*cvn_describe_fn)(const cvn_node *n, cvn_node_attrs *a);

#define CVN_NODE_MAX_IN 4
struct cvn_node {
    const char *op;           /* "conv2d", ...: also the key for ONNX export */
    cvn_backward_fn backward; /* accumulates into the inputs' grads */
    cvn_tensor *out;
    cvn_tensor *in[CVN_NODE_MAX_IN];
    int n_in;
    void *saved;              /* op-specific state in the tape's arena */
    cvn_describe_fn describe; /* NULL for ops without attributes */
    cvn_node *prev;           /* recording order, newest first */
};

struct cvn_tape {
    cvn_device device;
    const cvn_backend *be;
    cvn_arena meta; /* tensor structs, nodes, saved state: host memory */
    cvn_arena data; /* tensor data: device memory */
    cvn_node *last;
    int n_nodes;
    bool grad_enabled;
    bool backward_done;
    bool tracing; /* record every op, needed for grad or not (the ONNX exporter's trace) */
    /* optional: told before (out NULL) and after every module forward; the summary listens */
    void (*on_module)(void *ctx, cvn_module *m, cvn_tensor *out);
    void *on_module_ctx;
};

/* An output tensor in the tape, contiguous, uninitialized. */
cvn_tensor *cvn_tape_new_tensor(cvn_tape *t, cvn_dtype dtype, int ndim, const int64_t *shape);
/* Host scratch memory in the tape's meta arena (for op-saved state) or device data arena. */
void *cvn_tape_meta_alloc(cvn_tape *t, size_t bytes);
void *cvn_tape_data_alloc(cvn_tape *t, size_t bytes);
/* Gives scratch from cvn_tape_data_alloc (of the same size) back for reuse in this step. */
void cvn_tape_data_free(cvn_tape *t, void *p, size_t bytes);

/* True when any input requires grad and recording is on. */
bool cvn_tape_should_record(const cvn_tape *t, int n, cvn_tensor *const *in);
/* Records a node producing out from the inputs (out->requires_grad becomes true). Returns the node
 * (for saved state), or NULL on allocation failure (error set). */
cvn_node *cvn_tape_record(cvn_tape *t, const char *op, cvn_backward_fn backward, cvn_tensor *out,
                          int n, cvn_tensor *const *in);
/* The gradient buffer of x during backward, zero-filled on first use; NULL when x needs none. */
float *cvn_grad_buffer(cvn_tape *t, cvn_tensor *x);
/* The same for a backward function that writes every element: on first use of a tape tensor's
 * gradient the buffer is left unfilled and *add is false (overwrite it), otherwise *add is true
 * (add to it). Saves a zero-fill and a read of the zeros per activation. */
float *cvn_grad_target(cvn_tape *t, cvn_tensor *x, bool *add);

/* Common argument checks for ops; each sets an error naming the op and returns false. */
bool cvn_check_f32(const char *op, const cvn_tape *t, const cvn_tensor *x, const char *what);

#endif
