//! Hostile inputs against the `dbrmt` binary (issue #10), one module per class: sizes whose products would wrap,
//! sizes that are legal but absurd, inputs that used to hang, inputs that used to give wrong results with exit 0,
//! and messages that were unclear. Every case must end with exit 1 or 2, an `error:` line, no panic and no signal,
//! within 20 s, under `prlimit --as=8G` (an allocation abort would show as a signal).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dbrmt_formats::gguf::MetaValue;
use dbrmt_testkit::gguf::{tiny_llama, GgufBuilder};
use dbrmt_testkit::Scratch;
use serde_json::Value;

/// The address-space limit every case runs under.
const ADDRESS_SPACE: &str = "--as=8589934592";
/// No case may run longer.
const LIMIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    dbrmt_testkit::paths::repo_root()
}

fn fixture(name: &str) -> PathBuf {
    dbrmt_testkit::paths::fixture(name)
}

/// Runs `dbrmt args` under `prlimit --as=8G` (when prlimit is there), killed after [`LIMIT`].
fn dbrmt(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_dbrmt");
    let prlimit = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if prlimit {
        let mut c = Command::new("prlimit");
        c.args([ADDRESS_SPACE, "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dbrmt starts");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("waiting for dbrmt").is_some() {
            break;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "dbrmt {args:?} ran past {LIMIT:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("dbrmt output")
}

/// A clean refusal: exit 1 or 2 (no signal: an abort has no code), an `error:` line naming `needle`, no panic.
#[track_caller]
fn assert_refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "expected exit 1 or 2, got {:?}; stderr: {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "no error line: {err}");
    assert!(err.contains(needle), "error does not mention `{needle}`: {err}");
}

#[track_caller]
fn assert_ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "expected success, got {:?}; stderr: {err}",
        out.status
    );
    err.into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of a fixture's config and weights, with `edit` applied to the parsed config.json.
fn model_with_config(scratch: &Scratch, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = scratch.path().join("model");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(fixture(name).join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config: Value = serde_json::from_slice(&fs::read(fixture(name).join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

fn tiny_ids() -> PathBuf {
    fixture("tiny-armt-names").join("input_ids.npy")
}

/// `run` on a fixture whose config.json had `edit` applied.
fn run_edited(name: &str, edit: impl FnOnce(&mut Value)) -> Output {
    let scratch = Scratch::new("hostile-config");
    let dir = model_with_config(&scratch, name, edit);
    dbrmt(&[
        "run",
        "--model",
        s(&dir),
        "--input-ids",
        s(&tiny_ids()),
        "--device",
        "cpu",
    ])
}

/// Writes a GGUF file and returns its path.
fn gguf_file(scratch: &Scratch, g: &GgufBuilder) -> PathBuf {
    scratch.write("m.gguf", g.bytes())
}

const ARMT_FLAGS: [&str; 8] = [
    "--armt-init",
    "1",
    "--segment-size",
    "8",
    "--mem-tokens",
    "4",
    "--d-mem",
    "8",
];

/// `run` on a GGUF with the ARMT flags, `overrides` replacing some of them.
fn run_gguf(path: &Path, overrides: &[(&str, &str)]) -> Output {
    let mut args: Vec<String> = ARMT_FLAGS.iter().map(|a| a.to_string()).collect();
    for (flag, value) in overrides {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value.to_string();
    }
    let ids = Scratch::new("hostile-ids");
    let ids_path = write_ids(&ids, &[1, 2, 3, 4, 5]);
    let mut all = vec![
        "run",
        "--model",
        s(path),
        "--input-ids",
        s(&ids_path),
        "--device",
        "cpu",
    ];
    all.extend(args.iter().map(String::as_str));
    dbrmt(&all)
}

/// A `.npy` header dict padded as NumPy pads it, then `data`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn write_ids(scratch: &Scratch, ids: &[i32]) -> PathBuf {
    let data: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    scratch.write("ids.npy", npy("<i4", &format!("({},)", ids.len()), &data))
}

/// The safetensors header of `path` and where its data starts.
fn read_header(path: &Path) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn write_header(path: &Path, header: &serde_json::Map<String, Value>, data: &[u8]) {
    let json = serde_json::to_vec(header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    fs::write(path, out).unwrap();
}

/// Overwrites the first elements of tensor `name` (f32) in `dir/model.safetensors`.
fn poke_f32(dir: &Path, name: &str, values: &[f32]) {
    let path = dir.join("model.safetensors");
    let (header, mut data) = read_header(&path);
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    for (i, v) in values.iter().enumerate() {
        data[start + 4 * i..start + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    write_header(&path, &header, &data);
}

fn smollm2() -> Option<PathBuf> {
    dbrmt_testkit::paths::smollm2_gguf()
}

/// Class 1: sizes near 2^64 that used to wrap `2·ν·d_mem`, `T + M`, `heads·head_dim` into values that passed the shape
/// checks and panicked in the references: each is refused naming the field and its value, unwrapped.
mod wrapping {
    use super::*;

    #[test]
    fn config_sizes_near_2_64() {
        let cases: [(&str, &str, u64, &str); 6] = [
            ("armt", "nu", 1 << 63, "field `armt.nu` = 9223372036854775808"),
            ("armt", "d_mem", 1 << 62, "field `armt.d_mem` = 4611686018427387904"),
            (
                "armt",
                "segment_size",
                u64::MAX - 3,
                "field `armt.segment_size` = 18446744073709551612",
            ),
            (
                "armt",
                "num_mem_tokens",
                u64::MAX,
                "field `armt.num_mem_tokens` = 18446744073709551615",
            ),
            ("", "head_dim", 1 << 63, "field `head_dim`"),
            ("", "vocab_size", u64::MAX, "field `vocab_size` = 18446744073709551615"),
        ];
        for (object, key, value, needle) in cases {
            let out = run_edited("tiny-armt-names", |c| {
                let target = if object.is_empty() { c } else { &mut c[object] };
                target[key] = Value::from(value);
            });
            assert_refused(&out, needle);
        }
        // heads × head_dim: each bounded, so the product never wraps
        let out = run_edited("tiny-armt-names", |c| {
            c["num_attention_heads"] = Value::from(1u64 << 62);
            c["num_key_value_heads"] = Value::from(1u64 << 62);
        });
        assert_refused(&out, "field `num_attention_heads` = 4611686018427387904");
    }

    #[test]
    fn gguf_sizes_near_2_64() {
        let scratch = Scratch::new("hostile-gguf-wrap");
        for (key, value, needle) in [
            (
                "llama.attention.key_length",
                1u64 << 63,
                "`llama.attention.key_length` (or embedding_length / head_count) = 9223372036854775808",
            ),
            (
                "llama.embedding_length",
                u64::MAX,
                "`llama.embedding_length` = 18446744073709551615",
            ),
            (
                "llama.feed_forward_length",
                1 << 40,
                "`llama.feed_forward_length` = 1099511627776",
            ),
        ] {
            let mut g = tiny_llama(1, true).gguf;
            g.meta(key, MetaValue::U64(value));
            let out = run_gguf(&gguf_file(&scratch, &g), &[]);
            assert_refused(&out, needle);
        }
    }

    #[test]
    fn flags_near_2_64() {
        let scratch = Scratch::new("hostile-flag-wrap");
        let path = gguf_file(&scratch, &tiny_llama(1, true).gguf);
        for flag in ["--mem-tokens", "--segment-size", "--d-mem"] {
            let out = run_gguf(&path, &[(flag, "18446744073709551615")]);
            assert_refused(&out, &format!("{flag} = 18446744073709551615 is more than the limit"));
        }
        // the same flags in range run
        assert_ok(&run_gguf(&path, &[]));
    }
}

/// Every numeric GGUF key and ARMT flag over values from 0 to 2^64 − 1: each run ends cleanly — exit 0, or exit 1
/// or 2 with an error line — never a panic, a signal or a hang.
mod sweeps {
    use super::*;

    #[track_caller]
    fn assert_clean(out: &Output, label: &str) {
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(matches!(code, Some(0..=2)), "{label}: {:?}; stderr: {err}", out.status);
        assert!(!err.contains("panicked"), "{label}: panic: {err}");
        if code != Some(0) {
            assert!(
                err.lines().any(|l| l.starts_with("error: ")),
                "{label}: no error line: {err}"
            );
        }
    }

    #[test]
    fn gguf_metadata_values() {
        let scratch = Scratch::new("hostile-sweep-gguf");
        let keys = [
            "llama.block_count",
            "llama.embedding_length",
            "llama.feed_forward_length",
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "llama.attention.key_length",
            "llama.attention.value_length",
            "llama.rope.dimension_count",
            "llama.vocab_size",
            "llama.context_length",
            "general.alignment",
            "llama.attention.layer_norm_rms_epsilon",
            "llama.rope.freq_base",
        ];
        let values = [0, 1, 2, 3, 16, 1 << 31, (1 << 32) + 1, 1 << 63, u64::MAX];
        for key in keys {
            for v in values {
                let mut g = tiny_llama(1, true).gguf;
                g.meta(key, MetaValue::U64(v));
                assert_clean(&run_gguf(&gguf_file(&scratch, &g), &[]), &format!("{key} = {v}"));
            }
            for v in [f32::NAN, f32::INFINITY, -1.0, 1e-45, 3e38] {
                let mut g = tiny_llama(1, true).gguf;
                g.meta(key, MetaValue::F32(v));
                assert_clean(&run_gguf(&gguf_file(&scratch, &g), &[]), &format!("{key} = {v}"));
            }
            let mut g = tiny_llama(1, true).gguf;
            g.meta(key, MetaValue::Str("12".into()));
            assert_clean(&run_gguf(&gguf_file(&scratch, &g), &[]), &format!("{key} = \"12\""));
        }
    }

    #[test]
    fn armt_flag_values() {
        let scratch = Scratch::new("hostile-sweep-flags");
        let path = gguf_file(&scratch, &tiny_llama(1, true).gguf);
        let values = [
            "0",
            "1",
            "4096",
            "4097",
            "1048576",
            "1048577",
            "4294967297",
            "18446744073709551615",
        ];
        for flag in ["--segment-size", "--mem-tokens", "--d-mem"] {
            for v in values {
                // a 1M-token segment of 5 ids runs (the RoPE table of 2^20 positions is built once)
                assert_clean(&run_gguf(&path, &[(flag, v)]), &format!("{flag} {v}"));
            }
        }
        let out = run_gguf(&path, &[("--segment-size", "-3")]);
        assert_clean(&out, "--segment-size -3");
        assert_eq!(out.status.code(), Some(2), "a usage error");
    }
}

/// Class 2: sizes that are legal but absurd, which used to allocate tens of GB and abort: refused by the limits, or by
/// the memory estimate ("needs N GB, has M") before anything is allocated.
mod absurd_sizes {
    use super::*;

    #[test]
    fn beyond_the_limits() {
        let out = run_edited("tiny-armt-names", |c| c["armt"]["nu"] = Value::from(1_000_000));
        assert_refused(&out, "field `armt.nu` = 1000000 is more than the limit of 8");
        let scratch = Scratch::new("hostile-absurd");
        let path = gguf_file(&scratch, &tiny_llama(1, true).gguf);
        for (flag, value, needle) in [
            (
                "--d-mem",
                "1000000000",
                "--d-mem = 1000000000 is more than the limit of 4096",
            ),
            (
                "--segment-size",
                "1000000000",
                "--segment-size = 1000000000 is more than the limit of 1048576",
            ),
            (
                "--mem-tokens",
                "100000",
                "--mem-tokens = 100000 is more than the limit of 4096",
            ),
        ] {
            assert_refused(&run_gguf(&path, &[(flag, value)]), needle);
        }
    }

    #[test]
    fn logits_of_every_token_beyond_memory() {
        // 5M ids × 512 vocab × 4 bytes = 10 GB of logits, under an 8 GB address space
        let scratch = Scratch::new("hostile-logits-all");
        let ids: Vec<i32> = (0..5_000_000).map(|i| i % 512).collect();
        let ids = write_ids(&scratch, &ids);
        let out = dbrmt(&[
            "run",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&ids),
            "--logits",
            "all",
            "--device",
            "cpu",
        ]);
        assert_refused(&out, "not enough memory for prefilling 5000000 tokens");
        assert_refused(&out, "needs ");
    }

    #[test]
    fn a_segment_whose_attention_does_not_fit() {
        // T = 2^20 is within the limits, but 300K tokens in one segment need 300K² attention scores (360 GB)
        let scratch = Scratch::new("hostile-big-segment");
        let dir = model_with_config(&scratch, "tiny-armt-names", |c| {
            c["armt"]["segment_size"] = Value::from(1 << 20)
        });
        let ids: Vec<i32> = (0..300_000).map(|i| i % 512).collect();
        let ids = write_ids(&scratch, &ids);
        let out = dbrmt(&["run", "--model", s(&dir), "--input-ids", s(&ids), "--device", "cpu"]);
        assert_refused(&out, "not enough memory");
    }
}

/// Class 3: inputs that used to hang.
mod hangs {
    use super::*;

    #[test]
    fn a_billion_layers() {
        for layers in [1_000_000_000u64, 1 << 40] {
            let out = run_edited("tiny-armt-names", |c| c["num_hidden_layers"] = Value::from(layers));
            assert_refused(
                &out,
                &format!("field `num_hidden_layers` = {layers} is more than the limit of 1024"),
            );
        }
    }

    #[test]
    #[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
    fn generate_from_dev_zero() {
        let Some(model) = smollm2() else { return };
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--file",
            "/dev/zero",
            "--device",
            "cpu",
        ];
        args.extend(ARMT_FLAGS);
        let out = dbrmt(&args);
        assert_refused(&out, "byte 0 of the file: a NUL byte: binary data, not text");
    }

    #[test]
    #[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
    fn generate_from_random_bytes() {
        let Some(model) = smollm2() else { return };
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--file",
            "/dev/urandom",
            "--device",
            "cpu",
        ];
        args.extend(ARMT_FLAGS);
        let out = dbrmt(&args);
        assert_refused(&out, "is not UTF-8");
    }
}

/// Class 4: inputs that used to give a wrong result with exit 0.
mod silently_wrong {
    use super::*;

    const NORM: &str = "memory_cell.model.model.layers.1.layer.input_layernorm.weight";

    #[test]
    fn nan_and_inf_weights() {
        for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
            let scratch = Scratch::new("hostile-nan");
            let dir = model_with_config(&scratch, "tiny-armt-names", |_| {});
            poke_f32(&dir, NORM, &[1.0, value]);
            let out = dbrmt(&[
                "run",
                "--model",
                s(&dir),
                "--input-ids",
                s(&tiny_ids()),
                "--device",
                "cpu",
            ]);
            assert_refused(&out, &format!("tensor `{NORM}` holds {shown} at element 1"));
            assert_refused(&out, "model.safetensors");
        }
        // GGUF: an F32 norm, and an F16 projection whose bits are NaN
        let scratch = Scratch::new("hostile-nan-gguf");
        let mut g = tiny_llama(1, true).gguf;
        g.find("blk.1.ffn_norm.weight").data[8..12].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert_refused(
            &run_gguf(&gguf_file(&scratch, &g), &[]),
            "`blk.1.ffn_norm.weight` holds inf at element 2",
        );
        let mut g = tiny_llama(1, true).gguf;
        g.find("blk.0.attn_v.weight").data[0..2].copy_from_slice(&0x7e00u16.to_le_bytes());
        assert_refused(
            &run_gguf(&gguf_file(&scratch, &g), &[]),
            "`blk.0.attn_v.weight` holds NaN",
        );
    }

    #[test]
    fn logits_that_overflow_are_reported() {
        // finite weights whose products overflow: the logits are inf, which is an error, not output
        let scratch = Scratch::new("hostile-overflow");
        let dir = model_with_config(&scratch, "tiny-armt-names", |_| {});
        poke_f32(&dir, "memory_cell.model.model.norm.weight", &[3e38; 128]);
        let out = dbrmt(&[
            "run",
            "--model",
            s(&dir),
            "--input-ids",
            s(&tiny_ids()),
            "--device",
            "cpu",
        ]);
        assert_refused(&out, "non-finite logit");
    }

    #[test]
    fn rms_norm_eps_that_overflows_f32() {
        for eps in [1e39, 1e300, 2.0] {
            let out = run_edited("tiny-armt-names", |c| c["rms_norm_eps"] = Value::from(eps));
            assert_refused(&out, "field `rms_norm_eps`");
        }
        let scratch = Scratch::new("hostile-eps-gguf");
        let mut g = tiny_llama(1, true).gguf;
        g.meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F64(1e39));
        assert_refused(
            &run_gguf(&gguf_file(&scratch, &g), &[]),
            "`llama.attention.layer_norm_rms_epsilon`",
        );
    }

    #[test]
    fn fewer_layers_in_the_config_than_in_the_checkpoint() {
        let out = run_edited("tiny-armt-names", |c| c["num_hidden_layers"] = Value::from(3));
        assert_refused(&out, "holds layer 3");
        assert_refused(&out, "num_hidden_layers = 3");
        let scratch = Scratch::new("hostile-blocks");
        let mut g = tiny_llama(1, true).gguf;
        g.meta("llama.block_count", MetaValue::U32(1));
        assert_refused(
            &run_gguf(&gguf_file(&scratch, &g), &[]),
            "`llama.block_count` = 1 but the file holds tensors of 2 layers",
        );
    }

    #[test]
    fn aliased_gguf_tensors() {
        let scratch = Scratch::new("hostile-alias");
        let mut g = tiny_llama(1, true).gguf;
        // the second layer's norm stored at the first layer's norm's data (same size: aliased)
        let offsets = tensor_offsets(&g);
        let target = offsets["blk.0.attn_norm.weight"];
        g.find("blk.1.attn_norm.weight").offset_override = Some(target);
        assert_refused(&run_gguf(&gguf_file(&scratch, &g), &[]), "overlap");
    }

    /// Data offsets the builder lays out (the same rule as the writer: each tensor padded to the alignment).
    fn tensor_offsets(g: &GgufBuilder) -> std::collections::BTreeMap<String, u64> {
        let mut at = 0u64;
        let mut out = std::collections::BTreeMap::new();
        for t in &g.tensors {
            out.insert(t.name.clone(), at);
            at += (t.data.len() as u64).next_multiple_of(g.alignment as u64);
        }
        out
    }

    /// Saves a state from the tiny fixture (prompt of 160 ids: 4 closed segments and 32 open ids).
    fn saved_state(scratch: &Scratch) -> PathBuf {
        let state = scratch.path().join("state.safetensors");
        let out = dbrmt(&[
            "generate",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&tiny_ids()),
            "--max-new-tokens",
            "1",
            "--device",
            "cpu",
            "--save-state",
            s(&state),
        ]);
        assert_ok(&out);
        state
    }

    fn load_state(state: &Path) -> Output {
        dbrmt(&[
            "generate",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&tiny_ids()),
            "--max-new-tokens",
            "1",
            "--device",
            "cpu",
            "--load-state",
            s(state),
        ])
    }

    #[test]
    fn edited_saved_states() {
        let scratch = Scratch::new("hostile-state");
        let state = saved_state(&scratch);
        assert_ok(&load_state(&state));
        let (header, data) = read_header(&state);
        // the segment count edited
        let mut h = header.clone();
        h["__metadata__"]["dbrmt.segments"] = Value::from("7");
        write_header(&state, &h, &data);
        assert_refused(&load_state(&state), "checksum mismatch");
        // an absurd or negative segment count
        for bad in ["-1", "18446744073709551615"] {
            h["__metadata__"]["dbrmt.segments"] = Value::from(bad);
            write_header(&state, &h, &data);
            assert_refused(&load_state(&state), "bad `dbrmt.segments`");
        }
        // an open id outside the vocabulary
        let mut h = header.clone();
        h["__metadata__"]["dbrmt.open_ids"] = Value::from("1,2,70000");
        write_header(&state, &h, &data);
        assert_refused(
            &load_state(&state),
            "open id 70000 (at 2) is outside the model's vocabulary",
        );
        // a value of A edited
        let mut d = data.clone();
        let a0 = header["layers.0.A"]["data_offsets"][0].as_u64().unwrap() as usize;
        d[a0..a0 + 4].copy_from_slice(&1.5f32.to_le_bytes());
        write_header(&state, &header, &d);
        assert_refused(&load_state(&state), "checksum mismatch");
        // NaN in A, in a file without a checksum (what an older dbrmt wrote)
        let mut h = header.clone();
        h["__metadata__"].as_object_mut().unwrap().remove("dbrmt.checksum");
        d[a0..a0 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        write_header(&state, &h, &d);
        assert_refused(&load_state(&state), "`layers.0.A` holds NaN at element 0");
        // a file without a checksum whose contents hold: accepted, with a warning
        write_header(&state, &h, &data);
        let err = assert_ok(&load_state(&state));
        assert!(err.contains("warning:") && err.contains("no checksum"), "{err}");
    }

    #[test]
    fn outputs_that_cannot_be_written() {
        // a state saved over a directory: refused, nothing replaced, no temporary left behind
        let scratch = Scratch::new("hostile-state-atomic");
        let target = scratch.path().join("taken");
        fs::create_dir_all(&target).unwrap();
        let out = dbrmt(&[
            "generate",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&tiny_ids()),
            "--max-new-tokens",
            "1",
            "--device",
            "cpu",
            "--save-state",
            s(&target),
        ]);
        assert_refused(&out, "taken");
        assert!(target.is_dir());
        let leftovers: Vec<_> = fs::read_dir(scratch.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // logits dumped to a full device: an error, and /dev/full is still a device
        let out = dbrmt(&[
            "run",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&tiny_ids()),
            "--device",
            "cpu",
            "--dump-logits",
            "/dev/full",
        ]);
        assert_refused(&out, "/dev/full");
        assert!(!Path::new("/dev/full").is_file());
    }

    #[test]
    fn a_vocabulary_without_the_byte_tokens() {
        // the tiny GGUF's vocabulary is t0 … t95: it cannot spell "hi", which would be dropped without a word
        let scratch = Scratch::new("hostile-bytes");
        let path = gguf_file(&scratch, &tiny_llama(1, true).gguf);
        let out = dbrmt(&["tokenize", "--model", s(&path), "--text", "hi"]);
        assert_refused(&out, "the vocabulary has no token for byte");
    }
}

