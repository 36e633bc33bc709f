//! The many-requests section of `docs/BENCHMARKS.md`: `dbrmt bench requests` lines (`"kind": "requests"`) as two
//! tables — prefill throughput packed against one after another, and decode tokens/s summed over concurrent requests
//! against one request — with the slot occupancy (the share of `steps × layers` slots that ran a whole segment).

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

/// Appends the section to `md` (nothing when there is no `requests` line).
pub fn section(lines: &[Value], md: &mut String) -> Result<()> {
    let rows: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "requests").collect();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "\n## Many requests in one schedule\n\n`dbrmt bench requests`: host wall-clock time of whole runs through the \
         request API (launches, logits and state copies, sampling), random weights, LM head excluded from prefills. \
         Slot occupancy: the share of the `steps × layers` layer slots that ran a whole segment."
    )?;
    prefill_table(&rows, md)?;
    decode_table(&rows, md)
}

fn get<'a>(rows: &[&'a Value], mode: &str, method: &str, key: (&Value, &Value, &Value)) -> Option<&'a Value> {
    rows.iter()
        .rev()
        .find(|l| l["mode"] == mode && l["method"] == method && (&l["model"], &l["tokens"], &l["requests"]) == key)
        .copied()
}

fn prefill_table(rows: &[&Value], md: &mut String) -> Result<()> {
    let packed: Vec<&Value> = rows
        .iter()
        .filter(|l| l["mode"] == "prefill" && l["method"] == "packed")
        .copied()
        .collect();
    if packed.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "\n### Prefill: packed against one after another\n\n| model | T | requests × tokens | packed ms | one after \
         another ms | speed-up | packed tokens/s | slot occupancy packed / one after another | GiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for p in packed {
        let key = (&p["model"], &p["tokens"], &p["requests"]);
        let serial = get(rows, "prefill", "serial", key);
        let (pm, sm) = (p["ms"].as_f64(), serial.and_then(|s| s["ms"].as_f64()));
        writeln!(
            md,
            "| {} | {} | {} × {} | {} | {} | {} | {} | {} / {} | {} |",
            p["model"].as_str().unwrap_or("?"),
            p["segment"],
            p["requests"],
            p["tokens"],
            num(pm, 1),
            num(sm, 1),
            match (pm, sm) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
                _ => "—".into(),
            },
            num(p["tokens_per_s"].as_f64(), 0),
            num(p["slot_occupancy"].as_f64(), 2),
            num(serial.and_then(|s| s["slot_occupancy"].as_f64()), 2),
            num(p["requests_gib"].as_f64(), 2),
        )?;
    }
    Ok(())
}

fn decode_table(rows: &[&Value], md: &mut String) -> Result<()> {
    let decode: Vec<&Value> = rows.iter().filter(|l| l["mode"] == "decode").copied().collect();
    if decode.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "\n### Decoding: tokens/s summed over concurrent requests\n\n| model | T | prompt | new tokens | requests | \
         tokens/s | × one request | ms per step | open cells per step | GiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for l in &decode {
        let one = decode
            .iter()
            .find(|o| {
                o["requests"] == 1
                    && (&o["model"], &o["tokens"], &o["decode"]) == (&l["model"], &l["tokens"], &l["decode"])
            })
            .and_then(|o| o["tokens_per_s"].as_f64());
        let tps = l["tokens_per_s"].as_f64();
        let steps = l["steps"].as_f64().filter(|&s| s > 0.0);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l["model"].as_str().unwrap_or("?"),
            l["segment"],
            l["tokens"],
            l["decode"],
            l["requests"],
            num(tps, 0),
            match (tps, one) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
                _ => "—".into(),
            },
            num(steps.and_then(|s| Some(l["ms"].as_f64()? / s)), 2),
            num(steps.and_then(|s| Some(l["open_cells"].as_f64()? / s)), 1),
            num(l["requests_gib"].as_f64(), 2),
        )?;
    }
    Ok(())
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".into(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn packed_beside_serial_and_decode_beside_one_request() {
        let line = |mode: &str, method: &str, n: u64, ms: f64, tps: f64| {
            json!({"kind": "requests", "mode": mode, "method": method, "requests": n, "tokens": 8192, "decode": 0,
                   "model": "llama-3.2-1b", "segment": 1024, "ms": ms, "tokens_per_s": tps, "steps": 100,
                   "open_cells": 400, "slot_occupancy": 0.5, "requests_gib": 1.0})
        };
        let mut lines = vec![
            line("prefill", "packed", 16, 200.0, 1.0),
            line("prefill", "serial", 16, 500.0, 1.0),
        ];
        lines.push(line("decode", "packed", 1, 1000.0, 50.0));
        lines.push(line("decode", "packed", 16, 1000.0, 600.0));
        let mut md = String::new();
        super::section(&lines, &mut md).unwrap();
        assert!(md.contains("| 200.0 | 500.0 | 2.50× |"), "{md}");
        assert!(md.contains("| 16 | 600 | 12.0× | 10.00 | 4.0 |"), "{md}");
        let mut empty = String::new();
        super::section(&[json!({"kind": "e2e"})], &mut empty).unwrap();
        assert!(empty.is_empty());
    }
}
