//! How the CUDA depthwise conv (`src/ops/cuda/depthwise.cu`, `depthwise_fwd_k*`) splits its
//! output into blocks: each block stages a `tile_h × tile_w` output tile's input (with the
//! `k − 1` halo) for several planes at once in shared memory. Plain arithmetic, so it is planned
//! and tested on any machine; the CUDA side launches what [`DepthwiseTiles::plan`] says. The
//! weight gradient stages one image's planes when [`wgrad_staged`] says they fit.

/// Shared-memory floats for one block's input tiles (`DW_TILE_FLOATS` in depthwise.cu).
pub const TILE_FLOATS: usize = 4096;
/// The most planes one block takes (`DW_MAX_PLANES` in depthwise.cu).
pub const MAX_PLANES: usize = 32;
/// Shared-memory floats for one image's padded input plane and output-gradient plane in the
/// weight-gradient kernels (`DW_WGRAD_STAGE_FLOATS` in depthwise.cu).
pub const WGRAD_STAGE_FLOATS: usize = 4096;
/// The largest output tile side: a 32×32 tile with a 7×7 kernel's halo is 1,444 floats.
const MAX_TILE: usize = 32;
/// Outputs a block aims for: small maps (14×14, 7×7) put several planes in one block, so that
/// its threads have a few outputs each and the staging is shared across more work.
const OUTPUTS_PER_BLOCK: usize = 1024;
/// The most blocks along the grid's y (CUDA's limit); the kernel loops past it.
const MAX_GRID_Y: usize = 65_535;

/// One launch of `depthwise_fwd_k*` over `n_planes` planes of `ho × wo` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseTiles {
    /// Output rows of a tile.
    pub tile_h: usize,
    /// Output columns of a tile.
    pub tile_w: usize,
    /// Tiles along a row of the output map (the grid's x is `tiles_x · tiles_y`).
    pub tiles_x: usize,
    /// Tiles along a column of the output map.
    pub tiles_y: usize,
    /// Planes one block stages at once.
    pub planes_per_block: usize,
    /// The grid's y: blocks of planes (the kernel loops if there are more).
    pub grid_y: usize,
}

impl DepthwiseTiles {
    /// The tiles for a `k × k` kernel over `n_planes` maps of `ho × wo` outputs; `None` for an
    /// empty output or a kernel whose halo alone overflows the shared tile.
    pub fn plan(n_planes: usize, ho: usize, wo: usize, k: usize) -> Option<Self> {
        if n_planes == 0 || ho == 0 || wo == 0 || k == 0 {
            return None;
        }
        let (tile_h, tile_w) = (ho.min(MAX_TILE), wo.min(MAX_TILE));
        let in_len = (tile_h + k - 1) * (tile_w + k - 1);
        if in_len > TILE_FLOATS {
            return None;
        }
        let planes_per_block = OUTPUTS_PER_BLOCK
            .div_ceil(tile_h * tile_w)
            .min(TILE_FLOATS / in_len)
            .min(MAX_PLANES)
            .min(n_planes)
            .max(1);
        Some(Self {
            tile_h,
            tile_w,
            tiles_x: wo.div_ceil(tile_w),
            tiles_y: ho.div_ceil(tile_h),
            planes_per_block,
            grid_y: n_planes.div_ceil(planes_per_block).min(MAX_GRID_Y),
        })
    }

    /// The grid's x: one block per tile of the output map.
    pub fn grid_x(&self) -> usize {
        self.tiles_x * self.tiles_y
    }

    /// Shared-memory floats a block's input tiles take, for a `k × k` kernel.
    pub fn staged_floats(&self, k: usize) -> usize {
        self.planes_per_block * (self.tile_h + k - 1) * (self.tile_w + k - 1)
    }
}

