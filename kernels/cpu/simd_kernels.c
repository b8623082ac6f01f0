/* The CPU compute kernels, written once over a vector type of CVN_VW floats (GCC vector
 * extensions) and compiled once per instruction set by the Makefile: AVX-512 (16 lanes), AVX2 (8)
 * and scalar (1). Each compilation defines one backend table, cvn_cpu_backend_<CVN_SIMD_NAME>;
 * backend_cpu.c picks one at run time. Tails are handled by partial loads into a zeroed vector, so
 * every kernel has one code path for all lengths. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>
#if CVN_VW > 1
#include <immintrin.h>
#endif

#include "cpu/cpu.h"

#ifndef CVN_VW
#error "CVN_VW (vector width in floats) must be defined"
#endif
#define VW CVN_VW
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define TABLE_NAME CAT(cvn_cpu_backend_, CVN_SIMD_NAME)
#define STR2(x) #x
#define STR(x) STR2(x)

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

/* Elementwise loops run on several threads only when the work pays for the wake-up. */
#define PAR_MIN 32768
/* Elements per work item of the threaded streaming loops (activations, broadcasting, optimizer
 * updates): whole vectors, and enough of them that a dispatch per item costs nothing. */
#define CHUNK 4096

/* Loads and stores of m lanes (all of them when m >= VW). Partial ones use the instruction set's
 * masked moves: a memcpy of a variable length would be a library call, and rows with tails (pooled
 * planes, 14 or 196 wide) hit them on every row. */
#if CVN_VW == 16
static inline __mmask16 lane_mask(int64_t m) {
    return (__mmask16)((1u << m) - 1u);
}
static inline vf vload(const float *p, int64_t m) {
    if (m >= VW) return (vf)_mm512_loadu_ps(p);
    return m > 0 ? (vf)_mm512_maskz_loadu_ps(lane_mask(m), p) : (vf){0};
}
static inline void vstore(float *p, vf v, int64_t m) {
    if (m >= VW)
        _mm512_storeu_ps(p, (__m512)v);
    else if (m > 0)
        _mm512_mask_storeu_ps(p, lane_mask(m), (__m512)v);
}
static inline void vstore_i(int32_t *p, vi v, int64_t m) {
    if (m > 0) _mm512_mask_storeu_epi32(p, lane_mask(m < VW ? m : VW), (__m512i)v);
}
#elif CVN_VW == 8
static inline __m256i lane_mask(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vf vload(const float *p, int64_t m) {
    if (m >= VW) return (vf)_mm256_loadu_ps(p);
    return m > 0 ? (vf)_mm256_maskload_ps(p, lane_mask(m)) : (vf){0};
}
static inline void vstore(float *p, vf v, int64_t m) {
    if (m >= VW)
        _mm256_storeu_ps(p, (__m256)v);
    else if (m > 0)
        _mm256_maskstore_ps(p, lane_mask(m), (__m256)v);
}
static inline void vstore_i(int32_t *p, vi v, int64_t m) {
    if (m > 0) _mm256_maskstore_epi32(p, lane_mask(m < VW ? m : VW), (__m256i)v);
}
#else
static inline vf vload(const float *p, int64_t m) {
    vf v = {0};
    for (int64_t l = 0; l < VW && l < m; l++) v[l] = p[l];
    return v;
}
static inline void vstore(float *p, vf v, int64_t m) {
    for (int64_t l = 0; l < VW && l < m; l++) p[l] = v[l];
}
static inline void vstore_i(int32_t *p, vi v, int64_t m) {
    for (int64_t l = 0; l < VW && l < m; l++) p[l] = v[l];
}
#endif
/* Lanes l < m of base[idx[l]], zero past m. */
static inline vf vgather(const float *base, vi idx, int64_t m) {
    if (m <= 0) return (vf){0};
#if CVN_VW == 16
    return (vf)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), lane_mask(m < VW ? m : VW),
                                        (__m512i)idx, base, 4);
#elif CVN_VW == 8
    return (vf)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, (__m256i)idx,
                                        _mm256_castsi256_ps(lane_mask(m)), 4);
#else
    vf v = {0};
    for (int64_t l = 0; l < VW && l < m; l++) v[l] = base[idx[l]];
    return v;
#endif
}
static inline vf vset(float x) {
#if CVN_VW == 16
    return (vf)_mm512_set1_ps(x);
#elif CVN_VW == 8
    return (vf)_mm256_set1_ps(x);
#else
    vf v = {0};
    return v + x;
#endif
}
/* Lane-wise square root, correctly rounded as sqrtf (NaN below zero). */
static inline vf vsqrt(vf x) {
#if CVN_VW == 16
    return (vf)_mm512_sqrt_ps((__m512)x);
#elif CVN_VW == 8
    return (vf)_mm256_sqrt_ps((__m256)x);
#else
    vf v = {sqrtf(x[0])};
    return v;
#endif
}
static inline vf vsel(vi mask, vf a, vf b) {
    return (vf)((mask & (vi)a) | (~mask & (vi)b));
}
/* a > b ? a : b and a < b ? a : b lane by lane (b where either is NaN): exactly what maxps and
 * minps do, which GCC does not infer from the selects. */
static inline vf vmax(vf a, vf b) {
#if CVN_VW == 16
    return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif CVN_VW == 8
    return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
    return vsel(a > b, a, b);
#endif
}
static inline vf vmin(vf a, vf b) {
#if CVN_VW == 16
    return (vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif CVN_VW == 8
    return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#else
    return vsel(a < b, a, b);
#endif
}
static inline vf vabs(vf a) {
    vi mask = {0};
    mask += 0x7fffffff; /* every bit but the sign */
    return (vf)((vi)a & mask);
}
/* a * b + c in one rounding where the instruction set has it (-std=c11 does not contract a * b + c
 * into an FMA by itself). */
static inline vf vfma(vf a, vf b, vf c) {
#if CVN_VW == 16
    return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif CVN_VW == 8
    return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

static inline float hsum(vf v) {
    float s = 0;
    for (int i = 0; i < VW; i++) s += v[i];
    return s;
}
static inline float hmax(vf v) {
    float r = v[0];
    for (int i = 1; i < VW; i++) r = v[i] > r ? v[i] : r;
    return r;
}

/* exp(x) as Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built
 * in the exponent bits. About 1 ulp over the clamped range. */
static inline vf vexp(vf x) {
    x = vmin(vmax(x, vset(-87.3f)), vset(88.3f));
    vf fx = x * 1.44269504088896341f + 0.5f;
    vi n = __builtin_convertvector(fx, vi);
    vf nf = __builtin_convertvector(n, vf);
    n += (vi)(nf > fx); /* truncation rounds negatives up: take one off there (true is -1) */
    nf = __builtin_convertvector(n, vf);
    vf r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
    vf p = vset(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf y = p * r * r + r + 1.0f;
    vi bits = (n + 127) << 23;
    return y * (vf)bits;
}

/* tanh as Cephes' tanhf: an odd polynomial below 0.625 (where 1 - 2/(e^2x + 1) would cancel),
 * the exponential form above. */
static inline vf vtanh(vf x) {
    vf ax = vabs(x);
    vf z = x * x;
    vf p = vset(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    vf small = p * z * x + x;
    vf e = vexp(vmin(ax + ax, vset(88.0f)));
    vf big = 1.0f - 2.0f / (e + 1.0f);
    big = vsel(x < 0.0f, -big, big);
    return vsel(ax < 0.625f, small, big);
}

static inline vf vsigmoid(vf x) {
    return 1.0f / (1.0f + vexp(-x));
}

/* The normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, with erfc from the Chebyshev-fitted exponential
 * of Numerical Recipes (erfcc, fractional error below 1.2e-7 everywhere). Using erfc on the
 * negative side keeps the relative accuracy where Phi is tiny, which 1 + erf would lose. In float
 * the exponent's rounding leaves GELU within 6.2e-6 relative for |x| <= 8 and 1.6e-5 beyond, where
 * its values are below 1e-15 (tests/test_simd.c checks both against double erfc). */
static inline vf vnormal_cdf(vf x) {
    vf z = vabs(x) * (float)M_SQRT1_2;
    vf t = 1.0f / (1.0f + 0.5f * z);
    vf p = vset(0.17087277f);
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    vf erfc = t * vexp(p - z * z);
    return vsel(x >= 0.0f, 1.0f - 0.5f * erfc, 0.5f * erfc);
}
/* GELU(x) = x Phi(x); its derivative Phi(x) + x phi(x). */
static inline vf vgelu(vf x) {
    return x * vnormal_cdf(x);
}
static inline vf vgelu_grad(vf x) {
    return vnormal_cdf(x) + x * vexp(-0.5f * x * x) * 0.3989422804014327f;
}

/* ------------------------------------------------------------------ elementwise */

static void k_affine(int64_t n, float *y, const float *x, float scale, float shift) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += VW) {
        int64_t m = n - i;
        vstore(y + i, vload(x + i, m) * scale + shift, m);
    }
}

static void k_axpy(int64_t n, float alpha, const float *x, float *y) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += VW) {
        int64_t m = n - i;
        vstore(y + i, vload(y + i, m) + alpha * vload(x + i, m), m);
    }
}

static inline vf binop(cvn_binop op, vf a, vf b) {
    switch (op) {
    case CVN_BIN_ADD:
        return a + b;
    case CVN_BIN_SUB:
        return a - b;
    case CVN_BIN_MUL:
        return a * b;
    default:
        return a / b;
    }
}

static inline bool is_contig(int ndim, const int64_t *shape, const int64_t *s) {
    int64_t expect = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && s[d] != expect) return false;
        expect *= shape[d];
    }
    return true;
}

static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* The offset of row r (a flat index over all dims but the innermost) under strides s: the outer
 * dim needs no division, so a collapsed [rows, cols] shape costs none per row. */
static inline int64_t row_offset(int64_t r, int ndim, const int64_t *shape, const int64_t *s) {
    int64_t off = 0;
    for (int d = ndim - 2; d > 0; d--) {
        off += (r % shape[d]) * s[d];
        r /= shape[d];
    }
    return ndim > 1 ? off + r * s[0] : off;
}

/* d(a op b)/d(which) * g lane by lane (padding lanes may divide by zero; they are never stored). */
static inline vf binop_grad(cvn_binop op, int which, vf g, vf a, vf b) {
    switch (op) {
    case CVN_BIN_ADD:
        return g;
    case CVN_BIN_SUB:
        return which == 0 ? g : -g;
    case CVN_BIN_MUL:
        return which == 0 ? g * b : g * a;
    default:
        return which == 0 ? g / b : -g * a / (b * b);
    }
}

/* The vector loop of binary_span, copied per operator and direction (the constant op and g test
 * leave its loop): a and b advance by ia, ib of 0 or 1 floats per lane. */
static inline __attribute__((always_inline)) void span_vec(cvn_binop op, bool bwd, bool add,
                                                           int which, int64_t m, float *out,
                                                           const float *g, const float *a,
                                                           int64_t ia, const float *b, int64_t ib) {
    for (int64_t j = 0; j < m; j += VW) {
        vf av = vload(a + j * ia, m - j), bv = vload(b + j * ib, m - j);
        vf v = bwd ? binop_grad(op, which, vload(g + j, m - j), av, bv) : binop(op, av, bv);
        vstore(out + j, add ? vload(out + j, m - j) + v : v, m - j);
    }
}

/* One run of m elements: out = a op b, or (g given) out (+)= the gradient toward operand which of
 * g, with a and b walked with strides ia and ib of 0 or 1 (vectors; an operand repeated along the
 * run is read from VW copies of it), or any (one lane at a time). */
static void binary_span(bool add, cvn_binop op, int which, int64_t m, float *out, int64_t io,
                        const float *g, const float *a, int64_t ia, const float *b, int64_t ib) {
    if (io == 1 && (ia == 0 || ia == 1) && (ib == 0 || ib == 1)) {
        float ra[VW], rb[VW];
        if (ia == 0) vstore(ra, vset(*a), VW), a = ra;
        if (ib == 0) vstore(rb, vset(*b), VW), b = rb;
#define SPAN(OP)                                                                                   \
    case OP:                                                                                       \
        g ? span_vec(OP, true, add, which, m, out, g, a, ia, b, ib)                                \
          : span_vec(OP, false, add, which, m, out, g, a, ia, b, ib);                              \
        break
        switch (op) {
            SPAN(CVN_BIN_ADD);
            SPAN(CVN_BIN_SUB);
            SPAN(CVN_BIN_MUL);
        default:
            SPAN(CVN_BIN_DIV);
        }
#undef SPAN
        return;
    }
    for (int64_t j = 0; j < m; j++) {
        vf av = vset(a[j * ia]), bv = vset(b[j * ib]);
        float v = (g ? binop_grad(op, which, vset(g[j]), av, bv) : binop(op, av, bv))[0];
        out[j * io] = add ? out[j * io] + v : v;
    }
}

/* Both directions of broadcasting arithmetic (forward where g is NULL, else backward, adding onto
 * out where add): contiguous operands in chunks over the threads, else row by row of the
 * innermost dim, each row's start found from its row index. out (strides so,
 * NULL: contiguous) never repeats an element (binary's output; binary_bwd's dx by the backend
 * contract), so rows run in parallel. */
static void binary_rows(bool add, cvn_binop op, int which, int ndim, const int64_t *shape,
                        float *out, const int64_t *so, const float *g, const float *a,
                        const int64_t *sa, const float *b, const int64_t *sb) {
    int64_t n = shape_numel(ndim, shape);
    if ((!so || is_contig(ndim, shape, so)) && is_contig(ndim, shape, sa) &&
        is_contig(ndim, shape, sb)) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i += CHUNK)
            binary_span(add, op, which, n - i < CHUNK ? n - i : CHUNK, out + i, 1, g ? g + i : NULL,
                        a + i, 1, b + i, 1);
        return;
    }
    int64_t inner = ndim > 0 ? shape[ndim - 1] : 1, rows = inner ? n / inner : 0;
    int64_t io = so && ndim > 0 ? so[ndim - 1] : 1, ia = ndim > 0 ? sa[ndim - 1] : 0,
            ib = ndim > 0 ? sb[ndim - 1] : 0;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r * inner;
        binary_span(add, op, which, inner, out + (so ? row_offset(r, ndim, shape, so) : i), io,
                    g ? g + i : NULL, a + row_offset(r, ndim, shape, sa), ia,
                    b + row_offset(r, ndim, shape, sb), ib);
    }
}

static void k_binary(cvn_binop op, int ndim, const int64_t *shape, float *out, const float *a,
                     const int64_t *sa, const float *b, const int64_t *sb) {
    binary_rows(false, op, 0, ndim, shape, out, NULL, NULL, a, sa, b, sb);
}

static void k_binary_bwd(cvn_binop op, int which, int ndim, const int64_t *shape, float *dx,
                         const int64_t *sx, const float *g, const float *a, const int64_t *sa,
                         const float *b, const int64_t *sb, const float *out, bool add) {
    (void)out;
    binary_rows(add, op, which, ndim, shape, dx, sx, g, a, sa, b, sb);
}

/* Row by row over the innermost dim: a row either sums into one element (stride 0) or adds onto a
 * contiguous row of out. Rows share out elements where an outer dim is reduced (a bias gradient
 * summed over the batch), and then run on one thread; else (a squeeze-excite gate's gradient, a
 * sum over the last dim) in parallel. */
static void k_reduce_to(int ndim, const int64_t *shape, float *out, const int64_t *so,
                        const float *x, float scale) {
    int64_t n = shape_numel(ndim, shape);
    int64_t inner = ndim > 0 ? shape[ndim - 1] : 1, si = ndim > 0 ? so[ndim - 1] : 0;
    if (n == 0) return;
    bool distinct = true;
    for (int d = 0; d + 1 < ndim; d++) distinct &= so[d] != 0 || shape[d] == 1;
#pragma omp parallel for if (distinct && n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < n / inner; r++) {
        const float *row = x + r * inner;
        float *o = out + row_offset(r, ndim, shape, so);
        if (si == 0) {
            vf acc = vset(0.0f);
            for (int64_t j = 0; j < inner; j += VW) acc += vload(row + j, inner - j);
            *o += scale * hsum(acc);
        } else if (si == 1) {
            for (int64_t j = 0; j < inner; j += VW)
                vstore(o + j, vload(o + j, inner - j) + scale * vload(row + j, inner - j),
                       inner - j);
        } else {
            for (int64_t j = 0; j < inner; j++) o[j * si] += scale * row[j];
        }
    }
}

