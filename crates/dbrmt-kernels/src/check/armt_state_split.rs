//! `armt_state_split_tf32bf16` against [`reference::armt_state_split`](crate::reference::armt_state_split): bit for
//! bit. Random states (N(0, 30²) as the read's checks, plus values on tf32 rounding ties, signed zeros and tiny
//! subnormals, where a different rounding shows), some of the buffer's states split and the others left as the
//! poison they started as (a block that wrote another state's rows would show there).

use super::harness::{compare, f32_normal, fail_if, upload_f32, Check, SplitMix64};
use crate::armt_state_split::{armt_state_split, split_len, ARMT_STATE_SPLIT_TF32BF16};
use crate::reference::armt_state_split::split_state;
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

/// The 1B shape (D = 384, d = 2048), SmolLM2's width (d = 576) and a width off the 32-column blocks (d = 200, D = 192).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_state_split(gpu, seed, (384, 2048), 4, &[2, 0]),
        check_state_split(gpu, seed.wrapping_add(1), (384, 576), 3, &[1]),
        check_state_split(gpu, seed.wrapping_add(2), (192, 200), 3, &[0, 1, 2]),
    ]
}
