/* The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON mapping each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets into the data that follows) plus an optional "__metadata__" map of
 * strings, then the tensors' bytes. The reader checks everything (header length, JSON syntax,
 * dtypes, shapes against byte counts, offsets inside the file, no overlaps or holes) before any
 * tensor is handed out. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define MAX_HEADER (100u << 20) /* the reference implementation's limit */

typedef struct {
    char *name;
    char dtype[8];
    int elem_size;
    int ndim;
    int64_t shape[CVN_MAX_DIMS];
    uint64_t begin, end;
} entry;

struct cvn_safetensors {
    unsigned char *file; /* the whole file */
    size_t size;
    const unsigned char *data; /* after the header */
    size_t data_size;
    entry *entries;
    int n, cap;
    char **meta;          /* key, value, key, value, ... */
    int n_meta, cap_meta; /* pairs; strings allocated */
};

/* ------------------------------------------------------------------ a JSON subset parser */

typedef struct {
    const char *start, *p, *end;
    const char *path; /* for messages */
    bool failed;
} parser;

static bool fail(parser *ps, const char *what) {
    if (!ps->failed) cvn_set_error(CVN_ERR_FORMAT, "%s: safetensors header: %s", ps->path, what);
    ps->failed = true;
    return false;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool expect(parser *ps, char c) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != c) {
        char msg[48];
        snprintf(msg, sizeof msg, "expected '%c' at byte %td", c, ps->p - ps->start + 8);
        return fail(ps, msg);
    }
    ps->p++;
    return true;
}

static bool peek(parser *ps, char c) {
    skip_ws(ps);
    return ps->p < ps->end && *ps->p == c;
}

static int hex(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static unsigned read_u16(parser *ps) {
    if (ps->end - ps->p < 4) return fail(ps, "truncated \\u escape"), 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex(ps->p[i]);
        if (h < 0) return fail(ps, "bad \\u escape"), 0;
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    return v;
}

/* A JSON string into a new NUL-terminated UTF-8 string (caller frees), or NULL. */
static char *parse_string(parser *ps) {
    if (!expect(ps, '"')) return NULL;
    cvn_strbuf b = {0};
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) {
            fail(ps, "control character in a string");
            break;
        }
        if (c != '\\') {
            cvn_strbuf_append(&b, (const char *)&c, 1);
            continue;
        }
        if (ps->p >= ps->end) break;
        char e = *ps->p++, out = 0;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            out = e;
            break;
        case 'b':
            out = '\b';
            break;
        case 'f':
            out = '\f';
            break;
        case 'n':
            out = '\n';
            break;
        case 'r':
            out = '\r';
            break;
        case 't':
            out = '\t';
            break;
        case 'u': {
            unsigned cp = read_u16(ps);
            if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail(ps, "unpaired surrogate");
                    break;
                }
                ps->p += 2;
                unsigned lo = read_u16(ps);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, "unpaired surrogate");
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                fail(ps, "unpaired surrogate");
                break;
            }
            if (cp == 0) {
                fail(ps, "NUL in a string");
                break;
            }
            char u[4];
            int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (n == 1)
                u[0] = (char)cp;
            else {
                for (int i = n - 1; i > 0; i--, cp >>= 6) u[i] = (char)(0x80 | (cp & 0x3F));
                u[0] = (char)((n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0) | cp);
            }
            cvn_strbuf_append(&b, u, (size_t)n);
            continue;
        }
        default:
            fail(ps, "bad escape in a string");
        }
        if (ps->failed) break;
        cvn_strbuf_append(&b, &out, 1);
    }
    if (!ps->failed && ps->p >= ps->end) fail(ps, "unterminated string");
    if (ps->failed) {
        cvn_strbuf_free(&b);
        return NULL;
    }
    ps->p++; /* the closing quote */
    char *s = cvn_strbuf_take(&b);
    if (!s) ps->failed = true;
    return s;
}

static bool parse_uint(parser *ps, uint64_t *v) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "expected a number");
    uint64_t x = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        unsigned d = (unsigned)(*ps->p++ - '0');
        if (x > (UINT64_MAX - d) / 10) return fail(ps, "number too large");
        x = x * 10 + d;
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
        return fail(ps, "expected an integer");
    *v = x;
    return true;
}

/* [n, n, ...] of at most max unsigned integers. */
static int parse_uint_array(parser *ps, uint64_t *out, int max) {
    if (!expect(ps, '[')) return -1;
    int n = 0;
    if (peek(ps, ']')) return ps->p++, 0;
    for (;;) {
        if (n == max) return fail(ps, "array too long"), -1;
        if (!parse_uint(ps, &out[n++])) return -1;
        if (peek(ps, ',')) {
            ps->p++;
            continue;
        }
        if (!expect(ps, ']')) return -1;
        return n;
    }
}

