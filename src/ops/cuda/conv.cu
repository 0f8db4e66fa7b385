// The data movement of ddpm-lab's CUDA convolution (f32, NCHW, square k×k kernel, stride s, zero
// padding p); cuBLAS does the arithmetic (src/ops/batched_conv.rs has the plan and its maths).
//
// - `conv_im2col`: the batch's im2col matrix col (K = C·k² rows, N·Ho·Wo columns, row-major):
//   col[(c·k + ky)·k + kx, (n·Ho + oy)·Wo + ox] = x[n, c, oy·s − p + ky, ox·s − p + kx], 0 off
//   the image. One thread per column and input channel (channels along grid y): it works out
//   its image and position once and writes that channel's k² rows, so the index arithmetic
//   (integer divisions) is paid once per k² elements. Threads run along the columns, so every
//   row's writes are coalesced, and reads are too for s = 1.
// - `conv_col2im`: its adjoint (for a chunk of n images, written from image `first_image` of
//   x), x[n, c, iy, ix] = Σ over the taps (ky, kx) that reach (iy, ix) of
//   col[(c·k + ky)·k + kx, (n·Ho + oy)·Wo + ox], with oy·s = iy + p − ky (likewise x). One
//   thread per input element, a fixed order of taps: no atomics, the same sums on every run.
//   Stride 1 takes a path without the per-tap divisions that find oy and ox.
// - `conv_channels_first`: (N, C, P) → (C, N, P), the layout of the weight gradient's product.
// - `conv_bias_fill`: y[n, c, p] = b[c], written before the forward product adds into y
//   (β = 1): the bias costs no pass of its own over the output, and the conv output without
//   it is never a tensor that autograd keeps.
//
// candle's own im2col spends most of its time on 64-bit divisions; here the caller checks that
// N·Ho·Wo, N·C·H·W and the other sizes fit an int, and only a matrix row's offset is 64-bit.

extern "C" __global__ void conv_im2col(const float* __restrict__ x, float* __restrict__ col,
                                       int n, int c, int h, int w, int k, int stride, int pad,
                                       int ho, int wo) {
  const int cols = n * ho * wo;
  const int positions = ho * wo;
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x) {
    // The column's image and position, found once for all the k² taps of every channel.
    const int b = j / positions;
    const int q = j - b * positions;
    const int oy = q / wo;
    const int y0 = oy * stride - pad;
    const int x0 = (q - oy * wo) * stride - pad;
    for (int ci = blockIdx.y; ci < c; ci += gridDim.y) {
      const float* plane = x + (long)(b * c + ci) * h * w;
      float* out = col + (long)ci * k * k * cols + j;
      for (int ky = 0; ky < k; ++ky) {
        const int iy = y0 + ky;
        const bool row_inside = iy >= 0 && iy < h;
        for (int kx = 0; kx < k; ++kx) {
          const int ix = x0 + kx;
          float v = 0.f;
          if (row_inside && ix >= 0 && ix < w) v = __ldg(plane + iy * w + ix);
          out[(long)(ky * k + kx) * cols] = v;
        }
      }
    }
  }
}

extern "C" __global__ void conv_col2im(const float* __restrict__ col, float* __restrict__ x,
                                       int n, int c, int h, int w, int k, int stride, int pad,
                                       int ho, int wo, int first_image) {
  const int cols = n * ho * wo;
  const int plane = h * w;
  const int total = n * c * plane;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int t = i / plane;  // b·C + ci
    const int q = i - t * plane;
    const int b = t / c;
    const int ci = t - b * c;
    const int iy = q / w;
    const int ix = q - iy * w;
    float acc = 0.f;
    if (stride == 1) {
      // The same taps in the same order, without a division per tap (most convs here).
      for (int ky = 0; ky < k; ++ky) {
        const int oy = iy + pad - ky;
        if (oy < 0) break;  // larger ky only lowers it
        if (oy >= ho) continue;
        const float* rowp = col + (long)((ci * k + ky) * k) * cols + (b * ho + oy) * wo;
        for (int kx = 0; kx < k; ++kx) {
          const int ox = ix + pad - kx;
          if (ox < 0) break;
          if (ox >= wo) continue;
          acc += __ldg(rowp + (long)kx * cols + ox);
        }
      }
    } else {
      for (int ky = 0; ky < k; ++ky) {
        const int ty = iy + pad - ky;  // oy·s
        if (ty < 0) break;             // larger ky only lowers it
        const int oy = ty / stride;
        if (oy * stride != ty || oy >= ho) continue;
        const float* rowp = col + (long)((ci * k + ky) * k) * cols + (b * ho + oy) * wo;
        for (int kx = 0; kx < k; ++kx) {
          const int tx = ix + pad - kx;  // ox·s
          if (tx < 0) break;
          const int ox = tx / stride;
          if (ox * stride != tx || ox >= wo) continue;
          acc += __ldg(rowp + (long)kx * cols + ox);
        }
      }
    }
    x[(long)first_image * c * plane + i] = acc;
  }
}

extern "C" __global__ void conv_channels_first(const float* __restrict__ src,
                                               float* __restrict__ dst, int n, int c,
                                               int positions) {
  const int total = n * c * positions;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    // i indexes dst (C, N, P).
    const int t = i / positions;  // ci·N + b
    const int q = i - t * positions;
    const int ci = t / n;
    const int b = t - ci * n;
    dst[i] = __ldg(src + (b * c + ci) * positions + q);
  }
}

extern "C" __global__ void conv_bias_fill(const float* __restrict__ b, float* __restrict__ y,
                                          int total, int positions, int channels) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    y[i] = __ldg(b + (i / positions) % channels);
  }
}
