//! The ARMT memory kernels against the references [`armt_read`](crate::reference::armt_read) and [`armt_write`](crate::reference::armt_write): `armt_read_apply_bf16` and
//! `armt_read_apply_f32` ([`read_apply`], bf16 or f32 hidden rows), `armt_write_prep_f32` ([`write_prep`]) and
//! `armt_z_update_f32` ([`z_update`]), each also run as the only span of a launch and compared bit for bit with the
//! same cell inside a launch of four.
//!
//! The inputs are shaped like the real ones: φ and kφ come from [`dpfp`] of random vectors, `z` is positive and
//! large (`|N(0,1)|·5 + 1`, a normaliser that has accumulated several segments), the numerators `φ·A` and `kφ·A`
//! are drawn so that `num / den` is O(1) like `h` and `V` (a read term far below `h`'s bf16 resolution would test
//! nothing), and the write keys' scale grows along the memory rows so that `γ` is clipped to 0 on some rows and lies
//! strictly between 0 and 1 on others (the check fails if either case is missing).

use half::bf16;

use super::{compare, download_f32, download_hidden, poisoned_f32, round_bf16, upload_f32, upload_hidden, Check, Rng};
use crate::armt_read::{armt_read_apply, kernel as read_kernel};
use crate::armt_write::{armt_write_prep, armt_z_update};
use crate::params::Span;
use crate::poison::POISON_F32_BITS;
use crate::reference::armt_read::read_apply;
use crate::reference::armt_write::{write_prep, z_update, WriteFlags};
use crate::reference::dpfp::dpfp;
use crate::reference::ARMT_EPS;
use crate::{Gpu, HiddenElem, KernelError};

/// `h` is stored in bf16: the output rounding alone is up to 2⁻⁹ ≈ 2e-3 relative per element (about 1e-3 in the
/// norm), while the f32 arithmetic before it agrees with the reference to ~1e-6; 8e-3 leaves that rounding a factor
/// of four and still catches any wrong row, state or column (an O(1) error, since the read term is O(1)).
pub const READ_TOL: f64 = 8e-3;

/// `h` against the reference rounded to bf16 as the kernel rounds it: the f32 values before the rounding agree to
/// ~1e-6 relative, so only the rare element within that distance of a rounding boundary differs, by one bf16 ulp
/// (measured ~1e-5 in the norm). 1e-3 is the bound that catches an error of the read term far below [`READ_TOL`]
/// (which the output rounding alone nearly fills): 0.1 % of the read term already exceeds it.
pub const READ_ROUNDED_TOL: f64 = 1e-3;

/// `h` stored in f32 (`armt_read_apply_f32`): nothing is rounded to bf16, so only the f32 arithmetic differs from the
/// reference: the denominator, a dot product over D ≤ 768 positive terms reduced in a tree in f32 against the
/// reference's f64 (relative difference ≲ 1e-6), then one division and one add, each within half an ulp. The read
/// term is O(1) like h, so the error is ≲ 1e-6 relative; 1e-5, the bound of every f32 kernel, leaves a factor of ten.
pub const READ_F32_TOL: f64 = 1e-5;

/// f32 throughout: δ and ‖kφ‖² are f32 dot products over D ≤ 768 positive terms reduced in a tree on the GPU and in
/// f64 in the reference (relative difference ≲ 1e-6), `expf` in σ is within 2 ulp, and `u`, `γ` depend on them
/// linearly (γ = 1 − δ/‖kφ‖² loses no more than δ/‖kφ‖² ≤ 1 times that, in absolute terms). So 1e-5 is ten times the
/// expected difference.
pub const WRITE_TOL: f64 = 1e-5;

/// The z update does the reference's arithmetic in the reference's order (one rounded product, one rounded add per
/// term), so it should match bit for bit; 1e-5 as for every f32 kernel.
pub const Z_TOL: f64 = 1e-5;

/// DPFP order of the original ARMT code.
const NU: usize = 3;
/// Extra columns of the write product's row stride beyond `d_mem + d + 1` (never read).
const KVB_PAD: usize = 2;

// ------------------------------------------------------------------------------------------------------------------
// The associative read

/// One cell of the read: φ `[rows, D]`, num `[rows, d]`, h `[rows, d]` (values of the hidden rows' type), z `[D]`.
struct ReadCell {
    phi: Vec<f32>,
    num: Vec<f32>,
    h: Vec<f32>,
    z: Vec<f32>,
}

