//! The switches: environment variables that turn one optimisation off (`NAME=off`), to compare a run against it or to
//! step around it. Every one leaves the bits of every result as they are (each has a check that says so), except
//! `DBRMT_MEMORY`, which picks the memory read's kernels (see the README's list). They are read here, one way.

use std::sync::atomic::{AtomicU8, Ordering};

/// Narrow tiles for launches of few rows (`gemm_sm90::decode_tiles_enabled`).
pub const DECODE_TILES: &str = "DBRMT_DECODE_TILES";
/// Programmatic dependent launch on every kernel (`launch::pdl_enabled`).
pub const PDL: &str = "DBRMT_PDL";
/// One GEMM group per projection for a layer's open cells, instead of one per cell (`dbrmt-model`).
pub const MERGE_ROWS: &str = "DBRMT_MERGE_ROWS";
/// Decode steps captured as CUDA graphs and replayed (`dbrmt-model`).
pub const GRAPHS: &str = "DBRMT_GRAPHS";
/// The fused read of a pre-split state: `A` split for the tensor cores once per change (`armt_state_split`) instead
/// of converted by every read (`dbrmt-model`'s `MemoryProducts::read_pre_split`).
pub const STATE_SPLIT: &str = "DBRMT_STATE_SPLIT";
/// The decode read making its own query projection (`armt_read_fused_sm90_split_q_n32_f32`: one launch instead of
/// the q GEMM and the read; `dbrmt-model`'s `MemoryProducts::read_fused_q`).
pub const READ_Q: &str = "DBRMT_READ_Q";
/// The write's update `A += kφᵀ·u` also writing the new A's pre-split form from its epilogue
/// (`gemm_tf32x3_sm90::gemm_sm90_tn_f32_f32_f32_tf32x3_split`) instead of an `armt_state_split` pass after it
/// (`dbrmt-model`).
pub const SPLIT_IN_UPDATE: &str = "DBRMT_SPLIT_IN_UPDATE";
/// The write's prep (`u = β·(V − ka/δ)`, `γ`) made in the `kφ·A` product's epilogue, its row statistics beside DPFP
/// (`armt_write::armt_write_features`, `gemm_tf32x3_sm90::gemm_sm90_nn_f32_f32_f32_tf32x3_prep`), instead of DPFP,
/// the product into `ka` and `armt_write_prep` (`dbrmt-model`).
pub const PREP_IN_PRODUCT: &str = "DBRMT_PREP_IN_PRODUCT";
/// A decode step's RoPE launch also brings its layer's gate/up weights into L2 (`rope::rope_and_prefetch`; models whose
/// layer's gate/up weights are at most 8 MiB, `dbrmt-model`), so that the gate/up product reads them from there.
pub const L2_PREFETCH: &str = "DBRMT_L2_PREFETCH";
/// A decode step's RMSNorms made inside the q/k/v and gate/up launches (`gemm_sm90::gemm_sm90_nt_normed`) instead of
/// launched before them (`dbrmt-model`).
pub const DECODE_NORM: &str = "DBRMT_DECODE_NORM";
/// A prefill's RoPE inside its q/k/v product for whole segments (`gemm_sm90_rope::gemm_sm90_nt_bf16_bf16_bf16_rope`:
/// the accumulators rotated before the epilogue stores them) instead of a RoPE launch after it (`dbrmt-model`).
pub const QKV_ROPE: &str = "DBRMT_QKV_ROPE";
/// A prefill's diagonal steps run as two groups of cells on two streams, the lower layers' and the upper layers', so
/// that one group's short memory launches run beside the other's products (`dbrmt-model`'s executor).
pub const TWO_STREAMS: &str = "DBRMT_TWO_STREAMS";
/// Three consumer warpgroups in the tensor-core attention at head dim 64 with grouped queries
/// (`attention_sm90::consumer_warpgroups`); off: two, as at one query head per KV head and at head dim 128.
pub const ATTENTION_WG3: &str = "DBRMT_ATTENTION_WG3";
/// Greedy ids chosen on the device (`argmax_rows_f32`) instead of on the host from copied logits (`dbrmt-model`).
pub const DEVICE_ARGMAX: &str = "DBRMT_DEVICE_ARGMAX";
/// Greedy generation one pass ahead of the host: each decoded token's id handed from pass to pass on the device, so
/// the next pass is launched before the host reads the id (`dbrmt-model`'s `Session::generate_greedy`).
pub const DECODE_AHEAD: &str = "DBRMT_DECODE_AHEAD";

