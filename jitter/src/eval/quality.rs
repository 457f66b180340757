//! Speech quality of each buffer's output: PESQ-WB (ITU-T P.862.2) on
//! 16 kHz windows of the received audio against the sent speech.
//!
//! P.862 is meant for 8-20 s signals (P.862.3 §7.1), so a long run is cut
//! into windows of about [`WINDOW_S`] seconds of send time, each cut in
//! the quietest stretch of the reference near its nominal end so that no
//! utterance is split. Each window of received audio runs from where the
//! window's first played frame was played, less its lead-in, to where its
//! last one was played, plus its tail: an adaptive buffer's delay moves
//! inside a window, and a window taken at one delay would cut speech off
//! one end and add the neighbour's at the other. Only frames of
//! talkspurts (runs of more than two frames sent) set the edges, not the
//! comfort-noise refreshes (a coded frame and a DTX frame) sent alone in a
//! DTX pause: a buffer may play those at any time without moving the
//! words around them, and a window shifted by their delay would take in,
//! or leave out, audio that has nothing to do with how the words were
//! played. PESQ aligns the utterances inside each window; the scores are
//! averaged.

use std::collections::BTreeSet;

use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::{Decoder, Encoder, resample, samples};

use super::playout::FRAME;
use super::{BufferRun, EvalConfig, EvalReport, FRAME_MS, SentFrame, spurt_ranges};

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

/// How far either way of a window's nominal end its cut may move, and
/// the stretch of reference whose energy decides where, in samples.
const CUT_SEARCH: usize = 3 * 48_000;
const CUT_SPAN: usize = 200 * 48;

/// Window boundaries in `reference`: about every [`WINDOW_S`] seconds, at
/// the start of the quietest [`CUT_SPAN`] within [`CUT_SEARCH`] of it
/// (searched on the 20 ms frame grid).
fn cuts(reference: &[i16]) -> Vec<usize> {
    let win = (WINDOW_S * 48_000.0) as usize;
    let energy = |at: usize| -> f64 {
        reference[at..(at + CUT_SPAN).min(reference.len())]
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum()
    };
    let mut out = vec![0];
    let mut nominal = win;
    while nominal + win / 2 <= reference.len() {
        let lo = nominal
            .saturating_sub(CUT_SEARCH)
            .max(out[out.len() - 1] + win / 2);
        let hi = (nominal + CUT_SEARCH).min(reference.len() - win / 2);
        let cut = (lo / FRAME..=hi / FRAME)
            .map(|f| f * FRAME)
            .filter(|&at| at >= lo && at <= hi)
            .min_by(|&a, &b| energy(a).total_cmp(&energy(b)))
            .unwrap_or(nominal);
        out.push(cut);
        nominal = cut + win;
    }
    out.push(reference.len());
    out
}

/// PESQ of each window of `degraded` that could be scored.
/// `delays(a_ms, b_ms)` gives the playout delay at a window's start and at
/// its end (of the first and the last frame played from it).
fn windowed(
    reference: &[i16],
    degraded: &[i16],
    delays: impl Fn(f64, f64) -> Option<(f64, f64)>,
    score: Scorer<'_>,
) -> Option<Vec<f64>> {
    let mut scores = Vec::new();
    for w in cuts(reference).windows(2) {
        let (start, end) = (w[0], w[1]);
        let Some((d_start, d_end)) = delays(start as f64 / 48.0, end as f64 / 48.0) else {
            continue;
        };
        let at = |i: usize, d: f64| (i as f64 + d * 48.0).round().max(0.0) as usize;
        let (ds, de) = (at(start, d_start), at(end, d_end));
        if ds < de && de <= degraded.len() {
            let r = to_16k(&reference[start..end])?;
            let g = to_16k(&degraded[ds..de])?;
            if let Some(s) = score(&r, &g) {
                scores.push(s);
            }
        }
    }
    Some(scores)
}

