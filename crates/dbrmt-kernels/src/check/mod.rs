//! Each kernel against its f32 CPU reference, on fresh random inputs, with poisoned outputs.
//!
//! One check per kernel and shape, returning a [`Check`]: the GPU tests (`tests/gpu_*.rs`) assert on them and
//! `dbrmt selftest` prints them as a table, so both run exactly the same comparison. Inputs are rounded to bf16
//! once and the reference sees the same rounded values, so the tolerance measures the kernel's arithmetic only.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

use crate::poison::{poison_f32, poison_u32, POISON_F32_BITS};
use crate::{Gpu, HiddenElem, KernelError};

pub mod armt;
pub mod attention;
pub mod dpfp;
pub mod embed;
pub mod gemm;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;

/// One kernel's checks at all its shapes.
pub type Suite = fn(&Gpu, u64) -> Vec<Result<Check, KernelError>>;

/// Every kernel's checks, in the order of a step (embed, norm, projections, rope, attention, MLP, memory).
pub fn all(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let suites: [Suite; 8] = [
        embed::checks,
        rms_norm::checks,
        gemm::checks,
        rope::checks,
        attention::checks,
        swiglu::checks,
        dpfp::checks,
        armt::checks,
    ];
    suites
        .iter()
        .enumerate()
        .flat_map(|(i, suite)| suite(gpu, seed.wrapping_add(i as u64)))
        .collect()
}

/// The outcome of one kernel check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Kernel entry point (or op) checked.
    pub kernel: &'static str,
    /// The shape, in words (`m=130 n=70 k=96 groups=3`).
    pub shape: String,
    /// ‖gpu − ref‖ / ‖ref‖ over all outputs.
    pub rel_err: f64,
    /// max |gpu − ref|.
    pub max_abs: f64,
    /// The bound on `rel_err`.
    pub tol: f64,
    /// Output elements still holding the poison pattern (never written).
    pub unwritten: usize,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.unwritten == 0 && self.rel_err.is_finite() && self.rel_err <= self.tol
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<24} {:<40} rel {:>9.2e} (tol {:.0e})  max|Δ| {:>9.2e}  unwritten {:>3}  {}",
            self.kernel,
            self.shape,
            self.rel_err,
            self.tol,
            self.max_abs,
            self.unwritten,
            if self.passed() { "ok" } else { "FAIL" }
        )
    }
}

/// Compares a GPU result with the reference; poisoned (never written) elements are counted, not compared.
pub fn compare(kernel: &'static str, shape: String, gpu: &[f32], reference: &[f32], tol: f64) -> Check {
    assert_eq!(gpu.len(), reference.len(), "compare: length mismatch");
    let (mut num, mut den, mut max_abs, mut unwritten) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (&g, &r) in gpu.iter().zip(reference) {
        if g.to_bits() == POISON_F32_BITS || is_bf16_poison(g) {
            unwritten += 1;
            continue;
        }
        let d = g as f64 - r as f64;
        num += d * d;
        den += r as f64 * r as f64;
        max_abs = max_abs.max(d.abs());
    }
    let rel_err = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
    Check {
        kernel,
        shape,
        rel_err,
        max_abs,
        tol,
        unwritten,
    }
}

/// The bf16 poison pattern (the high half of the f32 one) as read back through `f32::from(bf16)`.
fn is_bf16_poison(x: f32) -> bool {
    x.to_bits() == (POISON_BF16_BITS as u32) << 16
}

/// What [`poison_bf16`] writes into each bf16 element: a quiet NaN.
pub const POISON_BF16_BITS: u16 = (POISON_F32_BITS >> 16) as u16;

/// A seed that differs from run to run (tests print it, so a failure can be replayed with `DBRMT_SEED`).
pub fn fresh_seed() -> u64 {
    if let Some(s) = std::env::var("DBRMT_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (std::process::id() as u64).rotate_left(32)
}

/// SplitMix64 with a Box–Muller normal: small, seedable, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` values from N(0, std²), rounded to bf16 (so GPU and reference see the same inputs).
    pub fn bf16_normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| round_bf16((self.normal() * std) as f32)).collect()
    }

    /// `n` values from N(0, std²) in f32.
    pub fn f32_normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * std) as f32).collect()
    }

    /// `n` values from N(0, std²) as hidden rows of type `H` hold them: [`Rng::bf16_normal`] for bf16,
    /// [`Rng::f32_normal`] for f32 (the same draws).
    pub fn hidden_normal<H: HiddenElem>(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| H::from_f32((self.normal() * std) as f32).to_f32())
            .collect()
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as f32.
pub fn round_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

