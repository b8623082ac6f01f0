/* The CUDA backend's upload ring (kernels/cuda/upload_ring.cuh), run against a model of a GPU's
 * two in-order streams with events, under seeded random schedules: the host program is the
 * loader's (two page-locked slots, the next batch written into a slot as soon as wait() frees it)
 * and a training step's (its kernels read the batch, then the tape hands the same memory to other
 * tensors). Every step must see its own batch, whichever stream runs ahead, with staging buffers
 * growing on the way and device memory for them sometimes refused. On a GPU, test_cuda's
 * loader test runs the ring with the real streams. */
#include "check_run.h"
#include "cuda/upload_ring.cuh"

#include <stdint.h>
#include <string.h>

#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <vector>

/* Two streams as CUDA runs them: operations in queue order per stream; a wait holds its stream
 * until the record it names (the event's latest when the wait was queued) has run; which stream
 * moves next is the schedule's choice. Freed device memory is poisoned, not returned, so a copy
 * that reads it late delivers garbage the checks see. */
struct two_streams {
    typedef int event;
    struct op {
        int wait_event, wait_record; /* -1: no wait */
        std::function<void()> run;
        bool step; /* a training step's kernels (compute()) */
    };
    std::deque<op> queue[2];
    std::vector<std::vector<bool>> done; /* per event, per record (1-based): has it run */
    std::vector<std::unique_ptr<std::vector<unsigned char>>> blocks;
    std::mt19937 rng;
    double copy_bias;  /* chance that the copy stream moves when both can */
    double refuse = 0; /* chance that alloc fails */
    int refused = 0;

    two_streams(unsigned seed, double bias) : rng(seed), copy_bias(bias) {}

    bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
    bool runnable(int s) const {
        if (queue[s].empty()) return false;
        const op &o = queue[s].front();
        return o.wait_event < 0 || done[o.wait_event][o.wait_record];
    }
    /* runs one operation of a stream that can move; false when neither can */
    bool advance() {
        bool c = runnable(RING_COPY), k = runnable(RING_COMPUTE);
        if (!c && !k) return false;
        run_one(c && k ? (chance(copy_bias) ? RING_COPY : RING_COMPUTE)
                : c    ? RING_COPY
                       : RING_COMPUTE);
        return true;
    }
    void run_one(int s) {
        op o = std::move(queue[s].front());
        queue[s].pop_front();
        if (o.run) o.run();
    }
    void drain() {
        while (advance()) {
        }
        ck_assert_msg(queue[0].empty() && queue[1].empty(), "the streams wait on each other");
    }

    bool event_new(event &e) {
        e = (int)done.size();
        done.push_back(std::vector<bool>(1, true)); /* record 0: never recorded, waits pass */
        return true;
    }
    void *alloc(size_t bytes) {
        if (chance(refuse)) return refused++, nullptr;
        blocks.push_back(std::make_unique<std::vector<unsigned char>>(bytes));
        return blocks.back()->data();
    }
    void free(void *p) {
        for (auto &b : blocks)
            if (b->data() == p) std::fill(b->begin(), b->end(), 0xEE);
    }
    void copy(int s, void *dst, const void *src, size_t bytes) {
        queue[s].push_back({-1, 0, [=] { memcpy(dst, src, bytes); }, false});
    }
    void record(event &e, int s) {
        int r = (int)done[e].size();
        done[e].push_back(false);
        queue[s].push_back({-1, 0, [this, e, r] { done[e][r] = true; }, false});
    }
    void wait(int s, event &e) { queue[s].push_back({e, (int)done[e].size() - 1, {}, false}); }
    void sync(event &e) {
        int r = (int)done[e].size() - 1;
        while (!done[e][r]) ck_assert_msg(advance(), "sync waits for a record that cannot run");
    }
    /* the device work of a training step, queued on the compute stream */
    void compute(std::function<void()> f) {
        queue[RING_COMPUTE].push_back({-1, 0, std::move(f), true});
    }
};

/* Batch k: b images of 3 floats and b labels, every value naming the batch and its place. */
static int batch_size(int k) {
    return k % 4 == 3 ? 2 : 3 + k;
} /* growing, a short one now and then */
static float pixel(int k, int i) {
    return (float)(1000 * k + i);
}

/* One schedule: `batches` steps of the loader + training program, with staging memory refused
 * and copies asked unstaged at the given rates; returns how many steps saw a batch other than
 * their own (0 when the ring is right) and adds the refusals to *refused. */
