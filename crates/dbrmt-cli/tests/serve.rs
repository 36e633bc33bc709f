//! `dbrmt serve` end to end on a tiny ARMT fixture (no tokenizer: token-id prompts; CPU; seconds): the real binary
//! on a loopback port, spoken to over HTTP. Greedy output matches `dbrmt generate`; streaming matches the whole
//! answer; concurrent clients get what they get alone; bad input gets a 4xx and the server keeps serving; a client
//! that leaves frees its slot; stored states continue exactly; metrics move. The SmolLM2 tests (text, chat, the
//! `openai` Python client) are in `serve_smollm2.rs`.

mod serve_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dbrmt_formats::{SavedState, StateExpect};
use serde_json::{json, Value};
use serve_support::{metric, read_first_event, repo, stream_token_ids, token_ids, Server};

fn tiny() -> String {
    repo()
        .join("testdata/fixtures/tiny-armt-names")
        .to_string_lossy()
        .into_owned()
}

/// A server on the tiny model (segments of 32 tokens) with `extra` flags.
fn serve(extra: &[&str]) -> Server {
    let model = tiny();
    let mut args = vec!["--model", model.as_str(), "--device", "cpu"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `n` prompt ids in the tiny vocabulary (512), different for each `k`.
fn ids(n: usize, k: u64) -> Vec<u64> {
    (0..n as u64).map(|i| (i * 37 + k * 101 + 5) % 512).collect()
}

fn greedy(prompt: &[u64], max_tokens: usize) -> Value {
    json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "return_token_ids": true})
}

