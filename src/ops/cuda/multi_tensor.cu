// Kernels over many tensors at once, as PyTorch's multi_tensor_apply: Adam's step touches every
// variable (220 of them in the blog UNet), and a launch per variable costs more than its work.
// The tensors come as a table of pointers passed by value in the kernel's parameters (like
// PyTorch's TensorListMetadata), so no table is copied to the device first.
//
// - `multi_tensor_gather`: flat[starts[k] + j] = tensor_k[j]: the gradients flattened and
//   concatenated (what `Tensor::cat` did with one copy launch per tensor).
// - `multi_tensor_sub`: tensor_k[j] -= flat[starts[k] + j], in each tensor's own buffer (the
//   variables minus Adam's update; the same f32 subtraction as candle's, bit for bit).
//
// One thread per flat element finds its tensor by a binary search over `starts` (ascending;
// empty tensors repeat a start). The caller checks that the total fits an int.

// The most tensors per launch (src/ops/cuda/multi_tensor.rs chunks longer lists): a 1.5 KB
// table, well inside the 4 KB a kernel's parameters may take.
#define MT_MAX_TENSORS 128

struct TensorTable {
  float* ptrs[MT_MAX_TENSORS];
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
    flat[i] = t.ptrs[k][i - t.starts[k]];
  }
}

extern "C" __global__ void multi_tensor_sub(const TensorTable t, const float* __restrict__ flat) {
  const int total = t.starts[t.count];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    MT_TENSOR_OF(t, i, k)
    t.ptrs[k][i - t.starts[k]] -= flat[i];
  }
}
