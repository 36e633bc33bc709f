//! `armt_state_split_tf32bf16` against [`reference::armt_state_split`](crate::reference::armt_state_split): bit for
//! bit. Random states (N(0, 30²) as the read's checks, plus values on tf32 rounding ties, signed zeros and tiny
//! subnormals, where a different rounding shows), some of the buffer's states split and the others left as the
//! poison they started as (a block that wrote another state's rows would show there).

use super::harness::{compare, download_f32, f32_normal, fail_if, upload_f32, Check, SplitMix64, F32_OUT_TOL};
use crate::armt_state_split::{armt_state_split, split_len, ARMT_STATE_SPLIT_TF32BF16};
use crate::gemm::GemmGroup;
use crate::gemm_tf32x3_sm90::{gemm_sm90_tn_f32_f32_f32_tf32x3, gemm_sm90_tn_f32_f32_f32_tf32x3_split};
use crate::reference::armt_state_split::split_state;
use crate::reference::gemm::matmul_tn_add;
use crate::{Gpu, KernelError};

/// The bits a split buffer starts with in the checks: a NaN, so a tile the split kernel did not write cannot pass.
pub(crate) const SPLIT_POISON: u32 = 0x7fc0_dead;

/// `slots` states of `D × d`, states `which` split: each against the reference bitwise, the others untouched.
pub fn check_state_split(
    gpu: &Gpu,
    seed: u64,
    (d_key, d): (usize, usize),
    slots: usize,
    which: &[usize],
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let mut a = f32_normal(&mut rng, slots * d_key * d, 30.0);
    for (i, v) in a.iter_mut().enumerate().step_by(5) {
        *v = match i % 4 {
            // the low 13 bits 0x1000: a tf32 tie, rounded away from zero
            0 => f32::from_bits((v.to_bits() & 0xffff_e000) | 0x1000),
            1 => -0.0,
            2 => f32::from_bits(0x0000_1001 + (i as u32 & 0xff)), // subnormal
            _ => *v * 1e-30,
        };
    }
    let stream = gpu.stream();
    let a_d = upload_f32(stream, &a)?;
    let mut out_d = stream.clone_htod(&vec![SPLIT_POISON; split_len(slots, d_key, d)])?;
    armt_state_split(gpu, stream, &a_d, &mut out_d, which, d_key, d)?;
    let out = stream.clone_dtoh(&out_d)?;
    let per = 2 * d_key * d;
    let (mut differing, mut touched) = (0, 0);
    let (mut got_hi, mut want_hi) = (Vec::new(), Vec::new());
    for s in 0..slots {
        let got = &out[s * per..(s + 1) * per];
        if which.contains(&s) {
            let want = split_state(&a[s * d_key * d..(s + 1) * d_key * d], d_key, d);
            differing += got.iter().zip(&want).filter(|(g, w)| g != w).count();
            // the hi values (finite f32) for the error figures
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                if (i % 64) < 32 {
                    got_hi.push(f32::from_bits(*g));
                    want_hi.push(f32::from_bits(*w));
                }
            }
        } else {
            touched += got.iter().filter(|&&g| g != SPLIT_POISON).count();
        }
    }
    let what = format!("D={d_key} d={d} states {which:?} of {slots}");
    let check = compare(ARMT_STATE_SPLIT_TF32BF16.entry, what, &got_hi, &want_hi, 0.0);
    let check = fail_if(check, differing, "u32 differ from the reference");
    Ok(fail_if(check, touched, "u32 written in states not asked for"))
}

