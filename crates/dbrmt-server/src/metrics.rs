//! The server's Prometheus metrics, kept by hand (a few atomics and histograms) and rendered as text for
//! `GET /metrics`. Names follow vLLM's where they mean the same thing, with the `dbrmt_` prefix.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dbrmt_runtime::requests::Occupancy;

/// Upper bounds, in seconds, of latency buckets (vLLM's TTFT buckets, extended for minute-long prefills).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    /// Per bucket (and +Inf last), observations at or below its bound and above the previous one.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; LATENCY_BUCKETS.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = LATENCY_BUCKETS.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum += v;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c;
            let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {total}");
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {total}", self.sum);
    }
}

/// Which latency is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Latency {
    /// Arrival to the first generated token.
    TimeToFirstToken,
    /// Between two generated tokens of one request.
    InterToken,
    /// Arrival to the start of compute.
    Queue,
    /// Arrival to the last event.
    EndToEnd,
}

impl Latency {
    const ALL: [Latency; 4] = [
        Latency::TimeToFirstToken,
        Latency::InterToken,
        Latency::Queue,
        Latency::EndToEnd,
    ];

    fn name_help(self) -> (&'static str, &'static str) {
        match self {
            Latency::TimeToFirstToken => (
                "dbrmt_time_to_first_token_seconds",
                "Time from a request's arrival to its first generated token.",
            ),
            Latency::InterToken => (
                "dbrmt_inter_token_latency_seconds",
                "Time between two generated tokens of one request.",
            ),
            Latency::Queue => (
                "dbrmt_request_queue_time_seconds",
                "Time a request waited for a slot before its compute began.",
            ),
            Latency::EndToEnd => (
                "dbrmt_e2e_request_latency_seconds",
                "Time from a request's arrival to its end.",
            ),
        }
    }
}

/// Every metric of the server. Gauges that mirror other state (running, waiting, stored states) are passed to
/// [`Metrics::render`] by whoever holds that state.
#[derive(Debug)]
pub struct Metrics {
    histograms: Mutex<BTreeMap<Latency, Histogram>>,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    /// Finished requests by finish reason (`stop`, `length`), and ended ones by cause (`cancelled`, `error`,
    /// `rejected`).
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    /// The engine's packed steps, updated together.
    engine: Mutex<EngineStats>,
}

/// The engine's packed steps (steps run, requests summed over steps, the most requests in one step) and the device
/// bytes the live requests hold now and held at most.
#[derive(Debug, Clone, Copy, Default)]
struct EngineStats {
    steps: u64,
    request_steps: u64,
    max_step_requests: u64,
    device_bytes: u64,
    peak_device_bytes: u64,
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub running: usize,
    pub waiting: usize,
    pub states: usize,
    pub state_bytes: usize,
    pub state_evictions: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            histograms: Mutex::new(Latency::ALL.into_iter().map(|l| (l, Histogram::new())).collect()),
            prompt_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            engine: Mutex::new(EngineStats::default()),
        }
    }
}

impl Metrics {
    pub fn observe(&self, which: Latency, d: Duration) {
        if let Ok(mut h) = self.histograms.lock() {
            h.entry(which).or_insert_with(Histogram::new).observe(d.as_secs_f64());
        }
    }

    /// New prompt tokens read, and tokens a stored state spared.
    pub fn add_prompt_tokens(&self, new: usize, cached: usize) {
        self.prompt_tokens.fetch_add(new as u64, Ordering::Relaxed);
        self.cached_tokens.fetch_add(cached as u64, Ordering::Relaxed);
    }