static const struct {
    const char *name;
    int size;
} dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},    {"I64", 8},
              {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},
              {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

static bool parse_entry(parser *ps, entry *e) {
    if (!expect(ps, '{')) return false;
    bool have_dtype = false, have_shape = false, have_offsets = false;
    while (!ps->failed) {
        char *key = parse_string(ps);
        if (!key || !expect(ps, ':')) {
            cvn_free(key);
            return false;
        }
        if (!strcmp(key, "dtype")) {
            char *d = parse_string(ps);
            for (size_t i = 0; d && i < sizeof dtypes / sizeof dtypes[0]; i++)
                if (!strcmp(d, dtypes[i].name)) {
                    strcpy(e->dtype, dtypes[i].name);
                    e->elem_size = dtypes[i].size;
                }
            if (d && !e->elem_size) {
                char msg[80];
                snprintf(msg, sizeof msg, "tensor \"%.40s\": unknown dtype", e->name);
                fail(ps, msg);
            }
            cvn_free(d);
            have_dtype = true;
        } else if (!strcmp(key, "shape")) {
            uint64_t dims[CVN_MAX_DIMS];
            int n = parse_uint_array(ps, dims, CVN_MAX_DIMS);
            e->ndim = n;
            for (int i = 0; i < n; i++) {
                if (dims[i] > ((uint64_t)1 << 40)) fail(ps, "dimension too large");
                e->shape[i] = (int64_t)dims[i];
            }
            have_shape = n >= 0;
        } else if (!strcmp(key, "data_offsets")) {
            uint64_t off[2];
            if (parse_uint_array(ps, off, 2) == 2) {
                e->begin = off[0], e->end = off[1];
                have_offsets = true;
            } else
                fail(ps, "data_offsets must be [begin, end]");
        } else {
            fail(ps, "unknown field in a tensor entry");
        }
        cvn_free(key);
        if (peek(ps, ',')) {
            ps->p++;
            continue;
        }
        if (!expect(ps, '}')) return false;
        break;
    }
    if (!ps->failed && !(have_dtype && have_shape && have_offsets)) {
        char msg[96];
        snprintf(msg, sizeof msg, "tensor \"%.40s\" lacks dtype, shape or data_offsets", e->name);
        return fail(ps, msg);
    }
    return !ps->failed;
}

static bool parse_metadata(parser *ps, cvn_safetensors *st) {
    if (!expect(ps, '{')) return false;
    if (peek(ps, '}')) return ps->p++, true;
    while (!ps->failed) {
        char *k = parse_string(ps), *v = NULL;
        if (k && expect(ps, ':')) {
            if (!peek(ps, '"'))
                fail(ps, "__metadata__ values must be strings");
            else
                v = parse_string(ps);
        }
        if (!k || !v ||
            !cvn_grow_array((void **)&st->meta, &st->cap_meta, 2 * st->n_meta + 2,
                            sizeof *st->meta)) {
            cvn_free(k), cvn_free(v);
            return fail(ps, "bad __metadata__ (a map of strings to strings)");
        }
        st->meta[2 * st->n_meta] = k, st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
        if (peek(ps, ',')) {
            ps->p++;
            continue;
        }
        return expect(ps, '}');
    }
    return false;
}

static bool add_entry(cvn_safetensors *st, entry *e) {
    if (!cvn_grow_array((void **)&st->entries, &st->cap, st->n + 1, sizeof *st->entries))
        return false;
    st->entries[st->n++] = *e;
    return true;
}

static int by_begin(const void *a, const void *b) {
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Offsets must tile the data exactly: in order, no overlap, no hole, nothing left over. */
static bool check_layout(cvn_safetensors *st, const char *path) {
    entry **order = cvn_malloc((size_t)(st->n ? st->n : 1) * sizeof *order);
    if (!order) return false;
    for (int i = 0; i < st->n; i++) order[i] = &st->entries[i];
    qsort(order, (size_t)st->n, sizeof *order, by_begin);
    uint64_t at = 0;
    bool ok = true;
    for (int i = 0; i < st->n && ok; i++) {
        entry *e = order[i];
        uint64_t bytes = (uint64_t)e->elem_size;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] && bytes > UINT64_MAX / (uint64_t)e->shape[d])
                bytes = UINT64_MAX;
            else
                bytes *= (uint64_t)e->shape[d];
        }
        if (e->end < e->begin || e->end - e->begin != bytes)
            ok = !cvn_set_error(CVN_ERR_FORMAT,
                                "%s: tensor \"%s\": data_offsets [%llu, %llu] do not hold its "
                                "shape of %s",
                                path, e->name, (unsigned long long)e->begin,
                                (unsigned long long)e->end, e->dtype);
        else if (e->begin != at)
            ok =
                !cvn_set_error(CVN_ERR_FORMAT,
                               "%s: tensor \"%s\" starts at byte %llu of the data, expected %llu "
                               "(overlap or hole)",
                               path, e->name, (unsigned long long)e->begin, (unsigned long long)at);
        else if (e->end > st->data_size)
            ok = !cvn_set_error(CVN_ERR_FORMAT,
                                "%s: tensor \"%s\" ends at byte %llu but the file has %zu bytes of "
                                "data (truncated?)",
                                path, e->name, (unsigned long long)e->end, st->data_size);
        at = e->end;
    }
    if (ok && at != st->data_size)
        ok = !cvn_set_error(CVN_ERR_FORMAT, "%s: %zu bytes of data but the tensors use %llu", path,
                            st->data_size, (unsigned long long)at);
    cvn_free(order);
    return ok;
}

