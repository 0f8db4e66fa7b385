// ddpm-lab's CUDA kernels run on the CPU (emulation.h) against plain loops, with the launch
// shapes the Rust side uses (src/ops/cuda/*.rs). Built and run by tests/cuda_emulation.rs;
// exits non-zero on the first mismatch.
#include "emulation.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "conv.cu"
#include "depthwise.cu"
#include "elementwise.cu"
#include "group_norm.cu"
#include "implicit_conv.cu"
#include "multi_tensor.cu"
#include "softmax.cu"

namespace {

std::vector<float> random(size_t n, unsigned seed) {
  std::vector<float> v(n);
  unsigned s = seed * 2654435761u + 12345u;
  for (auto& e : v) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    e = (float)(s % 2001) / 1000.f - 1.f;
  }
  return v;
}

int failures = 0;

void check(const std::vector<float>& got, const std::vector<double>& want, double tol,
           const std::string& what) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) {  // NaN counts as worst
      worst = d;
      at = i;
    }
  }
  const bool ok = got.size() == want.size() && worst <= tol;
  std::printf("%s %s: max abs diff %.3g (at %zu)\n", ok ? "ok  " : "FAIL", what.c_str(), worst,
              at);
  if (!ok) ++failures;
}

// As src/ops/cuda/mod.rs: blocks for a grid-stride loop.
unsigned blocks_for(size_t n, unsigned threads) {
  return (unsigned)std::clamp<size_t>((n + threads - 1) / threads, 1, 65535);
}

void conv_kernels() {
  struct G {
    int n, c, h, w, k, s, p;
  };
  for (G g : {G{2, 3, 5, 6, 3, 1, 1}, G{2, 2, 8, 8, 4, 2, 1}, G{1, 2, 7, 6, 3, 2, 0},
              G{2, 1, 9, 7, 7, 1, 3}}) {
    const int ho = (g.h + 2 * g.p - g.k) / g.s + 1, wo = (g.w + 2 * g.p - g.k) / g.s + 1;
    const int rows = g.c * g.k * g.k, cols = g.n * ho * wo;
    const std::string name = "conv n" + std::to_string(g.n) + " c" + std::to_string(g.c) +
                             " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " k" +
                             std::to_string(g.k) + " s" + std::to_string(g.s) + " p" +
                             std::to_string(g.p);
    const auto x = random((size_t)g.n * g.c * g.h * g.w, 1);
    // The batch's im2col matrix: col[(c·k + ky)·k + kx, (b·Ho + oy)·Wo + ox].
    std::vector<double> col_ref((size_t)rows * cols, 0.0);
    for (int ci = 0; ci < g.c; ++ci)
      for (int ky = 0; ky < g.k; ++ky)
        for (int kx = 0; kx < g.k; ++kx)
          for (int b = 0; b < g.n; ++b)
            for (int oy = 0; oy < ho; ++oy)
              for (int ox = 0; ox < wo; ++ox) {
                const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
                const size_t r = ((size_t)ci * g.k + ky) * g.k + kx;
                const size_t j = ((size_t)b * ho + oy) * wo + ox;
                if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
                  col_ref[r * cols + j] = x[(((size_t)b * g.c + ci) * g.h + iy) * g.w + ix];
              }
    std::vector<float> col((size_t)rows * cols, NAN);
    emu::launch({blocks_for(cols, 256), (unsigned)std::min(g.c, 65535), 1}, {256, 1, 1}, [&] {
      conv_im2col(x.data(), col.data(), g.n, g.c, g.h, g.w, g.k, g.s, g.p, ho, wo);
    });
    check(col, col_ref, 0, name + ": im2col");
    // Fewer block rows than channels (as past 65 535 channels): the kernel loops over them.
    std::fill(col.begin(), col.end(), NAN);
    emu::launch({1, 1, 1}, {32, 1, 1}, [&] {
      conv_im2col(x.data(), col.data(), g.n, g.c, g.h, g.w, g.k, g.s, g.p, ho, wo);
    });
    check(col, col_ref, 0, name + ": im2col, one block");

    // col2im is im2col's adjoint: every entry added back onto its pixel.
    const auto dcol = random((size_t)rows * cols, 2);
    std::vector<double> dx_ref((size_t)g.n * g.c * g.h * g.w, 0.0);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) {
        const int kx = r % g.k, ky = (r / g.k) % g.k, ci = r / (g.k * g.k);
        const int b = j / (ho * wo), oy = (j / wo) % ho, ox = j % wo;
        const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
          dx_ref[(((size_t)b * g.c + ci) * g.h + iy) * g.w + ix] += dcol[(size_t)r * cols + j];
      }
    std::vector<float> dx(dx_ref.size(), NAN);
    emu::launch({blocks_for(dx.size(), 256), 1, 1}, {256, 1, 1}, [&] {
      conv_col2im(dcol.data(), dx.data(), g.n, g.c, g.h, g.w, g.k, g.s, g.p, ho, wo, 0);
    });
    check(dx, dx_ref, 1e-5, name + ": col2im");
    // A chunk's col2im writes from its first image on and nothing before it.
    const size_t image = (size_t)g.c * g.h * g.w;
    std::vector<float> dx_at(dx_ref.size() + image, NAN);
    emu::launch({blocks_for(dx.size(), 256), 1, 1}, {256, 1, 1}, [&] {
      conv_col2im(dcol.data(), dx_at.data(), g.n, g.c, g.h, g.w, g.k, g.s, g.p, ho, wo, 1);
    });
    const bool before_untouched =
        std::all_of(dx_at.begin(), dx_at.begin() + image, [](float v) { return std::isnan(v); });
    if (!before_untouched) {
      std::printf("FAIL %s: col2im at image 1 wrote before it\n", name.c_str());
      ++failures;
    }
    check(std::vector<float>(dx_at.begin() + image, dx_at.end()), dx_ref, 1e-5,
          name + ": col2im at image 1");
  }
  // (N, C, P) → (C, N, P).
  const int n = 3, c = 4, p = 37;
  const auto src = random((size_t)n * c * p, 3);
  std::vector<double> want(src.size());
  for (int b = 0; b < n; ++b)
    for (int ci = 0; ci < c; ++ci)
      for (int q = 0; q < p; ++q)
        want[((size_t)ci * n + b) * p + q] = src[((size_t)b * c + ci) * p + q];
  std::vector<float> dst(src.size(), NAN);
  emu::launch({blocks_for(dst.size(), 256), 1, 1}, {256, 1, 1},
              [&] { conv_channels_first(src.data(), dst.data(), n, c, p); });
  check(dst, want, 0, "conv_channels_first");
  // The bias written over (N, Co, P) before the forward product adds into it.
  const auto bias = random(c, 4);
  std::vector<double> filled(src.size());
  for (size_t i = 0; i < filled.size(); ++i) filled[i] = bias[(i / p) % c];
  for (unsigned grid : {blocks_for(filled.size(), 256), 1u}) {
    std::vector<float> y(filled.size(), NAN);
    emu::launch({grid, 1, 1}, {grid == 1 ? 32u : 256u, 1, 1},
                [&] { conv_bias_fill(bias.data(), y.data(), n * c * p, p, c); });
    check(y, filled, 0, "conv_bias_fill, " + std::to_string(grid) + " blocks");
  }
}

