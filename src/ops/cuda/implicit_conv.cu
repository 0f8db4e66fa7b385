// A dense convolution as an implicit GEMM (f32, NCHW, square KS×KS kernel, any stride, zero
// padding): the product of im2col and cuBLAS (conv.cu, src/ops/cuda/conv.rs) without ever
// writing the im2col matrix, which for the 3×3 convs of the blog UNet is 9× the size of their
// input and costs more memory traffic than their arithmetic.
//
// As a matrix product, out[m, j] = Σ_k A[m, k] · B[k, j] + bias[m] with
//   m = output channel (M of them), j = (image, oy, ox) a column (n·Ho·Wo of them),
//   k = (ci, ky, kx) (C·KS² of them), A[m, k] = w[m, ci, ky, kx] (the weight as it lies), and
//   B[k, j] = x[image, ci, oy·s − p + ky, ox·s − p + kx] (0 off the image), read from x on the fly.
// With `flip` set, A[m, k] = w[ci, m, KS−1−ky, KS−1−kx] (w then has shape (C, M, KS, KS)): the
// input gradient of a stride-1 conv with padding p is this conv of the output gradient with
// padding KS−1−p.
//
// `conv_implicit_k{KS}_m{BM}`: a block of 128 threads computes a BM × 128 tile of out (grid x:
// tiles of 128 columns, grid y: tiles of BM channels). Its K loop takes one input channel per
// step, that is KS² rows of A and B: each thread loads the KS² taps of its own column (so its
// image, position and which taps fall off the image are worked out once per block, and no
// division is left in the loop) and a share of the A tile, into registers while the block
// multiplies the previous step's tiles from shared memory (two buffers, one barrier per step).
// Each thread keeps a TM × 8 tile of out in registers, its rows and columns split in groups of
// four half a tile apart, so that its float4 reads of shared memory are free of bank conflicts.
// Every k is added in the same order (ci, then ky, kx) for every output. Where the tiles alone
// would leave the GPU idle (small maps), the input channels are cut into `c_slice`-channel
// slices (grid z) whose partial sums land at z·n·M·Ho·Wo, and `conv_implicit_sum_splits` adds
// them in order (and the bias); with one slice the kernel writes the output and bias itself.
//
// `conv_implicit_wgrad_k{KS}_m{BM}`: the weight gradient, the same kind of product with the
// roles turned: dw[m, k] = Σ_j dy[m, j] · B[k, j], rows m of dy, columns k = (ci, ky, kx) of
// the weight, the sum over the n·Ho·Wo columns j. A block computes a BM × 128 tile of dw over
// one slice of the j's (grid z: `splits` slices, grid x: tiles of 128 k's, y: of BM channels),
// eight j's per step, and writes its sums to part[slice, m, k]; `conv_implicit_sum_splits`
// then adds the slices in order (no atomics: the same sums on every run). Each thread gathers
// the taps of its own k and walks the step's j's (image, position) by increments, the same
// for every thread, so there is no division in the loop.
//
// The caller checks that n·C·H·W, n·M·Ho·Wo, n·Ho·Wo and splits·M·C·KS² fit an int.

#define IC_THREADS 128
#define IC_BN 128
// j's per step of the weight gradient, and the padding of its A tile's rows (so that a warp's
// stores to it, eight j's of four channels, fall in 32 different banks).
#define IC_WG_BJ 8
#define IC_WG_PAD 4

// The tile row of a thread's row i (its rows ty·4.., and BM/2 + ty·4.. from i = 4) and the
// tile column of its column jj (tx·4.., and 64 + tx·4.. from jj = 4): the layout of tile_fma's
// sums, which the kernels' epilogues write out.
template <int BM>
__device__ __forceinline__ int tile_row(int i, int ty) {
  return (i < 4 ? 0 : BM / 2) + ty * 4 + (i & 3);
}
__device__ __forceinline__ int tile_col(int jj, int tx) {
  return (jj < 4 ? 0 : IC_BN / 2) + tx * 4 + (jj & 3);
}

