//! Launcher of the `_rope` entries of `cuda/gemm_sm90.cu` (v12): a prefill's q/k/v product with RoPE in its epilogue
//! for the problems that are whole segments rotated in place — the bytes of [`gemm_sm90_nt_bf16_bf16_bf16`] followed
//! by [`rope`](crate::rope::rope) over those rows, without the second pass over every q and k element (the kernel's
//! design: `cuda/sm90/rope_rows.cuh`; its check: `check/gemm_sm90_rope.rs`).
//!
//! The tile must hold whole heads (a rotation pair of a row in one thread's fragment), so the launch takes the
//! head-aligned width that [`tile_width`](crate::gemm_sm90::tile_width)'s model ranks best ([`rope_width`]); no
//! element's bits depend on the width.

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use half::bf16;

use crate::gemm::GemmGroup;
#[cfg(doc)]
use crate::gemm_sm90::gemm_sm90_nt_bf16_bf16_bf16;
use crate::gemm_sm90::{launch_tile_width, persistent_launch, validate, wide_maps, width_score, Epilogue, TILE_WIDTHS};
use crate::launch::{addr, invalid};
use crate::params::Heads;
use crate::{cubins, Gpu, Kernel, KernelError};

/// The `_rope` entries: (tile width, head dimension).
pub const ROPE_WIDTHS: [(usize, usize); 5] = [(128, 64), (192, 64), (256, 64), (128, 128), (256, 128)];

/// The RoPE tables and heads of a `_rope` launch.
#[derive(Debug, Clone, Copy)]
pub struct RopeTables<'a> {
    /// `[positions, head_dim / 2]` f32 each ([`crate::reference::rope::RopeTable`]).
    pub cos: &'a CudaSlice<f32>,
    pub sin: &'a CudaSlice<f32>,
    pub heads: Heads,
}

/// `GemmSm90Rope` of `cuda/sm90/rope_rows.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sm90Rope {
    cos: u64,
    sin: u64,
    rot_cols: i32,
    pad: i32,
    rotate_mask: u64,
}

// SAFETY: a #[repr(C)] plain-old-data mirror of rope_rows.cuh's GemmSm90Rope (its static_assert, the size test below);
// the addresses in it are formed by the launcher after its checks.
unsafe impl DeviceRepr for Sm90Rope {}

/// The tile width of a `_rope` launch of the q/k/v `groups`, or `None` where it takes none: a launch of the wide
/// widths (not a decode launch: `decode` as for [`launch_tile_width`]), `n` the heads' fused row, a head dimension
/// with entries (64, 128); then the rule's width if it holds whole heads, else the head-aligned width its model
/// ranks best.
pub fn rope_width(groups: &[GemmGroup], heads: Heads, sms: usize, decode: bool) -> Option<usize> {
    let g = groups.first()?;
    let hd = heads.head_dim;
    let rule = launch_tile_width(groups, Epilogue::Bf16, sms, decode);
    if g.n != heads.qkv_width() || !TILE_WIDTHS.contains(&rule) {
        return None;
    }
    if ROPE_WIDTHS.contains(&(rule, hd)) {
        return Some(rule);
    }
    let score = width_score(g.n, g.k, Epilogue::Bf16, sms);
    ROPE_WIDTHS
        .iter()
        .filter(|&&(_, h)| h == hd)
        .map(|&(bn, _)| bn)
        .min_by(|&a, &b| score(a).total_cmp(&score(b)))
}

/// `C = A·Bᵀ` (bf16 C) for the q/k/v `groups` of a prefill step, with group `i`'s rows rotated in place where
/// `rotate[i]` (v12, `gemm_sm90_nt_bf16_bf16_bf16_bn*_rope_hd*`): row `r` of the group at position `r` (a whole
/// segment's rows, as `rope`'s in-place spans), its q and k heads rotated, v as it is — the bytes of
/// [`gemm_sm90_nt_bf16_bf16_bf16`] followed by `rope` over those groups' rows. Only where [`rope_width`] gives a
/// width (`decode` = [`crate::gemm_sm90::decode_tiles_enabled`]); elsewhere an error.
#[allow(clippy::too_many_arguments)]
pub fn gemm_sm90_nt_bf16_bf16_bf16_rope(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
    tables: &RopeTables<'_>,
    rotate: &[bool],
) -> Result<(), KernelError> {
    let decode = crate::gemm_sm90::decode_tiles_enabled();
    let bn = rope_width(groups, tables.heads, gpu.sm_count(), decode).ok_or_else(|| {
        let why = format!(
            "no RoPE width for heads {:?} (a wide launch, n the fused row)",
            tables.heads
        );
        invalid("gemm_sm90_nt_bf16_bf16_bf16_rope", why)
    })?;
    launch_rope_at_width(gpu, stream, (a, b), c, groups, tables, rotate, bn)
}

