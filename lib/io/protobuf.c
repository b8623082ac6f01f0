/* The protobuf wire format: varints, fixed 32-bit floats, length-delimited payloads. */
#include <string.h>

#include "io/protobuf.h"

static void put_varint(cvn_strbuf *b, uint64_t v) {
    char buf[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        buf[n++] = (char)(byte | (v ? 0x80 : 0));
    } while (v);
    cvn_strbuf_append(b, buf, n);
}

static void put_key(cvn_strbuf *b, int field, int wire) {
    put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}

static void put_f32(cvn_strbuf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    char le[4] = {(char)(u & 0xff), (char)(u >> 8 & 0xff), (char)(u >> 16 & 0xff), (char)(u >> 24)};
    cvn_strbuf_append(b, le, 4);
}

void cvn_pb_varint(cvn_strbuf *b, int field, uint64_t v) {
    put_key(b, field, CVN_PB_VARINT);
    put_varint(b, v);
}

void cvn_pb_float(cvn_strbuf *b, int field, float v) {
    put_key(b, field, CVN_PB_FIXED32);
    put_f32(b, v);
}

void cvn_pb_bytes(cvn_strbuf *b, int field, const void *data, size_t n) {
    put_key(b, field, CVN_PB_LEN);
    put_varint(b, n);
    cvn_strbuf_append(b, data, n);
}

void cvn_pb_string(cvn_strbuf *b, int field, const char *s) {
    cvn_pb_bytes(b, field, s, strlen(s));
}

void cvn_pb_message(cvn_strbuf *b, int field, cvn_strbuf *sub) {
    if (sub->failed) b->failed = true;
    cvn_pb_bytes(b, field, sub->data ? sub->data : "", sub->len);
    cvn_strbuf_free(sub);
}

void cvn_pb_packed_varints(cvn_strbuf *b, int field, int n, const int64_t *v) {
    cvn_strbuf run = {0};
    for (int i = 0; i < n; i++) put_varint(&run, (uint64_t)v[i]); /* negatives: 10 bytes */
    cvn_pb_message(b, field, &run);
}

void cvn_pb_packed_floats(cvn_strbuf *b, int field, int n, const float *v) {
    cvn_strbuf run = {0};
    for (int i = 0; i < n; i++) put_f32(&run, v[i]);
    cvn_pb_message(b, field, &run);
}

/* ------------------------------------------------------------------ reader */

cvn_pb_reader cvn_pb_reader_init(const void *data, size_t len) {
    const uint8_t *p = data;
    return (cvn_pb_reader){p, p ? p + len : p};
}

/* A varint at *p (at most 10 bytes, not past end); false when truncated or too long. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end) return false;
        uint8_t byte = *(*p)++;
        if (i == 9 && byte > 1) return false; /* more than 64 bits */
        x |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static int malformed(const cvn_pb_reader *r, const char *what) {
    cvn_set_error(CVN_ERR_FORMAT, "protobuf: %s", what);
    return -1;
}

int cvn_pb_next(cvn_pb_reader *r, cvn_pb_field *f) {
    if (r->p >= r->end) return 0;
    uint64_t key;
    if (!get_varint(&r->p, r->end, &key)) return malformed(r, "truncated or overlong field key");
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return malformed(r, "field number out of range");
    *f = (cvn_pb_field){.field = (int)(key >> 3), .wire = (int)(key & 7)};
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire) {
    case CVN_PB_VARINT:
        if (!get_varint(&r->p, r->end, &f->v)) return malformed(r, "truncated varint");
        return 1;
    case CVN_PB_FIXED64:
    case CVN_PB_FIXED32: {
        size_t n = f->wire == CVN_PB_FIXED64 ? 8 : 4;
        if (left < n) return malformed(r, "truncated fixed-width value");
        for (size_t i = 0; i < n; i++) f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 1;
    }
    case CVN_PB_LEN: {
        uint64_t n;
        if (!get_varint(&r->p, r->end, &n)) return malformed(r, "truncated length");
        if (n > (uint64_t)(r->end - r->p)) return malformed(r, "length past the end of the data");
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return malformed(r, "unknown wire type (groups are not supported)");
    }
}

int cvn_pb_varints(const cvn_pb_field *f, int64_t *out, int max) {
    if (f->wire == CVN_PB_VARINT) {
        if (max < 1) return malformed(NULL, "more repeated values than expected");
        out[0] = (int64_t)f->v;
        return 1;
    }
    if (f->wire != CVN_PB_LEN)
        return malformed(NULL, "repeated integer field of a wrong wire type");
    const uint8_t *p = f->data, *end = f->data + f->len;
    int n = 0;
    while (p < end) {
        uint64_t v;
        if (!get_varint(&p, end, &v)) return malformed(NULL, "truncated packed varint");
        if (n == max) return malformed(NULL, "more repeated values than expected");
        out[n++] = (int64_t)v;
    }
    return n;
}