fn mean(scores: &[f64]) -> Option<f64> {
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Playout delays of the first and the last frame a run played with send
/// time in `[a_ms, b_ms)`, among the frames in `talkspurts` when it played
/// any of them there.
fn edge_delays(
    run: &BufferRun,
    talkspurts: &BTreeSet<u64>,
    a_ms: f64,
    b_ms: f64,
) -> Option<(f64, f64)> {
    let first = (a_ms / FRAME_MS).ceil() as u64;
    let last = (b_ms / FRAME_MS).ceil() as u64;
    let played = || run.playout_ms.range(first..last);
    let in_talkspurt = || played().filter(|(f, _)| talkspurts.contains(f));
    let delay = |(&f, &t): (&u64, &f64)| t - f as f64 * FRAME_MS;
    let d_start = in_talkspurt()
        .next()
        .or_else(|| played().next())
        .map(delay)?;
    let d_end = in_talkspurt()
        .next_back()
        .or_else(|| played().next_back())
        .map_or(d_start, delay);
    Some((d_start, d_end))
}

/// The frames of `frames` that belong to a run of more than two frames
/// sent one after the other: all but the comfort-noise refreshes of a
/// DTX pause.
fn talkspurt_frames(frames: &[SentFrame]) -> BTreeSet<u64> {
    spurt_ranges(frames)
        .into_iter()
        .filter(|r| r.len() > 2)
        .flat_map(|r| frames[r].iter().map(|f| f.frame))
        .collect()
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
    let reference = mean(&windowed(pcm, &clean, |_, _| Some((0.0, 0.0)), score)?)?;
    let talkspurts = talkspurt_frames(&report.frames);
    for (run, m) in &mut report.buffers {
        if run.audio.is_empty() {
            continue;
        }
        m.pesq_wb_windows = windowed(
            pcm,
            &run.audio,
            |a, b| edge_delays(run, &talkspurts, a, b),
            score,
        )
        .unwrap_or_default();
        m.pesq_wb = mean(&m.pesq_wb_windows);
    }
    Some(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_in_the_quiet_near_every_window_length() {
        // Loud everywhere except 300 ms gaps at 10.5 s and 23 s.
        let mut pcm = vec![8_000i16; 30 * 48_000];
        for gap_s in [10.5, 23.0] {
            let at = (gap_s * 48_000.0) as usize;
            pcm[at..at + 300 * 48].fill(0);
        }
        let c = cuts(&pcm);
        assert_eq!(c.first(), Some(&0));
        assert_eq!(c.last(), Some(&pcm.len()));
        assert_eq!(c.len(), 4, "{c:?}");
        for (cut, gap_s) in c[1..3].iter().zip([10.5, 23.0]) {
            let at = (gap_s * 48_000.0) as usize;
            assert!((at..at + 100 * 48).contains(cut), "{cut} vs {at}");
        }
    }

    #[test]
    fn a_window_of_received_audio_follows_the_delay_at_its_edges() {
        let mut run = BufferRun::default();
        // Frames 0..=9 played at 100 ms, 10..=19 at 250 ms (a wait).
        for f in 0..20u64 {
            let delay = if f < 10 { 100.0 } else { 250.0 };
            run.playout_ms.insert(f, f as f64 * 20.0 + delay);
        }
        let all: BTreeSet<u64> = (0..20).collect();
        assert_eq!(edge_delays(&run, &all, 0.0, 400.0), Some((100.0, 250.0)));
        assert_eq!(edge_delays(&run, &all, 0.0, 200.0), Some((100.0, 100.0)));
        assert_eq!(edge_delays(&run, &all, 210.0, 400.0), Some((250.0, 250.0)));
        assert_eq!(edge_delays(&run, &all, 400.0, 500.0), None);
    }

    #[test]
    fn comfort_noise_refreshes_played_at_another_delay_do_not_move_a_window() {
        // Sent: a refresh (frames 0-1), a DTX gap, a talkspurt (4-17), a
        // gap, a refresh (19-20), a gap, a frame alone (23).
        let sent: Vec<u64> = [0, 1]
            .into_iter()
            .chain(4..18)
            .chain([19, 20, 23])
            .collect();
        let frames: Vec<SentFrame> = sent
            .iter()
            .map(|&k| crate::eval::tests::sent_frame(k, false, vec![0]))
            .collect();
        let talkspurts = talkspurt_frames(&frames);
        assert_eq!(talkspurts, (4..18).collect());
        // The first refresh held for 3 s, the second played at once.
        let mut run = BufferRun::default();
        for &f in &sent {
            let delay = match f {
                0 | 1 => 3_000.0,
                19.. => 10.0,
                _ => 60.0,
            };
            run.playout_ms.insert(f, f as f64 * 20.0 + delay);
        }
        assert_eq!(
            edge_delays(&run, &talkspurts, 0.0, 480.0),
            Some((60.0, 60.0))
        );
        // A window without a talkspurt falls back on what was played.
        assert_eq!(
            edge_delays(&run, &talkspurts, 370.0, 480.0),
            Some((10.0, 10.0))
        );
    }
}
