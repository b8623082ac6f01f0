/* IDX files (MNIST, FashionMNIST), plain or gzip-compressed (read through zlib's gzread, which
 * passes plain files through unchanged). Format: 2 zero bytes, a type byte (0x08 = u8), a dim
 * count, big-endian u32 sizes, then the data. */
#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "core/core.h"

#define IDX_MAX_BYTES ((int64_t)1 << 32) /* 4 GiB: far above any real IDX file */

static cvn_status read_exact(gzFile f, void *buf, size_t n, const char *path, const char *what) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0) {
            int err;
            const char *msg = gzerror(f, &err);
            return cvn_set_error(err == Z_OK || err == Z_BUF_ERROR ? CVN_ERR_FORMAT : CVN_ERR_IO,
                                 "%s: truncated while reading the %s (%zu of %zu bytes)%s%s", path,
                                 what, got, n, err ? ": " : "", err ? msg : "");
        }
        got += (size_t)r;
    }
    return CVN_OK;
}

cvn_tensor *cvn_idx_load(const char *path) {
    if (!path) {
        cvn_set_error(CVN_ERR_ARG, "idx_load: path is NULL");
        return NULL;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        cvn_set_error(CVN_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    cvn_tensor *t = NULL;
    unsigned char magic[4], dims_be[4 * CVN_MAX_DIMS];
    if (read_exact(f, magic, 4, path, "header")) goto done;
    if (magic[0] || magic[1] || magic[2] != 0x08) {
        cvn_set_error(CVN_ERR_FORMAT,
                      "%s: not an IDX file of unsigned bytes (magic %02x %02x %02x %02x)", path,
                      magic[0], magic[1], magic[2], magic[3]);
        goto done;
    }
    int ndim = magic[3];
    if (ndim < 1 || ndim > CVN_MAX_DIMS) {
        cvn_set_error(CVN_ERR_FORMAT, "%s: %d dims; IDX files here have 1 to %d", path, ndim,
                      CVN_MAX_DIMS);
        goto done;
    }
    if (read_exact(f, dims_be, (size_t)ndim * 4, path, "dimensions")) goto done;
    int64_t shape[CVN_MAX_DIMS], total = 1;
    for (int d = 0; d < ndim; d++) {
        const unsigned char *p = dims_be + 4 * d;
        shape[d] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        total *= shape[d] ? shape[d] : 1;
        if (total > IDX_MAX_BYTES) {
            cvn_set_error(CVN_ERR_FORMAT, "%s: dimensions claim more than 4 GiB of data", path);
            goto done;
        }
    }
    t = cvn_tensor_new(CVN_U8, ndim, shape);
    if (!t) goto done;
    if (read_exact(f, t->data, (size_t)cvn_numel(t), path, "data")) {
        cvn_tensor_free(t);
        t = NULL;
        goto done;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) > 0) {
        cvn_set_error(CVN_ERR_FORMAT, "%s: data continues past the size its header gives", path);
        cvn_tensor_free(t);
        t = NULL;
    }
done:
    gzclose(f);
    return t;
}
