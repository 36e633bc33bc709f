//! `armt_write_prep_f32` against [`reference::armt_write::write_prep`](crate::reference::armt_write::write_prep) and
//! `armt_z_update_f32` against [`reference::armt_write::z_update`](crate::reference::armt_write::z_update), each also
//! run as the only span of a launch and compared bit for bit with the same cell inside a launch of four.
//!
//! The inputs are shaped like the real ones: kφ comes from [`dpfp`] of random keys, `z` is positive and large
//! ([`positive_z`]), the numerators `kφ·A` are drawn so that `ka / δ` is O(1) like `V`, and the keys' scale grows
//! along the memory rows so that `γ` is clipped to 0 on some rows and lies strictly between 0 and 1 on others (the
//! check fails if either case is missing).
//!
//! Tolerance [`F32_OUT_TOL`] for both: f32 throughout. In the prep, δ and ‖kφ‖² are f32 dot products over D ≤ 768
//! positive terms reduced in a tree on the GPU and in f64 in the reference (relative difference ≲ 1e-6), `expf` in σ
//! is within 2 ulp, and `u`, `γ` depend on them linearly (γ = 1 − δ/‖kφ‖² loses no more than δ/‖kφ‖² ≤ 1 times that,
//! in absolute terms). The z update does the reference's arithmetic in the reference's order (one rounded product,
//! one rounded add per term), so it should match bit for bit.

use super::armt_read::{dot64, positive_z, NU};
use super::harness::{
    bitwise, changed_outside, compare, download_f32, f32_normal, fail_if, gather, poisoned_f32, put, upload_f32, Block,
    Check, Layout, SplitMix64, F32_OUT_TOL,
};
use crate::armt_write::{armt_write_features, armt_write_prep, armt_z_update, WriteFeatures, WritePrep};
use crate::gemm::GemmGroup;
use crate::gemm_tf32x3_sm90::{gemm_sm90_nn_f32_f32_f32_tf32x3, gemm_sm90_nn_f32_f32_f32_tf32x3_prep, PrepInputs};
use crate::params::Span;
use crate::poison::POISON_F32_BITS;
use crate::reference::armt_write::{write_prep, z_update, WriteFlags};
use crate::reference::dpfp::dpfp;
use crate::reference::ARMT_EPS;
use crate::{Gpu, KernelError};

/// Extra columns of the write product's row stride beyond `d_mem + d + 1` (never read).
const KVB_PAD: usize = 2;

// ------------------------------------------------------------------------------------------------------------------
// u and γ

/// One cell of the write: raw K `[M, d_mem]`, kφ `[M, D]`, V `[M, d]`, β logits `[M]`, ka = kφ·A_old `[M, d]`,
/// z `[D]`, the layer's β bias, and whether it is segment 0.
struct WriteCell {
    kraw: Vec<f32>,
    kphi: Vec<f32>,
    v: Vec<f32>,
    logit: Vec<f32>,
    ka: Vec<f32>,
    z: Vec<f32>,
    b_beta: f32,
    first: bool,
}

/// Raw keys `[m, d_mem]` whose scale grows geometrically from 0.5 (row 0) to 6 (row m − 1): with z ≈ |N|·5 + 1,
/// ‖kφ‖² overtakes kφ·z at a scale of about 2, so γ is clipped to 0 on the first rows and in (0, 1) on the last.
fn laddered_keys(rng: &mut SplitMix64, m: usize, d_mem: usize) -> Vec<f32> {
    (0..m)
        .flat_map(|t| {
            let scale = 0.5 * 12f64.powf(t as f64 / (m.max(2) - 1) as f64);
            f32_normal(rng, d_mem, scale)
        })
        .collect()
}

