//! Checks of the v2 grouped GEMM (`cuda/gemm_sm90.cu`) against `reference::gemm`, laid out as the engine lays out a
//! step: the cells' rows stacked in one A buffer with a NaN spare row between cells (whole 128-row tiles read across
//! them, so a tile that leaked another row into a result would poison it), the weights of every layer stacked dense
//! `[L·n, k]` (group g uses layer g mod L), C rows with a spare row between cells and a row stride wider than the
//! output (poison wherever no group writes, which must survive). Off-tile m (1, 7, 129, 300 + 128) and n (not
//! multiples of the tile width) are included; one cell alone must give the bits it gives inside the launch.
//!
//! Two more bitwise checks hold up the decode tiles (v5: launches of few rows may take narrow tile widths, chosen by
//! rows, which is only sound if no element's bits depend on the tile width): [`width_checks`] runs one problem set at
//! every tile width with an entry point and requires identical bytes (and the reference, and no stray writes), and
//! [`decode_checks`] requires decode rows launched alone (the rule's narrow widths) to have the bits of the same rows
//! inside a 1152-row whole-segment launch (the rule's wide width). If either fails on a device, the decode tiles are
//! invalid: `DBRMT_DECODE_TILES=off` restores the `(n, k)` rule.

use half::bf16;

use super::harness::{
    bf16_normal, bitwise, changed_outside, compare, download_bf16, download_f32, fail_if, poison_bits, poisoned_bf16,
    poisoned_f32, upload_bf16, upload_f32, Block, Check, SplitMix64, BF16_OUT_TOL, F32_OUT_TOL,
};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::{
    decode_tiles_enabled, gemm_sm90_nt_bf16_bf16_bf16, gemm_sm90_nt_bf16_bf16_f32, gemm_sm90_nt_bf16_bf16_swiglu,
    interleave_gate_up, launch_at_width, launch_mirrored, launch_tile_width, Epilogue, DECODE_MAX_ROWS,
    DECODE_TILE_WIDTHS, SWIGLU_DECODE_WIDTH, TILE_WIDTHS,
};
use crate::reference::gemm::linear;
use crate::reference::swiglu::silu;
use crate::{Gpu, KernelError};

/// Layers of the stacked weight in every case.
const LAYERS: usize = 3;

/// One checked launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sm90Case {
    pub epilogue: Epilogue,
    /// m of each group.
    pub ms: Vec<usize>,
    /// B rows per layer (for SwiGLU `2·I`; the output has `n/2` columns).
    pub n: usize,
    pub k: usize,
}

impl Sm90Case {
    fn out_cols(&self) -> usize {
        if self.epilogue == Epilogue::SwiGlu {
            self.n / 2
        } else {
            self.n
        }
    }

    fn name(&self) -> &'static str {
        match self.epilogue {
            Epilogue::Bf16 => "gemm_sm90_nt_bf16_bf16_bf16",
            Epilogue::F32 { .. } => "gemm_sm90_nt_bf16_bf16_f32",
            Epilogue::SwiGlu => "gemm_sm90_nt_bf16_bf16_swiglu",
        }
    }

    fn shape(&self) -> String {
        let acc = if self.epilogue == (Epilogue::F32 { accumulate: true }) {
            " acc"
        } else {
            ""
        };
        format!("ms={:?} n={} k={}{acc}", self.ms, self.n, self.k)
    }
}

/// Where everything lives: A and C rows of cell g from row `row0[g]`, one spare row between cells.
struct Layout {
    groups: Vec<GemmGroup>,
    a_rows: usize,
    lda: usize,
    ldc: usize,
}

fn lay_out(case: &Sm90Case) -> Layout {
    // A rows a little wider than k (a stride the TMA map must honour); C rows wider than the output
    let (lda, ldc) = (case.k + 8, case.out_cols() + 8);
    let mut row = 0;
    let groups = case
        .ms
        .iter()
        .enumerate()
        .map(|(g, &m)| {
            let group = GemmGroup {
                a_offset: row * lda,
                b_offset: (g % LAYERS) * case.n * case.k,
                c_offset: row * ldc,
                m,
                n: case.n,
                k: case.k,
                lda,
                ldb: case.k,
                ldc,
            };
            row += m + 1;
            group
        })
        .collect();
    Layout {
        groups,
        a_rows: row.max(1),
        lda,
        ldc,
    }
}

/// Runs `case` (its groups `only`, or all) on fresh inputs from `seed` and returns C as f32 (bf16 widened), at the
/// rule's tile width.
fn run(gpu: &Gpu, case: &Sm90Case, l: &Layout, host: &Host, only: Option<usize>) -> Result<Vec<f32>, KernelError> {
    run_at(gpu, case, l, host, only, None)
}

