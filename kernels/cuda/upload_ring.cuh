/* Batches cross to the GPU on a copy stream of their own, so that batch k + 1's copy runs on the
 * copy engine while batch k's kernels run on the compute stream.
 *
 * The copy engine never writes the destination itself: that is a tape tensor, and the tape hands
 * out the same memory step after step, which the previous step's kernels, still queued, may be
 * reading. It fills a staging buffer instead; the compute stream waits for that copy, moves the
 * batch into place (a device-to-device copy, in order with every kernel around it) and marks the
 * buffer drained. A buffer is refilled only after it has been drained: the copy stream waits for
 * the drain of the buffer's previous batch, which the compute stream queued a step earlier, so
 * the wait does not hold the copy behind the step in flight.
 *
 *   copy stream:     [wait drained(s)] H2D src -> s  [record filled(s)]  [record uploaded]
 *   compute stream:                   [wait filled(s)] D2D s -> dst [record drained(s)] kernels...
 *
 * The ring is generic over Dev, the runtime calls it makes (backend_cuda.cu passes CUDA's; the
 * emulator suite passes a model of two in-order streams with events, and checks under adversarial
 * interleavings that every step reads its own batch and no source is read after wait() returned):
 *   Dev::event                        an event (CUDA semantics: a wait is for its latest record)
 *   bool event_new(event &e)          creates one
 *   void *alloc(size_t) / free(void *)   device memory (alloc: NULL when it fails)
 *   void copy(int stream, void *dst, const void *src, size_t bytes)   queued on stream
 *   void record(event &e, int stream) / wait(int stream, event &e)   queued on stream
 *   void sync(event &e)               blocks the host until e's latest record has been reached
 * with streams RING_COPY and RING_COMPUTE. No GPU runtime here, so the tests include it. */
#ifndef CVN_UPLOAD_RING_CUH
#define CVN_UPLOAD_RING_CUH

#include <stddef.h>

enum { RING_COPY, RING_COMPUTE };

template <class Dev> struct upload_ring {
    /* images and labels of two batches: a buffer is refilled two batches after it was filled */
    static const int SLOTS = 4;
    struct slot {
        void *buf;
        size_t cap;
        typename Dev::event filled, drained;
    };
    Dev *dev;
    slot slots[SLOTS];
    int next;
    typename Dev::event uploaded; /* after the latest copy from host memory, on either stream */

    /* false when an event could not be created (the caller then copies on its compute stream) */
    bool init(Dev *d) {
        dev = d;
        next = 0;
        for (slot &s : slots) {
            s.buf = NULL, s.cap = 0;
            if (!dev->event_new(s.filled) || !dev->event_new(s.drained)) return false;
        }
        return dev->event_new(uploaded);
    }

    /* Queues the copy of bytes from page-locked src to device dst: dst holds them for every
     * kernel queued on the compute stream after this call; src must stay as it is until wait().
     * staged = false copies on the compute stream, in order with its kernels (no overlap). */
    void upload(void *dst, const void *src, size_t bytes, bool staged = true) {
        if (!bytes) return;
        slot &s = slots[next];
        next = (next + 1) % SLOTS;
        if (staged && s.cap < bytes) { /* first batch, or a larger one: a larger buffer */
            dev->sync(s.drained);
            dev->free(s.buf);
            s.buf = dev->alloc(bytes);
            s.cap = s.buf ? bytes : 0;
        }
        if (!staged || !s.buf) { /* or no device memory for staging */
            dev->copy(RING_COMPUTE, dst, src, bytes);
            dev->record(uploaded, RING_COMPUTE);
            /* and hold later copies behind it, so that uploaded, recorded next on the copy
             * stream, still covers this one */
            dev->wait(RING_COPY, uploaded);
            return;
        }
        dev->wait(RING_COPY, s.drained);
        dev->copy(RING_COPY, s.buf, src, bytes);
        dev->record(s.filled, RING_COPY);
        dev->record(uploaded, RING_COPY);
        dev->wait(RING_COMPUTE, s.filled);
        dev->copy(RING_COMPUTE, dst, s.buf, bytes);
        dev->record(s.drained, RING_COMPUTE);
    }

    /* Blocks until every source given to upload() has been read. */
    void wait() { dev->sync(uploaded); }

    /* Blocks until the ring is idle and frees its buffers (events stay for reuse). */
    void release() {
        for (slot &s : slots) {
            dev->sync(s.drained);
            dev->free(s.buf);
            s.buf = NULL, s.cap = 0;
        }
    }
};

#endif