/// `dbrmt generate` on the same model and ids: the ids it prints.
fn generate_cli(prompt: &[u64], max_tokens: usize) -> Vec<u64> {
    let dir = std::env::temp_dir().join(format!("dbrmt-serve-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids.npy");
    write_ids_npy(&path, prompt);
    let out = Command::new(env!("CARGO_BIN_EXE_dbrmt"))
        .args(["generate", "--model", &tiny(), "--device", "cpu", "--input-ids"])
        .arg(&path)
        .args(["--max-new-tokens", &max_tokens.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn write_ids_npy(path: &Path, ids: &[u64]) {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        ids.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for &id in ids {
        bytes.extend((id as i64).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn greedy_output_matches_generate_and_streaming_matches_the_whole_answer() {
    let server = serve(&[]);
    let prompt = ids(150, 1); // 4 full segments and a partial one
    let whole = server.complete(&greedy(&prompt, 40)); // decoding closes a segment too
    let got = token_ids(&whole);
    assert_eq!(got.len(), 40);
    assert_eq!(got, generate_cli(&prompt, 40));
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["prompt_tokens"], 150);
    assert_eq!(whole["usage"]["completion_tokens"], 40);

    let mut body = greedy(&prompt, 40);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = server.stream("/v1/completions", &body);
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    assert_eq!(stream_token_ids(&events), got);
    let last = &events[events.len() - 3];
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(events[events.len() - 2]["usage"], whole["usage"]);
    // the same through the chat-less endpoint's single-element list form
    let nested = server.complete(&json!({"prompt": [prompt], "max_tokens": 40, "temperature": 0,
                                         "return_token_ids": true}));
    assert_eq!(token_ids(&nested), got);
}

#[test]
fn concurrent_clients_each_get_what_they_get_alone() {
    let server = serve(&["--max-concurrent", "8"]);
    // different lengths (one to several segments), greedy and seeded sampling
    let requests: Vec<Value> = (0..8u64)
        .map(|k| {
            let mut r = greedy(&ids(20 + 29 * k as usize, k), 24);
            if k % 2 == 1 {
                r["temperature"] = json!(0.9);
                r["top_p"] = json!(0.95);
                r["seed"] = json!(1000 + k);
            }
            r
        })
        .collect();
    let alone: Vec<Vec<u64>> = requests.iter().map(|r| token_ids(&server.complete(r))).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| s.spawn(|| token_ids(&server.complete(r))))
            .collect();
        for (k, (h, want)) in handles.into_iter().zip(&alone).enumerate() {
            assert_eq!(&h.join().unwrap(), want, "client {k}");
        }
    });
    // every one of the 16 requests finished (`requests_share_the_engines_steps` shows that they share steps)
    assert_eq!(server.metric("dbrmt_requests_total{outcome=\"length\"}"), 16.0);
}

/// Continuous batching: a request that arrives while another runs joins the engine's packed schedule at the next
/// step, so the two share steps (a running generation has a cell in every step) — and it still gets exactly what
/// it gets alone.
#[test]
fn requests_share_the_engines_steps() {
    let server = serve(&["--max-concurrent", "4", "--max-tokens", "1000000"]);
    let prompt = ids(100, 9);
    let alone = token_ids(&server.complete(&greedy(&prompt, 30)));
    assert_eq!(server.metric("dbrmt_engine_max_requests_per_step"), 1.0);
    let steps_alone = server.metric("dbrmt_engine_steps_total");
    assert!(steps_alone > 30.0, "{steps_alone}");
    assert_eq!(server.metric("dbrmt_engine_request_steps_total"), steps_alone);

    let endless = json!({"prompt": ids(40, 3), "max_tokens": 1_000_000, "stream": true});
    let (status, mut running) = server.open_stream("/v1/completions", &endless);
    assert_eq!(status, 200);
    read_first_event(&mut running);
    // (steps and request-steps from one page: the server updates them together)
    let totals = || {
        let text = server.get("/metrics").1;
        (
            metric(&text, "dbrmt_engine_steps_total"),
            metric(&text, "dbrmt_engine_request_steps_total"),
        )
    };
    let (steps, shared) = totals();
    assert_eq!(token_ids(&server.complete(&greedy(&prompt, 30))), alone);
    // every step of the second request also carried the first (a generation has a cell in every step), and it
    // had a cell in at least as many steps as alone: that many steps held two requests
    let (steps_now, shared_now) = totals();
    let (more_steps, more_requests) = (steps_now - steps, shared_now - shared);
    assert!(
        more_requests - more_steps >= steps_alone,
        "{more_steps} steps, {more_requests} request-steps"
    );
    assert_eq!(server.metric("dbrmt_engine_max_requests_per_step"), 2.0);
    assert_eq!(server.metric("dbrmt_num_requests_running"), 1.0);
    drop(running);
}

#[test]
fn bad_input_gets_a_4xx_with_an_error_body_and_the_server_keeps_serving() {
    let server = serve(&["--max-body-mb", "1", "--max-tokens", "64"]);
    let good = greedy(&ids(10, 0), 3);
    let want = token_ids(&server.complete(&good));
    let big = format!("{{\"prompt\": [{}1]}}", "1,".repeat(600_000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/completions", b"{\"prompt\": [1, 2".to_vec(), 400, "EOF"),
        ("/v1/completions", b"not json".to_vec(), 400, "expected"),
        (
            "/v1/completions",
            br#"{"prompt": [1], "frobnicate": true}"#.to_vec(),
            400,
            "frobnicate",
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "model": "gpt-9"}"#.to_vec(),
            404,
            "gpt-9",
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "temperature": -1}"#.to_vec(),
            400,
            "temperature",
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "max_tokens": 65}"#.to_vec(),
            400,
            "max_tokens",
        ),
        ("/v1/completions", br#"{"prompt": [1], "n": 3}"#.to_vec(), 400, "n"),
        (
            "/v1/completions",
            br#"{"prompt": [1, 512]}"#.to_vec(),
            400,
            "vocabulary",
        ),
        ("/v1/completions", br#"{"prompt": []}"#.to_vec(), 400, "empty"),
        (
            "/v1/completions",
            br#"{"prompt": "text needs a tokenizer"}"#.to_vec(),
            400,
            "tokenizer",
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "stop": "x"}"#.to_vec(),
            400,
            "tokenizer",
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "state": "nope"}"#.to_vec(),
            404,
            "nope",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": [{"role": "user", "content": "hi"}]}"#.to_vec(),
            400,
            "tokenizer",
        ),
        ("/v1/completions", big.into_bytes(), 413, "larger"),
        ("/tokenize", br#"{"prompt": "x"}"#.to_vec(), 400, "tokenizer"),
        ("/nowhere", b"{}".to_vec(), 404, "route"),
    ];
    for (path, body, status, needle) in cases {
        let (got, v) = server.post_raw(path, &body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        assert_eq!(got, status, "{path} {shown} → {v}");
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error body: {v}"));
        assert!(message.contains(needle), "{path} {shown}: {message}");
        assert!(v["error"]["type"].is_string(), "{v}");
        // and the next request is served as before
        assert_eq!(token_ids(&server.complete(&good)), want, "after {path} {shown}");
    }
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}

#[test]
fn a_client_that_leaves_frees_its_slot_running_or_queued() {
    let server = serve(&["--max-concurrent", "1", "--max-queued", "1", "--max-tokens", "1000000"]);
    // (without a tokenizer every chunk carries the generated ids, so the stream is never silent)
    let endless = json!({"prompt": ids(40, 3), "max_tokens": 1_000_000, "stream": true});
    let (status, mut running) = server.open_stream("/v1/completions", &endless);
    assert_eq!(status, 200);
    read_first_event(&mut running);
    // a second request waits; a third finds no place
    let queued = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let (status, r) = server.open_stream("/v1/completions", &endless);
            assert_eq!(status, 200);
            // headers came; nothing else will while the first runs. Leave once it is counted as waiting.
            server.wait_for("a waiting request", Duration::from_secs(20), |s| {
                s.metric("dbrmt_num_requests_waiting") == 1.0
            });
            std::thread::sleep(Duration::from_millis(300));
            drop(r);
        });
        server.wait_for("a waiting request", Duration::from_secs(20), |s| {
            s.metric("dbrmt_num_requests_waiting") == 1.0
        });
        let (status, v) = server.post("/v1/completions", &greedy(&ids(5, 0), 2));
        assert_eq!(status, 429, "{v}");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        waiter.join().unwrap();
        server.metric("dbrmt_num_requests_waiting")
    });
    // the waiter left: its place is given back without it ever running
    server.wait_for("the waiter's cancellation", Duration::from_secs(20), |s| {
        s.metric("dbrmt_num_requests_waiting") == 0.0 && s.metric("dbrmt_requests_total{outcome=\"cancelled\"}") == 1.0
    });
    let _ = queued;
    // so does a client that waits for a whole (not streamed) answer and gives up
    let plain = json!({"prompt": ids(5, 0), "max_tokens": 2});
    assert!(server.post_and_leave("/v1/completions", &plain, Duration::from_millis(500)));
    server.wait_for("the plain waiter's cancellation", Duration::from_secs(20), |s| {
        s.metric("dbrmt_num_requests_waiting") == 0.0 && s.metric("dbrmt_requests_total{outcome=\"cancelled\"}") == 2.0
    });
    assert_eq!(server.metric("dbrmt_num_requests_running"), 1.0);
    // the running client leaves: its slot serves the next request
    drop(running);
    server.wait_for("the running request's cancellation", Duration::from_secs(20), |s| {
        s.metric("dbrmt_requests_total{outcome=\"cancelled\"}") == 3.0
    });
    let v = server.complete(&greedy(&ids(5, 0), 2));
    assert_eq!(token_ids(&v).len(), 2);
}

