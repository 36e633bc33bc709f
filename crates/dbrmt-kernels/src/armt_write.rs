//! Launchers of `cuda/armt_write.cu`: the element-wise pieces of ARMT's delta-rule memory write.
//!
//! The write of a cell, from its M post-block memory rows `P`:
//! 1. `kvb = P·[W_k|W_v|w_β]ᵀ` (one grouped GEMM, f32 out): columns `0..d_mem` raw K, `d_mem..d_mem + d` V,
//!    column `d_mem + d` the β logit without bias;
//! 2. `kφ = dpfp(K raw)` ([`crate::dpfp::dpfp`] with `u_col = 0`, `u_ld = kvb_ld`);
//! 3. `ka = kφ·A_old` (grouped GEMM; skipped for segment 0);
//! 4. [`armt_write_prep`]: `u` (the rows `β·(V − ka/δ)`) and `γ`;
//! 5. `A += kφᵀ·u` (grouped GEMM);
//! 6. [`armt_z_update`]: `z += Σₜ γₜ kφₜ` — after step 4, which reads the old `z`.
//!
//! The math is [`reference::armt_write::write_prep`](crate::reference::armt_write::write_prep) and
//! [`reference::armt_write::z_update`](crate::reference::armt_write::z_update).

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{
    addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_index, check_rows, invalid, row_grid, Rows,
};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const ARMT_WRITE_PREP_F32: Kernel = Kernel::new(cubins::ARMT_WRITE, "armt_write_prep_f32");

const ARMT_Z_UPDATE_F32: Kernel = Kernel::new(cubins::ARMT_WRITE, "armt_z_update_f32");

const ARMT_WRITE_FEATURES_F32: Kernel = Kernel::new(cubins::ARMT_WRITE, "armt_write_features_f32");

/// `WRITE_THREADS` of armt_write.cu (one block per memory row).
const WRITE_THREADS: u32 = 256;
/// `Z_THREADS` of armt_write.cu (the z update's loaders).
const Z_THREADS: u32 = 256;
/// `Z_FEATURES` of armt_write.cu (features per block of the z update).
const Z_FEATURES: u32 = 32;

/// The inputs of [`armt_write_prep`], at rows `span.in_row..+rows` of the buffers with rows.
#[derive(Debug, Clone, Copy)]
pub struct WritePrep<'a> {
    /// The fused write product `P·[W_k|W_v|w_β]ᵀ`, row stride `kvb_ld`: V at columns `v_col..v_col + d`, the β logit
    /// at column `v_col + d` (`v_col = d_mem` for the fused product).
    pub kvb: &'a CudaSlice<f32>,
    pub kvb_ld: usize,
    pub v_col: usize,
    /// kφ `[*, d_key]`.
    pub kphi: &'a CudaSlice<f32>,
    /// `kφ·A_old` `[*, d]` (neither checked nor read for segment-0 spans).
    pub ka: &'a CudaSlice<f32>,
    /// The old normalisers `[states, d_key]` (row `span.state`).
    pub z: &'a CudaSlice<f32>,
    /// The β biases `[layers]` (element `span.layer`).
    pub b_beta: &'a CudaSlice<f32>,
    /// Hidden size (the width of V and of `u`) and `D = 2·ν·d_mem` (the width of kφ).
    pub d: usize,
    pub d_key: usize,
    /// Whether `γ` is corrected (`clip(1 − δ / (‖kφ‖² + ε), 0, 1)`) or 1.
    pub correction: bool,
}

