// Depthwise convolution on CUDA (stride 1, square k×k kernel, zero padding), f32, NCHW.
//
// candle runs a grouped conv as one conv per group; ddpm-lab's fallback for GPUs runs it as dense
// convs over blocks of channels with block-diagonal weights (im2col + one GEMM each), which moves
// k² copies of the input through memory and multiplies mostly zeros. These kernels do the
// arithmetic the conv needs and nothing more:
//
// - `depthwise_fwd_k{3,5,7}`: y[n,c,oy,ox] = Σ_ij w[c,i,j] · x[n,c,oy+i−p,ox+j−p], one thread per
//   output element. With `flip` set it uses w[c,k−1−i,k−1−j]: the input gradient of a depthwise
//   conv with padding p is this conv of the output gradient with the flipped kernel and padding
//   k−1−p.
// - `depthwise_wgrad_k{3,5,7}`: the weight gradient dw[c,i,j] = Σ_{n,oy,ox} dy[n,c,oy,ox] ·
//   x[n,c,oy+i−p,ox+j−p], as partial sums over `splits` slices of the batch:
//   part[c, s, i·k+j]. Each thread keeps all k² sums in registers over its share of the slice's
//   positions; a warp then a block reduction gives the slice's sums. The caller adds the slices
//   (a fixed order: the result does not depend on scheduling).
//
// The caller passes contiguous tensors; `long` indices keep planes of any batch size in range.

template <int K>
__device__ __forceinline__ void depthwise_fwd(const float* __restrict__ x,
                                              const float* __restrict__ w,
                                              float* __restrict__ y, int n_planes, int channels,
                                              int h, int wd, int ho, int wo, int pad, int flip) {
  const long total = (long)n_planes * ho * wo;
  for (long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += (long)gridDim.x * blockDim.x) {
    const int ox = (int)(idx % wo);
    const long t = idx / wo;
    const int oy = (int)(t % ho);
    const long plane = t / ho;  // n·C + c
    const int c = (int)(plane % channels);
    const float* xp = x + plane * h * wd;
    const float* wp = w + c * K * K;
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const int iy = oy + i - pad;
      if (iy < 0 || iy >= h) continue;
#pragma unroll
      for (int j = 0; j < K; ++j) {
        const int ix = ox + j - pad;
        if (ix < 0 || ix >= wd) continue;
        const float wv = flip ? wp[(K - 1 - i) * K + (K - 1 - j)] : wp[i * K + j];
        acc = fmaf(wv, __ldg(xp + iy * wd + ix), acc);
      }
    }
    y[idx] = acc;
  }
}

// Threads per block of the weight-gradient kernels (the reduction assumes a multiple of 32).
#define WGRAD_THREADS 256

template <int K>
__device__ __forceinline__ void depthwise_wgrad(const float* __restrict__ x,
                                                const float* __restrict__ dy,
                                                float* __restrict__ part, int n, int channels,
                                                int h, int wd, int ho, int wo, int pad,
                                                int splits) {
  const int c = blockIdx.x;
  const int s = blockIdx.y;
  const int n0 = (int)((long)n * s / splits);
  const int n1 = (int)((long)n * (s + 1) / splits);
  const long plane = (long)ho * wo;
  const long count = (long)(n1 - n0) * plane;
  float acc[K * K];
#pragma unroll
  for (int t = 0; t < K * K; ++t) acc[t] = 0.f;
  for (long q = threadIdx.x; q < count; q += blockDim.x) {
    const long img = n0 + q / plane;
    const int r = (int)(q % plane);
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
        if (row && ix >= 0 && ix < wd) acc[i * K + j] = fmaf(g, __ldg(xp + iy * wd + ix), acc[i * K + j]);
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
  extern "C" __global__ void depthwise_fwd_k##K(const float* x, const float* w, float* y,    \
                                                int n_planes, int channels, int h, int wd,   \
                                                int ho, int wo, int pad, int flip) {         \
    depthwise_fwd<K>(x, w, y, n_planes, channels, h, wd, ho, wo, pad, flip);                 \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(WGRAD_THREADS)                                 \
      depthwise_wgrad_k##K(const float* x, const float* dy, float* part, int n, int channels, \
                           int h, int wd, int ho, int wo, int pad, int splits) {              \
    depthwise_wgrad<K>(x, dy, part, n, channels, h, wd, ho, wo, pad, splits);                 \
  }

DEPTHWISE_KERNELS(3)
DEPTHWISE_KERNELS(5)
DEPTHWISE_KERNELS(7)
