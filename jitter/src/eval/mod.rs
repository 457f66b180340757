//! Playout evaluation: real speech through Opus (20 ms, FEC, DTX), a
//! network link, and every buffer under test, scored by playout delay
//! against late loss, next to the offline oracle.
//!
//! All buffers see the same packets with the same arrival times, in
//! virtual time with a 10 ms pull tick, so a two-minute trace runs in
//! seconds and every figure is reproducible.

pub mod oracle;
pub mod playout;
#[cfg(feature = "eval")]
pub mod plot;
pub mod quality;
pub mod report;
#[cfg(any(feature = "eval", test))]
pub mod speex;

use std::collections::BTreeMap;
use std::ops::Range;

use sotto_codecs::opus::{OpusConfig, OpusEncoder};
use sotto_codecs::{CodecError, Encoder};

use crate::buffer::{JitterConfig, PULL_MS, PULL_SAMPLES};
use crate::error::JitterError;
use crate::link::{Link, LinkError, LinkSummary, SentPacket};
use crate::packet::RtpPacket;
use crate::stats::JitterStats;

use oracle::{OracleSchedule, Segment, Talkspurt};
use playout::{FRAME, FixedPlayout, Playout, SchedulePlayout, SottoPlayout};

/// Frame length in ms (frame `k` is sent at `k * FRAME_MS`).
pub(crate) const FRAME_MS: f64 = 20.0;
/// Bytes of IPv4 + UDP + RTP + SRTP tag around each payload on the wire.
const OVERHEAD: u32 = 20 + 8 + 12 + 10;

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The link model failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The jitter buffer refused its configuration.
    #[error(transparent)]
    Jitter(#[from] JitterError),
    /// A reference peer could not be set up.
    #[error("reference peer: {0} failed")]
    Peer(&'static str),
    /// Bad input (speech too short, …).
    #[error("{0}")]
    Input(String),
}

/// How the sender encodes and which buffers run.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Opus bitrate, bit/s.
    pub bitrate: u32,
    /// In-band FEC.
    pub fec: bool,
    /// Packet-loss hint for the encoder, percent.
    pub loss_hint: u8,
    /// Discontinuous transmission (silence is not sent).
    pub dtx: bool,
    /// Fixed-delay buffers to run, ms.
    pub fixed_delays: Vec<u32>,
    /// Sotto's buffer configuration.
    pub jitter: JitterConfig,
    /// Also run the Speex buffer (needs the `eval` feature).
    pub speex: bool,
    /// Extra oracle runs at these late-loss rates, percent of frames
    /// (reported as `oracle_late<rate>` and `oracle_pauses_late<rate>`).
    pub oracle_late_pct: Vec<f64>,
    /// At each of those rates, also the pause oracle charged this much
    /// per change of delay (ms summed over frames; reported as
    /// `oracle_pauses_late<rate>_c<penalty>`).
    pub oracle_change_penalty: Vec<f64>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            bitrate: 24_000,
            fec: true,
            loss_hint: 10,
            dtx: true,
            fixed_delays: vec![40, 80, 120, 200],
            jitter: JitterConfig::default(),
            speex: cfg!(feature = "eval"),
            oracle_late_pct: Vec::new(),
            oracle_change_penalty: Vec::new(),
        }
    }
}

/// One transmitted packet.
#[derive(Debug, Clone)]
pub struct SentFrame {
    /// Frame index (20 ms units from the start).
    pub frame: u64,
    /// Send time, ms.
    pub send_ms: f64,
    /// The RTP packet.
    pub packet: RtpPacket,
    /// It carries FEC for the frame before it.
    pub has_fec: bool,
    /// Its decoded audio is a pause throughout ([`crate::stretch::PauseDetector`]):
    /// a schedule may cut it.
    pub quiet: bool,
}

/// Mixes steady background noise at `dbfs` (RMS, dB below full scale)
/// into `pcm`, as a phone's microphone hears a room, a street or a car:
/// Gaussian noise through a 4-sample moving average (a gentle low-pass),
/// the same for a seed on every platform.
pub fn add_noise(pcm: &mut [i16], dbfs: f64, seed: u64) {
    let mut rng = crate::link::rng::Rng::new(seed);
    // Four averaged unit normals have a standard deviation of 1/2.
    let scale = 2.0 * 32_768.0 * 10f64.powf(dbfs / 20.0);
    let mut taps = [0.0f64; 4];
    for (i, s) in pcm.iter_mut().enumerate() {
        taps[i % 4] = rng.normal();
        let noise = taps.iter().sum::<f64>() / 4.0 * scale;
        *s = (f64::from(*s) + noise).round().clamp(-32_768.0, 32_767.0) as i16;
    }
}

