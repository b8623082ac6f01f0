/* Private: the module base that every layer embeds as its first member. */
#ifndef CVN_MODULE_H
#define CVN_MODULE_H

#include "core/core.h"

#define CVN_MODULE_MAX_OWN 4

typedef struct cvn_module_vtable {
    const char *kind;
    cvn_tensor *(*forward)(cvn_module *m, cvn_tape *t, cvn_tensor *x);
    /* Optional: runs m and the siblings after it in a Sequential (next[0 .. n_next)) that it can
     * take as one fused op, and sets *used to how many siblings it took; *used = 0 declines
     * (nothing done). Called only when no module hook watches the tape. */
    cvn_tensor *(*fuse)(cvn_module *m, cvn_tape *t, cvn_tensor *x, cvn_module *const *next,
                        int n_next, int *used);
} cvn_module_vtable;

typedef struct {
    const char *name; /* full dotted name, owned by the root's listing */
    cvn_tensor *tensor;
} cvn_named_tensor;

struct cvn_module {
    const cvn_module_vtable *vt;
    bool training;
    /* this module's own tensors, named locally ("weight", "running_mean") */
    int n_params, n_buffers;
    cvn_tensor *params[CVN_MODULE_MAX_OWN], *buffers[CVN_MODULE_MAX_OWN];
    const char *param_names[CVN_MODULE_MAX_OWN], *buffer_names[CVN_MODULE_MAX_OWN];
    /* children with their names ("0", "1", ... unless named) */
    int n_children, cap_children;
    cvn_module **children;
    char **child_names;
    /* flattened listings with dotted names, built on first query and dropped on change */
    cvn_named_tensor *flat_params, *flat_buffers;
    int n_flat_params, n_flat_buffers;
    char *flat_names; /* one block holding every dotted name */
};

/* Allocates a zeroed module of size bytes (a layer struct that starts with cvn_module). */
cvn_module *cvn_module_alloc(size_t size, const cvn_module_vtable *vt);
/* Adds an owned tensor (parameter when is_param, else buffer); the module frees it. */
cvn_status cvn_module_own(cvn_module *m, const char *name, cvn_tensor *x, bool is_param);

/* Appends child under name (no dots; NULL names it by position). Takes ownership of child, also on
 * failure. Composite layers (residual blocks, squeeze-excite) register their parts with it. */
cvn_status cvn_module_add_child(cvn_module *m, const char *name, cvn_module *child);
/* Frees child i and puts child in its place under the same name. */
void cvn_module_replace_child(cvn_module *m, int i, cvn_module *child);
/* The name under which parent holds child, or NULL. */
const char *cvn_module_child_name(const cvn_module *parent, const cvn_module *child);
/* The dotted name of child inside a parent named parent_name ("" for the root) into out[size]:
 * "layer1.0" from "layer1"; a name too long for out ends in "...". */
void cvn_module_scope_name(char *out, size_t size, const char *parent_name,
                           const cvn_module *parent, const cvn_module *child);

#endif