static void k_expand_add(int ndim, const int64_t *shape, float *out, const float *x,
                         const int64_t *sx, float scale) {
    int64_t n = shape_numel(ndim, shape);
    int64_t inner = ndim > 0 ? shape[ndim - 1] : 1, si = ndim > 0 ? sx[ndim - 1] : 0;
    if (n == 0) return;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < n / inner; r++) {
        float *o = out + r * inner;
        const float *src = x + row_offset(r, ndim, shape, sx);
        if (si == 0) {
            float v = scale * *src;
            for (int64_t j = 0; j < inner; j += VW)
                vstore(o + j, vload(o + j, inner - j) + v, inner - j);
        } else if (si == 1) {
            for (int64_t j = 0; j < inner; j += VW)
                vstore(o + j, vload(o + j, inner - j) + scale * vload(src + j, inner - j),
                       inner - j);
        } else {
            for (int64_t j = 0; j < inner; j++) o[j] += scale * src[j * si];
        }
    }
}

/* ------------------------------------------------------------------ GEMM */

/* C = alpha A B^T + beta C where A has a few rows: a linear layer at batch 1 to 4. OpenBLAS runs
 * such a product on one thread; here the threads split B's rows (output features), so at batch 1
 * each core streams its share of the weights and keeps it in its own L2 cache between calls.
 * GEMV_N rows of B at a time against all m rows of A: m x GEMV_N vector sums. beta = 0 does not
 * read C, as in BLAS. */
#define GEMV_M 4
#define GEMV_N 4

/* acc[i][q] += A[i, p : p + r] . B_q[p : p + r] */
static inline __attribute__((always_inline)) void gemm_abt_step(const int m, vf acc[][GEMV_N],
                                                                const float *a, int lda,
                                                                const float *const *bp, int p,
                                                                const int64_t r) {
    vf bv[GEMV_N];
#pragma GCC unroll 4
    for (int q = 0; q < GEMV_N; q++) bv[q] = vload(bp[q] + p, r);
#pragma GCC unroll 4
    for (int i = 0; i < m; i++) {
        const vf av = vload(a + (int64_t)i * lda + p, r);
#pragma GCC unroll 4
        for (int q = 0; q < GEMV_N; q++) acc[i][q] = vfma(av, bv[q], acc[i][q]);
    }
}

static inline __attribute__((always_inline)) void gemm_abt_cols(const int m, int j0, int j1, int k,
                                                                float alpha, const float *a,
                                                                int lda, const float *b, int ldb,
                                                                float beta, float *c, int ldc) {
    for (int j = j0; j < j1; j += GEMV_N) {
        const int nj = j1 - j < GEMV_N ? j1 - j : GEMV_N;
        const float *bp[GEMV_N];
        for (int q = 0; q < GEMV_N; q++) bp[q] = b + (int64_t)(j + (q < nj ? q : nj - 1)) * ldb;
        vf acc[GEMV_M][GEMV_N];
#pragma GCC unroll 4
        for (int i = 0; i < m; i++)
#pragma GCC unroll 4
            for (int q = 0; q < GEMV_N; q++) acc[i][q] = vset(0.0f);
        for (int p = 0; p < k; p += VW) {
            if (k - p >= VW) /* whole vectors; the tail's partial loads apart */
                gemm_abt_step(m, acc, a, lda, bp, p, VW);
            else
                gemm_abt_step(m, acc, a, lda, bp, p, k - p);
        }
        for (int i = 0; i < m; i++)
            for (int q = 0; q < nj; q++) {
                float *out = c + (int64_t)i * ldc + j + q, v = alpha * hsum(acc[i][q]);
                *out = beta == 0.0f ? v : v + beta * *out;
            }
    }
}

static void gemm_abt_small(int m, int j0, int j1, int k, float alpha, const float *a, int lda,
                           const float *b, int ldb, float beta, float *c, int ldc) {
    switch (m) { /* a constant row count for each, so the sums stay in registers */
    case 1:
        gemm_abt_cols(1, j0, j1, k, alpha, a, lda, b, ldb, beta, c, ldc);
        break;
    case 2:
        gemm_abt_cols(2, j0, j1, k, alpha, a, lda, b, ldb, beta, c, ldc);
        break;
    case 3:
        gemm_abt_cols(3, j0, j1, k, alpha, a, lda, b, ldb, beta, c, ldc);
        break;
    default:
        gemm_abt_cols(4, j0, j1, k, alpha, a, lda, b, ldb, beta, c, ldc);
        break;
    }
}

/* C = alpha A B^T + beta C for up to GEMM_MR rows of A (a linear layer at batch 5 to 64), as C^T =
 * B A^T: A is packed transposed (k rows of its m columns, zero-padded to whole vectors) into a
 * buffer kept by the calling thread between calls, the threads split B's rows, and each tile of
 * GEMV_N rows of B holds GEMV_N x mv vectors of C^T in registers: mv vector loads of packed A and
 * GEMV_N broadcasts of B per GEMV_N * mv FMAs, no hsum. k goes in blocks of GEMM_KC, so a block of
 * packed A stays in L1 while every tile passes over it; the tiles' sums wait in ct between blocks
 * and reach C at the end, transposed. */
#define GEMM_MR (4 * VW)
#define GEMM_KC 128
#define GEMM_NR 6 /* rows of B per tile: 6 x 4 vector sums */
/* multiply-adds below which OpenBLAS does better (timed on 64x10x128, 64x256x64, 32x512x512) */
#define GEMM_PANEL_MIN (1 << 22)

/* The calling thread's packing buffer, kept between calls and freed when the thread ends. */
typedef struct {
    float *p;
    int64_t cap;
} gemm_buf;
static pthread_key_t gemm_key;
static pthread_once_t gemm_key_once = PTHREAD_ONCE_INIT;

static void gemm_buf_free(void *v) {
    gemm_buf *g = v;
    cvn_cpu_free(g->p);
    cvn_cpu_free(g);
}
static void gemm_key_make(void) {
    pthread_key_create(&gemm_key, gemm_buf_free);
}
/* At least floats of packing space for this thread, or NULL (out of memory: OpenBLAS then). */
static float *gemm_space(int64_t floats) {
    pthread_once(&gemm_key_once, gemm_key_make);
    gemm_buf *g = pthread_getspecific(gemm_key);
    if (!g) {
        g = cvn_cpu_alloc(sizeof *g);
        if (!g) return NULL;
        *g = (gemm_buf){NULL, 0};
        if (pthread_setspecific(gemm_key, g)) {
            cvn_cpu_free(g);
            return NULL;
        }
    }
    if (floats > g->cap) {
        float *p = cvn_cpu_alloc((size_t)floats * sizeof(float));
        if (!p) return NULL;
        cvn_cpu_free(g->p);
        g->p = p, g->cap = floats;
    }
    return g->p;
}

static inline __attribute__((always_inline)) void gemm_panel_tiles(const int mv, int j0, int j1,
                                                                   int p0, int kc, const float *at,
                                                                   const float *b, int ldb,
                                                                   float *ct) {
    for (int j = j0; j < j1; j += GEMM_NR) {
        const int nj = j1 - j < GEMM_NR ? j1 - j : GEMM_NR;
        const float *bp[GEMM_NR];
        for (int q = 0; q < GEMM_NR; q++)
            bp[q] = b + (int64_t)(j + (q < nj ? q : nj - 1)) * ldb + p0;
        float *cq = ct + (int64_t)j * mv * VW;
        vf acc[GEMM_NR][4];
#pragma GCC unroll 8
        for (int q = 0; q < GEMM_NR; q++)
#pragma GCC unroll 4
            for (int v = 0; v < mv; v++) /* rows past nj repeat row nj - 1, and are not kept */
                acc[q][v] = p0 && q < nj ? vload(cq + (q * mv + v) * VW, VW) : vset(0.0f);
        const float *ap = at + (int64_t)p0 * mv * VW;
        for (int p = 0; p < kc; p++, ap += mv * VW) {
            vf av[4];
#pragma GCC unroll 4
            for (int v = 0; v < mv; v++) av[v] = vload(ap + v * VW, VW);
#pragma GCC unroll 8
            for (int q = 0; q < GEMM_NR; q++) {
                const vf bq = vset(bp[q][p]);
#pragma GCC unroll 4
                for (int v = 0; v < mv; v++) acc[q][v] = vfma(av[v], bq, acc[q][v]);
            }
        }
#pragma GCC unroll 8
        for (int q = 0; q < GEMM_NR; q++)
#pragma GCC unroll 4
            for (int v = 0; v < mv; v++)
                if (q < nj) vstore(cq + (q * mv + v) * VW, acc[q][v], VW);
    }
}

/* The thread's rows [j0, j1) of C^T into ct (rows of mp floats), then into C. */
static void gemm_panel(int m, int j0, int j1, int k, float alpha, const float *at, const float *b,
                       int ldb, float *ct, float beta, float *c, int ldc) {
    const int mv = (m + VW - 1) / VW;
    for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
        const int kc = k - p0 < GEMM_KC ? k - p0 : GEMM_KC;
        switch (mv) { /* vectors of rows, a constant for each */
        case 1:
            gemm_panel_tiles(1, j0, j1, p0, kc, at, b, ldb, ct);
            break;
        case 2:
            gemm_panel_tiles(2, j0, j1, p0, kc, at, b, ldb, ct);
            break;
        case 3:
            gemm_panel_tiles(3, j0, j1, p0, kc, at, b, ldb, ct);
            break;
        default:
            gemm_panel_tiles(4, j0, j1, p0, kc, at, b, ldb, ct);
            break;
        }
    }
    for (int i = 0; i < m; i++)
        for (int j = j0; j < j1; j++) {
            float *out = c + (int64_t)i * ldc + j, v = alpha * ct[(int64_t)j * mv * VW + i];
            *out = beta == 0.0f ? v : v + beta * *out;
        }
}

static void k_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    const bool small = !ta && tb && m >= 1 && m <= GEMV_M && n >= 1,
               panel = VW > 1 && !ta && tb && m > GEMV_M && m <= GEMM_MR && n >= GEMV_N &&
                       k >= 256 && (int64_t)m * n * k >= GEMM_PANEL_MIN &&
                       (int64_t)lda * VW < INT32_MAX;             /* the packing's gather offsets */
    const int mp = (m + VW - 1) / VW * VW;                        /* packed row length */
    float *at = panel ? gemm_space(((int64_t)k + n) * mp) : NULL; /* packed A, then C^T */
    if (!small && !at) {
        cvn_cpu_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int blocks = (n + GEMV_N - 1) / GEMV_N;
    float *ct = at ? at + (int64_t)k * mp : NULL;
#pragma omp parallel if ((int64_t)m * n * k > 4 * PAR_MIN && blocks > 1)
    {
        const int nt = omp_get_num_threads(), me = omp_get_thread_num();
        const int j0 = (int)((int64_t)blocks * me / nt) * GEMV_N,
                  j1 = (int)((int64_t)blocks * (me + 1) / nt) * GEMV_N;
        if (small) {
            if (j0 < n)
                gemm_abt_small(m, j0, j1 < n ? j1 : n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        } else {
#pragma omp for schedule(static)
            for (int p = 0; p < k; p++) /* column p of A, a vector of rows at a time */
                for (int i = 0; i < mp; i += VW) {
                    vi idx = {0};
                    for (int l = 0; l < VW; l++) idx[l] = l * lda;
                    vstore(at + (int64_t)p * mp + i, vgather(a + (int64_t)i * lda + p, idx, m - i),
                           VW);
                }
            if (j0 < n) gemm_panel(m, j0, j1 < n ? j1 : n, k, alpha, at, b, ldb, ct, beta, c, ldc);
        }
    }
}

/* ------------------------------------------------------------------ activations */

static inline vf act(cvn_act_kind kind, float alpha, vf x) {
    switch (kind) {
    case CVN_K_RELU:
        return vmax(x, vset(0.0f));
    case CVN_K_LEAKY_RELU:
        return vsel(x > 0.0f, x, x * alpha);
    case CVN_K_SIGMOID:
        return vsigmoid(x);
    case CVN_K_TANH:
        return vtanh(x);
    case CVN_K_GELU:
        return vgelu(x);
    case CVN_K_SILU:
        return x * vsigmoid(x);
    case CVN_K_HARDSWISH:
        return x * vmin(vmax(x + 3.0f, vset(0.0f)), vset(6.0f)) / 6.0f;
    default:
        return vmin(vmax(x + 3.0f, vset(0.0f)), vset(6.0f)) / 6.0f; /* hardsigmoid */
    }
}

/* f'(x), given x and y = f(x); boundaries follow PyTorch's backward formulas. */
static inline vf act_grad(cvn_act_kind kind, float alpha, vf x, vf y) {
    vf one = vset(1.0f), zero = vset(0.0f);
    switch (kind) {
    case CVN_K_RELU:
        return vsel(x > 0.0f, one, zero);
    case CVN_K_LEAKY_RELU:
        return vsel(x > 0.0f, one, vset(alpha));
    case CVN_K_SIGMOID:
        return y * (1.0f - y);
    case CVN_K_TANH:
        return 1.0f - y * y;
    case CVN_K_GELU:
        return vgelu_grad(x);
    case CVN_K_SILU: {
        vf s = vsigmoid(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case CVN_K_HARDSWISH:
        return vsel(x < -3.0f, zero, vsel(x <= 3.0f, x / 3.0f + 0.5f, one));
    default:
        return vsel((x > -3.0f) & (x < 3.0f), vset(1.0f / 6.0f), zero);
    }
}

/* act_fwd's (y = f(x)) or act_bwd's loop over [i0, i1), copied per kind: with kind constant,
 * act's switch leaves the loop (as an indirect jump per vector it made relu 2-3 times slower). */
static inline __attribute__((always_inline)) void act_span(bool bwd, cvn_act_kind kind, float alpha,
                                                           int64_t i0, int64_t i1, float *out,
                                                           const float *dy, const float *x,
                                                           const float *y, bool add) {
    for (int64_t i = i0; i < i1; i += VW) {
        int64_t m = i1 - i;
        if (!bwd) {
            vstore(out + i, act(kind, alpha, vload(x + i, m)), m);
            continue;
        }
        vf d = vload(dy + i, m) * act_grad(kind, alpha, vload(x + i, m), vload(y + i, m));
        vstore(out + i, add ? vload(out + i, m) + d : d, m);
    }
}

/* Both directions in chunks of whole vectors over the threads, one switch per chunk. */
static void act_chunks(bool bwd, cvn_act_kind kind, float alpha, int64_t n, float *out,
                       const float *dy, const float *x, const float *y, bool add) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) {
        int64_t e = n - c < CHUNK ? n : c + CHUNK;
#define ACT(K)                                                                                     \
    case K:                                                                                        \
        bwd ? act_span(true, K, alpha, c, e, out, dy, x, y, add)                                   \
            : act_span(false, K, alpha, c, e, out, dy, x, y, add);                                 \
        break
        switch (kind) {
            ACT(CVN_K_RELU);
            ACT(CVN_K_LEAKY_RELU);
            ACT(CVN_K_SIGMOID);
            ACT(CVN_K_TANH);
            ACT(CVN_K_GELU);
            ACT(CVN_K_SILU);
            ACT(CVN_K_HARDSWISH);
        default:
            ACT(CVN_K_HARDSIGMOID);
        }
#undef ACT
    }
}

static void k_act_fwd(cvn_act_kind kind, float alpha, int64_t n, float *y, const float *x) {
    act_chunks(false, kind, alpha, n, y, NULL, x, NULL, false);
}

static void k_act_bwd(cvn_act_kind kind, float alpha, int64_t n, float *dx, const float *dy,
                      const float *x, const float *y, bool add) {
    act_chunks(true, kind, alpha, n, dx, dy, x, y, add);
}

/* ------------------------------------------------------------------ softmax, cross-entropy */

/* One contiguous row: y = softmax(x) or log_softmax(x). */
static void softmax_row(bool log, int64_t d, float *y, const float *x) {
    vf mx = vset(-INFINITY);
    for (int64_t j = 0; j < d; j += VW) {
        vf v = vload(x + j, d - j);
        for (int64_t l = d - j; l < VW; l++) v[l] = -INFINITY;
        mx = vmax(mx, v);
    }
    float m = hmax(mx);
    vf sum = vset(0.0f);
    for (int64_t j = 0; j < d; j += VW) {
        vf e = vexp(vload(x + j, d - j) - m);
        for (int64_t l = d - j; l < VW; l++) e[l] = 0.0f;
        if (!log) vstore(y + j, e, d - j);
        sum += e;
    }
    float s = hsum(sum);
    if (log) {
        float lse = m + logf(s);
        for (int64_t j = 0; j < d; j += VW) vstore(y + j, vload(x + j, d - j) - lse, d - j);
    } else {
        float inv = 1.0f / s;
        for (int64_t j = 0; j < d; j += VW) vstore(y + j, vload(y + j, d - j) * inv, d - j);
    }
}

static void k_softmax_fwd(bool log, int64_t outer, int64_t d, int64_t inner, float *y,
                          const float *x) {
    if (d < 1) return; /* the op rejects empty dims; an empty row has no softmax */
    if (inner == 1) {
#pragma omp parallel for if (outer * d > PAR_MIN) schedule(static)
        for (int64_t o = 0; o < outer; o++) softmax_row(log, d, y + o * d, x + o * d);
        return;
    }
#pragma omp parallel for if (outer * d * inner > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < inner; k++) {
            const float *xs = x + o * d * inner + k;
            float *ys = y + o * d * inner + k;
            float m = -INFINITY, s = 0;
            for (int64_t j = 0; j < d; j++) m = xs[j * inner] > m ? xs[j * inner] : m;
            for (int64_t j = 0; j < d; j++) s += expf(xs[j * inner] - m);
            /* s >= 1 (the maximum contributes exp(0)) since d >= 1 */
            // cppcheck-suppress invalidFunctionArg
            float lse = m + logf(s);
            for (int64_t j = 0; j < d; j++)
                ys[j * inner] = log ? xs[j * inner] - lse : expf(xs[j * inner] - lse);
        }
    }
}