/// [`run`] at tile width `at` (`None`: the rule's).
fn run_at(
    gpu: &Gpu,
    case: &Sm90Case,
    l: &Layout,
    host: &Host,
    only: Option<usize>,
    at: Option<usize>,
) -> Result<Vec<f32>, KernelError> {
    let stream = gpu.stream();
    let groups: Vec<GemmGroup> = match only {
        Some(g) => vec![l.groups[g]],
        None => l.groups.clone(),
    };
    let a = upload_bf16(stream, &host.a)?;
    let b = upload_bf16(stream, &host.b_stored)?;
    let c_len = l.a_rows * l.ldc;
    match case.epilogue {
        Epilogue::Bf16 | Epilogue::SwiGlu => {
            let mut c = poisoned_bf16(gpu, stream, c_len)?;
            if let Some(bn) = at {
                launch_at_width(gpu, stream, (&a, &b), &mut c, &groups, case.epilogue, bn)?;
            } else if case.epilogue == Epilogue::Bf16 {
                gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut c, &groups)?;
            } else {
                gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &a, &b, &mut c, &groups)?;
            }
            download_bf16(stream, &c)
        }
        Epilogue::F32 { accumulate } => {
            let mut c = match accumulate {
                true => upload_f32(stream, &host.c0)?,
                false => poisoned_f32(gpu, stream, c_len)?,
            };
            match at {
                Some(bn) => launch_at_width(gpu, stream, (&a, &b), &mut c, &groups, case.epilogue, bn)?,
                None => gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &a, &b, &mut c, &groups, accumulate)?,
            }
            download_f32(stream, &c)
        }
    }
}

/// Host inputs: A (NaN in the spare rows and the row padding), B as stored (SwiGLU: interleaved), B as the
/// reference multiplies it (SwiGLU: gate rows then up rows), and C before an accumulating launch.
struct Host {
    a: Vec<f32>,
    b_stored: Vec<f32>,
    b_plain: Vec<f32>,
    c0: Vec<f32>,
}

fn host_inputs(case: &Sm90Case, l: &Layout, seed: u64) -> Host {
    let mut rng = SplitMix64::new(seed);
    let mut a = vec![f32::NAN; l.a_rows * l.lda];
    for g in &l.groups {
        let row0 = g.a_offset / l.lda;
        for r in row0..row0 + g.m {
            let vals = bf16_normal(&mut rng, case.k, 1.0);
            a[r * l.lda..r * l.lda + case.k].copy_from_slice(&vals);
        }
    }
    let b_plain = bf16_normal(&mut rng, LAYERS * case.n * case.k, 1.0 / (case.k as f64).sqrt());
    let b_stored = match case.epilogue {
        Epilogue::SwiGlu => {
            let (rows, k) = (case.n, case.k);
            let mut b = vec![0.0; b_plain.len()];
            for layer in 0..LAYERS {
                for r in 0..rows {
                    let to = layer * rows + interleave_gate_up(r, rows / 2);
                    let from = layer * rows + r;
                    b[to * k..(to + 1) * k].copy_from_slice(&b_plain[from * k..(from + 1) * k]);
                }
            }
            b
        }
        _ => b_plain.clone(),
    };
    let poison = f32::from_bits(poison_bits::<f32>());
    let mut c0 = vec![poison; l.a_rows * l.ldc];
    if case.epilogue == (Epilogue::F32 { accumulate: true }) {
        for g in &l.groups {
            for r in 0..g.m {
                let at = g.c_offset + r * l.ldc;
                c0[at..at + case.n].copy_from_slice(&super::harness::f32_normal(&mut rng, case.n, 1.0));
            }
        }
    }
    Host {
        a,
        b_stored,
        b_plain,
        c0,
    }
}

/// The reference of group `g`'s output rows, `[m, out_cols]`.
fn reference(case: &Sm90Case, l: &Layout, host: &Host, g: usize) -> Vec<f32> {
    let grp = &l.groups[g];
    let (n, k, m) = (case.n, case.k, grp.m);
    let row0 = grp.a_offset / l.lda;
    let x: Vec<f32> = (row0..row0 + m)
        .flat_map(|r| host.a[r * l.lda..r * l.lda + k].iter().copied())
        .collect();
    let w = &host.b_plain[(g % LAYERS) * n * k..(g % LAYERS + 1) * n * k];
    let mut y = vec![0.0; m * n];
    linear(&x, w, m, k, n, &mut y);
    match case.epilogue {
        Epilogue::SwiGlu => {
            let i = n / 2;
            (0..m)
                .flat_map(|r| (0..i).map(move |j| (r, j)))
                .map(|(r, j)| silu(y[r * n + j]) * y[r * n + i + j])
                .collect()
        }
        Epilogue::F32 { accumulate: true } => (0..m * n)
            .map(|e| host.c0[grp.c_offset + (e / n) * l.ldc + e % n] + y[e])
            .collect(),
        _ => y,
    }
}

