//! `cargo xtask bench-report DIR [--out docs/BENCHMARKS.md]`: the JSON lines of one benchmark run (ours from
//! `dbrmt bench`, the baselines from `benches/python/`, all in `DIR/*.jsonl`) → `docs/BENCHMARKS.md` with its
//! tables and SVG plots in `docs/bench/`. Runs anywhere (no GPU): the measurements come from the GPU host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::cargo;
use crate::svg::{Bars, Plot, Series};

pub fn run(args: &[String]) -> Result<()> {
    let mut dir = None;
    let mut out = cargo::repo_root().join("docs/BENCHMARKS.md");
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().context("--out needs a path")?),
            other if dir.is_none() => dir = Some(PathBuf::from(other)),
            other => bail!("bench-report: unexpected argument `{other}`"),
        }
    }
    let dir = dir.context("usage: cargo xtask bench-report DIR [--out FILE]")?;
    let lines = read_lines(&dir)?;
    let matrix = Matrix::read(&cargo::repo_root().join("benches/matrix.toml"))?;
    let plots = out.parent().unwrap_or(Path::new(".")).join("bench");
    fs::create_dir_all(&plots)?;
    let run_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A run's own words (what ran where, what is odd about it) go at the top of the report.
    let notes = fs::read_to_string(dir.join("NOTES.md")).unwrap_or_default();
    let report = Report {
        lines,
        matrix,
        run_name,
        notes,
    };
    let text = report.markdown(&plots)?;
    fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "bench-report: wrote {} and the plots in {}",
        out.display(),
        plots.display()
    );
    Ok(())
}

/// Every JSON object of every `*.jsonl` file in `dir`.
fn read_lines(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for (i, line) in fs::read_to_string(&f)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", f.display(), i + 1))?;
            out.push(v);
        }
    }
    if out.is_empty() {
        bail!("no measurements in {}/*.jsonl", dir.display());
    }
    Ok(out)
}

