// Kernels over many tensors at once, as PyTorch's multi_tensor_apply: Adam's step and the EMA
// update touch every variable (220 of them in the blog UNet), and a launch per variable costs
// more than its work. The tensors come as a table of pointers passed by value in the kernel's
// parameters (like PyTorch's TensorListMetadata), so no table is copied to the device first.
//
// - `multi_tensor_gather`: flat[starts[k] + j] = a_k[j]: the gradients flattened and
//   concatenated (what `Tensor::cat` did with one copy launch per tensor).
// - `multi_tensor_sub`: a_k[j] -= flat[starts[k] + j], in each tensor's own buffer (the
//   variables minus Adam's update; the same f32 subtraction as candle's, bit for bit).
// - `multi_tensor_lerp`: out_k[j] = a_k[j]·keep + b_k[j]·take into new buffers (the EMA's
//   shadow weights moved towards the model's: three launches per variable before).
//
// One thread per flat element finds its tensor by a binary search over `starts` (ascending;
// empty tensors repeat a start). The caller checks that the total fits an int.

// The most tensors per launch (src/ops/cuda/multi_tensor.rs chunks longer lists): a 1.8 KB
// table, well inside the 4 KB a kernel's parameters may take.
#define MT_MAX_TENSORS 64

struct TensorTable {
  float* a[MT_MAX_TENSORS];
  float* b[MT_MAX_TENSORS];    // lerp's second operand
  float* out[MT_MAX_TENSORS];  // lerp's outputs
  int starts[MT_MAX_TENSORS + 1];  // starts[count] is the total
  int count;
};

// The tensor holding flat element i < starts[count]: the last k with starts[k] ≤ i.
#define MT_TENSOR_OF(t, i, k)                          \
  int k = 0;                                           \
  {                                                    \
    int hi_ = (t).count - 1;                           \
    while (k < hi_) {                                  \
      const int mid_ = (k + hi_ + 1) / 2;              \
      if ((t).starts[mid_] <= (i)) k = mid_;           \
      else hi_ = mid_ - 1;                             \
    }                                                  \
  }

extern "C" __global__ void multi_tensor_gather(const TensorTable t, float* __restrict__ flat) {
  const int total = t.starts[t.count];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    MT_TENSOR_OF(t, i, k)
    flat[i] = t.a[k][i - t.starts[k]];
  }
}

extern "C" __global__ void multi_tensor_sub(const TensorTable t, const float* __restrict__ flat) {
  const int total = t.starts[t.count];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    MT_TENSOR_OF(t, i, k)
    t.a[k][i - t.starts[k]] -= flat[i];
  }
}

extern "C" __global__ void multi_tensor_lerp(const TensorTable t, float keep, float take) {
  const int total = t.starts[t.count];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    MT_TENSOR_OF(t, i, k)
    const int j = i - t.starts[k];
    t.out[k][j] = t.a[k][j] * keep + t.b[k][j] * take;
  }
}