/// One case: every group against the reference, unwritten and stray elements, and group `alone` alone vs grouped.
pub fn check(gpu: &Gpu, case: &Sm90Case, seed: u64) -> Result<Vec<Check>, KernelError> {
    let l = lay_out(case);
    let host = host_inputs(case, &l, seed);
    let out = run(gpu, case, &l, &host, None)?;
    let cols = case.out_cols();
    let blocks: Vec<Block> = l
        .groups
        .iter()
        .map(|g| Block::rows(l.ldc, g.c_offset / l.ldc, g.m, 0, cols))
        .collect();
    let got: Vec<f32> = blocks.iter().flat_map(|b| b.gather(&out)).collect();
    let want: Vec<f32> = (0..l.groups.len())
        .flat_map(|g| reference(case, &l, &host, g))
        .collect();
    let tol = if matches!(case.epilogue, Epilogue::F32 { .. }) {
        F32_OUT_TOL
    } else {
        BF16_OUT_TOL
    };
    let accumulating = case.epilogue == (Epilogue::F32 { accumulate: true });
    let expected_outside = |i: usize| host.c0[i].to_bits();
    let strays = if matches!(case.epilogue, Epilogue::F32 { .. }) {
        changed_outside(&out, &blocks, |i| {
            if accumulating {
                expected_outside(i)
            } else {
                poison_bits::<f32>()
            }
        })
    } else {
        let as_bf16: Vec<bf16> = out.iter().map(|&x| bf16::from_f32(x)).collect();
        changed_outside(&as_bf16, &blocks, |_| poison_bits::<bf16>())
    };
    let mut checks = vec![fail_if(
        compare(case.name(), case.shape(), &got, &want, tol),
        strays,
        "elements written outside the groups",
    )];
    // the largest group alone, against itself inside the launch
    let target = (0..l.groups.len()).max_by_key(|&g| l.groups[g].m).unwrap_or(0);
    let alone = run(gpu, case, &l, &host, Some(target))?;
    let b = blocks[target];
    checks.push(bitwise(
        case.name(),
        format!("{} cell {target} alone vs grouped", case.shape()),
        &b.gather(&alone),
        &b.gather(&out),
    ));
    Ok(checks)
}

/// The cases of the suite: every epilogue at small, off-tile and real shapes.
pub fn cases() -> Vec<Sm90Case> {
    let mixed = vec![1, 7, 129, 428, 64];
    let mut out = Vec::new();
    for epilogue in [
        Epilogue::Bf16,
        Epilogue::F32 { accumulate: false },
        Epilogue::F32 { accumulate: true },
    ] {
        for (n, k) in [(64, 64), (200, 576), (960, 576), (3072, 2048)] {
            out.push(Sm90Case {
                epilogue,
                ms: mixed.clone(),
                n,
                k,
            });
        }
    }
    for (n, k) in [(256, 64), (3072, 576), (2 * 8192, 2048)] {
        out.push(Sm90Case {
            epilogue: Epilogue::SwiGlu,
            ms: if n > 8192 { vec![300, 1] } else { mixed.clone() },
            n,
            k,
        });
    }
    // the memory's projections (f32 out): the read's H·W_qᵀ (n = d_mem) and the write's P·[W_k|W_v|w_β]ᵀ (n =
    // d_mem + d + 1 padded to 8), Llama-3.2-1B widths
    for (n, ms) in [(64, vec![1152, 1, 300]), (2120, vec![128, 128, 7])] {
        out.push(Sm90Case {
            epilogue: Epilogue::F32 { accumulate: false },
            ms,
            n,
            k: 2048,
        });
    }
    // down-projection depth, one full cell and a short one
    out.push(Sm90Case {
        epilogue: Epilogue::F32 { accumulate: true },
        ms: vec![1152, 300],
        n: 2048,
        k: 8192,
    });
    out
}

