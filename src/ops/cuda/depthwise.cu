// Depthwise convolution on CUDA (stride 1, square k×k kernel, zero padding), f32, NCHW.
//
// candle runs a grouped conv as one conv per group; ddpm-lab's fallback for GPUs runs it as dense
// convs over blocks of channels with block-diagonal weights (im2col + one GEMM each), which moves
// k² copies of the input through memory and multiplies mostly zeros. These kernels do the
// arithmetic the conv needs and nothing more:
//
// - `depthwise_fwd_k{3,5,7}`: y[n,c,oy,ox] = Σ_ij w[c,i,j] · x[n,c,oy+i−p,ox+j−p]. A block
//   takes a tile_h × tile_w tile of the output (grid x: tiles_x tiles per row) in
//   `planes_per_block` planes at once (grid y, looping past the grid): it stages their input
//   tiles with the k−1 halo (zeros off the map) and their kernels in shared memory, then each
//   thread sums its outputs' k² taps from there, with no bounds tests and no 64-bit
//   divisions. The taps are added in the same order as a direct loop. With `flip` set it uses
//   w[c,k−1−i,k−1−j]: the input gradient of a depthwise conv with padding p is this conv of the
//   output gradient with the flipped kernel and padding k−1−p. With `has_bias` set it adds
//   plane_bias[plane] to every output of a plane (plane = n·C + c: the ConvNeXt blocks' conv
//   bias plus their image's time embedding, in the same pass).
// - `depthwise_wgrad_k{3,5,7}`: the weight gradient dw[c,i,j] = Σ_{n,oy,ox} dy[n,c,oy,ox] ·
//   x[n,c,oy+i−p,ox+j−p], as partial sums over `splits` slices of the batch:
//   part[c, s, i·k+j]. Each thread keeps all k² sums in registers over its share of the slice's
//   positions; a warp then a block reduction gives the slice's sums. The caller adds the slices
//   (a fixed order: the result does not depend on scheduling). With `staged` set (the caller
//   checks that an image's padded input plane and output-gradient plane fit
//   DW_WGRAD_STAGE_FLOATS), the block stages both planes of one image at a time in shared
//   memory and reads the taps from there, without bounds tests.
//
// The caller passes contiguous tensors; `long` indices keep planes of any batch size in range.

// Shared-memory floats for the input tiles of one `depthwise_fwd` block, and the most planes a
// block takes (their kernels sit in shared memory too). src/ops/depthwise_tiles.rs plans tiles
// within these (`DepthwiseTiles`).
#define DW_TILE_FLOATS 4096
#define DW_MAX_PLANES 32

template <int K>
__device__ __forceinline__ void depthwise_fwd(const float* __restrict__ x,
                                              const float* __restrict__ w,
                                              const float* __restrict__ plane_bias,
                                              float* __restrict__ y, int n_planes, int channels,
                                              int h, int wd, int ho, int wo, int pad, int flip,
                                              int tile_h, int tile_w, int tiles_x,
                                              int planes_per_block, int has_bias) {
  __shared__ float tile[DW_TILE_FLOATS];
  __shared__ float taps[DW_MAX_PLANES * K * K];
  const int in_w = tile_w + K - 1;
  const int in_len = (tile_h + K - 1) * in_w;
  const int out_len = tile_h * tile_w;
  const int ty0 = (int)(blockIdx.x / tiles_x) * tile_h;
  const int tx0 = (int)(blockIdx.x % tiles_x) * tile_w;
  for (long p0 = (long)blockIdx.y * planes_per_block; p0 < n_planes;
       p0 += (long)gridDim.y * planes_per_block) {
    const long left = n_planes - p0;
    const int planes = left < planes_per_block ? (int)left : planes_per_block;
    // The planes' input tiles with their halo, zero off the map, and their kernels (flipped
    // here for the input gradient).
    for (int t = threadIdx.x; t < planes * in_len; t += blockDim.x) {
      const int pl = t / in_len;
      const int r = t - pl * in_len;
      const int iy = ty0 - pad + r / in_w;
      const int ix = tx0 - pad + r % in_w;
      float v = 0.f;
      if (iy >= 0 && iy < h && ix >= 0 && ix < wd) v = __ldg(x + ((p0 + pl) * h + iy) * wd + ix);
      tile[t] = v;
    }
    for (int t = threadIdx.x; t < planes * K * K; t += blockDim.x) {
      const int pl = t / (K * K);
      const int tap = t - pl * K * K;
      const int c = (int)((p0 + pl) % channels);
      taps[t] = __ldg(w + c * K * K + (flip ? K * K - 1 - tap : tap));
    }
    __syncthreads();
    for (int t = threadIdx.x; t < planes * out_len; t += blockDim.x) {
      const int pl = t / out_len;
      const int r = t - pl * out_len;
      const int ry = r / tile_w;
      const int rx = r - ry * tile_w;
      const int oy = ty0 + ry;
      const int ox = tx0 + rx;
      if (oy >= ho || ox >= wo) continue;
      const float* src = tile + pl * in_len + ry * in_w + rx;
      const float* tp = taps + pl * K * K;
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < K; ++i) {
#pragma unroll
        for (int j = 0; j < K; ++j) acc = fmaf(tp[i * K + j], src[i * in_w + j], acc);
      }
      if (has_bias) acc += __ldg(plane_bias + p0 + pl);
      y[((p0 + pl) * ho + oy) * wo + ox] = acc;
    }
    __syncthreads();  // before the next planes overwrite the tiles
  }
}

