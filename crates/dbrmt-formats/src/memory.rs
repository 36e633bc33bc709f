//! How much memory a run needs, estimated from its shapes before anything is allocated, and how much the machine
//! has — so that a legal but absurd size (`--segment-size 10⁹`, `--logits all` over 50K ids, a 10⁶-wide ν) ends
//! with "needs N GB, has M" instead of an allocation abort.
//!
//! Host memory available is the least of: `MemAvailable` (`/proc/meminfo`), the cgroup's `memory.max` less its
//! `memory.current`, and the address-space limit (`RLIMIT_AS`, as `prlimit --as` sets it) less the address space
//! the process already maps (`VmSize`; a memory-mapped checkpoint counts there). Where none can be read (not
//! Linux), nothing is refused. The GPU side compares the device estimate with `cuMemGetInfo` (in `dbrmt-model`).
//!
//! Estimates are upper bounds of what the CPU model allocates (every buffer of the largest step, the state twice,
//! the growth of vectors that grow), computed with saturating arithmetic: an absurd shape saturates, it never wraps.

use crate::config::ModelConfig;
use crate::error::FormatError;

/// Bytes the process needs besides what the estimates count: code, the tokenizer, allocator arenas.
const BASE_OVERHEAD: u64 = 256 << 20;
/// Address space each worker thread takes (an 8 MB stack and a 64 MB allocator arena reserved under `RLIMIT_AS`).
const PER_THREAD: u64 = 80 << 20;

/// How much host memory is available, and what limits it (for the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub bytes: u64,
    pub limited_by: &'static str,
}

/// The least of the host's limits, or `None` where none can be read.
pub fn host_available() -> Option<Available> {
    let mut best: Option<Available> = None;
    let mut consider = |bytes: Option<u64>, limited_by: &'static str| {
        if let Some(bytes) = bytes {
            if best.as_ref().is_none_or(|b| bytes < b.bytes) {
                best = Some(Available { bytes, limited_by });
            }
        }
    };
    consider(meminfo_available(), "MemAvailable in /proc/meminfo");
    consider(cgroup_available(), "the cgroup's memory.max");
    consider(
        address_space_available(),
        "the address-space limit (ulimit -v / prlimit --as)",
    );
    best
}

/// `needed` bytes for `what` against [`host_available`]: an error saying both when it does not fit.
pub fn check_host(what: &str, needed: u64) -> Result<(), FormatError> {
    check_against(what, needed, host_available())
}