fn write_cell(rng: &mut SplitMix64, m: usize, d: usize, d_mem: usize, first: bool) -> WriteCell {
    let dk = 2 * NU * d_mem;
    let kraw = laddered_keys(rng, m, d_mem);
    let mut kphi = vec![0.0f32; m * dk];
    dpfp(&kraw, d_mem, NU, &mut kphi);
    let z = positive_z(rng, dk);
    let v = f32_normal(rng, m * d, 1.0);
    let logit = f32_normal(rng, m, 2.0);
    let mut ka = Vec::with_capacity(m * d);
    for k in kphi.chunks_exact(dk) {
        let delta = dot64(k, &z) + ARMT_EPS as f64;
        ka.extend((0..d).map(|_| (rng.normal() * delta) as f32));
    }
    let b_beta = rng.normal() as f32;
    WriteCell {
        kraw,
        kphi,
        v,
        logit,
        ka,
        z,
        b_beta,
        first,
    }
}

impl WriteCell {
    /// [`write_prep`] on this cell: (u `[M, d]`, γ `[M]`).
    fn reference(&self, d: usize, correction: bool) -> (Vec<f32>, Vec<f32>) {
        let m = self.logit.len();
        let (mut u, mut gamma) = (vec![0.0f32; m * d], vec![0.0f32; m]);
        let flags = WriteFlags {
            first_segment: self.first,
            correction,
        };
        write_prep(
            &self.kphi,
            &self.v,
            &self.logit,
            self.b_beta,
            &self.ka,
            &self.z,
            flags,
            &mut u,
            &mut gamma,
        );
        (u, gamma)
    }
}

/// `armt_write_prep_f32` on three cells of `m` memory rows (the middle one segment 0, whose `ka` rows are NaN on the
/// GPU: they must not be read), against [`write_prep`]. Two checks: `u`, and `γ` (with how many rows of the other
/// cells were clipped to 0 and how many are in (0, 1); with `correction` both must occur).
pub fn check_write_prep(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    m: usize,
    correction: bool,
) -> Result<[Check; 2], KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<WriteCell> = (0..3).map(|i| write_cell(&mut rng, m, d, d_mem, i == 1)).collect();
    let cell_refs: Vec<&WriteCell> = cells.iter().collect();
    let layout = Layout::cells(&[m; 3], 1);
    let (u, gamma) = run_write_prep(gpu, &mut rng, &cell_refs, &layout, d, d_mem, correction)?;
    let (mut got_u, mut want_u, mut got_g, mut want_g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut clipped, mut between) = (0, 0);
    for (i, c) in cells.iter().enumerate() {
        let (ru, rg) = c.reference(d, correction);
        if !c.first {
            clipped += rg.iter().filter(|&&g| g == 0.0).count();
            between += rg.iter().filter(|&&g| g > 0.0 && g < 1.0).count();
        }
        want_u.extend(ru);
        want_g.extend(rg);
        got_u.extend(gather(&u, d, layout.spans[i].out_row, m, 0, d));
        got_g.extend(gather(&gamma, 1, layout.spans[i].out_row, m, 0, 1));
    }
    let shape = format!("d={d} d_mem={d_mem} M={m} correction={correction} spans=3 (1 first)");
    let u_strays = changed_outside(&u, &layout.out_blocks(d, d, 0), |_| POISON_F32_BITS);
    let g_strays = changed_outside(&gamma, &layout.out_blocks(1, 1, 0), |_| POISON_F32_BITS);
    let u_check = fail_if(
        compare(
            "armt_write_prep_f32",
            format!("{shape} out=u"),
            &got_u,
            &want_u,
            F32_OUT_TOL,
        ),
        u_strays,
        "stray writes",
    );
    let shape = format!("{shape} out=γ (0: {clipped}, (0,1): {between})");
    let mut g_check = fail_if(
        compare("armt_write_prep_f32", shape, &got_g, &want_g, F32_OUT_TOL),
        g_strays,
        "stray writes",
    );
    if correction && (clipped == 0 || between == 0) {
        g_check.rel_err = f64::INFINITY;
        g_check.shape += " γ COVERAGE MISSING";
    }
    Ok([u_check, g_check])
}

