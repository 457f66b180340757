//! Turning criterion's saved estimates into a side-by-side report.
//!
//! Convention for every criterion bench in `benches/`: the benchmark group is
//! `<bench>/<case>` and each group has one function named `sotto` and one
//! named after the reference peer (`libsrtp2`, `bzrtp`, …), both measuring
//! the same unit of work (one packet, one handshake, one 10 ms pull).
//! Benches whose figures are not criterion timings print their own report
//! and JSON line, and have no groups here.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// One measured function: which case, which implementation, ns per unit.
struct Estimate {
    case: String,
    implementation: String,
    mean_ns: f64,
}

/// Prints a table of units per second for Sotto and the reference peer and
/// their ratio (>1 means Sotto is faster), then one JSON line.
pub fn print(target_dir: &Path, bench: &str) -> Result<()> {
    let estimates = collect(&target_dir.join("criterion"), bench)?;
    if estimates.is_empty() {
        // A bench with its own report (not criterion timings).
        return Ok(());
    }
    let mut cases: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for e in &estimates {
        cases
            .entry(&e.case)
            .or_default()
            .insert(&e.implementation, e.mean_ns);
    }
    println!();
    println!(
        "{:<44} {:>14} {:>10} {:>14} {:>7}",
        "case", "sotto /s", "reference", "reference /s", "ratio"
    );
    let mut rows = Vec::new();
    for (case, impls) in &cases {
        let Some(&ours) = impls.get("sotto") else {
            continue;
        };
        let reference = impls.iter().find(|(name, _)| **name != "sotto");
        let ours_per_s = 1e9 / ours;
        let (ref_name, ref_per_s, ratio) = match reference {
            Some((name, &ns)) => (*name, Some(1e9 / ns), Some(ns / ours)),
            None => ("-", None, None),
        };
        println!(
            "{case:<44} {ours_per_s:>14.0} {ref_name:>10} {:>14} {:>7}",
            ref_per_s.map_or("-".into(), |v| format!("{v:.0}")),
            ratio.map_or("-".into(), |v| format!("{v:.2}x")),
        );
        rows.push(json!({
            "case": case,
            "sotto_per_s": ours_per_s,
            "reference": ref_name,
            "reference_per_s": ref_per_s,
            "ratio": ratio,
        }));
    }
    println!("{}", json!({ "bench": bench, "cases": rows }));
    Ok(())
}

/// Reads every `new/benchmark.json` + `new/estimates.json` pair under
/// `criterion_dir` whose group belongs to `bench`.
fn collect(criterion_dir: &Path, bench: &str) -> Result<Vec<Estimate>> {
    let mut found = Vec::new();
    let prefix = format!("{bench}/");
    let mut stack = vec![criterion_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let meta = path.join("new/benchmark.json");
            if meta.is_file() {
                let meta: Value = read_json(&meta)?;
                let group = meta["group_id"].as_str().unwrap_or_default();
                if let Some(case) = group.strip_prefix(&prefix) {
                    let est: Value = read_json(&path.join("new/estimates.json"))?;
                    found.push(Estimate {
                        case: case.to_string(),
                        implementation: meta["function_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        mean_ns: est["mean"]["point_estimate"]
                            .as_f64()
                            .context("estimates.json without a mean")?,
                    });
                }
            } else {
                stack.push(path);
            }
        }
    }
    Ok(found)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}