/// Uploads f32 values as bf16.
pub fn upload_bf16(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<bf16>, KernelError> {
    let h: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    Ok(stream.clone_htod(&h)?)
}

/// Uploads f32 values.
pub fn upload_f32(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<f32>, KernelError> {
    Ok(stream.clone_htod(x)?)
}

/// Downloads bf16 values as f32 (synchronising the stream).
pub fn download_bf16(stream: &Arc<CudaStream>, x: &CudaSlice<bf16>) -> Result<Vec<f32>, KernelError> {
    Ok(stream.clone_dtoh(x)?.into_iter().map(f32::from).collect())
}

/// Downloads f32 values (synchronising the stream).
pub fn download_f32(stream: &Arc<CudaStream>, x: &CudaSlice<f32>) -> Result<Vec<f32>, KernelError> {
    Ok(stream.clone_dtoh(x)?)
}

/// Uploads f32 values as hidden rows of type `H` (rounded to bf16, or as they are).
pub fn upload_hidden<H: HiddenElem>(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<H>, KernelError> {
    let h: Vec<H> = x.iter().map(|&v| H::from_f32(v)).collect();
    Ok(stream.clone_htod(&h)?)
}

/// Downloads hidden rows of type `H` as f32 (exact, so bits compare as the stored bits do; synchronising the stream).
pub fn download_hidden<H: HiddenElem>(stream: &Arc<CudaStream>, x: &CudaSlice<H>) -> Result<Vec<f32>, KernelError> {
    Ok(stream.clone_dtoh(x)?.into_iter().map(H::to_f32).collect())
}

/// A buffer of `n` hidden elements of type `H`, every element poisoned: [`POISON_BF16_BITS`] or [`POISON_F32_BITS`].
pub fn poisoned_hidden<H: HiddenElem>(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    n: usize,
) -> Result<CudaSlice<H>, KernelError> {
    let mut words: CudaSlice<u32> = stream.alloc_zeros(n)?;
    poison_u32(gpu, stream, &mut words, POISON_F32_BITS)?;
    // f32 → bf16 keeps a NaN's high half (and sets its quiet bit, already set): the bf16 poison.
    let host: Vec<H> = stream
        .clone_dtoh(&words)?
        .into_iter()
        .map(|w| H::from_f32(f32::from_bits(w)))
        .collect();
    Ok(stream.clone_htod(&host)?)
}

/// The bits of a [`poisoned_hidden`] element of type `H` as [`download_hidden`] reads it back: [`POISON_BF16_BITS`]
/// widened, or [`POISON_F32_BITS`].
pub fn hidden_poison_bits<H: HiddenElem>() -> u32 {
    H::pick((POISON_BF16_BITS as u32) << 16, POISON_F32_BITS)
}

/// A bf16 buffer of `n` elements, every element poisoned (a NaN).
pub fn poisoned_bf16(gpu: &Gpu, stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<bf16>, KernelError> {
    // Allocated zeroed, then poisoned two bf16 at a time through a u32 view (n rounded up to even).
    let mut words: CudaSlice<u32> = stream.alloc_zeros(n.div_ceil(2))?;
    let pattern = (POISON_BF16_BITS as u32) << 16 | POISON_BF16_BITS as u32;
    poison_u32(gpu, stream, &mut words, pattern)?;
    let host: Vec<u32> = stream.clone_dtoh(&words)?;
    let h: Vec<bf16> = host
        .iter()
        .flat_map(|w| [bf16::from_bits(*w as u16), bf16::from_bits((*w >> 16) as u16)])
        .take(n)
        .collect();
    Ok(stream.clone_htod(&h)?)
}

/// An f32 buffer of `n` elements, every element poisoned (a NaN).
pub fn poisoned_f32(gpu: &Gpu, stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<f32>, KernelError> {
    let mut buf: CudaSlice<f32> = stream.alloc_zeros(n)?;
    poison_f32(gpu, stream, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_poison_and_measures_error() {
        let p = f32::from_bits(POISON_F32_BITS);
        let c = compare("k", "s".into(), &[1.0, p, 3.0], &[1.0, 2.0, 3.0], 1e-3);
        assert_eq!(c.unwritten, 1);
        assert!(!c.passed());
        let c = compare("k", "s".into(), &[1.0, 2.0, 3.3], &[1.0, 2.0, 3.0], 1e-3);
        assert!(c.rel_err > 0.08 && !c.passed());
        let c = compare("k", "s".into(), &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 1e-3);
        assert!(c.passed() && c.rel_err == 0.0);
        let nan = compare("k", "s".into(), &[f32::NAN], &[1.0], 1e-3);
        assert!(!nan.passed());
    }

    #[test]
    fn hidden_helpers_match_the_typed_ones() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        assert_eq!(a.hidden_normal::<bf16>(100, 2.0), b.bf16_normal(100, 2.0));
        assert_eq!(a.hidden_normal::<f32>(100, 2.0), b.f32_normal(100, 2.0));
        let p = f32::from_bits(POISON_F32_BITS);
        assert_eq!(<bf16 as HiddenElem>::from_f32(p).to_bits(), POISON_BF16_BITS);
        assert_eq!(hidden_poison_bits::<f32>(), POISON_F32_BITS);
        let widened = HiddenElem::to_f32(bf16::from_bits(POISON_BF16_BITS)).to_bits();
        assert_eq!(hidden_poison_bits::<bf16>(), widened);
    }

    #[test]
    fn bf16_poison_is_recognised_after_conversion() {
        assert!(is_bf16_poison(f32::from(bf16::from_bits(POISON_BF16_BITS))));
        let mut r = Rng::new(1);
        let v = r.bf16_normal(1000, 1.0);
        assert!(v.iter().all(|&x| x == round_bf16(x) && !is_bf16_poison(x)));
        assert!(v.iter().filter(|&&x| x == 0.0).count() < 5);
    }
}
