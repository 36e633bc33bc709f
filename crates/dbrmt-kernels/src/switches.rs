//! The switches: environment variables that turn one optimisation off (`NAME=off`), to compare a run against it or to
//! step around it. Every one leaves the bits of every result as they are (each has a check that says so), except
//! `DBRMT_MEMORY`, which picks the memory read's kernels (see the README's list). They are read here, one way.

/// Narrow tiles for launches of few rows (`gemm_sm90::decode_tiles_enabled`).
pub const DECODE_TILES: &str = "DBRMT_DECODE_TILES";
/// Programmatic dependent launch on every kernel (`launch::pdl_enabled`).
pub const PDL: &str = "DBRMT_PDL";
/// One GEMM group per projection for a layer's open cells, instead of one per cell (`dbrmt-model`).
pub const MERGE_ROWS: &str = "DBRMT_MERGE_ROWS";
/// Decode steps captured as CUDA graphs and replayed (`dbrmt-model`).
pub const GRAPHS: &str = "DBRMT_GRAPHS";
/// Greedy ids chosen on the device (`argmax_rows_f32`) instead of on the host from copied logits (`dbrmt-model`).
pub const DEVICE_ARGMAX: &str = "DBRMT_DEVICE_ARGMAX";

/// Whether the environment turns switch `name` off (`name=off`; unset or any other value: on).
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "off")
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
}