static int run_schedule(unsigned seed, int batches, double refuse, double unstaged, int *refused) {
    two_streams dev(seed, 0.1 + 0.8 * (seed % 9) / 8.0);
    dev.refuse = refuse;
    upload_ring<two_streams> ring;
    ck_assert(ring.init(&dev));
    const int most = 3 + batches;
    std::vector<float> host_x[2], dev_x(3 * most);
    std::vector<int32_t> host_y[2], dev_y(most);
    int wrong = 0, seen = 0;
    auto fill = [&](int k) { /* the loader's worker writes batch k into its slot */
                             int b = batch_size(k);
                             host_x[k % 2].assign(3 * b, 0.0f), host_y[k % 2].assign(b, 0);
                             for (int i = 0; i < 3 * b; i++) host_x[k % 2][i] = pixel(k, i);
                             for (int i = 0; i < b; i++) host_y[k % 2][i] = 7 * k + i;
    };
    fill(0);
    for (int k = 0; k < batches; k++) {
        if (k > 0) {
            ring.wait(); /* loader_next: batch k - 1's slot is read ... */
            fill(k + 1); /* ... and refilled at once */
        } else {
            fill(1);
        }
        int b = batch_size(k);
        ring.upload(dev_x.data(), host_x[k % 2].data(), 3 * b * sizeof(float),
                    !dev.chance(unstaged));
        ring.upload(dev_y.data(), host_y[k % 2].data(), b * sizeof(int32_t), !dev.chance(unstaged));
        dev.compute([&, k, b] { /* the step's kernels read the batch ... */
                                bool ok = true;
                                for (int i = 0; i < 3 * b; i++) ok = ok && dev_x[i] == pixel(k, i);
                                for (int i = 0; i < b; i++) ok = ok && dev_y[i] == 7 * k + i;
                                wrong += !ok, seen++;
        });
        dev.compute([&] { /* ... and later ones reuse its memory */
                          std::fill(dev_x.begin(), dev_x.end(), -1.0f);
                          std::fill(dev_y.begin(), dev_y.end(), -1);
        });
        for (int n = std::uniform_int_distribution<int>(0, 6)(dev.rng); n > 0; n--) dev.advance();
    }
    ring.wait();
    dev.drain();
    ck_assert_int_eq(seen, batches);
    ring.release();
    *refused += dev.refused;
    return wrong;
}

START_TEST(test_ring_schedules) {
    int wrong = 0, refused = 0;
    for (unsigned seed = 1; seed <= 400; seed++) wrong += run_schedule(seed, 14, 0, 0, &refused);
    ck_assert_msg(wrong == 0, "%d steps saw another batch", wrong);
}
END_TEST

START_TEST(test_ring_unstaged) {
    /* copies on the compute stream among staged ones: staging memory refused now and then or
     * always, or the caller asking for unstaged copies (the backend's switch) */
    int wrong = 0, refused = 0;
    for (unsigned seed = 1; seed <= 400; seed++) wrong += run_schedule(seed, 14, 0.3, 0, &refused);
    ck_assert_int_gt(refused, 1000);
    for (unsigned seed = 1; seed <= 50; seed++) wrong += run_schedule(seed, 6, 1, 0, &refused);
    for (unsigned seed = 1; seed <= 400; seed++) wrong += run_schedule(seed, 14, 0, 0.3, &refused);
    ck_assert_msg(wrong == 0, "%d steps saw another batch", wrong);
}
END_TEST

START_TEST(test_ring_overlaps) {
    /* the point of the ring: with the compute stream held at step 0's kernels, the copies of
     * batches 1 and 2 (whose buffers batch 0 used) all run, and wait() returns */
    two_streams dev(1, 1.0);
    upload_ring<two_streams> ring;
    ck_assert(ring.init(&dev));
    float host[3][8], dst_x[8], labels_host[3][2], dst_y[2];
    bool stepped[3] = {false, false, false};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 8; i++) host[k][i] = pixel(k, i);
        labels_host[k][0] = labels_host[k][1] = (float)k;
        ring.upload(dst_x, host[k], sizeof dst_x);
        ring.upload(dst_y, labels_host[k], sizeof dst_y);
        dev.compute([&stepped, k] { stepped[k] = true; });
    }
    for (;;) { /* both streams move, but step 0 never runs */
        if (dev.runnable(RING_COMPUTE) && !dev.queue[RING_COMPUTE].front().step)
            dev.run_one(RING_COMPUTE);
        else if (dev.runnable(RING_COPY))
            dev.run_one(RING_COPY);
        else
            break;
    }
    ck_assert(dev.queue[RING_COPY].empty());
    ck_assert(dev.queue[RING_COMPUTE].front().step && !stepped[0]);
    ck_assert_float_eq(dst_x[7], pixel(0, 7)); /* batch 0 in place for step 0 */
    ring.wait();                               /* every source read, with step 0 not yet run */
    ck_assert(!stepped[0]);
    dev.drain();
    ck_assert(stepped[2]);
    ck_assert_float_eq(dst_x[7], pixel(2, 7));
    ck_assert_float_eq(dst_y[1], 2.0f);
    ring.release();
}
END_TEST

int main(void) {
    Suite *s = suite_create("upload_ring");
    TCase *tc = tcase_create("schedules");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ring_schedules);
    tcase_add_test(tc, test_ring_unstaged);
    tcase_add_test(tc, test_ring_overlaps);
    suite_add_tcase(s, tc);
    return check_run(s, true) ? 1 : 0;
}
