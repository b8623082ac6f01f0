/* Image folders: root/<class>/<image>, classes in sorted order, every image decoded with
 * stb_image (JPEG, PNG, GIF's first frame, BMP), converted to gray or RGB and resized. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

#include "data/data.h"

void cvn_resize_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int c, int sh, int sw) {
    float sy = (float)sh / (float)dh, sx = (float)sw / (float)dw;
    for (int y = 0; y < dh; y++) {
        float fy = ((float)y + 0.5f) * sy - 0.5f;
        if (fy < 0) fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        float wy = fy - (float)y0;
        for (int x = 0; x < dw; x++) {
            float fx = ((float)x + 0.5f) * sx - 0.5f;
            if (fx < 0) fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            float wx = fx - (float)x0;
            for (int k = 0; k < c; k++) {
                const uint8_t *p = src + (size_t)k * sh * sw;
                float top = p[y0 * sw + x0] + wx * (float)(p[y0 * sw + x1] - p[y0 * sw + x0]);
                float bot = p[y1 * sw + x0] + wx * (float)(p[y1 * sw + x1] - p[y1 * sw + x0]);
                float v = top + wy * (bot - top) + 0.5f;
                dst[((size_t)k * dh + y) * dw + x] = (uint8_t)(v > 255.0f ? 255.0f : v);
            }
        }
    }
}

typedef struct {
    char **items;
    int n, cap;
} name_list;

static void list_free(name_list *l) {
    for (int i = 0; i < l->n; i++) cvn_free(l->items[i]);
    cvn_free(l->items);
    *l = (name_list){0};
}

static bool list_add(name_list *l, const char *s) {
    if (!cvn_grow_array((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items)) return false;
    return (l->items[l->n++] = cvn_strdup(s)) != NULL;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_image(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png") ||
           !strcmp(ext, "gif") || !strcmp(ext, "bmp");
}

/* Entries of dir that are directories (dirs) or image files (else), sorted. */
static cvn_status list_dir(const char *dir, bool dirs, name_list *out) {
    DIR *d = opendir(dir);
    if (!d) return cvn_set_error(CVN_ERR_IO, "%s: cannot open the folder", dir);
    struct dirent *e;
    cvn_status st = CVN_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat s;
        if (stat(path, &s) != 0) continue;
        bool want = dirs ? S_ISDIR(s.st_mode) : S_ISREG(s.st_mode) && is_image(e->d_name);
        if (want && !list_add(out, e->d_name)) st = CVN_ERR_NOMEM;
    }
    closedir(d);
    if (!st && out->n) qsort(out->items, (size_t)out->n, sizeof *out->items, by_name);
    return st;
}

cvn_dataset *cvn_dataset_image_folder(const char *root, int channels, int height, int width) {
    if (!root || (channels != 1 && channels != 3) || height < 1 || width < 1 || height > 4096 ||
        width > 4096) {
        cvn_set_error(CVN_ERR_ARG,
                      "dataset_image_folder: %s, %d channels (1 or 3), %dx%d (1 to 4096)",
                      root ? root : "(null root)", channels, height, width);
        return NULL;
    }
    name_list classes = {0}, files = {0};
    cvn_tensor *img = NULL, *lab = NULL;
    cvn_dataset *ds = NULL;
    if (list_dir(root, true, &classes)) goto done;
    if (classes.n == 0 || classes.n > MAX_CLASSES) {
        cvn_set_error(CVN_ERR_FORMAT, "%s: %d class folders (expected root/<class>/<image>)", root,
                      classes.n);
        goto done;
    }
    /* first pass: count the images per class */
    int64_t total = 0;
    int *counts = cvn_calloc((size_t)classes.n, sizeof *counts);
    if (!counts) goto done;
    for (int c = 0; c < classes.n; c++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, classes.items[c]);
        if (list_dir(dir, false, &files)) break;
        counts[c] = files.n;
        total += files.n;
        list_free(&files);
    }
    if (cvn_last_status() == CVN_OK && total == 0)
        cvn_set_error(CVN_ERR_FORMAT, "%s: no .jpg, .jpeg, .png, .gif or .bmp images", root);
    if (total == 0 || cvn_last_status()) {
        cvn_free(counts);
        goto done;
    }
    int64_t shape[4] = {total, channels, height, width};
    img = cvn_tensor_new(CVN_U8, 4, shape);
    lab = cvn_tensor_new(CVN_I32, 1, shape);
    uint8_t *planar = NULL;
    size_t planar_size = 0;
    int64_t at = 0;
    bool ok = img && lab;
    for (int c = 0; ok && c < classes.n; c++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, classes.items[c]);
        ok = !list_dir(dir, false, &files);
        for (int i = 0; ok && i < files.n && at < total; i++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, files.items[i]);
            int w, h, n;
            uint8_t *px = stbi_load(path, &w, &h, &n, channels);
            if (!px) {
                cvn_set_error(CVN_ERR_FORMAT, "%s: cannot decode the image (%s)", path,
                              stbi_failure_reason());
                ok = false;
                break;
            }
            size_t need = (size_t)w * (size_t)h * (size_t)channels;
            if (need > planar_size) {
                cvn_free(planar);
                planar = cvn_malloc(need);
                planar_size = planar ? need : 0;
            }
            if (!planar) {
                stbi_image_free(px);
                ok = false;
                break;
            }
            for (int k = 0; k < channels; k++) /* interleaved -> planar */
                for (size_t j = 0; j < (size_t)w * (size_t)h; j++)
                    planar[(size_t)k * w * h + j] = px[j * (size_t)channels + (size_t)k];
            stbi_image_free(px);
            cvn_resize_u8((uint8_t *)img->data + at * channels * height * width, height, width,
                          planar, channels, h, w);
            ((int32_t *)lab->data)[at++] = c;
        }
        list_free(&files);
    }
    cvn_free(planar);
    cvn_free(counts);
    if (ok && at != total) {
        cvn_set_error(CVN_ERR_IO, "%s: the folders changed while being read", root);
        ok = false;
    }
    if (ok) {
        ds = cvn_dataset_make(img, lab, classes.n, (const char *const *)classes.items);
        img = lab = NULL;
    }
done:
    cvn_tensor_free(img), cvn_tensor_free(lab);
    list_free(&classes), list_free(&files);
    return ds;
}