void channel_bias() {
  const int n = 3, c = 5, p = 29, total = n * c * p;
  const auto x = random(total, 4);
  for (int per_image = 0; per_image < 2; ++per_image) {
    const auto b = random(per_image ? n * c : c, 5);
    std::vector<double> want(total);
    for (int i = 0; i < total; ++i) {
      const int row = i / p;
      want[i] = (double)x[i] + b[per_image ? row : row % c];
    }
    std::vector<float> y(total, NAN);
    emu::launch({blocks_for(total, 256), 1, 1}, {256, 1, 1}, [&] {
      channel_bias_add(x.data(), b.data(), y.data(), total, p, c, per_image);
    });
    check(y, want, 1e-6, per_image ? "channel_bias_add per image" : "channel_bias_add");
  }
}

void in_place() {
  const int n = 1000;
  const auto x = random(n, 13);
  auto y = random(n, 14);
  std::vector<double> want(n);
  for (int i = 0; i < n; ++i) want[i] = (double)(y[i] - x[i]);  // f32 subtraction, exact
  emu::launch({blocks_for(n, 256), 1, 1}, {256, 1, 1}, [&] { sub_in_place(x.data(), y.data(), n); });
  check(y, want, 0, "sub_in_place");
}

void gelu() {
  const int n = 2000;
  auto x = random(n, 15);
  for (auto& v : x) v *= 6.f;  // well into both tails
  const auto dy = random(n, 16);
  std::vector<double> y_ref(n), dx_ref(n);
  for (int i = 0; i < n; ++i) {
    const double v = x[i], cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    y_ref[i] = v * cdf;
    dx_ref[i] = dy[i] * (cdf + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI));
  }
  std::vector<float> y(n, NAN), dx(n, NAN);
  emu::launch({blocks_for(n, 256), 1, 1}, {256, 1, 1}, [&] { gelu_fwd(x.data(), y.data(), n); });
  check(y, y_ref, 1e-6, "gelu_fwd");
  emu::launch({blocks_for(n, 256), 1, 1}, {256, 1, 1},
              [&] { gelu_bwd(x.data(), dy.data(), dx.data(), n); });
  check(dx, dx_ref, 1e-6, "gelu_bwd");
}

