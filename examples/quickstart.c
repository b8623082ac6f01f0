/* Quickstart: the reference CNN on FashionMNIST with Adam (lr 1e-3, batch 64), then the test
 * accuracy. `make run` runs it on a small budget (1 epoch of 12,000 images); the recipe of the
 * training issue is `--epochs 3 --limit 0`. Writes metrics.csv to --out. */
#include "example_args.h"

int main(int argc, char **argv) {
    example_args a = example_defaults(1, 12000, 1e-3f);
    int rc = example_parse(argc, argv, "quickstart", NULL, &a, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    cvn_set_num_threads(a.threads);
    cvn_dataset *train, *test;
    if (example_load(&a, "quickstart", &train, &test)) return 1;

    cvn_rng rng;
    cvn_rng_seed(&rng, a.seed);
    cvn_module *net = cvn_reference_cnn(&rng);
    cvn_tape *t = net ? cvn_tape_new(a.device) : NULL;
    if (!t || cvn_module_to(net, a.device)) {
        fprintf(stderr, "quickstart: %s\n", cvn_last_error());
        return 1;
    }
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    oc.lr = a.lr;
    cvn_optim *opt = cvn_optim_new(&oc);
    cvn_loader_config lc = {.batch_size = a.batch,
                            .shuffle = true,
                            .seed = a.seed,
                            .mean = {FMNIST_MEAN},
                            .std = {FMNIST_STD}};
    cvn_loader *tl = cvn_loader_new(train, &lc);
    lc.shuffle = false, lc.batch_size = 256;
    cvn_loader *vl = cvn_loader_new(test, &lc);
    if (!opt || cvn_optim_add_module(opt, net) < 0 || !tl || !vl) {
        fprintf(stderr, "quickstart: %s\n", cvn_last_error());
        return 1;
    }
    printf("quickstart: reference CNN (%lld parameters), Adam lr %g, %lld training images, "
           "%d epoch(s), %s, SIMD %s, %d threads\n",
           (long long)cvn_module_param_count(net), (double)a.lr, (long long)cvn_dataset_len(train),
           a.epochs, a.device == CVN_CUDA ? "GPU" : "CPU", cvn_simd_name(), a.threads);
    char csv[600];
    snprintf(csv, sizeof csv, "%s/metrics.csv", a.out);
    cvn_fit_config fc = {.epochs = a.epochs, .csv_path = csv, .progress = -1};
    cvn_epoch_stats last;
    if (cvn_fit(net, opt, t, tl, vl, &fc, &last)) {
        fprintf(stderr, "quickstart: %s\n", cvn_last_error());
        return 1;
    }
    printf("metrics: %s\n", csv);
    printf("test accuracy: %.2f %%\n", 100.0 * last.test_accuracy);
    cvn_loader_free(tl), cvn_loader_free(vl);
    cvn_optim_free(opt);
    cvn_tape_free(t);
    cvn_module_free(net);
    cvn_dataset_free(train), cvn_dataset_free(test);
    return 0;
}
