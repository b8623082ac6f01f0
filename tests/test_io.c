/* Checkpoints in the safetensors format: round trips of model and optimizer state (training goes
 * on bit for bit), loading into a model with another head, metadata escapes, files as other
 * writers make them, every truncation and random corruptions, malformed headers, and a writer
 * killed mid-write leaving the previous checkpoint loadable. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", test_dir(), name);
    return p;
}

static cvn_module *small_resnet(uint64_t seed, int classes) {
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    cvn_model_config c = cvn_model_defaults(CVN_ARCH_RESNET, 1, 8, 8, classes);
    c.width_mult = 0.5f, c.depth_mult = 0.34f;
    return cvn_model_new(CVN_ARCH_RESNET, &c, &r);
}

/* One Adam step on a fixed batch. */
static void train_step(cvn_module *m, cvn_optim *o, uint64_t seed) {
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    cvn_tensor *x = CK_NOTNULL(cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){4, 1, 8, 8}));
    CK_OK(cvn_tensor_normal(x, &r, 0, 1));
    cvn_tensor *y = CK_NOTNULL(cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){4}));
    for (int i = 0; i < 4; i++) ((int32_t *)y->data)[i] = i % 3;
    CK_OK(
        cvn_backward(t, CK_NOTNULL(cvn_cross_entropy(t, cvn_module_forward(m, t, x), y, 0)), NULL));
    CK_OK(cvn_optim_step(o));
    cvn_optim_zero_grad(o);
    cvn_tape_free(t);
}

static void expect_same_state(cvn_module *a, cvn_module *b) {
    ck_assert_int_eq(cvn_module_num_params(a), cvn_module_num_params(b));
    for (int i = 0; i < cvn_module_num_params(a) + cvn_module_num_buffers(a); i++) {
        const char *name;
        int np = cvn_module_num_params(a);
        cvn_tensor *x =
            i < np ? cvn_module_param_at(a, i, &name) : cvn_module_buffer_at(a, i - np, &name);
        cvn_tensor *y = cvn_module_find(b, name);
        ck_assert_ptr_nonnull(y);
        ck_assert_msg(!memcmp(x->data, y->data, (size_t)cvn_numel(x) * 4), "%s differs", name);
    }
}

START_TEST(test_roundtrip_resumes_training_exactly) {
    cvn_module *a = CK_NOTNULL(small_resnet(1, 3)), *b = CK_NOTNULL(small_resnet(2, 3));
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    cvn_optim *oa = CK_NOTNULL(cvn_optim_new(&oc)), *ob = CK_NOTNULL(cvn_optim_new(&oc));
    cvn_optim_add_module(oa, a), cvn_optim_add_module(ob, b);
    for (int s = 0; s < 3; s++) train_step(a, oa, 10 + s);
    const char *meta[] = {"epoch", "3", "arch", "resnet"};
    CK_OK(cvn_checkpoint_save(path_in("a.safetensors"), a, oa, 2, meta));
    cvn_safetensors *ck = CK_NOTNULL(cvn_safetensors_open(path_in("a.safetensors")));
    ck_assert_str_eq(cvn_safetensors_meta(ck, "epoch"), "3");
    ck_assert_str_eq(cvn_safetensors_meta(ck, "arch"), "resnet");
    ck_assert_str_eq(cvn_safetensors_meta(ck, "optim.kind"), "Adam");
    ck_assert_str_eq(cvn_safetensors_meta(ck, "optim.steps"), "3");
    ck_assert_ptr_null(cvn_safetensors_meta(ck, "nope"));
    cvn_load_report rep;
    CK_OK(cvn_checkpoint_load(ck, b, ob, &rep));
    ck_assert_int_eq(rep.loaded, cvn_module_num_params(a) + cvn_module_num_buffers(a));
    ck_assert_int_eq(rep.skipped + rep.missing + rep.unexpected, 0);
    ck_assert(rep.optim_restored);
    cvn_text_free(rep.text);
    cvn_safetensors_close(ck);
    expect_same_state(a, b);
    ck_assert_int_eq(cvn_optim_steps(ob), 3);
    /* the next step of both is the same to the bit: moments and step count came back */
    train_step(a, oa, 99), train_step(b, ob, 99);
    expect_same_state(a, b);
    cvn_optim_free(oa), cvn_optim_free(ob);
    cvn_module_free(a), cvn_module_free(b);
}
END_TEST