template <int K>
void depthwise(void (*fwd)(const float*, const float*, const float*, float*, int, int, int, int,
                           int, int, int, int, int, int, int, int, int),
               void (*wgrad)(const float*, const float*, float*, int, int, int, int, int, int,
                             int, int, int)) {
  const int n = 3, c = 4, h = 9, w = 8;
  for (int pad : {K / 2, K - 1}) {
    const int ho = h + 2 * pad + 1 - K, wo = w + 2 * pad + 1 - K;
    const auto x = random((size_t)n * c * h * w, 6);
    const auto wt = random((size_t)c * K * K, 7);
    // The per-plane bias (a ConvNeXt block's conv bias plus its image's time embedding).
    const auto plane_bias = random((size_t)n * c, 13);
    // Without a bias, flipped and not (the forward pass and the input gradient); with one.
    for (int variant = 0; variant < 3; ++variant) {
      const int flip = variant == 1, has_bias = variant == 2;
      std::vector<double> want((size_t)n * c * ho * wo, 0.0);
      for (int pl = 0; pl < n * c; ++pl)
        for (int oy = 0; oy < ho; ++oy)
          for (int ox = 0; ox < wo; ++ox) {
            double acc = 0;
            for (int i = 0; i < K; ++i)
              for (int j = 0; j < K; ++j) {
                const int iy = oy + i - pad, ix = ox + j - pad;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                const int t = flip ? (K - 1 - i) * K + (K - 1 - j) : i * K + j;
                acc += (double)wt[(pl % c) * K * K + t] * x[((size_t)pl * h + iy) * w + ix];
              }
            want[((size_t)pl * ho + oy) * wo + ox] = acc + (has_bias ? plane_bias[pl] : 0.0);
          }
      // Tiles as DepthwiseTiles::plan (src/ops/depthwise_tiles.rs) plans them for these sizes
      // (the whole map, as many planes as 1,024 outputs or the shared tile allow), then small
      // tiles with ragged edges, a block of planes that does not divide them, and fewer block
      // rows than blocks of planes (the kernel loops).
      struct Tiles {
        int tile_h, tile_w, planes, grid_y;
        unsigned threads;
      };
      const int planned = std::max(
          1, std::min({(1024 + ho * wo - 1) / (ho * wo), DW_TILE_FLOATS / ((ho + K - 1) * (wo + K - 1)),
                       DW_MAX_PLANES, n * c}));
      for (Tiles t : {Tiles{ho, wo, planned, (n * c + planned - 1) / planned, 256},
                      Tiles{4, 3, 5, 1, 64}, Tiles{2, 5, 1, 7, 32}}) {
        const int tiles_x = (wo + t.tile_w - 1) / t.tile_w;
        const int tiles_y = (ho + t.tile_h - 1) / t.tile_h;
        // The kernel trusts the plan: its tiles must fit the shared tile.
        const int tile_in = (t.tile_h + K - 1) * (t.tile_w + K - 1);
        if (t.planes * tile_in > DW_TILE_FLOATS || t.planes > DW_MAX_PLANES) {
          std::printf("FAIL depthwise_fwd_k%d: %d planes of %d floats overflow the tile\n", K,
                      t.planes, tile_in);
          ++failures;
          continue;
        }
        std::vector<float> y(want.size(), NAN);
        emu::launch({(unsigned)(tiles_x * tiles_y), (unsigned)t.grid_y, 1}, {t.threads, 1, 1}, [&] {
          // Without a bias the kernel never reads its pointer: the weight stands in.
          fwd(x.data(), wt.data(), has_bias ? plane_bias.data() : wt.data(), y.data(), n * c, c,
              h, w, ho, wo, pad, flip, t.tile_h, t.tile_w, tiles_x, t.planes, has_bias);
        });
        check(y, want, 1e-5,
              "depthwise_fwd_k" + std::to_string(K) + " pad " + std::to_string(pad) +
                  (flip ? " flipped" : "") + (has_bias ? " with plane bias" : "") + " tiles " + std::to_string(t.tile_h) + "x" +
                  std::to_string(t.tile_w) + " planes " + std::to_string(t.planes));
      }
    }
    // Weight gradient: partial sums over `splits` slices of the batch.
    const auto dy = random((size_t)n * c * ho * wo, 8);
    const int splits = 2;
    std::vector<double> want((size_t)c * splits * K * K, 0.0);
    for (int s = 0; s < splits; ++s) {
      const int n0 = n * s / splits, n1 = n * (s + 1) / splits;
      for (int b = n0; b < n1; ++b)
        for (int ci = 0; ci < c; ++ci)
          for (int oy = 0; oy < ho; ++oy)
            for (int ox = 0; ox < wo; ++ox)
              for (int i = 0; i < K; ++i)
                for (int j = 0; j < K; ++j) {
                  const int iy = oy + i - pad, ix = ox + j - pad;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  want[((size_t)ci * splits + s) * K * K + i * K + j] +=
                      (double)dy[(((size_t)b * c + ci) * ho + oy) * wo + ox] *
                      x[(((size_t)b * c + ci) * h + iy) * w + ix];
                }
    }
    // Both paths: taps read from global memory, and from the staged planes.
    for (int staged = 0; staged < 2; ++staged) {
      std::vector<float> part(want.size(), NAN);
      emu::launch({(unsigned)c, (unsigned)splits, 1}, {WGRAD_THREADS, 1, 1}, [&] {
        wgrad(x.data(), dy.data(), part.data(), n, c, h, w, ho, wo, pad, splits, staged);
      });
      check(part, want, 1e-4,
            "depthwise_wgrad_k" + std::to_string(K) + " pad " + std::to_string(pad) +
                (staged ? " staged" : ""));
    }
  }
}