/// Per memory row `t` of every span (one span per cell, `rows` = M): `β = σ(kvb[t][v_col + d] + b_beta[layer])`;
/// segment 0 (`span.flag`): `u_t = β·V_t`, `γ_t = 1`; otherwise `δ = kφ_t · z[state] + ε`,
/// `u_t = β·(V_t − ka_t / δ)` and `γ_t = clip(1 − δ / (‖kφ_t‖² + ε), 0, 1)` with `correction`, else 1.
///
/// Inputs: [`WritePrep`]. Outputs at rows `span.out_row..+rows`: `u` `[*, d]`, `gamma` `[*]`.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `1 ≤ spans.len() ≤ MAX_GROUPS`,
/// `d, d_key ≥ 1`, every span fits every buffer it uses, its `state` is a row of `z`, its `layer` an element of
/// `b_beta`, and no two spans write the same rows of `u`/`gamma`. Asynchronous on `stream`.
pub fn armt_write_prep(
    gpu: &Gpu,
    stream: &CudaStream,
    prep: &WritePrep<'_>,
    u: &mut CudaSlice<f32>,
    gamma: &mut CudaSlice<f32>,
    spans: &[Span],
) -> Result<(), KernelError> {
    let lens = PrepLens {
        kvb: prep.kvb.len(),
        kphi: prep.kphi.len(),
        ka: prep.ka.len(),
        z: prep.z.len(),
        b_beta: prep.b_beta.len(),
        u: u.len(),
        gamma: gamma.len(),
    };
    let cfg = validate_prep(
        ARMT_WRITE_PREP_F32.entry,
        &lens,
        prep.kvb_ld,
        prep.v_col,
        spans,
        prep.d,
        prep.d_key,
    )?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&ARMT_WRITE_PREP_F32)?;
    let params = Spans::pack(spans);
    let (kvb_ptr, kphi_ptr, ka_ptr) = (addr(prep.kvb, stream), addr(prep.kphi, stream), addr(prep.ka, stream));
    let (z_ptr, b_beta_ptr) = (addr(prep.z, stream), addr(prep.b_beta, stream));
    let (u_ptr, gamma_ptr) = (addr_mut(u, stream), addr_mut(gamma, stream));
    // All fit in i32: `validate_prep` checked them.
    let (kvb_ld, v_col) = (prep.kvb_ld as i32, prep.v_col as i32);
    let (d, d_key, correction) = (prep.d as i32, prep.d_key as i32, prep.correction as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&kvb_ptr)
        .arg(&kvb_ld)
        .arg(&v_col)
        .arg(&kphi_ptr)
        .arg(&ka_ptr)
        .arg(&z_ptr)
        .arg(&b_beta_ptr)
        .arg(&u_ptr)
        .arg(&gamma_ptr)
        .arg(&d)
        .arg(&d_key)
        .arg(&correction);
    // SAFETY: the arguments match `armt_write_prep_f32(Spans, const float* kvb, int kvb_ld, int v_col, const float*
    // kphi, const float* ka, const float* z, const float* b_beta, float* u, float* gamma, int d, int d_key, int
    // correction)` in order and type (Spans mirrors params.h, addresses are 8 bytes). `validate_prep` checked every
    // address the kernel forms: each span's input rows inside `kvb` (columns v_col..=v_col + d), `kphi` and (not for
    // segment 0, whose rows of `ka` the kernel never reads) `ka`; its state a row of `z`; its layer inside `b_beta`;
    // its output rows inside `u` and `gamma`, disjoint from every other span's. `u` and `gamma` are borrowed mutably
    // for this call and the inputs shared, so nothing else writes them meanwhile. grid.x covers the longest span
    // (blocks past a span's end return), grid.y = spans.len().
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The inputs of [`armt_write_features`]: [`WritePrep`]'s without kφ and ka (it makes kφ; the product's epilogue makes
/// u from ka), plus the DPFP shape.
#[derive(Debug, Clone, Copy)]
pub struct WriteFeatures<'a> {
    /// The fused write product: raw K at columns `0..d_mem`, V at `v_col..v_col + d`, the β logit at `v_col + d`.
    pub kvb: &'a CudaSlice<f32>,
    pub kvb_ld: usize,
    pub v_col: usize,
    pub d_mem: usize,
    pub nu: usize,
    pub z: &'a CudaSlice<f32>,
    pub b_beta: &'a CudaSlice<f32>,
    pub d: usize,
    pub correction: bool,
}