    pub fn add_generated_token(&self) {
        self.generation_tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// The engine's totals after a step (they only grow), and the device bytes its requests hold.
    pub fn engine(&self, o: Occupancy, device_bytes: usize) {
        if let Ok(mut e) = self.engine.lock() {
            *e = EngineStats {
                steps: o.steps as u64,
                request_steps: o.request_steps as u64,
                max_step_requests: o.max_step_requests as u64,
                device_bytes: device_bytes as u64,
                peak_device_bytes: e.peak_device_bytes.max(device_bytes as u64),
            };
        }
    }

    /// A request ended: `stop`, `length`, `cancelled`, `error`, `rejected`.
    pub fn outcome(&self, how: &'static str) {
        if let Ok(mut o) = self.outcomes.lock() {
            *o.entry(how).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(
            &mut out,
            "dbrmt_num_requests_running",
            "Requests being computed.",
            g.running as f64,
        );
        gauge(
            &mut out,
            "dbrmt_num_requests_waiting",
            "Requests waiting for a slot.",
            g.waiting as f64,
        );
        gauge(
            &mut out,
            "dbrmt_stored_states",
            "Memory states in the store.",
            g.states as f64,
        );
        gauge(
            &mut out,
            "dbrmt_stored_state_bytes",
            "Host bytes of the stored states.",
            g.state_bytes as f64,
        );
        counter(
            &mut out,
            "dbrmt_state_evictions_total",
            "States evicted to keep the store within its bounds.",
            g.state_evictions,
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "dbrmt_prompt_tokens_total",
            "Prompt tokens read (not counting tokens a stored state covered).",
            load(&self.prompt_tokens),
        );
        counter(
            &mut out,
            "dbrmt_cached_prompt_tokens_total",
            "Tokens covered by the stored states requests continued from.",
            load(&self.cached_tokens),
        );
        counter(
            &mut out,
            "dbrmt_generation_tokens_total",
            "Tokens generated.",
            load(&self.generation_tokens),
        );
        let e = self.engine.lock().map(|e| *e).unwrap_or_default();
        counter(
            &mut out,
            "dbrmt_engine_steps_total",
            "Packed steps the engine ran.",
            e.steps,
        );
        counter(
            &mut out,
            "dbrmt_engine_request_steps_total",
            "Requests summed over steps; over dbrmt_engine_steps_total, the mean number of requests sharing a step.",
            e.request_steps,
        );
        gauge(
            &mut out,
            "dbrmt_engine_max_requests_per_step",
            "The most requests that shared one step.",
            e.max_step_requests as f64,
        );
        gauge(
            &mut out,
            "dbrmt_engine_device_bytes",
            "Device bytes the live requests hold (state, caches, step buffers; 0 on the CPU).",
            e.device_bytes as f64,
        );
        gauge(
            &mut out,
            "dbrmt_engine_peak_device_bytes",
            "The most device bytes the live requests held.",
            e.peak_device_bytes as f64,
        );
        let _ = writeln!(
            out,
            "# HELP dbrmt_requests_total Requests ended, by how: a finish reason (stop, length) or cancelled, \
             error, rejected.\n# TYPE dbrmt_requests_total counter"
        );
        if let Ok(o) = self.outcomes.lock() {
            for (how, n) in o.iter() {
                let _ = writeln!(out, "dbrmt_requests_total{{outcome=\"{how}\"}} {n}");
            }
        }
        if let Ok(h) = self.histograms.lock() {
            for (which, hist) in h.iter() {
                let (name, help) = which.name_help();
                hist.render(&mut out, name, help);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` in `text`.
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let m = Metrics::default();
        m.observe(Latency::TimeToFirstToken, Duration::from_millis(3));
        m.observe(Latency::TimeToFirstToken, Duration::from_millis(30));
        m.observe(Latency::TimeToFirstToken, Duration::from_secs(5000));
        m.add_prompt_tokens(10, 4);
        m.add_generated_token();
        m.outcome("stop");
        m.outcome("stop");
        let mut o = Occupancy {
            steps: 10,
            request_steps: 25,
            max_step_requests: 4,
            ..Occupancy::default()
        };
        m.engine(o, 300);
        o.steps = 11;
        m.engine(o, 200);
        let text = m.render(Gauges {
            running: 2,
            waiting: 1,
            ..Gauges::default()
        });
        let ttft = "dbrmt_time_to_first_token_seconds";
        assert_eq!(sample(&text, &format!("{ttft}_bucket{{le=\"0.001\"}}")), 0.0);
        assert_eq!(sample(&text, &format!("{ttft}_bucket{{le=\"0.005\"}}")), 1.0);
        assert_eq!(sample(&text, &format!("{ttft}_bucket{{le=\"0.04\"}}")), 2.0);
        assert_eq!(sample(&text, &format!("{ttft}_bucket{{le=\"2560\"}}")), 2.0);
        assert_eq!(sample(&text, &format!("{ttft}_bucket{{le=\"+Inf\"}}")), 3.0);
        assert_eq!(sample(&text, &format!("{ttft}_count")), 3.0);
        assert!((sample(&text, &format!("{ttft}_sum")) - 5000.033).abs() < 1e-9);
        assert_eq!(sample(&text, "dbrmt_prompt_tokens_total"), 10.0);
        assert_eq!(sample(&text, "dbrmt_cached_prompt_tokens_total"), 4.0);
        assert_eq!(sample(&text, "dbrmt_generation_tokens_total"), 1.0);
        assert_eq!(sample(&text, "dbrmt_requests_total{outcome=\"stop\"}"), 2.0);
        assert_eq!(sample(&text, "dbrmt_num_requests_running"), 2.0);
        assert_eq!(sample(&text, "dbrmt_num_requests_waiting"), 1.0);
        assert_eq!(sample(&text, "dbrmt_request_queue_time_seconds_count"), 0.0);
        assert_eq!(sample(&text, "dbrmt_engine_steps_total"), 11.0);
        assert_eq!(sample(&text, "dbrmt_engine_request_steps_total"), 25.0);
        assert_eq!(sample(&text, "dbrmt_engine_max_requests_per_step"), 4.0);
        assert_eq!(sample(&text, "dbrmt_engine_device_bytes"), 200.0);
        assert_eq!(sample(&text, "dbrmt_engine_peak_device_bytes"), 300.0);
    }
}