/// The elements of C outside the groups' blocks that changed: against C before the launch when accumulating, else
/// against the poison.
fn strays(case: &Sm90Case, host: &Host, out: &[f32], blocks: &[Block]) -> usize {
    match case.epilogue {
        Epilogue::F32 { accumulate: true } => changed_outside(out, blocks, |i| host.c0[i].to_bits()),
        Epilogue::F32 { accumulate: false } => changed_outside(out, blocks, |_| poison_bits::<f32>()),
        _ => changed_outside(out, blocks, |_| poison_bits::<bf16>()),
    }
}

/// The problem sets of [`width_checks`]: every problem at most [`DECODE_MAX_ROWS`] rows (so that every width, narrow
/// and wide, has an entry point for it), every epilogue with a narrow width (bf16, f32, f32 accumulate), off-tile m
/// (1, 7, 33, and an empty group), n not a multiple of 16 (200, 2120), a k edge (584 = 9·64 + 8, zero-filled by
/// TMA), and the 1B model's decode shapes (q/k/v, o, down, the memory read's q); v6: A boxes of 16 and 32 rows,
/// k shorter than a stage, and SwiGLU (its narrow tile and its two wide widths).
pub fn width_cases() -> Vec<Sm90Case> {
    let small = vec![1, 7, DECODE_MAX_ROWS, 0, 33];
    let mut out = Vec::new();
    for epilogue in [
        Epilogue::Bf16,
        Epilogue::F32 { accumulate: false },
        Epilogue::F32 { accumulate: true },
    ] {
        out.push(Sm90Case {
            epilogue,
            ms: small.clone(),
            n: 200,
            k: 584,
        });
    }
    let case = |epilogue, ms: &[usize], n, k| Sm90Case {
        epilogue,
        ms: ms.to_vec(),
        n,
        k,
    };
    let acc = Epilogue::F32 { accumulate: true };
    let plain = Epilogue::F32 { accumulate: false };
    out.push(case(Epilogue::Bf16, &[1, 3], 3072, 2048));
    out.push(case(acc, &[1, 64], 2048, 2048));
    out.push(case(acc, &[1], 2048, 8192));
    out.push(case(plain, &[1, 5], 64, 2048));
    out.push(case(plain, &[8], 2120, 2048));
    out.push(case(Epilogue::Bf16, &[64, 64, 17], 2120, 576));
    // v6: the narrow widths' stages hold 128/BN k-blocks and A slots of the A box's rows (8, 16, 32 or 64, from the
    // largest m): boxes of 16 and 32 rows, a k of fewer k-blocks than a stage holds (k = 200: 4 k-blocks, the last
    // zero-filled past 200; one partial stage at BN 16, one full at 32, two at 64) and a single k-block
    out.push(case(acc, &[16, 2], 2048, 2048));
    out.push(case(Epilogue::Bf16, &[32, 9], 960, 200));
    out.push(case(plain, &[12, 1], 200, 64));
    // v6: SwiGLU at its narrow tile and both wide widths: off-tile m and an empty group with the k edge, a k shorter
    // than two k-blocks, and the 1B gate/up of one row
    let swiglu = Epilogue::SwiGlu;
    out.push(case(swiglu, &small, 1024, 584));
    out.push(case(swiglu, &[8, 1], 256, 72));
    out.push(case(swiglu, &[1], 16384, 2048));
    out
}

/// One problem set at every tile width with an entry point ([`DECODE_TILE_WIDTHS`] then [`TILE_WIDTHS`]), the same
/// fresh inputs, C poisoned (or, accumulating, the same C) before each launch: the narrowest width against the
/// reference (and no writes outside the groups), then every other width's whole output bitwise against it (and no
/// writes outside the groups). One check per case; a failure names the widths that differ.
pub fn width_check(gpu: &Gpu, case: &Sm90Case, seed: u64) -> Result<Check, KernelError> {
    let l = lay_out(case);
    let host = host_inputs(case, &l, seed);
    let cols = case.out_cols();
    let blocks: Vec<Block> = l
        .groups
        .iter()
        .map(|g| Block::rows(l.ldc, g.c_offset / l.ldc, g.m, 0, cols))
        .collect();
    let gather = |out: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(out)).collect() };
    let widths: Vec<usize> = if case.epilogue == Epilogue::SwiGlu {
        // the narrow SwiGLU tile (v6; named by its 64 outputs) and the two wide SwiGLU widths
        vec![SWIGLU_DECODE_WIDTH, 128, 256]
    } else {
        DECODE_TILE_WIDTHS.iter().chain(&TILE_WIDTHS).copied().collect()
    };
    let first = run_at(gpu, case, &l, &host, None, Some(widths[0]))?;
    let first_rows = gather(&first);
    let want: Vec<f32> = (0..l.groups.len())
        .flat_map(|g| reference(case, &l, &host, g))
        .collect();
    let tol = if matches!(case.epilogue, Epilogue::F32 { .. }) {
        F32_OUT_TOL
    } else {
        BF16_OUT_TOL
    };
    let mut bad_strays = strays(case, &host, &first, &blocks);
    let (mut differing, mut which) = (0, Vec::new());
    for &bn in &widths[1..] {
        let out = run_at(gpu, case, &l, &host, None, Some(bn))?;
        bad_strays += strays(case, &host, &out, &blocks);
        let d = super::harness::differing_bits(&gather(&out), &first_rows);
        if d > 0 {
            differing += d;
            which.push(bn);
        }
    }
    let shape = format!(
        "{} at BN {:?} (ref: BN {}; bitwise: all)",
        case.shape(),
        widths,
        widths[0]
    );
    let check = compare(case.name(), shape, &first_rows, &want, tol);
    let check = fail_if(check, bad_strays, "elements written outside the groups");
    Ok(fail_if(
        check,
        differing,
        &format!("elements differ in bits from BN {} at BN {which:?}", widths[0]),
    ))
}