/// The write's per-row pass when its prep is made in the `kφ·A` product's epilogue
/// ([`crate::gemm_tf32x3_sm90::gemm_sm90_nn_f32_f32_f32_tf32x3_prep`]): per memory row `t` of every span,
/// `kφ_t = dpfp(K_t)` into `kphi` rows `span.in_row..` (`[*, D]`, [`crate::dpfp::dpfp`]'s bits), `β_t`; segment 0:
/// `u_t = β·V_t` and `γ_t = 1` ([`armt_write_prep`]'s); otherwise `δ_t = kφ_t·z + ε` and `γ_t` reduced exactly as
/// [`armt_write_prep`] reduces them, and `stats[2·(in_row + t)..+2] = {δ_t, β_t}` for the product's epilogue.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) where [`armt_write_prep`] would (without
/// ka), and unless every span's rows fit `stats` (two values a row). Asynchronous on `stream`.
#[allow(clippy::too_many_arguments)]
pub fn armt_write_features(
    gpu: &Gpu,
    stream: &CudaStream,
    w: &WriteFeatures<'_>,
    kphi: &mut CudaSlice<f32>,
    stats: &mut CudaSlice<f32>,
    u: &mut CudaSlice<f32>,
    gamma: &mut CudaSlice<f32>,
    spans: &[Span],
) -> Result<(), KernelError> {
    let k = ARMT_WRITE_FEATURES_F32.entry;
    if w.d_mem == 0 || w.nu == 0 || w.nu.saturating_mul(w.d_mem) > (i32::MAX / 2) as usize || w.v_col < w.d_mem {
        return Err(invalid(
            k,
            format!(
                "d_mem = {}, nu = {}, v_col = {}: K before V, both ≥ 1",
                w.d_mem, w.nu, w.v_col
            ),
        ));
    }
    let d_key = 2 * w.nu * w.d_mem;
    let lens = PrepLens {
        kvb: w.kvb.len(),
        kphi: kphi.len(),
        // ka is not read: the check of its rows is the flag spans' (skipped) one
        ka: usize::MAX,
        z: w.z.len(),
        b_beta: w.b_beta.len(),
        u: u.len(),
        gamma: gamma.len(),
    };
    let cfg = validate_prep(k, &lens, w.kvb_ld, w.v_col, spans, w.d, d_key)?;
    for s in spans {
        check_rows(
            k,
            "stats",
            Rows {
                len: stats.len(),
                ld: 2,
            },
            s.in_row,
            s.rows,
            0,
            2,
        )?;
    }
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&ARMT_WRITE_FEATURES_F32)?;
    let params = Spans::pack(spans);
    let (kvb_ptr, z_ptr, b_beta_ptr) = (addr(w.kvb, stream), addr(w.z, stream), addr(w.b_beta, stream));
    let (kphi_ptr, stats_ptr) = (addr_mut(kphi, stream), addr_mut(stats, stream));
    let (u_ptr, gamma_ptr) = (addr_mut(u, stream), addr_mut(gamma, stream));
    // All fit in i32: validate_prep and the shape check above.
    let (kvb_ld, v_col, d_mem, nu) = (w.kvb_ld as i32, w.v_col as i32, w.d_mem as i32, w.nu as i32);
    let (d, correction) = (w.d as i32, w.correction as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&kvb_ptr)
        .arg(&kvb_ld)
        .arg(&v_col)
        .arg(&d_mem)
        .arg(&nu)
        .arg(&z_ptr)
        .arg(&b_beta_ptr)
        .arg(&kphi_ptr)
        .arg(&stats_ptr)
        .arg(&u_ptr)
        .arg(&gamma_ptr)
        .arg(&d)
        .arg(&correction);
    // SAFETY: the arguments match `armt_write_features_f32(Spans, const float* kvb, int kvb_ld, int v_col, int d_mem,
    // int nu, const float* z, const float* b_beta, float* kphi, float* stats, float* u, float* gamma, int d, int
    // correction)` in order and type. validate_prep checked each span's kvb rows (columns v_col..=v_col + d; the raw K
    // columns 0..d_mem lie before v_col ≥ d_mem), its kphi rows (D = 2·nu·d_mem), state, layer, u and gamma rows,
    // the outputs disjoint between spans; the loop above its stats rows. The outputs are borrowed mutably, the
    // inputs shared. grid.x covers the longest span, grid.y = spans.len().
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// `z[state] += Σₜ γₜ · kφₜ` for every span, summed onto `z` in the order `t = 0, 1, …` (bitwise the reference's
/// arithmetic). Takes the spans of [`armt_write_prep`] unchanged: `kphi` `[*, d_key]` rows `span.in_row..+rows`,
/// `gamma` `[*]` rows `span.out_row..+rows`, `z` `[states, d_key]` row `span.state`, updated in place. Run it after
/// [`armt_write_prep`], which reads the old `z`.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `1 ≤ spans.len() ≤ MAX_GROUPS`,
/// `d_key ≥ 1`, every span fits `kphi` and `gamma`, every `state` is a row of `z`, and no two spans share a state
/// (they would race on it). Asynchronous on `stream`.
pub fn armt_z_update(
    gpu: &Gpu,
    stream: &CudaStream,
    kphi: &CudaSlice<f32>,
    gamma: &CudaSlice<f32>,
    z: &mut CudaSlice<f32>,
    spans: &[Span],
    d_key: usize,
) -> Result<(), KernelError> {
    let cfg = validate_z(kphi.len(), gamma.len(), z.len(), spans, d_key)?;
    let f = gpu.function(&ARMT_Z_UPDATE_F32)?;
    let params = Spans::pack(spans);
    let (kphi_ptr, gamma_ptr, z_ptr) = (addr(kphi, stream), addr(gamma, stream), addr_mut(z, stream));
    let d_key = d_key as i32; // `validate_z` checked it fits
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&kphi_ptr)
        .arg(&gamma_ptr)
        .arg(&z_ptr)
        .arg(&d_key);
    // SAFETY: the arguments match `armt_z_update_f32(Spans, const float* kphi, const float* gamma, float* z, int
    // d_key)` in order and type (Spans mirrors params.h, addresses are 8 bytes). `validate_z` checked that each
    // span's rows lie inside `kphi` and `gamma`, that its state is a row of `z` and that no two spans share a state,
    // so each element of `z` has at most one writer; `z` is borrowed mutably for this call and the inputs shared.
    // Lanes with a feature index ≥ d_key only reach the barriers; grid.y = spans.len().
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Buffer lengths of [`armt_write_prep`], in elements.
struct PrepLens {
    kvb: usize,
    kphi: usize,
    ka: usize,
    z: usize,
    b_beta: usize,
    u: usize,
    gamma: usize,
}