START_TEST(test_load_into_new_head) {
    cvn_module *a = CK_NOTNULL(small_resnet(1, 10)), *b = CK_NOTNULL(small_resnet(2, 10));
    CK_OK(cvn_checkpoint_save(path_in("h.safetensors"), a, NULL, 0, NULL));
    cvn_rng r;
    cvn_rng_seed(&r, 5);
    CK_OK(cvn_model_replace_head(b, 2, &r));
    cvn_tensor *head = cvn_module_find(b, "head.weight");
    float before = ((float *)head->data)[0];
    cvn_safetensors *ck = CK_NOTNULL(cvn_safetensors_open(path_in("h.safetensors")));
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    oc.momentum = 0.9f;
    cvn_optim *o = CK_NOTNULL(cvn_optim_new(&oc));
    cvn_optim_add_module(o, b);
    cvn_load_report rep;
    CK_OK(cvn_checkpoint_load(ck, b, o, &rep));
    ck_assert_int_eq(rep.skipped, 2);
    ck_assert_int_eq(rep.missing, 0);
    ck_assert(!rep.optim_restored);
    ck_assert_msg(strstr(rep.text, "skipped: head.weight is [10, 32] in the checkpoint, [2, 32]"),
                  "%s", rep.text);
    ck_assert_msg(strstr(rep.text, "no optimizer state"), "%s", rep.text);
    ck_assert(((float *)head->data)[0] == before);
    ck_assert(!memcmp(cvn_module_find(a, "stem.0.weight")->data,
                      cvn_module_find(b, "stem.0.weight")->data, 4 * 9 * 8));
    cvn_text_free(rep.text);
    /* a different architecture: nothing fits */
    cvn_rng_seed(&r, 1);
    cvn_model_config cc = cvn_model_defaults(CVN_ARCH_CNN, 1, 8, 8, 7);
    cvn_module *cnn = CK_NOTNULL(cvn_model_new(CVN_ARCH_CNN, &cc, &r));
    ck_assert_int_eq(cvn_checkpoint_load(ck, cnn, NULL, NULL), CVN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "another architecture"));
    cvn_module_free(cnn);
    cvn_safetensors_close(ck);
    cvn_optim_free(o);
    cvn_module_free(a), cvn_module_free(b);
}
END_TEST

START_TEST(test_metadata_escapes) {
    cvn_tensor *x = CK_NOTNULL(cvn_tensor_new(CVN_F32, 2, (int64_t[]){2, 3}));
    CK_OK(cvn_tensor_fill(x, 1.5f));
    const char *meta[] = {"quote\"key", "line\nbreak\ttab \\ slash", "utf8",
                          "caf\xc3\xa9 \xe2\x9c\x93"};
    const char *names[] = {"w"};
    CK_OK(cvn_safetensors_write(path_in("m.safetensors"), 1, names, (const cvn_tensor *const[]){x},
                                2, meta));
    cvn_safetensors *st = CK_NOTNULL(cvn_safetensors_open(path_in("m.safetensors")));
    ck_assert_str_eq(cvn_safetensors_meta(st, "quote\"key"), meta[1]);
    ck_assert_str_eq(cvn_safetensors_meta(st, "utf8"), meta[3]);
    cvn_tensor *y = CK_NOTNULL(cvn_safetensors_get(st, "w"));
    ck_assert_int_eq(y->shape[1], 3);
    ck_assert(((float *)y->data)[5] == 1.5f);
    cvn_tensor_free(y), cvn_tensor_free(x);
    cvn_safetensors_close(st);
}
END_TEST

/* Writes a file from a header string and data bytes, as another writer would. */
static const char *write_raw(const char *name, const char *header, const void *data, size_t n) {
    const char *p = path_in(name);
    FILE *f = fopen(p, "wb");
    uint64_t len = strlen(header);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(len >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, len, f);
    fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

START_TEST(test_other_writers_and_malformed_headers) {
    /* as safetensors.torch writes a batch-norm state: an I64 counter beside F32 tensors, escapes */
    float w[2] = {1.0f, -2.0f};
    unsigned char data[16];
    memcpy(data, w, 8);
    memset(data + 8, 0, 8);
    const char *ok = write_raw(
        "ok.safetensors",
        "{\"__metadata__\":{\"format\":\"pt\"},\"bn.num_batches_tracked\":{\"dtype\":\"I64\","
        "\"shape\":[],\"data_offsets\":[8,16]},\"bn.w\\u0065ight\":{\"dtype\":\"F32\","
        "\"shape\":[2],\"data_offsets\":[0,8]}}   ",
        data, 16);
    cvn_safetensors *st = CK_NOTNULL(cvn_safetensors_open(ok));
    ck_assert_int_eq(cvn_safetensors_count(st), 2);
    cvn_tensor *x = CK_NOTNULL(cvn_safetensors_get(st, "bn.weight"));
    ck_assert(((float *)x->data)[1] == -2.0f);
    cvn_tensor_free(x);
    ck_assert_ptr_null(cvn_safetensors_get(st, "bn.num_batches_tracked"));
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "I64"));
    cvn_safetensors_close(st);

    static const struct {
        const char *header, *why;
        size_t data;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         "overlap", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "overlap or hole", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "do not hold", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "truncated", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "use 4", 8},
        {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "lacks", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "expected", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "number", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
         "too large", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":"
         "\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "repeats", 8},
        {"{\"__metadata__\":{\"k\":3}}", "__metadata__", 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "after", 8},
        {"{\"a\\ud800\":{}}", "surrogate", 0},
        {"[]", "expected '{'", 0},
    };
    unsigned char zeros[16] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_raw("bad.safetensors", bad[i].header, zeros, bad[i].data);
        ck_assert_msg(cvn_safetensors_open(p) == NULL, "case %zu (%s) opened", i, bad[i].why);
        ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
        ck_assert_msg(strstr(cvn_last_error(), bad[i].why), "case %zu: \"%s\" lacks \"%s\"", i,
                      cvn_last_error(), bad[i].why);
    }
    /* a header length past the end of the file */
    const char *p = path_in("len.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\xff\xff\xff\x00\x00\x00\x00\x00{}", 1, 10, f);
    fclose(f);
    ck_assert_ptr_null(cvn_safetensors_open(p));
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "not a safetensors file"));
    ck_assert_ptr_null(cvn_safetensors_open(path_in("absent.safetensors")));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_IO);
}
END_TEST