/// [`width_check`] over [`width_cases`].
pub fn width_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    width_cases()
        .iter()
        .enumerate()
        .map(|(i, case)| width_check(gpu, case, seed.wrapping_add(i as u64)))
        .collect()
}

/// Rows of the whole segment of [`decode_check`] (9 tiles of 128: a segment of the 1B model).
const SEGMENT: usize = 1152;

/// A decode row against the same row of its whole segment: one layer's weight, a segment of [`SEGMENT`] rows
/// computed as one problem (the rule's width for 1152 rows: a wide one), then decode launches of one row alone (rows
/// 0, 1, 127, 128, 700, 1151) and of 8 rows merged (1144..1151), each at the rule's width for its rows (narrow when
/// decode tiles are on): every decode row must have the bits of the segment's row, and no decode launch may write
/// outside its rows. Accumulating, every launch starts from the same C. The widths taken are in the shape.
pub fn decode_check(gpu: &Gpu, seed: u64, epilogue: Epilogue, n: usize, k: usize) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let a_host = bf16_normal(&mut rng, SEGMENT * k, 1.0);
    let b_host = bf16_normal(&mut rng, n * k, 1.0 / (k as f64).sqrt());
    // output columns (SwiGLU: n/2 from the n interleaved B rows; B's values are random either way)
    let cols = if epilogue == Epilogue::SwiGlu { n / 2 } else { n };
    let accumulating = epilogue == (Epilogue::F32 { accumulate: true });
    let c0 = if accumulating {
        super::harness::f32_normal(&mut rng, SEGMENT * n, 1.0)
    } else {
        Vec::new()
    };
    let a = upload_bf16(stream, &a_host)?;
    let b = upload_bf16(stream, &b_host)?;
    let group = |row: usize, m: usize| GemmGroup {
        a_offset: row * k,
        b_offset: 0,
        c_offset: row * cols,
        m,
        n,
        k,
        lda: k,
        ldb: k,
        ldc: cols,
    };
    let launch = |groups: &[GemmGroup]| -> Result<Vec<f32>, KernelError> {
        match epilogue {
            Epilogue::F32 { accumulate } => {
                let mut c = match accumulate {
                    true => upload_f32(stream, &c0)?,
                    false => poisoned_f32(gpu, stream, SEGMENT * n)?,
                };
                gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &a, &b, &mut c, groups, accumulate)?;
                download_f32(stream, &c)
            }
            Epilogue::SwiGlu => {
                let mut c = poisoned_bf16(gpu, stream, SEGMENT * cols)?;
                gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &a, &b, &mut c, groups)?;
                download_bf16(stream, &c)
            }
            Epilogue::Bf16 => {
                let mut c = poisoned_bf16(gpu, stream, SEGMENT * n)?;
                gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut c, groups)?;
                download_bf16(stream, &c)
            }
        }
    };
    let width = |groups: &[GemmGroup]| launch_tile_width(groups, epilogue, gpu.sm_count(), decode_tiles_enabled());
    let whole_groups = [group(0, SEGMENT)];
    let whole = launch(&whole_groups)?;
    let (mut got, mut want, mut bad_strays, mut widths) = (Vec::new(), Vec::new(), 0, Vec::new());
    for (row, m) in [
        (0, 1),
        (1, 1),
        (127, 1),
        (128, 1),
        (700, 1),
        (SEGMENT - 1, 1),
        (SEGMENT - 8, 8),
    ] {
        let groups = [group(row, m)];
        widths.push(width(&groups));
        let out = launch(&groups)?;
        let block = Block::rows(cols, row, m, 0, cols);
        got.extend(block.gather(&out));
        want.extend(block.gather(&whole));
        bad_strays += match epilogue {
            Epilogue::F32 { accumulate: true } => changed_outside(&out, &[block], |i| c0[i].to_bits()),
            Epilogue::F32 { .. } => changed_outside(&out, &[block], |_| poison_bits::<f32>()),
            _ => changed_outside(&out, &[block], |_| poison_bits::<bf16>()),
        };
    }
    let name = match epilogue {
        Epilogue::F32 { .. } => "gemm_sm90_nt_bf16_bf16_f32",
        Epilogue::SwiGlu => "gemm_sm90_nt_bf16_bf16_swiglu",
        Epilogue::Bf16 => "gemm_sm90_nt_bf16_bf16_bf16",
    };
    let shape = format!(
        "n={n} k={k}{} decode rows (BN {widths:?}) vs a {SEGMENT}-row segment (BN {})",
        if accumulating { " acc" } else { "" },
        width(&whole_groups)
    );
    Ok(fail_if(
        bitwise(name, shape, &got, &want),
        bad_strays,
        "elements written outside the decode rows",
    ))
}

