//! Launcher of `cuda/embed.cu`: the input rows of the segments of one step, `[Emb(ids); memory]`.
//!
//! For each span, its `rows` (= T_s, the segment's text tokens, the last segment's may be short) token ids starting
//! at `ids[in_row]` become embedding rows `out_row..out_row + T_s` of the hidden buffer, followed by the `M`
//! memory-token rows (the same for every segment) at `out_row + T_s..out_row + T_s + M`. A copy: the output holds
//! exactly the tables' values (bf16 tables; hidden rows bf16 or f32, [`HiddenElem`], and bf16 → f32 is exact). The CPU
//! reference is [`crate::reference::embed::segment_input`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const EMBED_SEGMENT_BF16: Kernel = Kernel {
    file: "embed",
    cubin: cubins::EMBED,
    entry: "embed_segment_bf16",
};
const EMBED_SEGMENT_F32: Kernel = Kernel {
    file: "embed",
    cubin: cubins::EMBED,
    entry: "embed_segment_f32",
};

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
/// [`BAD_ID_F32_BITS`]), never an
/// out-of-bounds read. Spans that do not fit their buffers or write overlapping rows are a
/// [`KernelError::InvalidArgument`].
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
    let kernel = kernel::<H>();
    let name = kernel.entry;
    check_groups(name, spans.len())?;
    if d == 0 || d > i32::MAX as usize || vocab == 0 || vocab > i32::MAX as usize {
        return Err(invalid(name, format!("d = {d}, vocab = {vocab}")));
    }
    if !memory.len().is_multiple_of(d) {
        return Err(invalid(
            name,
            format!("memory holds {} elements, not [M, {d}]", memory.len()),
        ));
    }
    let mem_rows = memory.len() / d;
    check_rows(name, "embed", embed.len(), 0, vocab, d, 0, d)?;
    // The rows each span writes: text and memory rows.
    let written: Vec<Span> = spans
        .iter()
        .map(|s| Span {
            rows: s.rows + mem_rows,
            ..*s
        })
        .collect();
    for (s, w) in spans.iter().zip(&written) {
        check_rows(name, "ids", ids.len(), s.in_row, s.rows, 1, 0, 1)?;
        check_rows(name, "hidden", hidden.len(), w.out_row, w.rows, d, 0, d)?;
    }
    check_disjoint_outputs(name, &written)?;
    let max_rows = written.iter().map(|s| s.rows).max().unwrap_or(0);
    if max_rows == 0 {
        return Ok(());
    }

    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (ids_ptr, embed_ptr, memory_ptr) = (addr(ids, stream), addr(embed, stream), addr(memory, stream));
    let hidden_ptr = addr_mut(hidden, stream);
    let (mem_rows, d, vocab) = (mem_rows as i32, d as i32, vocab as i32);
    let cfg = LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&params)
        .arg(&ids_ptr)
        .arg(&embed_ptr)
        .arg(&memory_ptr)
        .arg(&hidden_ptr)
        .arg(&mem_rows)
        .arg(&d)
        .arg(&vocab);
    // SAFETY: the arguments match `embed_segment_<H>(Spans, const unsigned* ids, const bf16* embed, const bf16*
    // memory, H* hidden, int mem_rows, int d, int vocab)` in order and size, the entry point picked by `H` (half::bf16
    // is the 2-byte __nv_bfloat16, f32 is float, and `hidden` holds H). Every span was checked above: the ids
    // it reads lie inside ids, the T_s + M rows it writes lie inside hidden (borrowed mutably, so it aliases none of
    // the inputs) and no two spans write the same rows; memory holds mem_rows · d elements and embed vocab · d, and
    // the kernel reads embed only for ids below vocab.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_after_the_hidden_type() {
        let cu = include_str!("../../../cuda/embed.cu");
        crate::hidden::assert_entries("embed_segment", cu, [kernel::<bf16>().entry, kernel::<f32>().entry]);
        assert!(cu.contains(&format!("#define EMBED_THREADS {THREADS}\n")));
        assert_eq!(f32::from(bf16::from_bits(BAD_ID_BF16_BITS)).to_bits(), BAD_ID_F32_BITS);
        assert_ne!(BAD_ID_F32_BITS, crate::poison::POISON_F32_BITS);
    }
}