fn read_cell<H: HiddenElem>(rng: &mut Rng, rows: usize, d: usize, d_mem: usize) -> ReadCell {
    let dk = 2 * NU * d_mem;
    let u = rng.f32_normal(rows * d_mem, 1.0);
    let mut phi = vec![0.0f32; rows * dk];
    dpfp(&u, d_mem, NU, &mut phi);
    let z = positive_z(rng, dk);
    let h = rng.hidden_normal::<H>(rows * d, 1.0);
    let mut num = Vec::with_capacity(rows * d);
    for q in phi.chunks_exact(dk) {
        let den = dot64(q, &z) + ARMT_EPS as f64;
        num.extend((0..d).map(|_| (rng.normal() * den) as f32));
    }
    ReadCell { phi, num, h, z }
}

/// `armt_read_apply_<H>` on one cell per entry of `rows` (d columns, `h_pad` extra columns in h's row stride), against
/// [`read_apply`] on the same `h`. For bf16 rows two checks: against the f32 reference ([`READ_TOL`]) and against it
/// rounded to bf16 ([`READ_ROUNDED_TOL`]); for f32 rows one, against the f32 reference ([`READ_F32_TOL`]).
pub fn check_read_apply<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    rows: &[usize],
    h_pad: usize,
) -> Result<Vec<Check>, KernelError> {
    let mut rng = Rng::new(seed);
    let cells: Vec<ReadCell> = rows.iter().map(|&r| read_cell::<H>(&mut rng, r, d, d_mem)).collect();
    let cell_refs: Vec<&ReadCell> = cells.iter().collect();
    let layout = Layout::new(rows, 1);
    let h_ld = d + h_pad;
    let (h_in, h_out) = run_read::<H>(gpu, &mut rng, &cell_refs, &layout, d, d_mem, h_ld)?;
    let (mut got, mut want, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in cells.iter().enumerate() {
        let mut h = c.h.clone();
        read_apply(&mut h, &c.num, &c.phi, &c.z);
        want.extend(h);
        before.extend(&c.h);
        got.extend(extract(&h_out, h_ld, layout.out_row[i], rows[i], d));
    }
    let strays = changed_outside(&h_in, &h_out, h_ld, &layout, d);
    // How much the read moves h: the check is only meaningful if this is far above READ_TOL.
    let signal = compare("", String::new(), &before, &want, 0.0).rel_err;
    let shape = format!("d={d} d_mem={d_mem} rows={rows:?} h_ld={h_ld} |read|/|h|={signal:.2}");
    let name = read_kernel::<H>().entry;
    let tol = H::pick(READ_TOL, READ_F32_TOL);
    let mut check = flag_strays(compare(name, shape.clone(), &got, &want, tol), strays);
    if signal < 10.0 * READ_TOL {
        check.rel_err = f64::INFINITY;
        check.shape += " READ TERM TOO SMALL TO TEST";
    }
    if H::pick(false, true) {
        // f32 rows: nothing is rounded, so there is no rounded reference to compare with.
        return Ok(vec![check]);
    }
    let rounded: Vec<f32> = want.iter().map(|&x| round_bf16(x)).collect();
    let shape = format!("{shape} vs bf16(ref)");
    let rounded_check = flag_strays(compare(name, shape, &got, &rounded, READ_ROUNDED_TOL), strays);
    Ok(vec![check, rounded_check])
}

/// Cell `alone` of a launch of `rows.len()` cells, run again as the only span of a launch (other rows, other state
/// index): its h rows (of type `H`) must be the same bits.
pub fn check_read_apply_grouping<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    rows: &[usize],
    alone: usize,
) -> Result<Check, KernelError> {
    let mut rng = Rng::new(seed);
    let cells: Vec<ReadCell> = rows.iter().map(|&r| read_cell::<H>(&mut rng, r, d, d_mem)).collect();
    let cell_refs: Vec<&ReadCell> = cells.iter().collect();
    let group = Layout::new(rows, 1);
    let (_, h) = run_read::<H>(gpu, &mut rng, &cell_refs, &group, d, d_mem, d)?;
    let grouped = extract(&h, d, group.out_row[alone], rows[alone], d);
    let single = Layout::new(&rows[alone..=alone], 3);
    let (_, h) = run_read::<H>(gpu, &mut rng, &cell_refs[alone..=alone], &single, d, d_mem, d)?;
    let by_itself = extract(&h, d, single.out_row[0], rows[alone], d);
    let shape = format!("alone vs {} spans: cell {alone} of rows={rows:?} d={d}", rows.len());
    Ok(bitwise(read_kernel::<H>().entry, shape, &by_itself, &grouped))
}

