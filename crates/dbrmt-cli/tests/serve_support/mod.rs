//! What the `dbrmt serve` tests share: the real binary started on a free loopback port (killed when dropped), and
//! a small HTTP client over it (JSON requests, server-sent event streams, raw bytes).

#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// A running `dbrmt serve`.
pub struct Server {
    child: Child,
    pub base: String,
    /// Everything it wrote on stderr so far (for failure messages).
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

/// How long the server may take to load and bind.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long any one request may take before the test fails instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Server {
    /// `dbrmt serve --port 0 ARGS…` of the binary cargo built with this test, once it prints the address it
    /// listens on.
    pub fn start(args: &[&str]) -> Server {
        Self::start_binary(PathBuf::from(env!("CARGO_BIN_EXE_dbrmt")), args)
    }

    /// As [`Server::start`], with `dist/dbrmt` where there is one (a GPU host running a bundle: the test
    /// executables were built elsewhere, so cargo's path does not exist there).
    pub fn start_bundled(args: &[&str]) -> Server {
        let dist = repo().join("dist/dbrmt");
        let bin = if dist.exists() {
            dist
        } else {
            PathBuf::from(env!("CARGO_BIN_EXE_dbrmt"))
        };
        Self::start_binary(bin, args)
    }

    fn start_binary(bin: PathBuf, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dbrmt serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = match rx.recv_timeout(START_TIMEOUT) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("dbrmt serve did not start: {}", log.lock().unwrap());
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Server {
            child,
            base,
            log,
            agent,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST a JSON body; the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().as_bytes())
    }

    /// POST raw bytes as JSON; the status and the JSON answer.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut r = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()));
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().expect("a text body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POST a JSON body and give up after `after`: whether the request timed out (the client left).
    pub fn post_and_leave(&self, path: &str, body: &Value, after: Duration) -> bool {
        let r = self
            .agent
            .post(self.url(path))
            .config()
            .timeout_global(Some(after))
            .build()
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes());
        matches!(r, Err(ureq::Error::Timeout(_)))
    }

    /// A completion that must succeed; its JSON.
    pub fn complete(&self, body: &Value) -> Value {
        let (status, v) = self.post("/v1/completions", body);
        assert_eq!(status, 200, "{body} → {v}\n{}", self.log());
        v
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
    }

    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut r = self.agent.get(self.url(path)).call().expect("GET");
        let bytes = r.body_mut().with_config().limit(1 << 30).read_to_vec().expect("body");
        (r.status().as_u16(), bytes)
    }

    pub fn put_bytes(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut r = self.agent.put(self.url(path)).send(body).expect("PUT");
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            r.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let mut r = self.agent.delete(self.url(path)).call().expect("DELETE");
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            r.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST with `"stream": true`: the `data:` payloads in order (the last is `[DONE]` as a string).
    pub fn stream(&self, path: &str, body: &Value) -> Vec<Value> {
        let mut r = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("POST stream");
        assert_eq!(r.status().as_u16(), 200, "{body}");
        let text = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .expect("stream body");
        sse_data(&text)
    }

    /// Opens a stream and returns its reader, for tests that leave in the middle.
    pub fn open_stream(&self, path: &str, body: &Value) -> (u16, ureq::BodyReader<'static>) {
        let r = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("POST stream");
        let status = r.status().as_u16();
        (status, r.into_body().into_reader())
    }

    /// The value of the metric sample line `name` (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200);
        metric(&text, name)
    }

    /// Waits (bounded) until `ok` holds.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut ok: impl FnMut(&Server) -> bool) {
        let t0 = Instant::now();
        while !ok(self) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The `data:` payloads of an SSE body, JSON where they parse.
pub fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_string())))
        .collect()
}

/// Reads from a stream until at least one `data:` line has come.
pub fn read_first_event(reader: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("data: ") {
        let n = reader.read(&mut buf).expect("read stream");
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The generated ids of a completion or of a stream's chunks (`return_token_ids`).
pub fn token_ids(v: &Value) -> Vec<u64> {
    v["choices"][0]["token_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no token_ids in {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

pub fn stream_token_ids(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.get("choices").is_some_and(|c| !c.as_array().unwrap().is_empty()))
        .filter_map(|e| e["choices"][0]["token_ids"].as_array().cloned())
        .flatten()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// The text of a completion, or of a stream's chunks.
pub fn text(v: &Value) -> String {
    let c = &v["choices"][0];
    c["text"]
        .as_str()
        .or_else(|| c["message"]["content"].as_str())
        .unwrap_or_else(|| panic!("no text in {v}"))
        .to_string()
}

pub fn stream_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| {
            let c = e.get("choices")?.get(0)?;
            c["text"]
                .as_str()
                .or_else(|| c["delta"]["content"].as_str())
                .map(str::to_string)
        })
        .collect()
}
