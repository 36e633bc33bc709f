//! `copy_rows_bf16` and `add_rows_f32` (`cuda/rows.cu`) against the host: a copy keeps the bits, an add is the one f32
//! add `y + x` the host makes; nothing outside the spans changes.

use half::bf16;

use super::harness::{bf16_normal, bitwise, changed_outside, f32_normal, fail_if, Block, Check, SplitMix64};
use crate::params::Span;
use crate::rows::{add_rows_f32, copy_rows_bf16, ADD_ROWS_F32, COPY_ROWS_BF16};
use crate::{Gpu, KernelError};

/// Spans of `rows[i]` rows, sources packed from row 1 (a gap after each), destinations after all sources in the
/// reverse order with two gap rows each: `(spans, rows the buffer needs)`.
fn spans_for(rows: &[usize]) -> (Vec<Span>, usize) {
    let mut spans: Vec<Span> = Vec::new();
    let mut r = 1;
    for &n in rows {
        spans.push(Span {
            in_row: r,
            rows: n,
            ..Span::default()
        });
        r += n + 1;
    }
    for s in spans.iter_mut().rev() {
        r += 2;
        s.out_row = r;
        r += s.rows;
    }
    (spans, r + 1)
}

/// Copies within one buffer of stride `d + 3`: every destination row holds its source row's bits, the rest of the
/// buffer is unchanged.
pub fn check_copy(gpu: &Gpu, seed: u64, rows: &[usize], d: usize) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let (spans, total) = spans_for(rows);
    let ld = d + 3;
    let host: Vec<bf16> = bf16_normal(&mut SplitMix64::new(seed), total * ld, 1.0)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let mut buf = stream.clone_htod(&host)?;
    copy_rows_bf16(gpu, stream, &mut buf, ld, &spans, d)?;
    let got = stream.clone_dtoh(&buf)?;
    let out: Vec<Block> = spans.iter().map(|s| Block::rows(ld, s.out_row, s.rows, 0, d)).collect();
    let want: Vec<bf16> = spans
        .iter()
        .flat_map(|s| Block::rows(ld, s.in_row, s.rows, 0, d).gather(&host))
        .collect();
    let got_rows: Vec<bf16> = out.iter().flat_map(|b| b.gather(&got)).collect();
    let shape = format!("rows={rows:?} d={d}");
    let check = bitwise(COPY_ROWS_BF16.entry, shape, &want, &got_rows);
    let strays = changed_outside(&got, &out, |i| host[i].to_f32().to_bits());
    Ok(fail_if(check, strays, "elements changed outside the destinations"))
}

/// `y += x` over the spans (x stride `d + 1`, y stride `d + 5`): each destination element is the host's `y + x`, bit
/// for bit; the rest of y is unchanged.
pub fn check_add(gpu: &Gpu, seed: u64, rows: &[usize], d: usize) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let (spans, total) = spans_for(rows);
    let (x_ld, y_ld) = (d + 1, d + 5);
    let mut rng = SplitMix64::new(seed);
    let x = f32_normal(&mut rng, total * x_ld, 1.0);
    let y0 = f32_normal(&mut rng, total * y_ld, 1.0);
    let (xd, mut yd) = (stream.clone_htod(&x)?, stream.clone_htod(&y0)?);
    add_rows_f32(gpu, stream, &xd, x_ld, &mut yd, y_ld, &spans, d)?;
    let got = stream.clone_dtoh(&yd)?;
    let out: Vec<Block> = spans
        .iter()
        .map(|s| Block::rows(y_ld, s.out_row, s.rows, 0, d))
        .collect();
    let mut want = Vec::new();
    for s in &spans {
        let xs = Block::rows(x_ld, s.in_row, s.rows, 0, d).gather(&x);
        let ys = Block::rows(y_ld, s.out_row, s.rows, 0, d).gather(&y0);
        want.extend(ys.iter().zip(&xs).map(|(y, x)| y + x));
    }
    let got_rows: Vec<f32> = out.iter().flat_map(|b| b.gather(&got)).collect();
    let shape = format!("rows={rows:?} d={d}");
    let check = bitwise(ADD_ROWS_F32.entry, shape, &want, &got_rows);
    let strays = changed_outside(&got, &out, |i| y0[i].to_bits());
    Ok(fail_if(check, strays, "elements changed outside the destinations"))
}

/// Decode rows of many requests (1 row each, 64 spans), a prompt's rows, and widths below and at the models'.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let decode = vec![1; 64];
    vec![
        check_copy(gpu, seed, &decode, 3072),
        check_copy(gpu, seed ^ 1, &[130, 1, 7], 960),
        check_copy(gpu, seed ^ 2, &[3, 2], 100),
        check_add(gpu, seed ^ 3, &decode, 2048),
        check_add(gpu, seed ^ 4, &[130, 1, 7], 576),
        check_add(gpu, seed ^ 5, &[3, 2], 100),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_keep_sources_and_destinations_apart() {
        let (spans, total) = spans_for(&[2, 1, 3]);
        for w in &spans {
            for r in &spans {
                assert!(w.out_row >= r.in_row + r.rows || r.in_row >= w.out_row + w.rows);
            }
            assert!(w.out_row + w.rows < total && w.in_row + w.rows < total);
        }
    }
}
