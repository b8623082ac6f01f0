/* Private to lib/data: the dataset object shared by the readers, the splitter and the loader. */
#ifndef CVN_DATA_H
#define CVN_DATA_H

#include "core/core.h"

#define MAX_CLASSES 1000

struct cvn_dataset {
    cvn_tensor *images; /* u8 [N, C, H, W] */
    cvn_tensor *labels; /* i32 [N] */
    int64_t n;          /* samples in use (limit) */
    int n_classes;
    char **class_names;
};

/* A dataset owning images and labels (both freed on failure), classes named by names (NULL:
 * "0", "1", ...). */
cvn_dataset *cvn_dataset_make(cvn_tensor *images, cvn_tensor *labels, int n_classes,
                              const char *const *names);
cvn_status cvn_dataset_set_classes(cvn_dataset *ds, int n, const char *const *names);
/* Bilinear resize of one u8 image [c, sh, sw] to [c, dh, dw] (half-pixel centres, as
 * torchvision's Resize without antialiasing). */
void cvn_resize_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int c, int sh, int sw);

#endif
