/* How the backend's two searches pick among what they timed: our convolution's variants
 * (tiled_gemm.cuh's tune_plan) and cuDNN's algorithms (vendor.cu). Time alone would keep a large
 * room for a gain within a shape's timing noise (Winograd all at once holds 805 MB on bench's
 * large layer, rounds 22.5 MB; cuDNN's algorithms ask for workspaces from none to hundreds of
 * MB), so of the choices within TUNE_ROOM_SLACK of the fastest, the one with the least room is
 * kept. Host code only. */
#ifndef CVN_CUDA_LEAN_PICK_CUH
#define CVN_CUDA_LEAN_PICK_CUH

#include <math.h>

/* How much slower than the fastest a choice may time and still be kept for needing less room:
 * a shape's timings repeat to within a few per cent */
#define TUNE_ROOM_SLACK 1.03

/* Of choices 0 .. n-1, timed time(i) (INFINITY: unusable) and needing room(i), the one with the
 * least room among those within TUNE_ROOM_SLACK of the fastest, the fastest of those where rooms
 * tie; the first where none has a finite time. */
template <class Time, class Room> static int lean_pick(int n, Time time, Room room) {
    int fastest = 0;
    for (int i = 1; i < n; i++)
        if (time(i) < time(fastest)) fastest = i;
    int kept = fastest;
    for (int i = 0; i < n; i++)
        if (isfinite(time(i)) && time(i) <= time(fastest) * TUNE_ROOM_SLACK &&
            (room(i) < room(kept) || (room(i) == room(kept) && time(i) < time(kept))))
            kept = i;
    return kept;
}

#endif