/// [`decode_check`] at the 1B model's decode shapes: q/k/v (bf16), o and down (f32 accumulate), the memory read's q
/// (f32), gate/up (SwiGLU, v6).
pub fn decode_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let acc = Epilogue::F32 { accumulate: true };
    [
        (Epilogue::Bf16, 3072, 2048),
        (acc, 2048, 2048),
        (acc, 2048, 8192),
        (Epilogue::F32 { accumulate: false }, 64, 2048),
        (Epilogue::SwiGlu, 16384, 2048),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(e, n, k))| decode_check(gpu, seed.wrapping_add(i as u64), e, n, k))
    .collect()
}

/// The bf16 mirror of f32 output (v7, `launch_mirrored`) at each of `widths`: C must have the bits of the same launch
/// without a mirror, the mirror inside the groups the bits of bf16(C) (round to nearest even, as `to_bf16`), and
/// the mirror outside them its poison. One check per case; a failure names the widths.
pub fn mirror_check(gpu: &Gpu, case: &Sm90Case, seed: u64, widths: &[usize]) -> Result<Check, KernelError> {
    let Epilogue::F32 { accumulate } = case.epilogue else {
        return Err(crate::launch::invalid("gemm_sm90 mirror_check", "an f32 case".into()));
    };
    let l = lay_out(case);
    let host = host_inputs(case, &l, seed);
    let blocks: Vec<Block> = l
        .groups
        .iter()
        .map(|g| Block::rows(l.ldc, g.c_offset / l.ldc, g.m, 0, case.n))
        .collect();
    let gather = |out: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(out)).collect() };
    let stream = gpu.stream();
    let (a, b) = (upload_bf16(stream, &host.a)?, upload_bf16(stream, &host.b_stored)?);
    let c_len = l.a_rows * l.ldc;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let (mut c_differ, mut strays_n, mut which) = (0, 0, Vec::new());
    for &bn in widths {
        let plain = run_at(gpu, case, &l, &host, None, Some(bn))?;
        let mut c = match accumulate {
            true => upload_f32(stream, &host.c0)?,
            false => poisoned_f32(gpu, stream, c_len)?,
        };
        let mut mirror = poisoned_bf16(gpu, stream, c_len)?;
        launch_mirrored(
            gpu,
            stream,
            (&a, &b),
            (&mut c, Some(&mut mirror)),
            &l.groups,
            case.epilogue,
            bn,
        )?;
        let (c, mirror) = (download_f32(stream, &c)?, download_bf16(stream, &mirror)?);
        let rounded: Vec<f32> = gather(&c).iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
        let (m_rows, d) = (
            gather(&mirror),
            super::harness::differing_bits(&gather(&mirror), &rounded),
        );
        let (cd, st) = (
            super::harness::differing_bits(&c, &plain),
            changed_outside(&mirror, &blocks, |_| poison_bits::<bf16>()),
        );
        if d + cd + st > 0 {
            which.push(bn);
        }
        c_differ += cd;
        strays_n += st;
        got.extend(m_rows);
        want.extend(rounded);
    }
    let shape = format!(
        "{} mirror at BN {widths:?} (bf16(C) bitwise; C as unmirrored)",
        case.shape()
    );
    let check = compare("gemm_sm90_nt_bf16_bf16_f32_mirrored", shape, &got, &want, 0.0);
    let check = fail_if(
        check,
        super::harness::differing_bits(&got, &want),
        "mirror elements differ from bf16(C)",
    );
    let check = fail_if(check, c_differ, "C elements differ from the launch without a mirror");
    Ok(fail_if(
        check,
        strays_n,
        &format!("mirror elements written outside the groups (BN {which:?})"),
    ))
}

