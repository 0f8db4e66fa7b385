// Softmax over one axis of a contiguous tensor seen as (outer, axis, inner), with its backward
// dx = y ⊙ (dy − Σ_axis dy ⊙ y), for ops::softmax on CUDA. The forward pass over the last axis
// (inner = 1) is candle's own `softmax_f32`; the others are here:
//
// - `softmax_inner_fwd` (inner > 1): one thread per (o, i) walks its `axis` values, `inner`
//   apart, so consecutive threads read consecutive addresses: no transposed copy in and out,
//   as the linear attention's softmax of q over its 32 features needed.
// - `softmax_inner_bwd` (inner > 1): the same walk for the backward pass.
// - `softmax_rows_bwd` (inner = 1): one warp per row (rows along the blocks' warps), the dot
//   product reduced across the warp by butterfly shuffles, so every lane has it.
//
// The backward pass was four candle ops (a product, a sum, a broadcast subtraction and a
// product) plus a copy for an inner axis. The caller checks that the sizes fit an int.

extern "C" __global__ void softmax_inner_fwd(const float* __restrict__ x, float* __restrict__ y,
                                             int outer, int axis, int inner) {
  const int total = outer * inner;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    const int o = t / inner;
    const long base = (long)o * axis * inner + (t - o * inner);
    const float* xr = x + base;
    float* yr = y + base;
    float m = -INFINITY;
    for (int a = 0; a < axis; ++a) m = fmaxf(m, xr[(long)a * inner]);
    float s = 0.f;
    for (int a = 0; a < axis; ++a) {
      const float e = expf(xr[(long)a * inner] - m);
      yr[(long)a * inner] = e;
      s += e;
    }
    for (int a = 0; a < axis; ++a) yr[(long)a * inner] /= s;
  }
}

extern "C" __global__ void softmax_inner_bwd(const float* __restrict__ y,
                                             const float* __restrict__ dy,
                                             float* __restrict__ dx, int outer, int axis,
                                             int inner) {
  const int total = outer * inner;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    const int o = t / inner;
    const long base = (long)o * axis * inner + (t - o * inner);
    float dot = 0.f;
    for (int a = 0; a < axis; ++a) dot = fmaf(dy[base + (long)a * inner], y[base + (long)a * inner], dot);
    for (int a = 0; a < axis; ++a) {
      const long k = base + (long)a * inner;
      dx[k] = y[k] * (dy[k] - dot);
    }
  }
}

extern "C" __global__ void softmax_rows_bwd(const float* __restrict__ y,
                                            const float* __restrict__ dy,
                                            float* __restrict__ dx, int rows, int cols) {
  const int lane = threadIdx.x & 31;
  const int warps = blockDim.x >> 5;
  // The row is the same for the 32 lanes of a warp, so every lane takes part in the shuffles.
  for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += gridDim.x * warps) {
    const float* yr = y + (long)row * cols;
    const float* dr = dy + (long)row * cols;
    float dot = 0.f;
    for (int j = lane; j < cols; j += 32) dot = fmaf(dr[j], yr[j], dot);
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, mask);
    float* out = dx + (long)row * cols;
    for (int j = lane; j < cols; j += 32) out[j] = yr[j] * (dr[j] - dot);
  }
}