/// As [`check_host`], against a given availability (`None`: unknown, nothing refused).
pub fn check_against(what: &str, needed: u64, available: Option<Available>) -> Result<(), FormatError> {
    match available {
        Some(a) if needed > a.bytes => Err(FormatError::OutOfMemory {
            what: what.to_string(),
            needed,
            available: a.bytes,
            limited_by: a.limited_by.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A byte count for people: `1.23 GB`, `456 MB`.
pub fn human(bytes: u64) -> String {
    const GB: f64 = 1e9;
    const MB: f64 = 1e6;
    let b = bytes as f64;
    if bytes == u64::MAX {
        "more than 18 EB".to_string()
    } else if b >= GB {
        format!("{:.2} GB", b / GB)
    } else {
        format!("{:.0} MB", (b / MB).max(1.0))
    }
}

/// Saturating products and sums: an estimate never wraps.
fn mul(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |acc, &f| acc.saturating_mul(u64::try_from(f).unwrap_or(u64::MAX)))
}

fn sum(terms: &[u64]) -> u64 {
    terms.iter().fold(0u64, |acc, &t| acc.saturating_add(t))
}

/// The product of `factors`, saturating (for callers' estimates).
pub fn mul_bytes(factors: &[usize]) -> u64 {
    mul(factors)
}

/// Elements of every weight of the model (backbone and memory), saturating.
pub fn parameters(c: &ModelConfig) -> u64 {
    let l = &c.llama;
    let (d, v, i) = (l.hidden_size, l.vocab_size, l.intermediate_size);
    let (q, kv) = (mul(&[l.num_heads, l.head_dim]), mul(&[l.num_kv_heads, l.head_dim]));
    let d64 = d as u64;
    let per_layer = sum(&[
        mul(&[2, d]),
        q.saturating_mul(d64).saturating_mul(2),
        kv.saturating_mul(d64).saturating_mul(2),
        mul(&[3, i, d]),
        mul(&[2, c.armt.d_mem, d]),
        mul(&[d, d]),
        d64 + 1,
    ]);
    let heads = if l.tie_word_embeddings { 1 } else { 2 };
    sum(&[
        mul(&[heads, v, d]),
        d64,
        mul(&[c.armt.num_mem_tokens, d]),
        per_layer.saturating_mul(l.num_layers as u64),
    ])
}

/// The RoPE table of one segment's `T + M` positions (cos and sin, f32).
fn rope_bytes(c: &ModelConfig) -> u64 {
    let positions = c.armt.segment_size.saturating_add(c.armt.num_mem_tokens);
    mul(&[positions, c.llama.head_dim / 2, 2, 4])
}

/// The memory state `A [D, d]`, `z [D]` of every layer, f32.
pub fn state_bytes(c: &ModelConfig) -> u64 {
    let dk = mul(&[2, c.armt.nu, c.armt.d_mem]);
    dk.saturating_mul(c.llama.hidden_size as u64 + 1)
        .saturating_mul(c.llama.num_layers as u64)
        .saturating_mul(4)
}

/// The CPU model in memory: f32 weights and the RoPE table.
pub fn cpu_model_bytes(c: &ModelConfig) -> u64 {
    sum(&[parameters(c).saturating_mul(4), rope_bytes(c), BASE_OVERHEAD])
}

/// The temporaries of one cell (or one run of open rows) of `rows` rows attending over `kv_rows` keys.
fn cell_bytes(c: &ModelConfig, rows: usize, kv_rows: usize) -> u64 {
    let l = &c.llama;
    let d = l.hidden_size;
    let (q, kv) = (mul(&[l.num_heads, l.head_dim]), mul(&[l.num_kv_heads, l.head_dim]));
    let dk = mul(&[2, c.armt.nu, c.armt.d_mem]);
    let r = rows as u64;
    let per_row = sum(&[
        mul(&[3, d]),                   // h, the read's numerator, the hidden rows themselves
        q.saturating_mul(2),            // q, attention output
        kv.saturating_mul(4),           // k, v and their copies in the cache
        mul(&[3, l.intermediate_size]), // gate, up, SwiGLU
        c.armt.d_mem as u64 + dk,       // the read's projection and features
    ]);
    let write = mul(&[c.armt.num_mem_tokens, 3 * d + c.armt.d_mem + 1]).saturating_add(dk);
    sum(&[
        r.saturating_mul(per_row),
        r.saturating_mul(kv_rows as u64), // the attention scores of one head
        write,
    ])
    .saturating_mul(4)
}

/// What the shape of one CPU prefill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillShape {
    /// Text tokens of the run.
    pub tokens: usize,
    /// Rows of logits returned (`tokens` for all, 1 for the last, 0 for none).
    pub logit_rows: usize,
    /// Whether the final hidden states of every token are kept.
    pub keep_hidden: bool,
    /// Worker threads (cells run at once).
    pub threads: usize,
}

/// Host bytes a CPU prefill allocates beyond the model: the live segments' hidden rows, the temporaries of the
/// cells running at once, the state (in and out), the logits and the ids.
pub fn cpu_prefill_bytes(c: &ModelConfig, s: PrefillShape) -> u64 {
    let (t, m, d) = (c.armt.segment_size, c.armt.num_mem_tokens, c.llama.hidden_size);
    let rows = s.tokens.min(t).saturating_add(m);
    let segments = s.tokens.div_ceil(t.max(1));
    let live = segments.min(c.llama.num_layers).saturating_add(1);
    let running = s.threads.max(1).min(live) as u64;
    let v = c.llama.vocab_size;
    sum(&[
        mul(&[live, rows, d, 4]),
        cell_bytes(c, rows, rows).saturating_mul(running),
        state_bytes(c).saturating_mul(2),
        mul(&[s.logit_rows, v, 4]),
        mul(&[rows, d, 4]).saturating_add(mul(&[t, v, 4]).min(mul(&[s.logit_rows, v, 4]))),
        if s.keep_hidden { mul(&[s.tokens, d, 4]) } else { 0 },
        mul(&[s.tokens, 12]),
        PER_THREAD.saturating_mul(running),
    ])
}

/// Host bytes a CPU generation session allocates beyond the model: closing up to `segments_per_run` segments in
/// one run, the KV caches of the open segment in every layer (grown by doubling), and the open rows' temporaries.
pub fn cpu_session_bytes(c: &ModelConfig, segments_per_run: usize, threads: usize) -> u64 {
    let l = &c.llama;
    let t = c.armt.segment_size;
    let kv = mul(&[l.num_kv_heads, l.head_dim]);
    let caches = kv
        .saturating_mul(t as u64)
        .saturating_mul(l.num_layers as u64)
        .saturating_mul(2 * 2 * 4);
    let close = cpu_prefill_bytes(
        c,
        PrefillShape {
            tokens: segments_per_run.max(1).saturating_mul(t),
            logit_rows: 0,
            keep_hidden: false,
            threads,
        },
    );
    sum(&[
        close,
        caches,
        cell_bytes(c, t, t),
        mul(&[l.vocab_size, 4]),
        state_bytes(c),
    ])
}

/// Device bytes of the GPU model's weights: bf16, stacked per kind, plus the RoPE table and the β biases in f32.
pub fn gpu_weights_bytes(c: &ModelConfig) -> u64 {
    sum(&[
        parameters(c).saturating_mul(2),
        rope_bytes(c),
        mul(&[c.llama.num_layers, 4]),
    ])
}

fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    kib_field(line)
}

/// `Key:   123 kB` → bytes.
fn kib_field(line: &str) -> Option<u64> {
    let n: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    n.checked_mul(1024)
}

fn cgroup_available() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    // cgroup v2 (the process's own group, from /proc/self/cgroup, else the mount's root), then v1
    let own = read("/proc/self/cgroup")
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        })
        .map(|p| format!("/sys/fs/cgroup{}", if p == "/" { String::new() } else { p }));
    let v2 = own
        .iter()
        .map(String::as_str)
        .chain(["/sys/fs/cgroup"])
        .find_map(|dir| {
            Some((
                read(&format!("{dir}/memory.max"))?,
                read(&format!("{dir}/memory.current")),
            ))
        });
    let (max, current) = match v2 {
        Some(found) => found,
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    };
    let max: u64 = max.trim().parse().ok()?; // "max" (no limit) does not parse
    let current: u64 = current.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    Some(max.saturating_sub(current))
}