// GroupNorm with `groups` groups of 6 channels over 35 positions (more than a warp).
void group_norm(int groups) {
  const int n = 2, c = 6, s = 35, cpg = c / groups, len = cpg * s;
  const float eps = 1e-5f;
  const auto x = random((size_t)n * c * s, 9);
  const auto gamma = random(c, 10);
  const auto beta = random(c, 11);
  const auto dy = random((size_t)n * c * s, 12);
  // Reference statistics, output and gradients in double.
  std::vector<double> mean(n * groups), rstd(n * groups), y_ref(x.size()), dx_ref(x.size());
  std::vector<double> sums_ref((size_t)2 * n * c, 0.0);
  for (int ng = 0; ng < n * groups; ++ng) {
    double m = 0, v = 0;
    for (int i = 0; i < len; ++i) m += x[(size_t)ng * len + i];
    m /= len;
    for (int i = 0; i < len; ++i) v += std::pow(x[(size_t)ng * len + i] - m, 2);
    v /= len;
    mean[ng] = m;
    rstd[ng] = 1 / std::sqrt(v + eps);
    const int g = ng % groups;
    double a = 0, b = 0;  // Σ dx̂, Σ dx̂·x̂ over the group
    for (int i = 0; i < len; ++i) {
      const int ch = g * cpg + i / s;
      const size_t at = (size_t)ng * len + i;
      const double xhat = (x[at] - m) * rstd[ng];
      y_ref[at] = xhat * gamma[ch] + beta[ch];
      a += dy[at] * gamma[ch];
      b += dy[at] * gamma[ch] * xhat;
      sums_ref[2 * ((size_t)(ng / groups) * c + ch)] += dy[at];
      sums_ref[2 * ((size_t)(ng / groups) * c + ch) + 1] += dy[at] * xhat;
    }
    for (int i = 0; i < len; ++i) {
      const int ch = g * cpg + i / s;
      const size_t at = (size_t)ng * len + i;
      const double xhat = (x[at] - m) * rstd[ng];
      dx_ref[at] = rstd[ng] * (dy[at] * gamma[ch] - a / len - xhat * b / len);
    }
  }
  std::vector<float> y(x.size(), NAN), stats(2 * n * groups, NAN);
  emu::launch({(unsigned)(n * groups), 1, 1}, {GN_GROUP_THREADS, 1, 1}, [&] {
    group_norm_fwd(x.data(), gamma.data(), beta.data(), y.data(), stats.data(), c, s, groups,
                   eps);
  });
  check(y, y_ref, 1e-5, "group_norm_fwd");
  std::vector<double> stats_ref;
  for (int ng = 0; ng < n * groups; ++ng) {
    stats_ref.push_back(mean[ng]);
    stats_ref.push_back(rstd[ng]);
  }
  check(stats, stats_ref, 1e-5, "group_norm_fwd stats");
  std::vector<float> stats2(stats.size(), NAN);
  emu::launch({(unsigned)(n * groups), 1, 1}, {GN_GROUP_THREADS, 1, 1},
              [&] { group_norm_stats(x.data(), stats2.data(), c, s, groups, eps); });
  check(stats2, stats_ref, 1e-5, "group_norm_stats");
  // The backward pass: dx, then the channel sums, in one buffer; as launched (a block of
  // GN_GROUP_THREADS per image and group), and with 2 warps, each then looping over channels.
  for (unsigned threads : {(unsigned)GN_GROUP_THREADS, 64u}) {
    std::vector<float> out(x.size() + 2 * n * c, NAN);
    emu::launch({(unsigned)(n * groups), 1, 1}, {threads, 1, 1}, [&] {
      group_norm_backward(x.data(), dy.data(), stats.data(), gamma.data(), out.data(), n, c, s,
                          groups);
    });
    const std::string how =
        " (" + std::to_string(groups) + " groups, " + std::to_string(threads) + " threads)";
    check(std::vector<float>(out.begin(), out.begin() + x.size()), dx_ref, 1e-4,
          "group_norm_backward dx" + how);
    check(std::vector<float>(out.begin() + x.size(), out.end()), sums_ref, 1e-4,
          "group_norm_backward channel sums" + how);
  }
}

