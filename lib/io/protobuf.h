/* Private: the protobuf wire format (encoding 2), enough for ONNX. Messages are built inside out:
 * a nested message is encoded into its own buffer, then appended to its parent as a
 * length-delimited field. The reader walks one message's fields and checks every length. */
#ifndef CVN_PROTOBUF_H
#define CVN_PROTOBUF_H

#include "core/core.h"

enum { CVN_PB_VARINT = 0, CVN_PB_FIXED64 = 1, CVN_PB_LEN = 2, CVN_PB_FIXED32 = 5 };

/* ---- writer: a cvn_strbuf of bytes; a failed allocation sets b->failed and later calls do
 * nothing, so a message is built first and checked once. */
void cvn_pb_varint(cvn_strbuf *b, int field, uint64_t v); /* int32/int64/enum/bool fields */
void cvn_pb_float(cvn_strbuf *b, int field, float v);
void cvn_pb_bytes(cvn_strbuf *b, int field, const void *data, size_t n);
void cvn_pb_string(cvn_strbuf *b, int field, const char *s);
/* Appends sub as a nested message and empties it. */
void cvn_pb_message(cvn_strbuf *b, int field, cvn_strbuf *sub);
/* Packed repeated fields: one length-delimited run of varints / little-endian floats. */
void cvn_pb_packed_varints(cvn_strbuf *b, int field, int n, const int64_t *v);
void cvn_pb_packed_floats(cvn_strbuf *b, int field, int n, const float *v);

/* ---- reader */
typedef struct {
    const uint8_t *p, *end;
} cvn_pb_reader;

typedef struct {
    int field, wire;
    uint64_t v;          /* VARINT, FIXED64, FIXED32 */
    const uint8_t *data; /* LEN: the payload, inside the reader's buffer */
    size_t len;
} cvn_pb_field;

cvn_pb_reader cvn_pb_reader_init(const void *data, size_t len);
/* Reads the next field: 1 with *f filled, 0 at the end, -1 on malformed input (error set:
 * truncated varint or payload, a length past the end, field number 0, an unknown wire type). */
int cvn_pb_next(cvn_pb_reader *r, cvn_pb_field *f);
/* The varints of a repeated field, packed (LEN) or one (VARINT): up to max into out; returns how
 * many there were, or -1 (error set) when malformed or more than max. */
int cvn_pb_varints(const cvn_pb_field *f, int64_t *out, int max);

#endif