/// [`mirror_check`] at the 1B model's down projection in decode (one and 64 rows: the narrow widths and the wide
/// ones), the 160M model's (two cells, off-tile rows, every wide width: the offloaded epilogue at 128–160 and the
/// inline one at 192–256), and a plain f32 product with an n off every tile.
pub fn mirror_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let acc = Epilogue::F32 { accumulate: true };
    let plain = Epilogue::F32 { accumulate: false };
    let case = |epilogue, ms: &[usize], n, k| Sm90Case {
        epilogue,
        ms: ms.to_vec(),
        n,
        k,
    };
    let all: Vec<usize> = DECODE_TILE_WIDTHS.iter().chain(&TILE_WIDTHS).copied().collect();
    vec![
        mirror_check(gpu, &case(acc, &[1, 64], 2048, 8192), seed, &all),
        mirror_check(gpu, &case(acc, &[640, 300, 0, 7], 768, 3072), seed ^ 1, &TILE_WIDTHS),
        mirror_check(gpu, &case(plain, &[130, 1], 200, 584), seed ^ 2, &TILE_WIDTHS),
    ]
}

/// Whether the tensor cores' sum depends on the operands' roles (the premise of a swapped decode product, where the
/// weights would be the wgmma's 64-row A operand and a decoded row's activations its narrow B operand, instead of a
/// 64-row A tile of which one row is real): `n_w` weight rows over `k`, `rows` activation rows (one layer, f32 output,
/// no accumulation). Launched as the engine does (A = the activations at the rule's width: a wide tile for 1152
/// rows), then swapped (A = the weights, `n_w` ≤ 64 rows, at the narrow width 16; B = 16 of the activation rows
/// from `row0`, their "layer"): the swapped product's transpose must have the bits of the engine's rows. A probe, not
/// a kernel check: it names what a swapped decode kernel could keep.
pub fn swap_probe(gpu: &Gpu, seed: u64, n_w: usize, k: usize, rows: usize, row0: usize) -> Result<Check, KernelError> {
    const B_ROWS: usize = 16;
    let mut rng = SplitMix64::new(seed);
    let stream = gpu.stream();
    let act = bf16_normal(&mut rng, rows * k, 1.0);
    let w = bf16_normal(&mut rng, n_w * k, 1.0 / (k as f64).sqrt());
    let (act_d, w_d) = (upload_bf16(stream, &act)?, upload_bf16(stream, &w)?);
    let f32out = Epilogue::F32 { accumulate: false };
    // the engine's product: C [rows, n_w]
    let mut c = poisoned_f32(gpu, stream, rows * n_w)?;
    let normal = GemmGroup {
        a_offset: 0,
        b_offset: 0,
        c_offset: 0,
        m: rows,
        n: n_w,
        k,
        lda: k,
        ldb: k,
        ldc: n_w,
    };
    let bn = launch_tile_width(&[normal], f32out, gpu.sm_count(), decode_tiles_enabled());
    gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &act_d, &w_d, &mut c, &[normal], false)?;
    // swapped: C' [n_w, 16] = W · act[row0 .. row0 + 16]ᵀ
    let mut ct = poisoned_f32(gpu, stream, n_w * B_ROWS)?;
    let swapped = GemmGroup {
        a_offset: 0,
        b_offset: row0 * k,
        c_offset: 0,
        m: n_w,
        n: B_ROWS,
        k,
        lda: k,
        ldb: k,
        ldc: B_ROWS,
    };
    launch_at_width(gpu, stream, (&w_d, &act_d), &mut ct, &[swapped], f32out, 16)?;
    let (c, ct) = (download_f32(stream, &c)?, download_f32(stream, &ct)?);
    let got: Vec<f32> = (0..B_ROWS)
        .flat_map(|i| (0..n_w).map(move |j| (i, j)))
        .map(|(i, j)| ct[j * B_ROWS + i])
        .collect();
    let want: Vec<f32> = (0..B_ROWS)
        .flat_map(|i| (0..n_w).map(move |j| (i, j)))
        .map(|(i, j)| c[(row0 + i) * n_w + j])
        .collect();
    let shape = format!(
        "{n_w} weight rows, k={k}, rows {row0}..{} of {rows}: (A=W, B=act) at BN 16 vs (A=act, B=W) at BN {bn}",
        row0 + B_ROWS
    );
    Ok(bitwise("gemm_sm90 swapped operands", shape, &want, &got))
}