/// Cell `alone` (not segment 0) of a launch of four cells (the first one segment 0), run again as the only span of a
/// launch (other rows, state and layer index): its `u` and `γ` must be the same bits.
pub fn check_write_prep_grouping(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    m: usize,
    alone: usize,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<WriteCell> = (0..4).map(|i| write_cell(&mut rng, m, d, d_mem, i == 0)).collect();
    let cell_refs: Vec<&WriteCell> = cells.iter().collect();
    let group = Layout::cells(&[m; 4], 1);
    let (u, gamma) = run_write_prep(gpu, &mut rng, &cell_refs, &group, d, d_mem, true)?;
    let mut grouped = gather(&u, d, group.spans[alone].out_row, m, 0, d);
    grouped.extend(gather(&gamma, 1, group.spans[alone].out_row, m, 0, 1));
    let single = Layout::cells(&[m], 3);
    let (u, gamma) = run_write_prep(gpu, &mut rng, &cell_refs[alone..=alone], &single, d, d_mem, true)?;
    let mut by_itself = gather(&u, d, single.spans[0].out_row, m, 0, d);
    by_itself.extend(gather(&gamma, 1, single.spans[0].out_row, m, 0, 1));
    let shape = format!("alone vs 4 spans: cell {alone}, d={d} d_mem={d_mem} M={m} (u, γ)");
    Ok(bitwise("armt_write_prep_f32", shape, &by_itself, &grouped))
}

/// One launch of [`armt_write_prep`] over `cells` placed by `layout` (random rows, states and biases around them;
/// segment-0 cells' `ka` rows NaN); returns the whole `u` and `γ` buffers (poisoned before the launch).
fn run_write_prep(
    gpu: &Gpu,
    rng: &mut SplitMix64,
    cells: &[&WriteCell],
    layout: &Layout,
    d: usize,
    d_mem: usize,
    correction: bool,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let (dk, m) = (2 * NU * d_mem, cells[0].logit.len());
    let kvb_ld = d_mem + d + 1 + KVB_PAD;
    let mut kvb = f32_normal(rng, layout.in_rows * kvb_ld, 1.0);
    let mut kphi = f32_normal(rng, layout.in_rows * dk, 1.0);
    let mut ka = f32_normal(rng, layout.in_rows * d, 1.0);
    let mut z = positive_z(rng, layout.slots * dk);
    let mut b_beta = f32_normal(rng, layout.slots, 1.0);
    for (i, c) in cells.iter().enumerate() {
        let row = layout.spans[i].in_row;
        // The fused product's row: [K raw | V | β logit].
        for t in 0..m {
            let at = (row + t) * kvb_ld;
            kvb[at..at + d_mem].copy_from_slice(&c.kraw[t * d_mem..(t + 1) * d_mem]);
            kvb[at + d_mem..at + d_mem + d].copy_from_slice(&c.v[t * d..(t + 1) * d]);
            kvb[at + d_mem + d] = c.logit[t];
        }
        put(&mut kphi, dk, row, &c.kphi, dk);
        if c.first {
            put(&mut ka, d, row, &vec![f32::NAN; m * d], d);
        } else {
            put(&mut ka, d, row, &c.ka, d);
        }
        put(&mut z, dk, layout.spans[i].state, &c.z, dk);
        b_beta[layout.spans[i].layer] = c.b_beta;
    }
    let flags: Vec<bool> = cells.iter().map(|c| c.first).collect();
    let (kvb_d, kphi_d, ka_d) = (
        upload_f32(stream, &kvb)?,
        upload_f32(stream, &kphi)?,
        upload_f32(stream, &ka)?,
    );
    let (z_d, b_beta_d) = (upload_f32(stream, &z)?, upload_f32(stream, &b_beta)?);
    let mut u = poisoned_f32(gpu, stream, layout.out_rows * d)?;
    let mut gamma = poisoned_f32(gpu, stream, layout.out_rows)?;
    let inputs = WritePrep {
        kvb: &kvb_d,
        kvb_ld,
        v_col: d_mem,
        kphi: &kphi_d,
        ka: &ka_d,
        z: &z_d,
        b_beta: &b_beta_d,
        d,
        d_key: dk,
        correction,
    };
    armt_write_prep(gpu, stream, &inputs, &mut u, &mut gamma, &layout.spans_flagged(&flags))?;
    Ok((download_f32(stream, &u)?, download_f32(stream, &gamma)?))
}

