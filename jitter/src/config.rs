//! Configuration of the [`JitterBuffer`](crate::JitterBuffer): its bounds,
//! its delay estimator and the thresholds of its playout decisions, with
//! the defaults the evaluation in `benches/RESULTS.md` measured.

use crate::error::JitterError;
use crate::estimator::{EstimatorConfig, non_negative, non_negative_or_infinite};

/// Buffer configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Most packets held; beyond this the oldest is dropped.
    pub max_packets: usize,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    /// Delay estimator tuning.
    pub estimator: EstimatorConfig,
    /// Target before any packet has been seen, ms.
    pub initial_target_ms: f64,
    /// Lower bound on the target, ms.
    pub min_target_ms: f64,
    /// Upper bound on the target, ms.
    pub max_target_ms: f64,
    /// Most slack added to the network target (buffer level is measured
    /// just before a decode, when the next packet must already be there),
    /// ms. The slack used is the network target less one pull, within
    /// 0..=margin_ms: none on a steady link.
    pub margin_ms: f64,
    /// The level may fall this far under target before stretching, ms.
    /// None by default: a level that sinks steadily (a sender whose clock
    /// runs slow, a sound card that plays fast) would otherwise sink
    /// through the band to where a packet is late and waited for, inside
    /// speech; stretched as soon as it is under target, it never gets
    /// there.
    pub low_band_ms: f64,
    /// The level may rise this far above target before a pause (a frame
    /// near silence throughout) is shortened, ms.
    pub high_band_ms: f64,
    /// The level may rise this far above target before a speech frame is
    /// accelerated, ms. Much wider than `high_band_ms`: a stretch inside
    /// speech is heard (and shifts the words against each other), one in a
    /// pause is not, so the excess a wait leaves behind is removed in the
    /// pauses (whole 10 ms pulls cut from quiet frames, up to 10 ms from
    /// each quiet 20 ms frame). One pitch period taken out of a word costs
    /// little (PESQ-WB 4.64 -> 4.59 in a 12 s window, benches/RESULTS.md),
    /// but a backlog of a few hundred ms sped through in speech takes
    /// dozens of them. Applies only while pauses come: after
    /// `pause_window_ms` without a pause (a quiet frame or DTX comfort
    /// noise played; music, a tone, non-stop talk have none) speech is
    /// accelerated at `high_band_ms`.
    pub speech_high_band_ms: f64,
    /// The level may fall this far under target before a speech frame is
    /// stretched, ms; a pause is lengthened at `low_band_ms`. Applies only
    /// while pauses come (see `speech_high_band_ms`). Infinite (the
    /// default): while pauses come the delay grows only in them, where
    /// PESQ-WB hardly notices, and by the waits for late packets; a
    /// stretch inside a word shifts the words against each other.
    pub speech_low_band_ms: f64,
    /// See `speech_high_band_ms`, ms.
    pub pause_window_ms: f64,
    /// A pause is shortened or lengthened only once it has lasted this
    /// long (quiet decoded audio), ms, unless the level is over target by
    /// the speech band: a short quiet stretch may be a gap between words
    /// of a phrase, and each edit there moves the words after it against
    /// those before, which PESQ-WB counts (many small cuts add up); a
    /// longer pause ends a phrase.
    pub pause_edit_after_ms: f64,
    /// `pause_edit_after_ms` while the speech comes with background
    /// noise ([`crate::stretch::PauseDetector::over_noise`]), ms. Near
    /// silence a quiet frame is a pause; within a few dB of a noise floor
    /// it may be a soft sound of a word that the noise covers, so a pause
    /// is edited only once it is longer. With noise 13 dB under the
    /// speech, of the frames taken for pauses after 40 ms of quiet, 28 %
    /// are speech in the clean recording; after 80 ms, 10 %
    /// (`examples/pause_truth.rs`).
    pub noisy_pause_edit_after_ms: f64,
    /// Above target plus this, speech is played up to twice as fast, ms:
    /// as many pitch periods are cut from each frame as fit in half of it,
    /// at the best join that is not anti-correlated. A backlog this large
    /// came with an outage, and the words in it were said: played fast
    /// they are heard (and the backlog is gone in about as long as it
    /// is), where a flush would drop them. Once started, the catch-up
    /// goes on until the level is within `high_band_ms` of target: the
    /// whole backlog, not just the part over this threshold (the rest
    /// would wait seconds for pauses, at hundreds of ms of delay, since
    /// speech is otherwise accelerated only from `speech_high_band_ms`).
    pub catch_up_excess_ms: f64,
    /// Above target plus this, old packets are dropped to cut the delay
    /// at once, ms: a backlog of seconds (a multi-second outage) would
    /// keep the call seconds behind for as long again even at twice the
    /// speed.
    pub flush_excess_ms: f64,
    /// Longest wait for the backlog behind a packet that an outage held
    /// up by more than `flush_excess_ms`, ms: the backlog comes in pieces
    /// after it, faster than real time, and is flushed to target once it
    /// has come, so that the call goes back to live instead of playing
    /// the first pieces seconds stale. 0, the default: off, and a backlog
    /// is flushed only once the level is `flush_excess_ms` over target,
    /// so that what comes in after the flush is caught up, not dropped
    /// (the trade is measured in `benches/RESULTS.md`, "Back to live
    /// after an outage").
    pub outage_hold_ms: f64,
    /// Holes longer than this are skipped instead of concealed, ms. A
    /// packet numbered after every other that is stamped this far behind
    /// the playout point restarts the stream (the playout skipped onto a
    /// packet stamped ahead, or the sender's clock stepped back).
    pub max_conceal_gap_ms: f64,
    /// A packet this far ahead of the playout point restarts the stream,
    /// ms. Before playout starts the newest timestamp seen stands for the
    /// playout point, and a packet this far behind it restarts the stream
    /// too when it is numbered after every other (it is late otherwise).
    /// Must be above `max_target_ms + flush_excess_ms`, the most the
    /// buffer keeps.
    pub reset_jump_ms: f64,
    /// How long a packet that came out of order (after a newer one) keeps
    /// the buffer treating missing packets as possibly late, ms. Within
    /// it, a hole is waited for while the buffer is under target, and a
    /// wait shifts the playout. Without reordering a missing packet is
    /// lost: a hole with packets behind it is concealed at once, and a
    /// wait that ends with a later packet turns into the concealment of
    /// the lost ones, so the playout delay does not grow by the wait.
    /// Infinite: always possibly late.
    pub reorder_window_ms: f64,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            max_packets: 500,
            max_payload: 1_500,
            estimator: EstimatorConfig::default(),
            initial_target_ms: 40.0,
            min_target_ms: 0.0,
            max_target_ms: 2_000.0,
            margin_ms: 20.0,
            low_band_ms: 0.0,
            high_band_ms: 15.0,
            speech_high_band_ms: 400.0,
            speech_low_band_ms: f64::INFINITY,
            pause_edit_after_ms: 40.0,
            noisy_pause_edit_after_ms: 80.0,
            pause_window_ms: 3_000.0,
            catch_up_excess_ms: 800.0,
            flush_excess_ms: 3_000.0,
            outage_hold_ms: 0.0,
            max_conceal_gap_ms: 100.0,
            reset_jump_ms: 10_000.0,
            reorder_window_ms: 10_000.0,
        }
    }
}

