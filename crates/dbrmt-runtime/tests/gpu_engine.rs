//! The GPU engine on an H100: golden cases against the CPU model, diagonal against sequential bitwise, and a
//! Llama-3.2-1B-shaped model over 16K tokens (bitwise). Ignored without a GPU (`cargo test -- --ignored` on one).

use dbrmt_kernels::check::Check;
use dbrmt_runtime::selftest::{
    attention_wg3_bitwise_check, case_checks, decode_ahead_check, decode_norm_bitwise_check, fixture_cases,
    generated_cases, graphs_bitwise_check, llama_1b_bitwise_check, pdl_bitwise_check, qkv_rope_bitwise_check,
    two_streams_bitwise_check,
};
use dbrmt_runtime::{Device, Engine, EngineError};
use dbrmt_testkit::paths;

fn assert_passed(checks: Vec<Check>) {
    for check in &checks {
        println!("{check}");
    }
    assert!(checks.iter().all(Check::passed), "a check failed (above)");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn golden_cases_on_the_gpu() {
    for case in fixture_cases(&paths::fixtures()).expect("golden cases") {
        assert_passed(case_checks(case).expect("gpu run"));
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn generated_cases_on_the_gpu() {
    for case in generated_cases(5) {
        assert_passed(case_checks(case).expect("gpu run"));
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn llama_1b_shape_diagonal_equals_sequential_bitwise() {
    let check = llama_1b_bitwise_check(16 * 1024 - 300, 11).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn programmatic_dependent_launch_changes_no_bit() {
    let check = pdl_bitwise_check(8 * 1024 - 100, 12).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn decode_graphs_change_no_bit() {
    let check = graphs_bitwise_check(1000, 40, 13).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn greedy_decode_ahead_changes_no_bit() {
    let check = decode_ahead_check(1000, 40, 9, 15).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn decode_norms_inside_the_products_change_no_bit() {
    let check = decode_norm_bitwise_check(1000, 40, 14).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn qkv_rope_inside_the_product_changes_no_bit() {
    let check = qkv_rope_bitwise_check(4 * 1024 - 300, 16).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn two_stream_steps_change_no_bit() {
    let check = two_streams_bitwise_check(24 * 1024 - 300, 17).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_warpgroups_change_no_bit() {
    let check = attention_wg3_bitwise_check(8 * 1024 - 200, 19).expect("gpu run");
    println!("{check}");
    assert!(check.passed(), "{check}");
}

/// Runs everywhere: without a driver the error says so; with one, the GPU opens.
#[test]
fn cuda_without_a_driver_is_a_clear_error() {
    let model = dbrmt_formats::load_model(&paths::fixture("tiny-single-short"), &Default::default()).unwrap();
    match Engine::from_model(model, Device::Cuda(0)) {
        Err(EngineError::Kernel(dbrmt_kernels::KernelError::NoGpu)) => assert!(!dbrmt_kernels::driver_present()),
        Err(e) => assert!(
            dbrmt_kernels::driver_present(),
            "unexpected error without a driver: {e}"
        ),
        Ok(_) => assert!(dbrmt_kernels::driver_present()),
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn out_of_gpu_memory_is_a_clear_error() {
    let gpu = dbrmt_kernels::Gpu::new(0).expect("gpu");
    // 2^20 states of a 1B-shaped layer: 3.3 TB of f32, far beyond any GPU
    let err = dbrmt_model::gpu::DeviceState::zeros(gpu.stream(), 1 << 20, 384, 2048, true).unwrap_err();
    assert!(matches!(err, dbrmt_kernels::KernelError::OutOfMemory), "{err}");
    assert!(err.to_string().contains("out of GPU memory"), "{err}");
}

/// Weights streamed from the checkpoint to the GPU (no f32 host model) give the bits the in-memory upload gives,
/// and the identity the CPU model computes.
#[test]
#[ignore = "needs a CUDA GPU"]
fn streamed_weights_equal_the_in_memory_upload() {
    use dbrmt_model::LogitsMode;
    use dbrmt_runtime::ScheduleKind;
    for case in ["tiny-armt-names", "tiny-hf-tied-partial", "small-bf16"] {
        let dir = paths::fixture(case);
        let ids = dbrmt_formats::npy::read_ids(&dir.join("input_ids.npy")).unwrap();
        let model = dbrmt_formats::load_model(&dir, &Default::default()).unwrap();
        let cpu_identity = Engine::from_model(model.clone(), Device::Cpu)
            .unwrap()
            .info()
            .identity
            .clone();
        let in_memory = Engine::from_model(model, Device::Cuda(0)).unwrap();
        let streamed = Engine::load(&dir, &Default::default(), Device::Cuda(0)).unwrap();
        assert_eq!(streamed.info().identity, cpu_identity, "{case}");
        assert_eq!(in_memory.info().identity, cpu_identity, "{case}");
        let run = |e: &Engine| e.prefill(&ids, ScheduleKind::Diagonal, LogitsMode::All, true).unwrap();
        let (a, b) = (run(&in_memory), run(&streamed));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.logits), bits(&b.logits), "{case}: logits");
        assert_eq!(a.state, b.state, "{case}: state");
        println!("{case}: streamed = in-memory upload, bitwise; identity {cpu_identity}");
    }
}