/// The checks of [`armt_write_prep`], on buffer lengths only (so they are tested without a GPU); returns the launch's
/// grid (one block per memory row).
fn validate_prep(
    k: &str,
    lens: &PrepLens,
    kvb_ld: usize,
    v_col: usize,
    spans: &[Span],
    d: usize,
    d_key: usize,
) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    check_dim(k, "d_key", d_key)?;
    for s in spans {
        // V and the logit right after it.
        check_rows(
            k,
            "kvb",
            Rows {
                len: lens.kvb,
                ld: kvb_ld,
            },
            s.in_row,
            s.rows,
            v_col,
            d + 1,
        )?;
        check_rows(
            k,
            "kphi",
            Rows {
                len: lens.kphi,
                ld: d_key,
            },
            s.in_row,
            s.rows,
            0,
            d_key,
        )?;
        if !s.flag {
            check_rows(k, "ka", Rows { len: lens.ka, ld: d }, s.in_row, s.rows, 0, d)?;
        }
        check_index(k, "state", s.state, lens.z / d_key)?;
        check_index(k, "layer", s.layer, lens.b_beta)?;
        check_rows(k, "u", Rows { len: lens.u, ld: d }, s.out_row, s.rows, 0, d)?;
        check_rows(k, "gamma", Rows { len: lens.gamma, ld: 1 }, s.out_row, s.rows, 0, 1)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, WRITE_THREADS))
}