void cvn_safetensors_close(cvn_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) cvn_free(st->entries[i].name);
    for (int i = 0; i < 2 * st->n_meta; i++) cvn_free(st->meta[i]);
    cvn_free(st->entries);
    cvn_free(st->meta);
    cvn_free(st->file);
    cvn_free(st);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cvn_set_error(CVN_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = cvn_malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            cvn_free(buf);
            buf = NULL;
            cvn_set_error(CVN_ERR_IO, "%s: read failed", path);
        }
    } else {
        cvn_set_error(CVN_ERR_IO, "%s: cannot read its size", path);
    }
    fclose(f);
    *size = (size_t)(len < 0 ? 0 : len);
    return buf;
}

cvn_safetensors *cvn_safetensors_open(const char *path) {
    if (!path) {
        cvn_set_error(CVN_ERR_ARG, "safetensors_open: path is NULL");
        return NULL;
    }
    cvn_safetensors *st = cvn_calloc(1, sizeof *st);
    if (!st) return NULL;
    st->file = read_file(path, &st->size);
    if (!st->file) {
        cvn_safetensors_close(st);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && st->size >= 8; i--) hlen = hlen << 8 | st->file[i];
    if (st->size < 8 || hlen > MAX_HEADER || hlen > st->size - 8 || hlen < 2) {
        cvn_set_error(CVN_ERR_FORMAT, "%s: not a safetensors file (%zu bytes, header length %llu)",
                      path, st->size, (unsigned long long)hlen);
        cvn_safetensors_close(st);
        return NULL;
    }
    st->data = st->file + 8 + hlen;
    st->data_size = st->size - 8 - (size_t)hlen;
    const char *json = (const char *)st->file + 8;
    parser ps = {json, json, json + hlen, path, false};
    bool seen_meta = false;
    if (expect(&ps, '{') && !peek(&ps, '}')) {
        while (!ps.failed) {
            char *name = parse_string(&ps);
            if (!name || !expect(&ps, ':')) {
                cvn_free(name);
                break;
            }
            if (!strcmp(name, "__metadata__")) {
                cvn_free(name);
                if (seen_meta) fail(&ps, "two __metadata__ entries");
                seen_meta = true;
                if (!parse_metadata(&ps, st)) break;
            } else {
                for (int i = 0; i < st->n; i++)
                    if (!strcmp(st->entries[i].name, name)) fail(&ps, "a tensor name repeats");
                entry e = {.name = name};
                if (ps.failed || !parse_entry(&ps, &e) || !add_entry(st, &e)) {
                    cvn_free(name);
                    if (!ps.failed) fail(&ps, "out of memory");
                    break;
                }
            }
            if (peek(&ps, ',')) {
                ps.p++;
                continue;
            }
            expect(&ps, '}');
            break;
        }
    } else if (!ps.failed) {
        ps.p++; /* {} */
    }
    skip_ws(&ps);
    if (!ps.failed && ps.p != ps.end) fail(&ps, "bytes after the JSON object");
    if (ps.failed || !check_layout(st, path)) {
        cvn_safetensors_close(st);
        return NULL;
    }
    return st;
}

int cvn_safetensors_count(const cvn_safetensors *st) {
    return st ? st->n : 0;
}

const char *cvn_safetensors_name(const cvn_safetensors *st, int i) {
    return st && i >= 0 && i < st->n ? st->entries[i].name : NULL;
}

