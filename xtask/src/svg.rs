//! Line plots as SVG text (for docs/bench/): linear or log axes with decade ticks, one coloured line with markers per
//! series, a legend. Small on purpose: the benchmark report needs a few plots, not a plotting library.

use std::fmt::Write as _;

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One axis: its range in (possibly log) units and where ticks go.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Self {
        let v: Vec<f64> = values
            .filter(|x| x.is_finite() && (!log || *x > 0.0))
            .map(|x| if log { x.log10() } else { x })
            .collect();
        let (mut lo, mut hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if log {
            (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
        } else {
            let pad = ((hi - lo) * 0.08).max(1e-9);
            (lo, hi) = ((lo - pad).min(0.0_f64.max(lo - pad)), hi + pad);
        }
        Self { log, lo, hi }
    }

    /// Position in 0..1 of value `x`.
    fn frac(&self, x: f64) -> f64 {
        let x = if self.log { x.log10() } else { x };
        (x - self.lo) / (self.hi - self.lo)
    }

    /// Tick values and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|e| {
                    let v = 10f64.powi(e);
                    (v, human(v))
                })
                .collect()
        } else {
            let step = nice_step((self.hi - self.lo) / 5.0);
            let mut t = (self.lo / step).ceil() * step;
            let mut out = Vec::new();
            while t <= self.hi + 1e-12 {
                out.push((t, human(t)));
                t += step;
            }
            out
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let e = raw.log10().floor();
    let base = 10f64.powf(e);
    let m = raw / base;
    base * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}K", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Plot {
    pub fn svg(&self) -> String {
        let xs = Axis::new(
            self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
            self.log_x,
        );
        let ys = Axis::new(
            self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            self.log_y,
        );
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |x: f64| LEFT + xs.frac(x) * pw;
        let py = |y: f64| TOP + (1.0 - ys.frac(y)) * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="14" font-weight="bold">{}</text>"#,
            LEFT,
            escape(&self.title)
        );
        for (v, label) in xs.ticks() {
            let x = px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                TOP + ph,
                TOP + ph + 16.0
            );
        }
        for (v, label) in ys.ticks() {
            let y = py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 12.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut pts: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| {
                    x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0) && (!self.log_y || *y > 0.0)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for &(x, y) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    px(x),
                    py(y)
                );
            }
            let ly = TOP + 14.0 + 18.0 * i as f64;
            let lx = LEFT + pw + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Horizontal bars, one per label, longest scale at the widest bar (for a profile's shares).
#[derive(Debug, Clone)]
pub struct Bars {
    pub title: String,
    pub unit: String,
    pub bars: Vec<(String, f64)>,
}

impl Bars {
    pub fn svg(&self) -> String {
        let (left, bar_h, gap, top) = (240.0, 18.0, 6.0, 40.0);
        let h = top + (bar_h + gap) * self.bars.len() as f64 + 20.0;
        let max = self.bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12);
        let scale = (W - left - 120.0) / max;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="10" y="22" font-size="14" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        for (i, (label, v)) in self.bars.iter().enumerate() {
            let y = top + (bar_h + gap) * i as f64;
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{:.1}" height="{bar_h}" fill="{}"/><text x="{:.1}" y="{:.1}">{} {}</text>"##,
                left - 8.0,
                y + 13.0,
                escape(label),
                v * scale,
                COLOURS[i % COLOURS.len()],
                left + v * scale + 6.0,
                y + 13.0,
                trim(*v),
                escape(&self.unit)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_log_plot_has_every_point_and_decade() {
        let plot = Plot {
            title: "t <x>".into(),
            x_label: "tokens".into(),
            y_label: "ms".into(),
            log_x: true,
            log_y: true,
            series: vec![Series {
                name: "a".into(),
                points: vec![(4096.0, 12.0), (131072.0, 500.0)],
            }],
        };
        let svg = plot.svg();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("t &lt;x&gt;"));
        assert!(svg.contains(">1K<") && svg.contains(">1M<") && svg.contains(">1K<"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn bars_have_one_rect_per_label() {
        let b = Bars {
            title: "p".into(),
            unit: "%".into(),
            bars: vec![("gemm".into(), 60.0), ("attention <x>".into(), 40.0)],
        };
        let svg = b.svg();
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("attention &lt;x&gt;"));
    }
}