/// Encodes 48 kHz mono speech into 20 ms Opus packets; with DTX only the
/// first DTX frame of each pause is sent (as WebRTC does).
pub fn encode(pcm: &[i16], config: &EvalConfig) -> Result<Vec<SentFrame>, EvalError> {
    let mut enc = OpusEncoder::new(OpusConfig {
        bitrate: config.bitrate,
        fec: config.fec,
        packet_loss_pct: config.loss_hint,
        dtx: config.dtx,
        ..OpusConfig::default()
    })?;
    let probe = sotto_codecs::opus::OpusDecoder::new(48_000, 1)?;
    // Decodes what is sent, as a receiver that lost nothing would.
    let mut listener = sotto_codecs::opus::OpusDecoder::new(48_000, 1)?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut heard = Vec::new();
    let mut pauses = crate::stretch::PauseDetector::default();
    let mut prev_dtx = false;
    let mut seq = 0u16;
    for (k, frame) in pcm.chunks_exact(FRAME).enumerate() {
        enc.encode(frame, &mut buf)?;
        let dtx = enc.is_dtx(&buf);
        let send = !dtx || !prev_dtx;
        let resumed = !dtx && prev_dtx;
        prev_dtx = dtx;
        if !send {
            continue;
        }
        heard.clear();
        sotto_codecs::Decoder::decode_into(&mut listener, &buf, &mut heard)?;
        out.push(SentFrame {
            quiet: pauses.is_pause(&heard),
            frame: k as u64,
            send_ms: k as f64 * FRAME_MS,
            has_fec: sotto_codecs::Decoder::has_fec(&probe, &buf),
            packet: RtpPacket {
                seq,
                timestamp: (k * FRAME) as u32,
                ssrc: 0x5077_0001,
                marker: resumed || k == 0,
                payload: buf.clone(),
            },
        });
        seq = seq.wrapping_add(1);
    }
    Ok(out)
}

/// Runs the transmitted packets through `link`: arrival ms (or `None`).
pub fn deliver(
    link: &mut dyn Link,
    frames: &[SentFrame],
) -> Result<(Vec<Option<f64>>, LinkSummary), EvalError> {
    let sent: Vec<SentPacket> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| SentPacket {
            seq: i as u64,
            // Whole nanoseconds both ways: a trace's integer-ms times stay
            // exact, so an arrival on a pull boundary is not pushed past it
            // by rounding (as `as_secs_f64() * 1000.0` can: 16 010 ms came
            // out as 16 010.000000000002 and missed its pull).
            send: std::time::Duration::from_nanos((f.send_ms * 1e6).round() as u64),
            size: f.packet.payload.len() as u32 + OVERHEAD,
        })
        .collect();
    let deliveries = link.run(&sent)?;
    let summary = LinkSummary::of(&deliveries);
    let mut arrivals = vec![None; frames.len()];
    for d in deliveries {
        if let Some(slot) = arrivals.get_mut(d.seq as usize) {
            *slot = d.arrival.map(|a| a.as_nanos() as f64 / 1e6);
        }
    }
    Ok((arrivals, summary))
}

/// What one buffer did.
#[derive(Debug, Clone, Default)]
pub struct BufferRun {
    /// Report name.
    pub name: String,
    /// Output audio, 48 kHz.
    pub audio: Vec<i16>,
    /// Playout time (ms) of the first sample of each played frame.
    pub playout_ms: BTreeMap<u64, f64>,
    /// Samples removed by acceleration.
    pub removed: u64,
    /// Samples inserted to slow down (or concealment while waiting).
    pub inserted: u64,
    /// Sotto's W3C statistics (Sotto only).
    pub stats: Option<JitterStats>,
}