/// Continuing a stored state gives the tokens of one request carrying the whole text; export / import round-trips
/// it; refused uploads change nothing.
#[test]
fn stored_states_continue_exactly_and_travel_as_files() {
    let server = serve(&[]);
    let (first, second) = (ids(70, 4), ids(45, 5));
    let whole: Vec<u64> = first.iter().chain(&second).copied().collect();
    let want = token_ids(&server.complete(&greedy(&whole, 12)));

    // ingest only
    let stored = server.complete(&json!({"prompt": first, "max_tokens": 0, "store_state": true}));
    assert_eq!(stored["choices"][0]["text"], "");
    assert_eq!(stored["usage"]["completion_tokens"], 0);
    let id = stored["state_id"].as_str().unwrap().to_string();
    let mut next = greedy(&second, 12);
    next["state"] = json!(id);
    let cont = server.complete(&next);
    assert_eq!(token_ids(&cont), want);
    assert_eq!(cont["usage"]["prompt_tokens"], 45);
    assert_eq!(cont["usage"]["prompt_tokens_details"]["cached_tokens"], 70);

    // a state stored after generating holds the generated tokens too
    let gen = server.complete(&json!({"prompt": first, "max_tokens": 5, "temperature": 0,
                                      "return_token_ids": true, "store_state": true}));
    let generated = token_ids(&gen);
    let with_gen: Vec<u64> = first.iter().chain(&generated).chain(&second).copied().collect();
    let mut next = greedy(&second, 12);
    next["state"] = gen["state_id"].clone();
    assert_eq!(
        token_ids(&server.complete(&next)),
        token_ids(&server.complete(&greedy(&with_gen, 12)))
    );

    // export, delete, import under another id: the same continuation
    let (status, file) = server.get_bytes(&format!("/v1/states/{id}"));
    assert_eq!(status, 200);
    assert_eq!(server.delete(&format!("/v1/states/{id}")).0, 200);
    assert_eq!(server.delete(&format!("/v1/states/{id}")).0, 404);
    let (status, v) = server.put_bytes("/v1/states/imported", &file);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["tokens"], 70);
    let mut next = greedy(&second, 12);
    next["state"] = json!("imported");
    assert_eq!(token_ids(&server.complete(&next)), want);

    // truncated, corrupted, another model's, not a state at all, a bad id: refused, and nothing changes
    let before = server.get("/v1/states").1;
    let mut corrupted = file.clone();
    let at = corrupted.len() - 10;
    corrupted[at] ^= 1;
    let id = identity(&server);
    let expect = StateExpect {
        identity: &id,
        layers: 4,
        d_key: 96,
        hidden: 128,
        vocab: None,
        segment_size: None,
        parts: None,
    };
    let saved = SavedState::from_bytes(Path::new("t"), &file, &expect).unwrap().saved;
    let foreign = saved.to_bytes("dbrmt-id1:00000000deadbeef").unwrap();
    for (name, bytes, needle) in [
        ("imported", &file[..file.len() / 2], "not a state file"),
        ("imported", &corrupted[..], "checksum"),
        ("imported", &foreign[..], "another model"),
        ("other", &b"hello"[..], "not a state file"),
        ("bad%20id", &file[..], "state id"),
    ] {
        let (status, v) = server.put_bytes(&format!("/v1/states/{name}"), bytes);
        assert_eq!(status, 400, "{name}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    }
    assert_eq!(server.get("/v1/states").1, before);
    assert_eq!(server.get_bytes("/v1/states/imported").1.len(), file.len());
    assert_eq!(token_ids(&server.complete(&next)), want);
}

fn identity(server: &Server) -> String {
    let (_, models) = server.get("/v1/models");
    let v: Value = serde_json::from_str(&models).unwrap();
    v["data"][0]["dbrmt"]["identity"].as_str().unwrap().to_string()
}

#[test]
fn states_are_evicted_least_recently_used_first() {
    let server = serve(&["--max-states", "2"]);
    let store = |k| {
        server.complete(&json!({"prompt": ids(10, k), "max_tokens": 0, "store_state": true}))["state_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (store(1), store(2));
    // using a makes b the least recently used
    server.complete(&json!({"prompt": [1], "max_tokens": 1, "state": a}));
    let c = store(3);
    let (status, v) = server.post("/v1/completions", &json!({"prompt": [1], "state": b}));
    assert_eq!(status, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("evicted"), "{v}");
    for id in [&a, &c] {
        assert_eq!(server.get_bytes(&format!("/v1/states/{id}")).0, 200);
    }
    assert_eq!(server.metric("dbrmt_stored_states"), 2.0);
    assert_eq!(server.metric("dbrmt_state_evictions_total"), 1.0);
}

#[test]
fn metrics_move_as_requests_run() {
    let server = serve(&[]);
    let m = |name: &str| server.metric(name);
    let before = [
        m("dbrmt_prompt_tokens_total"),
        m("dbrmt_generation_tokens_total"),
        m("dbrmt_time_to_first_token_seconds_count"),
        m("dbrmt_inter_token_latency_seconds_count"),
        m("dbrmt_request_queue_time_seconds_count"),
        m("dbrmt_e2e_request_latency_seconds_count"),
    ];
    server.complete(&greedy(&ids(33, 6), 7));
    let after = [
        m("dbrmt_prompt_tokens_total"),
        m("dbrmt_generation_tokens_total"),
        m("dbrmt_time_to_first_token_seconds_count"),
        m("dbrmt_inter_token_latency_seconds_count"),
        m("dbrmt_request_queue_time_seconds_count"),
        m("dbrmt_e2e_request_latency_seconds_count"),
    ];
    let moved: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(moved, vec![33.0, 7.0, 1.0, 6.0, 1.0, 1.0]);
    assert_eq!(m("dbrmt_num_requests_running"), 0.0);
    assert!(m("dbrmt_time_to_first_token_seconds_sum") > 0.0);
}

#[test]
fn long_prompts_report_prefill_progress_when_asked() {
    let server = serve(&[]);
    let body = json!({"prompt": ids(200, 7), "max_tokens": 2, "stream": true, "return_progress": true});
    let events = server.stream("/v1/completions", &body);
    let progress: Vec<u64> = events
        .iter()
        .filter(|e| e["object"] == "prefill.progress")
        .map(|e| e["prompt_progress"]["processed"].as_u64().unwrap())
        .collect();
    // one event per segment that leaves the top layer (T = 32), then the open segment's rows: the whole prompt
    assert_eq!(progress, vec![32, 64, 96, 128, 160, 192, 200]);
    assert!(events
        .iter()
        .all(|e| e["object"] != "prefill.progress" || e["prompt_progress"]["total"] == 200));
    // without asking, none
    let mut quiet = body.clone();
    quiet["return_progress"] = json!(false);
    let events = server.stream("/v1/completions", &quiet);
    assert!(!events.iter().any(|e| e["object"] == "prefill.progress"));
}
