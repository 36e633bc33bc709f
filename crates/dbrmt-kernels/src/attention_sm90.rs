//! Launcher of `cuda/attention_sm90.cu`: causal GQA attention on the tensor cores (TMA loads, wgmma, a producer and
//! three or two consumer warpgroups ([`consumer_warpgroups`]), persistent), with the contract of
//! [`crate::attention::attention_causal`] (the same spans, the same `pos` for the new rows of an open segment) for
//! head dims 64 and 128. A query row is computed the same way whatever span it is in (its tile is fixed by its
//! position and head, its key tiles are walked in the same order with the same instructions), so a decoded row has
//! the bits of the same row inside its whole span, and a span's bits never depend on the other spans of the launch
//! or on the warpgroup count.

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use half::bf16;

use crate::attention::check_spans;
use crate::launch::{addr, addr_mut, check_groups, check_positions, few_rows, invalid, positions_addr, Rows};
use crate::params::{Heads, Span, Spans};
use crate::switches::{self, RuntimeSwitch};
use crate::tma;
use crate::{cubins, Gpu, Kernel, KernelError};

/// Keys per tile (`attn90::BN`).
const KEY_TILE: u32 = 128;

/// Consumer warpgroups a launch runs, which picks its entry point: three at head dim 64 with grouped queries (`r` =
/// heads / kv_heads ≥ 2; `attn90::consumer_wgs`) unless every span has few rows (a decode step, where one warpgroup
/// of an item has rows), two otherwise. Every count gives the same bits; three were 17–21% faster at the 1B and
/// SmolLM2 steps, two 14% faster at the 160M step and 1–6% at decode shapes (docs/log/attention_sm90.md §8).
pub fn consumer_warpgroups(head_dim: usize, r: usize, spans: &[Span]) -> u32 {
    if head_dim == 64 && r > 1 && !few_rows(spans) {
        3
    } else {
        2
    }
}

/// `DBRMT_ATTENTION_WG3=off`: two consumer warpgroups wherever the rule says three (the same bits; to compare).
static WG3: RuntimeSwitch = RuntimeSwitch::new(switches::ATTENTION_WG3);

/// Whether launches take three consumer warpgroups where the rule says so: on unless `DBRMT_ATTENTION_WG3=off` or
/// [`set_wg3`] said otherwise.
pub fn wg3_enabled() -> bool {
    WG3.enabled()
}

/// Three consumer warpgroups where the rule says so (true) or two everywhere (false), for the launches that follow
/// (process-wide; the selftest compares the two, bitwise).
pub fn set_wg3(on: bool) {
    WG3.set(on);
}

/// The entry point and its consumer warpgroups for `heads` and `spans` (the rule, unless the switch is off).
fn entry_for(heads: Heads, spans: &[Span]) -> Option<(&'static str, u32)> {
    let r = heads.heads / heads.kv_heads.max(1);
    match heads.head_dim {
        64 if consumer_warpgroups(64, r, spans) == 3 && WG3.enabled() => Some(("attention_sm90_causal_bf16_hd64", 3)),
        64 => Some(("attention_sm90_causal_bf16_hd64_wg2", 2)),
        128 => Some(("attention_sm90_causal_bf16_hd128", 2)),
        _ => None,
    }
}

/// The head sizes the kernel is instantiated for (others: [`crate::attention::attention_causal`]).
pub const HEAD_DIMS: [usize; 2] = [64, 128];

/// `AttnSm90Params` in attention_sm90.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Params {
    out: u64,
    out_ld: i32,
    heads: i32,
    kv_heads: i32,
    scale: f32,
}

// SAFETY: a #[repr(C)] plain-old-data mirror of AttnSm90Params (24 bytes, checked below against the kernel's
// static_assert); its address is formed by the launcher after its checks.
unsafe impl DeviceRepr for Params {}

/// Dynamic shared memory of the kernel for `head_dim` (`attn90::smem_bytes`).
const fn smem_bytes(head_dim: usize) -> usize {
    if head_dim == 64 {
        204992
    } else {
        229984
    }
}

/// Whether the tensor-core kernel runs heads of this shape (else use [`crate::attention::attention_causal`]).
pub fn supports(heads: Heads) -> bool {
    HEAD_DIMS.contains(&heads.head_dim)
        && heads.kv_heads > 0
        && heads.heads.is_multiple_of(heads.kv_heads)
        && heads.heads / heads.kv_heads <= 64
}