// ------------------------------------------------------------------------------------------------------------------
// the prep in the product's epilogue

/// The write's middle as the engine runs it with the prep in `kφ·A`'s epilogue — `armt_write_features_f32` (kφ,
/// δ, β, γ; segment 0's u) then `gemm_sm90_nn_f32_f32_f32_tf32x3_prep` (u) — against the three launches it
/// replaces (`dpfp_f32`, the tf32x3 product into ka, `armt_write_prep_f32`) on the same inputs: kφ, u and γ bitwise
/// (whole buffers, poisoned first); and u, γ against [`write_prep`] with ka from an f64 product. Four cells of `m`
/// rows (the first segment 0, its rows have no product), states out of order, each cell's own layer bias.
pub fn check_write_prep_in_product(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    m: usize,
) -> Result<Check, KernelError> {
    const ENTRY: &str = "gemm_sm90_nn_f32_f32_f32_tf32x3_prep";
    let mut rng = SplitMix64::new(seed);
    let stream = gpu.stream();
    let dk = 2 * NU * d_mem;
    let layout = Layout::cells(&[m; 4], 1);
    let flags = [true, false, false, false];
    let spans = layout.spans_flagged(&flags);
    let kvb_ld = (d_mem + d + 1).div_ceil(4) * 4 + 4;
    let mut kvb = f32_normal(&mut rng, layout.in_rows * kvb_ld, 1.0);
    for s in &spans {
        let keys = laddered_keys(&mut rng, m, d_mem);
        for t in 0..m {
            let at = (s.in_row + t) * kvb_ld;
            kvb[at..at + d_mem].copy_from_slice(&keys[t * d_mem..(t + 1) * d_mem]);
        }
    }
    let a = f32_normal(&mut rng, layout.slots * dk * d, 30.0);
    let z = positive_z(&mut rng, layout.slots * dk);
    let b_beta = f32_normal(&mut rng, layout.slots, 1.0);
    let (kvb_d, a_d, z_d, b_d) = (
        upload_f32(stream, &kvb)?,
        upload_f32(stream, &a)?,
        upload_f32(stream, &z)?,
        upload_f32(stream, &b_beta)?,
    );
    let products: Vec<GemmGroup> = spans
        .iter()
        .filter(|s| !s.flag)
        .map(|s| GemmGroup {
            a_offset: s.in_row * dk,
            b_offset: s.state * dk * d,
            c_offset: s.in_row * d,
            m,
            n: d,
            k: dk,
            lda: dk,
            ldb: d,
            ldc: d,
        })
        .collect();
    // the three launches
    // dpfp writes its out rows; the prep reads kφ at the span's in rows (the engine's write spans have in = out)
    let kphi_spans: Vec<Span> = spans
        .iter()
        .map(|s| Span {
            out_row: s.in_row,
            ..*s
        })
        .collect();
    let mut kphi3 = poisoned_f32(gpu, stream, layout.in_rows * dk)?;
    crate::dpfp::dpfp(gpu, stream, &kvb_d, kvb_ld, 0, &mut kphi3, dk, &kphi_spans, d_mem, NU)?;
    let mut ka = poisoned_f32(gpu, stream, layout.in_rows * d)?;
    gemm_sm90_nn_f32_f32_f32_tf32x3(gpu, stream, &kphi3, &a_d, &mut ka, &products, false)?;
    let (mut u3, mut g3) = (
        poisoned_f32(gpu, stream, layout.out_rows * d)?,
        poisoned_f32(gpu, stream, layout.out_rows)?,
    );
    let prep = WritePrep {
        kvb: &kvb_d,
        kvb_ld,
        v_col: d_mem,
        kphi: &kphi3,
        ka: &ka,
        z: &z_d,
        b_beta: &b_d,
        d,
        d_key: dk,
        correction: true,
    };
    armt_write_prep(gpu, stream, &prep, &mut u3, &mut g3, &spans)?;
    // the two
    let mut kphi2 = poisoned_f32(gpu, stream, layout.in_rows * dk)?;
    let mut stats = poisoned_f32(gpu, stream, layout.in_rows * 2)?;
    let (mut u2, mut g2) = (
        poisoned_f32(gpu, stream, layout.out_rows * d)?,
        poisoned_f32(gpu, stream, layout.out_rows)?,
    );
    let features = WriteFeatures {
        kvb: &kvb_d,
        kvb_ld,
        v_col: d_mem,
        d_mem,
        nu: NU,
        z: &z_d,
        b_beta: &b_d,
        d,
        correction: true,
    };
    armt_write_features(gpu, stream, &features, &mut kphi2, &mut stats, &mut u2, &mut g2, &spans)?;
    // the same products, C at the cells' output rows (u) instead of ka's
    let to_u: Vec<GemmGroup> = spans
        .iter()
        .filter(|s| !s.flag)
        .zip(&products)
        .map(|(s, p)| GemmGroup {
            c_offset: s.out_row * d,
            ..*p
        })
        .collect();
    let inputs = PrepInputs {
        kvb: &kvb_d,
        kvb_ld,
        v_col: d_mem,
        stats: &stats,
    };
    gemm_sm90_nn_f32_f32_f32_tf32x3_prep(gpu, stream, (&kphi2, &a_d), &mut u2, inputs, &to_u)?;
    let (kphi3, kphi2) = (download_f32(stream, &kphi3)?, download_f32(stream, &kphi2)?);
    let (u3, u2, g3, g2) = (
        download_f32(stream, &u3)?,
        download_f32(stream, &u2)?,
        download_f32(stream, &g3)?,
        download_f32(stream, &g2)?,
    );
    // the reference: ka = kφ·A in f64 from the kernels' kφ, then write_prep
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &spans {
        let kp = gather(&kphi2, dk, s.in_row, m, 0, dk);
        let mut ka_ref = vec![0.0f32; m * d];
        if !s.flag {
            for t in 0..m {
                for n in 0..d {
                    let dot: f64 = (0..dk)
                        .map(|p| kp[t * dk + p] as f64 * a[(s.state * dk + p) * d + n] as f64)
                        .sum();
                    ka_ref[t * d + n] = dot as f32;
                }
            }
        }
        let rows = gather(&kvb, kvb_ld, s.in_row, m, 0, kvb_ld);
        let v: Vec<f32> = rows
            .chunks_exact(kvb_ld)
            .flat_map(|r| r[d_mem..d_mem + d].to_vec())
            .collect();
        let logit: Vec<f32> = rows.chunks_exact(kvb_ld).map(|r| r[d_mem + d]).collect();
        let (mut u, mut gamma) = (vec![0.0f32; m * d], vec![0.0f32; m]);
        let flags = WriteFlags {
            first_segment: s.flag,
            correction: true,
        };
        let zs = &z[s.state * dk..(s.state + 1) * dk];
        write_prep(&kp, &v, &logit, b_beta[s.layer], &ka_ref, zs, flags, &mut u, &mut gamma);
        want.extend(u);
        want.extend(gamma);
        got.extend(gather(&u2, d, s.out_row, m, 0, d));
        got.extend(gather(&g2, 1, s.out_row, m, 0, 1));
    }
    let kphi_rows: Vec<f32> = spans
        .iter()
        .flat_map(|s| gather(&kphi2, dk, s.in_row, m, 0, dk))
        .collect();
    let kphi_rows3: Vec<f32> = spans
        .iter()
        .flat_map(|s| gather(&kphi3, dk, s.in_row, m, 0, dk))
        .collect();
    let what =
        format!("d={d} d_mem={d_mem} M={m} 4 cells (1 first): u, γ vs the three launches (bitwise, kφ too), ref");
    let check = compare(ENTRY, what, &got, &want, F32_OUT_TOL);
    let check = fail_if(
        check,
        super::harness::differing_bits(&kphi_rows, &kphi_rows3),
        "kφ differs from dpfp's",
    );
    let check = fail_if(
        check,
        super::harness::differing_bits(&u2, &u3),
        "u differs from the three launches'",
    );
    Ok(fail_if(
        check,
        super::harness::differing_bits(&g2, &g3),
        "γ differs from the prep's",
    ))
}