/// The write's update with the split in its epilogue (`gemm_sm90_tn_f32_f32_f32_tf32x3_split`): for cells of `mem`
/// memory rows writing `states` (of `slots`), `A[state] += kφᵀ·u` — A bitwise the plain update's
/// (`gemm_sm90_tn_f32_f32_f32_tf32x3`, which `armt_state_split` then splits in the engine without it) and within the f32
/// tolerance of the reference product ([`matmul_tn_add`]) — and the split buffer bitwise [`split_state`] of the A it wrote for those states,
/// the other states' rows left as the poison they started as.
pub fn check_update_split(
    gpu: &Gpu,
    seed: u64,
    (d_key, d, mem): (usize, usize, usize),
    slots: usize,
    states: &[usize],
) -> Result<Check, KernelError> {
    const ENTRY: &str = "gemm_sm90_tn_f32_f32_f32_tf32x3_split";
    let mut rng = SplitMix64::new(seed);
    let cells = states.len();
    // kφ ≥ 0 as DPFP features are, u ~ N(0, 1), A ~ N(0, 30²)
    let kphi: Vec<f32> = f32_normal(&mut rng, cells * mem * d_key, 1.0)
        .iter()
        .map(|v| v.abs())
        .collect();
    let u = f32_normal(&mut rng, cells * mem * d, 1.0);
    let a = f32_normal(&mut rng, slots * d_key * d, 30.0);
    let groups: Vec<GemmGroup> = states
        .iter()
        .enumerate()
        .map(|(i, &s)| GemmGroup {
            a_offset: i * mem * d_key,
            b_offset: i * mem * d,
            c_offset: s * d_key * d,
            m: d_key,
            n: d,
            k: mem,
            lda: d_key,
            ldb: d,
            ldc: d,
        })
        .collect();
    let stream = gpu.stream();
    let (kphi_d, u_d) = (upload_f32(stream, &kphi)?, upload_f32(stream, &u)?);
    // the one launch
    let mut a1 = upload_f32(stream, &a)?;
    let mut split1 = stream.clone_htod(&vec![SPLIT_POISON; split_len(slots, d_key, d)])?;
    gemm_sm90_tn_f32_f32_f32_tf32x3_split(gpu, stream, &kphi_d, &u_d, &mut a1, (&mut split1, d_key), &groups)?;
    let (a1, split1) = (download_f32(stream, &a1)?, stream.clone_dtoh(&split1)?);
    // the plain update
    let mut a2 = upload_f32(stream, &a)?;
    gemm_sm90_tn_f32_f32_f32_tf32x3(gpu, stream, &kphi_d, &u_d, &mut a2, &groups, true)?;
    let a2 = download_f32(stream, &a2)?;
    // the reference: A[state] + kφᵀ·u, per written state
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let state_elems = d_key * d;
    for (i, &s) in states.iter().enumerate() {
        let mut c = a[s * state_elems..(s + 1) * state_elems].to_vec();
        let (k_cell, u_cell) = (
            &kphi[i * mem * d_key..(i + 1) * mem * d_key],
            &u[i * mem * d..(i + 1) * mem * d],
        );
        matmul_tn_add(k_cell, u_cell, d_key, mem, d, &mut c);
        want.extend(c);
        got.extend_from_slice(&a1[s * state_elems..(s + 1) * state_elems]);
    }
    // the split: the written states against the reference split of the A written, the others untouched
    let per = 2 * d_key * d;
    let (mut split_differing, mut touched) = (0, 0);
    for s in 0..slots {
        let out = &split1[s * per..(s + 1) * per];
        if states.contains(&s) {
            let want = split_state(&a1[s * d_key * d..(s + 1) * d_key * d], d_key, d);
            split_differing += out.iter().zip(&want).filter(|(g, w)| g != w).count();
        } else {
            touched += out.iter().filter(|&&g| g != SPLIT_POISON).count();
        }
    }
    let what = format!("D={d_key} d={d} M={mem} states {states:?} of {slots}: A vs the plain update (bitwise), ref");
    let check = compare(ENTRY, what, &got, &want, F32_OUT_TOL);
    let check = fail_if(
        check,
        super::harness::differing_bits(&a1, &a2),
        "A elements differ from the plain update",
    );
    let check = fail_if(
        check,
        split_differing,
        "split u32 differ from the split of the A written",
    );
    Ok(fail_if(check, touched, "split u32 written in states not updated"))
}

/// The 1B shape (D = 384, d = 2048), SmolLM2's width (d = 576) and a width off the 32-column blocks (d = 200, D = 192).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_state_split(gpu, seed, (384, 2048), 4, &[2, 0]),
        check_state_split(gpu, seed.wrapping_add(1), (384, 576), 3, &[1]),
        check_state_split(gpu, seed.wrapping_add(2), (192, 200), 3, &[0, 1, 2]),
    ]
}

/// The update with the split in its epilogue ([`check_update_split`]) at the 1B (three cells of five states) and 160M
/// shapes and a small one off the 128-column tiles (D = 96, d = 200, 32 memory rows): the GPU tests and
/// `dbrmt selftest`.
pub fn update_split_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_update_split(gpu, seed, (384, 2048, 128), 5, &[3, 0, 4]),
        check_update_split(gpu, seed.wrapping_add(1), (384, 768, 128), 3, &[1, 2]),
        check_update_split(gpu, seed.wrapping_add(2), (96, 200, 32), 3, &[2]),
    ]
}