/* softmax: dx += y (dy - sum(dy y)); log-softmax: dx += dy - exp(y) sum(dy) */
static void k_softmax_bwd(bool log, int64_t outer, int64_t d, int64_t inner, float *dx,
                          const float *dy, const float *y) {
#pragma omp parallel for if (outer * d * inner > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < inner; k++) {
            int64_t base = o * d * inner + k;
            float s = 0;
            for (int64_t j = 0; j < d; j++) {
                int64_t i = base + j * inner;
                s += log ? dy[i] : dy[i] * y[i];
            }
            for (int64_t j = 0; j < d; j++) {
                int64_t i = base + j * inner;
                dx[i] += log ? dy[i] - expf(y[i]) * s : y[i] * (dy[i] - s);
            }
        }
    }
}

/* loss_i = -((1 - s) log p[t] + s / C * sum_j log p[j]), averaged over rows. */
static void k_xent_fwd(int64_t n, int64_t c, float *loss, float *prob, const float *logits,
                       const int32_t *target, float smoothing) {
    double total = 0;
#pragma omp parallel for if (n * c > PAR_MIN) reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *p = prob + i * c;
        softmax_row(true, c, p, logits + i * c); /* log-probabilities first */
        double sum_logp = 0;
        for (int64_t j = 0; j < c; j++) sum_logp += p[j];
        double li = -(1.0 - smoothing) * p[target[i]] - smoothing / (double)c * sum_logp;
        total += li;
        for (int64_t j = 0; j < c; j += VW) vstore(p + j, vexp(vload(p + j, c - j)), c - j);
    }
    *loss = (float)(total / (double)n);
}

static void k_xent_bwd(int64_t n, int64_t c, float *dlogits, const float *g, const float *prob,
                       const int32_t *target, float smoothing) {
    float scale = g[0] / (float)n, off = smoothing / (float)c;
#pragma omp parallel for if (n * c > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *d = dlogits + i * c;
        const float *p = prob + i * c;
        for (int64_t j = 0; j < c; j += VW)
            vstore(d + j, vload(d + j, c - j) + scale * (vload(p + j, c - j) - off), c - j);
        d[target[i]] -= scale * (1.0f - smoothing);
    }
}

static void k_count_hits(int64_t n, int64_t c, float *hits, const float *logits,
                         const int32_t *labels) {
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += cvn_argmax(logits + i * c, c) == labels[i];
    *hits += (float)count;
}

static void k_bce_fwd(int64_t n, float *loss, const float *x, const float *y) {
    double total = 0;
#pragma omp parallel for if (n > PAR_MIN) reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; i += VW) {
        int64_t m = n - i;
        vf xv = vload(x + i, m);
        vf l = vmax(xv, vset(0.0f)) - xv * vload(y + i, m);
        vf e = vexp(-vabs(xv));
        for (int64_t j = 0; j < VW && j < m; j++) total += (double)l[j] + log1pf(e[j]);
    }
    *loss = (float)(total / (double)n);
}

static void k_bce_bwd(int64_t n, float *dx, float *dy, const float *g, const float *x,
                      const float *y) {
    float scale = g[0] / (float)n;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += VW) {
        int64_t m = n - i;
        vf xv = vload(x + i, m);
        if (dx) vstore(dx + i, vload(dx + i, m) + scale * (vsigmoid(xv) - vload(y + i, m)), m);
        if (dy) vstore(dy + i, vload(dy + i, m) - scale * xv, m);
    }
}

/* ------------------------------------------------------------------ im2col / col2im */

/* One image's rows of the column matrix. */
/* For a unit-stride window row at input offset x0: the output columns [lo, hi) whose input
 * column x0 + ox lies inside [0, w). */
static inline void valid_span(int x0, int width, int ow, int *lo, int *hi) {
    *lo = x0 < 0 ? -x0 : 0;
    *hi = width - x0;
    if (*hi > ow) *hi = ow;
    if (*lo > ow) *lo = ow;
    if (*hi < *lo) *hi = *lo;
}

static inline void copy_span(float *dst, const float *src, int64_t n) {
    for (int64_t j = 0; j < n; j += VW) vstore(dst + j, vload(src + j, n - j), n - j);
}

static void im2col_one(const cvn_window *w, float *cols, int64_t ld, const float *img) {
    int64_t rows = (int64_t)w->c * w->kh * w->kw;
    for (int64_t r = 0; r < rows; r++) {
        int kj = (int)(r % w->kw), ki = (int)(r / w->kw % w->kh), ch = (int)(r / w->kw / w->kh);
        const float *plane = img + (int64_t)ch * w->h * w->w;
        float *row = cols + r * ld;
        for (int oy = 0; oy < w->oh; oy++) {
            int iy = oy * w->sh - w->ph + ki * w->dh;
            float *o = row + (int64_t)oy * w->ow;
            if (iy < 0 || iy >= w->h) {
                for (int ox = 0; ox < w->ow; ox++) o[ox] = 0;
                continue;
            }
            const float *src = plane + (int64_t)iy * w->w;
            int x0 = kj * w->dw - w->pw;
            if (w->sw == 1) { /* a vector copy between zero margins */
                int lo, hi;
                valid_span(x0, w->w, w->ow, &lo, &hi);
                for (int ox = 0; ox < lo; ox++) o[ox] = 0;
                copy_span(o + lo, src + x0 + lo, hi - lo);
                for (int ox = hi; ox < w->ow; ox++) o[ox] = 0;
            } else {
                for (int ox = 0; ox < w->ow; ox++) {
                    int ix = x0 + ox * w->sw;
                    o[ox] = (ix >= 0 && ix < w->w) ? src[ix] : 0.0f;
                }
            }
        }
    }
}

static void k_im2col(const cvn_window *w, float *cols, int64_t ld, const float *img,
                     int64_t img_stride, int nimg) {
    int64_t osz = (int64_t)w->oh * w->ow;
#pragma omp parallel for if ((int64_t)nimg * w->c * w->kh * w->kw * osz > PAR_MIN) schedule(static)
    for (int i = 0; i < nimg; i++) im2col_one(w, cols + i * osz, ld, img + i * img_stride);
}

/* Rows of one channel touch only that channel's plane, so images and channels run in parallel. */
static void k_col2im(const cvn_window *w, float *img, int64_t img_stride, const float *cols,
                     int64_t ld, int nimg) {
    int64_t osz = (int64_t)w->oh * w->ow;
#pragma omp parallel for collapse(2) if ((int64_t)nimg * w->c * w->kh * w->kw * osz > PAR_MIN)     \
    schedule(static)
    for (int i = 0; i < nimg; i++)
        for (int ch = 0; ch < w->c; ch++) {
            float *plane = img + i * img_stride + (int64_t)ch * w->h * w->w;
            for (int ki = 0; ki < w->kh; ki++)
                for (int kj = 0; kj < w->kw; kj++) {
                    const float *row =
                        cols + ((int64_t)(ch * w->kh + ki) * w->kw + kj) * ld + i * osz;
                    for (int oy = 0; oy < w->oh; oy++) {
                        int iy = oy * w->sh - w->ph + ki * w->dh;
                        if (iy < 0 || iy >= w->h) continue;
                        float *dst = plane + (int64_t)iy * w->w;
                        const float *o = row + (int64_t)oy * w->ow;
                        int x0 = kj * w->dw - w->pw;
                        if (w->sw == 1) { /* a vector add over the valid span */
                            int lo, hi;
                            valid_span(x0, w->w, w->ow, &lo, &hi);
                            float *d = dst + x0 + lo;
                            for (int64_t j = 0, n = hi - lo; j < n; j += VW)
                                vstore(d + j, vload(d + j, n - j) + vload(o + lo + j, n - j),
                                       n - j);
                            continue;
                        }
                        for (int ox = 0; ox < w->ow; ox++) {
                            int ix = x0 + ox * w->sw;
                            if (ix >= 0 && ix < w->w) dst[ix] += o[ox];
                        }
                    }
                }
        }
}

static void k_copy_blocks(int64_t na, int64_t nb, int64_t inner, float *dst, int64_t dsa,
                          int64_t dsb, const float *src, int64_t ssa, int64_t ssb,
                          const float *bias) {
#pragma omp parallel for collapse(2) if (na * nb * inner > PAR_MIN) schedule(static)
    for (int64_t a = 0; a < na; a++)
        for (int64_t b = 0; b < nb; b++) {
            float *d = dst + a * dsa + b * dsb;
            const float *s = src + a * ssa + b * ssb;
            float add = bias ? bias[a] : 0.0f;
            for (int64_t k = 0; k < inner; k += VW)
                vstore(d + k, vload(s + k, inner - k) + add, inner - k);
        }
}

/* ------------------------------------------------------------------ pooling */

/* The larger of a max pool's best so far and its next candidate: strictly greater wins, NaN wins
 * (PyTorch's order). */
static inline vf pool_pick(vf best, vf cand) {
    return vsel((cand > best) | (cand != cand), cand, best);
}

/* pool_pick over four candidates in order. Without NaNs it is three maxima (vmax(cand, best)
 * keeps best on ties, as pool_pick does); one unordered compare tells whether any is NaN. */
static inline vf pool_max4(vf a, vf b, vf c, vf d) {
#if CVN_VW == 16
    const bool nan = _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_UNORD_Q) |
                     _mm512_cmp_ps_mask((__m512)c, (__m512)d, _CMP_UNORD_Q);
#elif CVN_VW == 8
    const bool nan =
        _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps((__m256)a, (__m256)b, _CMP_UNORD_Q),
                                        _mm256_cmp_ps((__m256)c, (__m256)d, _CMP_UNORD_Q)));
#else
    const bool nan = true;
#endif
    if (nan) return pool_pick(pool_pick(pool_pick(a, b), c), d);
    return vmax(d, vmax(c, vmax(b, a)));
}

/* The common 2x2 stride-2 window: a vector of outputs at a time. Each input row pair is split into
 * even and odd columns by shuffles, and the four candidates are compared in the generic loop's
 * order (strictly greater wins, NaN wins), so values and argmax agree with it exactly. */
static void maxpool2x2_plane(const cvn_window *w, float *y, int32_t *argmax, const float *in) {
    vi even = {0}, odd = {0}, lane = {0};
    for (int i = 0; i < VW; i++) even[i] = 2 * i, odd[i] = 2 * i + 1, lane[i] = 2 * i;
    for (int oy = 0; oy < w->oh; oy++) {
        const float *r0 = in + (int64_t)2 * oy * w->w, *r1 = r0 + w->w;
        for (int ox = 0; ox < w->ow; ox += VW) {
            int64_t m = w->ow - ox, cols = 2 * (m < VW ? m : VW);
            vf cand[4];
            for (int r = 0; r < 2; r++) {
                const float *row = (r ? r1 : r0) + 2 * ox;
                vf lo = vload(row, cols), hi = vload(row + VW, cols > VW ? cols - VW : 0);
                cand[2 * r] = __builtin_shuffle(lo, hi, even);
                cand[2 * r + 1] = __builtin_shuffle(lo, hi, odd);
            }
            vi base = lane + 2 * ox + 2 * oy * w->w;
            vi offs[4] = {base, base + 1, base + w->w, base + w->w + 1};
            vf best = cand[0];
            vi at = offs[0];
            for (int c = 1; c < 4; c++) {
                vi take = (cand[c] > best) | (cand[c] != cand[c]);
                best = vsel(take, cand[c], best);
                at = (take & offs[c]) | (~take & at);
            }
            float *yo = y + (int64_t)oy * w->ow + ox;
            int32_t *ao = argmax + (int64_t)oy * w->ow + ox;
            vstore(yo, best, m);
            vstore_i(ao, at, m);
        }
    }
}

static void k_maxpool_fwd(const cvn_window *w, int64_t planes, float *y, int32_t *argmax,
                          const float *x) {
    int64_t osz = (int64_t)w->oh * w->ow;
    if (w->kh == 2 && w->kw == 2 && w->sh == 2 && w->sw == 2 && w->ph == 0 && w->pw == 0 &&
        w->dh == 1 && w->dw == 1) {
#pragma omp parallel for if (planes * osz > PAR_MIN / 4) schedule(static)
        for (int64_t p = 0; p < planes; p++)
            maxpool2x2_plane(w, y + p * osz, argmax + p * osz, x + p * w->h * w->w);
        return;
    }
#pragma omp parallel for if (planes * osz > PAR_MIN / 4) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *in = x + p * w->h * w->w;
        for (int oy = 0; oy < w->oh; oy++)
            for (int ox = 0; ox < w->ow; ox++) {
                float best = -INFINITY;
                int32_t at = -1;
                for (int ki = 0; ki < w->kh; ki++) {
                    int iy = oy * w->sh - w->ph + ki * w->dh;
                    if (iy < 0 || iy >= w->h) continue;
                    for (int kj = 0; kj < w->kw; kj++) {
                        int ix = ox * w->sw - w->pw + kj * w->dw;
                        if (ix < 0 || ix >= w->w) continue;
                        float v = in[iy * w->w + ix];
                        /* NaN propagates as in PyTorch */
                        if (v > best || isnan(v) || at < 0) {
                            best = v;
                            at = iy * w->w + ix;
                        }
                    }
                }
                y[p * osz + oy * w->ow + ox] = best;
                argmax[p * osz + oy * w->ow + ox] = at;
            }
    }
}

/* Without add, each plane is zeroed just before its scatter, while it is in cache. */
static void k_maxpool_bwd(const cvn_window *w, int64_t planes, float *dx, const float *dy,
                          const int32_t *argmax, bool add) {
    int64_t osz = (int64_t)w->oh * w->ow, isz = (int64_t)w->h * w->w;
#pragma omp parallel for if (planes * osz > PAR_MIN / 4) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        if (!add)
            for (int64_t i = 0; i < isz; i += VW) vstore(dx + p * isz + i, vset(0.0f), isz - i);
        for (int64_t o = 0; o < osz; o++)
            if (argmax[p * osz + o] >= 0) dx[p * isz + argmax[p * osz + o]] += dy[p * osz + o];
    }
}

