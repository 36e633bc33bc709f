//! Parsers of the numeric flags, so that a bad number gets dbrmt's own message naming what is expected.
//!
//! Each flag that takes a number also accepts a leading `-` (`allow_negative_numbers`), so `--temperature -1` is
//! parsed and refused here ("must be ≥ 0") instead of being taken for an unknown flag `-1` by the parser.

/// A whole number ≥ 1 (token counts, segment sizes).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match whole(s) {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim().starts_with('-') => Err(format!("must be at least 1, got {}", s.trim())),
        Err(e) => Err(e),
    }
}

/// A whole number ≥ 0.
pub fn whole(s: &str) -> Result<usize, String> {
    let n: u64 = seed(s)?;
    usize::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A seed: a whole number in [0, 2⁶⁴).
pub fn seed(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("expected a whole number, got {t}"));
    }
    t.parse::<u64>()
        .map_err(|e| format!("expected a whole number ≥ 0 ({e})"))
}

/// A sampling temperature: 0 (greedy) or a finite positive number.
pub fn temperature(s: &str) -> Result<f32, String> {
    let t = number(s)?;
    if t >= 0.0 && t.is_finite() {
        Ok(t)
    } else {
        Err(format!("must be 0 (greedy) or a positive number, got {t}"))
    }
}

/// A nucleus-sampling mass in (0, 1].
pub fn top_p(s: &str) -> Result<f32, String> {
    let p = number(s)?;
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("must be in (0, 1] (1 keeps every token), got {p}"))
    }
}

fn number(s: &str) -> Result<f32, String> {
    s.trim()
        .parse::<f32>()
        .map_err(|_| format!("expected a number, got `{}`", crate::terminal_safe(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_malformed_numbers_say_what_is_expected() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert_eq!(at_least_one("0").unwrap_err(), "must be at least 1");
        assert_eq!(at_least_one("-5").unwrap_err(), "must be at least 1, got -5");
        assert!(seed("-1").unwrap_err().contains("expected a whole number, got -1"));
        assert!(seed("x").unwrap_err().contains("whole number"));
        assert_eq!(temperature("0"), Ok(0.0));
        assert!(temperature("-1")
            .unwrap_err()
            .contains("0 (greedy) or a positive number, got -1"));
        assert!(temperature("inf").is_err());
        assert!(top_p("1.5").unwrap_err().contains("(0, 1]"));
        assert!(top_p("0").is_err());
        assert_eq!(top_p("0.9"), Ok(0.9));
    }
}
