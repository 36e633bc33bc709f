//! `dbrmt serve --device cuda` on the tiny fixture (token-id prompts): requests share the engine's packed GPU steps
//! and each still gets exactly what it gets alone, streaming gives the whole answer, a stored state continues as the
//! whole text, and the requests' device memory shows in the metrics.

mod serve_support;

use serde_json::{json, Value};
use serve_support::{read_first_event, repo, stream_token_ids, token_ids, Server};

/// `n` prompt ids in the tiny vocabulary (512), different for each `k`.
fn ids(n: usize, k: u64) -> Vec<u64> {
    (0..n as u64).map(|i| (i * 37 + k * 101 + 5) % 512).collect()
}

fn greedy(prompt: &[u64], max_tokens: usize) -> Value {
    json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "return_token_ids": true})
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn the_server_batches_requests_on_the_gpu() {
    let model = repo().join("testdata/fixtures/tiny-armt-names");
    let server = Server::start_bundled(&[
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cuda",
        "--max-concurrent",
        "8",
        "--max-tokens",
        "1000000",
    ]);
    // different lengths (one to several segments of 32), greedy and seeded sampling, decoding past a closing
    let requests: Vec<Value> = (0..8u64)
        .map(|k| {
            let mut r = greedy(&ids(20 + 29 * k as usize, k), 40);
            if k % 2 == 1 {
                r["temperature"] = json!(0.9);
                r["top_p"] = json!(0.95);
                r["seed"] = json!(1000 + k);
            }
            r
        })
        .collect();
    let alone: Vec<Vec<u64>> = requests.iter().map(|r| token_ids(&server.complete(r))).collect();
    assert!(alone.iter().all(|t| t.len() == 40));
    let mut streamed = requests[2].clone();
    streamed["stream"] = json!(true);
    assert_eq!(stream_token_ids(&server.stream("/v1/completions", &streamed)), alone[2]);

    // beside an endless stream, so every step holds at least two requests
    let endless = json!({"prompt": ids(40, 3), "max_tokens": 1_000_000, "stream": true});
    let (status, mut running) = server.open_stream("/v1/completions", &endless);
    assert_eq!(status, 200);
    read_first_event(&mut running);
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| s.spawn(|| token_ids(&server.complete(r))))
            .collect();
        for (k, (h, want)) in handles.into_iter().zip(&alone).enumerate() {
            assert_eq!(&h.join().unwrap(), want, "client {k}");
        }
    });
    assert!(server.metric("dbrmt_engine_max_requests_per_step") >= 2.0);
    assert!(server.metric("dbrmt_engine_peak_device_bytes") > 0.0);
    drop(running);

    // a stored state continues as the whole text
    let (first, second) = (ids(70, 4), ids(45, 5));
    let whole: Vec<u64> = first.iter().chain(&second).copied().collect();
    let want = token_ids(&server.complete(&greedy(&whole, 12)));
    let stored = server.complete(&json!({"prompt": first, "max_tokens": 0, "store_state": true}));
    let mut next = greedy(&second, 12);
    next["state"] = stored["state_id"].clone();
    assert_eq!(token_ids(&server.complete(&next)), want);
}
