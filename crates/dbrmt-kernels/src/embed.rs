//! Launcher of `cuda/embed.cu`: the input rows of the segments of one step, `[Emb(ids); memory]`.
//!
//! For each span, its `rows` (= T_s, the segment's text tokens, the last segment's may be short) token ids starting
//! at `ids[in_row]` become embedding rows `out_row..out_row + T_s` of the hidden buffer, followed by the `M`
//! memory-token rows (the same for every segment) at `out_row + T_s..out_row + T_s + M`. A copy: the output holds
//! exactly the tables' values (bf16 tables; hidden rows bf16 or f32, [`HiddenElem`], and bf16 → f32 is exact). The CPU
//! reference is [`crate::reference::embed::segment_input`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{
    addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_rows, invalid, row_grid, Rows,
};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const EMBED_SEGMENT_BF16: Kernel = Kernel::new(cubins::EMBED, "embed_segment_bf16");
const EMBED_SEGMENT_F32: Kernel = Kernel::new(cubins::EMBED, "embed_segment_f32");
const EMBED_SEGMENT_F32_MIRRORED: Kernel = Kernel::new(cubins::EMBED, "embed_segment_f32_mirrored");

/// The entry point for hidden rows of type `H`: `embed_segment_bf16` or `embed_segment_f32`.
pub(crate) fn kernel<H: HiddenElem>() -> &'static Kernel {
    H::pick(&EMBED_SEGMENT_BF16, &EMBED_SEGMENT_F32)
}

/// `EMBED_THREADS` of embed.cu.
const THREADS: u32 = 128;

/// The bits a row gets for an id `>= vocab`: a bf16 quiet NaN, distinct from the tests' poison
/// ([`POISON_BF16_BITS`](crate::check::POISON_BF16_BITS)), so a bad id shows up as NaNs, never as a stray read.
pub const BAD_ID_BF16_BITS: u16 = 0x7FFF;

/// The same NaN in f32 hidden rows: [`BAD_ID_BF16_BITS`] widened exactly (distinct from
/// [`POISON_F32_BITS`](crate::poison::POISON_F32_BITS)).
pub const BAD_ID_F32_BITS: u32 = (BAD_ID_BF16_BITS as u32) << 16;

/// Writes each span's segment input rows into `hidden` (`[rows, d]`, dense, bf16 or f32) from the token ids `ids`,
/// the embedding table `embed` (`[vocab, d]`) and the memory-token rows `memory` (`[M, d]`, `M = memory.len() / d`),
/// on `stream`. Launches `embed_segment_bf16` or `embed_segment_f32`, as `H` is.
///
/// Span fields: `in_row` = index of the segment's first id in `ids`, `rows` = its text rows T_s, `out_row` = its
/// first row in `hidden`; it writes `T_s + M` rows. Ids are not read on the host (they are on the device): the
/// caller validates them before upload; an id `>= vocab` gets a row of NaNs ([`BAD_ID_BF16_BITS`], in f32
/// [`BAD_ID_F32_BITS`]), never an out-of-bounds read. Spans that do not fit their buffers or write overlapping rows
/// are a [`KernelError::InvalidArgument`].
#[allow(clippy::too_many_arguments)]
pub fn embed_segment<H: HiddenElem>(
    gpu: &Gpu,
    stream: &CudaStream,
    ids: &CudaSlice<u32>,
    embed: &CudaSlice<bf16>,
    memory: &CudaSlice<bf16>,
    hidden: &mut CudaSlice<H>,
    spans: &[Span],
    d: usize,
    vocab: usize,
) -> Result<(), KernelError> {
    let out = Out {
        hidden_len: hidden.len(),
        hidden: addr_mut(hidden, stream),
        mirror: None,
    };
    launch(gpu, stream, kernel::<H>(), (ids, embed, memory), out, spans, (d, vocab))
}

/// [`embed_segment`] into f32 hidden rows that also writes every row, in bf16, to the same rows of `mirror` (the
/// hidden rows' layout, at least `hidden`'s length): the tables' own bf16 values, which is what `to_bf16` makes of
/// the exact f32 copies — the engine's bf16 copy of the hidden rows (`embed_segment_f32_mirrored`).
#[allow(clippy::too_many_arguments)]
pub fn embed_segment_mirrored(
    gpu: &Gpu,
    stream: &CudaStream,
    ids: &CudaSlice<u32>,
    embed: &CudaSlice<bf16>,
    memory: &CudaSlice<bf16>,
    (hidden, mirror): (&mut CudaSlice<f32>, &mut CudaSlice<bf16>),
    spans: &[Span],
    d: usize,
    vocab: usize,
) -> Result<(), KernelError> {
    let kernel = &EMBED_SEGMENT_F32_MIRRORED;
    if mirror.len() < hidden.len() {
        let why = format!(
            "a mirror of {} elements for hidden rows of {}",
            mirror.len(),
            hidden.len()
        );
        return Err(invalid(kernel.entry, why));
    }
    let out = Out {
        hidden_len: hidden.len(),
        hidden: addr_mut(hidden, stream),
        mirror: Some(addr_mut(mirror, stream)),
    };
    launch(gpu, stream, kernel, (ids, embed, memory), out, spans, (d, vocab))
}

/// Where a launch writes: the hidden rows (their length in elements) and, for the mirrored entry, the bf16 mirror
/// (as long as the hidden rows: its launcher checked).
struct Out {
    hidden: u64,
    hidden_len: usize,
    mirror: Option<u64>,
}