// Threads per block of the weight-gradient kernels (the reduction assumes a multiple of 32).
#define WGRAD_THREADS 256
// Shared-memory floats for one image's zero-padded input plane and output-gradient plane in the
// weight-gradient kernels' staged path (src/ops/depthwise_tiles.rs: WGRAD_STAGE_FLOATS).
#define DW_WGRAD_STAGE_FLOATS 4096

template <int K>
__device__ __forceinline__ void depthwise_wgrad(const float* __restrict__ x,
                                                const float* __restrict__ dy,
                                                float* __restrict__ part, int n, int channels,
                                                int h, int wd, int ho, int wo, int pad,
                                                int splits, int staged) {
  const int c = blockIdx.x;
  const int s = blockIdx.y;
  const int n0 = (int)((long)n * s / splits);
  const int n1 = (int)((long)n * (s + 1) / splits);
  // The caller checks that n·Ho·Wo fits an int.
  const int plane = ho * wo;
  const int count = (n1 - n0) * plane;
  float acc[K * K];
#pragma unroll
  for (int t = 0; t < K * K; ++t) acc[t] = 0.f;
  __shared__ float stage[DW_WGRAD_STAGE_FLOATS];
  if (staged) {
    // One image at a time: its input plane with a zero border of `pad` (rows and columns
    // −pad .. h+pad−1 hold every tap of every output) and its output-gradient plane, then each
    // thread's positions from there, with no bounds tests.
    const int pw = wd + 2 * pad;
    const int padded = (h + 2 * pad) * pw;
    float* xs = stage;
    float* gs = stage + padded;
    for (int img = n0; img < n1; ++img) {
      const float* xp = x + ((long)img * channels + c) * h * wd;
      const float* dp = dy + ((long)img * channels + c) * plane;
      for (int t = threadIdx.x; t < padded; t += blockDim.x) {
        const int iy = t / pw - pad;
        const int ix = t % pw - pad;
        xs[t] = (iy >= 0 && iy < h && ix >= 0 && ix < wd) ? __ldg(xp + iy * wd + ix) : 0.f;
      }
      for (int t = threadIdx.x; t < plane; t += blockDim.x) gs[t] = __ldg(dp + t);
      __syncthreads();
      for (int r = threadIdx.x; r < plane; r += blockDim.x) {
        const int oy = r / wo;
        const float g = gs[r];
        const float* src = xs + oy * pw + (r - oy * wo);
#pragma unroll
        for (int i = 0; i < K; ++i) {
#pragma unroll
          for (int j = 0; j < K; ++j) acc[i * K + j] = fmaf(g, src[i * pw + j], acc[i * K + j]);
        }
      }
      __syncthreads();  // before the next image overwrites the planes
    }
  } else {
    // Taps read from global memory, tested against the map's edges.
    for (int q = threadIdx.x; q < count; q += blockDim.x) {
      const int di = q / plane;
      const long img = n0 + di;
      const int r = q - di * plane;
      const int oy = r / wo;
      const int ox = r % wo;
      const float g = __ldg(dy + (img * channels + c) * plane + r);
      const float* xp = x + (img * channels + c) * h * wd;
#pragma unroll
      for (int i = 0; i < K; ++i) {
        const int iy = oy + i - pad;
        const bool row = iy >= 0 && iy < h;
#pragma unroll
        for (int j = 0; j < K; ++j) {
          const int ix = ox + j - pad;
          if (row && ix >= 0 && ix < wd) {
            acc[i * K + j] = fmaf(g, __ldg(xp + iy * wd + ix), acc[i * K + j]);
          }
        }
      }
    }
  }
  __shared__ float sums[WGRAD_THREADS / 32][K * K];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int t = 0; t < K * K; ++t) {
    float v = acc[t];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) sums[warp][t] = v;
  }
  __syncthreads();
  const int warps = blockDim.x >> 5;
  for (int t = threadIdx.x; t < K * K; t += blockDim.x) {
    float v = 0.f;
    for (int wi = 0; wi < warps; ++wi) v += sums[wi][t];
    part[((long)c * splits + s) * (K * K) + t] = v;
  }
}

#define DEPTHWISE_KERNELS(K)                                                                  \
  extern "C" __global__ void depthwise_fwd_k##K(                                             \
      const float* x, const float* w, const float* plane_bias, float* y, int n_planes,        \
      int channels, int h, int wd, int ho, int wo, int pad, int flip, int tile_h, int tile_w, \
      int tiles_x, int planes_per_block, int has_bias) {                                      \
    depthwise_fwd<K>(x, w, plane_bias, y, n_planes, channels, h, wd, ho, wo, pad, flip,       \
                     tile_h, tile_w, tiles_x, planes_per_block, has_bias);                    \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(WGRAD_THREADS)                                 \
      depthwise_wgrad_k##K(const float* x, const float* dy, float* part, int n, int channels, \
                           int h, int wd, int ho, int wo, int pad, int splits, int staged) {  \
    depthwise_wgrad<K>(x, dy, part, n, channels, h, wd, ho, wo, pad, splits, staged);         \
  }

DEPTHWISE_KERNELS(3)
DEPTHWISE_KERNELS(5)
DEPTHWISE_KERNELS(7)
