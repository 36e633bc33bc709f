//! The Rust mirror of `cuda/common/params.h`: structs that kernels take by value.
//!
//! Launchers never expose these: they take typed buffers, check every span and problem against the buffers'
//! lengths, and only then write device addresses into these structs.

use cudarc::driver::DeviceRepr;

/// Problems (or spans) one launch can carry; a step with more cells is split into several launches, which is
/// always valid because the cells of a step are independent.
pub const MAX_GROUPS: usize = 64;

/// One problem of a grouped matrix product (`GemmProblem` in params.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GemmProblem {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub lda: i32,
    pub ldb: i32,
    pub ldc: i32,
}

/// `GroupedGemm` in params.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GroupedGemm {
    pub problems: [GemmProblem; MAX_GROUPS],
    pub count: i32,
    pub accumulate: i32,
    pub _pad: [i32; 2],
}

/// `RowSpan` in params.h: rows `in_row..in_row + rows` of the input go to `out_row..` of the output.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowSpan {
    pub in_row: i32,
    pub out_row: i32,
    pub rows: i32,
    pub layer: i32,
    pub flag: i32,
    pub state: i32,
    /// Position of the span's first row inside its segment (RoPE, attention); 0 for whole segments. The bound of a
    /// dynamic span's position.
    pub pos: i32,
    /// Nonzero: the position is `positions[state]` on the device (`span_pos` in params.h).
    pub pos_dynamic: i32,
}

/// `Spans` in params.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Spans {
    pub spans: [RowSpan; MAX_GROUPS],
    pub count: i32,
    pub _pad: i32,
    /// Device address of the per-state positions of dynamic spans (0: none).
    pub positions: u64,
}

// SAFETY: plain-old-data #[repr(C)] structs of integers whose layout equals the C structs of params.h (checked by
// the size and offset tests below against the same numbers as params.h's static_asserts); they hold no pointers
// the Rust side dereferences.
unsafe impl DeviceRepr for GroupedGemm {}
// SAFETY: as above.
unsafe impl DeviceRepr for Spans {}

/// A span as launchers take it (unsigned, unchecked); converted after the bounds checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub in_row: usize,
    pub out_row: usize,
    pub rows: usize,
    pub layer: usize,
    pub flag: bool,
    /// Index of the cell's memory state (`layer` for one request).
    pub state: usize,
    /// Position inside its segment of the span's first row (RoPE and attention): 0 for whole segments; for the new
    /// rows of an open segment, the rows already in its KV cache. For a dynamic span, the largest position the
    /// device may hold (what the launcher checks the buffers against).
    pub pos: usize,
    /// The position is read on the device, from the launch's positions buffer at the span's `state`, when the
    /// kernel runs (`span_pos` in params.h): RoPE and attention take such spans, so that a captured decode step
    /// replays at any position. Other kernels do not read positions.
    pub dynamic: bool,
}

/// The attention heads of a fused QKV row (RoPE, attention): `heads` query heads at column 0, then `kv_heads` key
/// heads and `kv_heads` value heads, each `head_dim` wide; query head `h` reads KV head `h / (heads / kv_heads)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Heads {
    /// Columns of the q heads, `heads · head_dim`.
    pub fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Columns of the k (or v) heads, `kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Columns of a fused QKV row, `(heads + 2·kv_heads) · head_dim`.
    pub fn qkv_width(&self) -> usize {
        self.q_width() + 2 * self.kv_width()
    }
}

impl Spans {
    /// Packs up to [`MAX_GROUPS`] spans (the caller has checked the count and the bounds).
    pub(crate) fn pack(spans: &[Span]) -> Self {
        Self::pack_with(spans, 0)
    }

    /// [`Spans::pack`] with the device address of the positions buffer of its dynamic spans.
    pub(crate) fn pack_with(spans: &[Span], positions: u64) -> Self {
        let mut s = Spans {
            spans: [RowSpan::default(); MAX_GROUPS],
            count: spans.len() as i32,
            _pad: 0,
            positions,
        };
        for (dst, src) in s.spans.iter_mut().zip(spans) {
            *dst = RowSpan {
                in_row: src.in_row as i32,
                out_row: src.out_row as i32,
                rows: src.rows as i32,
                layer: src.layer as i32,
                flag: src.flag as i32,
                state: src.state as i32,
                pos: src.pos as i32,
                pos_dynamic: i32::from(src.dynamic),
            };
        }
        s
    }
}

impl GroupedGemm {
    pub(crate) fn pack(problems: &[GemmProblem], accumulate: bool) -> Self {
        let mut g = GroupedGemm {
            problems: [GemmProblem::default(); MAX_GROUPS],
            count: problems.len() as i32,
            accumulate: accumulate as i32,
            _pad: [0; 2],
        };
        g.problems[..problems.len()].copy_from_slice(problems);
        g
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    /// The same numbers as the static_asserts of cuda/common/params.h.
    #[test]
    fn layout_matches_params_h() {
        assert_eq!(size_of::<GemmProblem>(), 48);
        assert_eq!(offset_of!(GemmProblem, m), 24);
        assert_eq!(offset_of!(GemmProblem, ldc), 44);
        assert_eq!(size_of::<GroupedGemm>(), 48 * MAX_GROUPS + 16);
        assert_eq!(offset_of!(GroupedGemm, count), 48 * MAX_GROUPS);
        assert_eq!(size_of::<RowSpan>(), 32);
        assert_eq!(offset_of!(RowSpan, flag), 16);
        assert_eq!(offset_of!(RowSpan, state), 20);
        assert_eq!(offset_of!(RowSpan, pos), 24);
        assert_eq!(size_of::<Spans>(), 32 * MAX_GROUPS + 16);
        assert_eq!(offset_of!(Spans, count), 32 * MAX_GROUPS);
        assert_eq!(offset_of!(Spans, positions), 32 * MAX_GROUPS + 8);
        let h = include_str!("../../../cuda/common/params.h");
        assert!(h.contains(&format!("#define DBRMT_MAX_GROUPS {MAX_GROUPS}")));
    }
}