// Gathering tensors into one flat buffer and subtracting its parts from them, through a table
// with an empty tensor among them (its start repeats), by a full grid and by one small block.
void multi_tensor() {
  const std::vector<int> lens = {5, 0, 300, 1, 77};
  std::vector<std::vector<float>> ts;
  for (size_t k = 0; k < lens.size(); ++k) ts.push_back(random(lens[k], 20 + k));
  std::vector<double> want;
  for (const auto& t : ts) want.insert(want.end(), t.begin(), t.end());
  const int total = (int)want.size();
  for (unsigned grid : {blocks_for(total, 256), 1u}) {
    const unsigned threads = grid == 1 ? 32 : 256;
    auto work = ts;
    TensorTable table{};
    table.count = (int)work.size();
    int start = 0;
    for (size_t k = 0; k < work.size(); ++k) {
      table.a[k] = work[k].data();
      table.starts[k] = start;
      start += lens[k];
    }
    table.starts[work.size()] = start;
    std::vector<float> flat(total, NAN);
    emu::launch({grid, 1, 1}, {threads, 1, 1}, [&] { multi_tensor_gather(table, flat.data()); });
    check(flat, want, 0, "multi_tensor_gather, " + std::to_string(grid) + " blocks");
    // Subtract a distinct value from each element: every element must get its own.
    const auto update = random(total, 30);
    std::vector<double> after;
    for (int i = 0; i < total; ++i) after.push_back((float)want[i] - update[i]);
    emu::launch({grid, 1, 1}, {threads, 1, 1},
                [&] { multi_tensor_sub(table, update.data()); });
    std::vector<float> got;
    for (const auto& t : work) got.insert(got.end(), t.begin(), t.end());
    check(got, after, 0, "multi_tensor_sub, " + std::to_string(grid) + " blocks");
    // out = a·keep + b·take into separate buffers, the a's untouched.
    auto others = ts;
    for (size_t k = 0; k < others.size(); ++k) others[k] = random(lens[k], 50 + k);
    std::vector<std::vector<float>> outs;
    for (int len : lens) outs.emplace_back(len, NAN);
    for (size_t k = 0; k < work.size(); ++k) {
      table.b[k] = others[k].data();
      table.out[k] = outs[k].data();
    }
    const float keep = 0.75f, take = 0.25f;
    emu::launch({grid, 1, 1}, {threads, 1, 1}, [&] { multi_tensor_lerp(table, keep, take); });
    std::vector<double> lerp_want;
    std::vector<float> lerp_got, a_now;
    for (size_t k = 0; k < work.size(); ++k)
      for (int j = 0; j < lens[k]; ++j) {
        lerp_want.push_back((double)work[k][j] * keep + (double)others[k][j] * take);
        lerp_got.push_back(outs[k][j]);
        a_now.push_back(work[k][j]);
      }
    check(lerp_got, lerp_want, 1e-6, "multi_tensor_lerp, " + std::to_string(grid) + " blocks");
    check(a_now, after, 0, "multi_tensor_lerp leaves its operands");
  }
}

// Softmax over an inner axis (forward and backward) and the backward over rows, against the
// formulas in double: y = exp(x − max)/Σ, dx = y ⊙ (dy − Σ dy ⊙ y).
void softmax() {
  const int outer = 3, axis = 5, inner = 7, total = outer * axis * inner;
  const auto x = random(total, 40);
  const auto dy = random(total, 41);
  auto reference = [&](int in) {
    std::vector<double> y(total), dx(total);
    for (int o = 0; o < total / (axis * in); ++o)
      for (int i = 0; i < in; ++i) {
        auto at = [&](int a) { return ((size_t)o * axis + a) * in + i; };
        double m = -INFINITY, s = 0, dot = 0;
        for (int a = 0; a < axis; ++a) m = std::max(m, (double)x[at(a)]);
        for (int a = 0; a < axis; ++a) s += std::exp(x[at(a)] - m);
        for (int a = 0; a < axis; ++a) y[at(a)] = std::exp(x[at(a)] - m) / s;
        for (int a = 0; a < axis; ++a) dot += dy[at(a)] * y[at(a)];
        for (int a = 0; a < axis; ++a) dx[at(a)] = y[at(a)] * (dy[at(a)] - dot);
      }
    return std::make_pair(y, dx);
  };
  const auto [y_ref, dx_ref] = reference(inner);
  for (unsigned grid : {blocks_for(outer * inner, 256), 1u}) {
    const unsigned threads = grid == 1 ? 32 : 256;
    const std::string how = ", " + std::to_string(grid) + " blocks";
    std::vector<float> y(total, NAN), dx(total, NAN);
    emu::launch({grid, 1, 1}, {threads, 1, 1},
                [&] { softmax_inner_fwd(x.data(), y.data(), outer, axis, inner); });
    check(y, y_ref, 1e-6, "softmax_inner_fwd" + how);
    // The backward pass from the exact y, so that only its own arithmetic is compared.
    const std::vector<float> yf(y_ref.begin(), y_ref.end());
    emu::launch({grid, 1, 1}, {threads, 1, 1}, [&] {
      softmax_inner_bwd(yf.data(), dy.data(), dx.data(), outer, axis, inner);
    });
    check(dx, dx_ref, 1e-6, "softmax_inner_bwd" + how);
  }
  // Rows (inner = 1): the same numbers as 3 rows of 35, more than a warp and not a multiple.
  const int rows = 3, cols = total / rows;
  std::vector<double> rdx(total);
  std::vector<float> ry(total);
  for (int r = 0; r < rows; ++r) {
    double s = 0, m = -INFINITY, dot = 0;
    std::vector<double> e(cols);
    for (int j = 0; j < cols; ++j) m = std::max(m, (double)x[r * cols + j]);
    for (int j = 0; j < cols; ++j) s += e[j] = std::exp(x[r * cols + j] - m);
    for (int j = 0; j < cols; ++j) ry[r * cols + j] = (float)(e[j] / s);
    for (int j = 0; j < cols; ++j) dot += (double)dy[r * cols + j] * ry[r * cols + j];
    for (int j = 0; j < cols; ++j)
      rdx[r * cols + j] = ry[r * cols + j] * (dy[r * cols + j] - dot);
  }
  // As the Rust side launches (8 warps a block, a block per 8 rows), then 2 warps for 3 rows.
  for (auto [grid, threads] : {std::pair{1u, 256u}, std::pair{1u, 64u}}) {
    std::vector<float> dx(total, NAN);
    emu::launch({grid, 1, 1}, {threads, 1, 1},
                [&] { softmax_rows_bwd(ry.data(), dy.data(), dx.data(), rows, cols); });
    check(dx, rdx, 1e-6, "softmax_rows_bwd, " + std::to_string(threads / 32) + " warps");
  }
}