/// Drives `p` with `arrivals` on a 10 ms tick until `end_ms`.
pub fn simulate(
    p: &mut dyn Playout,
    frames: &[SentFrame],
    arrivals: &[Option<f64>],
    end_ms: f64,
) -> BufferRun {
    let mut order: Vec<(f64, usize)> = arrivals
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|a| (a, i)))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut next = order.into_iter().peekable();
    let mut run = BufferRun {
        name: p.name(),
        ..BufferRun::default()
    };
    let mut out = Vec::with_capacity(PULL_SAMPLES);
    let mut played = Vec::new();
    let ticks = (end_ms / PULL_MS).ceil() as u64;
    let last_frame = frames.last().map(|f| f.frame);
    let mut stretched_at_end = None;
    for tick in 0..ticks {
        let now = tick as f64 * PULL_MS;
        while let Some(&(a, i)) = next.peek() {
            if a > now {
                break;
            }
            next.next();
            p.insert(a, &frames[i].packet);
        }
        played.clear();
        p.pull(now, &mut out, &mut played);
        run.audio.extend_from_slice(&out);
        for &(f, offset) in &played {
            run.playout_ms
                .entry(f)
                .or_insert(now + offset as f64 / 48.0);
        }
        if stretched_at_end.is_none() && played.iter().any(|&(f, _)| Some(f) == last_frame) {
            // What comes after the last frame is the end of the stream,
            // not a wait.
            stretched_at_end = Some(p.stretched());
        }
    }
    (run.removed, run.inserted) = stretched_at_end.unwrap_or_else(|| p.stretched());
    run
}

/// The figures reported per buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferMetrics {
    /// Mean playout delay (send to play) of played frames, ms.
    pub mean_delay_ms: f64,
    /// 95th percentile of the playout delay, ms.
    pub p95_delay_ms: f64,
    /// Frames that arrived (or were recoverable by FEC) but were not
    /// played, over frames sent.
    pub late_loss: f64,
    /// Frames sent but not played (network loss plus late loss), over
    /// frames sent: the share of speech frames that were concealed.
    pub concealment: f64,
    /// Samples removed by acceleration (until the last frame played) over
    /// all samples the run output.
    pub accelerate_rate: f64,
    /// Samples inserted (preemptive expand, or concealment while waiting
    /// for a late frame, which grows the delay) until the last frame
    /// played, over all samples the run output.
    pub expand_rate: f64,
    /// PESQ-WB of the received speech, when scored: the mean of
    /// `pesq_wb_windows`.
    pub pesq_wb: Option<f64>,
    /// PESQ-WB of each window of about 12 s of speech, in order (see
    /// `quality`): where in the run the score was lost.
    pub pesq_wb_windows: Vec<f64>,
    /// Late frames (the count behind `late_loss`).
    pub late: usize,
}