const char *cvn_safetensors_meta(const cvn_safetensors *st, const char *key) {
    for (int i = 0; st && key && i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

static const entry *find(const cvn_safetensors *st, const char *name) {
    for (int i = 0; st && name && i < st->n; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return NULL;
}

bool cvn_safetensors_shape(const cvn_safetensors *st, const char *name, int *ndim, int64_t *shape) {
    const entry *e = find(st, name);
    if (!e) return false;
    *ndim = e->ndim;
    memcpy(shape, e->shape, (size_t)e->ndim * sizeof *shape);
    return true;
}

cvn_tensor *cvn_safetensors_get(const cvn_safetensors *st, const char *name) {
    const entry *e = find(st, name);
    if (!e) {
        cvn_set_error(CVN_ERR_ARG, "safetensors: no tensor named \"%s\"", name ? name : "(null)");
        return NULL;
    }
    if (strcmp(e->dtype, "F32")) {
        cvn_set_error(CVN_ERR_FORMAT, "safetensors: tensor \"%s\" is %s; only F32 is read", name,
                      e->dtype);
        return NULL;
    }
    int64_t one = 1;
    cvn_tensor *t = e->ndim ? cvn_tensor_new(CVN_F32, e->ndim, e->shape)
                            : cvn_tensor_new(CVN_F32, 1, &one); /* a scalar as [1] */
    if (!t) return NULL;
    /* little-endian on disk, as on every machine libcvnet builds for */
    memcpy(t->data, st->data + e->begin, (size_t)(e->end - e->begin));
    return t;
}

/* ------------------------------------------------------------------ writer */

static void json_string(cvn_strbuf *b, const char *s) {
    cvn_strbuf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            cvn_strbuf_append(b, esc, 2);
        } else if (c < 0x20) {
            cvn_strbuf_printf(b, "\\u%04x", c);
        } else {
            cvn_strbuf_append(b, (const char *)&c, 1);
        }
    }
    cvn_strbuf_append(b, "\"", 1);
}

cvn_status cvn_safetensors_write(const char *path, int n, const char *const *names,
                                 const cvn_tensor *const *tensors, int n_meta,
                                 const char *const *meta) {
    if (!path || n < 0 || (n && (!names || !tensors)) || n_meta < 0 || (n_meta && !meta))
        return cvn_set_error(CVN_ERR_ARG, "safetensors_write: bad arguments");
    cvn_strbuf h = {0};
    cvn_strbuf_append(&h, "{", 1);
    if (n_meta) {
        cvn_strbuf_printf(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) cvn_strbuf_append(&h, ",", 1);
            json_string(&h, meta[2 * i]);
            cvn_strbuf_append(&h, ":", 1);
            json_string(&h, meta[2 * i + 1]);
        }
        cvn_strbuf_append(&h, "}", 1);
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const cvn_tensor *t = tensors[i];
        if (!t || t->dtype != CVN_F32 || !names[i]) {
            cvn_strbuf_free(&h);
            return cvn_set_error(CVN_ERR_ARG, "safetensors_write: tensor %d (%s) is not f32", i,
                                 names[i] ? names[i] : "unnamed");
        }
        if (n_meta || i) cvn_strbuf_append(&h, ",", 1);
        json_string(&h, names[i]);
        cvn_strbuf_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            cvn_strbuf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        uint64_t bytes = (uint64_t)cvn_numel(t) * 4;
        cvn_strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                          (unsigned long long)(at + bytes));
        at += bytes;
    }
    cvn_strbuf_append(&h, "}", 1);
    while (!h.failed && h.len % 8) cvn_strbuf_append(&h, " ", 1); /* data starts 8-aligned */
    char *header = cvn_strbuf_take(&h);
    if (!header) return cvn_last_status();
    size_t hlen = strlen(header);
    char tmp[4096];
    FILE *f = cvn_file_begin(path, tmp, sizeof tmp);
    if (!f) {
        cvn_free(header);
        return cvn_last_status();
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, hlen, f);
    cvn_free(header);
    cvn_status st = CVN_OK;
    for (int i = 0; i < n && !st; i++) {
        const cvn_tensor *t = tensors[i];
        size_t bytes = (size_t)cvn_numel(t) * 4;
        if (t->device == CVN_CPU && cvn_is_contiguous(t)) {
            fwrite(t->data, 1, bytes, f);
            continue;
        }
        float *host = cvn_malloc(bytes ? bytes : 1);
        st = host ? cvn_tensor_read(t, host, bytes) : CVN_ERR_NOMEM;
        if (!st) fwrite(host, 1, bytes, f);
        cvn_free(host);
    }
    if (st) {
        fclose(f);
        remove(tmp);
        return st;
    }
    return cvn_file_commit(f, tmp, path);
}