/// One launch of [`armt_read_apply`] over `cells` placed by `layout` (random rows and states around them), h stored as
/// `H`; returns the whole h buffer before and after (as f32, exact).
fn run_read<H: HiddenElem>(
    gpu: &Gpu,
    rng: &mut Rng,
    cells: &[&ReadCell],
    layout: &Layout,
    d: usize,
    d_mem: usize,
    h_ld: usize,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let dk = 2 * NU * d_mem;
    let mut num = rng.f32_normal(layout.in_rows * d, 1.0);
    let mut phi = rng.f32_normal(layout.in_rows * dk, 1.0);
    let mut h = rng.hidden_normal::<H>(layout.out_rows * h_ld, 1.0);
    let mut z = positive_z(rng, layout.slots * dk);
    for (i, c) in cells.iter().enumerate() {
        put(&mut num, d, layout.in_row[i], &c.num, d);
        put(&mut phi, dk, layout.in_row[i], &c.phi, dk);
        put(&mut h, h_ld, layout.out_row[i], &c.h, d);
        put(&mut z, dk, layout.state[i], &c.z, dk);
    }
    let (num_d, phi_d, z_d) = (
        upload_f32(stream, &num)?,
        upload_f32(stream, &phi)?,
        upload_f32(stream, &z)?,
    );
    let mut h_d = upload_hidden::<H>(stream, &h)?;
    armt_read_apply(
        gpu,
        stream,
        &num_d,
        &phi_d,
        &z_d,
        &mut h_d,
        h_ld,
        &layout.spans(&[]),
        d,
        dk,
    )?;
    Ok((h, download_hidden(stream, &h_d)?))
}

// ------------------------------------------------------------------------------------------------------------------
// The write: u and γ

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
fn laddered_keys(rng: &mut Rng, m: usize, d_mem: usize) -> Vec<f32> {
    (0..m)
        .flat_map(|t| {
            let scale = 0.5 * 12f64.powf(t as f64 / (m.max(2) - 1) as f64);
            rng.f32_normal(d_mem, scale)
        })
        .collect()
}

fn write_cell(rng: &mut Rng, m: usize, d: usize, d_mem: usize, first: bool) -> WriteCell {
    let dk = 2 * NU * d_mem;
    let kraw = laddered_keys(rng, m, d_mem);
    let mut kphi = vec![0.0f32; m * dk];
    dpfp(&kraw, d_mem, NU, &mut kphi);
    let z = positive_z(rng, dk);
    let v = rng.f32_normal(m * d, 1.0);
    let logit = rng.f32_normal(m, 2.0);
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
    let mut rng = Rng::new(seed);
    let cells: Vec<WriteCell> = (0..3).map(|i| write_cell(&mut rng, m, d, d_mem, i == 1)).collect();
    let cell_refs: Vec<&WriteCell> = cells.iter().collect();
    let layout = Layout::new(&[m; 3], 1);
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
        got_u.extend(extract(&u, d, layout.out_row[i], m, d));
        got_g.extend(extract(&gamma, 1, layout.out_row[i], m, 1));
    }
    let shape = format!("d={d} d_mem={d_mem} M={m} correction={correction} spans=3 (1 first)");
    let u_strays = poisoned_strays(&u, d, &layout, d);
    let g_strays = poisoned_strays(&gamma, 1, &layout, 1);
    let u_check = flag_strays(
        compare(
            "armt_write_prep_f32",
            format!("{shape} out=u"),
            &got_u,
            &want_u,
            WRITE_TOL,
        ),
        u_strays,
    );
    let shape = format!("{shape} out=γ (0: {clipped}, (0,1): {between})");
    let mut g_check = flag_strays(
        compare("armt_write_prep_f32", shape, &got_g, &want_g, WRITE_TOL),
        g_strays,
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
    let mut rng = Rng::new(seed);
    let cells: Vec<WriteCell> = (0..4).map(|i| write_cell(&mut rng, m, d, d_mem, i == 0)).collect();
    let cell_refs: Vec<&WriteCell> = cells.iter().collect();
    let group = Layout::new(&[m; 4], 1);
    let (u, gamma) = run_write_prep(gpu, &mut rng, &cell_refs, &group, d, d_mem, true)?;
    let mut grouped = extract(&u, d, group.out_row[alone], m, d);
    grouped.extend(extract(&gamma, 1, group.out_row[alone], m, 1));
    let single = Layout::new(&[m], 3);
    let (u, gamma) = run_write_prep(gpu, &mut rng, &cell_refs[alone..=alone], &single, d, d_mem, true)?;
    let mut by_itself = extract(&u, d, single.out_row[0], m, d);
    by_itself.extend(extract(&gamma, 1, single.out_row[0], m, 1));
    let shape = format!("alone vs 4 spans: cell {alone}, d={d} d_mem={d_mem} M={m} (u, γ)");
    Ok(bitwise("armt_write_prep_f32", shape, &by_itself, &grouped))
}

