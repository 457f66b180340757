//! Speech quality of each buffer's output: PESQ-WB (ITU-T P.862.2) on
//! 16 kHz windows of the received audio against the sent speech.
//!
//! P.862 is meant for 8-20 s signals, so a long run is cut into windows of
//! [`WINDOW_S`] seconds of send time; each window of received audio is
//! taken at that window's median playout delay (PESQ aligns the
//! utterances inside it) and the scores are averaged.

use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::{Decoder, Encoder, resample, samples};

use super::playout::FRAME;
use super::{BufferRun, EvalConfig, EvalReport};

/// Seconds of speech per PESQ window.
pub const WINDOW_S: f64 = 12.0;

/// Scores a degraded 16 kHz signal against a 16 kHz reference.
pub type Scorer<'a> = &'a dyn Fn(&[i16], &[i16]) -> Option<f64>;

fn to_16k(pcm: &[i16]) -> Option<Vec<i16>> {
    let f = resample::resample_clip(&samples::i16_to_f32(pcm), 1, 48_000, 16_000).ok()?;
    Some(samples::f32_to_i16(&f))
}

/// The same speech through Opus with no network at all: every frame,
/// DTX frames included, decoded in order.
pub fn lossless(pcm: &[i16], config: &EvalConfig) -> Option<Vec<i16>> {
    let mut enc = OpusEncoder::new(OpusConfig {
        bitrate: config.bitrate,
        fec: config.fec,
        packet_loss_pct: config.loss_hint,
        dtx: config.dtx,
        ..OpusConfig::default()
    })
    .ok()?;
    let mut dec = OpusDecoder::new(48_000, 1).ok()?;
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for frame in pcm.chunks_exact(FRAME) {
        enc.encode(frame, &mut buf).ok()?;
        dec.decode_into(&buf, &mut out).ok()?;
    }
    Some(out)
}

/// Mean PESQ over the windows of `degraded`, each shifted by `delay_ms(window)`.
fn windowed(
    reference: &[i16],
    degraded: &[i16],
    delay_ms: impl Fn(f64, f64) -> Option<f64>,
    score: Scorer<'_>,
) -> Option<f64> {
    let win = (WINDOW_S * 48_000.0) as usize;
    let mut scores = Vec::new();
    let mut start = 0;
    while start + win / 2 <= reference.len() {
        let end = (start + win).min(reference.len());
        let (a_ms, b_ms) = (start as f64 / 48.0, end as f64 / 48.0);
        if let Some(d) = delay_ms(a_ms, b_ms) {
            let shift = (d * 48.0).round().max(0.0) as usize;
            let (ds, de) = (start + shift, end + shift);
            if de <= degraded.len() {
                let r = to_16k(&reference[start..end])?;
                let g = to_16k(&degraded[ds..de])?;
                if let Some(s) = score(&r, &g) {
                    scores.push(s);
                }
            }
        }
        start = end;
    }
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Median playout delay of the frames a run played with send time in
/// `[a_ms, b_ms)`.
fn median_delay(run: &BufferRun, a_ms: f64, b_ms: f64) -> Option<f64> {
    let mut d: Vec<f64> = run
        .playout_ms
        .iter()
        .map(|(&f, &t)| (f as f64 * 20.0, t))
        .filter(|&(s, _)| s >= a_ms && s < b_ms)
        .map(|(s, t)| t - s)
        .collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied()
}

/// Scores every buffer that produced audio and returns the loss-free
/// Opus score, or `None` when no scorer works (then nothing is scored).
pub fn score_all(
    pcm: &[i16],
    report: &mut EvalReport,
    config: &EvalConfig,
    score: Scorer<'_>,
) -> Option<f64> {
    let clean = lossless(pcm, config)?;
    let reference = windowed(pcm, &clean, |_, _| Some(0.0), score)?;
    for (run, m) in &mut report.buffers {
        if run.audio.is_empty() {
            continue;
        }
        m.pesq_wb = windowed(pcm, &run.audio, |a, b| median_delay(run, a, b), score);
    }
    Some(reference)
}
