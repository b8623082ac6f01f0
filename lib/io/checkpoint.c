/* Checkpoints: a model's state_dict and its optimizer's state in one safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define OPTIM_PREFIX "optim."

cvn_status cvn_checkpoint_save(const char *path, cvn_module *model, cvn_optim *opt, int n_meta,
                               const char *const *meta) {
    if (!path || !model || n_meta < 0 || (n_meta && !meta))
        return cvn_set_error(CVN_ERR_ARG, "checkpoint_save: path, model or metadata is NULL");
    int np = cvn_module_num_params(model), nb = cvn_module_num_buffers(model);
    int ns = opt ? cvn_optim_num_state(opt) : 0, n = np + nb + ns;
    const char **names = cvn_calloc((size_t)n + 1, sizeof *names);
    const cvn_tensor **tensors = cvn_calloc((size_t)n + 1, sizeof *tensors);
    char **state_names = cvn_calloc((size_t)ns + 1, sizeof *state_names);
    const char **kv = cvn_calloc((size_t)(n_meta + 2) * 2, sizeof *kv);
    cvn_status st = names && tensors && state_names && kv ? CVN_OK : CVN_ERR_NOMEM;
    for (int i = 0; !st && i < np; i++) tensors[i] = cvn_module_param_at(model, i, &names[i]);
    for (int i = 0; !st && i < nb; i++)
        tensors[np + i] = cvn_module_buffer_at(model, i, &names[np + i]);
    for (int i = 0; !st && i < ns; i++) {
        const char *local;
        tensors[np + nb + i] = cvn_optim_state_at(opt, i, &local);
        if (!tensors[np + nb + i]) st = cvn_last_status();
        size_t len = strlen(OPTIM_PREFIX) + strlen(local ? local : "") + 1;
        state_names[i] = st ? NULL : cvn_malloc(len);
        if (!st && !state_names[i]) st = CVN_ERR_NOMEM;
        if (!st) snprintf(state_names[i], len, "%s%s", OPTIM_PREFIX, local);
        names[np + nb + i] = state_names[i];
    }
    char steps[32];
    int m = n_meta;
    if (!st) {
        for (int i = 0; i < 2 * n_meta; i++) kv[i] = meta[i];
        if (opt) {
            snprintf(steps, sizeof steps, "%lld", (long long)cvn_optim_steps(opt));
            kv[2 * m] = "optim.kind", kv[2 * m + 1] = cvn_optimizer_name(cvn_optim_kind(opt));
            m++;
            kv[2 * m] = "optim.steps", kv[2 * m + 1] = steps;
            m++;
        }
        st = cvn_safetensors_write(path, n, names, tensors, m, kv);
    }
    for (int i = 0; state_names && i < ns; i++) cvn_free(state_names[i]);
    cvn_free(state_names);
    cvn_free(names);
    cvn_free(tensors);
    cvn_free(kv);
    return st;
}

static bool in_model(cvn_module *m, const char *name) {
    return cvn_module_find(m, name) != NULL;
}

static void shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

/* Restores the optimizer's state when the checkpoint has state of the same kind and sizes. */
static cvn_status load_optim(const cvn_safetensors *ck, cvn_optim *opt, cvn_strbuf *text,
                             bool *restored) {
    const char *kind = cvn_safetensors_meta(ck, "optim.kind");
    const char *steps = cvn_safetensors_meta(ck, "optim.steps");
    const char *want = cvn_optimizer_name(cvn_optim_kind(opt));
    if (!kind || !steps) {
        cvn_strbuf_printf(text, "optimizer: the checkpoint has no optimizer state\n");
        return CVN_OK;
    }
    if (strcmp(kind, want)) {
        cvn_strbuf_printf(text, "optimizer: state of %s in the checkpoint, not %s: not restored\n",
                          kind, want);
        return CVN_OK;
    }
    char *end;
    long long n_steps = strtoll(steps, &end, 10);
    if (*end || n_steps < 0)
        return cvn_set_error(CVN_ERR_FORMAT, "checkpoint: optim.steps \"%s\" is not a count",
                             steps);
    int ns = cvn_optim_num_state(opt);
    for (int pass = 0; pass < 2; pass++) { /* check every buffer, then copy */
        for (int i = 0; i < ns; i++) {
            const char *local;
            cvn_tensor *s = cvn_optim_state_at(opt, i, &local);
            if (!s) return cvn_last_status();
            char name[64], shape[96];
            snprintf(name, sizeof name, "%s%s", OPTIM_PREFIX, local);
            int ndim;
            int64_t dims[CVN_MAX_DIMS];
            if (!cvn_safetensors_shape(ck, name, &ndim, dims) || ndim != 1 ||
                dims[0] != cvn_numel(s)) {
                if (pass == 0) {
                    shape_text(shape, sizeof shape, ndim, dims);
                    cvn_strbuf_printf(
                        text,
                        "optimizer: %s %s in the checkpoint, [%lld] here: not "
                        "restored\n",
                        name, cvn_safetensors_shape(ck, name, &ndim, dims) ? shape : "absent",
                        (long long)cvn_numel(s));
                    return CVN_OK;
                }
            }
            if (pass == 1) {
                cvn_tensor *h = cvn_safetensors_get(ck, name);
                cvn_status st = h ? cvn_tensor_copy(s, h) : cvn_last_status();
                cvn_tensor_free(h);
                if (st) return st;
            }
        }
    }
    cvn_optim_set_steps(opt, n_steps);
    *restored = true;
    return CVN_OK;
}