// acc[i][jj] += Σ_r A[r][row i] · B[r][col jj] over the R rows of two shared tiles, A's rows
// `a_stride` floats apart. Thread (tx, ty) of the 16 × (BM/TM) threads owns rows ty·4.. (and
// BM/2 + ty·4.. when TM = 8) and columns tx·4.. and 64 + tx·4..: float4 reads, no bank
// conflicts.
template <int R, int BM, int TM, int A_STRIDE>
__device__ __forceinline__ void tile_fma(const float* __restrict__ as,
                                         const float* __restrict__ bs, int tx, int ty,
                                         float (&acc)[TM][8]) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float a[TM], bv[8];
#pragma unroll
    for (int g = 0; g < TM / 4; ++g) {
      const float4 v = *reinterpret_cast<const float4*>(as + r * A_STRIDE + g * (BM / 2) + ty * 4);
      a[4 * g] = v.x, a[4 * g + 1] = v.y, a[4 * g + 2] = v.z, a[4 * g + 3] = v.w;
    }
#pragma unroll
    for (int g = 0; g < 2; ++g) {
      const float4 v = *reinterpret_cast<const float4*>(bs + r * IC_BN + g * (IC_BN / 2) + tx * 4);
      bv[4 * g] = v.x, bv[4 * g + 1] = v.y, bv[4 * g + 2] = v.z, bv[4 * g + 3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) acc[i][jj] = fmaf(a[i], bv[jj], acc[i][jj]);
  }
}

template <int KS, int BM, int TM>
__device__ __forceinline__ void implicit_conv(const float* __restrict__ x,
                                              const float* __restrict__ wt,
                                              const float* __restrict__ bias,
                                              float* __restrict__ y, int n, int c, int h, int w,
                                              int m, int stride, int pad, int ho, int wo,
                                              int flip, int has_bias, int c_slice) {
  constexpr int BK = KS * KS;        // one input channel per step
  constexpr int TN = 8;              // columns per thread
  constexpr int COLS_T = IC_BN / TN; // threads along the columns (16)
  static_assert((BM / TM) * COLS_T == IC_THREADS, "the threads cover the tile");
  static_assert(TM == 4 || TM == 8, "rows in one or two groups of four");
  constexpr int A_LOADS = (BM * BK + IC_THREADS - 1) / IC_THREADS;
  __shared__ __align__(16) float As[2][BK][BM];
  __shared__ __align__(16) float Bs[2][BK][IC_BN];

  const int tid = threadIdx.x;
  const int positions = ho * wo;
  const int cols = n * positions;
  const int plane = h * w;
  const int kdim = c * BK;
  const int j0 = blockIdx.x * IC_BN;
  const int m0 = blockIdx.y * BM;

  // This thread's column of B: its image, position and the taps that fall inside the image.
  const int j = j0 + tid;
  const float* img = x;
  int base = 0;
  unsigned inside = 0;  // bit ky·KS + kx: tap (ky, kx) reads the image
  if (j < cols) {
    const int b = j / positions;
    const int q = j - b * positions;
    const int oy = q / wo;
    const int iy0 = oy * stride - pad;
    const int ix0 = (q - oy * wo) * stride - pad;
    img = x + (long)b * c * plane;
    base = iy0 * w + ix0;
#pragma unroll
    for (int ky = 0; ky < KS; ++ky)
#pragma unroll
      for (int kx = 0; kx < KS; ++kx)
        if (iy0 + ky >= 0 && iy0 + ky < h && ix0 + kx >= 0 && ix0 + kx < w)
          inside |= 1u << (ky * KS + kx);
  }

  float a_next[A_LOADS];
  float b_next[BK];
  // Step `ci`'s tiles into registers: this thread's KS² taps, and its share of A (element e of
  // the BM × BK tile at row e % BM, so that the stores to As are conflict-free).
  auto load = [&](int ci) {
    const float* src = img + ci * plane + base;
#pragma unroll
    for (int r = 0; r < BK; ++r)
      b_next[r] = (inside >> r) & 1u ? __ldg(src + (r / KS) * w + r % KS) : 0.f;
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int e = tid + i * IC_THREADS;
      const int am = e % BM, r = e / BM;
      float v = 0.f;
      if (e < BM * BK && m0 + am < m) {
        v = flip ? __ldg(wt + ((long)ci * m + m0 + am) * BK + (BK - 1 - r))
                 : __ldg(wt + (long)(m0 + am) * kdim + ci * BK + r);
      }
      a_next[i] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int r = 0; r < BK; ++r) Bs[buf][r][tid] = b_next[r];
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int e = tid + i * IC_THREADS;
      if (e < BM * BK) As[buf][e / BM][e % BM] = a_next[i];
    }
  };

  const int tx = tid % COLS_T, ty = tid / COLS_T;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int jj = 0; jj < TN; ++jj) acc[i][jj] = 0.f;

  // This block's slice of the input channels (grid z; all of them with one slice).
  const int c0 = blockIdx.z * c_slice;
  const int c1 = c - c0 < c_slice ? c : c0 + c_slice;
  if (c0 < c1) {
    load(c0);
    store(0);
    __syncthreads();
    for (int ci = c0; ci < c1; ++ci) {
      const int buf = (ci - c0) & 1;
      if (ci + 1 < c1) load(ci + 1);
      tile_fma<BK, BM, TM, BM>(&As[buf][0][0], &Bs[buf][0][0], tx, ty, acc);
      if (ci + 1 < c1) store(buf ^ 1);
      __syncthreads();
    }
  }

  // out[m, j] → y[image, m, position] (slice z's partial sums at z·n·m·Ho·Wo); off the tile's
  // edges nothing is written.
  float* yz = y + (long)blockIdx.z * cols * m;
