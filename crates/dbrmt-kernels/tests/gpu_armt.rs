//! The ARMT memory kernels (DPFP, read apply, write prep, z update) on a GPU against the CPU reference, and their
//! launchers' refusal of spans that do not fit.

use dbrmt_kernels::armt_read::armt_read_apply;
use dbrmt_kernels::armt_write::{armt_write_prep, armt_z_update, WritePrep};
use dbrmt_kernels::check::{self, assert_suite_passes};
use dbrmt_kernels::dpfp::dpfp;
use dbrmt_kernels::params::Span;
use dbrmt_kernels::{Gpu, KernelError};

#[test]
#[ignore = "needs a CUDA GPU"]
fn dpfp_matches_reference() {
    assert_suite_passes(check::dpfp::checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_read_matches_reference() {
    assert_suite_passes(check::armt_read::checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_read_fused_sm90_matches_reference() {
    assert_suite_passes(check::armt_read_fused_sm90::checks);
}

/// The engine's read: the state split once (`armt_state_split`, bitwise against its reference), then read by the
/// pre-split entries (against the reference, grouping and row position bitwise; its bytes equal to the f32 state's
/// at every width are in the column-tile test below).
#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_read_fused_sm90_of_a_pre_split_state_matches_reference() {
    assert_suite_passes(check::armt_state_split::checks);
    assert_suite_passes(check::armt_read_fused_sm90::checks_pre_split);
}

/// The write's update with the new A's split form from its epilogue (`gemm_sm90_tn_f32_f32_f32_tf32x3_split`): A bitwise
/// the plain update's and within tolerance of the reference, the split bitwise the reference split of the A written.
#[test]
#[ignore = "needs a CUDA GPU"]
fn memory_update_writes_the_split_of_the_new_state() {
    assert_suite_passes(check::armt_state_split::update_split_checks);
}

/// The write's prep in the `kφ·A` product's epilogue (`armt_write_features_f32` + `gemm_sm90_nn_f32_f32_f32_tf32x3_prep`):
/// kφ, u and γ bitwise the three launches it replaces, and against the reference.
#[test]
#[ignore = "needs a CUDA GPU"]
fn write_prep_in_the_product_matches_the_three_launches() {
    assert_suite_passes(check::armt_write::prep_in_product_checks);
}

/// The fused read's narrow column tiles (decode steps): every column tile width gives the same bytes, and a decoded
/// row (narrow tiles) has the bits of the same row inside its 1152-row cell (also in the suite above).
#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_read_fused_sm90_bytes_do_not_depend_on_the_column_tile() {
    assert_suite_passes(check::armt_read_fused_sm90::width_checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_read_fused_sm90_tf32x3_matches_reference() {
    assert_suite_passes(check::armt_read_fused_sm90::checks_tf32x3);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn armt_write_matches_reference() {
    assert_suite_passes(check::armt_write::checks);
}

fn rejected(r: Result<(), KernelError>) -> bool {
    matches!(r, Err(KernelError::InvalidArgument { .. }))
}

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

/// A bad span is an `InvalidArgument` before anything is launched, never a device fault; a good one launches.
#[test]
#[ignore = "needs a CUDA GPU"]
fn launchers_reject_spans_that_do_not_fit() {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let s = gpu.stream();
    let (d, d_mem, nu) = (8, 2, 3);
    let dk = 2 * nu * d_mem;
    let rows = 4;
    let f32s = |n: usize| s.alloc_zeros::<f32>(n).unwrap();

    // DPFP: u [4, d_mem], phi [4, D].
    let u = f32s(rows * d_mem);
    let mut phi = f32s(rows * dk);
    let good = [span(0, 0, rows, 0, 0, false)];
    assert!(dpfp(&gpu, s, &u, d_mem, 0, &mut phi, dk, &good, d_mem, nu).is_ok());
    assert!(rejected(dpfp(
        &gpu,
        s,
        &u,
        d_mem,
        0,
        &mut phi,
        dk,
        &[span(1, 0, rows, 0, 0, false)],
        d_mem,
        nu
    )));
    assert!(rejected(dpfp(&gpu, s, &u, d_mem, 1, &mut phi, dk, &good, d_mem, nu)));
    assert!(rejected(dpfp(
        &gpu,
        s,
        &u,
        d_mem,
        0,
        &mut phi,
        dk,
        &good,
        d_mem,
        nu + 1
    )));

    // Read apply: num [4, d], phi [4, D], z [2, D], h [4, d].
    let (num, z) = (f32s(rows * d), f32s(2 * dk));
    let mut h = s.alloc_zeros::<half::bf16>(rows * d).unwrap();
    let read = |h: &mut _, spans: &[Span]| armt_read_apply(&gpu, s, &num, &phi, &z, h, d, spans, d, dk);
    assert!(read(&mut h, &[span(0, 0, rows, 0, 1, false)]).is_ok());
    assert!(
        rejected(read(&mut h, &[span(0, 0, rows, 0, 2, false)])),
        "state out of range"
    );
    assert!(
        rejected(read(&mut h, &[span(0, 1, rows, 0, 0, false)])),
        "h rows past the end"
    );
    assert!(
        rejected(read(&mut h, &[span(0, 0, 2, 0, 0, false), span(2, 1, 2, 0, 1, false)])),
        "overlap"
    );
    assert!(rejected(read(&mut h, &[])), "no spans");
    assert!(
        rejected(read(&mut h, &vec![span(0, 0, 0, 0, 0, false); 65])),
        "too many spans"
    );
    // f32 hidden rows: the same checks.
    let mut h32 = f32s(rows * d);
    let read32 = |h: &mut _, spans: &[Span]| armt_read_apply(&gpu, s, &num, &phi, &z, h, d, spans, d, dk);
    assert!(read32(&mut h32, &[span(0, 0, rows, 0, 1, false)]).is_ok());
    assert!(
        rejected(read32(&mut h32, &[span(0, 1, rows, 0, 0, false)])),
        "f32 h rows past the end"
    );
    assert!(
        rejected(read32(&mut h32, &[span(0, 0, rows, 0, 2, false)])),
        "f32 h: state out of range"
    );

    // Write prep and z update: kvb [4, d_mem + d + 1], kphi [4, D], ka [4, d], z [2, D], b_beta [3].
    let kvb_ld = d_mem + d + 1;
    let (kvb, ka, b_beta) = (f32s(rows * kvb_ld), f32s(rows * d), f32s(3));
    let (mut uu, mut gamma) = (f32s(rows * d), f32s(rows));
    let inputs = WritePrep {
        kvb: &kvb,
        kvb_ld,
        v_col: d_mem,
        kphi: &phi,
        ka: &ka,
        z: &z,
        b_beta: &b_beta,
        d,
        d_key: dk,
        correction: true,
    };
    let mut prep = |spans: &[Span]| armt_write_prep(&gpu, s, &inputs, &mut uu, &mut gamma, spans);
    assert!(prep(&[span(0, 0, rows, 2, 1, false)]).is_ok());
    assert!(rejected(prep(&[span(0, 0, rows, 3, 1, false)])), "layer out of range");
    assert!(rejected(prep(&[span(0, 0, rows, 0, 2, false)])), "state out of range");
    assert!(
        rejected(prep(&[span(1, 0, rows, 0, 0, false)])),
        "input rows past the end"
    );
    assert!(
        rejected(prep(&[span(0, 0, 2, 0, 0, false), span(2, 1, 2, 0, 1, false)])),
        "overlap"
    );
    let mut zz = f32s(2 * dk);
    let mut zup = |spans: &[Span]| armt_z_update(&gpu, s, &phi, &gamma, &mut zz, spans, dk);
    assert!(zup(&[span(0, 0, 2, 0, 0, false), span(2, 2, 2, 0, 1, false)]).is_ok());
    assert!(
        rejected(zup(&[span(0, 0, 2, 0, 1, false), span(2, 2, 2, 0, 1, false)])),
        "shared state"
    );
    assert!(rejected(zup(&[span(0, 0, rows, 0, 2, false)])), "state out of range");
    assert!(
        rejected(zup(&[span(0, 1, rows, 0, 0, false)])),
        "gamma rows past the end"
    );
    s.synchronize().unwrap();
}
