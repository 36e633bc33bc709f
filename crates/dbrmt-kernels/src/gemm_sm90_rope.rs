//! Launcher of the `_normed_rope` entries of `cuda/gemm_sm90.cu` (v11): a decode step's q/k/v product with its
//! RMSNorm made in the launch (as [`gemm_sm90_nt_normed`](crate::gemm_sm90::gemm_sm90_nt_normed)) and its RoPE in the
//! epilogue — the rows rotated and written straight into the KV cache at the device-held position, where
//! [`rope`](crate::rope::rope) would have moved them. One launch instead of two, the same bytes (the kernel's design:
//! `cuda/sm90/rope_epilogue.cuh`; its check: `check/gemm_sm90_normed_rope.rs`).
//!
//! The weights' tile is gathered by a 4-D tensor map `{64, rows, 2, k / 64}` (the second dimension's stride half a
//! head of rows), so that a tile of width BN holds BN/2 rows of a head's first half and the same rows of its second
//! half: both elements of each rotation pair in one thread.

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use half::bf16;

use crate::gemm::GemmGroup;
use crate::gemm_sm90::{
    decode_tiles_enabled, narrow_ks, normed_params, normed_width, persistent_config, validate, Epilogue, NormedRows, BK,
};
use crate::launch::{addr, addr_mut, check_positions, invalid, positions_addr};
use crate::params::{Heads, Span, MAX_GROUPS};
use crate::rope::{prefetch_params, L2Prefetch, L2PrefetchParams, L2_PREFETCH};
use crate::tma;
use crate::{cubins, Gpu, Kernel, KernelError};

/// Where a `_normed_rope` launch writes its rows and how it rotates them.
#[derive(Debug, Clone, Copy)]
pub struct RopeRows<'a> {
    /// The RoPE tables, `[positions, head_dim / 2]` f32 each ([`crate::reference::rope::RopeTable`]).
    pub cos: &'a CudaSlice<f32>,
    pub sin: &'a CudaSlice<f32>,
    /// Per group, as [`rope`](crate::rope::rope)'s moving spans: row `r` goes to row `out_row + pos + r` of the
    /// output, rotated at position `pos + r`; a `dynamic` span's position is `positions[state]`, read on the device
    /// (its `pos` the bound). `rows` must be the group's `m`; `in_row`, `layer` and `flag` are not read (the rows are
    /// made from the norm).
    pub spans: &'a [Span],
    pub positions: Option<&'a CudaSlice<i32>>,
    pub heads: Heads,
    /// Rows to bring into L2 beside the product (what [`rope_and_prefetch`](crate::rope::rope_and_prefetch) did
    /// beside the RoPE launch), unless `DBRMT_L2_PREFETCH=off`.
    pub prefetch: Option<&'a L2Prefetch<'a>>,
}

/// `GemmSm90Rope` of `cuda/sm90/rope_epilogue.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Sm90Rope {
    cos: u64,
    sin: u64,
    positions: u64,
    head_dim: i32,
    rot_cols: i32,
    pos: [i32; MAX_GROUPS],
    state: [i32; MAX_GROUPS],
    pf_base: u64,
    pf_stride: i64,
    pf_rows: i32,
    pf_bytes: i32,
}

// SAFETY: a #[repr(C)] plain-old-data mirror of rope_epilogue.cuh's GemmSm90Rope (its static_assert, the size test
// below); the addresses in it are formed by the launcher after its checks.
unsafe impl DeviceRepr for Sm90Rope {}

/// The tile width of a `_normed_rope` launch of the q/k/v `groups` ([`gemm_sm90_nt_normed_rope`]), or `None` where
/// it takes none: the normed width ([`normed_width`], bf16 output) where `k` is whole k-blocks of 64 (the 4-D map),
/// the head dimension a multiple of it (a tile inside one head's halves) and `n` the heads' fused row.
pub fn normed_rope_width(groups: &[GemmGroup], heads: Heads, sms: usize, decode: bool) -> Option<usize> {
    let bn = normed_width(groups, Epilogue::Bf16, sms, decode)?;
    let g = groups.first()?;
    let fits = g.k.is_multiple_of(BK) && heads.head_dim.is_multiple_of(bn) && g.n == heads.qkv_width();
    fits.then_some(bn)
}