/// The prep in the product's epilogue at the 1B (D = 384, d = 2048, M = 128), 160M (d = 768) and small (d_mem 16,
/// d = 200, M = 8) shapes: the GPU tests and `dbrmt selftest`.
pub fn prep_in_product_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_write_prep_in_product(gpu, seed, 2048, 64, 128),
        check_write_prep_in_product(gpu, seed.wrapping_add(1), 768, 64, 128),
        check_write_prep_in_product(gpu, seed.wrapping_add(2), 200, 16, 8),
    ]
}

// ------------------------------------------------------------------------------------------------------------------
// z

/// One cell of the z update: kφ `[M, D]`, γ `[M]` (0, 1 and values between), z `[D]`.
struct ZCell {
    kphi: Vec<f32>,
    gamma: Vec<f32>,
    z: Vec<f32>,
}

fn z_cell(rng: &mut SplitMix64, m: usize, d_mem: usize) -> ZCell {
    let dk = 2 * NU * d_mem;
    let kraw = laddered_keys(rng, m, d_mem);
    let mut kphi = vec![0.0f32; m * dk];
    dpfp(&kraw, d_mem, NU, &mut kphi);
    let gamma = (0..m)
        .map(|t| match t % 4 {
            0 => 0.0,
            1 => 1.0,
            _ => rng.next_f64() as f32,
        })
        .collect();
    ZCell {
        kphi,
        gamma,
        z: positive_z(rng, dk),
    }
}