fn address_space_available() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?; // "unlimited" does not parse
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = status.lines().find(|l| l.starts_with("VmSize:")).and_then(kib_field)?;
    Some(soft.saturating_sub(used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn estimates_grow_with_the_run_and_saturate() {
        let c = presets::tiny(true);
        let shape = |tokens, logit_rows| PrefillShape {
            tokens,
            logit_rows,
            keep_hidden: false,
            threads: 2,
        };
        let small = cpu_prefill_bytes(&c, shape(100, 1));
        let all = cpu_prefill_bytes(&c, shape(100, 100));
        assert!(all - small >= 99 * 512 * 4);
        let mut huge = c.clone();
        huge.armt.segment_size = usize::MAX;
        huge.armt.num_mem_tokens = usize::MAX;
        assert_eq!(cpu_session_bytes(&huge, 8, 2), u64::MAX);
        assert!(cpu_model_bytes(&c) > parameters(&c) * 4);
    }

    #[test]
    fn refusals_say_needs_and_has() {
        let a = Available {
            bytes: 8 << 30,
            limited_by: "the address-space limit",
        };
        let e = check_against("the logits", 20_000_000_000, Some(a.clone())).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("needs 20.00 GB") && msg.contains("has 8.59 GB"), "{msg}");
        assert!(check_against("x", 1 << 30, Some(a)).is_ok());
        assert!(check_against("x", u64::MAX, None).is_ok());
        assert_eq!(human(u64::MAX), "more than 18 EB");
    }

    #[test]
    fn this_machine_reports_something() {
        // Linux: at least MemAvailable
        if cfg!(target_os = "linux") {
            assert!(host_available().is_some_and(|a| a.bytes > 0));
        }
    }
}
