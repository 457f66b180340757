//! Evaluation output: the per-packet CSV, received WAVs, the JSON summary
//! and the text table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use sotto_codecs::wav::{self, Clip};

use super::{EvalError, EvalReport};

/// The per-packet CSV: one row per transmitted packet with its frame,
/// send and arrival time, network delay, whether its audio is a pause (1)
/// or speech (0), then each buffer's playout delay (empty when the frame
/// was not played).
pub fn csv(report: &EvalReport) -> String {
    let mut text = String::from("frame,send_ms,arrival_ms,network_delay_ms,quiet");
    for (run, _) in &report.buffers {
        let _ = write!(text, ",{}_playout_delay_ms", run.name);
    }
    text.push('\n');
    for (f, a) in report.frames.iter().zip(&report.arrivals) {
        let _ = write!(text, "{},{:.3}", f.frame, f.send_ms);
        match a {
            Some(a) => {
                let _ = write!(text, ",{a:.3},{:.3}", a - f.send_ms);
            }
            None => text.push_str(",,"),
        }
        let _ = write!(text, ",{}", u8::from(f.quiet));
        for (run, _) in &report.buffers {
            match run.playout_ms.get(&f.frame) {
                Some(t) => {
                    let _ = write!(text, ",{:.3}", t - f.send_ms);
                }
                None => text.push(','),
            }
        }
        text.push('\n');
    }
    text
}

/// Writes [`csv`] to `path`.
pub fn write_csv(path: &Path, report: &EvalReport) -> Result<(), EvalError> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))?;
    file.write_all(csv(report).as_bytes())
        .map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))
}

/// Writes `received_<buffer>.wav` (48 kHz) for every buffer that made audio.
pub fn write_wavs(dir: &Path, report: &EvalReport) -> Result<(), EvalError> {
    for (run, _) in &report.buffers {
        if run.audio.is_empty() {
            continue;
        }
        let clip = Clip {
            sample_rate: 48_000,
            channels: 1,
            samples: run.audio.clone(),
        };
        wav::write(dir.join(format!("received_{}.wav", run.name)), &clip)?;
    }
    Ok(())
}

/// A fixed-width table of the figures.
pub fn table(report: &EvalReport) -> String {
    let w = report
        .buffers
        .iter()
        .map(|(r, _)| r.name.len())
        .fold(14, usize::max);
    let mut t = format!(
        "{:<w$} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}\n",
        "buffer", "mean_ms", "p95_ms", "late%", "conceal%", "accel%", "expand%", "pesq"
    );
    for (run, m) in &report.buffers {
        let _ = writeln!(
            t,
            "{:<w$} {:>9.1} {:>9.1} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>7}",
            run.name,
            m.mean_delay_ms,
            m.p95_delay_ms,
            m.late_loss * 100.0,
            m.concealment * 100.0,
            m.accelerate_rate * 100.0,
            m.expand_rate * 100.0,
            m.pesq_wb.map_or("-".into(), |p| format!("{p:.2}")),
        );
    }
    t
}

/// Whether Sotto meets the goal on this run, as text lines.
pub fn goal(report: &EvalReport) -> Vec<String> {
    let get = |n: &str| {
        report
            .buffers
            .iter()
            .find(|(r, _)| r.name == n)
            .map(|(_, m)| m.clone())
    };
    let mut out = Vec::new();
    let (Some(s), Some(o)) = (get("sotto"), get("oracle")) else {
        return out;
    };
    out.push(format!(
        "late loss {:.2}% <= 1%: {}",
        s.late_loss * 100.0,
        verdict(s.late_loss <= 0.01)
    ));
    if let Some(x) = get("speex") {
        out.push(format!(
            "sotto {:.1} ms <= 0.8 x speex {:.1} ms at <= its late loss ({:.2}% vs {:.2}%): {}",
            s.mean_delay_ms,
            x.mean_delay_ms,
            s.late_loss * 100.0,
            x.late_loss * 100.0,
            verdict(s.mean_delay_ms <= 0.8 * x.mean_delay_ms && s.late_loss <= x.late_loss)
        ));
        if let Some(os) = get("oracle_speex").filter(|os| os.mean_delay_ms > 0.8 * x.mean_delay_ms)
        {
            out.push(format!(
                "  no per-talkspurt schedule can: the oracle at speex's late loss needs {:.1} ms; \
                 playing every frame at the first pull after it arrived would average {:.1} ms",
                os.mean_delay_ms, report.pull_floor_ms
            ));
        }
    }
    out.push(format!(
        "sotto {:.1} ms <= 1.25 x oracle {:.1} ms: {}",
        s.mean_delay_ms,
        o.mean_delay_ms,
        verdict(s.mean_delay_ms <= 1.25 * o.mean_delay_ms)
    ));
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The JSON summary object (one line), with the field names.
#[cfg(feature = "eval")]
pub fn json(trace: &str, report: &EvalReport, reference_pesq: Option<f64>) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut buffers = Map::new();
    for (run, m) in &report.buffers {
        buffers.insert(run.name.clone(), metrics_json(m));
    }
    let sotto_stats = report
        .buffers
        .first()
        .and_then(|(r, _)| r.stats.as_ref())
        .map(|s| {
            Value::Object(
                s.w3c()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect(),
            )
        });
    json!({
        "trace": trace,
        "link": {
            "sent": report.link.sent,
            "lost": report.link.lost,
            "reordered": report.link.reordered,
            "mean_delay_ms": report.link.mean_delay.as_secs_f64() * 1000.0,
            "p95_delay_ms": report.link.p95_delay.as_secs_f64() * 1000.0,
        },
        "lossless_opus_pesq_wb": reference_pesq,
        "pull_floor_delay_ms": report.pull_floor_ms,
        "buffers": buffers,
        "sotto_w3c": sotto_stats,
    })
}

#[cfg(feature = "eval")]
fn metrics_json(m: &super::BufferMetrics) -> serde_json::Value {
    serde_json::json!({
        "mean_delay_ms": m.mean_delay_ms,
        "p95_delay_ms": m.p95_delay_ms,
        "late_loss": m.late_loss,
        "concealment": m.concealment,
        "accelerate_rate": m.accelerate_rate,
        "expand_rate": m.expand_rate,
        "pesq_wb": m.pesq_wb,
        "pesq_wb_windows": m.pesq_wb_windows,
    })
}