/// Class 5: messages that were unclear: positions, pairing, files, escapes.
mod messages {
    use super::*;

    /// The 256 byte tokens of GPT-2's alphabet, as a vocabulary.
    fn byte_vocab() -> Vec<String> {
        let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let mut shifted = 0;
        (0u32..256)
            .map(|b| {
                let code = if printable(b) {
                    b
                } else {
                    shifted += 1;
                    255 + shifted
                };
                char::from_u32(code).unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn a_tokenizer_larger_than_the_model_is_refused_at_load() {
        // 256 byte tokens for a model of 96 ids: found when the two are paired, before any work
        let scratch = Scratch::new("hostile-pairing");
        let mut g = tiny_llama(1, true).gguf;
        let tokens = byte_vocab();
        g.meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(tokens.iter().cloned().map(MetaValue::Str).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(tokens.iter().map(|_| MetaValue::I32(1)).collect()),
        )
        .meta("tokenizer.ggml.merges", MetaValue::Array(Vec::new()));
        let path = gguf_file(&scratch, &g);
        let out = dbrmt(&["tokenize", "--model", s(&path), "--text", "hi"]);
        assert_refused(
            &out,
            "the tokenizer's ids go up to 256 but the model's vocabulary has 96 ids",
        );
        let mut args = vec!["generate", "--model", s(&path), "--prompt", "hi", "--device", "cpu"];
        args.extend(ARMT_FLAGS);
        let out = dbrmt(&args);
        assert_refused(&out, "do not belong together");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("loaded "),
            "refused before loading the model"
        );
    }

    #[test]
    fn npy_headers_are_not_echoed_raw() {
        let scratch = Scratch::new("hostile-npy");
        let evil = scratch.write("ids.npy", npy("<\x1b[2J\x1b[31mi4", "(3,)", &[0; 12]));
        let out = dbrmt(&[
            "run",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&evil),
        ]);
        assert_refused(&out, "\\x1b[2J");
        assert!(!out.stderr.contains(&0x1b), "a raw escape reached the terminal");
        // a header that is not even text
        let mut bytes = npy("<i4", "(3,)", &[0; 12]);
        bytes[12] = 0x9b; // a C1 control byte (CSI) in place of a quote
        let evil = scratch.write("bad.npy", bytes);
        let out = dbrmt(&[
            "run",
            "--model",
            s(&fixture("tiny-armt-names")),
            "--input-ids",
            s(&evil),
        ]);
        assert_refused(&out, "header is not text");
        assert!(!out.stderr.contains(&0x9b));
    }

    #[test]
    fn escapes_in_names_and_values_are_not_echoed_raw() {
        let out = run_edited("tiny-armt-names", |c| c["hidden_act"] = Value::from("\u{1b}[2Jgelu"));
        assert_refused(&out, "hidden_act");
        assert!(!out.stderr.contains(&0x1b), "a raw escape reached the terminal");
        let scratch = Scratch::new("hostile-escape-gguf");
        let mut g = tiny_llama(1, true).gguf;
        g.meta(
            "general.architecture",
            MetaValue::Str("\u{1b}]0;pwned\u{7}llama".into()),
        );
        let out = run_gguf(&gguf_file(&scratch, &g), &[]);
        assert_refused(&out, "is not supported");
        assert!(!out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07));
    }