/// [`gemm_sm90_nt_bf16_bf16_bf16_rope`] at tile width `bn` (one of [`ROPE_WIDTHS`] for the head dimension), whatever
/// the rule would pick: for the check that every width gives the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn launch_rope_at_width(
    gpu: &Gpu,
    stream: &CudaStream,
    (a, b): (&CudaSlice<bf16>, &CudaSlice<bf16>),
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
    tables: &RopeTables<'_>,
    rotate: &[bool],
    bn: usize,
) -> Result<(), KernelError> {
    let hd = tables.heads.head_dim;
    let entry = entry(bn, hd).ok_or_else(|| {
        invalid(
            "gemm_sm90_nt_bf16_bf16_bf16_rope",
            format!("no entry of width {bn} for head dim {hd}"),
        )
    })?;
    let (mut params, a_rows, b_rows) = validate(entry, groups, a.len(), b.len(), c.len(), Epilogue::Bf16)?;
    let mut rp = rope_params(
        entry,
        groups,
        (tables.cos.len(), tables.sin.len()),
        tables.heads,
        rotate,
    )?;
    if groups.iter().all(|g| g.m == 0) {
        return Ok(());
    }
    let (a_map, b_map) = wide_maps(entry, stream, (a, a_rows), (b, b_rows), groups[0], bn)?;
    (rp.cos, rp.sin) = (addr(tables.cos, stream), addr(tables.sin, stream));
    let kernel = Kernel::new(cubins::GEMM_SM90, entry);
    let (f, cfg, _) = persistent_launch(gpu, stream, &kernel, c, &mut params, groups, bn)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&a_map).arg(&b_map).arg(&params).arg(&rp);
    // SAFETY: the kernel takes (TmaMap a_map, TmaMap b_map, GemmSm90Params, GemmSm90Rope) by value; these are their
    // #[repr(C)] mirrors. The maps cover exactly the A and B buffers; validate() checked every problem's A and B rows
    // and its C region against `a`, `b` and `c` (borrowed mutably: it aliases neither input) and that no two problems
    // write one element; rope_params() checked that the heads are the groups' fused row and that a rotated problem's
    // rows are positions of the tables (cos and sin hold them); entry() has entries only for widths that are whole
    // heads (the kernel's static_assert). The dynamic shared memory is the whole limit.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The entry of width `bn` for head dimension `hd`.
fn entry(bn: usize, hd: usize) -> Option<&'static str> {
    Some(match (bn, hd) {
        (128, 64) => "gemm_sm90_nt_bf16_bf16_bf16_bn128_rope_hd64",
        (192, 64) => "gemm_sm90_nt_bf16_bf16_bf16_bn192_rope_hd64",
        (256, 64) => "gemm_sm90_nt_bf16_bf16_bf16_bn256_rope_hd64",
        (128, 128) => "gemm_sm90_nt_bf16_bf16_bf16_bn128_rope_hd128",
        (256, 128) => "gemm_sm90_nt_bf16_bf16_bf16_bn256_rope_hd128",
        _ => return None,
    })
}