/// The checks, on lengths only: the entry point for the head dim and its consumer warpgroups.
fn validate(qkv: Rows, out: Rows, spans: &[Span], heads: Heads, scale: f32) -> Result<(Kernel, u32), KernelError> {
    let Some((entry, nwg)) = entry_for(heads, spans) else {
        return Err(invalid(
            "attention_sm90_causal_bf16",
            format!("head_dim {} (supported: {HEAD_DIMS:?})", heads.head_dim),
        ));
    };
    check_groups(entry, spans.len())?;
    if !supports(heads) || heads.heads > i32::MAX as usize {
        return Err(invalid(
            entry,
            format!(
                "heads {} / kv_heads {}: heads must be a multiple of kv_heads, at most 64 per kv head",
                heads.heads, heads.kv_heads
            ),
        ));
    }
    if !qkv.ld.is_multiple_of(heads.head_dim) || !out.ld.is_multiple_of(8) {
        return Err(invalid(
            entry,
            format!(
                "qkv_ld {} must be a multiple of head_dim, out_ld {} of 8 (TMA strides, 16-byte stores)",
                qkv.ld, out.ld
            ),
        ));
    }
    if !scale.is_finite() || qkv.len / qkv.ld.max(1) > i32::MAX as usize {
        return Err(invalid(entry, format!("scale {scale} or rows beyond 32 bits")));
    }
    check_spans(entry, qkv, out, spans, heads)?;
    Ok((Kernel::new(cubins::ATTENTION_SM90, entry), nwg))
}