    #[test]
    fn a_shard_that_leads_out_of_the_model_directory() {
        let scratch = Scratch::new("hostile-shard");
        let dir = scratch.path().join("model");
        fs::create_dir_all(&dir).unwrap();
        fs::copy(fixture("tiny-armt-names").join("config.json"), dir.join("config.json")).unwrap();
        let outside = scratch.path().join("elsewhere.safetensors");
        fs::copy(fixture("tiny-armt-names").join("model.safetensors"), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("model-00001-of-00001.safetensors")).unwrap();
        let (header, _) = read_header(&outside);
        let map: serde_json::Map<String, Value> = header
            .keys()
            .filter(|k| *k != "__metadata__")
            .map(|k| (k.clone(), Value::from("model-00001-of-00001.safetensors")))
            .collect();
        fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::json!({ "weight_map": map }).to_string(),
        )
        .unwrap();
        let out = dbrmt(&[
            "run",
            "--model",
            s(&dir),
            "--input-ids",
            s(&tiny_ids()),
            "--device",
            "cpu",
        ]);
        assert_refused(&out, "the shard leads out of the model directory");
        assert_refused(&out, "model-00001-of-00001.safetensors");
    }

    #[test]
    #[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
    fn positions_are_positions_in_the_file() {
        let Some(model) = smollm2() else { return };
        let scratch = Scratch::new("hostile-positions");
        // 200 KB of text (several pieces), then a byte that is not UTF-8
        let mut text = "All work and no play. ".repeat(10_000).into_bytes();
        let at = text.len();
        text.extend_from_slice(b"\xff tail");
        let file = scratch.write("text.txt", &text);
        for chat in [false, true] {
            let mut args = vec!["generate", "--model", s(&model), "--file", s(&file), "--device", "cpu"];
            args.extend(ARMT_FLAGS);
            if chat {
                args.push("--chat");
            }
            let out = dbrmt(&args);
            assert_refused(&out, &format!("byte {at} of the file: 0xff is not UTF-8"));
            assert_refused(&out, s(&file));
        }
    }

    #[test]
    #[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
    fn logits_of_every_token_of_a_real_vocabulary() {
        // --logits all on 50K ids of SmolLM2 (49152 ids): 9.8 GB of logits under an 8 GB address space
        let Some(model) = smollm2() else { return };
        let scratch = Scratch::new("hostile-smollm2-all");
        let ids: Vec<i32> = (0..50_000).map(|i| i % 49152).collect();
        let ids = write_ids(&scratch, &ids);
        let mut args = vec![
            "run",
            "--model",
            s(&model),
            "--input-ids",
            s(&ids),
            "--logits",
            "all",
            "--device",
            "cpu",
        ];
        args.extend(ARMT_FLAGS);
        let out = dbrmt(&args);
        assert_refused(&out, "not enough memory for prefilling 50000 tokens");
    }
}

#[test]
fn the_repository_is_where_the_tests_think() {
    assert!(repo().join("testdata/fixtures").is_dir());
}