static void k_avgpool_fwd(const cvn_window *w, int64_t planes, float *y, const float *x) {
    int64_t osz = (int64_t)w->oh * w->ow;
    float inv = 1.0f / (float)(w->kh * w->kw);
#pragma omp parallel for if (planes * osz > PAR_MIN / 4) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *in = x + p * w->h * w->w;
        for (int oy = 0; oy < w->oh; oy++)
            for (int ox = 0; ox < w->ow; ox++) {
                float s = 0;
                for (int ki = 0; ki < w->kh; ki++) {
                    int iy = oy * w->sh - w->ph + ki;
                    if (iy < 0 || iy >= w->h) continue;
                    for (int kj = 0; kj < w->kw; kj++) {
                        int ix = ox * w->sw - w->pw + kj;
                        if (ix >= 0 && ix < w->w) s += in[iy * w->w + ix];
                    }
                }
                y[p * osz + oy * w->ow + ox] = s * inv;
            }
    }
}

static void k_avgpool_bwd(const cvn_window *w, int64_t planes, float *dx, const float *dy) {
    int64_t osz = (int64_t)w->oh * w->ow;
    float inv = 1.0f / (float)(w->kh * w->kw);
#pragma omp parallel for if (planes * osz > PAR_MIN / 4) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *d = dx + p * w->h * w->w;
        for (int oy = 0; oy < w->oh; oy++)
            for (int ox = 0; ox < w->ow; ox++) {
                float g = dy[p * osz + oy * w->ow + ox] * inv;
                for (int ki = 0; ki < w->kh; ki++) {
                    int iy = oy * w->sh - w->ph + ki;
                    if (iy < 0 || iy >= w->h) continue;
                    for (int kj = 0; kj < w->kw; kj++) {
                        int ix = ox * w->sw - w->pw + kj;
                        if (ix >= 0 && ix < w->w) d[iy * w->w + ix] += g;
                    }
                }
            }
    }
}

static void k_adaptive_avgpool_fwd(int64_t planes, int h, int w, int oh, int ow, float *y,
                                   const float *x) {
    const int64_t hw = (int64_t)h * w;
    if (oh == 1 && ow == 1) { /* global (squeeze-excite, the head): a vector sum per plane */
#pragma omp parallel for if (planes * hw > PAR_MIN) schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            const float *xp = x + p * hw;
            vf s0 = vset(0.0f), s1 = vset(0.0f);
            int64_t i = 0;
            for (; i + 2 * VW <= hw; i += 2 * VW)
                s0 += vload(xp + i, VW), s1 += vload(xp + i + VW, VW);
            for (; i < hw; i += VW) s0 += vload(xp + i, hw - i);
            y[p] = hsum(s0 + s1) / (float)hw;
        }
        return;
    }
#pragma omp parallel for if (planes * h * w > PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
                float s = 0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) s += x[(p * h + iy) * w + ix];
                y[(p * oh + oy) * ow + ox] = s / (float)((y1 - y0) * (x1 - x0));
            }
        }
}

static void k_adaptive_avgpool_bwd(int64_t planes, int h, int w, int oh, int ow, float *dx,
                                   const float *dy) {
    const int64_t hw = (int64_t)h * w;
    if (oh == 1 && ow == 1) { /* global: dx += dy / hw over the plane */
#pragma omp parallel for if (planes * hw > PAR_MIN) schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            const vf g = vset(dy[p] / (float)hw);
            float *dp = dx + p * hw;
            for (int64_t i = 0; i < hw; i += VW) vstore(dp + i, vload(dp + i, hw - i) + g, hw - i);
        }
        return;
    }
#pragma omp parallel for if (planes * h * w > PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
                float g = dy[(p * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dx[(p * h + iy) * w + ix] += g;
            }
        }
}

/* ------------------------------------------------------------------ batch norm */

static void k_bn_stats(int64_t n, int64_t c, int64_t hw, float *mean, float *var, const float *x) {
#pragma omp parallel for if (n * c * hw > PAR_MIN) schedule(static)
    for (int64_t ch = 0; ch < c; ch++) {
        vf acc = vset(0.0f);
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw;
            acc = vset(0.0f);
            for (int64_t j = 0; j < hw; j += VW) acc += vload(p + j, hw - j);
            s += hsum(acc);
        }
        float m = (float)(s / (double)(n * hw));
        double q = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw;
            acc = vset(0.0f);
            for (int64_t j = 0; j < hw; j += VW) {
                int64_t r = hw - j;
                vf d = vload(p + j, r) - m;
                for (int64_t l = r; l < VW; l++) d[l] = 0.0f;
                acc += d * d;
            }
            q += hsum(acc);
        }
        mean[ch] = m;
        var[ch] = (float)(q / (double)(n * hw));
    }
}

static void k_bn_prepare(bool training, int64_t c, float *mean, const float *var, float *invstd,
                         float *rm, float *rv, float momentum, float eps, float unbias) {
    for (int64_t i = 0; i < c; i++) {
        if (training) {
            invstd[i] = 1.0f / sqrtf(var[i] + eps);
            if (rm) rm[i] = (1.0f - momentum) * rm[i] + momentum * mean[i];
            if (rv) rv[i] = (1.0f - momentum) * rv[i] + momentum * var[i] * unbias;
        } else {
            mean[i] = rm[i];
            invstd[i] = 1.0f / sqrtf(rv[i] + eps);
        }
    }
}

static void k_bn_fwd(int64_t n, int64_t c, int64_t hw, float *y, const float *x, const float *mean,
                     const float *invstd, const float *gamma, const float *beta) {
#pragma omp parallel for collapse(2) if (n * c * hw > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            float sc = invstd[ch] * (gamma ? gamma[ch] : 1.0f);
            float sh = (beta ? beta[ch] : 0.0f) - mean[ch] * sc;
            const float *p = x + (i * c + ch) * hw;
            float *q = y + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; j += VW)
                vstore(q + j, vload(p + j, hw - j) * sc + sh, hw - j);
        }
}

/* With batch statistics (xhat = (x - mean) invstd, M = n hw):
 * dx = gamma invstd / M (M dy - sum dy - xhat sum(dy xhat)); dgamma = sum dy xhat; dbeta = sum dy.
 */
static void k_bn_bwd(bool batch_stats, int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma,
                     float *dbeta, const float *dy, const float *x, const float *mean,
                     const float *invstd, const float *gamma) {
    double m_count = (double)(n * hw);
#pragma omp parallel for if (n * c * hw > PAR_MIN) schedule(static)
    for (int64_t ch = 0; ch < c; ch++) {
        double sdy = 0, sdyx = 0;
        float mu = mean[ch], is = invstd[ch];
        for (int64_t i = 0; i < n; i++) {
            const float *g = dy + (i * c + ch) * hw, *p = x + (i * c + ch) * hw;
            vf a = vset(0.0f), b = vset(0.0f);
            for (int64_t j = 0; j < hw; j += VW) {
                int64_t r = hw - j;
                vf gv = vload(g + j, r), xh = (vload(p + j, r) - mu) * is;
                for (int64_t l = r; l < VW; l++) xh[l] = 0.0f;
                a += gv;
                b += gv * xh;
            }
            sdy += hsum(a);
            sdyx += hsum(b);
        }
        if (dbeta) dbeta[ch] += (float)sdy;
        if (dgamma) dgamma[ch] += (float)sdyx;
        if (!dx) continue;
        float gm = gamma ? gamma[ch] : 1.0f;
        float k = gm * is;
        float mdy = (float)(sdy / m_count), mdyx = (float)(sdyx / m_count);
        for (int64_t i = 0; i < n; i++) {
            const float *g = dy + (i * c + ch) * hw, *p = x + (i * c + ch) * hw;
            float *d = dx + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; j += VW) {
                int64_t r = hw - j;
                vf gv = vload(g + j, r);
                vf v;
                if (batch_stats) {
                    vf xh = (vload(p + j, r) - mu) * is;
                    v = k * (gv - mdy - xh * mdyx);
                } else {
                    v = k * gv;
                }
                vstore(d + j, vload(d + j, r) + v, r);
            }
        }
    }
}

/* ------------------------------------------------------------------ dropout, sum */

static void k_dropout_fwd(int64_t n, float *y, uint8_t *mask, const float *x, float p,
                          uint64_t seed) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        bool keep = cvn_counter_uniform(seed, (uint64_t)i) >= p;
        mask[i] = keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

static void k_dropout_bwd(int64_t n, float *dx, const float *dy, const uint8_t *mask, float scale) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] += mask[i] ? dy[i] * scale : 0.0f;
}

/* The update rules of torch.optim (SGD, Adam, AdamW, RMSprop, Rprop) over [i0, n), copied per
 * rule (kind constant: the switch leaves the loop); lanes past n compute on zeros and are never
 * stored. */
static inline __attribute__((always_inline)) void
update_span(cvn_update_kind kind, const cvn_update_params *p, int64_t i0, int64_t n, float *w,
            const float *g, float *s0, float *s1, float *s2) {
    for (int64_t i = i0; i < n; i += VW) {
        int64_t m = n - i;
        vf wv = vload(w + i, m), gv = vload(g + i, m);
        switch (kind) {
        case CVN_UPD_SGD: {
            gv += p->weight_decay * wv;
            if (p->momentum != 0.0f) {
                vf buf =
                    p->first ? gv : p->momentum * vload(s0 + i, m) + (1.0f - p->dampening) * gv;
                vstore(s0 + i, buf, m);
                gv = p->nesterov ? gv + p->momentum * buf : buf;
            }
            wv -= p->lr * gv;
            break;
        }
        case CVN_UPD_ADAM:
        case CVN_UPD_ADAMW: {
            if (kind == CVN_UPD_ADAMW)
                wv *= 1.0f - p->lr * p->weight_decay;
            else
                gv += p->weight_decay * wv;
            vf mv = p->beta1 * vload(s0 + i, m) + (1.0f - p->beta1) * gv;
            vf vv = p->beta2 * vload(s1 + i, m) + (1.0f - p->beta2) * gv * gv;
            vstore(s0 + i, mv, m);
            vstore(s1 + i, vv, m);
            if (p->amsgrad) {
                vv = vmax(vload(s2 + i, m), vv);
                vstore(s2 + i, vv, m);
            }
            vf denom = vsqrt(vv) / p->bias2_sqrt + p->eps;
            wv -= (p->lr / p->bias1) * mv / denom;
            break;
        }
        case CVN_UPD_RMSPROP: {
            gv += p->weight_decay * wv;
            vf sq = p->alpha * vload(s0 + i, m) + (1.0f - p->alpha) * gv * gv;
            vstore(s0 + i, sq, m);
            vf avg = sq;
            if (p->centered) {
                vf ga = p->alpha * vload(s2 + i, m) + (1.0f - p->alpha) * gv;
                vstore(s2 + i, ga, m);
                avg = sq - ga * ga;
            }
            avg = vsqrt(avg) + p->eps;
            if (p->momentum > 0.0f) {
                vf buf = p->momentum * vload(s1 + i, m) + gv / avg;
                vstore(s1 + i, buf, m);
                wv -= p->lr * buf;
            } else {
                wv -= p->lr * gv / avg;
            }
            break;
        }
        default: { /* Rprop: s0 previous gradient, s1 step size */
            vf prev = vload(s0 + i, m), step = vload(s1 + i, m), prod = gv * prev;
            vf zero = vset(0.0f), one = vset(1.0f);
            vf factor =
                vsel(prod > 0.0f, vset(p->eta_plus), vsel(prod < 0.0f, vset(p->eta_minus), one));
            step = vmin(vmax(step * factor, vset(p->step_min)), vset(p->step_max));
            gv = vsel(prod < 0.0f, zero, gv);
            vf sign = vsel(gv > 0.0f, one, vsel(gv < 0.0f, -one, zero));
            wv -= sign * step;
            vstore(s0 + i, gv, m);
            vstore(s1 + i, step, m);
        }
        }
        vstore(w + i, wv, m);
    }
}

/* One pass over the parameters, in chunks of whole vectors over the threads. */
static void k_optim_update(const cvn_update_params *p, int64_t n, float *w, const float *g,
                           float *s0, float *s1, float *s2) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) {
        int64_t e = n - c < CHUNK ? n : c + CHUNK;
#define RULE(K)                                                                                    \
    case K:                                                                                        \
        update_span(K, p, c, e, w, g, s0, s1, s2);                                                 \
        break
        switch (p->kind) {
            RULE(CVN_UPD_SGD);
            RULE(CVN_UPD_ADAM);
            RULE(CVN_UPD_ADAMW);
            RULE(CVN_UPD_RMSPROP);
        default:
            RULE(CVN_UPD_RPROP);
        }
#undef RULE
    }
}

/* Sum of x or of its squares, in blocks of 1024 accumulated in double. */
static double sum_blocks(int64_t n, const float *x, bool squares) {
    double total = 0;
#pragma omp parallel for if (n > PAR_MIN) reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; i += 1024) {
        vf acc = vset(0.0f);
        int64_t end = i + 1024 < n ? i + 1024 : n;
        for (int64_t j = i; j < end; j += VW) {
            vf v = vload(x + j, end - j);
            acc += squares ? v * v : v;
        }
        total += hsum(acc);
    }
    return total;
}

static double k_sum(int64_t n, const float *x) {
    return sum_blocks(n, x, false);
}
static double k_sum_sq(int count, const int64_t *n, const float *const *x) {
    double total = 0;
    for (int i = 0; i < count; i++) total += sum_blocks(n[i], x[i], true);
    return total;
}

static void k_clamp(int64_t n, float *x, float lo, float hi) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += VW) {
        int64_t m = n - i;
        vstore(x + i, vmin(vmax(vload(x + i, m), vset(lo)), vset(hi)), m);
    }
}

/* Direct 3x3 convolution, stride 1, padding 1, one group: no im2col, for the forward and both
 * gradients. The input gradient is itself such a convolution: of dy, with the weights transposed
 * ([o, c] -> [c, o]) and turned by 180 degrees; one kernel (c3_run) serves both. The weight
 * gradient has its own (c3_dw; with AVX2 and 4 or more input channels c3t_dw). */
/* Column-lane tiles (c3_rows): C3_OB output channels x C3_RB rows of vector sums, and the
 * C3_RB + 2 input rows they need, in registers. AVX2 has 16: 4 x 2 sums + 4 inputs + a weight
 * (4 x 4 spilled: conv2 64x32x14x14 forward 8.6 -> 4.3 ms, 2 x 4 4.7, 3 x 3 5.2, 5 x 2 4.7). */
#if CVN_VW == 8
#define C3_OB 4
#define C3_RB 2
#else
#define C3_OB 4
#define C3_RB 4
#endif
/* The weight gradient's tile: C3_DW_OB output channels x C3_DW_RB gradient rows, into
 * C3_DW_OB x 9 vector sums. AVX-512: 27 sums of the 32 registers, one row. AVX2: 9 sums of 16,
 * and four rows, so each shifted input row loaded serves up to three of them (one row made 10
 * loads per 9 FMAs). */
#if CVN_VW == 16
#define C3_DW_OB 3
#define C3_DW_RB 1
#else
#define C3_DW_OB 1
#define C3_DW_RB 4
#endif
/* Floats of zero-bordered copies of the images the weight gradient holds at once: 512 KiB, so a
 * block stays in a core's L2 cache while every task reads it. */
#define C3_DW_BLOCK 131072

static bool c3_fits(const cvn_conv_desc *d) {
    return d->kh == 3 && d->kw == 3 && d->sh == 1 && d->sw == 1 && d->ph == 1 && d->pw == 1 &&
           d->dh == 1 && d->dw == 1 && d->groups == 1;
}

/* c3_dw's planes: rows -1 .. h and on to a whole number of tiles, each a whole number of vectors
 * (so rows start aligned) with room for a tile's second vector. */
static int64_t c3_dw_row(int w) {
    return (int64_t)(w + 2 + VW - 1) / VW * VW + VW;
}
static int64_t c3_dw_rows(int h) {
    return (int64_t)(h + C3_DW_RB - 1) / C3_DW_RB * C3_DW_RB + 2;
}

/* Copies an h x w plane into rows [1, h], from column 1, of a rows x wp one whose other cells are
 * zero: all of them when zero (a fresh buffer), else only the copied cells (the border is still
 * zero from an earlier call). */