/// The parts of `benches/matrix.toml` the report needs: shapes (for FLOP counts) and the rows' order.
#[derive(Debug, Deserialize)]
struct Matrix {
    defaults: Defaults,
    models: BTreeMap<String, Shape>,
    #[serde(default)]
    row: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Defaults {
    mem_tokens: usize,
    d_mem: usize,
    nu: usize,
}

#[derive(Debug, Deserialize)]
struct Shape {
    hidden_size: usize,
    num_layers: usize,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    intermediate_size: usize,
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    model: String,
    segment: usize,
    tokens: usize,
    logits: String,
}

impl Matrix {
    fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// FLOPs of an ARMT prefill of `row` (LM head excluded): every cell's projections, causal attention (half of
    /// full) and memory read and write.
    fn flops(&self, row: &Row) -> f64 {
        let Some(s) = self.models.get(&row.model) else {
            return f64::NAN;
        };
        let (d, q, kv, i) = (
            s.hidden_size as f64,
            (s.num_heads * s.head_dim) as f64,
            (s.num_kv_heads * s.head_dim) as f64,
            s.intermediate_size as f64,
        );
        let (m, dm) = (self.defaults.mem_tokens as f64, self.defaults.d_mem as f64);
        let dk = 2.0 * self.defaults.nu as f64 * dm;
        let mut total = 0.0;
        let mut left = row.tokens;
        let mut s_idx = 0;
        while left > 0 {
            let t = left.min(row.segment);
            left -= t;
            let rows = t as f64 + m;
            let proj = 2.0 * rows * d * (q + 2.0 * kv) + 2.0 * rows * q * d + 4.0 * rows * d * i + 2.0 * rows * i * d;
            let attn = 2.0 * rows * rows * (s.head_dim * s.num_heads) as f64; // 4·rows²·hd·H / 2
            let read = if s_idx > 0 {
                2.0 * rows * d * dm + 2.0 * rows * dk * d
            } else {
                0.0
            };
            let write =
                2.0 * m * d * (dm + d + 1.0) + if s_idx > 0 { 2.0 * m * dk * d } else { 0.0 } + 2.0 * dk * m * d;
            total += s.num_layers as f64 * (proj + attn + read + write);
            s_idx += 1;
        }
        total
    }
}

struct Report {
    lines: Vec<Value>,
    matrix: Matrix,
    /// The results directory's name (e.g. `2026-11-30-h200`).
    run_name: String,
    /// `NOTES.md` of the results directory, printed after the introduction.
    notes: String,
}

/// Methods in table order, with their column titles.
const METHODS: [(&str, &str); 6] = [
    ("dbrmt-diagonal", "dbrmt diagonal"),
    ("dbrmt-sequential", "dbrmt sequential"),
    ("torch-sequential", "PyTorch ARMT seq"),
    ("torch-diagonal", "PyTorch diagonal"),
    ("torch-diagonal-graph", "PyTorch diag + graph"),
    ("torch-sdpa-full", "PyTorch SDPA full attention"),
];

impl Report {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["kind"] == kind)
    }

    /// The e2e time in ms of `method` on `row`, if measured without error.
    fn e2e_ms(&self, row: &str, method: &str) -> Option<f64> {
        self.of_kind("e2e")
            .filter(|l| l["row"] == row && l["method"] == method)
            .filter_map(|l| l["ms"].as_f64())
            .last()
    }

    fn ceiling(&self, method: &str, field: &str) -> Option<f64> {
        self.of_kind("ceiling")
            .filter(|l| l["method"] == method)
            .filter_map(|l| l[field].as_f64())
            .last()
    }

    fn device(&self) -> String {
        self.lines
            .iter()
            .filter_map(|l| l["device"].as_str())
            .next()
            .unwrap_or("unknown GPU")
            .to_string()
    }

    fn markdown(&self, plots: &Path) -> Result<String> {
        let mut md = String::new();
        let gemm = self.ceiling("torch-matmul-bf16", "tflops");
        writeln!(
            md,
            "# Benchmarks\n\nMeasured on one **{}**; every number on this page comes from one run of \
             `dist/run.sh bench` (or `cargo xtask bench` on a GPU host), ours and the PyTorch baselines on the same GPU, \
             kept as JSON lines in `benches/results/{}/` and turned into this page by `cargo xtask bench-report \
             benches/results/{}`. Times are CUDA-event medians after warm-up (`benches/matrix.toml` gives the runs per \
             row); random weights of the published shapes, bf16, M = {} memory tokens, d_mem = {}, batch 1.\n",
            self.device(),
            self.run_name,
            self.run_name,
            self.matrix.defaults.mem_tokens,
            self.matrix.defaults.d_mem
        )?;
        if !self.notes.trim().is_empty() {
            writeln!(md, "{}\n", self.notes.trim())?;
        }
        writeln!(
            md,
            "## Ceilings, measured in the same run\n\n| what | rate |\n|---|---|"
        )?;
        if let Some(t) = gemm {
            writeln!(md, "| cuBLAS bf16 GEMM (`torch.matmul`, 4096³) | {t:.0} TFLOP/s |")?;
        }
        if let Some(g) = self.ceiling("torch-copy-d2d", "gbps") {
            writeln!(md, "| device-to-device copy (read + write) | {:.2} TB/s |", g / 1e3)?;
        }
        self.step_ceiling_table(&mut md)?;
        self.e2e_table(&mut md, gemm)?;
        self.decode_table(&mut md)?;
        crate::bench_requests::section(&self.lines, &mut md)?;
        self.load_table(&mut md)?;
        self.kernel_table(&mut md)?;
        self.attention_table(&mut md)?;
        self.profiles(&mut md, plots)?;
        self.plots(&mut md, plots)?;
        Ok(md)
    }

    fn e2e_table(&self, md: &mut String, gemm: Option<f64>) -> Result<()> {
        writeln!(
            md,
            "\n## End to end: one prefill\n\nms per prefill (LM head excluded, as in the paper, unless the row says \
             `last`); our diagonal engine's achieved TFLOP/s (ARMT FLOPs: projections, causal attention counted as \
             half of full, memory read and write) and its share of the cuBLAS rate above; the ratio of each \
             baseline's time to ours (> 1: we are faster).\n"
        )?;
        let mut head = String::from("| row | tokens | T |");
        let mut rule = String::from("|---|---:|---:|");
        for (_, title) in METHODS {
            head.push_str(&format!(" {title} |"));
            rule.push_str("---:|");
        }
        head.push_str(
            " diag TFLOP/s (% cuBLAS) | seq / diag | torch diag+graph / diag | SDPA full / diag | peak GiB (diag) |",
        );
        rule.push_str("---:|---:|---:|---:|---:|");
        writeln!(md, "{head}\n{rule}")?;
        for row in &self.matrix.row {
            let ms: Vec<Option<f64>> = METHODS.iter().map(|(m, _)| self.e2e_ms(&row.id, m)).collect();
            if ms.iter().all(Option::is_none) {
                continue;
            }
            let mut line = format!(
                "| {}{} | {} | {} |",
                row.id,
                if row.logits == "last" {
                    " (last-token logits)"
                } else {
                    ""
                },
                row.tokens,
                row.segment
            );
            for m in &ms {
                line.push_str(&format!(" {} |", fmt_ms(*m)));
            }
            let diag = ms[0];
            let tflops = diag.map(|t| self.matrix.flops(row) / (t * 1e-3) / 1e12);
            line.push_str(&match (tflops, gemm) {
                (Some(t), Some(g)) => format!(" {t:.0} ({:.0}%) |", 100.0 * t / g),
                (Some(t), None) => format!(" {t:.0} |"),
                _ => " — |".into(),
            });
            for other in [ms[1], ms[4], ms[5]] {
                line.push_str(&format!(" {} |", ratio(other, diag)));
            }
            let peak = self
                .of_kind("e2e")
                .filter(|l| l["row"] == row.id.as_str() && l["method"] == "dbrmt-diagonal")
                .filter_map(|l| l["peak_gib"].as_f64())
                .last();
            line.push_str(&format!(" {} |", peak.map_or("—".into(), |p| format!("{p:.2}"))));
            writeln!(md, "{line}")?;
        }
        let errors: Vec<String> = self
            .of_kind("e2e")
            .filter_map(|l| {
                Some(format!(
                    "{} {}: {}",
                    l["row"].as_str()?,
                    l["method"].as_str()?,
                    l["error"].as_str()?
                ))
            })
            .collect();
        if !errors.is_empty() {
            writeln!(md, "\nNot measured: {}.", errors.join("; "))?;
        }
        Ok(())
    }

    fn decode_table(&self, md: &mut String) -> Result<()> {
        let rows: Vec<&Value> = self.of_kind("decode").collect();
        if rows.is_empty() {
            return Ok(());
        }
        writeln!(
            md,
            "\n## Decoding: one request after a prompt\n\n| row | method | prompt | new tokens | ms / token | tokens/s | prefill ms |\n|---|---|---:|---:|---:|---:|---:|"
        )?;
        for l in rows {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                l["row"].as_str().unwrap_or("?"),
                l["method"].as_str().unwrap_or("?"),
                l["prompt"],
                l["new_tokens"],
                l["ms_per_token"].as_f64().map_or("—".into(), |x| format!("{x:.3}")),
                l["tokens_per_s"].as_f64().map_or("—".into(), |x| format!("{x:.0}")),
                l["prefill_ms"].as_f64().map_or("—".into(), |x| format!("{x:.1}")),
            )?;
        }
        Ok(())
    }

    /// A full diagonal step's products and attention with cuBLAS + SDPA (`benches/python/step_ceiling.py`: op by op,
    /// one step cold, steps back to back), beside ours in the same step (the step profile's products and attention).
    fn step_ceiling_table(&self, md: &mut String) -> Result<()> {
        let rows: Vec<&Value> = self.of_kind("step-ceiling").filter(|l| l["ms"].is_number()).collect();
        if rows.is_empty() {
            return Ok(());
        }
        writeln!(
            md,
            "\n## A step's products and attention: cuBLAS + SDPA and ours\n\nOne full diagonal step (a cell per layer, \
             T + 128 rows each): q/k/v, attention, o, gate/up, down with `torch.bmm` over the cells' weights and SDPA \
             (`benches/python/step_ceiling.py`; torch's SwiGLU pass left out, ours is fused), op by op, one step \
             cold, and 128 steps back to back (the clock under the power limit); ours: the same launches in the step \
             profile.\n\n| model | T | op by op ms | one step ms | sustained ms | ours in the step ms |\n|---|---:|---:|---:|---:|---:|"
        )?;
        let mut shapes: Vec<(&str, u64)> = rows
            .iter()
            .filter_map(|l| Some((l["model"].as_str()?, l["segment"].as_u64()?)))
            .collect();
        shapes.dedup();
        for (model, segment) in shapes {
            let ms = |op: &str, mode: &str| {
                rows.iter()
                    .find(|l| l["model"] == model && l["segment"] == segment && l["op"] == op && l["mode"] == mode)
                    .and_then(|l| l["ms"].as_f64())
            };
            let ours = self
                .of_kind("profile")
                .find(|p| p["model"] == model && p["segment"] == segment)
                .and_then(|p| p["parts"].as_array())
                .map(|parts| {
                    let products = ["q/k/v", "attention", "o projection", "gate/up", "down"];
                    parts
                        .iter()
                        .filter(|part| {
                            let label = part["label"].as_str().unwrap_or("");
                            products.iter().any(|p| label.starts_with(p))
                        })
                        .filter_map(|part| part["ms"].as_f64())
                        .sum::<f64>()
                });
            let f = |x: Option<f64>| x.map_or("—".into(), |x| format!("{x:.3}"));
            writeln!(
                md,
                "| {model} | {segment} | {} | {} | {} | {} |",
                f(ms("sum", "alone")),
                f(ms("step", "cold")),
                f(ms("step", "sustained")),
                f(ours)
            )?;
        }
        Ok(())
    }

    fn load_table(&self, md: &mut String) -> Result<()> {
        let rows: Vec<&Value> = self.of_kind("load").collect();
        if rows.is_empty() {
            return Ok(());
        }
        writeln!(
            md,
            "\n## Loading a checkpoint onto the GPU\n\nA random bf16 safetensors checkpoint written to disk (page cache \
             warm), loaded in a fresh process: from the start of the load to the first launch; the host's anonymous \
             memory at its peak (the weights go from the memory-mapped file to the device, no f32 host model); the \
             logits against the same weights uploaded from memory.\n\n| checkpoint | GB | layers × hidden | load s | first launch s | RssAnon peak MB | logits |\n|---|---:|---|---:|---:|---:|---|"
        )?;
        for l in rows {
            writeln!(
                md,
                "| {} | {:.2} | {} × {} | {:.2} | {:.2} | {:.0} | {} |",
                l["dir"].as_str().unwrap_or("?"),
                l["bytes"].as_f64().unwrap_or(f64::NAN) / 1e9,
                l["layers"],
                l["hidden"],
                l["load_s"].as_f64().unwrap_or(f64::NAN),
                l["first_launch_s"].as_f64().unwrap_or(f64::NAN),
                l["rss_anon_peak_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6,
                if l["logits_bitwise_equal"] == true {
                    "bitwise equal"
                } else {
                    "DIFFER"
                },
            )?;
        }
        Ok(())
    }

    /// Our kernels beside their yardsticks of the same run: cuBLAS (the better of one GEMM and batched) for the
    /// products, PyTorch SDPA (the better of flash and cuDNN) for attention, the copy bandwidth for row kernels.
    fn kernel_table(&self, md: &mut String) -> Result<()> {
        let rows: Vec<&Value> = self.of_kind("kernel").collect();
        if rows.is_empty() {
            return Ok(());
        }
        let best = |kind: &str, field: &str, shape: &str, methods: &[&str]| {
            self.of_kind(kind)
                .filter(|l| l["shape"] == shape && methods.iter().any(|m| l["method"] == *m))
                .filter_map(|l| l[field].as_f64())
                .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
        };
        let copy = self
            .of_kind("kernel")
            .filter(|l| l["op"] == "copy")
            .filter_map(|l| l["gbps"].as_f64())
            .last();
        writeln!(
            md,
            "\n## Kernels at the models' shapes\n\nOurs beside the yardstick measured in the same run (`dbrmt bench kernels`, \
             CUDA events, L2 flushed, median): cuBLAS bf16 (f32 compute; the better of one GEMM over all the rows and \
             a strided-batched GEMM of the cells) for the projections — ours run as the engine runs them (o and down \
             accumulating into f32 rows, set against cuBLAS doing the same, f32 C += A·Bᵀ, where the run measured \
             it; gate/up with SwiGLU fused, against cuBLAS's plain gate/up product); PyTorch SDPA (the better of its flash and cuDNN \
             backends) for attention; cuBLAS SGEMM for the memory's f32 products; the device copy (`cuMemcpyDtoD`, \
             read + write) for the row kernels.\n\n| op | shape | ours | ms | TFLOP/s or GB/s | yardstick | % of it |\n|---|---|---|---:|---:|---:|---:|"
        )?;
        for l in rows {
            let (op, shape, imp) = (
                l["op"].as_str().unwrap_or("?"),
                l["shape"].as_str().unwrap_or("?"),
                l["method"].as_str().unwrap_or("?"),
            );
            if imp.starts_with("cublas") {
                continue;
            }
            let ms = l["ms"].as_f64().unwrap_or(f64::NAN);
            let (rate, yard) = match op {
                // o and down add into f32 rows: set against cuBLAS doing the same (f32 C += A·Bᵀ) where measured
                "gemm" => (
                    l["tflops"].as_f64(),
                    best("kernel", "tflops", shape, &["cublas-f32acc", "cublas-f32acc-batched"])
                        .or_else(|| best("kernel", "tflops", shape, &["cublas", "cublas-batched"])),
                ),
                "attention" if shape.contains("decode") => (
                    l["gbps"].as_f64(),
                    best("attention", "gbps", shape, &["torch-sdpa-flash", "torch-sdpa-cudnn"]),
                ),
                "attention" => (
                    l["tflops"].as_f64(),
                    best("attention", "tflops", shape, &["torch-sdpa-flash", "torch-sdpa-cudnn"]),
                ),
                // The memory's products are f32 GEMMs: cuBLAS SGEMM (f32 CUDA cores) is their yardstick.
                "memory" => (l["tflops"].as_f64(), best("kernel", "tflops", shape, &["cublas-sgemm"])),
                "copy" => (l["gbps"].as_f64(), None),
                _ => (l["gbps"].as_f64(), copy),
            };
            let pct = match (rate, yard) {
                (Some(r), Some(y)) if y > 0.0 => format!("{:.0}%", 100.0 * r / y),
                _ => "—".into(),
            };
            writeln!(
                md,
                "| {op} | {shape} | {imp} | {ms:.3} | {} | {} | {pct} |",
                rate.map_or("—".into(), |r| format!("{r:.0}")),
                yard.map_or("—".into(), |y| format!("{y:.0}")),
            )?;
        }
        Ok(())
    }

    fn attention_table(&self, md: &mut String) -> Result<()> {
        let rows: Vec<&Value> = self.of_kind("attention").filter(|l| l["ms"].is_number()).collect();
        if rows.is_empty() {
            return Ok(());
        }
        writeln!(
            md,
            "\n## Attention kernels at our shapes\n\nFLOPs of causal attention counted as half of full; decode rows in \
             GB/s of K/V read.\n\n| shape | method | cells × rows | heads (q/kv) × hd | ms | TFLOP/s | GB/s |\n|---|---|---|---|---:|---:|---:|"
        )?;
        for l in rows {
            writeln!(
                md,
                "| {} | {} | {} × {} | {}/{} × {} | {:.3} | {} | {} |",
                l["shape"].as_str().unwrap_or("?"),
                l["method"].as_str().unwrap_or("?"),
                l["cells"],
                l["rows"],
                l["q_heads"],
                l["kv_heads"],
                l["head_dim"],
                l["ms"].as_f64().unwrap_or(f64::NAN),
                l["tflops"].as_f64().map_or("—".into(), |x| format!("{x:.0}")),
                l["gbps"].as_f64().map_or("—".into(), |x| format!("{x:.0}")),
            )?;
        }
        Ok(())
    }

    /// The step profiles: a table and a bar chart each.
    fn profiles(&self, md: &mut String, dir: &Path) -> Result<()> {
        let profiles: Vec<&Value> = self.of_kind("profile").collect();
        if profiles.is_empty() {
            return Ok(());
        }
        writeln!(
            md,
            "\n## Step profile\n\nThe mean time per step of each launch over the full diagonal steps (every layer busy) of \
             a prefill, from CUDA events recorded between the launches (`dbrmt bench profile`); the largest share is \
             where the next kernel work goes."
        )?;
        for p in profiles {
            let model = p["model"].as_str().unwrap_or("?");
            let segment = p["segment"].as_u64().unwrap_or(0);
            writeln!(
                md,
                "\n### {model}, T = {segment}: {} cells per step, {:.3} ms per step (projections {}, attention {})\n\n| launch | ms | share |\n|---|---:|---:|",
                p["cells"],
                p["step_ms"].as_f64().unwrap_or(f64::NAN),
                p["projections"].as_str().unwrap_or("?"),
                p["attention"].as_str().unwrap_or("?"),
            )?;
            let mut bars = Vec::new();
            for part in p["parts"].as_array().into_iter().flatten() {
                let label = part["label"].as_str().unwrap_or("?");
                let ms = part["ms"].as_f64().unwrap_or(f64::NAN);
                let share = part["share"].as_f64().unwrap_or(f64::NAN);
                writeln!(md, "| {label} | {ms:.3} | {:.1}% |", 100.0 * share)?;
                bars.push((label.to_string(), 100.0 * share));
            }
            let file = format!("profile-{model}-t{segment}.svg");
            let chart = Bars {
                title: format!("{model}, T = {segment}: share of a {}-cell diagonal step", p["cells"]),
                unit: "%".into(),
                bars,
            };
            fs::write(dir.join(&file), chart.svg())?;
            writeln!(md, "\n![step profile of {model}](bench/{file})")?;
        }
        Ok(())
    }

    fn plots(&self, md: &mut String, dir: &Path) -> Result<()> {
        writeln!(md, "\n## Plots\n")?;
        // latency vs tokens per method, log-log (the paper's Figure 1), per model/segment sweep
        for (model, segment, file, title) in [
            (
                "llama-3.2-1b",
                1024,
                "latency-1b-t1024.svg",
                "Llama-3.2-1B, T = 1024: prefill latency vs tokens",
            ),
            (
                "llama-160m",
                512,
                "latency-160m-t512.svg",
                "LLaMA-160M, T = 512: prefill latency vs tokens",
            ),
        ] {
            let rows: Vec<&Row> = self
                .matrix
                .row
                .iter()
                .filter(|r| r.model == model && r.segment == segment && r.logits == "none")
                .collect();
            let series: Vec<Series> = METHODS
                .iter()
                .map(|(m, title)| Series {
                    name: title.to_string(),
                    points: rows
                        .iter()
                        .filter_map(|r| Some((r.tokens as f64, self.e2e_ms(&r.id, m)?)))
                        .collect(),
                })
                .filter(|s| s.points.len() > 1)
                .collect();
            if series.is_empty() {
                continue;
            }
            let plot = Plot {
                title: title.into(),
                x_label: "tokens".into(),
                y_label: "ms".into(),
                log_x: true,
                log_y: true,
                series,
            };
            fs::write(dir.join(file), plot.svg())?;
            writeln!(md, "![{title}](bench/{file})\n")?;
        }
        // speed-up of diagonal over sequential vs segment size (1B, 32K)
        let sweep: Vec<&Row> = self
            .matrix
            .row
            .iter()
            .filter(|r| r.model == "llama-3.2-1b" && r.tokens == 32768 && r.logits == "none")
            .collect();
        let speedup = |num: &str, den: &str| Series {
            name: format!("{num} / {den}"),
            points: sweep
                .iter()
                .filter_map(|r| Some((r.segment as f64, self.e2e_ms(&r.id, num)? / self.e2e_ms(&r.id, den)?)))
                .collect(),
        };
        let series: Vec<Series> = [
            speedup("dbrmt-sequential", "dbrmt-diagonal"),
            speedup("torch-sequential", "torch-diagonal"),
        ]
        .into_iter()
        .filter(|s| s.points.len() > 1)
        .collect();
        if !series.is_empty() {
            let file = "speedup-vs-segment.svg";
            let plot = Plot {
                title: "Llama-3.2-1B, 32K tokens: speed-up of diagonal over sequential vs segment size".into(),
                x_label: "segment size T".into(),
                y_label: "sequential time / diagonal time".into(),
                log_x: true,
                log_y: false,
                series,
            };
            fs::write(dir.join(file), plot.svg())?;
            writeln!(md, "![speed-up vs segment size](bench/{file})\n")?;
        }
        Ok(())
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step-ceiling table takes cuBLAS + SDPA op by op, cold and sustained, and sums our products and attention
    /// from the same shape's profile (not its memory path, norms or embedding).
    #[test]
    fn step_ceiling_beside_our_profile() {
        let ceiling = |op: &str, mode: &str, ms: f64| serde_json::json!({"kind": "step-ceiling", "model": "m", "segment": 1024, "op": op, "mode": mode, "ms": ms});
        let part = |label: &str, ms: f64| serde_json::json!({"label": label, "ms": ms});
        let lines = vec![
            ceiling("sum", "alone", 3.613),
            ceiling("step", "cold", 3.553),
            ceiling("step", "sustained", 3.726),
            serde_json::json!({"kind": "profile", "model": "m", "segment": 1024, "parts": [
                part("read: fused φ·A + apply", 0.34), part("q/k/v projection + rope", 0.387),
                part("attention", 0.351), part("o projection + residual", 0.274), part("rms_norm", 0.143),
                part("gate/up projection + swiglu", 1.787), part("down projection + residual", 0.922)]}),
        ];
        let report = Report {
            lines,
            matrix: Matrix::read(&cargo::repo_root().join("benches/matrix.toml")).unwrap(),
            run_name: "x".into(),
            notes: String::new(),
        };
        let mut md = String::new();
        report.step_ceiling_table(&mut md).unwrap();
        assert!(md.contains("| m | 1024 | 3.613 | 3.553 | 3.726 | 3.721 |"), "{md}");
    }

    /// One 1B segment of 1024 tokens + 128 memory rows: the projections dominate and match a hand count.
    #[test]
    fn flops_of_one_segment() {
        let m = Matrix::read(&cargo::repo_root().join("benches/matrix.toml")).unwrap();
        let row = Row {
            id: "x".into(),
            model: "llama-3.2-1b".into(),
            segment: 1024,
            tokens: 1024,
            logits: "none".into(),
        };
        let rows = 1152.0;
        let proj =
            2.0 * rows * 2048.0 * (2048.0 + 1024.0) + 2.0 * rows * 2048.0 * 2048.0 + 6.0 * rows * 2048.0 * 8192.0;
        let f = m.flops(&row);
        assert!(f > 16.0 * proj && f < 16.0 * proj * 1.1, "{f} vs {}", 16.0 * proj);
    }
}
