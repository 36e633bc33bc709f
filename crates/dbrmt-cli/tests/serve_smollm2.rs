//! `dbrmt serve` on the real SmolLM2-135M-Instruct (CPU, `--armt-init`, segments of 64 tokens so short prompts
//! cross segments): text and chat, streaming = whole at temperature 0, stop strings, 8 concurrent clients = alone,
//! a stored text state continued = one request carrying the whole text, and the official `openai` Python client
//! (when a Python with it is found: `DBRMT_OPENAI_PYTHON`, else `.venv-openai/bin/python`, which `.ci/run`
//! installs). Ignored without `models/smollm2` (`cargo xtask fetch-model smollm2`).

mod serve_support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use serve_support::{repo, stream_text, text, token_ids, Server};

fn smollm2() -> PathBuf {
    repo().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn serve(extra: &[&str]) -> Server {
    let model = smollm2().to_string_lossy().into_owned();
    let mut args = vec![
        "--model",
        model.as_str(),
        "--armt-init",
        "0",
        "--segment-size",
        "64",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A prefix of the demo document (several segments of 64 tokens).
fn document(chars: usize) -> String {
    let text = std::fs::read_to_string(repo().join("docs/demo/logbook.txt")).unwrap();
    let cut: String = text.chars().take(chars).collect();
    // end on a word boundary so the continuation starts a new word
    cut[..cut.rfind(' ').unwrap()].to_string()
}

fn streamed(server: &Server, path: &str, body: &Value) -> String {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let events = server.stream(path, &body);
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    stream_text(&events)
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn text_and_chat_stream_what_they_answer_whole_and_stop_strings_cut() {
    let server = serve(&[]);
    let completion = json!({"prompt": "The three primary colours are", "max_tokens": 12, "temperature": 0});
    let whole = text(&server.complete(&completion));
    assert!(whole.chars().any(char::is_alphabetic), "{whole:?}");
    assert_eq!(streamed(&server, "/v1/completions", &completion), whole);

    let chat = json!({"messages": [{"role": "system", "content": "You answer briefly."},
                                   {"role": "user", "content": "Name a fruit."}],
                      "max_tokens": 10, "temperature": 0});
    let (status, v) = server.post("/v1/chat/completions", &chat);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let answer = text(&v);
    assert!(!answer.is_empty());
    assert_eq!(streamed(&server, "/v1/chat/completions", &chat), answer);

    // a stop string taken from the answer: the text ends just before it
    let word = whole.split_whitespace().nth(2).expect("three words").to_string();
    let mut stopping = completion.clone();
    stopping["stop"] = json!([word]);
    let v = server.complete(&stopping);
    assert_eq!(text(&v), whole[..whole.find(&word).unwrap()]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(streamed(&server, "/v1/completions", &stopping), text(&v));
    // storing its state: the engine ends the request after the token that completed the stop string, and the
    // state holds every generated token — continuing it is one request carrying all of them
    let mut keep = stopping.clone();
    keep["store_state"] = json!(true);
    keep["return_token_ids"] = json!(true);
    let kept = server.complete(&keep);
    assert_eq!(text(&kept), text(&v));
    assert_eq!(kept["choices"][0]["finish_reason"], "stop");
    let generated = token_ids(&kept);
    assert_eq!(kept["usage"]["completion_tokens"], generated.len());
    // when the token that completes the stop string is also the last one allowed, the stop string wins
    let mut last = keep.clone();
    last["max_tokens"] = json!(generated.len());
    let at_last = server.complete(&last);
    assert_eq!(at_last["choices"][0]["finish_reason"], "stop");
    assert_eq!(text(&at_last), text(&v));
    let tokenize = |text: &str, special: bool| -> Vec<u64> {
        let (status, t) = server.post("/tokenize", &json!({"prompt": text, "add_special_tokens": special}));
        assert_eq!(status, 200, "{t}");
        t["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let prompt = completion["prompt"].as_str().unwrap();
    let next = " and";
    let all_ids: Vec<u64> = [tokenize(prompt, true), generated, tokenize(next, false)].concat();
    let cont = server.complete(&json!({"prompt": next, "state": kept["state_id"], "max_tokens": 6,
                                       "temperature": 0, "return_token_ids": true}));
    let want = server.complete(&json!({"prompt": all_ids, "max_tokens": 6, "temperature": 0,
                                       "return_token_ids": true}));
    assert_eq!(token_ids(&cont), token_ids(&want));

    // tokenize / detokenize round trip
    let (status, t) = server.post("/tokenize", &json!({"prompt": whole, "add_special_tokens": false}));
    assert_eq!(status, 200);
    let (status, d) = server.post("/detokenize", &json!({"tokens": t["tokens"]}));
    assert_eq!(status, 200);
    assert_eq!(d["prompt"], whole.as_str());
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn eight_concurrent_clients_each_get_what_they_get_alone() {
    let server = serve(&["--max-concurrent", "8"]);
    let topics = [
        "rivers",
        "bread",
        "the moon",
        "violins",
        "glaciers",
        "chess",
        "bees",
        "lighthouses",
    ];
    let requests: Vec<Value> = topics
        .iter()
        .enumerate()
        .map(|(k, t)| {
            // different lengths: some prompts cross a segment boundary
            let prompt = format!("{}Write one sentence about {t}:", "Think carefully. ".repeat(k * 3));
            json!({"prompt": prompt, "max_tokens": 6, "temperature": 0})
        })
        .collect();
    let alone: Vec<String> = requests.iter().map(|r| text(&server.complete(r))).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = requests.iter().map(|r| s.spawn(|| text(&server.complete(r)))).collect();
        for (k, (h, want)) in handles.into_iter().zip(&alone).enumerate() {
            assert_eq!(&h.join().unwrap(), want, "client {k}");
        }
    });
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn a_stored_text_state_continues_as_the_whole_text() {
    let server = serve(&[]);
    let (first, second) = (document(700), " The next entry in the logbook says".to_string());
    let ids = |text: &str, special: bool| -> Vec<u64> {
        let (status, v) = server.post("/tokenize", &json!({"prompt": text, "add_special_tokens": special}));
        assert_eq!(status, 200, "{v}");
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let (a, b) = (ids(&first, true), ids(&second, false));
    assert!(a.len() > 2 * 64, "the prefix crosses segments: {} tokens", a.len());
    let whole: Vec<u64> = a.iter().chain(&b).copied().collect();
    let want = server.complete(&json!({"prompt": whole, "max_tokens": 8, "temperature": 0, "return_token_ids": true}));

    let stored = server.complete(&json!({"prompt": first, "max_tokens": 0, "store_state": true}));
    assert_eq!(stored["usage"]["prompt_tokens"], a.len());
    let cont = server.complete(&json!({"prompt": second, "state": stored["state_id"], "max_tokens": 8,
                                       "temperature": 0, "return_token_ids": true}));
    assert_eq!(
        cont["usage"]["prompt_tokens"],
        b.len(),
        "the continuation is read as continuing text"
    );
    assert_eq!(cont["usage"]["prompt_tokens_details"]["cached_tokens"], a.len());
    assert_eq!(token_ids(&cont), token_ids(&want));
    assert_eq!(text(&cont), text(&want));

    // a conversation goes on from its stored state
    let turn = server.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "My name is Ada."}], "max_tokens": 6,
                "temperature": 0, "store_state": true}),
    );
    assert_eq!(turn.0, 200, "{}", turn.1);
    let (status, v) = server.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "What is my name?"}], "max_tokens": 6,
                "temperature": 0, "state": turn.1["state_id"]}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0);
}

/// The Python that has the `openai` package, if any.
fn openai_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("DBRMT_OPENAI_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo().join(".venv-openai/bin/python")]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import openai"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn the_official_openai_python_client_works() {
    let Some(python) = openai_python() else {
        eprintln!(
            "SKIPPED: no Python with the `openai` package (set DBRMT_OPENAI_PYTHON, or let .ci/run make \
             .venv-openai)"
        );
        return;
    };
    let server = serve(&[]);
    let (_, models) = server.get("/v1/models");
    let name = serde_json::from_str::<Value>(&models).unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new(python)
        .arg(repo().join("crates/dbrmt-server/tests/openai_client.py"))
        .args([&server.base, &name])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}\nserver:\n{}", server.log());
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{stdout}");
}