/// Causal GQA attention for each span on the tensor cores: as [`crate::attention::attention_causal`] (the same
/// arguments and results, within the same tolerance of the reference), for head dims 64 and 128
/// ([`supports`]), `qkv_ld` a multiple of the head dim and `out_ld` of 8.
#[allow(clippy::too_many_arguments)]
pub fn attention_sm90_causal(
    gpu: &Gpu,
    stream: &CudaStream,
    qkv: &CudaSlice<bf16>,
    qkv_ld: usize,
    out: &mut CudaSlice<bf16>,
    out_ld: usize,
    spans: &[Span],
    positions: Option<&CudaSlice<i32>>,
    heads: Heads,
    scale: f32,
) -> Result<(), KernelError> {
    let (kernel, nwg) = validate(Rows::of(qkv, qkv_ld), Rows::of(out, out_ld), spans, heads, scale)?;
    check_positions(kernel.entry, spans, positions.map(|p| p.len()))?;
    if spans.iter().all(|s| s.rows == 0) {
        return Ok(());
    }
    let Heads {
        heads: h,
        kv_heads: kv,
        head_dim: hd,
    } = heads;
    let rows = qkv.len() / qkv_ld;
    let r = h / kv;
    let base = addr(qkv, stream);
    // q heads: {hd, H, rows} with boxes of one 64-column half × the R heads of a KV head × 64/R positions
    let q_map = tma::bf16_map(
        kernel.entry,
        base,
        &[hd as u64, h as u64, rows as u64],
        &[(hd * 2) as u64, (qkv_ld * 2) as u64],
        &[64, r as u32, (64 / r) as u32],
    )?;
    // k and v heads, from column H·hd: {2·KV·hd, rows}, boxes of 64 columns × 128 keys
    let kv_map = tma::bf16_map(
        kernel.entry,
        base + (h * hd * 2) as u64,
        &[(2 * kv * hd) as u64, rows as u64],
        &[(qkv_ld * 2) as u64],
        &[64, KEY_TILE],
    )?;
    let spans_param = Spans::pack_with(spans, positions_addr(positions, stream));
    let params = Params {
        out: addr_mut(out, stream),
        out_ld: out_ld as i32,
        heads: h as i32,
        kv_heads: kv as i32,
        scale,
    };
    let f = gpu.function(&kernel)?;
    let smem = smem_bytes(hd);
    f.set_attribute(
        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        smem as i32,
    )?;
    let cfg = LaunchConfig {
        grid_dim: (gpu.sm_count() as u32, 1, 1),
        block_dim: (128 * (nwg + 1), 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&q_map).arg(&kv_map).arg(&spans_param).arg(&params);
    // SAFETY: the arguments are the kernel's (TmaMap q_map, TmaMap kv_map, Spans, AttnSm90Params), by value, as
    // their #[repr(C)] mirrors. Both maps cover exactly the rows of `qkv` (its whole length in rows of `qkv_ld`;
    // TMA zero-fills past them), and validate() checked every span's key rows (its cached rows included) and output
    // rows against `qkv` and `out`, the strides TMA and the 16-byte stores need, and that no two spans write the same
    // output rows; `out` is borrowed mutably, so it aliases nothing read. A dynamic span's checks used its bound (the
    // kernel traps past it), and its state indexes the positions buffer whose address `spans_param` carries. The
    // dynamic shared memory is the kernel's plan for this head dim, its limit raised on the function.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(in_row: usize, out_row: usize, rows: usize, pos: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            pos,
            ..Span::default()
        }
    }

    #[test]
    fn params_mirror_the_kernel() {
        assert_eq!(size_of::<Params>(), 24);
    }

    /// The launch shape mirrors the kernel file's: the warpgroup rule, the entries it picks, the shared memory.
    #[test]
    fn launch_shape_mirrors_the_kernel() {
        let cu = include_str!("../../../cuda/attention_sm90.cu");
        assert!(cu.contains("constexpr int consumer_wgs(int hd, int r) { return hd == 64 && r > 1 ? 3 : 2; }"));
        for (name, hd, nwg) in [
            ("attention_sm90_causal_bf16_hd64", 64, 3),
            ("attention_sm90_causal_bf16_hd64_wg2", 64, 2),
            ("attention_sm90_causal_bf16_hd128", 128, 2),
        ] {
            assert!(
                cu.contains(&format!("ATTENTION_SM90_ENTRY({name}, {hd}, {nwg})")),
                "{name}"
            );
        }
        let (step, decode) = ([span(0, 0, 1152, 0)], [span(0, 0, 1, 500), span(2000, 1, 1, 70)]);
        assert_eq!(consumer_warpgroups(64, 4, &step), 3);
        assert_eq!(consumer_warpgroups(64, 4, &decode), 2);
        assert_eq!(consumer_warpgroups(64, 1, &step), 2);
        assert_eq!(consumer_warpgroups(128, 4, &step), 2);
        assert!(cu.contains(&format!("constexpr int SMEM_ABI_HD64 = {};", smem_bytes(64))));
        assert!(cu.contains(&format!("constexpr int SMEM_ABI_HD128 = {};", smem_bytes(128))));
    }

    #[test]
    fn validates_heads_strides_and_spans() {
        let heads = Heads {
            heads: 32,
            kv_heads: 8,
            head_dim: 64,
        };
        let ld = heads.qkv_width();
        let qkv = Rows { len: 2048 * ld, ld };
        let out = Rows {
            len: 2048 * heads.q_width(),
            ld: heads.q_width(),
        };
        let ok = [span(0, 0, 1152, 0), span(1152, 1152, 1, 500)];
        assert!(validate(qkv, out, &ok, heads, 0.125).is_ok());
        // the entry: three consumer warpgroups for grouped queries at head dim 64, two for one query head per KV head
        let entry = |heads: Heads| {
            let qkv = Rows {
                len: 2048 * heads.qkv_width(),
                ld: heads.qkv_width(),
            };
            validate(qkv, out, &ok, heads, 0.125).map(|(k, nwg)| (k.entry, nwg))
        };
        assert_eq!(entry(heads).unwrap(), ("attention_sm90_causal_bf16_hd64", 3));
        let mha = Heads { kv_heads: 32, ..heads };
        assert_eq!(entry(mha).unwrap(), ("attention_sm90_causal_bf16_hd64_wg2", 2));
        // head dim 32 stays on the SIMT kernel; heads not a multiple; qkv_ld not a multiple of hd
        assert!(validate(qkv, out, &ok, Heads { head_dim: 32, ..heads }, 0.125).is_err());
        assert!(validate(qkv, out, &ok, Heads { kv_heads: 5, ..heads }, 0.125).is_err());
        assert!(validate(
            Rows {
                len: 2048 * (ld + 8),
                ld: ld + 8
            },
            out,
            &ok,
            heads,
            0.125
        )
        .is_err());
        // keys past the buffer (cached rows counted), outputs overlapping, a NaN scale
        assert!(validate(qkv, out, &[span(2000, 0, 10, 40)], heads, 0.125).is_err());
        assert!(validate(qkv, out, &[span(0, 0, 10, 0), span(10, 5, 10, 0)], heads, 0.125).is_err());
        assert!(validate(qkv, out, &ok, heads, f32::NAN).is_err());
        assert!(supports(heads) && !supports(Heads { head_dim: 32, ..heads }));
    }
}