/// The RoPE parameters on lengths only (`tables` = the lengths of cos and sin): the heads' fused row is the
/// groups' `n`, one flag a group, and a rotated group's rows are positions of the tables.
fn rope_params(
    entry: &str,
    groups: &[GemmGroup],
    (cos, sin): (usize, usize),
    heads: Heads,
    rotate: &[bool],
) -> Result<Sm90Rope, KernelError> {
    let Heads {
        heads: h,
        kv_heads,
        head_dim,
    } = heads;
    let n = groups.first().map_or(0, |g| g.n);
    if kv_heads == 0 || !h.is_multiple_of(kv_heads) || n != heads.qkv_width() {
        let why = format!("heads {h}/{kv_heads} × {head_dim} are not the fused row of {n}");
        return Err(invalid(entry, why));
    }
    if rotate.len() != groups.len() {
        let why = format!("{} rotation flags for {} groups", rotate.len(), groups.len());
        return Err(invalid(entry, why));
    }
    let half = head_dim / 2;
    if cos != sin || !cos.is_multiple_of(half) {
        let why = format!("cos/sin tables of {cos} and {sin} elements are not [positions, {half}]");
        return Err(invalid(entry, why));
    }
    let positions = cos / half;
    let mut rotate_mask = 0u64;
    for (i, (g, &r)) in groups.iter().zip(rotate).enumerate() {
        if r && g.m > positions {
            let why = format!(
                "group {i}: {} rows to rotate, but the tables hold {positions} positions",
                g.m
            );
            return Err(invalid(entry, why));
        }
        rotate_mask |= u64::from(r) << i; // validate() held the groups to 64
    }
    Ok(Sm90Rope {
        cos: 0,
        sin: 0,
        rot_cols: ((h + kv_heads) * head_dim) as i32, // under n, which validate() held to 32 bits
        pad: 0,
        rotate_mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::rejected;

    const LLAMA_1B: Heads = Heads {
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
    };

    fn qkv(m: usize, heads: Heads, k: usize) -> GemmGroup {
        let n = heads.qkv_width();
        GemmGroup {
            a_offset: 0,
            b_offset: 0,
            c_offset: 0,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        }
    }

    #[test]
    fn rope_layout_and_entries_match_the_kernel() {
        assert_eq!(std::mem::size_of::<Sm90Rope>(), 32);
        let cuh = include_str!("../../../cuda/sm90/rope_rows.cuh");
        assert!(cuh.contains("sizeof(GemmSm90Rope) == 32"));
        let cu = include_str!("../../../cuda/gemm_sm90.cu");
        for (bn, hd) in ROPE_WIDTHS {
            let name = entry(bn, hd).unwrap();
            assert!(cu.contains(&format!("({name}, {bn}, {hd})")), "{name}");
        }
    }

    #[test]
    fn the_width_holds_whole_heads_of_a_wide_launch() {
        // the 1B step's q/k/v: the rule's 224 splits heads, so a head-aligned width the model ranks best
        let step: Vec<GemmGroup> = (0..16).map(|_| qkv(1152, LLAMA_1B, 2048)).collect();
        let bn = rope_width(&step, LLAMA_1B, 132, true).unwrap();
        assert!(bn.is_multiple_of(64) && TILE_WIDTHS.contains(&bn), "{bn}");
        let hd128 = Heads {
            heads: 24,
            kv_heads: 8,
            head_dim: 128,
        };
        let bn = rope_width(&[qkv(1152, hd128, 3072)], hd128, 132, true).unwrap();
        assert!(bn.is_multiple_of(128), "{bn}");
        assert_eq!(
            rope_width(&[qkv(1, LLAMA_1B, 2048)], LLAMA_1B, 132, true),
            None,
            "a decode launch"
        );
        let hd32 = Heads {
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
        };
        assert_eq!(
            rope_width(&[qkv(1152, hd32, 128)], hd32, 132, true),
            None,
            "no entries for head dim 32"
        );
        let other = GemmGroup {
            n: 3072 + 64,
            ldc: 3072 + 64,
            ..qkv(1152, LLAMA_1B, 2048)
        };
        assert_eq!(
            rope_width(&[other], LLAMA_1B, 132, true),
            None,
            "not the heads' fused row"
        );
    }

    #[test]
    fn rope_params_flag_each_group_and_refuse_rows_past_the_tables() {
        let g = [
            qkv(1152, LLAMA_1B, 2048),
            qkv(300, LLAMA_1B, 2048),
            qkv(1152, LLAMA_1B, 2048),
        ];
        let tables = (1152 * 32, 1152 * 32);
        let p = rope_params("t", &g, tables, LLAMA_1B, &[true, false, true]).unwrap();
        assert_eq!((p.rotate_mask, p.rot_cols), (0b101, 40 * 64));
        assert!(rejected(rope_params(
            "t",
            &g,
            (1151 * 32, 1151 * 32),
            LLAMA_1B,
            &[true, false, false]
        )));
        assert!(rope_params("t", &g, (1151 * 32, 1151 * 32), LLAMA_1B, &[false, true, false]).is_ok());
        assert!(
            rejected(rope_params("t", &g, tables, LLAMA_1B, &[true, true])),
            "a flag short"
        );
        assert!(
            rejected(rope_params("t", &g, (1152 * 32, 1152 * 16), LLAMA_1B, &[true; 3])),
            "tables differ"
        );
        let wrong = Heads {
            heads: 32,
            kv_heads: 4,
            head_dim: 64,
        };
        assert!(
            rejected(rope_params("t", &g, tables, wrong, &[true; 3])),
            "heads not the row"
        );
    }
}
