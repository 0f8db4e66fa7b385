// GroupNorm on CUDA, f32, x of shape (N, C, S) contiguous (S: the product of the spatial dims),
// C split into G groups of C/G channels; a group of one image is the contiguous run of
// L = (C/G)·S values starting at (n·G + g)·L.
//
// candle-nn's GroupNorm is a dozen element-wise ops and reductions over the whole tensor
// forward and about twice that backward; these kernels read x once or twice per pass instead:
//
// - `group_norm_fwd`: one block per (n, g): mean, then variance around it (two passes, as
//   PyTorch's CPU kernel, so that a large mean costs no precision), then
//   y = (x − mean)·rstd·γ[c] + β[c]; writes (mean, rstd) per (n, g) to `stats`.
// - `group_norm_stats`: the same mean and rstd without y (when the backward pass does not have
//   the forward pass's).
// - `group_norm_backward`: one block per (n, g), from x, dy, the statistics and γ. First Σ dy
//   and Σ dy·x̂ of each channel of the group (a warp per channel), written to the output after
//   dx: the per-image parts of β's and γ's gradients (summed over n by the caller, in a fixed
//   order). Then, with dx̂ = dy·γ, dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), the two means
//   over the group from those sums: mean(dx̂) = Σ_c γ[c]·Σ dy / L and
//   mean(dx̂·x̂) = Σ_c γ[c]·Σ dy·x̂ / L. One launch where a per-channel kernel, three copies to
//   pack its inputs and an input-gradient kernel took five.
//
// Indices within one image are `int`s (the caller checks that C·S fits one, with room for a
// block's stride): a 64-bit division per element cost more than the memory traffic.

// Threads per block of the per-group kernels (GROUP_THREADS in group_norm.rs): a block per
// group of one image is few blocks for a small batch, so each is made as wide as a block can be.
#define GN_GROUP_THREADS 1024

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? warp_sums[lane] : 0.f;
  if (warp == 0) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sums[0] = v;
  }
  __syncthreads();
  v = warp_sums[0];
  __syncthreads();  // warp_sums is reused by the next call
  return v;
}

// Mean and 1/sqrt(var + eps) of the group at xg, L values long.
__device__ __forceinline__ float2 group_stats(const float* __restrict__ xg, int len, float eps) {
  float s = 0.f;
  for (int i = threadIdx.x; i < len; i += blockDim.x) s += xg[i];
  const float mean = block_sum(s) / (float)len;
  float q = 0.f;
  for (int i = threadIdx.x; i < len; i += blockDim.x) {
    const float d = xg[i] - mean;
    q = fmaf(d, d, q);
  }
  const float var = block_sum(q) / (float)len;
  return make_float2(mean, 1.f / sqrtf(var + eps));
}

extern "C" __global__ void __launch_bounds__(GN_GROUP_THREADS) group_norm_fwd(const float* __restrict__ x,
                                          const float* __restrict__ gamma,
                                          const float* __restrict__ beta, float* __restrict__ y,
                                          float* __restrict__ stats, int channels, int spatial,
                                          int groups, float eps) {
  const int ng = blockIdx.x;
  const int g = ng % groups;
  const int cpg = channels / groups;
  const int len = cpg * spatial;
  const float* xg = x + (long)ng * len;
  float* yg = y + (long)ng * len;
  const float2 st = group_stats(xg, len, eps);
  for (int i = threadIdx.x; i < len; i += blockDim.x) {
    const int c = g * cpg + i / spatial;
    yg[i] = fmaf((xg[i] - st.x) * st.y, gamma[c], beta[c]);
  }
  if (threadIdx.x == 0) {
    stats[2 * ng] = st.x;
    stats[2 * ng + 1] = st.y;
  }
}

extern "C" __global__ void __launch_bounds__(GN_GROUP_THREADS) group_norm_stats(const float* __restrict__ x, float* __restrict__ stats,
                                            int channels, int spatial, int groups, float eps) {
  const int ng = blockIdx.x;
  const int len = (channels / groups) * spatial;
  const float2 st = group_stats(x + (long)ng * len, len, eps);
  if (threadIdx.x == 0) {
    stats[2 * ng] = st.x;
    stats[2 * ng + 1] = st.y;
  }
}

extern "C" __global__ void __launch_bounds__(GN_GROUP_THREADS)
    group_norm_backward(const float* __restrict__ x, const float* __restrict__ dy,
                        const float* __restrict__ stats, const float* __restrict__ gamma,
                        float* __restrict__ out, int n_images, int channels, int spatial,
                        int groups) {
  const int ng = blockIdx.x;
  const int n = ng / groups;
  const int g = ng % groups;
  const int cpg = channels / groups;
  const int len = cpg * spatial;
  const float mean = stats[2 * ng];
  const float rstd = stats[2 * ng + 1];
  const float* xg = x + (long)ng * len;
  const float* dg = dy + (long)ng * len;
  float* sums = out + (long)n_images * channels * spatial;
  // Σ dy and Σ dy·x̂ of each channel of the group, a warp per channel; lane 0 keeps
  // Σ_c γ[c]·Σ dy and Σ_c γ[c]·Σ dy·x̂ over the warp's channels.
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  float a = 0.f, b = 0.f;
  for (int ci = warp; ci < cpg; ci += warps) {
    const float* xc = xg + ci * spatial;
    const float* dc = dg + ci * spatial;
    float s_dy = 0.f, s_dyx = 0.f;
    for (int i = lane; i < spatial; i += 32) {
      const float d = dc[i];
      s_dy += d;
      s_dyx = fmaf(d, (xc[i] - mean) * rstd, s_dyx);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      s_dy += __shfl_down_sync(0xffffffffu, s_dy, off);
      s_dyx += __shfl_down_sync(0xffffffffu, s_dyx, off);
    }
    if (lane == 0) {
      const int c = g * cpg + ci;
      const long nc = (long)n * channels + c;
      sums[2 * nc] = s_dy;
      sums[2 * nc + 1] = s_dyx;
      a = fmaf(gamma[c], s_dy, a);
      b = fmaf(gamma[c], s_dyx, b);
    }
  }
  const float mean_dxhat = block_sum(a) / (float)len;
  const float mean_dxhat_xhat = block_sum(b) / (float)len;
  float* og = out + (long)ng * len;
  for (int i = threadIdx.x; i < len; i += blockDim.x) {
    const int c = g * cpg + i / spatial;
    const float xhat = (xg[i] - mean) * rstd;
    og[i] = rstd * (dg[i] * gamma[c] - mean_dxhat - xhat * mean_dxhat_xhat);
  }
}
