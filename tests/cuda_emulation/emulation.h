// Runs ddpm-lab's CUDA kernels (src/ops/cuda/*.cu) on the CPU, for tests on machines without a
// GPU: the .cu files compile as C++ with this header first.
//
// A launch runs its blocks one after another; the threads of a block are OS threads, so that
// __syncthreads() is a barrier across them and a `__shared__` array (a function-local `static`
// here) is shared by them and by no other running block. __shfl_down_sync and __shfl_xor_sync
// exchange values through a per-warp buffer between two per-warp barriers. A thread that returns
// drops out of its barriers, as an exited thread does on a GPU. Only what the kernels use is
// emulated: 1-D blocks of whole warps, f32 shuffles, the intrinsics below.
#pragma once

#include <barrier>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

namespace emu {
inline thread_local dim3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;
inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local std::barrier<>* warp_barrier = nullptr;
inline thread_local float* warp_slots = nullptr;

// Runs `kernel()` as the grid `grid` of blocks of `block.x` threads (1-D blocks).
template <class F>
void launch(dim3 grid, dim3 block, F kernel) {
  grid_dim = grid;
  block_dim = block;
  const unsigned n = block.x;
  const unsigned warps = (n + 31) / 32;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> block_bar(n);
        std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
        for (unsigned w = 0; w < warps; ++w)
          warp_bars.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w)));
        std::vector<float> slots(32 * warps);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < n; ++t) {
          threads.emplace_back([&, t] {
            thread_idx = {t, 0, 0};
            block_idx = {bx, by, bz};
            block_barrier = &block_bar;
            warp_barrier = warp_bars[t / 32].get();
            warp_slots = &slots[32 * (t / 32)];
            kernel();
            block_barrier->arrive_and_drop();
            warp_barrier->arrive_and_drop();
          });
        }
        for (auto& th : threads) th.join();
      }
}
}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(n)
#define __align__(n) __attribute__((aligned(n)))
// Shared by every thread of the (one) running block.
#define __shared__ static

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline float __shfl_xor_sync(unsigned, float v, int mask) {
  const unsigned lane = threadIdx.x % 32;
  emu::warp_slots[lane] = v;
  emu::warp_barrier->arrive_and_wait();
  const float r = emu::warp_slots[lane ^ mask];
  emu::warp_barrier->arrive_and_wait();
  return r;
}
inline float __shfl_down_sync(unsigned, float v, int delta) {
  const unsigned lane = threadIdx.x % 32;
  emu::warp_slots[lane] = v;
  emu::warp_barrier->arrive_and_wait();
  const float r = lane + delta < 32 ? emu::warp_slots[lane + delta] : v;
  emu::warp_barrier->arrive_and_wait();
  return r;
}