/// `qkv rows = rope(norm(X)·Bᵀ)` for the q/k/v groups of a decode step (v11, `gemm_sm90_nt_bf16_bf16_bf16_bn*_normed_
/// rope`): the normed product of [`gemm_sm90_nt_normed`](crate::gemm_sm90::gemm_sm90_nt_normed) whose rows are
/// rotated (q and k heads) and written to `rope.spans[i]`'s rows of `qkv` (row stride the groups' `ldc`), v heads as
/// they are — the bytes of the normed launch into scratch rows followed by [`rope`](crate::rope::rope) moving them
/// there. The groups' `c_offset` and A fields are not read. Only where [`normed_rope_width`] (with `decode` =
/// [`decode_tiles_enabled`]) gives a width; elsewhere an error.
pub fn gemm_sm90_nt_normed_rope(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &NormedRows<'_>,
    b: &CudaSlice<bf16>,
    qkv: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
    rope: &RopeRows<'_>,
) -> Result<(), KernelError> {
    const K: &str = "gemm_sm90_nt_normed_rope";
    let bn = normed_rope_width(groups, rope.heads, gpu.sm_count(), decode_tiles_enabled()).ok_or_else(|| {
        let why = format!(
            "no normed RoPE width (decode rows ≤ 8, k % 64 == 0, heads {:?})",
            rope.heads
        );
        invalid(K, why)
    })?;
    let entry = match bn {
        16 => "gemm_sm90_nt_bf16_bf16_bf16_bn16_normed_rope",
        32 => "gemm_sm90_nt_bf16_bf16_bf16_bn32_normed_rope",
        _ => "gemm_sm90_nt_bf16_bf16_bf16_bn64_normed_rope",
    };
    let lens = Lens {
        b: b.len(),
        qkv: qkv.len(),
        cos: rope.cos.len(),
        sin: rope.sin.len(),
        positions: rope.positions.map(|p| p.len()),
    };
    let (mut params, mut rp, b_rows) = rope_params(entry, groups, lens, rope.spans, rope.heads)?;
    let norm = normed_params(entry, a, groups)?;
    if groups.iter().all(|g| g.m == 0) {
        return Ok(());
    }
    let (n, k, half) = (groups[0].n, groups[0].k, rope.heads.head_dim / 2);
    let b_map = tma::bf16_map(
        entry,
        addr(b, stream),
        &[BK as u64, b_rows as u64, 2, (k / BK) as u64],
        &[(k * 2) as u64, (half * k * 2) as u64, (BK * 2) as u64],
        &[BK as u32, (bn / 2) as u32, 2, narrow_ks(bn) as u32],
    )?;
    let c_base = addr_mut(qkv, stream);
    for p in &mut params.problems[..groups.len()] {
        p.c = c_base + p.c * 2;
    }
    let norm = norm.at(a, stream);
    (rp.cos, rp.sin) = (addr(rope.cos, stream), addr(rope.sin, stream));
    rp.positions = positions_addr(rope.positions, stream);
    if let Some(pf) = rope.prefetch.filter(|_| L2_PREFETCH.enabled()) {
        let L2PrefetchParams {
            base,
            stride,
            rows,
            bytes,
        } = prefetch_params(pf.buf.len(), (pf.first_row, pf.rows, pf.row_len, pf.prefix))?;
        (rp.pf_base, rp.pf_stride) = (base + addr(pf.buf, stream), stride);
        (rp.pf_rows, rp.pf_bytes) = (rows, bytes);
    }
    let f = gpu.function(&Kernel::new(cubins::GEMM_SM90, entry))?;
    let tiles = groups.iter().filter(|g| g.m > 0).count() * n.div_ceil(bn);
    let cfg = persistent_config(gpu, &f, tiles)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&b_map).arg(&params).arg(&norm).arg(&rp);
    // SAFETY: the kernel takes (TmaMap b_map, GemmSm90Params, GemmSm90NormRows, GemmSm90Rope) by value; these are
    // their #[repr(C)] mirrors. The 4-D B map covers the B buffer's rows (its second dimension reaches half a head
    // further, which every tile's rows stay under: n is whole heads); rope_params checked every problem's B rows and
    // every row it may write (out_row + any position up to its bound + m) inside `qkv` (borrowed mutably: it aliases
    // neither input), no two problems' rows meeting, the table rows of those positions, and the dynamic spans' states
    // inside the positions buffer; normed_params checked the norm's rows. The width is normed_rope_width's (a narrow
    // one; head_dim a multiple of it, k whole k-blocks), which the kernel's plan holds (it traps otherwise). The
    // prefetch's rows lie inside their buffer (prefetch_params). The dynamic shared memory is the whole limit.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The lengths of a launch's buffers, in elements (the positions buffer's if it has one).
#[derive(Debug, Clone, Copy)]
struct Lens {
    b: usize,
    qkv: usize,
    cos: usize,
    sin: usize,
    positions: Option<usize>,
}

