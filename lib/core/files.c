/* Atomic file writes: write to "<path>.tmp", then flush, fsync, close and rename over path, so a
 * crash never leaves a half-written file under the real name. */
#include <stdio.h>
#include <unistd.h>

#include "core/core.h"

FILE *cvn_file_begin(const char *path, char *tmp, size_t tmp_size) {
    snprintf(tmp, tmp_size, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) cvn_set_error(CVN_ERR_IO, "%s: cannot write", tmp);
    return f;
}

cvn_status cvn_file_commit(FILE *f, const char *tmp, const char *path) {
    bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return cvn_set_error(CVN_ERR_IO, "%s: write failed", path);
    }
    return CVN_OK;
}