/// `armt_z_update_f32` on three cells of `m` memory rows with different states (a fourth state no span names must
/// not change), against [`z_update`].
pub fn check_z_update(gpu: &Gpu, seed: u64, d_mem: usize, m: usize) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<ZCell> = (0..3).map(|_| z_cell(&mut rng, m, d_mem)).collect();
    let cell_refs: Vec<&ZCell> = cells.iter().collect();
    let layout = Layout::cells(&[m; 3], 1);
    let dk = 2 * NU * d_mem;
    let (z_in, z_out) = run_z(gpu, &mut rng, &cell_refs, &layout, d_mem)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (i, c) in cells.iter().enumerate() {
        let mut z = c.z.clone();
        z_update(&c.kphi, &c.gamma, &mut z);
        want.extend(z);
        got.extend(gather(&z_out, dk, layout.spans[i].state, 1, 0, dk));
    }
    // States no span names must keep their bits.
    let named: Vec<Block> = layout
        .spans
        .iter()
        .map(|s| Block::rows(dk, s.state, 1, 0, dk))
        .collect();
    let strays = changed_outside(&z_out, &named, |e| z_in[e].to_bits());
    let shape = format!("d_mem={d_mem} M={m} spans=3");
    Ok(fail_if(
        compare("armt_z_update_f32", shape, &got, &want, F32_OUT_TOL),
        strays,
        "stray writes",
    ))
}

