//! Progress of long work on stderr: a prefill's tokens, its rate and how long it has left.
//!
//! The line appears only once the work has taken more than a moment ([`MOMENT`]), so quick commands print nothing,
//! and only when stderr is a terminal (indicatif hides it otherwise: logs and pipes stay clean);
//! `DBRMT_PROGRESS=always` shows it anyway, from the start, one line per second (for logs, and the tests). The
//! rate is the average since the work began (tokens ÷ elapsed), and the ETA the elapsed time scaled by the share
//! left, so both stay honest when updates come in bursts (the CPU model reports once per group of segments).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};

/// Work shorter than this shows no progress.
pub const MOMENT: Duration = Duration::from_secs(1);

/// What the bar measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Tokens, of a known total.
    Tokens,
    /// Bytes of a file whose token count is known only as it is read (tokens are counted beside).
    Bytes,
}

/// A progress line on stderr for one piece of work.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    tokens: Arc<AtomicU64>,
}

impl Progress {
    /// Progress of `what` (e.g. "prefill") over `total` units of `basis`.
    pub fn new(what: &'static str, total: u64, basis: Basis) -> Self {
        let always = std::env::var("DBRMT_PROGRESS").is_ok_and(|v| v == "always");
        let target = if always {
            ProgressDrawTarget::term_like_with_hz(Box::new(PlainStderr), 1)
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let tokens = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&tokens);
        let moment = if always { Duration::ZERO } else { MOMENT };
        let line = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            if state.elapsed() >= moment {
                let tokens = counted.load(Ordering::Relaxed);
                let _ = w.write_str(&render(what, basis, state.pos(), state.len(), tokens, state.elapsed()));
            }
        };
        if let Ok(style) = ProgressStyle::with_template("{line}") {
            bar.set_style(style.with_key("line", line));
        }
        // redrawn on a timer, so that the line appears after a moment and the elapsed time moves between updates
        bar.enable_steady_tick(if always {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(250)
        });
        Self { bar, tokens }
    }

    /// `tokens` tokens done, at `pos` of the total (for [`Basis::Tokens`], the same number).
    pub fn set(&self, tokens: u64, pos: u64) {
        self.tokens.store(tokens, Ordering::Relaxed);
        self.bar.set_position(pos);
    }

    /// Removes the line.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// `prefill [####--------] 12,288/30,412 tokens, 512 tokens/s, eta 36 s` (for a file: `40% of file, 12,288
/// tokens, …`).
fn render(what: &str, basis: Basis, pos: u64, len: Option<u64>, tokens: u64, elapsed: Duration) -> String {
    // short enough that the whole line fits 80 columns in the common cases (a wrapped line redraws badly)
    const WIDTH: usize = 12;
    let len = len.unwrap_or(0).max(1);
    let share = (pos as f64 / len as f64).clamp(0.0, 1.0);
    let filled = (share * WIDTH as f64).round() as usize;
    let mut s = format!("{what} [{}{}] ", "#".repeat(filled), "-".repeat(WIDTH - filled));
    match basis {
        Basis::Tokens => {
            let _ = write!(s, "{}/{} tokens", thousands(tokens), thousands(len));
        }
        Basis::Bytes => {
            let _ = write!(s, "{:.0}% of file, {} tokens", share * 100.0, thousands(tokens));
        }
    }
    let secs = elapsed.as_secs_f64();
    if tokens == 0 || secs <= 0.0 {
        let _ = write!(s, ", {secs:.0} s");
        return s;
    }
    let _ = write!(s, ", {} tokens/s", thousands((tokens as f64 / secs).round() as u64));
    if share > 0.0 {
        let _ = write!(s, ", eta {}", duration(secs * (1.0 - share) / share));
    }
    s
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `42 s`, `3 min 05 s`, `1 h 02 min`.
fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

/// stderr as a terminal that cannot move its cursor: each redraw is a line of its own (`DBRMT_PROGRESS=always`).
#[derive(Debug)]
struct PlainStderr;

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        if !s.is_empty() {
            eprintln!("{s}");
        }
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        if !s.trim().is_empty() {
            eprintln!("{s}");
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_gives_tokens_rate_and_eta() {
        let s = render(
            "prefill",
            Basis::Tokens,
            3000,
            Some(12000),
            3000,
            Duration::from_secs(6),
        );
        assert_eq!(s, "prefill [###---------] 3,000/12,000 tokens, 500 tokens/s, eta 18 s");
        let s = render("prefill", Basis::Bytes, 50, Some(100), 1234, Duration::from_secs(100));
        assert!(
            s.contains("50% of file, 1,234 tokens, 12 tokens/s, eta 1 min 40 s"),
            "{s}"
        );
        let s = render("prefill", Basis::Tokens, 0, Some(10), 0, Duration::from_secs(2));
        assert!(s.ends_with("0/10 tokens, 2 s"), "{s}");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(7300.0), "2 h 01 min");
    }
}