/// The launch of either entry: `kernel` is `embed_segment_<H>` (`out.mirror` None) or `embed_segment_f32_mirrored`.
fn launch(
    gpu: &Gpu,
    stream: &CudaStream,
    kernel: &Kernel,
    (ids, embed, memory): (&CudaSlice<u32>, &CudaSlice<bf16>, &CudaSlice<bf16>),
    out: Out,
    spans: &[Span],
    (d, vocab): (usize, usize),
) -> Result<(), KernelError> {
    let lens = EmbedLens {
        ids: ids.len(),
        embed: embed.len(),
        memory: memory.len(),
        hidden: out.hidden_len,
    };
    let cfg = validate(kernel.entry, &lens, spans, d, vocab)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (ids_ptr, embed_ptr, memory_ptr) = (addr(ids, stream), addr(embed, stream), addr(memory, stream));
    // All fit in i32: `validate` checked them.
    let (mem_rows, d, vocab) = ((memory.len() / d) as i32, d as i32, vocab as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&ids_ptr)
        .arg(&embed_ptr)
        .arg(&memory_ptr)
        .arg(&out.hidden);
    if let Some(mirror) = &out.mirror {
        launch.arg(mirror);
    }
    launch.arg(&mem_rows).arg(&d).arg(&vocab);
    // SAFETY: the arguments match `embed_segment_<H>(Spans, const unsigned* ids, const bf16* embed, const bf16*
    // memory, H* hidden, int mem_rows, int d, int vocab)` in order and size, the entry point picked by `H` (half::bf16
    // is the 2-byte __nv_bfloat16, f32 is float, and `hidden` holds H), or with `mirror` `embed_segment_f32_mirrored`,
    // whose bf16* mirror follows hidden (f32). `validate` checked every span: the ids it reads lie inside ids, the
    // T_s + M rows it writes lie inside hidden, and the mirror is at least as long and written at the same indices
    // (both borrowed mutably by the public launchers, so they alias none of the inputs), and no two spans write the
    // same rows; memory holds mem_rows · d elements and embed vocab · d, and the kernel reads embed only for ids below
    // vocab.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Buffer lengths of [`embed_segment`], in elements.
struct EmbedLens {
    ids: usize,
    embed: usize,
    memory: usize,
    hidden: usize,
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the launch's grid (one
/// block per written row: text and memory rows).
fn validate(k: &str, lens: &EmbedLens, spans: &[Span], d: usize, vocab: usize) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    check_dim(k, "vocab", vocab)?;
    if !lens.memory.is_multiple_of(d) {
        return Err(invalid(
            k,
            format!("memory holds {} elements, not [M, {d}]", lens.memory),
        ));
    }
    let mem_rows = lens.memory / d;
    check_rows(k, "embed", Rows { len: lens.embed, ld: d }, 0, vocab, 0, d)?;
    // The rows each span writes: text and memory rows.
    let written: Vec<Span> = spans
        .iter()
        .map(|s| Span {
            rows: s.rows + mem_rows,
            ..*s
        })
        .collect();
    for (s, w) in spans.iter().zip(&written) {
        check_rows(k, "ids", Rows { len: lens.ids, ld: 1 }, s.in_row, s.rows, 0, 1)?;
        check_rows(
            k,
            "hidden",
            Rows {
                len: lens.hidden,
                ld: d,
            },
            w.out_row,
            w.rows,
            0,
            d,
        )?;
    }
    check_disjoint_outputs(k, &written)?;
    Ok(row_grid(&written, THREADS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn entries_are_named_after_the_hidden_type() {
        let cu = include_str!("../../../cuda/embed.cu");
        crate::hidden::assert_entries("embed_segment", cu, [kernel::<bf16>().entry, kernel::<f32>().entry]);
        assert!(cu.contains(&format!("#define EMBED_THREADS {THREADS}\n")));
        assert!(cu.contains(&format!(" {}(", EMBED_SEGMENT_F32_MIRRORED.entry)));
        assert_eq!(f32::from(bf16::from_bits(BAD_ID_BF16_BITS)).to_bits(), BAD_ID_F32_BITS);
        assert_ne!(BAD_ID_F32_BITS, crate::poison::POISON_F32_BITS);
    }

    #[test]
    fn validate_checks_ids_rows_and_overlaps() {
        // d = 4, vocab 100, M = 3: 8 ids, hidden 10 rows.
        let lens = || EmbedLens {
            ids: 8,
            embed: 400,
            memory: 12,
            hidden: 40,
        };
        let v = |lens: &EmbedLens, spans: &[Span], vocab: usize| validate("k", lens, spans, 4, vocab);
        // 2 text + 3 memory rows each: rows 0..5 and 5..10.
        let ok = [span(0, 5, 2, 0), span(2, 0, 2, 0)];
        assert_eq!(v(&lens(), &ok, 100).unwrap().grid_dim, (5, 2, 1));
        assert!(
            rejected(v(&lens(), &[span(0, 2, 6, 0)], 100)),
            "memory rows past the end"
        );
        assert!(rejected(v(&lens(), &[span(6, 0, 3, 0)], 100)), "ids past the end");
        assert!(rejected(v(&lens(), &ok, 101)), "vocab beyond the table");
        assert!(
            rejected(v(&lens(), &[span(0, 0, 2, 0), span(2, 4, 1, 0)], 100)),
            "text and memory rows overlap"
        );
        assert!(
            rejected(v(&EmbedLens { memory: 13, ..lens() }, &ok, 100)),
            "memory not [M, d]"
        );
        assert!(
            rejected(v(&EmbedLens { hidden: 39, ..lens() }, &ok, 100)),
            "hidden short"
        );
        assert!(rejected(v(&lens(), &[], 100)), "no spans");
        assert!(rejected(v(&lens(), &ok, 0)), "vocab 0");
        assert!(rejected(validate("k", &lens(), &ok, 0, 100)), "d 0");
    }
}