/// Cell `alone` of a launch of four cells, run again as the only span of a launch (other rows and state index): its
/// updated z must be the same bits.
pub fn check_z_update_grouping(
    gpu: &Gpu,
    seed: u64,
    d_mem: usize,
    m: usize,
    alone: usize,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<ZCell> = (0..4).map(|_| z_cell(&mut rng, m, d_mem)).collect();
    let cell_refs: Vec<&ZCell> = cells.iter().collect();
    let dk = 2 * NU * d_mem;
    let group = Layout::cells(&[m; 4], 1);
    let (_, z) = run_z(gpu, &mut rng, &cell_refs, &group, d_mem)?;
    let grouped = gather(&z, dk, group.spans[alone].state, 1, 0, dk);
    let single = Layout::cells(&[m], 3);
    let (_, z) = run_z(gpu, &mut rng, &cell_refs[alone..=alone], &single, d_mem)?;
    let by_itself = gather(&z, dk, single.spans[0].state, 1, 0, dk);
    let shape = format!("alone vs 4 spans: cell {alone}, d_mem={d_mem} M={m}");
    Ok(bitwise("armt_z_update_f32", shape, &by_itself, &grouped))
}

/// One launch of [`armt_z_update`] over `cells` placed by `layout` (random rows and states around them); returns the
/// whole z buffer before and after.
fn run_z(
    gpu: &Gpu,
    rng: &mut SplitMix64,
    cells: &[&ZCell],
    layout: &Layout,
    d_mem: usize,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let dk = 2 * NU * d_mem;
    let mut kphi = f32_normal(rng, layout.in_rows * dk, 1.0);
    let mut gamma: Vec<f32> = (0..layout.out_rows).map(|_| rng.next_f64() as f32).collect();
    let mut z = positive_z(rng, layout.slots * dk);
    for (i, c) in cells.iter().enumerate() {
        put(&mut kphi, dk, layout.spans[i].in_row, &c.kphi, dk);
        put(&mut gamma, 1, layout.spans[i].out_row, &c.gamma, 1);
        put(&mut z, dk, layout.spans[i].state, &c.z, dk);
    }
    let (kphi_d, gamma_d) = (upload_f32(stream, &kphi)?, upload_f32(stream, &gamma)?);
    let mut z_d = upload_f32(stream, &z)?;
    armt_z_update(gpu, stream, &kphi_d, &gamma_d, &mut z_d, &layout.spans, dk)?;
    Ok((z, download_f32(stream, &z_d)?))
}

/// Every write check: the prep at M = 8, 16, 128 with and without the correction (three spans, one of them segment
/// 0, different states and layers), the z update at the same shapes, and one grouping check (alone vs in a launch of
/// four, bitwise) per kernel.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let s = |i: u64| seed.wrapping_add(i);
    let mut out = Vec::new();
    for (i, (d, d_mem, m, correction)) in [
        (128, 16, 8, true),
        (576, 32, 16, false),
        (2048, 64, 128, true),
        (576, 32, 16, true),
    ]
    .into_iter()
    .enumerate()
    {
        match check_write_prep(gpu, s(10 + i as u64), d, d_mem, m, correction) {
            Ok(pair) => out.extend(pair.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out.push(check_write_prep_grouping(gpu, s(20), 576, 32, 16, 2));
    // (20, 300): D = 120 features (a block's last 32 only partly) and rows past one round of the block's 128
    for (i, (d_mem, m)) in [(16, 8), (32, 16), (64, 128), (20, 300)].into_iter().enumerate() {
        out.push(check_z_update(gpu, s(30 + i as u64), d_mem, m));
    }
    out.push(check_z_update_grouping(gpu, s(40), 64, 16, 2));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The write checks' inputs are such that γ is both clipped and strictly inside (0, 1) at every shape they use,
    /// whatever the seed (checked here on the CPU for a few seeds, with the reference).
    #[test]
    fn laddered_keys_cover_both_gamma_regimes() {
        for seed in 0..8 {
            for (d, d_mem, m) in [(128, 16, 8), (576, 32, 16), (2048, 64, 128)] {
                let mut rng = SplitMix64::new(seed);
                let c = write_cell(&mut rng, m, d, d_mem, false);
                let (_, g) = c.reference(d, true);
                let clipped = g.iter().filter(|&&x| x == 0.0).count();
                let between = g.iter().filter(|&&x| x > 0.0 && x < 1.0).count();
                assert!(clipped > 0 && between > 0, "seed {seed} d_mem {d_mem} M {m}: γ = {g:?}");
            }
        }
    }
}