/// Whether the environment turns switch `name` off (`name=off`; unset or any other value: on).
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "off")
}

/// A switch read from the environment at its first use (`NAME=off`: off; `NAME=force`: on, and forced past the rule
/// where its use also depends on one, to measure outside it: two streams) that a program or a test may then set: one
/// process-wide state (programmatic dependent launch, decode graphs).
#[derive(Debug)]
pub struct RuntimeSwitch {
    name: &'static str,
    /// 0: not read yet.
    state: AtomicU8,
}

impl RuntimeSwitch {
    const ON: u8 = 1;
    const OFF: u8 = 2;
    const FORCED: u8 = 3;

    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            state: AtomicU8::new(0),
        }
    }

    /// On unless the environment turned it off (read once) or [`RuntimeSwitch::set`] said otherwise.
    pub fn enabled(&self) -> bool {
        self.read() != Self::OFF
    }

    /// Whether the environment forced it (`NAME=force`, read once) and [`RuntimeSwitch::set`] has not been called
    /// since.
    pub fn forced(&self) -> bool {
        self.read() == Self::FORCED
    }

    fn read(&self) -> u8 {
        match self.state.load(Ordering::Relaxed) {
            0 => {
                let state = match std::env::var(self.name).as_deref() {
                    Ok("off") => Self::OFF,
                    Ok("force") => Self::FORCED,
                    _ => Self::ON,
                };
                self.state.store(state, Ordering::Relaxed);
                state
            }
            state => state,
        }
    }

    /// On or off for what follows.
    pub fn set(&self, on: bool) {
        self.state
            .store(if on { Self::ON } else { Self::OFF }, Ordering::Relaxed);
    }
}

/// `"on"` or `"off"`, as the benchmarks record a switch.
pub fn state(name: &str) -> &'static str {
    if is_off(name) {
        "off"
    } else {
        "on"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_off_turns_a_switch_off() {
        // a name no other test sets, so the process environment is not shared with them
        let name = "DBRMT_SWITCHES_TEST_ONLY";
        assert!(!is_off(name));
        assert_eq!(state(name), "on");
        std::env::set_var(name, "0");
        assert!(!is_off(name), "only the word off turns a switch off");
        std::env::set_var(name, "off");
        assert!(is_off(name));
        assert_eq!(state(name), "off");
        std::env::remove_var(name);
    }

    #[test]
    fn force_is_read_once_and_only_the_word_counts() {
        let (name, other) = ("DBRMT_SWITCHES_TEST_FORCE", "DBRMT_SWITCHES_TEST_FORCE_OTHER");
        std::env::set_var(name, "force");
        std::env::set_var(other, "on");
        let (forced, not) = (RuntimeSwitch::new(name), RuntimeSwitch::new(other));
        assert!(forced.forced() && !not.forced());
        assert!(forced.enabled() && not.enabled(), "forced is on");
        std::env::remove_var(name);
        std::env::set_var(other, "force");
        assert!(forced.forced() && !not.forced(), "read once per process");
        forced.set(true);
        assert!(!forced.forced(), "set says what follows");
        std::env::remove_var(other);
    }

    #[test]
    fn a_runtime_switch_reads_the_environment_once_then_keeps_what_it_is_set_to() {
        let name = "DBRMT_SWITCHES_TEST_RUNTIME";
        std::env::set_var(name, "off");
        let switch = RuntimeSwitch::new(name);
        assert!(!switch.enabled());
        std::env::remove_var(name);
        assert!(!switch.enabled(), "read once");
        switch.set(true);
        assert!(switch.enabled());
        switch.set(false);
        assert!(!switch.enabled());
    }
}