// The implicit-GEMM conv against a direct loop: the forward conv (with and without a bias) and,
// with `flip`, the input gradient of a stride-1 conv, as src/ops/cuda/conv.rs launches them
// (128 threads; grid x: tiles of 128 columns, y: tiles of BM channels). The shapes leave
// partial tiles in both directions and taps off every edge.
// f32 round-off grows with the sums' size: a tolerance of 2e-6 of the largest |value|.
double scaled_tol(const std::vector<double>& want) {
  double top = 1;
  for (double v : want) top = std::max(top, std::fabs(v));
  return 2e-6 * top;
}

using ImplicitConv = void (*)(const float*, const float*, const float*, float*, int, int, int,
                              int, int, int, int, int, int, int, int, int);
void implicit_conv(ImplicitConv kernel, int ks, int bm, const std::string& kname) {
  struct G {
    int n, c, h, w, m, s, p;
  };
  for (G g : {G{2, 3, 5, 6, 5, 1, 1}, G{3, 4, 9, 10, 70, 1, 1}, G{2, 2, 8, 7, 6, 2, 1},
              G{1, 3, 6, 6, 33, 1, 0}, G{2, 2, 7, 9, 4, 2, 0}, G{2, 20, 5, 6, 17, 1, 1}}) {
    const int ho = (g.h + 2 * g.p - ks) / g.s + 1, wo = (g.w + 2 * g.p - ks) / g.s + 1;
    if (ho < 1 || wo < 1) continue;
    const int cols = g.n * ho * wo;
    const std::string name = kname + " n" + std::to_string(g.n) + " c" + std::to_string(g.c) +
                             " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " m" +
                             std::to_string(g.m) + " s" + std::to_string(g.s) + " p" +
                             std::to_string(g.p);
    const auto x = random((size_t)g.n * g.c * g.h * g.w, 21);
    const auto w = random((size_t)g.m * g.c * ks * ks, 22);
    const auto bias = random(g.m, 23);
    std::vector<double> y_ref((size_t)g.n * g.m * ho * wo, 0.0);
    for (int b = 0; b < g.n; ++b)
      for (int mo = 0; mo < g.m; ++mo)
        for (int oy = 0; oy < ho; ++oy)
          for (int ox = 0; ox < wo; ++ox) {
            double acc = 0;
            for (int ci = 0; ci < g.c; ++ci)
              for (int ky = 0; ky < ks; ++ky)
                for (int kx = 0; kx < ks; ++kx) {
                  const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
                  if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
                    acc += (double)w[(((size_t)mo * g.c + ci) * ks + ky) * ks + kx] *
                           x[(((size_t)b * g.c + ci) * g.h + iy) * g.w + ix];
                }
            y_ref[(((size_t)b * g.m + mo) * ho + oy) * wo + ox] = acc;
          }
    const dim3 grid{(unsigned)((cols + 127) / 128), (unsigned)((g.m + bm - 1) / bm), 1};
    for (int has_bias = 0; has_bias < 2; ++has_bias) {
      std::vector<double> want = y_ref;
      if (has_bias)
        for (size_t i = 0; i < want.size(); ++i) want[i] += bias[(i / (ho * wo)) % g.m];
      std::vector<float> y(want.size(), NAN);
      emu::launch(grid, {128, 1, 1}, [&] {
        kernel(x.data(), w.data(), has_bias ? bias.data() : w.data(), y.data(), g.n, g.c, g.h,
               g.w, g.m, g.s, g.p, ho, wo, 0, has_bias, g.c);
      });
      check(y, want, scaled_tol(want), name + (has_bias ? ": forward with bias" : ": forward"));
    }
    // Split K: slices of c_slice input channels (grid z) into partial outputs, then their sum
    // in order with the bias, as the Rust side launches them for small maps.
    // (Rust's slices hold at least 8 channels; smaller ones start slices on odd channels.)
    for (int c_slice : {1, 3, 8}) {
      const int splits = (g.c + c_slice - 1) / c_slice;
      if (splits < 2) continue;
      std::vector<double> want = y_ref;
      for (size_t i = 0; i < want.size(); ++i) want[i] += bias[(i / (ho * wo)) % g.m];
      std::vector<float> part(want.size() * splits, NAN), y(want.size(), NAN);
      emu::launch({grid.x, grid.y, (unsigned)splits}, {128, 1, 1}, [&] {
        kernel(x.data(), w.data(), w.data(), part.data(), g.n, g.c, g.h, g.w, g.m, g.s, g.p, ho,
               wo, 0, 0, c_slice);
      });
      emu::launch({blocks_for(y.size(), 256), 1, 1}, {256, 1, 1}, [&] {
        conv_implicit_sum_splits(part.data(), bias.data(), y.data(), (int)y.size(), splits,
                                 ho * wo, g.m, 1);
      });
      check(y, want, scaled_tol(want),
            name + ": forward in " + std::to_string(splits) + " channel slices, with bias");
    }
    if (g.s != 1) continue;
    // The input gradient: dx[b, ci] = Σ w[mo, ci, ky, kx] · dy[b, mo, iy + p − ky, ix + p − kx],
    // the conv of dy (m channels, ho × wo) with the flipped kernel and padding ks − 1 − p.
    const auto dy = random(y_ref.size(), 24);
    std::vector<double> dx_ref(x.size(), 0.0);
    for (int b = 0; b < g.n; ++b)
      for (int mo = 0; mo < g.m; ++mo)
        for (int oy = 0; oy < ho; ++oy)
          for (int ox = 0; ox < wo; ++ox)
            for (int ci = 0; ci < g.c; ++ci)
              for (int ky = 0; ky < ks; ++ky)
                for (int kx = 0; kx < ks; ++kx) {
                  const int iy = oy - g.p + ky, ix = ox - g.p + kx;
                  if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
                    dx_ref[(((size_t)b * g.c + ci) * g.h + iy) * g.w + ix] +=
                        (double)w[(((size_t)mo * g.c + ci) * ks + ky) * ks + kx] *
                        dy[(((size_t)b * g.m + mo) * ho + oy) * wo + ox];
                }
    const int dcols = g.n * g.h * g.w;
    std::vector<float> dx(x.size(), NAN);
    emu::launch({(unsigned)((dcols + 127) / 128), (unsigned)((g.c + bm - 1) / bm), 1},
                {128, 1, 1}, [&] {
                  kernel(dy.data(), w.data(), w.data(), dx.data(), g.n, g.m, ho, wo, g.c, 1,
                         ks - 1 - g.p, g.h, g.w, 1, 0, g.m);
                });
    check(dx, dx_ref, scaled_tol(dx_ref), name + ": input gradient (flip)");
    // The input gradient in slices of dy's channels, summed without a bias.
    for (int c_slice : {3, 8}) {
      const int splits = (g.m + c_slice - 1) / c_slice;
      if (splits < 2) continue;
      std::vector<float> part(dx.size() * splits, NAN), dxs(dx.size(), NAN);
      emu::launch({(unsigned)((dcols + 127) / 128), (unsigned)((g.c + bm - 1) / bm),
                   (unsigned)splits},
                  {128, 1, 1}, [&] {
                    kernel(dy.data(), w.data(), w.data(), part.data(), g.n, g.m, ho, wo, g.c, 1,
                           ks - 1 - g.p, g.h, g.w, 1, 0, c_slice);
                  });
      emu::launch({blocks_for(dxs.size(), 256), 1, 1}, {256, 1, 1}, [&] {
        conv_implicit_sum_splits(part.data(), part.data(), dxs.data(), (int)dxs.size(), splits,
                                 1, 1, 0);
      });
      check(dxs, dx_ref, scaled_tol(dx_ref),
            name + ": input gradient (flip) in " + std::to_string(splits) + " channel slices");
    }
  }
}

