//! What the clock-skew tracker reads on real links. For each `packets.csv`
//! of a `sotto-jitter eval` run (columns `send_ms` and `arrival_ms`; lost
//! packets have no arrival), runs [`SkewTracker`] over the arrivals as
//! they are and with a sender clock `PPM` slower added, and prints, as
//! shares of the packets: no reading (the first minute, or a path
//! change), a reading over the buffer's 10 ppm (`slow`), and the median
//! reading.
//!
//! ```text
//! jitter/scripts/eval_all.sh 120 OUT
//! cargo run --release -p sotto-jitter --example skew_on_traces -- 100 OUT/*/packets.csv
//! ```

use sotto_jitter::skew::SkewTracker;

/// The buffer's threshold for a slow sender (`buffer::SLOW_SENDER_PPM`).
const SLOW_PPM: f64 = 10.0;

/// (send ms, arrival ms) of each packet that arrived.
fn arrivals(path: &str) -> Result<Vec<(f64, f64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("{path}: no column {name}"))
    };
    let (send, arrival) = (col("send_ms")?, col("arrival_ms")?);
    let mut out = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(s), Some(a)) = (parse(send), parse(arrival)) {
            out.push((s, a));
        }
    }
    Ok(out)
}

/// Prints the readings over `packets` with the sender `ppm` slow.
fn report(name: &str, packets: &[(f64, f64)], ppm: f64) {
    let mut tracker = SkewTracker::default();
    let (mut none, mut slow, mut readings) = (0, 0, Vec::new());
    for &(sent, arrival) in packets {
        let arrival = arrival + sent * ppm * 1e-6;
        tracker.observe(arrival, arrival - sent);
        match tracker.sender_lag_ppm() {
            Some(p) => {
                slow += usize::from(p > SLOW_PPM);
                readings.push(p);
            }
            None => none += 1,
        }
    }
    readings.sort_by(f64::total_cmp);
    let n = packets.len().max(1) as f64;
    let median = readings
        .get(readings.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "{name:40} +{ppm:>5} ppm: no reading {:.2} slow {:.2} median {median:7.1} ppm",
        none as f64 / n,
        slow as f64 / n,
    );
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let ppm: f64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: skew_on_traces PPM packets.csv...")?;
    for path in args {
        let packets = arrivals(&path)?;
        let name = path.rsplit('/').nth(1).unwrap_or(&path);
        report(name, &packets, 0.0);
        report(name, &packets, ppm);
    }
    Ok(())
}