/// Whether the weight-gradient kernels stage an image's input plane (`h × w`, padded by `pad`
/// on each side) and its output-gradient plane (`ho × wo`) in shared memory: when both fit
/// [`WGRAD_STAGE_FLOATS`] (maps up to 42×42 with a 7×7 kernel and padding 3).
pub fn wgrad_staged(h: usize, w: usize, ho: usize, wo: usize, pad: usize) -> bool {
    (h + 2 * pad) * (w + 2 * pad) + ho * wo <= WGRAD_STAGE_FLOATS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's loops, replayed: which (plane, oy, ox) each output gets written from.
    fn outputs_written(n_planes: usize, ho: usize, wo: usize, t: &DepthwiseTiles) -> Vec<u32> {
        let mut hits = vec![0u32; n_planes * ho * wo];
        for bx in 0..t.grid_x() {
            let (ty0, tx0) = ((bx / t.tiles_x) * t.tile_h, (bx % t.tiles_x) * t.tile_w);
            for by in 0..t.grid_y {
                let mut p0 = by * t.planes_per_block;
                while p0 < n_planes {
                    let planes = t.planes_per_block.min(n_planes - p0);
                    for pl in 0..planes {
                        for r in 0..t.tile_h * t.tile_w {
                            let (oy, ox) = (ty0 + r / t.tile_w, tx0 + r % t.tile_w);
                            if oy < ho && ox < wo {
                                hits[((p0 + pl) * ho + oy) * wo + ox] += 1;
                            }
                        }
                    }
                    p0 += t.grid_y * t.planes_per_block;
                }
            }
        }
        hits
    }

    #[test]
    fn every_output_is_written_once_and_the_tiles_fit_shared_memory() {
        for &(n_planes, ho, wo, k) in &[
            (128 * 28, 28, 28, 7),
            (128 * 56, 14, 14, 7),
            (128 * 112, 7, 7, 7),
            (3, 9, 8, 3),
            (5, 70, 33, 5),
            (1, 1, 1, 7),
            (200_000, 2, 3, 3),
        ] {
            let t = DepthwiseTiles::plan(n_planes, ho, wo, k).unwrap();
            assert!(t.staged_floats(k) <= TILE_FLOATS, "{t:?}");
            assert!((1..=MAX_PLANES).contains(&t.planes_per_block), "{t:?}");
            assert!(t.grid_y <= MAX_GRID_Y, "{t:?}");
            let hits = outputs_written(n_planes, ho, wo, &t);
            assert!(
                hits.iter().all(|&h| h == 1),
                "{n_planes} {ho}x{wo} k{k}: {t:?}"
            );
        }
    }

    #[test]
    fn small_maps_share_a_block_and_large_ones_are_tiled() {
        let t = DepthwiseTiles::plan(128 * 112, 7, 7, 7).unwrap();
        assert_eq!((t.tile_h, t.tile_w, t.planes_per_block), (7, 7, 21));
        let t = DepthwiseTiles::plan(8, 100, 40, 7).unwrap();
        assert_eq!((t.tile_h, t.tile_w, t.tiles_y, t.tiles_x), (32, 32, 4, 2));
        assert_eq!(t.planes_per_block, 1);
        assert_eq!(DepthwiseTiles::plan(0, 7, 7, 7), None);
    }

    #[test]
    fn the_weight_gradient_stages_the_model_s_maps_and_not_large_ones() {
        // The blog UNet's 7×7 depthwise convs (padding 3) at 28×28, 14×14 and 7×7.
        for s in [28, 14, 7] {
            assert!(wgrad_staged(s, s, s, s, 3), "{s}");
        }
        assert!(wgrad_staged(40, 40, 40, 40, 3));
        assert!(!wgrad_staged(64, 64, 64, 64, 3));
    }

    /// The constants are the ones depthwise.cu sizes its shared arrays with.
    #[test]
    fn limits_match_the_cuda_source() {
        let cu = include_str!("cuda/depthwise.cu");
        assert!(cu.contains(&format!("#define DW_TILE_FLOATS {TILE_FLOATS}\n")));
        assert!(cu.contains(&format!("#define DW_MAX_PLANES {MAX_PLANES}\n")));
        assert!(cu.contains(&format!(
            "#define DW_WGRAD_STAGE_FLOATS {WGRAD_STAGE_FLOATS}\n"
        )));
    }
}
