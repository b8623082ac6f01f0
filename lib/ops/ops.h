/* Private helpers shared by the op files. */
#ifndef CVN_OPS_H
#define CVN_OPS_H

#include <string.h>

#include "core/core.h"

/* An input list for cvn_tape_record / cvn_tape_should_record. */
#define CVN_IN(...) ((cvn_tensor *const[]){__VA_ARGS__})

/* Records a node when needed: returns the node, NULL when none is needed or on failure; *fail tells
 * the two apart. */
static inline cvn_node *cvn_op_record(cvn_tape *t, const char *op, cvn_backward_fn bw,
                                      cvn_tensor *out, int n, cvn_tensor *const *in, bool *fail) {
    *fail = false;
    if (!cvn_tape_should_record(t, n, in)) return NULL;
    cvn_node *node = cvn_tape_record(t, op, bw, out, n, in);
    if (!node) *fail = true;
    return node;
}

/* Copies the op's saved state (size bytes at s) into the tape for node and sets its describe
 * function; a NULL node (nothing recorded) is fine. False on allocation failure (error set). */
static inline bool cvn_op_save(cvn_tape *t, cvn_node *node, const void *s, size_t size,
                               cvn_describe_fn describe) {
    if (!node) return true;
    void *saved = cvn_tape_meta_alloc(t, size);
    if (!saved) return false;
    memcpy(saved, s, size);
    node->saved = saved;
    node->describe = describe;
    return true;
}

static inline bool cvn_op_tape_ok(const char *op, const cvn_tape *t) {
    if (t) return true;
    cvn_set_error(CVN_ERR_ARG, "%s: tape is NULL", op);
    return false;
}

static inline float *cvn_f(const cvn_tensor *x) {
    return (float *)x->data;
}

#endif