cvn_status cvn_checkpoint_load(const cvn_safetensors *ck, cvn_module *model, cvn_optim *opt,
                               cvn_load_report *report) {
    if (report) *report = (cvn_load_report){0};
    if (!ck || !model)
        return cvn_set_error(CVN_ERR_ARG, "checkpoint_load: checkpoint or model is NULL");
    cvn_load_report r = {0};
    cvn_strbuf text = {0};
    cvn_status st = CVN_OK;
    int np = cvn_module_num_params(model), nb = cvn_module_num_buffers(model);
    for (int i = 0; !st && i < np + nb; i++) {
        const char *name;
        cvn_tensor *dst = i < np ? cvn_module_param_at(model, i, &name)
                                 : cvn_module_buffer_at(model, i - np, &name);
        int ndim;
        int64_t shape[CVN_MAX_DIMS];
        if (!cvn_safetensors_shape(ck, name, &ndim, shape)) {
            r.missing++;
            cvn_strbuf_printf(&text, "missing: %s (not in the checkpoint; keeps its values)\n",
                              name);
            continue;
        }
        bool same = ndim == dst->ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == dst->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_text(a, sizeof a, ndim, shape);
            cvn_shape_str(dst, b, sizeof b);
            r.skipped++;
            cvn_strbuf_printf(&text, "skipped: %s is %s in the checkpoint, %s in the model\n", name,
                              a, b);
            continue;
        }
        cvn_tensor *h = cvn_safetensors_get(ck, name);
        st = h ? cvn_tensor_copy(dst, h) : cvn_last_status();
        cvn_tensor_free(h);
        if (!st) r.loaded++;
    }
    for (int i = 0; !st && i < cvn_safetensors_count(ck); i++) {
        const char *name = cvn_safetensors_name(ck, i);
        if (strncmp(name, OPTIM_PREFIX, strlen(OPTIM_PREFIX)) && !in_model(model, name)) {
            r.unexpected++;
            cvn_strbuf_printf(&text, "unexpected: %s (in the checkpoint, not in the model)\n",
                              name);
        }
    }
    if (!st && r.loaded == 0 && np + nb > 0)
        st = cvn_set_error(CVN_ERR_ARG,
                           "checkpoint_load: no tensor of the checkpoint fits the model (%d "
                           "missing, %d of another shape): another architecture?",
                           r.missing, r.skipped);
    if (!st && opt) st = load_optim(ck, opt, &text, &r.optim_restored);
    if (st) {
        cvn_strbuf_free(&text);
        return st;
    }
    r.text = cvn_strbuf_take(&text);
    if (report)
        *report = r;
    else
        cvn_free(r.text);
    return CVN_OK;
}