#pragma unroll
  for (int jj = 0; jj < TN; ++jj) {
    const int col = j0 + tile_col(jj, tx);
    if (col >= cols) continue;
    const int b = col / positions;
    float* out = yz + (long)b * m * positions + (col - b * positions);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int row = m0 + tile_row<BM>(i, ty);
      if (row < m) out[(long)row * positions] = acc[i][jj] + (has_bias ? __ldg(bias + row) : 0.f);
    }
  }
}

#define IMPLICIT_CONV(KS, BM, TM)                                                              \
  extern "C" __global__ void __launch_bounds__(IC_THREADS) conv_implicit_k##KS##_m##BM(       \
      const float* __restrict__ x, const float* __restrict__ wt,                              \
      const float* __restrict__ bias, float* __restrict__ y, int n, int c, int h, int w, int m, \
      int stride, int pad, int ho, int wo, int flip, int has_bias, int c_slice) {             \
    implicit_conv<KS, BM, TM>(x, wt, bias, y, n, c, h, w, m, stride, pad, ho, wo, flip,       \
                              has_bias, c_slice);                                             \
  }

IMPLICIT_CONV(3, 32, 4)
IMPLICIT_CONV(3, 64, 8)
IMPLICIT_CONV(4, 32, 4)
IMPLICIT_CONV(4, 64, 8)