static void c3_pad(float *dst, const float *src, int h, int w, int64_t rows, int64_t wp,
                   bool zero) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = dst + r * wp;
        if (zero)
            for (int64_t i = 0; i < wp; i += VW) vstore(row + i, vset(0.0f), wp - i);
        if (r >= 1 && r <= h)
            for (int64_t i = 0; i < w; i += VW)
                vstore(row + 1 + i, vload(src + (r - 1) * w + i, w - i), w - i);
    }
}

/* One direct convolution over n images, ci -> co channels of h x w. The weight of output channel
 * k, input channel c and tap t is w[k * so + c * si + (flip ? 8 - t : t)]. */
typedef struct {
    int n, ci, co, h, w;
    int64_t so, si;
    bool flip;
    /* the forward's epilogue (cvn_conv_desc's): an activation at the tiles' stores, then, when
     * pool = 2, 2x2 max pooling before anything is written (see c3_rows and c3v_rows) */
    bool act_on;
    cvn_act_kind act;
    float alpha;
    int pool;
} c3_geom;

static inline vf c3_out(const c3_geom *g, vf v) {
    if (!g->act_on) return v;
    return g->act == CVN_K_RELU ? vmax(v, vset(0.0f)) : act(g->act, g->alpha, v);
}

/* How c3_run tiles a convolution: output channels per weight block, the padded plane's row length
 * and rows. With 16 lanes and enough input channels the lanes run along output channels instead
 * of columns (c3v_rows): no lanes wasted past a narrow image's width, and each broadcast input
 * value feeds two vectors of weights. With few input channels (a first layer), fewer than 16
 * output channels (a first layer's dx) or a width of whole vectors (no lanes to save: 7-column
 * tiles would waste some instead; 256x64x32x32 -> 128 ran 10 % slower) the column-lane tiles do
 * better. With 8 lanes (16 registers) and at least 16 input and output channels, lanes run along
 * output channels over tiles of consecutive pixels that wrap rows (c3p_tiles), except when pooling:
 * conv2 64x32x14x14 -> 64 dx 106 -> 115-119 GFLOP/s, 32x64x32x32 -> 128 forward and dx 10-16 %
 * faster; with 8 input or output channels they lost to the column tiles. */
typedef enum { C3_COLUMNS, C3_CHANNELS, C3_PIXELS } c3_lanes;
typedef struct {
    c3_lanes lanes;
    int ob;
    int64_t wp, rows;
} c3_tiling;

#if CVN_VW == 8
#define C3P_OB 16    /* output channels per tile: two vectors */
#define C3P_TP 6     /* pixels per tile: 12 sums, two weights and a broadcast of 16 registers */
#define C3P_MIN_C 16 /* and see c3_tile */
#endif
#if CVN_VW == 16
#define C3V_OB 32   /* two vectors of output channels */
#define C3V_TW 7    /* columns per tile: 14 accumulators (more spill) */
#define C3V_MIN_C 8 /* and see c3_tile */
#endif

static c3_tiling c3_tile(int ci, int co, int h, int w, bool pool) {
#if CVN_VW == 16
    if (ci >= C3V_MIN_C && co >= C3V_OB / 2 && w % VW)
        return (c3_tiling){C3_CHANNELS, C3V_OB, w + 2 + C3V_TW, h + 2};
#elif CVN_VW == 8
    if (ci >= C3P_MIN_C && co >= C3P_OB && !pool)
        return (c3_tiling){C3_PIXELS, C3P_OB, w + 2, h + 2};
#endif
    return (c3_tiling){C3_COLUMNS, C3_OB, w + 2 + VW, (int64_t)(h + C3_RB - 1) / C3_RB * C3_RB + 2};
}

/* Floats of a thread's staging rows: channel-lane tiles pool two rows of ob channels from there. */
static int64_t c3_stage(const c3_tiling *tl, bool pool, int w) {
    return pool && tl->lanes == C3_CHANNELS ? 2 * (int64_t)w * tl->ob : 0;
}

/* Scratch of c3_run: the repacked weights, and each thread's bordered image and staging rows. */
static int64_t c3_run_work(int ci, int co, int h, int w, bool pool) {
    c3_tiling tl = c3_tile(ci, co, h, w, pool);
    return (int64_t)(co + tl.ob - 1) / tl.ob * tl.ob * ci * 9 +
           (int64_t)omp_get_max_threads() * (ci * tl.rows * tl.wp + c3_stage(&tl, pool, w));
}

/* 2x2 max pooling of two rows of VW columns: the pooled column pairs in lanes [0, VW / 2), the
 * four candidates compared in maxpool2x2_plane's order. Needs VW >= 2. */
static inline vf pool_rows(vf r0, vf r1) {
    vi even = {0}, odd = {0};
    for (int l = 0; l < VW / 2; l++) even[l] = 2 * l, odd[l] = 2 * l + 1;
    return pool_max4(__builtin_shuffle(r0, even), __builtin_shuffle(r0, odd),
                     __builtin_shuffle(r1, even), __builtin_shuffle(r1, odd));
}

/* One image's output channels [o0, o0 + C3_OB) in column-lane tiles: C3_OB channels x C3_RB rows
 * x VW columns in C3_OB * C3_RB vector accumulators. For each input channel and kernel column,
 * the C3_RB + 2 input rows the tile needs are loaded once and each is multiplied by broadcast
 * weights into up to three of its rows in every channel. Lanes past the width compute garbage
 * that is never stored. */
static void c3_rows(const c3_geom *g, int o0, float *yo, const float *pad, int64_t wp,
                    int64_t pplane, const float *wb, const float *b, bool accumulate) {
    const int C = g->ci, H = g->h, W = g->w, O = g->co;
    const int64_t plane = (int64_t)H * W;
    const int valid = O - o0 < C3_OB ? O - o0 : C3_OB;
    for (int y0 = 0; y0 < H; y0 += C3_RB)
        for (int x0 = 0; x0 < W; x0 += VW) {
            vf acc[C3_OB][C3_RB];
#pragma GCC unroll 8
            for (int k = 0; k < C3_OB; k++) {
                vf bv = vset(b && !accumulate && k < valid ? b[o0 + k] : 0.0f);
#pragma GCC unroll 8
                for (int j = 0; j < C3_RB; j++)
                    acc[k][j] = accumulate && k < valid && y0 + j < H
                                    ? vload(yo + k * plane + (int64_t)(y0 + j) * W + x0, W - x0)
                                    : bv;
            }
            const float *src = pad + (int64_t)y0 * wp + x0, *wc = wb;
            for (int c = 0; c < C; c++, src += pplane, wc += 9 * C3_OB) {
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; kx++) {
                    vf in[C3_RB + 2];
#pragma GCC unroll 8
                    for (int r = 0; r < C3_RB + 2; r++) in[r] = vload(src + r * wp + kx, VW);
#pragma GCC unroll 3
                    for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 8
                        for (int k = 0; k < C3_OB; k++) {
                            vf wv = vset(wc[(ky * 3 + kx) * C3_OB + k]);
#pragma GCC unroll 8
                            for (int j = 0; j < C3_RB; j++)
                                acc[k][j] = vfma(in[j + ky], wv, acc[k][j]);
                        }
                }
            }
            if (g->pool) { /* yo is the pooled output: rows in pairs, columns in pairs */
                const int64_t ow = W / 2, oplane = (int64_t)(H / 2) * ow, m = (W - x0) / 2;
                float *out = yo + (int64_t)y0 / 2 * ow + x0 / 2;
                /* constant trip counts keep acc in registers */
#pragma GCC unroll 8
                for (int k = 0; k < C3_OB; k++)
#pragma GCC unroll 8
                    for (int j = 0; j < C3_RB; j += 2)
                        if (k < valid && y0 + j + 1 < H)
                            vstore(out + k * oplane + j / 2 * ow,
                                   pool_rows(c3_out(g, acc[k][j]), c3_out(g, acc[k][j + 1])),
                                   m < VW / 2 ? m : VW / 2);
                continue;
            }
#pragma GCC unroll 8
            for (int k = 0; k < C3_OB; k++)
#pragma GCC unroll 8
                for (int j = 0; j < C3_RB; j++)
                    if (k < valid && y0 + j < H)
                        vstore(yo + k * plane + (int64_t)(y0 + j) * W + x0, c3_out(g, acc[k][j]),
                               W - x0);
        }
}

#if CVN_VW == 16
/* Pools two staged rows of C3V_OB channels ([2][w][C3V_OB], channels innermost) 2x2 into output
 * row `out` of each of the valid channels' planes (oplane apart). */
static void c3v_pool_row(const float *st, int w, float *out, int64_t oplane, int valid) {
    float best[C3V_OB] __attribute__((aligned(64)));
    for (int ox = 0; ox < w / 2; ox++) {
        for (int h = 0; h < C3V_OB; h += VW) {
            const float *p = st + (int64_t)2 * ox * C3V_OB + h, *q = p + (int64_t)w * C3V_OB;
            vstore(
                best + h,
                pool_max4(vload(p, VW), vload(p + C3V_OB, VW), vload(q, VW), vload(q + C3V_OB, VW)),
                VW);
        }
        for (int k = 0; k < valid; k++) out[k * oplane + ox] = best[k];
    }
}

/* The same in channel-lane tiles: C3V_TW columns of one row x C3V_OB channels in 2 * C3V_TW
 * accumulators; per input channel and tap, two weight vectors and C3V_TW broadcast inputs make
 * 2 * C3V_TW FMAs. A tile goes out through a small buffer, transposed to NCHW; when pooling, rows
 * go to `staged` as they are (channels innermost) and each pair is pooled from there, so only the
 * pooled quarter is transposed (an odd last row, which pooling drops, is not computed). */
static void c3v_rows(const c3_geom *g, int o0, float *yo, float *staged, const float *pad,
                     int64_t wp, int64_t pplane, const float *wb, const float *b, bool accumulate) {
    const int C = g->ci, H = g->h, W = g->w, O = g->co;
    const int64_t plane = (int64_t)H * W, oplane = (int64_t)(H / 2) * (W / 2);
    const int valid = O - o0 < C3V_OB ? O - o0 : C3V_OB, rows = g->pool ? H / 2 * 2 : H;
    float tile[C3V_TW][C3V_OB] __attribute__((aligned(64)));
    vf b0 = vset(0.0f), b1 = vset(0.0f);
    if (b && !accumulate) {
        b0 = vload(b + o0, valid);
        if (valid > VW) b1 = vload(b + o0 + VW, valid - VW);
    }
    for (int r = 0; r < rows; r++) {
        for (int x0 = 0; x0 < W; x0 += C3V_TW) {
            vf a0[C3V_TW], a1[C3V_TW];
#pragma GCC unroll 8
            for (int j = 0; j < C3V_TW; j++) a0[j] = b0, a1[j] = b1;
            const float *src = pad + (int64_t)r * wp + x0, *wc = wb;
            for (int c = 0; c < C; c++, src += pplane)
#pragma GCC unroll 3
                for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
                    for (int kx = 0; kx < 3; kx++, wc += C3V_OB) {
                        const vf w0 = vload(wc, VW), w1 = vload(wc + VW, VW);
                        const float *in = src + ky * wp + kx;
#pragma GCC unroll 8
                        for (int j = 0; j < C3V_TW; j++) {
                            const vf v = vset(in[j]);
                            a0[j] = vfma(v, w0, a0[j]);
                            a1[j] = vfma(v, w1, a1[j]);
                        }
                    }
            const int m = W - x0 < C3V_TW ? W - x0 : C3V_TW;
            if (g->pool) {
                float *st = staged + ((int64_t)(r & 1) * W + x0) * C3V_OB;
#pragma GCC unroll 8
                for (int j = 0; j < C3V_TW; j++) /* a constant count keeps a0, a1 in registers */
                    if (j < m) {
                        vstore(st + j * C3V_OB, c3_out(g, a0[j]), VW);
                        vstore(st + j * C3V_OB + VW, c3_out(g, a1[j]), VW);
                    }
                continue;
            }
#pragma GCC unroll 8
            for (int j = 0; j < C3V_TW; j++) {
                vstore(tile[j], c3_out(g, a0[j]), VW);
                vstore(tile[j] + VW, c3_out(g, a1[j]), VW);
            }
            for (int k = 0; k < valid; k++) {
                float *out = yo + k * plane + (int64_t)r * W + x0;
                for (int j = 0; j < m; j++) out[j] = accumulate ? out[j] + tile[j][k] : tile[j][k];
            }
        }
        if (g->pool && (r & 1)) c3v_pool_row(staged, W, yo + (r / 2) * (W / 2), oplane, valid);
    }
}
#endif

#if CVN_VW == 8
/* One image's output channels [o0, o0 + C3P_OB) with the lanes along channels and tiles of C3P_TP
 * consecutive pixels of the plane, which may wrap to the next row (each pixel its own pointer into
 * the bordered image), so no lane or column is wasted on a width that is not a multiple of the
 * tile: per input channel and tap, two weight vectors and C3P_TP broadcast inputs make
 * 2 * C3P_TP FMAs. A tile goes out through a small buffer, transposed to NCHW; its pixels are
 * contiguous there. No pooling epilogue (c3_tile sends those to column tiles). */
static void c3p_tiles(const c3_geom *g, int o0, float *yo, const float *pad, int64_t wp,
                      int64_t pplane, const float *wb, const float *b, bool accumulate) {
    const int C = g->ci, W = g->w, O = g->co;
    const int64_t plane = (int64_t)g->h * W, span = C * pplane;
    const int valid = O - o0 < C3P_OB ? O - o0 : C3P_OB;
    float tile[C3P_TP][C3P_OB] __attribute__((aligned(32)));
    vf b0 = vset(0.0f), b1 = vset(0.0f);
    if (b && !accumulate) {
        b0 = vload(b + o0, valid);
        if (valid > VW) b1 = vload(b + o0 + VW, valid - VW);
    }
    for (int64_t p0 = 0; p0 < plane; p0 += C3P_TP) {
        const float *src[C3P_TP];
        for (int j = 0; j < C3P_TP; j++) { /* pixels past the plane repeat its last, unstored */
            const int64_t p = p0 + j < plane ? p0 + j : plane - 1;
            src[j] = pad + p / W * wp + p % W;
        }
        vf a0[C3P_TP], a1[C3P_TP];
#pragma GCC unroll 6
        for (int j = 0; j < C3P_TP; j++) a0[j] = b0, a1[j] = b1;
        const float *wc = wb;
        for (int64_t off = 0; off < span; off += pplane)
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; kx++, wc += C3P_OB) {
                    const vf w0 = vload(wc, VW), w1 = vload(wc + VW, VW);
                    const int64_t at = off + ky * wp + kx;
#pragma GCC unroll 6
                    for (int j = 0; j < C3P_TP; j++) {
                        const vf v = vset(src[j][at]);
                        a0[j] = vfma(v, w0, a0[j]);
                        a1[j] = vfma(v, w1, a1[j]);
                    }
                }
#pragma GCC unroll 6
        for (int j = 0; j < C3P_TP; j++) {
            vstore(tile[j], c3_out(g, a0[j]), VW);
            vstore(tile[j] + VW, c3_out(g, a1[j]), VW);
        }
        const int m = plane - p0 < C3P_TP ? (int)(plane - p0) : C3P_TP;
        for (int k = 0; k < valid; k++) {
            float *out = yo + k * plane + p0;
            for (int j = 0; j < m; j++) out[j] = accumulate ? out[j] + tile[j][k] : tile[j][k];
        }
    }
}
#endif

/* The 9 x ou block of repacked weights of input channel c and output channels [o0, o0 + ou):
 * dst[t * ou + k] is tap t of output channel o0 + k (zero past the last channel), gathered a
 * vector of channels at a time. */
static void c3_repack(float *dst, const c3_geom *g, const float *w, int o0, int c, int ou) {
    const float *src = w + (int64_t)o0 * g->so + (int64_t)c * g->si;
    for (int k = 0; k < ou; k += VW) {
        vi idx = {0};
        for (int l = 0; l < VW; l++) idx[l] = (int32_t)((k + l) * g->so);
        const int64_t m = g->co - o0 - k; /* channels that exist */
        for (int t = 0; t < 9; t++)
            vstore(dst + t * ou + k, vgather(src + (g->flip ? 8 - t : t), idx, m), ou - k);
    }
}