/// One launch of [`armt_write_prep`] over `cells` placed by `layout` (random rows, states and biases around them;
/// segment-0 cells' `ka` rows NaN); returns the whole `u` and `γ` buffers (poisoned before the launch).
fn run_write_prep(
    gpu: &Gpu,
    rng: &mut Rng,
    cells: &[&WriteCell],
    layout: &Layout,
    d: usize,
    d_mem: usize,
    correction: bool,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let (dk, m) = (2 * NU * d_mem, cells[0].logit.len());
    let kvb_ld = d_mem + d + 1 + KVB_PAD;
    let mut kvb = rng.f32_normal(layout.in_rows * kvb_ld, 1.0);
    let mut kphi = rng.f32_normal(layout.in_rows * dk, 1.0);
    let mut ka = rng.f32_normal(layout.in_rows * d, 1.0);
    let mut z = positive_z(rng, layout.slots * dk);
    let mut b_beta = rng.f32_normal(layout.slots, 1.0);
    for (i, c) in cells.iter().enumerate() {
        let row = layout.in_row[i];
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
        put(&mut z, dk, layout.state[i], &c.z, dk);
        b_beta[layout.layer[i]] = c.b_beta;
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
    armt_write_prep(
        gpu,
        stream,
        &kvb_d,
        kvb_ld,
        d_mem,
        &kphi_d,
        &ka_d,
        &z_d,
        &b_beta_d,
        &mut u,
        &mut gamma,
        &layout.spans(&flags),
        d,
        dk,
        correction,
    )?;
    Ok((download_f32(stream, &u)?, download_f32(stream, &gamma)?))
}

// ------------------------------------------------------------------------------------------------------------------
// The write: z

/// One cell of the z update: kφ `[M, D]`, γ `[M]` (0, 1 and values between), z `[D]`.
struct ZCell {
    kphi: Vec<f32>,
    gamma: Vec<f32>,
    z: Vec<f32>,
}

fn z_cell(rng: &mut Rng, m: usize, d_mem: usize) -> ZCell {
    let dk = 2 * NU * d_mem;
    let kraw = laddered_keys(rng, m, d_mem);
    let mut kphi = vec![0.0f32; m * dk];
    dpfp(&kraw, d_mem, NU, &mut kphi);
    let gamma = (0..m)
        .map(|t| match t % 4 {
            0 => 0.0,
            1 => 1.0,
            _ => rng.uniform() as f32,
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
    let mut rng = Rng::new(seed);
    let cells: Vec<ZCell> = (0..3).map(|_| z_cell(&mut rng, m, d_mem)).collect();
    let cell_refs: Vec<&ZCell> = cells.iter().collect();
    let layout = Layout::new(&[m; 3], 1);
    let dk = 2 * NU * d_mem;
    let (z_in, z_out) = run_z(gpu, &mut rng, &cell_refs, &layout, d_mem)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (i, c) in cells.iter().enumerate() {
        let mut z = c.z.clone();
        z_update(&c.kphi, &c.gamma, &mut z);
        want.extend(z);
        got.extend(extract(&z_out, dk, layout.state[i], 1, dk));
    }
    // States no span names must keep their bits.
    let strays = (0..layout.slots)
        .filter(|s| !layout.state.contains(s))
        .flat_map(|s| s * dk..(s + 1) * dk)
        .filter(|&e| z_in[e].to_bits() != z_out[e].to_bits())
        .count();
    let shape = format!("d_mem={d_mem} M={m} spans=3");
    Ok(flag_strays(
        compare("armt_z_update_f32", shape, &got, &want, Z_TOL),
        strays,
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
    let mut rng = Rng::new(seed);
    let cells: Vec<ZCell> = (0..4).map(|_| z_cell(&mut rng, m, d_mem)).collect();
    let cell_refs: Vec<&ZCell> = cells.iter().collect();
    let dk = 2 * NU * d_mem;
    let group = Layout::new(&[m; 4], 1);
    let (_, z) = run_z(gpu, &mut rng, &cell_refs, &group, d_mem)?;
    let grouped = extract(&z, dk, group.state[alone], 1, dk);
    let single = Layout::new(&[m], 3);
    let (_, z) = run_z(gpu, &mut rng, &cell_refs[alone..=alone], &single, d_mem)?;
    let by_itself = extract(&z, dk, single.state[0], 1, dk);
    let shape = format!("alone vs 4 spans: cell {alone}, d_mem={d_mem} M={m}");
    Ok(bitwise("armt_z_update_f32", shape, &by_itself, &grouped))
}

/// One launch of [`armt_z_update`] over `cells` placed by `layout` (random rows and states around them); returns the
/// whole z buffer before and after.
fn run_z(
    gpu: &Gpu,
    rng: &mut Rng,
    cells: &[&ZCell],
    layout: &Layout,
    d_mem: usize,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let dk = 2 * NU * d_mem;
    let mut kphi = rng.f32_normal(layout.in_rows * dk, 1.0);
    let mut gamma: Vec<f32> = (0..layout.out_rows).map(|_| rng.uniform() as f32).collect();
    let mut z = positive_z(rng, layout.slots * dk);
    for (i, c) in cells.iter().enumerate() {
        put(&mut kphi, dk, layout.in_row[i], &c.kphi, dk);
        put(&mut gamma, 1, layout.out_row[i], &c.gamma, 1);
        put(&mut z, dk, layout.state[i], &c.z, dk);
    }
    let (kphi_d, gamma_d) = (upload_f32(stream, &kphi)?, upload_f32(stream, &gamma)?);
    let mut z_d = upload_f32(stream, &z)?;
    armt_z_update(gpu, stream, &kphi_d, &gamma_d, &mut z_d, &layout.spans(&[]), dk)?;
    Ok((z, download_f32(stream, &z_d)?))
}

// ------------------------------------------------------------------------------------------------------------------
// All checks

/// Every ARMT memory check: the read at d = 128, 576, 2048 (d_mem 16, 32, 64; spans of unequal rows that are not
/// multiples of anything, a single-row span, a short last segment, a padded h stride) on bf16 and on f32 hidden rows,
/// the write prep at M = 8, 16, 128 with and without the correction (three spans, one of them segment 0, different
/// states and layers), the z update at the same shapes, and one grouping check (alone vs in a launch of four,
/// bitwise) per kernel and hidden type.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let s = |i: u64| seed.wrapping_add(i);
    let mut out = Vec::new();
    let read_shapes = [
        (128, 16, &[1, 77, 160][..], 0),
        (576, 32, &[300, 129, 45][..], 8),
        (2048, 64, &[1152, 1152, 300][..], 0),
    ];
    for (i, &(d, d_mem, rows, h_pad)) in read_shapes.iter().enumerate() {
        match check_read_apply::<bf16>(gpu, s(i as u64), d, d_mem, rows, h_pad) {
            Ok(pair) => out.extend(pair.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out.push(check_read_apply_grouping::<bf16>(
        gpu,
        s(3),
        576,
        32,
        &[129, 64, 300, 7],
        2,
    ));
    for (i, &(d, d_mem, rows, h_pad)) in read_shapes.iter().enumerate() {
        match check_read_apply::<f32>(gpu, s(50 + i as u64), d, d_mem, rows, h_pad) {
            Ok(one) => out.extend(one.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out.push(check_read_apply_grouping::<f32>(
        gpu,
        s(53),
        576,
        32,
        &[129, 64, 300, 7],
        2,
    ));
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
    for (i, (d_mem, m)) in [(16, 8), (32, 16), (64, 128)].into_iter().enumerate() {
        out.push(check_z_update(gpu, s(30 + i as u64), d_mem, m));
    }
    out.push(check_z_update_grouping(gpu, s(40), 64, 16, 2));
    out
}

// ------------------------------------------------------------------------------------------------------------------
// Helpers shared with the DPFP checks

/// Where the cells of one launch sit in its buffers. Inputs in cell order and outputs in reverse order, each after
/// `gap` rows that no span covers (so a kernel that confuses in_row and out_row, or indexes from the wrong span,
/// reads or writes the wrong rows); cell `i` has state `n − i` and layer `i + 1` (slot 0 of each is used by no span),
/// so states and layers differ from the cell index and from each other for most cells.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) rows: Vec<usize>,
    pub(crate) in_row: Vec<usize>,
    pub(crate) out_row: Vec<usize>,
    pub(crate) state: Vec<usize>,
    pub(crate) layer: Vec<usize>,
    /// Rows of the input buffers.
    pub(crate) in_rows: usize,
    /// Rows of the output buffers.
    pub(crate) out_rows: usize,
    /// States (and layers) in the state and per-layer buffers.
    pub(crate) slots: usize,
}

impl Layout {
    pub(crate) fn new(rows: &[usize], gap: usize) -> Self {
        let n = rows.len();
        let place = |order: Vec<usize>, gap: usize| {
            let (mut start, mut next) = (vec![0; n], 0);
            for i in order {
                next += gap;
                start[i] = next;
                next += rows[i];
            }
            (start, next)
        };
        let (in_row, in_rows) = place((0..n).collect(), gap);
        let (out_row, out_rows) = place((0..n).rev().collect(), gap + 1);
        Layout {
            rows: rows.to_vec(),
            in_row,
            out_row,
            state: (0..n).map(|i| n - i).collect(),
            layer: (0..n).map(|i| i + 1).collect(),
            in_rows,
            out_rows,
            slots: n + 1,
        }
    }

    /// The spans of this layout; `flags[i]` (false where missing) is cell `i`'s segment-0 flag.
    pub(crate) fn spans(&self, flags: &[bool]) -> Vec<Span> {
        (0..self.rows.len())
            .map(|i| Span {
                in_row: self.in_row[i],
                out_row: self.out_row[i],
                rows: self.rows[i],
                layer: self.layer[i],
                flag: flags.get(i).copied().unwrap_or(false),
                state: self.state[i],
            })
            .collect()
    }

    /// Whether element `(row, col)` of an output with `width` meaningful columns belongs to a span.
    fn covers(&self, row: usize, col: usize, width: usize) -> bool {
        col < width && (0..self.rows.len()).any(|i| (self.out_row[i]..self.out_row[i] + self.rows[i]).contains(&row))
    }
}

/// Rows `row..row + rows`, columns `0..width` of a row-major matrix with row stride `ld`.
pub(crate) fn extract(buf: &[f32], ld: usize, row: usize, rows: usize, width: usize) -> Vec<f32> {
    (row..row + rows)
        .flat_map(|r| buf[r * ld..r * ld + width].iter().copied())
        .collect()
}

/// Writes `data` (rows of `width`) into rows `row..` of a row-major matrix with row stride `ld`.
fn put(buf: &mut [f32], ld: usize, row: usize, data: &[f32], width: usize) {
    for (r, src) in data.chunks_exact(width).enumerate() {
        buf[(row + r) * ld..(row + r) * ld + width].copy_from_slice(src);
    }
}

/// Elements of a poisoned output (row stride `ld`) outside the layout's spans that no longer hold the poison.
pub(crate) fn poisoned_strays(buf: &[f32], ld: usize, layout: &Layout, width: usize) -> usize {
    buf.iter()
        .enumerate()
        .filter(|&(e, x)| x.to_bits() != POISON_F32_BITS && !layout.covers(e / ld, e % ld, width))
        .count()
}

/// Elements of an in-place output outside the layout's spans whose bits changed.
fn changed_outside(before: &[f32], after: &[f32], ld: usize, layout: &Layout, width: usize) -> usize {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|&(e, (b, a))| b.to_bits() != a.to_bits() && !layout.covers(e / ld, e % ld, width))
        .count()
}

/// A kernel that wrote outside its spans fails its check, whatever the error inside them.
pub(crate) fn flag_strays(mut check: Check, strays: usize) -> Check {
    if strays > 0 {
        check.rel_err = f64::INFINITY;
        check.shape += &format!(" STRAY WRITES: {strays}");
    }
    check
}

/// The bitwise comparison of a cell computed alone with the same cell computed among others (tolerance 0; any
/// differing bit fails, even between values that compare equal such as ±0).
pub(crate) fn bitwise(kernel: &'static str, shape: String, alone: &[f32], grouped: &[f32]) -> Check {
    let differ = alone
        .iter()
        .zip(grouped)
        .filter(|(a, g)| a.to_bits() != g.to_bits())
        .count();
    let mut check = compare(kernel, format!("{shape} bits differ: {differ}"), alone, grouped, 0.0);
    if differ > 0 && check.rel_err == 0.0 {
        check.rel_err = f64::INFINITY;
    }
    check
}

/// A normaliser state after a few segments: positive, |N(0,1)|·5 + 1.
fn positive_z(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.normal().abs() * 5.0 + 1.0) as f32).collect()
}

/// Dot product in f64.
fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_separates_spans_and_slots() {
        let l = Layout::new(&[3, 0, 5], 1);
        assert_eq!(l.in_row, [1, 5, 6]);
        assert_eq!(l.in_rows, 11);
        // Outputs in reverse order with gaps of 2: cell 2 at 2..7, cell 1 at 9..9, cell 0 at 11..14.
        assert_eq!(l.out_row, [11, 9, 2]);
        assert_eq!(l.out_rows, 14);
        assert_eq!(
            (l.state.clone(), l.layer.clone(), l.slots),
            (vec![3, 2, 1], vec![1, 2, 3], 4)
        );
        let spans = l.spans(&[false, true]);
        assert!(!spans[0].flag && spans[1].flag && !spans[2].flag);
        assert!(l.covers(11, 0, 4) && l.covers(13, 3, 4) && !l.covers(13, 4, 4) && !l.covers(10, 0, 4));
        assert!(!l.covers(0, 0, 4) && l.covers(2, 0, 4) && l.covers(6, 0, 4) && !l.covers(7, 0, 4));
    }

    #[test]
    fn strays_and_bitwise_fail_checks() {
        let l = Layout::new(&[2], 0); // outputs at rows 1..3 of 3
        let p = f32::from_bits(POISON_F32_BITS);
        assert_eq!(poisoned_strays(&[p, p, 1.0, 2.0, 3.0, 4.0], 2, &l, 2), 0);
        assert_eq!(poisoned_strays(&[0.0, p, 1.0, 2.0, 3.0, 4.0], 2, &l, 2), 1);
        assert_eq!(
            poisoned_strays(&[p, p, 1.0, 2.0, 3.0, 4.0], 2, &l, 1),
            2,
            "column 1 is outside width 1"
        );
        let ok = compare("k", "s".into(), &[1.0], &[1.0], 0.0);
        assert!(flag_strays(ok.clone(), 0).passed() && !flag_strays(ok, 1).passed());
        assert!(bitwise("k", "s".into(), &[1.0, 0.0], &[1.0, 0.0]).passed());
        assert!(!bitwise("k", "s".into(), &[1.0, 0.0], &[1.0, -0.0]).passed());
        assert!(!bitwise("k", "s".into(), &[1.0, 2.0], &[1.0, 2.0000002]).passed());
    }

    /// The write checks' inputs are such that γ is both clipped and strictly inside (0, 1) at every shape they use,
    /// whatever the seed (checked here on the CPU for a few seeds, with the reference).
    #[test]
    fn laddered_keys_cover_both_gamma_regimes() {
        for seed in 0..8 {
            for (d, d_mem, m) in [(128, 16, 8), (576, 32, 16), (2048, 64, 128)] {
                let mut rng = Rng::new(seed);
                let c = write_cell(&mut rng, m, d, d_mem, false);
                let (_, g) = c.reference(d, true);
                let clipped = g.iter().filter(|&&x| x == 0.0).count();
                let between = g.iter().filter(|&&x| x > 0.0 && x < 1.0).count();
                assert!(clipped > 0 && between > 0, "seed {seed} d_mem {d_mem} M {m}: γ = {g:?}");
            }
        }
    }

    #[test]
    fn read_term_is_of_the_order_of_h() {
        let mut rng = Rng::new(7);
        let c = read_cell::<bf16>(&mut rng, 50, 128, 16);
        let mut h = c.h.clone();
        read_apply(&mut h, &c.num, &c.phi, &c.z);
        let rel = compare("", String::new(), &c.h, &h, 0.0).rel_err;
        assert!(rel > 0.5 && rel < 2.0, "{rel}");
    }
}
