/* Per-thread last error: a status and a one-line message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/core.h"

static _Thread_local cvn_status last_status;
static _Thread_local char last_message[512];

cvn_status cvn_set_error(cvn_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = s;
    return s;
}

const char *cvn_last_error(void) {
    return last_message;
}
cvn_status cvn_last_status(void) {
    return last_status;
}

void cvn_clear_error(void) {
    last_status = CVN_OK;
    last_message[0] = '\0';
}

const char *cvn_status_name(cvn_status s) {
    static const char *const names[] = {
        "CVN_OK",     "CVN_ERR_ARG",    "CVN_ERR_SHAPE",  "CVN_ERR_DTYPE", "CVN_ERR_NOMEM",
        "CVN_ERR_IO", "CVN_ERR_FORMAT", "CVN_ERR_DEVICE", "CVN_ERR_STATE", "CVN_ERR_UNSUPPORTED",
    };
    if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
    return "CVN_ERR_UNKNOWN";
}