static unsigned char *slurp(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spill(const char *p, const unsigned char *b, size_t n) {
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Every truncation and 400 random corruptions of a real checkpoint: each opens with an error or
 * opens consistently (then every tensor can be read), never crashes (ASan watches in
 * SANITIZE=1). */
START_TEST(test_fuzz_truncated_and_corrupted) {
    cvn_module *m = CK_NOTNULL(small_resnet(1, 3));
    const char *meta[] = {"epoch", "1"};
    CK_OK(cvn_checkpoint_save(path_in("f.safetensors"), m, NULL, 1, meta));
    cvn_module_free(m);
    size_t n;
    unsigned char *orig = slurp(path_in("f.safetensors"), &n);
    const char *p = path_in("fz.safetensors");
    for (size_t cut = 0; cut < n; cut += (cut < 4096 ? 1 : 97)) {
        spill(p, orig, cut);
        ck_assert_msg(cvn_safetensors_open(p) == NULL, "truncated to %zu of %zu bytes opened", cut,
                      n);
    }
    cvn_rng r;
    cvn_rng_seed(&r, 77);
    unsigned char *buf = malloc(n);
    size_t hlen = orig[0] | (size_t)orig[1] << 8 | (size_t)orig[2] << 16;
    int opened = 0;
    for (int k = 0; k < 400; k++) {
        memcpy(buf, orig, n);
        int flips = 1 + (int)(cvn_rng_next(&r) % 4);
        for (int j = 0; j < flips; j++) {
            size_t at = (size_t)(cvn_rng_next(&r) % (8 + hlen)); /* the length and the JSON */
            buf[at] = (unsigned char)cvn_rng_next(&r);
        }
        spill(p, buf, n);
        cvn_safetensors *st = cvn_safetensors_open(p);
        if (!st) continue;
        opened++;
        for (int i = 0; i < cvn_safetensors_count(st); i++)
            cvn_tensor_free(cvn_safetensors_get(st, cvn_safetensors_name(st, i)));
        cvn_safetensors_close(st);
    }
    ck_assert_int_lt(opened, 400);
    free(buf), free(orig);
}
END_TEST

/* A child writes checkpoints of models filled with 1, then 2, then 3, ... in a loop; it is killed
 * with SIGKILL at some moment. The checkpoint under the real name must still open and hold one
 * consistent model. */
START_TEST(test_kill_during_write_keeps_previous) {
    const char *p = path_in("k.safetensors");
    cvn_tensor *w = CK_NOTNULL(cvn_tensor_new(CVN_F32, 2, (int64_t[]){1024, 1024}));
    CK_OK(cvn_tensor_fill(w, 0.0f));
    const char *names[] = {"w"};
    CK_OK(cvn_safetensors_write(p, 1, names, (const cvn_tensor *const[]){w}, 0, NULL));
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int v = 1;; v++) {
                cvn_tensor_fill(w, (float)v);
                cvn_safetensors_write(p, 1, names, (const cvn_tensor *const[]){w}, 0, NULL);
            }
        }
        usleep(20000 + 13000 * (useconds_t)round);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cvn_safetensors *st = cvn_safetensors_open(p);
        ck_assert_msg(st != NULL, "round %d: %s", round, cvn_last_error());
        cvn_tensor *x = CK_NOTNULL(cvn_safetensors_get(st, "w"));
        const float *v = x->data;
        for (int64_t i = 1; i < cvn_numel(x); i++)
            ck_assert_msg(v[i] == v[0], "round %d: mixed values %g and %g", round, (double)v[0],
                          (double)v[i]);
        cvn_tensor_free(x);
        cvn_safetensors_close(st);
    }
    cvn_tensor_free(w);
}
END_TEST

int main(void) {
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_resumes_training_exactly);
    tcase_add_test(tc, test_load_into_new_head);
    tcase_add_test(tc, test_metadata_escapes);
    tcase_add_test(tc, test_other_writers_and_malformed_headers);
    tcase_add_test(tc, test_fuzz_truncated_and_corrupted);
    tcase_add_test(tc, test_kill_during_write_keeps_previous);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