// The implicit weight gradient over `splits` slices of the columns, then their sum in order,
// against a direct loop (grid x: tiles of 128 k's, y: of BM channels, z: slices).
using ImplicitWgrad = void (*)(const float*, const float*, float*, int, int, int, int, int, int,
                               int, int, int, int);
void implicit_wgrad(ImplicitWgrad kernel, int ks, int bm, const std::string& kname) {
  struct G {
    int n, c, h, w, m, s, p, splits;
  };
  for (G g : {G{2, 3, 5, 6, 5, 1, 1, 3}, G{2, 16, 6, 5, 70, 1, 1, 2}, G{2, 2, 8, 7, 6, 2, 1, 1},
              G{1, 3, 6, 6, 33, 1, 0, 40}}) {
    const int ho = (g.h + 2 * g.p - ks) / g.s + 1, wo = (g.w + 2 * g.p - ks) / g.s + 1;
    const int cols = g.n * ho * wo, kdim = g.c * ks * ks;
    const std::string name = kname + " n" + std::to_string(g.n) + " c" + std::to_string(g.c) +
                             " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " m" +
                             std::to_string(g.m) + " s" + std::to_string(g.s) + " p" +
                             std::to_string(g.p) + " splits " + std::to_string(g.splits);
    const auto x = random((size_t)g.n * g.c * g.h * g.w, 25);
    const auto dy = random((size_t)g.n * g.m * ho * wo, 26);
    // Slices of `slice` columns (a multiple of 8, as the Rust side cuts them); the last may be
    // short or, with more slices than columns need, empty.
    const int slice = ((cols + g.splits - 1) / g.splits + 7) / 8 * 8;
    std::vector<double> part_ref((size_t)g.splits * g.m * kdim, 0.0), dw_ref((size_t)g.m * kdim);
    for (int sl = 0; sl < g.splits; ++sl)
      for (int j = sl * slice; j < std::min(cols, (sl + 1) * slice); ++j) {
        const int b = j / (ho * wo), oy = (j / wo) % ho, ox = j % wo;
        for (int mo = 0; mo < g.m; ++mo)
          for (int k = 0; k < kdim; ++k) {
            const int ci = k / (ks * ks), ky = (k / ks) % ks, kx = k % ks;
            const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            part_ref[((size_t)sl * g.m + mo) * kdim + k] +=
                (double)dy[(((size_t)b * g.m + mo) * ho + oy) * wo + ox] *
                x[(((size_t)b * g.c + ci) * g.h + iy) * g.w + ix];
          }
      }
    for (size_t i = 0; i < dw_ref.size(); ++i) {
      double acc = 0;
      for (int sl = 0; sl < g.splits; ++sl) acc += part_ref[sl * dw_ref.size() + i];
      dw_ref[i] = acc;
    }
    std::vector<float> part(part_ref.size(), NAN), dw(dw_ref.size(), NAN);
    emu::launch({(unsigned)((kdim + 127) / 128), (unsigned)((g.m + bm - 1) / bm),
                 (unsigned)g.splits},
                {128, 1, 1}, [&] {
                  kernel(x.data(), dy.data(), part.data(), g.n, g.c, g.h, g.w, g.m, g.s, g.p,
                         ho, wo, slice);
                });
    check(part, part_ref, scaled_tol(part_ref), name + ": slices");
    emu::launch({blocks_for(dw.size(), 256), 1, 1}, {256, 1, 1}, [&] {
      conv_implicit_sum_splits(part.data(), part.data(), dw.data(), (int)dw.size(), g.splits, 1,
                               1, 0);
    });
    check(dw, dw_ref, scaled_tol(dw_ref), name + ": sum of the slices");
  }
}

}  // namespace

