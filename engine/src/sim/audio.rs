//! How much of the sent speech came out at the other end: windowed
//! normalised cross-correlation after alignment.
//!
//! The lag between sent and played audio drifts during a call (the jitter
//! buffer stretches and shrinks it), so each short window is aligned on
//! its own: coarsely on the 5 ms amplitude envelope of the two seconds
//! around it (long enough that speech rhythm has one clear peak), then to
//! the sample at 8 kHz.

use std::time::Duration;

/// Analysis rate: 48 kHz PCM is averaged down by 6.
const RATE: usize = 8_000;
const DECIMATE: usize = 6;
/// Envelope block: 5 ms at 8 kHz.
const ENV: usize = 40;
/// Envelope context for the coarse lag: 2 s.
const CONTEXT: usize = 2 * RATE;
/// Window length and hop.
const WINDOW: usize = RATE / 5;
const HOP: usize = RATE / 2;
/// Windows quieter than this (RMS of the 16-bit signal) in the sent
/// speech are pauses and are not scored.
const MIN_RMS: f64 = 300.0;

/// The comparison of one direction's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Similarity {
    /// Speech windows scored.
    pub windows: usize,
    /// Median of the per-window best correlation (1 = identical shape).
    pub median_correlation: f64,
    /// Median correlation of the 5 ms envelopes around each window
    /// (speech rhythm; robust to time stretching).
    pub median_envelope_correlation: f64,
    /// Fraction of scored windows whose correlation is at least 0.5.
    pub good_fraction: f64,
    /// Median lag of received behind sent audio.
    pub median_lag: Duration,
}

fn decimate(x: &[i16]) -> Vec<f64> {
    x.chunks_exact(DECIMATE)
        .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / DECIMATE as f64)
        .collect()
}

fn envelope(x: &[f64]) -> Vec<f64> {
    x.chunks_exact(ENV)
        .map(|c| c.iter().map(|s| s.abs()).sum::<f64>() / ENV as f64)
        .collect()
}

/// Normalised correlation of two equal-length slices, optionally mean-removed.
fn ncc(a: &[f64], b: &[f64], demean: bool) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let (ma, mb) = if demean {
        (
            a[..n].iter().sum::<f64>() / n as f64,
            b[..n].iter().sum::<f64>() / n as f64,
        )
    } else {
        (0.0, 0.0)
    };
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

fn rms(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|s| s * s).sum::<f64>() / x.len() as f64).sqrt()
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Compares `received` with `sent` (both 48 kHz mono, sample 0 of each
/// at the same instant), searching lags from 0 to `max_lag`.
pub fn compare(sent: &[i16], received: &[i16], max_lag: Duration) -> Similarity {
    let s = decimate(sent);
    let r = decimate(received);
    let (se, re) = (envelope(&s), envelope(&r));
    let max_lag = (max_lag.as_secs_f64() * RATE as f64) as usize;
    let mut corrs = Vec::new();
    let mut lags = Vec::new();
    let mut env_corrs = Vec::new();
    let mut start = max_lag;
    while start + WINDOW <= r.len() {
        let rw = &r[start..start + WINDOW];
        let sw_at = |lag: usize| &s[start - lag..(start - lag + WINDOW).min(s.len())];
        if start + WINDOW > s.len() {
            break;
        }
        // Coarse: the envelope lag (5 ms steps) with the best correlation
        // over the context around the window.
        let lo_e = max_lag / ENV;
        let cw = (CONTEXT / ENV).min(re.len().saturating_sub(lo_e));
        let eb = ((start + WINDOW / 2) / ENV)
            .saturating_sub(cw / 2)
            .clamp(lo_e, re.len().saturating_sub(cw).max(lo_e));
        let mut best = (f64::MIN, 0usize);
        for lag_e in 0..=lo_e {
            let (Some(rc), Some(sc)) = (re.get(eb..eb + cw), se.get(eb - lag_e..eb - lag_e + cw))
            else {
                continue;
            };
            let c = ncc(rc, sc, true);
            if c > best.0 {
                best = (c, lag_e * ENV);
            }
        }
        let coarse = best.1;
        if rms(sw_at(coarse)) >= MIN_RMS {
            // Fine: to the sample within four envelope blocks either side:
            // a buffer that shortens pauses moves the lag by up to 15 ms
            // inside the 2 s the coarse lag is taken over.
            let lo = coarse.saturating_sub(4 * ENV);
            let hi = (coarse + 4 * ENV).min(max_lag);
            let (mut bc, mut bl) = (f64::MIN, coarse);
            for lag in lo..=hi {
                let c = ncc(rw, sw_at(lag), false);
                if c > bc {
                    (bc, bl) = (c, lag);
                }
            }
            corrs.push(bc.max(0.0));
            env_corrs.push(best.0.max(0.0));
            lags.push(bl as f64);
        }
        start += HOP;
    }
    let windows = corrs.len();
    let good = corrs.iter().filter(|&&c| c >= 0.5).count();
    Similarity {
        windows,
        median_correlation: median(&mut corrs),
        median_envelope_correlation: median(&mut env_corrs),
        good_fraction: if windows == 0 {
            0.0
        } else {
            good as f64 / windows as f64
        },
        median_lag: Duration::from_secs_f64(median(&mut lags) / RATE as f64),
    }
}

/// The frequency of a tone in `pcm` at `rate` Hz: the median time between
/// its rising zero crossings (interpolated), so that a few gaps or dropped
/// samples do not move it. `None` with fewer than 100 periods to go by.
pub fn tone_hz(pcm: &[i16], rate: u32) -> Option<f64> {
    let rising: Vec<f64> = pcm
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, w)| {
            let (a, b) = (f64::from(w[0]), f64::from(w[1]));
            i as f64 - a / (b - a)
        })
        .collect();
    let mut periods: Vec<f64> = rising.windows(2).map(|p| p[1] - p[0]).collect();
    if periods.len() <= 100 {
        return None;
    }
    periods.sort_by(f64::total_cmp);
    Some(f64::from(rate) / periods[periods.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_speech(n: usize, seed: u64) -> Vec<i16> {
        // Bursts of filtered noise with pauses: speech-like enough to align.
        let mut x = seed;
        let mut prev = 0.0;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let w = (x % 20_000) as f64 - 10_000.0;
                prev = 0.9 * prev + 0.1 * w;
                let on = (i / 12_000) % 3 != 2;
                if on { (prev * 3.0) as i16 } else { 0 }
            })
            .collect()
    }

    #[test]
    fn finds_a_delayed_copy_and_rejects_an_unrelated_signal() {
        let sent = noise_speech(48_000 * 4, 1);
        let mut delayed = vec![0i16; 48_000 / 10]; // 100 ms
        delayed.extend_from_slice(&sent);
        let sim = compare(&sent, &delayed, Duration::from_millis(300));
        assert!(sim.windows >= 4, "{sim:?}");
        assert!(sim.median_correlation > 0.99, "{sim:?}");
        let lag = sim.median_lag.as_secs_f64();
        assert!((lag - 0.1).abs() < 0.001, "{sim:?}");

        let other = noise_speech(48_000 * 4, 99);
        let bad = compare(&sent, &other, Duration::from_millis(300));
        assert!(bad.median_correlation < 0.3, "{bad:?}");
        let silent = compare(&sent, &vec![0; sent.len()], Duration::from_millis(300));
        assert_eq!(silent.median_correlation, 0.0);
    }
}