/// Longest [`JitterConfig::reset_jump_ms`]: an hour, well inside the
/// half timestamp range a jump is told apart by at any clock rate up to
/// 48 kHz.
pub const MAX_RESET_JUMP_MS: f64 = 3_600_000.0;

impl JitterConfig {
    /// Checks that every setting is in range: a buffer is built only from
    /// a configuration that passes.
    pub fn validate(&self) -> Result<(), JitterError> {
        let bad = |m: String| Err(JitterError::Config(m));
        if self.max_packets == 0 || self.max_payload == 0 {
            return bad("max_packets and max_payload must be >= 1".into());
        }
        non_negative(&[
            ("initial_target_ms", self.initial_target_ms),
            ("min_target_ms", self.min_target_ms),
            ("max_target_ms", self.max_target_ms),
            ("margin_ms", self.margin_ms),
            ("low_band_ms", self.low_band_ms),
            ("high_band_ms", self.high_band_ms),
            ("speech_high_band_ms", self.speech_high_band_ms),
            ("pause_window_ms", self.pause_window_ms),
            ("pause_edit_after_ms", self.pause_edit_after_ms),
            ("noisy_pause_edit_after_ms", self.noisy_pause_edit_after_ms),
            ("catch_up_excess_ms", self.catch_up_excess_ms),
            ("flush_excess_ms", self.flush_excess_ms),
            ("outage_hold_ms", self.outage_hold_ms),
            ("max_conceal_gap_ms", self.max_conceal_gap_ms),
            ("reset_jump_ms", self.reset_jump_ms),
        ])
        .map_err(JitterError::Config)?;
        // Infinite is allowed here: missing packets are always possibly
        // late; speech is never slowed while pauses come.
        non_negative_or_infinite(&[
            ("reorder_window_ms", self.reorder_window_ms),
            ("speech_low_band_ms", self.speech_low_band_ms),
        ])
        .map_err(JitterError::Config)?;
        if self.min_target_ms > self.max_target_ms {
            return bad(format!(
                "min_target_ms {} is above max_target_ms {}",
                self.min_target_ms, self.max_target_ms
            ));
        }
        // Packets that far ahead are a backlog the buffer keeps, not a
        // jump: with a shorter reset, every packet buffered behind the
        // next one would restart the stream.
        let kept = self.max_target_ms + self.flush_excess_ms;
        if self.reset_jump_ms <= kept {
            return bad(format!(
                "reset_jump_ms {} must be above max_target_ms + flush_excess_ms ({kept})",
                self.reset_jump_ms
            ));
        }
        // Timestamps wrap at 2^32 ticks, and a jump is told from going
        // back by half of that: 12.4 h at 48 kHz. A longer reset_jump_ms
        // would never see a jump.
        if self.reset_jump_ms > MAX_RESET_JUMP_MS {
            return bad(format!(
                "reset_jump_ms {} must be at most {MAX_RESET_JUMP_MS} (one hour)",
                self.reset_jump_ms
            ));
        }
        self.estimator.validate().map_err(JitterError::Config)
    }
}