/// Each frame's effective arrival: its own, or that of the next packet
/// when that carries FEC for it.
pub fn effective_arrivals(frames: &[SentFrame], arrivals: &[Option<f64>]) -> Vec<Option<f64>> {
    (0..frames.len())
        .map(|i| {
            let own = arrivals[i];
            let fec = frames
                .get(i + 1)
                .filter(|n| n.frame == frames[i].frame + 1 && n.has_fec)
                .and_then(|_| arrivals[i + 1]);
            match (own, fec) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Scores one run.
pub fn metrics(run: &BufferRun, frames: &[SentFrame], effective: &[Option<f64>]) -> BufferMetrics {
    let mut delays = Vec::new();
    let mut late = 0;
    for (f, e) in frames.iter().zip(effective) {
        match run.playout_ms.get(&f.frame) {
            Some(&t) => delays.push(t - f.send_ms),
            None if e.is_some() => late += 1,
            None => {}
        }
    }
    delays.sort_by(f64::total_cmp);
    let n = frames.len().max(1) as f64;
    let samples = (run.audio.len().max(1)) as f64;
    BufferMetrics {
        mean_delay_ms: delays.iter().sum::<f64>() / delays.len().max(1) as f64,
        p95_delay_ms: quantile(&delays, 0.95),
        late_loss: late as f64 / n,
        concealment: (frames.len() - delays.len()) as f64 / n,
        accelerate_rate: run.removed as f64 / samples,
        expand_rate: run.inserted as f64 / samples,
        pesq_wb: None,
        pesq_wb_windows: Vec::new(),
        late,
    }
}

/// The first pull at or after each effective arrival: the earliest a
/// pull-driven player can start the frame (a pull plays only what the
/// buffer holds when it is made, as in `simulate`).
pub fn first_pulls(effective: &[Option<f64>]) -> Vec<Option<f64>> {
    effective
        .iter()
        .map(|e| {
            e.map(|a| {
                let t = (a / PULL_MS).ceil() * PULL_MS;
                if t < a { t + PULL_MS } else { t }
            })
        })
        .collect()
}

/// The index ranges of the talkspurts: runs of consecutive frames.
pub(crate) fn spurt_ranges(frames: &[SentFrame]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        match out.last_mut() {
            Some(r) if frames[i - 1].frame + 1 == f.frame => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Talkspurts split before every frame of speech that follows a quiet
/// one: stretches of speech, each ending with the pause after it.
fn segment_ranges(frames: &[SentFrame]) -> Vec<Range<usize>> {
    spurt_ranges(frames)
        .into_iter()
        .flat_map(|r| {
            let mut parts: Vec<Range<usize>> = Vec::new();
            for i in r {
                // A new segment where speech follows a pause.
                let resumes = i > 0 && frames[i - 1].quiet && !frames[i].quiet;
                match parts.last_mut() {
                    Some(p) if !resumes => p.end = i + 1,
                    _ => parts.push(i..i + 1),
                }
            }
            parts
        })
        .collect()
}

/// Which offline bound an oracle row is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OracleKind {
    /// One offset per talkspurt ([`oracle::schedule`]; Moon, Kurose &
    /// Towsley): the bound the goal compares against.
    Talkspurts,
    /// One offset per stretch of speech between pauses, falling only by
    /// the pause it can cut ([`oracle::schedule_with_cuts`]): the bound
    /// for a buffer that changes its delay only where it is inaudible.
    /// Each change of delay is charged `change_penalty` (ms summed over
    /// frames, like the delay).
    Pauses {
        /// What a change of delay must save to be made.
        change_penalty: f64,
    },
}

/// One frame's place in an offline schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Frame index.
    pub frame: u64,
    /// When it starts, ms.
    pub at_ms: f64,
    /// It is a pause the player may cut to meet the next slot.
    pub cuttable: bool,
}

/// An oracle at a late-frame budget: its schedule, the playout time of
/// each frame it plays, and the slot of every frame of the ranges it
/// plays (frames of a range of which nothing arrived have none), for
/// [`SchedulePlayout`]. `effective` is when each frame could first be
/// played: the effective arrivals for an unconstrained player, or their
/// [`first_pulls`] for one driven by the device's pulls.
pub fn oracle_run(
    frames: &[SentFrame],
    effective: &[Option<f64>],
    budget: usize,
    kind: OracleKind,
) -> (OracleSchedule, BufferRun, Vec<Slot>) {
    let ranges = match kind {
        OracleKind::Talkspurts => spurt_ranges(frames),
        OracleKind::Pauses { .. } => segment_ranges(frames),
    };
    let delays: Vec<Vec<f64>> = ranges
        .iter()
        .map(|r| {
            r.clone()
                .filter_map(|i| effective[i].map(|e| e - frames[i].send_ms))
                .collect()
        })
        .collect();
    let sched = match kind {
        OracleKind::Talkspurts => {
            let spurts: Vec<Talkspurt> = delays
                .into_iter()
                .map(|delays| Talkspurt { delays })
                .collect();
            oracle::schedule(&spurts, budget)
        }
        OracleKind::Pauses { change_penalty } => {
            let segments: Vec<Segment> = delays
                .into_iter()
                .zip(&ranges)
                .zip(ranges.iter().skip(1).map(Some).chain([None]))
                .map(|((delays, r), next)| {
                    let quiet = frames[r.clone()]
                        .iter()
                        .rev()
                        .take_while(|f| f.quiet)
                        .count();
                    let untransmitted =
                        next.map_or(0, |n| frames[n.start].frame - frames[r.end - 1].frame - 1);
                    Segment {
                        delays,
                        cut_after_ms: (quiet as u64 + untransmitted) as f64 * FRAME_MS,
                    }
                })
                .collect();
            oracle::schedule_with_cuts(&segments, budget, PULL_MS, change_penalty)
        }
    };
    let mut run = BufferRun {
        name: "oracle".into(),
        ..BufferRun::default()
    };
    let mut slots = Vec::new();
    for (r, &offset) in ranges.into_iter().zip(&sched.offsets) {
        if !r.clone().any(|i| effective[i].is_some()) {
            continue;
        }
        for i in r {
            let (f, at_ms) = (frames[i].frame, frames[i].send_ms + offset);
            if effective[i].is_some_and(|e| e - frames[i].send_ms <= offset + 1e-9) {
                run.playout_ms.insert(f, at_ms);
            }
            slots.push(Slot {
                frame: f,
                at_ms,
                cuttable: matches!(kind, OracleKind::Pauses { .. }) && frames[i].quiet,
            });
        }
    }
    (sched, run, slots)
}

/// Everything one evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// The transmitted packets.
    pub frames: Vec<SentFrame>,
    /// Their arrivals.
    pub arrivals: Vec<Option<f64>>,
    /// What the link did.
    pub link: LinkSummary,
    /// Each buffer's run and figures, Sotto first; oracles last.
    pub buffers: Vec<(BufferRun, BufferMetrics)>,
    /// Mean delay, ms, if every frame that arrived were played at the
    /// first pull after it (its own or its FEC's) arrival: no buffer can
    /// be lower without losing frames, however it stretches.
    pub pull_floor_ms: f64,
}

/// Runs `pcm` (48 kHz mono speech) through Opus, `link` and every buffer.
/// `progress` is called with each buffer's name as it starts.
pub fn evaluate(
    pcm: &[i16],
    link: &mut dyn Link,
    config: &EvalConfig,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, EvalError> {
    if pcm.len() < FRAME * 10 {
        return Err(EvalError::Input("need at least 200 ms of speech".into()));
    }
    if let Some(pct) = config
        .oracle_late_pct
        .iter()
        .find(|p| !(0.0..=100.0).contains(*p))
    {
        return Err(EvalError::Input(format!(
            "an oracle late-loss rate must be 0..=100 %, not {pct}"
        )));
    }
    if let Some(p) = config
        .oracle_change_penalty
        .iter()
        .find(|p| !(p.is_finite() && **p >= 0.0))
    {
        return Err(EvalError::Input(format!(
            "an oracle change penalty must be finite and >= 0, not {p}"
        )));
    }
    let frames = encode(pcm, config)?;
    let (arrivals, summary) = deliver(link, &frames)?;
    let effective = effective_arrivals(&frames, &arrivals);
    let last_arrival = arrivals.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let end_ms = last_arrival.max(pcm.len() as f64 / 48.0) + 1_000.0;

    let mut players: Vec<Box<dyn Playout>> =
        vec![Box::new(SottoPlayout::new(config.jitter.clone())?)];
    #[cfg(any(feature = "eval", test))]
    if config.speex {
        players.push(Box::new(speex::SpeexPlayout::new()?));
    }
    for &d in &config.fixed_delays {
        players.push(Box::new(FixedPlayout::new(f64::from(d))?));
    }
    let mut buffers = Vec::new();
    for p in &mut players {
        progress(&p.name());
        let mut run = simulate(p.as_mut(), &frames, &arrivals, end_ms);
        run.stats = p.w3c();
        let m = metrics(&run, &frames, &effective);
        buffers.push((run, m));
    }
    // The oracle at Sotto's and at Speex's late-frame count, on the pull
    // grid every real buffer plays on: no schedule can start a frame
    // before the first pull after it arrived.
    progress("oracle");
    let playable = first_pulls(&effective);
    let free = OracleKind::Pauses {
        change_penalty: 0.0,
    };
    let named = buffers.iter().flat_map(|(r, m)| match r.name.as_str() {
        "sotto" => vec![
            ("oracle".to_string(), m.late, OracleKind::Talkspurts),
            ("oracle_pauses".to_string(), m.late, free),
        ],
        "speex" => vec![("oracle_speex".to_string(), m.late, OracleKind::Talkspurts)],
        _ => vec![],
    });
    let at_rates = config.oracle_late_pct.iter().flat_map(|&pct| {
        let budget = (pct / 100.0 * frames.len() as f64) as usize;
        let penalised = config.oracle_change_penalty.iter().map(move |&p| {
            (
                format!("oracle_pauses_late{pct}_c{p}"),
                budget,
                OracleKind::Pauses { change_penalty: p },
            )
        });
        [
            (format!("oracle_late{pct}"), budget, OracleKind::Talkspurts),
            (format!("oracle_pauses_late{pct}"), budget, free),
        ]
        .into_iter()
        .chain(penalised)
    });
    let mut oracles = Vec::new();
    for (name, budget, kind) in named.chain(at_rates).collect::<Vec<_>>() {
        let (_, mut run, slots) = oracle_run(&frames, &playable, budget, kind);
        run.name = name;
        // Its audio, for PESQ: the schedule played like a fixed buffer
        // whose delay changes only at the schedule's boundaries.
        let mut player = SchedulePlayout::new(&run.name, slots)?;
        run.audio = simulate(&mut player, &frames, &arrivals, end_ms).audio;
        let m = metrics(&run, &frames, &effective);
        oracles.push((run, m));
    }
    buffers.extend(oracles);
    let floors: Vec<f64> = frames
        .iter()
        .zip(&playable)
        .filter_map(|(f, p)| p.map(|p| p - f.send_ms))
        .collect();
    let pull_floor_ms = floors.iter().sum::<f64>() / floors.len().max(1) as f64;
    Ok(EvalReport {
        frames,
        arrivals,
        link: summary,
        buffers,
        pull_floor_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::synthetic::{
        GilbertElliott, Handover, Jitter, SyntheticConfig, SyntheticLink,
    };
    use std::time::Duration;

    #[test]
    fn a_frame_is_playable_from_the_first_pull_after_it_arrives() {
        let arrivals = [
            Some(0.0),
            Some(0.5),
            Some(10.0),
            Some(10.000_001),
            Some(29.9),
            None,
        ];
        assert_eq!(
            first_pulls(&arrivals),
            [
                Some(0.0),
                Some(10.0),
                Some(10.0),
                Some(20.0),
                Some(30.0),
                None
            ]
        );
    }

    #[test]
    fn no_buffer_plays_a_frame_before_the_first_pull_after_it_arrived() {
        // 12 ms one way: every 20 ms frame is first playable at the pull
        // 20 ms after it was sent.
        let mut link = SyntheticLink::new(SyntheticConfig {
            base_delay: Duration::from_millis(12),
            ..SyntheticConfig::default()
        })
        .unwrap();
        let report = evaluate(&speech(), &mut link, &EvalConfig::default(), |_| {}).unwrap();
        assert!(
            (report.pull_floor_ms - 20.0).abs() < 1e-9,
            "{}",
            report.pull_floor_ms
        );
        let playable = first_pulls(&effective_arrivals(&report.frames, &report.arrivals));
        for (run, m) in &report.buffers {
            for (f, p) in report.frames.iter().zip(&playable) {
                if let (Some(&t), Some(p)) = (run.playout_ms.get(&f.frame), p) {
                    assert!(
                        t >= p - 1e-9,
                        "{} played frame {} at {t} < {p}",
                        run.name,
                        f.frame
                    );
                }
            }
            if run.name.starts_with("oracle") {
                assert!((m.mean_delay_ms - 20.0).abs() < 1e-9, "{m:?}");
            }
        }
    }

    #[test]
    fn segments_start_where_speech_follows_a_pause_or_a_gap() {
        // Frames 0-5 sent (speech, speech, quiet, quiet, speech, quiet),
        // then a DTX gap, then 9-10 (quiet, speech).
        let sent = [
            (0, false),
            (1, false),
            (2, true),
            (3, true),
            (4, false),
            (5, true),
            (9, true),
            (10, false),
        ];
        let frames: Vec<SentFrame> = sent
            .iter()
            .map(|&(k, quiet)| sent_frame(k, quiet, vec![0]))
            .collect();
        assert_eq!(spurt_ranges(&frames), vec![0..6, 6..8]);
        assert_eq!(segment_ranges(&frames), vec![0..4, 4..6, 6..7, 7..8]);
    }

    /// Frame `k` of a stream sent every 20 ms from 0, without FEC.
    pub(super) fn sent_frame(k: u64, quiet: bool, payload: Vec<u8>) -> SentFrame {
        SentFrame {
            frame: k,
            send_ms: k as f64 * FRAME_MS,
            packet: RtpPacket {
                seq: k as u16,
                timestamp: (k as usize * FRAME) as u32,
                ssrc: 1,
                marker: false,
                payload,
            },
            has_fec: false,
            quiet,
        }
    }

    #[test]
    fn noise_is_mixed_in_at_its_level_and_repeats_for_a_seed() {
        let mut a = vec![0i16; 48_000];
        add_noise(&mut a, -40.0, 3);
        let rms = (a.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
        let db = 20.0 * (rms / 32_768.0).log10();
        assert!((db + 40.0).abs() < 0.2, "{db} dBFS");
        let mut b = vec![0i16; 48_000];
        add_noise(&mut b, -40.0, 3);
        assert_eq!(a, b);
        add_noise(&mut b, -40.0, 4);
        assert_ne!(a, b);
    }

    #[test]
    fn whole_ms_arrivals_stay_whole_and_catch_their_pull() {
        use crate::link::mahimahi::{MahimahiConfig, MahimahiLink, MahimahiTrace};
        // An opportunity every ms from 1 ms and 30 ms of propagation: a
        // frame sent at 15 980 ms arrives at 16 010 ms, on a pull boundary.
        let opportunities: String = (1..=20_000).map(|t| format!("{t}\n")).collect();
        let mut link = MahimahiLink::new(
            MahimahiTrace::parse(&opportunities).unwrap(),
            MahimahiConfig::default(),
        )
        .unwrap();
        let frames: Vec<SentFrame> = (0..1_000u64)
            .map(|k| sent_frame(k, false, vec![0; 60]))
            .collect();
        let (arrivals, _) = deliver(&mut link, &frames).unwrap();
        for (f, a) in frames.iter().zip(first_pulls(&arrivals)).skip(1) {
            assert_eq!(a, Some(f.send_ms + 30.0), "frame {}", f.frame);
        }
    }

    #[test]
    fn the_oracle_is_played_at_the_times_it_scheduled() {
        let mut link = SyntheticLink::new(SyntheticConfig {
            jitter: Some(Jitter::Pareto {
                scale: Duration::from_millis(8),
                shape: 2.5,
            }),
            seed: 5,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let frames = encode(&speech(), &EvalConfig::default()).unwrap();
        let (arrivals, _) = deliver(&mut link, &frames).unwrap();
        let playable = first_pulls(&effective_arrivals(&frames, &arrivals));
        for (budget, kind) in [0, 3, 10].into_iter().flat_map(|b| {
            [
                (b, OracleKind::Talkspurts),
                (
                    b,
                    OracleKind::Pauses {
                        change_penalty: 0.0,
                    },
                ),
            ]
        }) {
            let (_, run, slots) = oracle_run(&frames, &playable, budget, kind);
            assert!(run.playout_ms.len() > 100);
            let speech: Vec<u64> = slots
                .iter()
                .filter(|s| !s.cuttable)
                .map(|s| s.frame)
                .collect();
            let mut player = SchedulePlayout::new("oracle", slots).unwrap();
            let rendered = simulate(&mut player, &frames, &arrivals, 20_000.0);
            // Every frame of speech plays at its slot (a pause it may cut
            // starts early or not at all).
            let at_slots = |p: &BTreeMap<u64, f64>| {
                speech.iter().map(|f| p.get(f).copied()).collect::<Vec<_>>()
            };
            assert_eq!(
                at_slots(&rendered.playout_ms),
                at_slots(&run.playout_ms),
                "budget {budget}, {kind:?}"
            );
            // Real audio where the schedule plays, not silence.
            let loud = rendered
                .audio
                .iter()
                .filter(|s| s.unsigned_abs() > 1_000)
                .count();
            assert!(loud > 48_000, "{loud}");
        }
    }

    fn speech() -> Vec<i16> {
        let clip = sotto_codecs::wav::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/speech/alsa_48k/Front_Center.wav"
        ))
        .unwrap();
        // Words with pauses between them, so DTX makes talkspurts.
        let mut pcm = Vec::new();
        for _ in 0..4 {
            pcm.extend_from_slice(&clip.samples);
            pcm.extend(std::iter::repeat_n(0i16, 24_000));
        }
        pcm
    }

    #[test]
    fn all_buffers_run_on_a_jittery_lossy_link() {
        let mut link = SyntheticLink::new(SyntheticConfig {
            loss: Some(GilbertElliott {
                p_good_to_bad: 0.02,
                p_bad_to_good: 0.5,
                loss_good: 0.0,
                loss_bad: 0.5,
            }),
            jitter: Some(Jitter::Pareto {
                scale: Duration::from_millis(8),
                shape: 2.5,
            }),
            fifo: false,
            seed: 3,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let config = EvalConfig {
            speex: true,
            oracle_late_pct: vec![1.0],
            ..EvalConfig::default()
        };
        let report = evaluate(&speech(), &mut link, &config, |_| {}).unwrap();
        let names: Vec<&str> = report
            .buffers
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "sotto",
                "speex",
                "fixed_40",
                "fixed_80",
                "fixed_120",
                "fixed_200",
                "oracle",
                "oracle_pauses",
                "oracle_speex",
                "oracle_late1",
                "oracle_pauses_late1"
            ]
        );
        let get = |n: &str| &report.buffers.iter().find(|(r, _)| r.name == n).unwrap().1;
        // A 200 ms fixed buffer plays at exactly 200 ms and loses (almost) nothing late.
        assert!((get("fixed_200").mean_delay_ms - 200.0).abs() < 1e-6);
        assert!(get("fixed_200").late_loss <= get("fixed_40").late_loss);
        // The oracle never needs more delay than a buffer at the same late count.
        assert!(get("oracle").late <= get("sotto").late);
        assert!(get("oracle").mean_delay_ms <= get("sotto").mean_delay_ms + 1e-6);
        assert!(get("oracle_speex").mean_delay_ms <= get("speex").mean_delay_ms + 1e-6);
        // The oracle at 1 % late takes at most 1 % of the frames late,
        // and every oracle has audio to score.
        assert!(get("oracle_late1").late <= report.frames.len() / 100);
        assert!(get("oracle_pauses_late1").late <= report.frames.len() / 100);
        for (run, _) in report
            .buffers
            .iter()
            .filter(|(r, _)| r.name.starts_with("oracle"))
        {
            assert!(
                run.audio.iter().any(|s| s.unsigned_abs() > 1_000),
                "{}",
                run.name
            );
        }
        // Speex really played the stream.
        assert!(get("speex").concealment < 0.5, "{:?}", get("speex"));
        let sotto = &report.buffers[0].0;
        assert!(sotto.stats.as_ref().unwrap().jitter_buffer_emitted_count > 0);
        // The CSV has a row per frame, with its pause flag and every buffer.
        let csv = report::csv(&report);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header[4], "quiet");
        assert_eq!(header.len(), 5 + names.len());
        let quiet: Vec<bool> = lines.map(|l| l.split(',').nth(4) == Some("1")).collect();
        let sent: Vec<bool> = report.frames.iter().map(|f| f.quiet).collect();
        assert_eq!(quiet, sent);
        assert!(sent.contains(&true) && sent.contains(&false));
    }

    #[test]
    fn an_oracle_late_loss_rate_outside_0_to_100_or_a_bad_penalty_is_refused() {
        let bad_rates = [-1.0, 100.5, f64::NAN, 1e12].map(|pct| (vec![1.0, pct], vec![]));
        let bad_penalties = [-1.0, f64::NAN, f64::INFINITY].map(|p| (vec![1.0], vec![10.0, p]));
        for (rates, penalties) in bad_rates.into_iter().chain(bad_penalties) {
            let mut link = SyntheticLink::new(SyntheticConfig::default()).unwrap();
            let config = EvalConfig {
                oracle_late_pct: rates.clone(),
                oracle_change_penalty: penalties.clone(),
                ..EvalConfig::default()
            };
            let err = evaluate(&speech(), &mut link, &config, |_| {}).unwrap_err();
            assert!(
                matches!(err, EvalError::Input(_)),
                "{rates:?} {penalties:?}: {err}"
            );
        }
    }

    fn sotto_metrics(config: SyntheticConfig) -> BufferMetrics {
        let mut link = SyntheticLink::new(config).unwrap();
        // Ending in speech: after the last frame the buffer conceals.
        let mut pcm = speech();
        pcm.truncate(pcm.len() - 24_000);
        let report = evaluate(&pcm, &mut link, &EvalConfig::default(), |_| {}).unwrap();
        report.buffers[0].1.clone()
    }

    #[test]
    fn waits_count_as_expansion_and_the_end_of_the_stream_does_not() {
        // A clean link: nothing to wait for but the first DTX packet at
        // the end of each talkspurt (a fraction of a percent). The
        // concealment played after the last frame (the stream ended) is
        // not a wait: counted, it would be several percent.
        let clean = sotto_metrics(SyntheticConfig::default());
        assert_eq!(clean.late_loss, 0.0);
        assert!(clean.expand_rate < 0.01, "{clean:?}");
        // Outages that hold packets back: the buffer waits through them
        // with concealment, and that shows as expansion.
        let outages = sotto_metrics(SyntheticConfig {
            handover: Some(Handover {
                mean_interval: Duration::from_secs(3),
                outage: Duration::from_millis(300),
                spike: Duration::ZERO,
                recovery: Duration::ZERO,
                drop_during_outage: false,
            }),
            seed: 5,
            ..SyntheticConfig::default()
        });
        assert!(
            outages.expand_rate > clean.expand_rate + 0.01,
            "{outages:?}"
        );
    }
}