template <int KS, int BM, int TM>
__device__ __forceinline__ void implicit_wgrad(const float* __restrict__ x,
                                               const float* __restrict__ dy,
                                               float* __restrict__ part, int n, int c, int h,
                                               int w, int m, int stride, int pad, int ho, int wo,
                                               int slice) {
  constexpr int KK = KS * KS;
  constexpr int BJ = IC_WG_BJ;
  constexpr int AS = BM + IC_WG_PAD;
  constexpr int A_LOADS = BM * BJ / IC_THREADS;
  static_assert(A_LOADS * IC_THREADS == BM * BJ, "the A tile splits evenly");
  static_assert((BM / TM) * (IC_BN / 8) == IC_THREADS, "the threads cover the tile");
  __shared__ __align__(16) float As[2][BJ][AS];
  __shared__ __align__(16) float Bs[2][BJ][IC_BN];

  const int tid = threadIdx.x;
  const int positions = ho * wo;
  const int cols = n * positions;
  const int kdim = c * KK;
  const int k0 = blockIdx.x * IC_BN;
  const int m0 = blockIdx.y * BM;
  const int j_begin = blockIdx.z * slice;
  const int j_end = cols - j_begin < slice ? cols : j_begin + slice;

  // This thread's k of B: its input channel and tap.
  const int kb = k0 + tid;
  const bool k_ok = kb < kdim;
  const int ci = k_ok ? kb / KK : 0;
  const int ky = (kb - ci * KK) / KS;
  const int kx = kb - ci * KK - ky * KS;
  const float* xc = x + (long)ci * h * w;

  // The step's first j as (image, oy, ox), advanced by increments (uniform over the block).
  int jb = j_begin / positions;
  int joy = (j_begin - jb * positions) / wo;
  int jox = j_begin - jb * positions - joy * wo;

  float a_next[A_LOADS];
  float b_next[BJ];
  // Step j0's tiles into registers: this thread's k at the 8 j's, and its share of dy (element
  // e of the BM × 8 tile at channel e / 8, j e % 8: eight consecutive positions per channel).
  auto load = [&](int j0) {
    int b = jb, oy = joy, ox = jox;
#pragma unroll
    for (int r = 0; r < BJ; ++r) {
      float v = 0.f;
      if (j0 + r < j_end) {
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        if (k_ok && iy >= 0 && iy < h && ix >= 0 && ix < w)
          v = __ldg(xc + (long)b * c * h * w + iy * w + ix);
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
          const int e = tid + i * IC_THREADS;
          if ((e & (BJ - 1)) == r) {
            const int am = e / BJ;
            a_next[i] = m0 + am < m
                            ? __ldg(dy + ((long)b * m + m0 + am) * positions + oy * wo + ox)
                            : 0.f;
          }
        }
      } else {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i)
          if (((tid + i * IC_THREADS) & (BJ - 1)) == r) a_next[i] = 0.f;
      }
      b_next[r] = v;
      if (++ox == wo) {
        ox = 0;
        if (++oy == ho) {
          oy = 0;
          ++b;
        }
      }
    }
    jb = b, joy = oy, jox = ox;
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int r = 0; r < BJ; ++r) Bs[buf][r][tid] = b_next[r];
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int e = tid + i * IC_THREADS;
      As[buf][e & (BJ - 1)][e / BJ] = a_next[i];
    }
  };

  const int tx = tid % (IC_BN / 8), ty = tid / (IC_BN / 8);
  float acc[TM][8];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) acc[i][jj] = 0.f;

  if (j_begin < j_end) {
    load(j_begin);
    store(0);
    __syncthreads();
    int buf = 0;
    for (int j0 = j_begin; j0 < j_end; j0 += BJ) {
      const bool more = j0 + BJ < j_end;
      if (more) load(j0 + BJ);
      tile_fma<BJ, BM, TM, AS>(&As[buf][0][0], &Bs[buf][0][0], tx, ty, acc);
      if (more) store(buf ^ 1);
      __syncthreads();
      buf ^= 1;
    }
  }

  // part[slice, m, k]; an empty slice writes its zeros too.
  float* out = part + (long)blockIdx.z * m * kdim;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + tile_row<BM>(i, ty);
    if (row >= m) continue;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int col = k0 + tile_col(jj, tx);
      if (col < kdim) out[(long)row * kdim + col] = acc[i][jj];
    }
  }
}

#define IMPLICIT_WGRAD(KS, BM, TM)                                                             \
  extern "C" __global__ void __launch_bounds__(IC_THREADS) conv_implicit_wgrad_k##KS##_m##BM( \
      const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part,     \
      int n, int c, int h, int w, int m, int stride, int pad, int ho, int wo, int slice) {     \
    implicit_wgrad<KS, BM, TM>(x, dy, part, n, c, h, w, m, stride, pad, ho, wo, slice);        \
  }

IMPLICIT_WGRAD(3, 32, 4)
IMPLICIT_WGRAD(3, 64, 8)
IMPLICIT_WGRAD(4, 32, 4)
IMPLICIT_WGRAD(4, 64, 8)

// out[i] = Σ_s part[s, i] for s = 0, 1, …, splits − 1 in that order, plus, with `has_bias`,
// bias[(i / positions) % channels] (an NCHW output's channel).
extern "C" __global__ void conv_implicit_sum_splits(const float* __restrict__ part,
                                                    const float* __restrict__ bias,
                                                    float* __restrict__ out, int len, int splits,
                                                    int positions, int channels, int has_bias) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < len; i += gridDim.x * blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s) acc += __ldg(part + (long)s * len + i);
    if (has_bias) acc += __ldg(bias + (i / positions) % channels);
    out[i] = acc;
  }
}