/// The launch's checks on lengths only: the GEMM's parameters with each problem's C at its segment's row 0 (relative,
/// in elements), the RoPE parameters without addresses, and the B rows.
fn rope_params(
    entry: &str,
    groups: &[GemmGroup],
    lens: Lens,
    spans: &[Span],
    heads: Heads,
) -> Result<(crate::gemm_sm90::Sm90Params, Sm90Rope, usize), KernelError> {
    let half = heads.head_dim / 2;
    if spans.len() != groups.len() {
        let why = format!("{} RoPE spans for {} groups", spans.len(), groups.len());
        return Err(invalid(entry, why));
    }
    let (cos, sin) = (lens.cos, lens.sin);
    if half == 0 || cos != sin || !cos.is_multiple_of(half) {
        let why = format!("cos/sin tables of {cos} and {sin} elements are not [positions, {half}]");
        return Err(invalid(entry, why));
    }
    let table_rows = cos / half;
    // validate() sees each group as every row it may write: from its segment's row 0 to its bound + m
    let mut reach = Vec::with_capacity(groups.len());
    for (i, (g, s)) in groups.iter().zip(spans).enumerate() {
        let last = s.pos.checked_add(g.m).filter(|&e| e <= table_rows && s.rows == g.m);
        let c_offset = s.out_row.checked_mul(g.ldc).filter(|_| last.is_some());
        let (Some(last), Some(c_offset)) = (last, c_offset) else {
            let why = format!(
                "group {i}: {} rows from position {} (span of {} rows), tables of {table_rows} positions",
                g.m, s.pos, s.rows
            );
            return Err(invalid(entry, why));
        };
        let first = if s.dynamic { 0 } else { s.pos };
        reach.push(GemmGroup {
            c_offset: c_offset + first * g.ldc,
            m: if g.m == 0 { 0 } else { last - first },
            ..*g
        });
    }
    // the groups' A rows are never read: an A length that holds them (as validate sees them) passes its A checks
    let a_len = reach.iter().map(|g| g.a_offset + g.m * g.lda).max().unwrap_or(0);
    let (mut params, _, b_rows) = validate(entry, &reach, a_len, lens.b, lens.qkv, Epilogue::Bf16)?;
    check_positions(entry, spans, lens.positions)?;
    let rot_cols = (heads.heads + heads.kv_heads) * heads.head_dim;
    let mut rp = Sm90Rope {
        cos: 0,
        sin: 0,
        positions: 0,
        head_dim: heads.head_dim as i32, // n = the fused row (normed_rope_width), which validate() held to 32 bits
        rot_cols: rot_cols as i32,
        pos: [0; MAX_GROUPS],
        state: [-1; MAX_GROUPS],
        pf_base: 0,
        pf_stride: 0,
        pf_rows: 0,
        pf_bytes: 0,
    };
    for (i, (g, s)) in groups.iter().zip(spans).enumerate() {
        // C at the segment's row 0 (the kernel adds pos + r), the problem's own rows
        params.problems[i].c = (s.out_row * g.ldc) as u64;
        params.problems[i].m = g.m as i32;
        rp.pos[i] = s.pos as i32; // below the table's rows, an i32 (validate held the rows written to 32 bits)
        if s.dynamic {
            rp.state[i] = s.state as i32; // inside the positions buffer (check_positions)
        }
    }
    Ok((params, rp, b_rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<Sm90Rope>(), 568);
        let cuh = include_str!("../../../cuda/sm90/rope_epilogue.cuh");
        assert!(cuh.contains("sizeof(GemmSm90Rope) == 568"));
        let cu = include_str!("../../../cuda/gemm_sm90.cu");
        for bn in [16, 32, 64] {
            assert!(cu.contains(&format!("(gemm_sm90_nt_bf16_bf16_bf16_bn{bn}_normed_rope, {bn})")));
        }
    }

    fn qkv_group(m: usize, n: usize, k: usize, ldc: usize) -> GemmGroup {
        GemmGroup {
            a_offset: 0,
            b_offset: 0,
            c_offset: 0,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc,
        }
    }

    const LLAMA: Heads = Heads {
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
    };

    /// The 1B decode step's lengths: 16 layers of q/k/v weights, a qkv buffer of `rows` rows, tables of 1,152
    /// positions, 16 states.
    fn lens(rows: usize) -> Lens {
        Lens {
            b: 16 * 3072 * 2048,
            qkv: rows * 3072,
            cos: 1152 * 32,
            sin: 1152 * 32,
            positions: Some(16),
        }
    }

    fn moving(out_row: usize, pos: usize, rows: usize, state: usize) -> Span {
        Span {
            in_row: 0,
            out_row,
            rows,
            state,
            pos,
            dynamic: true,
            ..Span::default()
        }
    }

    #[test]
    fn rope_params_place_each_row_at_its_segment_and_position() {
        // one decoded row of layer 3: its cache segment at row 1,200 of the buffer, at most position 1,100
        let g = GemmGroup {
            b_offset: 3 * 3072 * 2048,
            ..qkv_group(1, 3072, 2048, 3072)
        };
        let (p, rp, b_rows) = rope_params("t", &[g], lens(2400), &[moving(1200, 1100, 1, 3)], LLAMA).unwrap();
        assert_eq!(
            (p.problems[0].c, p.problems[0].m, p.problems[0].b_row),
            (1200 * 3072, 1, 3 * 3072)
        );
        assert_eq!(
            (rp.pos[0], rp.state[0], rp.head_dim, rp.rot_cols),
            (1100, 3, 64, 40 * 64)
        );
        assert_eq!(b_rows, 16 * 3072);
        // a static span: its own position, no state
        let fixed = Span {
            dynamic: false,
            ..moving(1200, 7, 1, 3)
        };
        let (_, rp, _) = rope_params("t", &[g], lens(2400), &[fixed], LLAMA).unwrap();
        assert_eq!((rp.pos[0], rp.state[0]), (7, -1));
    }

    #[test]
    fn rope_params_refuse_what_would_write_or_read_outside() {
        let g = qkv_group(1, 3072, 2048, 3072);
        let ok =
            |spans: &[Span], groups: &[GemmGroup], lens: Lens| rope_params("t", groups, lens, spans, LLAMA).is_ok();
        assert!(ok(&[moving(1200, 1100, 1, 3)], &[g], lens(2400)));
        assert!(
            !ok(&[moving(1200, 1100, 1, 3)], &[g], lens(2300)),
            "the bound's row past the buffer"
        );
        assert!(
            !ok(&[moving(1200, 1152, 1, 3)], &[g], lens(2400)),
            "a position past the tables"
        );
        assert!(
            !ok(&[moving(1200, 1100, 2, 3)], &[g], lens(2400)),
            "span rows other than the group's"
        );
        assert!(!ok(&[], &[g], lens(2400)), "no span for the group");
        assert!(
            !ok(&[moving(1200, 1100, 1, 16)], &[g], lens(2400)),
            "a state past the positions"
        );
        let without = Lens {
            positions: None,
            ..lens(2400)
        };
        assert!(
            !ok(&[moving(1200, 1100, 1, 3)], &[g], without),
            "a dynamic span without positions"
        );
        let two = [g, g];
        assert!(
            !ok(&[moving(0, 100, 1, 0), moving(50, 100, 1, 1)], &two, lens(2400)),
            "rows two spans may both write"
        );
        assert!(ok(&[moving(0, 100, 1, 0), moving(102, 100, 1, 1)], &two, lens(2400)));
        let tables = Lens {
            cos: 1152 * 32,
            sin: 1151 * 32,
            ..lens(2400)
        };
        assert!(
            !ok(&[moving(1200, 10, 1, 3)], &[g], tables),
            "cos and sin of different lengths"
        );
    }

    #[test]
    fn rope_widths_hold_whole_pairs_and_k_blocks() {
        let llama = Heads {
            heads: 32,
            kv_heads: 8,
            head_dim: 64,
        };
        let g = [qkv_group(1, 3072, 2048, 3072)];
        let bn = normed_rope_width(&g, llama, 132, true).expect("the 1B decode q/k/v");
        assert!(64 % bn == 0);
        assert_eq!(normed_rope_width(&g, llama, 132, false), None, "decode tiles off");
        assert_eq!(
            normed_rope_width(&[qkv_group(9, 3072, 2048, 3072)], llama, 132, true),
            None,
            "9 rows"
        );
        assert_eq!(
            normed_rope_width(&[qkv_group(1, 3072, 2000, 3072)], llama, 132, true),
            None,
            "k % 64"
        );
        assert_eq!(
            normed_rope_width(&[qkv_group(1, 3136, 2048, 3136)], llama, 132, true),
            None,
            "not the heads' row"
        );
        let tiny = Heads {
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
        };
        assert_eq!(
            normed_rope_width(&[qkv_group(1, 64, 128, 64)], tiny, 132, true),
            None,
            "head dim under every width"
        );
    }
}