/* y = conv(x) + b (b may be NULL), or y += conv(x) when accumulate (b unused). Each task copies its
 * image into zero-bordered planes (so loads need no masks or bounds checks) and runs c3_rows or
 * c3v_rows over a range of weight blocks; weights are repacked so a block's 9 * ob weights per
 * input channel are contiguous (zero past the last channel). Tasks are (image, range of blocks):
 * whole images when there are enough of them for the threads. */
static void c3_run(const c3_geom *g, float *y, const float *x, const float *w, const float *b,
                   bool accumulate, float *work) {
    const int C = g->ci, H = g->h, W = g->w, O = g->co;
    const c3_tiling tl = c3_tile(C, O, H, W, g->pool);
    const int ou = tl.ob, n_ob = (O + ou - 1) / ou;
    const int64_t plane = (int64_t)H * W, pplane = tl.rows * tl.wp;
    const int threads = omp_get_max_threads();
    const int64_t stage = c3_stage(&tl, g->pool, W), oplane = g->pool ? (H / 2) * (W / 2) : plane;
    float *wpk = work, *pads = work + (int64_t)n_ob * C * 9 * ou;
    int splits = g->n >= threads ? 1 : (threads + g->n - 1) / g->n;
    if (splits > n_ob) splits = n_ob;
    const int64_t tasks = (int64_t)g->n * splits;
    const bool par = tasks > 1 && (int64_t)g->n * O * C * plane * 9 > 16 * PAR_MIN;
#pragma omp parallel if (par) num_threads(threads)
    {
        float *pad = pads + (int64_t)omp_get_thread_num() * (C * pplane + stage);
        bool padded = false;
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < (int64_t)n_ob * C; blk++)
            c3_repack(wpk + blk * 9 * ou, g, w, (int)(blk / C) * ou, (int)(blk % C), ou);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; task++) {
            const int64_t n = task / splits;
            const int part = (int)(task % splits), ob0 = (int)((int64_t)n_ob * part / splits),
                      ob1 = (int)((int64_t)n_ob * (part + 1) / splits);
            for (int c = 0; c < C; c++) /* the border is zeroed by a thread's first task only */
                c3_pad(pad + c * pplane, x + (n * C + c) * plane, H, W, tl.rows, tl.wp, !padded);
            padded = true;
            for (int ob = ob0; ob < ob1; ob++) {
                const float *wb = wpk + (int64_t)ob * C * 9 * ou;
                float *yo = y + (n * O + (int64_t)ob * ou) * oplane;
#if CVN_VW == 16
                if (tl.lanes == C3_CHANNELS) {
                    c3v_rows(g, ob * ou, yo, pad + C * pplane, pad, tl.wp, pplane, wb, b,
                             accumulate);
                    continue;
                }
#endif
#if CVN_VW == 8
                if (tl.lanes == C3_PIXELS) {
                    c3p_tiles(g, ob * ou, yo, pad, tl.wp, pplane, wb, b, accumulate);
                    continue;
                }
#endif
                c3_rows(g, ob * ou, yo, pad, tl.wp, pplane, wb, b, accumulate);
            }
        }
    }
}

/* With 8 lanes the weight gradient runs its lanes along output channels (c3t_dw): C3T_OB of them
 * (two vectors) x C3T_PAIRS (input channel, tap) pairs per task, 12 vector sums of the 16
 * registers. Per pixel two gradient vectors and six broadcast inputs make 12 FMAs, and no lanes
 * are wasted past a narrow image's width. The gradient is transposed to [pixel][channel] first. */
#if CVN_VW == 8
#define C3T_DW 1
#define C3T_OB 16
#define C3T_PAIRS 6
#else
#define C3T_DW 0
#define C3T_OB 1
#endif

/* With fewer input channels the transpose costs about as much as the sums it feeds (64 images of
 * 1 x 28 x 28 -> 32: 0.6 ms by columns, 1.1 ms by channels; 3 x 32 x 32 -> 32 even, 8 x 16 x 16
 * -> 16 by channels 1.3-1.6x faster). */
#define C3T_MIN_C 4
static bool c3t_fits(const cvn_conv_desc *d) {
    return C3T_DW && d->c >= C3T_MIN_C;
}
/* Whether c3t_dw runs its lanes along x's channels (see there). */
static bool c3t_swaps(const cvn_conv_desc *d) {
    return d->kh == 1 && d->c < d->o;
}

/* Output channels of c3t_dw's transposed gradient: whole tasks (zero past the last channel). */
static int64_t c3t_channels(int o) {
    return (int64_t)(o + C3T_OB - 1) / C3T_OB * C3T_OB;
}

/* Floats of c3t_dw's transposed tensor per image (dy's channels, or x's when it swaps). */
static int64_t c3t_image(const cvn_conv_desc *d) {
    return c3t_fits(d) ? (int64_t)d->h * d->w * c3t_channels(c3t_swaps(d) ? d->c : d->o) : 0;
}

/* Floats the weight gradient reads per image (sizing a block to the cache): its bordered planes (a
 * pointwise convolution's c3t_dw reads x in place, but its planes count here too), and with C3T_DW
 * its transposed tensor. */
static int64_t c3_dw_image(const cvn_conv_desc *d) {
    const int64_t planes = d->kh == 1 ? (int64_t)d->h * d->w : c3_dw_rows(d->h) * c3_dw_row(d->w);
    return d->c * planes + c3t_image(d);
}

/* Images per block of the weight gradient. */
static int c3_dw_block(const cvn_conv_desc *d) {
    int64_t nb = C3_DW_BLOCK / c3_dw_image(d);
    return nb < 1 ? 1 : nb > d->n ? d->n : (int)nb;
}

/* The vectors at p, p + 1 and p + 2 (p aligned where the scratch is). Loads at p + 1 and p + 2
 * would each span two cache lines, which halved the weight gradient's speed: with 16 lanes they are
 * made from the two aligned vectors by lane shifts instead. */
static inline void c3_shifted_row(vf in[3], const float *p) {
#if CVN_VW == 16
    __m512i a = (__m512i)vload(p, VW), b = (__m512i)vload(p + VW, VW);
    in[0] = (vf)a;
    in[1] = (vf)_mm512_alignr_epi32(b, a, 1);
    in[2] = (vf)_mm512_alignr_epi32(b, a, 2);
#else
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; kx++) in[kx] = vload(p + kx, VW);
#endif
}

/* db += the sums of dy's planes, one output channel per iteration of a work-sharing loop: call it
 * from inside a parallel region (or outside one, on this thread). */
static void conv_db(const cvn_conv_desc *d, float *db, const float *dy) {
    const int64_t plane = (int64_t)d->oh * d->ow;
#pragma omp for schedule(static)
    for (int oc = 0; oc < d->o; oc++) {
        vf s = vset(0.0f);
        for (int64_t n = 0; n < d->n; n++) {
            const float *gp = dy + (n * d->o + oc) * plane;
            for (int64_t i = 0; i < plane; i += VW) s += vload(gp + i, plane - i);
        }
        db[oc] += hsum(s);
    }
}

/* dw += the sum over images and pixels of dy times each tap's shifted input; db += the sum of dy.
 * Images go in blocks (c3_dw_block) copied into zero-bordered planes; within a block, tasks are
 * C3_DW_OB output channels x one input channel, each multiplying gradient rows (masked at the
 * width) by the nine shifted input rows into C3_DW_OB x 9 vector sums, added to dw per block. */
static void c3_dw(const cvn_conv_desc *d, float *dw, float *db, const float *dy, const float *x) {
    const int C = d->c, H = d->h, W = d->w, O = d->o, n_ob = (O + C3_DW_OB - 1) / C3_DW_OB;
    const int64_t plane = (int64_t)H * W, wp = c3_dw_row(W), pplane = c3_dw_rows(H) * wp;
    const int nb = c3_dw_block(d);
    const int64_t tasks = (int64_t)n_ob * C;
    const bool par = (int64_t)d->n * O * C * plane * 9 > 16 * PAR_MIN;
    float *pads = d->work;
#pragma omp parallel if (par)
    {
        for (int n0 = 0; n0 < d->n && dw; n0 += nb) {
            const int cnt = d->n - n0 < nb ? d->n - n0 : nb;
#pragma omp for schedule(static)
            for (int64_t p = 0; p < (int64_t)cnt * C; p++)
                c3_pad(pads + p * pplane, x + ((int64_t)n0 * C + p) * plane, H, W, c3_dw_rows(H),
                       wp, true);
#pragma omp for schedule(static)
            for (int64_t task = 0; task < tasks; task++) {
                const int ob = (int)(task / C), c = (int)(task % C), o0 = ob * C3_DW_OB;
                const int valid = O - o0 < C3_DW_OB ? O - o0 : C3_DW_OB;
                vf acc[C3_DW_OB][9];
#pragma GCC unroll 4
                for (int k = 0; k < C3_DW_OB; k++)
#pragma GCC unroll 9
                    for (int t = 0; t < 9; t++) acc[k][t] = vset(0.0f);
                for (int i = 0; i < cnt; i++) {
                    const float *xp = pads + ((int64_t)i * C + c) * pplane, *g[C3_DW_OB];
                    for (int k = 0; k < C3_DW_OB; k++)
                        g[k] = dy + ((int64_t)(n0 + i) * O + o0 + (k < valid ? k : 0)) * plane;
                    for (int y0 = 0; y0 < H; y0 += C3_DW_RB)
                        for (int x0 = 0; x0 < W; x0 += VW) {
                            vf gv[C3_DW_OB][C3_DW_RB]; /* rows past the last are zero */
#pragma GCC unroll 4
                            for (int k = 0; k < C3_DW_OB; k++)
#pragma GCC unroll 4
                                for (int j = 0; j < C3_DW_RB; j++)
                                    gv[k][j] = y0 + j < H ? vload(g[k] + (int64_t)(y0 + j) * W + x0,
                                                                  W - x0)
                                                          : vset(0.0f);
                            const float *src = xp + (int64_t)y0 * wp + x0;
                            /* input row r feeds gradient row j = r - ky through tap row ky */
#pragma GCC unroll 6
                            for (int r = 0; r < C3_DW_RB + 2; r++) {
                                vf in[3];
                                c3_shifted_row(in, src + r * wp);
#pragma GCC unroll 3
                                for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
                                    for (int kx = 0; kx < 3; kx++)
#pragma GCC unroll 4
                                        for (int k = 0; k < C3_DW_OB; k++)
                                            if (r - ky >= 0 && r - ky < C3_DW_RB)
                                                acc[k][ky * 3 + kx] = vfma(gv[k][r - ky], in[kx],
                                                                           acc[k][ky * 3 + kx]);
                            }
                        }
                }
                /* constant trip counts keep acc in registers (a loop to valid spills it) */
#pragma GCC unroll 4
                for (int k = 0; k < C3_DW_OB; k++)
#pragma GCC unroll 9
                    for (int t = 0; t < 9; t++)
                        if (k < valid) dw[((int64_t)(o0 + k) * C + c) * 9 + t] += hsum(acc[k][t]);
            }
        }
        if (db) conv_db(d, db, dy);
    }
}

#if C3T_DW
/* An 8 x 8 block of the gradient turned to pixels x channels: rows r < ch (channels) of src, VW
 * pixels each (px of them exist; rows plane apart), to the px rows of dst, C3T_OB apart. Channels
 * past ch come out zero. */
static void c3t_transpose(float *dst, const float *src, int64_t plane, int ch, int64_t px) {
    __m256 r[8];
    for (int k = 0; k < 8; k++)
        r[k] = k < ch ? (__m256)vload(src + k * plane, px) : _mm256_setzero_ps();
    __m256 t[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    __m256 u[8];
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) { /* pixel q from the low 128-bit halves, q + 4 from the high */
        if (q < px)
            _mm256_storeu_ps(dst + q * C3T_OB, _mm256_permute2f128_ps(u[q], u[q + 4], 0x20));
        if (q + 4 < px)
            _mm256_storeu_ps(dst + (q + 4) * C3T_OB, _mm256_permute2f128_ps(u[q], u[q + 4], 0x31));
    }
}

/* dw += the sum over images and pixels of dy times each tap's shifted input, with the lanes along
 * channels, for a 3x3 convolution or (kh = 1) a pointwise one. Per block of images, the lanes'
 * tensor is turned to gt[channel block][image][pixel][C3T_OB channels] (zero past the last
 * channel), and tasks of C3T_OB of its channels x C3T_PAIRS consecutive (channel, tap) pairs of
 * the other tensor, each pair a pointer into its planes, stream their channel block's gt. The lanes
 * run along dy's output channels, the pairs over x's bordered planes (as c3_dw's); a pointwise
 * convolution with fewer input than output channels (an expansion) turns x instead, the smaller,
 * and takes dy's planes as they are (so do pointwise ones' x planes). */
static void c3t_dw(const cvn_conv_desc *d, float *dw, const float *dy, const float *x) {
    const bool bordered = d->kh == 3, swap = c3t_swaps(d);
    const float *lt = swap ? x : dy, *pt = swap ? dy : x; /* the lanes' and the pairs' tensors */
    const int L = swap ? d->c : d->o, P = swap ? d->o : d->c, H = d->h, W = d->w;
    const int taps = bordered ? 9 : 1, pairs = P * taps;
    const int64_t plane = (int64_t)H * W, wp = bordered ? c3_dw_row(W) : W,
                  rows = bordered ? c3_dw_rows(H) : H, pplane = rows * wp, oc = c3t_channels(L);
    const int64_t ks = swap ? 1 : pairs, ps = swap ? d->c : 1; /* dw[lane k * ks + pair * ps] */
    const int nb = c3_dw_block(d), n_ob = (int)(oc / C3T_OB),
              groups = (pairs + C3T_PAIRS - 1) / C3T_PAIRS;
    const int64_t tasks = (int64_t)n_ob * groups;
    float *pads = d->work, *gt = bordered ? pads + (int64_t)nb * P * pplane : d->work;
#pragma omp parallel if ((int64_t)d->n * L * pairs * plane > 16 * PAR_MIN)
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        const int cnt = d->n - n0 < nb ? d->n - n0 : nb;
        const float *planes = bordered ? pads : pt + (int64_t)n0 * P * plane;
#pragma omp for schedule(static) nowait
        for (int64_t p = 0; p < (bordered ? (int64_t)cnt * P : 0); p++)
            c3_pad(pads + p * pplane, pt + ((int64_t)n0 * P + p) * plane, H, W, rows, wp, true);
        const int64_t strips = (plane + VW - 1) / VW; /* of VW pixels */
#pragma omp for schedule(static)
        for (int64_t job = 0; job < cnt * n_ob * strips; job++) {
            const int64_t ib = job / strips, p0 = job % strips * VW, i = ib % cnt;
            const int ob = (int)(ib / cnt);
            for (int h = 0; h < C3T_OB / VW; h++)
                c3t_transpose(gt + ((int64_t)ob * cnt + i) * plane * C3T_OB + p0 * C3T_OB + h * VW,
                              lt + ((n0 + i) * L + ob * C3T_OB + h * VW) * plane + p0, plane,
                              L - ob * C3T_OB - h * VW, plane - p0);
        }
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; task++) {
            const int ob = (int)(task / groups), first = (int)(task % groups) * C3T_PAIRS;
            const float *src[C3T_PAIRS];
            for (int j = 0; j < C3T_PAIRS; j++) { /* pairs past the last repeat it, unstored */
                const int pr = first + j < pairs ? first + j : pairs - 1, t = pr % taps;
                src[j] = planes + (int64_t)(pr / taps) * pplane + (t / 3) * wp + t % 3;
            }
            vf acc[2][C3T_PAIRS];
#pragma GCC unroll 6
            for (int j = 0; j < C3T_PAIRS; j++) acc[0][j] = acc[1][j] = vset(0.0f);
            for (int i = 0; i < cnt; i++) {
                const float *gi = gt + ((int64_t)ob * cnt + i) * plane * C3T_OB;
                const int64_t ioff = (int64_t)i * P * pplane;
                for (int y = 0; y < H; y++)
                    for (int xx = 0; xx < W; xx++) {
                        const float *gp = gi + ((int64_t)y * W + xx) * C3T_OB;
                        const vf g0 = vload(gp, VW), g1 = vload(gp + VW, VW);
                        const int64_t off = ioff + (int64_t)y * wp + xx;
#pragma GCC unroll 6
                        for (int j = 0; j < C3T_PAIRS; j++) {
                            const vf v = vset(src[j][off]);
                            acc[0][j] = vfma(g0, v, acc[0][j]);
                            acc[1][j] = vfma(g1, v, acc[1][j]);
                        }
                    }
            }
            float sums[2][C3T_PAIRS][VW];
#pragma GCC unroll 6
            for (int j = 0; j < C3T_PAIRS; j++)
                vstore(sums[0][j], acc[0][j], VW), vstore(sums[1][j], acc[1][j], VW);
            for (int j = 0; j < C3T_PAIRS && first + j < pairs; j++)
                for (int k = 0; k < C3T_OB && ob * C3T_OB + k < L; k++)
                    dw[(ob * C3T_OB + k) * ks + (first + j) * ps] += sums[k / VW][j][k % VW];
        }
    }
}
#endif