int main() {
  conv_kernels();
  implicit_conv(conv_implicit_k3_m32, 3, 32, "conv_implicit_k3_m32");
  implicit_conv(conv_implicit_k3_m64, 3, 64, "conv_implicit_k3_m64");
  implicit_conv(conv_implicit_k4_m32, 4, 32, "conv_implicit_k4_m32");
  implicit_conv(conv_implicit_k4_m64, 4, 64, "conv_implicit_k4_m64");
  implicit_wgrad(conv_implicit_wgrad_k3_m32, 3, 32, "conv_implicit_wgrad_k3_m32");
  implicit_wgrad(conv_implicit_wgrad_k3_m64, 3, 64, "conv_implicit_wgrad_k3_m64");
  implicit_wgrad(conv_implicit_wgrad_k4_m32, 4, 32, "conv_implicit_wgrad_k4_m32");
  implicit_wgrad(conv_implicit_wgrad_k4_m64, 4, 64, "conv_implicit_wgrad_k4_m64");
  channel_bias();
  in_place();
  gelu();
  depthwise<3>(depthwise_fwd_k3, depthwise_wgrad_k3);
  depthwise<5>(depthwise_fwd_k5, depthwise_wgrad_k5);
  depthwise<7>(depthwise_fwd_k7, depthwise_wgrad_k7);
  group_norm(3);
  group_norm(1);
  multi_tensor();
  softmax();
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