/// [`swap_probe`] at the 1B model's o / q·k·v (k = 2048) and down (k = 8192) inner sizes.
pub fn swap_probes(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        swap_probe(gpu, seed, 64, 2048, 1152, 700),
        swap_probe(gpu, seed ^ 1, 64, 8192, 1152, 1136),
        swap_probe(gpu, seed ^ 2, 48, 576, 640, 3),
    ]
}

/// Every case, the width and decode checks, then the merged-row checks.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut out: Vec<Result<Check, KernelError>> = cases()
        .iter()
        .enumerate()
        .flat_map(|(i, case)| match check(gpu, case, seed.wrapping_add(i as u64)) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })
        .collect();
    out.extend(width_checks(gpu, seed.wrapping_add(300)));
    out.extend(decode_checks(gpu, seed.wrapping_add(400)));
    out.extend(row_checks(gpu, seed.wrapping_add(500)));
    out.extend(mirror_checks(gpu, seed.wrapping_add(600)));
    out
}

/// Tile height of the v2 GEMM (`BM`).
const TILE_M: usize = 128;

/// Decode rows of several requests in one group (see `check/gemm_rows.rs`): every epilogue at the 1B model's
/// projection shapes (q/k/v, o, the fused gate/up, the memory's q and k/v/β, an LM-head-like width), a row alone vs
/// at every position of a merged tile; and the engine's two row moves against the one-group-per-request launches.
pub fn row_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    use super::gemm_rows::{check_engine_add, check_engine_copy, check_positions, Product, RowShape};
    use cudarc::driver::{CudaSlice, CudaStream};
    use std::sync::Arc;
    type Bf16s = CudaSlice<bf16>;
    type F32s = CudaSlice<f32>;
    type Res = Result<(), KernelError>;
    fn bf16_out(gpu: &Gpu, st: &Arc<CudaStream>, a: &Bf16s, b: &Bf16s, c: &mut Bf16s, g: &[GemmGroup]) -> Res {
        gemm_sm90_nt_bf16_bf16_bf16(gpu, st, a, b, c, g)
    }
    fn swiglu(gpu: &Gpu, st: &Arc<CudaStream>, a: &Bf16s, b: &Bf16s, c: &mut Bf16s, g: &[GemmGroup]) -> Res {
        gemm_sm90_nt_bf16_bf16_swiglu(gpu, st, a, b, c, g)
    }
    fn f32_out(gpu: &Gpu, st: &Arc<CudaStream>, a: &Bf16s, b: &Bf16s, c: &mut F32s, g: &[GemmGroup], acc: bool) -> Res {
        gemm_sm90_nt_bf16_bf16_f32(gpu, st, a, b, c, g, acc)
    }
    let shape = |n: usize, k: usize, out_cols: usize| RowShape {
        n,
        k,
        out_cols,
        tile_m: TILE_M,
    };
    let (bf16_name, f32_name, swiglu_name) = (
        "gemm_sm90_nt_bf16_bf16_bf16",
        "gemm_sm90_nt_bf16_bf16_f32",
        "gemm_sm90_nt_bf16_bf16_swiglu",
    );
    let acc = Product::F32 {
        launch: &f32_out,
        accumulate: true,
    };
    let plain = Product::F32 {
        launch: &f32_out,
        accumulate: false,
    };
    vec![
        check_positions(gpu, seed, bf16_name, &Product::Bf16(&bf16_out), shape(3072, 2048, 3072)),
        check_positions(
            gpu,
            seed ^ 1,
            swiglu_name,
            &Product::Bf16(&swiglu),
            shape(2048, 576, 1024),
        ),
        check_positions(gpu, seed ^ 2, f32_name, &acc, shape(2048, 2048, 2048)),
        check_positions(gpu, seed ^ 3, f32_name, &plain, shape(64, 2048, 64)),
        check_positions(gpu, seed ^ 4, f32_name, &plain, shape(2120, 2048, 2120)),
        check_engine_copy(gpu, seed ^ 5, bf16_name, &bf16_out, shape(3072, 2048, 3072)),
        check_engine_add(gpu, seed ^ 6, f32_name, &f32_out, shape(2048, 2048, 2048)),
        check_engine_add(gpu, seed ^ 7, f32_name, &f32_out, shape(2048, 8192, 2048)),
    ]
}