/* Depthwise convolution (groups = input = output channels): square kernels up to DWC_KMAX, stride
 * 1 or 2, padding below the kernel, no dilation; im2col + GEMM would run one GEMM of a single row
 * per channel. A plane is copied into a zero-bordered buffer split by column phase (padded column
 * j * s + q goes to phase q, column j), so every tap of a vector of outputs is one contiguous
 * load: output (oy, ox) with tap (ky, kx) reads phase kx % s, row oy * s + ky, column
 * ox + kx / s. At stride 1 dx is the same convolution of dy (bordered by k - 1 - p) with the
 * kernels turned by 180 degrees; at stride 2 it is the gather run backwards: each bordered input
 * cell of phase q sums w[ky][q + 2 m] * dy[(r - ky) / 2][j - m] over the taps that reach it, read
 * from a zero-bordered copy of dy, and the cells go back to NCHW. A forward tile is up to DWC_RB
 * output rows sharing each tap's broadcast weight and offset. */
#define DWC_KMAX 7

static bool dwc_fits(const cvn_conv_desc *d) {
    return d->groups == d->c && d->o == d->c && d->kh == d->kw && d->kh <= DWC_KMAX &&
           d->sh == d->sw && (d->sh == 1 || d->sh == 2) && d->ph == d->pw && d->ph < d->kh &&
           d->dh == 1 && d->dw == 1;
}

typedef struct {
    int k, s, p;
    int64_t rows, wpp, phase; /* bordered rows in use, columns per phase row, floats per phase */
    int64_t t, dwp, dplane;   /* dy's border (rows and columns), row length and plane */
} dwc_geom;

static dwc_geom dwc_geom_of(const cvn_conv_desc *d) {
    dwc_geom g = {d->kh, d->sh, d->ph, 0, 0, 0, 0, 0, 0};
    g.rows = (int64_t)(d->oh - 1) * g.s + g.k;
    g.wpp = (int64_t)(d->ow + VW - 1) / VW * VW + (g.k - 1) / g.s + VW;
    g.phase = g.rows * g.wpp;
    g.t = (g.k - 1) / g.s;
    g.dwp = g.t + g.wpp + VW;
    g.dplane = (d->oh + 2 * g.t + 1) * g.dwp;
    return g;
}

/* A thread's scratch: the phase buffer, and (dx) the bordered dy. */
static int64_t dwc_thread_floats(const dwc_geom *g) {
    return g->s * g->phase + g->dplane;
}

/* The h x w plane src into the phase buffer buf (input cell (iy, ix) at bordered row iy + p,
 * column ix + p); cells no output reads are left out. The buffer is zeroed first when zero, else
 * its border is still zero from an earlier plane of the same geometry (the same cells are
 * written every time): a thread zeroes it for its first plane only, which on 4 x 4 planes was
 * half of the forward's time. */
static void dwc_pad(float *buf, const dwc_geom *g, const float *src, int h, int w, bool zero) {
    if (zero) memset(buf, 0, (size_t)(g->s * g->phase) * sizeof(float));
    for (int iy = 0; iy < h && iy + g->p < g->rows; iy++) {
        const float *row = src + (int64_t)iy * w;
        float *dst = buf + (iy + g->p) * g->wpp;
        if (g->s == 1) {
            memcpy(dst + g->p, row,
                   (size_t)(w < g->wpp - g->p ? w : g->wpp - g->p) * sizeof(float));
            continue;
        }
        for (int ix = 0; ix < w; ix++) { /* stride 2: column ix + p */
            const int64_t col = ix + g->p, j = col >> 1;
            if (j < g->wpp) dst[(col & 1) * g->phase + j] = row[ix];
        }
    }
}

/* Each tap's offset from the bordered row of an output (the same for every plane: computed once a
 * call, as its divisions cost more than a 4 x 4 plane's sums). */
static void dwc_taps(const dwc_geom *g, int64_t *off) {
    for (int ky = 0; ky < g->k; ky++)
        for (int kx = 0; kx < g->k; kx++)
            off[ky * g->k + kx] = ky * g->wpp + (kx % g->s) * g->phase + kx / g->s;
}

/* Output rows [oy0, oy0 + nr) of one vector of columns from ox0: nr rows share each tap's weight
 * broadcast and offset, and even and odd taps sum in separate chains (2 nr of them). */
#define DWC_RB 4
static inline __attribute__((always_inline)) void
dwc_rows(const dwc_geom *g, const int nr, const cvn_conv_desc *d, float *yo, const float *buf,
         int oy0, int ox0, const float *wc, const int64_t *off, float bias, bool add) {
    const int kk = g->k * g->k, ow = d->ow;
    const int64_t step = g->s * g->wpp; /* bordered rows from one output row to the next */
    const float *row = buf + oy0 * step + ox0;
    vf a[DWC_RB], e[DWC_RB];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) a[r] = vset(bias), e[r] = vset(0.0f);
    int t = 0;
    for (; t + 1 < kk; t += 2) {
        const vf w0 = vset(wc[t]), w1 = vset(wc[t + 1]);
        const float *p0 = row + off[t], *p1 = row + off[t + 1];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            a[r] = vfma(w0, vload(p0 + r * step, VW), a[r]);
            e[r] = vfma(w1, vload(p1 + r * step, VW), e[r]);
        }
    }
    if (t < kk) { /* an odd count: the last tap */
        const vf w0 = vset(wc[t]);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) a[r] = vfma(w0, vload(row + off[t] + r * step, VW), a[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) {
        float *out = yo + (int64_t)(oy0 + r) * ow + ox0;
        vf v = a[r] + e[r];
        if (add) v += vload(out, ow - ox0);
        if (d->act_on) v = act(d->act, d->alpha, v);
        vstore(out, v, ow - ox0);
    }
}

/* y = depthwise conv(x) + b, with the descriptor's activation (no pooling); y += it when add; the
 * kernels turned by 180 degrees when flip (dx at stride 1, see dwc_dx). */
static void dwc_run(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                    const float *b, bool flip, bool add) {
    const dwc_geom g = dwc_geom_of(d);
    const int k = g.k, kk = k * k, ow = d->ow, oh = d->oh;
    const int64_t plane = (int64_t)d->h * d->w, oplane = (int64_t)oh * ow;
#pragma omp parallel if ((int64_t)d->n * d->c * oplane * k * k > 4 * PAR_MIN)
    {
        float *buf = d->work + omp_get_thread_num() * dwc_thread_floats(&g);
        bool padded = false;
        int64_t off[DWC_KMAX * DWC_KMAX];
        dwc_taps(&g, off);
#pragma omp for schedule(static)
        for (int64_t nc = 0; nc < (int64_t)d->n * d->c; nc++) {
            const int c = (int)(nc % d->c);
            const float *wc = w + (int64_t)c * kk, bias = b ? b[c] : 0.0f;
            float turned[DWC_KMAX * DWC_KMAX];
            if (flip) {
                for (int t = 0; t < kk; t++) turned[t] = wc[kk - 1 - t];
                wc = turned;
            }
            dwc_pad(buf, &g, x + nc * plane, d->h, d->w, !padded);
            padded = true;
            float *yo = y + nc * oplane;
            for (int oy0 = 0; oy0 < oh; oy0 += DWC_RB)
                for (int ox0 = 0; ox0 < ow; ox0 += VW) {
                    switch (oh - oy0 < DWC_RB ? oh - oy0 : DWC_RB) { /* constant row counts */
                    case 1:
                        dwc_rows(&g, 1, d, yo, buf, oy0, ox0, wc, off, bias, add);
                        break;
                    case 2:
                        dwc_rows(&g, 2, d, yo, buf, oy0, ox0, wc, off, bias, add);
                        break;
                    case 3:
                        dwc_rows(&g, 3, d, yo, buf, oy0, ox0, wc, off, bias, add);
                        break;
                    default:
                        dwc_rows(&g, DWC_RB, d, yo, buf, oy0, ox0, wc, off, bias, add);
                        break;
                    }
                }
        }
    }
}

/* At stride 1 the input gradient is itself a depthwise convolution: of dy, bordered by k - 1 - p,
 * with the kernels turned by 180 degrees; its descriptor. */
static cvn_conv_desc dwc_transposed(const cvn_conv_desc *d) {
    cvn_conv_desc t = *d;
    t.h = d->oh, t.w = d->ow, t.oh = d->h, t.ow = d->w;
    t.ph = t.pw = d->kh - 1 - d->ph;
    t.act_on = false, t.pool = 0;
    return t;
}

/* dx (+)= the depthwise convolution's input gradient: at stride 1 by dwc_run, at stride 2 by the
 * gather described above. */
static void dwc_dx(const cvn_conv_desc *d, float *dx, const float *dy, const float *w, bool add) {
    if (d->sh == 1) { /* the turned kernels over dy */
        const cvn_conv_desc t = dwc_transposed(d);
        dwc_run(&t, dx, dy, w, NULL, true, add);
        return;
    }
    const dwc_geom g = dwc_geom_of(d);
    const int k = g.k, s = g.s /* 2 */, ow = d->ow, h = d->h, wd = d->w;
    const int64_t plane = (int64_t)h * wd, oplane = (int64_t)d->oh * ow;
#pragma omp parallel if ((int64_t)d->n * d->c * oplane * k * k > 4 * PAR_MIN)
    {
        float *buf = d->work + omp_get_thread_num() * dwc_thread_floats(&g),
              *dyp = buf + s * g.phase;
        bool bordered = false; /* dyp's border is zeroed once; its rows are rewritten */
#pragma omp for schedule(static)
        for (int64_t nc = 0; nc < (int64_t)d->n * d->c; nc++) {
            const float *wc = w + (nc % d->c) * k * k, *g0 = dy + nc * oplane;
            if (!bordered) memset(dyp, 0, (size_t)g.dplane * sizeof(float));
            bordered = true;
            for (int oy = 0; oy < d->oh; oy++)
                memcpy(dyp + (oy + g.t) * g.dwp + g.t, g0 + (int64_t)oy * ow,
                       (size_t)ow * sizeof(float));
            /* only the columns that hold input cells, two vectors at a time (two chains) */
            const int64_t jn = (wd - 1 + g.p) / s + 1;
            for (int q = 0; q < s; q++)
                for (int64_t r = 0; r < g.rows; r++)
                    for (int64_t j0 = 0; j0 < jn; j0 += 2 * VW) {
                        vf a0 = vset(0.0f), a1 = vset(0.0f);
                        for (int ky = 0; ky < k; ky++) {
                            const int64_t dr = r - ky + g.t * s; /* >= 0 where it counts */
                            if (dr < 0 || (dr & 1)) continue;
                            const float *row = dyp + (dr >> 1) * g.dwp + g.t + j0;
                            for (int m = 0; q + s * m < k; m++) {
                                const vf wv = vset(wc[ky * k + q + s * m]);
                                a0 = vfma(wv, vload(row - m, VW), a0);
                                a1 = vfma(wv, vload(row - m + VW, VW), a1);
                            }
                        }
                        float *out = buf + q * g.phase + r * g.wpp + j0;
                        vstore(out, a0, g.wpp - j0);
                        vstore(out + VW, a1, g.wpp - j0 - VW);
                    }
            for (int iy = 0; iy < h; iy++) { /* back to NCHW: cells no output reached are 0 */
                const int64_t r = iy + g.p;
                const float *src = buf + r * g.wpp;
                float *o = dx + nc * plane + (int64_t)iy * wd;
                for (int ix = 0; ix < wd; ix++) {
                    const int64_t col = ix + g.p, j = col >> 1;
                    const float v = r < g.rows && j < g.wpp ? src[(col & 1) * g.phase + j] : 0.0f;
                    o[ix] = add ? o[ix] + v : v;
                }
            }
        }
    }
}

/* One plane's products for dw: taps[ky * k + kx] += dy (gp) times the bordered input (buf) under
 * tap (ky, kx), a tap row at a time (k vector sums). */
static inline __attribute__((always_inline)) void dwc_dw_plane(const dwc_geom *g, const int k,
                                                               const cvn_conv_desc *d, vf *taps,
                                                               const float *buf, const float *gp,
                                                               const int64_t *off) {
    const int ow = d->ow;
    for (int ky = 0; ky < k; ky++) {
        vf acc[DWC_KMAX];
#pragma GCC unroll 7
        for (int kx = 0; kx < DWC_KMAX; kx++) acc[kx] = vset(0.0f); /* (all: no false warning) */
        for (int oy = 0; oy < d->oh; oy++) {
            const float *row = buf + (int64_t)(oy * g->s + ky) * g->wpp;
            for (int ox0 = 0; ox0 < ow; ox0 += VW) {
                const vf gv = vload(gp + (int64_t)oy * ow + ox0, ow - ox0);
#pragma GCC unroll 7
                for (int kx = 0; kx < k; kx++)
                    acc[kx] = vfma(gv, vload(row + off[kx] + ox0, VW), acc[kx]);
            }
        }
#pragma GCC unroll 7
        for (int kx = 0; kx < k; kx++) taps[ky * k + kx] += acc[kx];
    }
}

/* dw += the sum over images and outputs of dy times each tap's input; db += the sum of dy. One
 * channel a task; the tap sums stay vectors over the images and are added up once. */
static void dwc_dw(const cvn_conv_desc *d, float *dw, float *db, const float *dy, const float *x) {
    const dwc_geom g = dwc_geom_of(d);
    const int k = g.k, s = g.s, ow = d->ow;
    const int64_t plane = (int64_t)d->h * d->w, oplane = (int64_t)d->oh * ow;
#pragma omp parallel if ((int64_t)d->n * d->c * oplane * k * k > 4 * PAR_MIN)
    {
        float *buf = d->work + omp_get_thread_num() * dwc_thread_floats(&g);
        bool padded = false;
        int64_t off[DWC_KMAX]; /* each tap column's offset within a bordered row */
        for (int kx = 0; kx < k; kx++) off[kx] = (kx % s) * g.phase + kx / s;
#pragma omp for schedule(static)
        for (int c = 0; c < d->c; c++) {
            vf sum = vset(0.0f), taps[DWC_KMAX * DWC_KMAX]; /* summed over images, then hsum */
            for (int t = 0; t < k * k; t++) taps[t] = vset(0.0f);
            for (int64_t n = 0; n < d->n; n++) {
                const int64_t nc = n * d->c + c;
                const float *gp = dy + nc * oplane;
                if (db)
                    for (int64_t i = 0; i < oplane; i += VW) sum += vload(gp + i, oplane - i);
                if (!dw) continue;
                dwc_pad(buf, &g, x + nc * plane, d->h, d->w, !padded);
                padded = true;
                switch (k) { /* a constant kernel width keeps the k sums in registers */
                case 3:
                    dwc_dw_plane(&g, 3, d, taps, buf, gp, off);
                    break;
                case 5:
                    dwc_dw_plane(&g, 5, d, taps, buf, gp, off);
                    break;
                case 7:
                    dwc_dw_plane(&g, 7, d, taps, buf, gp, off);
                    break;
                default:
                    dwc_dw_plane(&g, k, d, taps, buf, gp, off);
                    break;
                }
            }
            for (int t = 0; dw && t < k * k; t++) dw[(int64_t)c * k * k + t] += hsum(taps[t]);
            if (db) db[c] += hsum(sum);
        }
    }
}