/// The checks of [`armt_z_update`], on buffer lengths only; returns the launch's grid (a block per `Z_FEATURES`
/// features, one row of blocks per span).
fn validate_z(
    kphi_len: usize,
    gamma_len: usize,
    z_len: usize,
    spans: &[Span],
    d_key: usize,
) -> Result<LaunchConfig, KernelError> {
    let k = ARMT_Z_UPDATE_F32.entry;
    check_groups(k, spans.len())?;
    check_dim(k, "d_key", d_key)?;
    for s in spans {
        check_rows(
            k,
            "kphi",
            Rows {
                len: kphi_len,
                ld: d_key,
            },
            s.in_row,
            s.rows,
            0,
            d_key,
        )?;
        check_rows(k, "gamma", Rows { len: gamma_len, ld: 1 }, s.out_row, s.rows, 0, 1)?;
        check_index(k, "state", s.state, z_len / d_key)?;
    }
    let mut states: Vec<usize> = spans.iter().map(|s| s.state).collect();
    states.sort_unstable();
    if states.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(k, "two spans update the same state".into()));
    }
    Ok(LaunchConfig {
        grid_dim: (d_key.div_ceil(Z_FEATURES as usize) as u32, spans.len() as u32, 1),
        block_dim: (Z_THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::rejected;

    fn span(in_row: usize, out_row: usize, rows: usize, layer: usize, state: usize, flag: bool) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            layer,
            flag,
            state,
            ..Span::default()
        }
    }

    #[test]
    fn threads_match_the_kernel() {
        let cu = include_str!("../../../cuda/armt_write.cu");
        assert!(cu.contains(&format!("#define WRITE_THREADS {WRITE_THREADS}\n")));
        assert!(cu.contains(&format!("#define Z_THREADS {Z_THREADS}\n")));
        assert!(cu.contains(&format!("#define Z_FEATURES {Z_FEATURES}\n")));
        for k in [ARMT_WRITE_PREP_F32, ARMT_Z_UPDATE_F32] {
            assert!(cu.contains(&format!(" {}(", k.entry)), "{}", k.entry);
        }
    }

    /// d = 8, D = 12, d_mem = 2: kvb stride 11 (V at 2..10, logit at 10), 8 input rows, 8 output rows, 2 states,
    /// 3 layers.
    fn lens() -> PrepLens {
        PrepLens {
            kvb: 7 * 11 + 11,
            kphi: 8 * 12,
            ka: 8 * 8,
            z: 24,
            b_beta: 3,
            u: 64,
            gamma: 8,
        }
    }

    #[test]
    fn validate_prep_checks_every_buffer() {
        let ok = [span(0, 4, 4, 2, 1, false), span(4, 0, 4, 0, 0, true)];
        assert_eq!(
            validate_prep(ARMT_WRITE_PREP_F32.entry, &lens(), 11, 2, &ok, 8, 12)
                .unwrap()
                .grid_dim,
            (4, 2, 1)
        );
        for (what, l) in [
            ("kvb", PrepLens { kvb: 87, ..lens() }),
            ("kphi", PrepLens { kphi: 95, ..lens() }),
            ("z", PrepLens { z: 23, ..lens() }),
            ("b_beta", PrepLens { b_beta: 2, ..lens() }),
            ("u", PrepLens { u: 63, ..lens() }),
            ("gamma", PrepLens { gamma: 7, ..lens() }),
        ] {
            assert!(
                rejected(validate_prep(ARMT_WRITE_PREP_F32.entry, &l, 11, 2, &ok, 8, 12)),
                "{what} short"
            );
        }
        assert!(
            rejected(validate_prep(ARMT_WRITE_PREP_F32.entry, &lens(), 11, 3, &ok, 8, 12)),
            "logit column past the stride"
        );
        // ka is only needed for rows that are not segment 0: the flagged span reads rows 4..8 and ka has 4 rows.
        let ka_short = PrepLens { ka: 32, ..lens() };
        assert!(validate_prep(
            ARMT_WRITE_PREP_F32.entry,
            &ka_short,
            11,
            2,
            &[span(4, 0, 4, 0, 0, true)],
            8,
            12
        )
        .is_ok());
        assert!(rejected(validate_prep(
            ARMT_WRITE_PREP_F32.entry,
            &ka_short,
            11,
            2,
            &[span(4, 0, 4, 0, 0, false)],
            8,
            12
        )));
        let overlap = [span(0, 0, 4, 0, 0, false), span(4, 3, 4, 1, 1, false)];
        assert!(
            rejected(validate_prep(
                ARMT_WRITE_PREP_F32.entry,
                &lens(),
                11,
                2,
                &overlap,
                8,
                12
            )),
            "overlapping outputs"
        );
        assert!(
            rejected(validate_prep(
                ARMT_WRITE_PREP_F32.entry,
                &lens(),
                11,
                2,
                &[span(0, 0, 4, 3, 0, false)],
                8,
                12
            )),
            "layer"
        );
        assert!(
            rejected(validate_prep(
                ARMT_WRITE_PREP_F32.entry,
                &lens(),
                11,
                2,
                &[span(0, 0, 4, 0, 2, false)],
                8,
                12
            )),
            "state"
        );
        assert!(
            rejected(validate_prep(ARMT_WRITE_PREP_F32.entry, &lens(), 11, 2, &[], 8, 12)),
            "no spans"
        );
    }

    #[test]
    fn validate_z_rejects_shared_states_and_overruns() {
        let ok = [span(0, 4, 4, 0, 1, false), span(4, 0, 4, 0, 0, true)];
        assert_eq!(validate_z(96, 8, 24, &ok, 12).unwrap().grid_dim, (1, 2, 1));
        assert!(rejected(validate_z(95, 8, 24, &ok, 12)), "kphi short");
        assert!(rejected(validate_z(96, 7, 24, &ok, 12)), "gamma short");
        assert!(rejected(validate_z(96, 8, 23, &ok, 12)), "z short");
        let shared = [span(0, 4, 4, 0, 1, false), span(4, 0, 4, 1, 1, false)];
        assert!(rejected(validate_z(96, 8, 24, &shared, 12)), "shared state");
        assert!(rejected(validate_z(96, 8, 24, &ok, 0)), "d_key 0");
    }
}
