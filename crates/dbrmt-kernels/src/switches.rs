//! The switches: environment variables that turn one optimisation off (`NAME=off`), to compare a run against it or to
//! step around it. Every one leaves the bits of every result as they are (each has a check that says so), except
//! `DBRMT_MEMORY`, which picks the memory read's kernels (see the README's list). They are read here, one way.

/// Narrow tiles for launches of few rows (`gemm_sm90::decode_tiles_enabled`).
pub const DECODE_TILES: &str = "DBRMT_DECODE_TILES";
/// Programmatic dependent launch on every kernel (`launch::pdl_enabled`).
pub const PDL: &str = "DBRMT_PDL";
/// Stages of weights a GEMM requests before the previous kernel has finished (`gemm_sm90::early_weight_stages`;
/// `off` or a count).
pub const EARLY_WEIGHTS: &str = "DBRMT_EARLY_WEIGHTS";
/// Stages of the memory state the fused read requests before the previous kernel has finished
/// (`armt_read_fused_sm90::early_state_stages`; `off` or a count).
pub const EARLY_STATE: &str = "DBRMT_EARLY_STATE";
/// One GEMM group per projection for a layer's open cells, instead of one per cell (`dbrmt-model`).
pub const MERGE_ROWS: &str = "DBRMT_MERGE_ROWS";
/// Greedy ids chosen on the device (`argmax_rows_f32`) instead of on the host from copied logits (`dbrmt-model`).
pub const DEVICE_ARGMAX: &str = "DBRMT_DEVICE_ARGMAX";

/// Whether the environment turns switch `name` off (`name=off`; unset or any other value: on).
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "off")
}

/// A count switch: `name=off` is 0, `name=<n>` is n (at most 255), anything else (or unset) is `default`.
pub fn count(name: &str, default: u8) -> u8 {
    match std::env::var(name) {
        Ok(v) if v == "off" => 0,
        Ok(v) => v.parse::<u32>().map_or(default, |n| n.min(255) as u8),
        Err(_) => default,
    }
}

/// A process-wide count read once from the environment ([`count`]) unless set first (the checks set both values).
#[derive(Debug)]
pub struct Count {
    name: &'static str,
    default: u8,
    /// `u32::MAX`: not read yet.
    value: std::sync::atomic::AtomicU32,
}

impl Count {
    pub const fn new(name: &'static str, default: u8) -> Self {
        Self {
            name,
            default,
            value: std::sync::atomic::AtomicU32::new(u32::MAX),
        }
    }

    pub fn get(&self) -> u8 {
        use std::sync::atomic::Ordering::Relaxed;
        match self.value.load(Relaxed) {
            u32::MAX => {
                let v = count(self.name, self.default);
                self.value.store(u32::from(v), Relaxed);
                v
            }
            v => v as u8,
        }
    }

    pub fn set(&self, v: u8) {
        self.value.store(u32::from(v), std::sync::atomic::Ordering::Relaxed);
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
    fn a_count_is_off_a_number_or_the_default() {
        let name = "DBRMT_SWITCHES_COUNT_TEST_ONLY";
        assert_eq!(count(name, 7), 7);
        std::env::set_var(name, "off");
        assert_eq!(count(name, 7), 0);
        std::env::set_var(name, "3");
        assert_eq!(count(name, 7), 3);
        std::env::set_var(name, "1000");
        assert_eq!(count(name, 7), 255);
        std::env::set_var(name, "many");
        assert_eq!(count(name, 7), 7);
        let c = Count::new(name, 7);
        assert_eq!(c.get(), 7, "read once");
        c.set(0);
        assert_eq!(c.get(), 0);
        std::env::remove_var(name);
    }
}