/* Pointwise convolution (1x1, stride 1, no padding, one group): per image y_n = W x_n + b, a
 * product straight on the NCHW planes (im2col + GEMM copies x into [c, images * hw] and the
 * result back, and on MobileNet at inference those copies took as long as the GEMM). Lanes run
 * along an image's pixels: a tile of nv <= PW_PV vectors of pixels x PW_SUMS / nv output channels
 * keeps PW_SUMS sums in registers, and per input channel nv loads of x and PW_SUMS / nv broadcast
 * weights make PW_SUMS FMAs; small planes (4 x 4: two vectors) take more channels per tile. dx is
 * the same product with W transposed. Planes smaller than a vector (a squeeze-excite's 1 x 1) are
 * declined: the lanes would be mostly empty. */
#if CVN_VW == 16
#define PW_SUMS 24 /* of the 32 registers */
#define PW_PV 4
#else
#define PW_SUMS 12 /* with 3 inputs and a broadcast weight: the 16 registers */
#define PW_PV 3
#endif
/* dw's tile (pw_dw): PW_OB output x PW_PV input channels */
#define PW_OB (PW_SUMS / PW_PV)
/* Floats of x and dy that dw's block of images holds (512 KiB: a core's L2 cache). */
#define PW_DW_BLOCK 131072

static bool pw_fits(const cvn_conv_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0 &&
           d->groups == 1 && d->pool == 0 && (int64_t)d->h * d->w >= VW;
}

/* One product: ci -> co channels of hw pixels per image; the weight of output k and input r is
 * w[k * so + r * si]. */
typedef struct {
    int n, ci, co;
    int64_t hw, so, si;
    bool act_on;
    cvn_act_kind act;
    float alpha;
} pw_geom;

/* Output channels [o0, o0 + ob) (those below co exist) over nv vectors of pixels from xp (input
 * channel 0 of the image at the tile's first pixel) into yp (output channel 0, same pixel); the
 * last vector has `last` lanes. Constant trip counts keep the sums in registers. */
static inline __attribute__((always_inline)) void
pw_tile(const pw_geom *g, const int nv, const int ob, int64_t last, int o0, float *yp,
        const float *xp, const float *w, const float *b, bool accumulate) {
    const int64_t hw = g->hw, si = g->si, ci = g->ci;
    const int valid = g->co - o0;
    const float *wk[PW_SUMS];
    vf acc[PW_SUMS][PW_PV];
#pragma GCC unroll 24
    for (int j = 0; j < ob; j++) { /* channels past the last repeat it, unstored */
        const int o = o0 + (j < valid ? j : valid - 1);
        wk[j] = w + o * g->so;
        const vf bj = vset(b && !accumulate ? b[o] : 0.0f);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[j][v] = bj;
    }
    for (int64_t r = 0; r < ci; r++) {
        const float *xr = xp + r * hw;
        vf xv[PW_PV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) xv[v] = vload(xr + v * VW, v == nv - 1 ? last : VW);
#pragma GCC unroll 24
        for (int j = 0; j < ob; j++) {
            const vf wv = vset(wk[j][r * si]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[j][v] = vfma(wv, xv[v], acc[j][v]);
        }
    }
#pragma GCC unroll 24
    for (int j = 0; j < ob; j++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            if (j < valid) {
                float *out = yp + (o0 + j) * hw + v * VW;
                const int64_t m = v == nv - 1 ? last : VW;
                vf s = acc[j][v];
                if (accumulate) s += vload(out, m);
                if (g->act_on) s = act(g->act, g->alpha, s);
                vstore(out, s, m);
            }
}

/* The PW_SUMS output channels from o0 over nv vectors of pixels: nv tiles of PW_SUMS / nv. */
static inline __attribute__((always_inline)) void pw_tiles(const pw_geom *g, const int nv,
                                                           int64_t last, int o0, float *yp,
                                                           const float *xp, const float *w,
                                                           const float *b, bool accumulate) {
    for (int o = o0; o < o0 + PW_SUMS && o < g->co; o += PW_SUMS / nv)
        pw_tile(g, nv, PW_SUMS / nv, last, o, yp, xp, w, b, accumulate);
}

/* y = W x + b (b may be NULL) with the activation, or y += W x when accumulate. Tasks are
 * (image, block of PW_SUMS output channels), image-major, so a thread's consecutive tasks read
 * one image. */
static void pw_run(const pw_geom *g, float *y, const float *x, const float *w, const float *b,
                   bool accumulate) {
    const int n_ob = (g->co + PW_SUMS - 1) / PW_SUMS;
    const int64_t hw = g->hw, tile = PW_PV * VW, full = hw / tile * tile, rem = hw - full;
    const int tail_nv = (int)((rem + VW - 1) / VW);
    const int64_t tail_last = rem - (int64_t)(tail_nv - 1) * VW;
#pragma omp parallel for schedule(static) if ((int64_t)g->n * g->co * g->ci * hw > 16 * PAR_MIN)
    for (int64_t task = 0; task < (int64_t)g->n * n_ob; task++) {
        const int64_t n = task / n_ob;
        const int o0 = (int)(task % n_ob) * PW_SUMS;
        const float *xp = x + n * g->ci * hw;
        float *yp = y + n * g->co * hw;
        for (int64_t p = 0; p < full; p += tile)
            pw_tiles(g, PW_PV, VW, o0, yp + p, xp + p, w, b, accumulate);
        switch (tail_nv) { /* a constant vector count for each */
        case 0:
            break;
        case 1:
            pw_tiles(g, 1, tail_last, o0, yp + full, xp + full, w, b, accumulate);
            break;
        case 2:
            pw_tiles(g, 2, tail_last, o0, yp + full, xp + full, w, b, accumulate);
            break;
#if PW_PV > 3
        case 3:
            pw_tiles(g, 3, tail_last, o0, yp + full, xp + full, w, b, accumulate);
            break;
#endif
        default:
            pw_tiles(g, PW_PV, tail_last, o0, yp + full, xp + full, w, b, accumulate);
            break;
        }
    }
}

/* dw += sum over images and pixels of dy_n x_n^T, db += the sums of dy's planes, lanes along
 * pixels: where c3t_dw does not run (AVX-512, scalar, fewer than C3T_MIN_C input channels, no
 * scratch). Images go in blocks that fit a core's L2 cache; within a block the threads split the
 * tiles of dw (so no two write one weight) and each tile's PW_OB x PW_PV vector sums run over all
 * the block's pixels (on AVX2 5-9x slower than c3t_dw: 7 loads per 12 FMAs, from L2). */
static void pw_dw(const cvn_conv_desc *d, float *dw, float *db, const float *dy, const float *x) {
    const int C = d->c, O = d->o;
    const int64_t hw = (int64_t)d->h * d->w, per = (C + O) * hw;
    const int n_ob = (O + PW_OB - 1) / PW_OB, n_cb = (C + PW_PV - 1) / PW_PV;
    const int block = per >= PW_DW_BLOCK ? 1 : (int)(PW_DW_BLOCK / per);
#pragma omp parallel if ((int64_t)d->n * O * C * hw > 16 * PAR_MIN)
    {
        if (db) conv_db(d, db, dy);
        for (int n0 = 0; dw && n0 < d->n; n0 += block) {
            const int n1 = d->n - n0 < block ? d->n : n0 + block;
#pragma omp for schedule(static)
            for (int64_t t = 0; t < (int64_t)n_ob * n_cb; t++) { /* input-channel-major */
                const int c0 = (int)(t / n_ob) * PW_PV, o0 = (int)(t % n_ob) * PW_OB;
                const int vo = O - o0 < PW_OB ? O - o0 : PW_OB,
                          vc = C - c0 < PW_PV ? C - c0 : PW_PV;
                vf acc[PW_OB][PW_PV];
#pragma GCC unroll 6
                for (int j = 0; j < PW_OB; j++)
#pragma GCC unroll 4
                    for (int q = 0; q < PW_PV; q++) acc[j][q] = vset(0.0f);
                for (int64_t n = n0; n < n1; n++) {
                    const float *gp[PW_OB], *xq[PW_PV]; /* past the last: repeat it, unkept */
                    for (int j = 0; j < PW_OB; j++)
                        gp[j] = dy + (n * O + o0 + (j < vo ? j : vo - 1)) * hw;
                    for (int q = 0; q < PW_PV; q++)
                        xq[q] = x + (n * C + c0 + (q < vc ? q : vc - 1)) * hw;
                    for (int64_t i = 0; i < hw; i += VW) {
                        vf xv[PW_PV];
#pragma GCC unroll 4
                        for (int q = 0; q < PW_PV; q++) xv[q] = vload(xq[q] + i, hw - i);
#pragma GCC unroll 6
                        for (int j = 0; j < PW_OB; j++) {
                            const vf gv = vload(gp[j] + i, hw - i);
#pragma GCC unroll 4
                            for (int q = 0; q < PW_PV; q++) acc[j][q] = vfma(gv, xv[q], acc[j][q]);
                        }
                    }
                }
                for (int j = 0; j < vo; j++)
                    for (int q = 0; q < vc; q++)
                        dw[(int64_t)(o0 + j) * C + c0 + q] += hsum(acc[j][q]);
            }
        }
    }
}

/* Scratch: forward, c3_run's; backward, the larger of dx's c3_run and dw's block of images. */
/* The forward's epilogue pools 2x2 only, within vectors (so not in the scalar build). */
static bool c3_pool_ok(const cvn_conv_desc *d) {
    return d->pool == 0 || (d->pool == 2 && VW > 1 && d->h >= 2 && d->w >= 2);
}

/* The depthwise kernels take what the 3x3 ones do not, without a pooling epilogue. */
static bool dwc_takes(const cvn_conv_desc *d, bool backward) {
    return !c3_fits(d) && dwc_fits(d) && (backward || d->pool == 0);
}

static int64_t c3_work(const cvn_conv_desc *d, bool backward) {
    if (pw_fits(d)) /* with C3T_DW, dw's transposed tensor only (x is read in place) */
        return backward && c3t_fits(d) ? (int64_t)c3_dw_block(d) * c3t_image(d) : 0;
    if (dwc_takes(d, backward)) {
        const dwc_geom g = dwc_geom_of(d);
        int64_t per = dwc_thread_floats(&g);
        if (backward && d->sh == 1) { /* dx runs on the transposed geometry */
            const cvn_conv_desc t = dwc_transposed(d);
            const dwc_geom gt = dwc_geom_of(&t);
            if (dwc_thread_floats(&gt) > per) per = dwc_thread_floats(&gt);
        }
        return (int64_t)omp_get_max_threads() * per;
    }
    if (!c3_fits(d) || (!backward && !c3_pool_ok(d))) return 0;
    if (!backward) return c3_run_work(d->c, d->o, d->h, d->w, d->pool);
    int64_t dx = c3_run_work(d->o, d->c, d->h, d->w, false),
            dw = (int64_t)c3_dw_block(d) * c3_dw_image(d);
    return dx > dw ? dx : dw;
}

static bool k_conv2d_fwd(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                         const float *b) {
    if (pw_fits(d)) {
        const pw_geom g = {d->n,      d->c,   d->o,    (int64_t)d->h * d->w, d->c, 1,
                           d->act_on, d->act, d->alpha};
        pw_run(&g, y, x, w, b, false);
        return true;
    }
    if (dwc_takes(d, false) && d->work && d->work_floats >= c3_work(d, false)) {
        dwc_run(d, y, x, w, b, false, false);
        return true;
    }
    if (!c3_fits(d) || !c3_pool_ok(d) || !d->work || d->work_floats < c3_work(d, false))
        return false;
    c3_geom g = {d->n, d->c,  d->o,      d->h,   d->w,     (int64_t)d->c * 9,
                 9,    false, d->act_on, d->act, d->alpha, d->pool};
    c3_run(&g, y, x, w, b, false, d->work);
    return true;
}

/* dx by c3_run (dy convolved with the turned, transposed weights), then dw and db. */
static bool k_conv2d_bwd(const cvn_conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                         const float *x, const float *w, bool dx_add) {
    if (pw_fits(d)) {
        const pw_geom g = {d->n,  d->o,       d->c, (int64_t)d->h * d->w, 1, d->c,
                           false, CVN_K_RELU, 0.0f};
        if (dx) pw_run(&g, dx, dy, w, NULL, dx_add);
#if C3T_DW
        if (dw && c3t_fits(d) && d->work && d->work_floats >= c3_work(d, true)) {
            c3t_dw(d, dw, dy, x); /* bench_conv 64x240x7x7 -> 40: 2.9 -> 0.6 ms */
            dw = NULL;
        }
#endif
        if (dw || db) pw_dw(d, dw, db, dy, x);
        return true;
    }
    if (dwc_takes(d, true) && d->work && d->work_floats >= c3_work(d, true)) {
        if (dx) dwc_dx(d, dx, dy, w, dx_add);
        if (dw || db) dwc_dw(d, dw, db, dy, x);
        return true;
    }
    if (!c3_fits(d) || !d->work || d->work_floats < c3_work(d, true)) return false;
    if (dx) {
        c3_geom g = {d->n, d->o,  d->c,       d->h, d->w, 9, (int64_t)d->c * 9,
                     true, false, CVN_K_RELU, 0.0f, 0};
        c3_run(&g, dx, dy, w, NULL, dx_add, d->work);
    }
#if C3T_DW
    if (dw && c3t_fits(d)) {
        c3t_dw(d, dw, dy, x);
        dw = NULL;
    }
#endif
    if (dw || db) c3_dw(d, dw, db, dy, x);
    return true;
}

const cvn_backend TABLE_NAME = {
    .name = "cpu-" STR(CVN_SIMD_NAME),
    /* 256 Ki floats = 1 MiB. On the reference CNN (bench/compare_pytorch.py) 16 MiB gave 3,063
     * training images/s and 110 MB peak RSS; 4, 2 and 1 MiB about 3,600 and 86, 81 and 72 MB. A
     * large layer (256x64x32x32 -> 128, bench_ops) loses about 10 % with 1 MiB. */
    .conv_workspace = 1 << 18,
    .host_memory = true,
    .alloc = cvn_cpu_alloc,
    .free = cvn_cpu_free,
    .copy = cvn_cpu_copy,
    .upload = cvn_cpu_copy,
    .download = cvn_cpu_copy,
    .zero = cvn_cpu_zero,
    .host_register = cvn_cpu_host_register,
    .host_unregister = cvn_cpu_host_unregister,
    .upload_async = cvn_cpu_copy,
    .upload_wait = cvn_cpu_upload_wait,
    .gemm = k_gemm,
    .binary = k_binary,
    .binary_bwd = k_binary_bwd,
    .affine = k_affine,
    .axpy = k_axpy,
    .reduce_to = k_reduce_to,
    .expand_add = k_expand_add,
    .act_fwd = k_act_fwd,
    .act_bwd = k_act_bwd,
    .softmax_fwd = k_softmax_fwd,
    .softmax_bwd = k_softmax_bwd,
    .xent_fwd = k_xent_fwd,
    .xent_bwd = k_xent_bwd,
    .count_hits = k_count_hits,
    .bce_fwd = k_bce_fwd,
    .bce_bwd = k_bce_bwd,
    .im2col = k_im2col,
    .col2im = k_col2im,
    .copy_blocks = k_copy_blocks,
    .conv2d_fwd = k_conv2d_fwd,
    .conv2d_bwd = k_conv2d_bwd,
    .conv2d_work = c3_work,
    .maxpool_fwd = k_maxpool_fwd,
    .maxpool_bwd = k_maxpool_bwd,
    .avgpool_fwd = k_avgpool_fwd,
    .avgpool_bwd = k_avgpool_bwd,
    .adaptive_avgpool_fwd = k_adaptive_avgpool_fwd,
    .adaptive_avgpool_bwd = k_adaptive_avgpool_bwd,
    .bn_stats = k_bn_stats,
    .bn_prepare = k_bn_prepare,
    .bn_fwd = k_bn_fwd,
    .bn_bwd = k_bn_bwd,
    .dropout_fwd = k_dropout_fwd,
    .dropout_bwd = k_dropout_bwd,
    .optim_update = k_optim_update,
    .sum = k_sum,
    .sum_sq = k_sum_sq,
    .clamp = k_clamp,
};
