//! Time-domain time stretching (WSOLA-style, one pitch period at a time).
//!
//! Accelerate removes one pitch period and preemptive expand inserts one;
//! the period is the lag with the highest normalised cross-correlation, and
//! the join is a raised-cosine cross-fade over one period between two
//! segments that look alike, so the waveform stays continuous (no clicks).
//! Catch-up, for a backlog after an outage, removes several periods from
//! a frame, up to half of it, at the best joins there are.

/// Sample rate the stretcher works at.
const RATE: usize = 48_000;
/// Shortest period searched: 2.5 ms (400 Hz).
pub const MIN_PERIOD: usize = RATE / 400;
/// Longest period searched: 10 ms (100 Hz).
pub const MAX_PERIOD: usize = RATE / 100;
/// Decimation factor of the coarse lag search.
const DECIMATE: usize = 4;
/// Correlation above which a join is inaudible enough for voiced speech.
const MIN_CORRELATION: f32 = 0.9;
/// Correlation a catch-up join needs: any that is not anti-correlated
/// (a join of opposite phases would cancel the audio across the fade).
const CATCH_UP_MIN_CORRELATION: f32 = 0.0;
/// Mean-square level under which a segment counts as near silence, where
/// any join is inaudible (about -50 dBFS on 16-bit samples).
const QUIET_POWER: f32 = 100.0 * 100.0;

/// A join that [`find_join`] accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Join {
    /// Period (samples) removed or inserted.
    pub period: usize,
    /// Normalised correlation of the two joined segments (1 = identical).
    pub correlation: f32,
}

/// Finds a period `T` such that `x[start..start+T]` and
/// `x[start+T..start+2T]` are alike, or `None` when `x` is too short or no
/// lag correlates well enough (the caller then plays the audio unchanged).
pub fn find_join(x: &[i16], start: usize) -> Option<Join> {
    best_join(x, start).filter(|j| j.correlation >= MIN_CORRELATION)
}

/// The period `T` at which `x[start..start+T]` and `x[start+T..start+2T]`
/// are most alike, however little (near silence: the longest allowed), or
/// `None` when `x` is too short.
fn best_join(x: &[i16], start: usize) -> Option<Join> {
    let seg = x.get(start..)?;
    if seg.len() < 2 * MIN_PERIOD {
        return None;
    }
    let max_t = MAX_PERIOD.min(seg.len() / 2);
    if is_quiet(&seg[..2 * MIN_PERIOD]) {
        // Near silence: remove or insert the longest period allowed.
        return Some(Join {
            period: max_t,
            correlation: 1.0,
        });
    }
    // Coarse search on a 4x-decimated copy, then refine at full rate.
    let dec: Vec<f32> = seg
        .chunks_exact(DECIMATE)
        .map(|c| c.iter().map(|&s| f32::from(s)).sum::<f32>())
        .collect();
    let mut best = (0usize, f32::MIN);
    for t in MIN_PERIOD / DECIMATE..=max_t / DECIMATE {
        let c = ncc(&dec, t, t);
        if c > best.1 {
            best = (t * DECIMATE, c);
        }
    }
    let full: Vec<f32> = seg.iter().map(|&s| f32::from(s)).collect();
    let lo = best.0.saturating_sub(DECIMATE).max(MIN_PERIOD);
    let hi = (best.0 + DECIMATE).min(max_t);
    let mut fine = (0usize, f32::MIN);
    for t in lo..=hi {
        let c = ncc(&full, t, t);
        if c > fine.1 {
            fine = (t, c);
        }
    }
    Some(Join {
        period: fine.0,
        correlation: fine.1,
    })
}

/// Whether `x` is near silence (mean square under about -50 dBFS): a
/// join there is inaudible.
pub fn is_quiet(x: &[i16]) -> bool {
    power(x) < QUIET_POWER
}

fn power(x: &[i16]) -> f32 {
    x.iter().map(|&s| f32::from(s) * f32::from(s)).sum::<f32>() / x.len().max(1) as f32
}

/// Tells pauses from speech, frame by frame, over whatever noise the
/// speech comes with. A pause is a frame in which every 2.5 ms is near
/// silence or within 6 dB of the noise floor: cutting it, or adding to
/// it, is inaudible. A frame that is quiet only on average may hold a
/// soft consonant or the onset of a word, which must not be cut.
///
/// The floor is the level of the quietest frame heard lately (minimum
/// statistics): it falls at once to a quieter frame and rises again by
/// 3 dB a second, so it follows a noise that gets louder within seconds,
/// while speech, whose words leave gaps at the level of the noise, does
/// not lift it. It is capped at -30 dBFS, so no pause is louder than -24:
/// speech that loud is never taken for noise, and noise louder than that
/// (13 dB under the speech) leaves the buffer to treat all as speech.
#[derive(Debug, Clone, Default)]
pub struct PauseDetector {
    /// Mean square of the noise floor.
    floor: f32,
}

impl PauseDetector {
    /// How far over the floor a 2.5 ms block of a pause may be (6 dB).
    const OVER_FLOOR: f32 = 4.0;
    /// Highest floor: -30 dBFS.
    const MAX_FLOOR: f32 = 1036.0 * 1036.0;
    /// Rise of the floor per second (3 dB).
    const RISE_PER_S: f32 = 2.0;

    /// Takes the next frame of audio (48 kHz) and says whether it is a
    /// pause.
    pub fn is_pause(&mut self, x: &[i16]) -> bool {
        // One pass: the frame's level and its loudest 2.5 ms.
        let (mut energy, mut loudest) = (0.0f32, 0.0f32);
        for block in x.chunks(MIN_PERIOD) {
            let p = power(block);
            energy += p * block.len() as f32;
            loudest = loudest.max(p);
        }
        let rise = Self::RISE_PER_S.powf(x.len() as f32 / RATE as f32);
        // Below a quarter of `QUIET_POWER` the floor decides nothing, so
        // it rises from there at the least (and so can rise from zero).
        let base = self.floor.max(QUIET_POWER / Self::OVER_FLOOR);
        let level = energy / x.len().max(1) as f32;
        self.floor = (base * rise).min(level).min(Self::MAX_FLOOR);
        loudest < QUIET_POWER.max(self.floor * Self::OVER_FLOOR)
    }

    /// Whether the noise floor, not near-silence, decides what a pause
    /// is: the speech comes with background noise, so a frame taken for a
    /// pause may also be a soft sound of speech that the noise covers.
    pub fn over_noise(&self) -> bool {
        self.floor * Self::OVER_FLOOR > QUIET_POWER
    }
}

/// Normalised cross-correlation of `x[..len]` with `x[lag..lag+len]`.
fn ncc(x: &[f32], lag: usize, len: usize) -> f32 {
    if lag + len > x.len() || len == 0 {
        return f32::MIN;
    }
    let (mut xy, mut xx, mut yy) = (0f32, 0f32, 0f32);
    for i in 0..len {
        let (a, b) = (x[i], x[lag + i]);
        xy += a * b;
        xx += a * a;
        yy += b * b;
    }
    if xx <= 0.0 || yy <= 0.0 {
        return 0.0;
    }
    xy / (xx * yy).sqrt()
}

/// Raised-cosine fade-in weight for position `i` of `n`.
fn fade_in(i: usize, n: usize) -> f32 {
    let p = (i as f32 + 0.5) / n as f32;
    0.5 - 0.5 * (std::f32::consts::PI * p).cos()
}

/// Cross-fades `from` (fading out) into `to` (fading in).
pub fn crossfade(from: &[i16], to: &[i16], out: &mut Vec<i16>) {
    let n = from.len().min(to.len());
    for i in 0..n {
        let w = fade_in(i, n);
        let v = f32::from(from[i]) * (1.0 - w) + f32::from(to[i]) * w;
        out.push(v.round().clamp(-32768.0, 32767.0) as i16);
    }
}

/// Removes one period `t` at `start`: `x[start..start+2t]` becomes a
/// cross-fade of its two halves. Returns the number of samples removed.
pub fn accelerate(x: &mut Vec<i16>, start: usize, t: usize) -> usize {
    cut(x, start, t, t)
}

/// Plays `x` up to twice as fast: removes one period after another from
/// the start, each at its best join (not anti-correlated), while the
/// periods removed fit in half of `x`. For a backlog, where hearing the
/// words sooner matters more than a join that cannot be heard. Returns
/// the number of samples removed.
pub fn catch_up(x: &mut Vec<i16>) -> usize {
    let most = x.len() / 2;
    let (mut start, mut removed) = (0, 0);
    while let Some(j) = best_join(x, start).filter(|j| j.correlation >= CATCH_UP_MIN_CORRELATION) {
        if removed + j.period > most || accelerate(x, start, j.period) == 0 {
            break;
        }
        removed += j.period;
        start += j.period;
    }
    removed
}

/// Removes `n` samples at `start`, cross-fading over `fade` samples from
/// the audio before the cut into the audio after it. Returns the number
/// of samples removed (0 when `x` is too short).
pub fn cut(x: &mut Vec<i16>, start: usize, n: usize, fade: usize) -> usize {
    if n == 0 || start + n + fade > x.len() {
        return 0;
    }
    let mut joined = Vec::with_capacity(fade);
    crossfade(
        &x[start..start + fade],
        &x[start + n..start + n + fade],
        &mut joined,
    );
    x.splice(start..start + n + fade, joined);
    n
}

/// Inserts one period `t` at `start`: after `x[..start+t]` comes a
/// cross-fade from `x[start+t..start+2t]` back into `x[start..start+t]`,
/// then the rest. Returns the number of samples inserted.
pub fn preemptive_expand(x: &mut Vec<i16>, start: usize, t: usize) -> usize {
    if start + 2 * t > x.len() {
        return 0;
    }
    let mut joined = Vec::with_capacity(t);
    crossfade(
        &x[start + t..start + 2 * t],
        &x[start..start + t],
        &mut joined,
    );
    x.splice(start + t..start + t, joined);
    t
}

/// Continues `history` for `len` samples by repeating its last pitch
/// period: the lag at which its last period best matches the one before,
/// with the level falling period by period as it fell over the last one
/// (concealment fades), and the first samples shifted so that the
/// continuation starts where `history` ends, without a step. The basis a
/// merge fades out of. Empty when there is too little history.
pub fn periodic_extension(history: &[i16], len: usize) -> Vec<i16> {
    let n = history.len();
    if n < 2 * MIN_PERIOD {
        return Vec::new();
    }
    let x: Vec<f32> = history.iter().map(|&s| f32::from(s)).collect();
    let mut best = (MIN_PERIOD, f32::MIN);
    for t in MIN_PERIOD..=MAX_PERIOD.min(n / 2) {
        let c = ncc(&x[n - 2 * t..], t, t);
        if c > best.1 {
            best = (t, c);
        }
    }
    let t = best.0;
    let (before, last) = (power(&history[n - 2 * t..n - t]), power(&history[n - t..]));
    let gain = if before > 0.0 {
        (last / before).sqrt().min(1.0)
    } else {
        1.0
    };
    // The repeated period would continue from x[n - t - 1] (scaled); move
    // its start onto x[n - 1], the shift fading out over MIN_PERIOD.
    let shift = x[n - 1] - gain * x[n - t - 1];
    (0..len)
        .map(|i| {
            // The period fades within itself already; each repeat starts
            // at the level where the one before ended.
            let level = gain.powi(1 + (i / t) as i32);
            let ramp = 1.0 - (i as f32 / MIN_PERIOD as f32).min(1.0);
            let v = x[n - t + i % t] * level + shift * ramp;
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Largest sample-to-sample step in `x` (a click detector for tests and
/// the evaluation).
pub fn max_step(x: &[i16]) -> i32 {
    x.windows(2)
        .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_tone() {
        // 200 Hz: period 240 samples at 48 kHz (or a multiple of it).
        let x = tone(200.0, 1920, 8000.0);
        let j = find_join(&x, 0).unwrap();
        assert_eq!(j.period % 240, 0, "{j:?}");
        assert!(j.correlation > 0.99);
    }

    #[test]
    fn accelerate_and_expand_keep_a_tone_smooth() {
        let x = tone(200.0, 1920, 8000.0);
        let natural = max_step(&x);
        let j = find_join(&x, 100).unwrap();
        let mut a = x.clone();
        assert_eq!(accelerate(&mut a, 100, j.period), j.period);
        assert_eq!(a.len(), x.len() - j.period);
        assert!(
            max_step(&a) <= natural + 20,
            "{} vs {natural}",
            max_step(&a)
        );
        let mut e = x.clone();
        assert_eq!(preemptive_expand(&mut e, 100, j.period), j.period);
        assert_eq!(e.len(), x.len() + j.period);
        assert!(
            max_step(&e) <= natural + 20,
            "{} vs {natural}",
            max_step(&e)
        );
    }

    /// Deterministic white-ish noise from an LCG.
    fn noise(n: usize) -> Vec<i16> {
        let mut s = 12345u32;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((s >> 16) as i16) / 2
            })
            .collect()
    }

    #[test]
    fn noise_without_periodicity_is_refused() {
        assert!(find_join(&noise(1920), 0).is_none());
    }

    #[test]
    fn catch_up_removes_up_to_half_of_a_tone_smoothly_and_of_noise_too() {
        // A 20 ms frame of a 200 Hz tone: whole periods (240 samples) up
        // to half of it, with joins as smooth as the tone.
        let x = tone(200.0, 960, 8000.0);
        let mut a = x.clone();
        let removed = catch_up(&mut a);
        assert_eq!(removed % 240, 0);
        assert!((360..=480).contains(&removed), "{removed}");
        assert_eq!(a.len(), x.len() - removed);
        assert!(max_step(&a) <= max_step(&x) + 20);
        // Noise, which no join of `find_join` accepts, is cut too.
        let mut n = noise(960);
        let removed = catch_up(&mut n);
        assert!((1..=480).contains(&removed), "{removed}");
        assert_eq!(n.len(), 960 - removed);
        // Too short to join: unchanged.
        let mut short = tone(200.0, 2 * MIN_PERIOD - 1, 8000.0);
        assert_eq!(catch_up(&mut short), 0);
    }

    #[test]
    fn silence_and_short_input() {
        assert_eq!(find_join(&[0; 1920], 0).unwrap().period, MAX_PERIOD);
        assert!(find_join(&[0; 100], 0).is_none());
        let mut short = vec![1i16; 10];
        assert_eq!(accelerate(&mut short, 0, 240), 0);
        assert_eq!(preemptive_expand(&mut short, 0, 240), 0);
    }

    #[test]
    fn a_periodic_extension_goes_on_from_the_last_sample_and_keeps_fading() {
        // A 220 Hz tone (period 218.2 samples, not a whole number) fading
        // by half every 10 ms, as a concealment does, cut off mid-swing.
        let fade = |i: usize| 0.5f32.powf(i as f32 / 480.0);
        let x: Vec<i16> = tone(220.0, 960, 8000.0)
            .iter()
            .enumerate()
            .map(|(i, &s)| (f32::from(s) * fade(i)) as i16)
            .collect();
        let ext = periodic_extension(&x[..900], 240);
        assert_eq!(ext.len(), 240);
        let mut joined = x[..900].to_vec();
        joined.extend_from_slice(&ext);
        // No step where it starts, or where its period repeats.
        let natural = max_step(&x[850..]);
        assert!(
            max_step(&joined[850..]) <= natural * 3 / 2,
            "{} vs {natural}",
            max_step(&joined[850..])
        );
        // It goes on fading rather than jumping back to the level of a
        // period before.
        let rms = |s: &[i16]| {
            (s.iter().map(|&v| f32::from(v).powi(2)).sum::<f32>() / s.len() as f32).sqrt()
        };
        assert!(
            rms(&ext[20..238]) < rms(&x[682..900]),
            "{} vs {}",
            rms(&ext[20..238]),
            rms(&x[682..900])
        );
        assert!(periodic_extension(&x[..200], 240).is_empty());
    }

    #[test]
    fn pauses_are_found_over_steady_noise_but_soft_sounds_are_not_pauses() {
        // Noise at about -40 dBFS (uniform, from an LCG), 20 ms frames.
        let mut state = 7u32;
        let mut noise = |n: usize, amp: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * amp
                })
                .collect()
        };
        let frame = |noise: Vec<f32>, tone_amp: f32| -> Vec<i16> {
            let t = tone(200.0, 960, tone_amp);
            noise
                .iter()
                .zip(&t)
                .map(|(n, &s)| (n + f32::from(s)) as i16)
                .collect()
        };
        let mut d = PauseDetector::default();
        // Noise alone: once the floor has risen to it (3 dB a second from
        // -56 dBFS), it is a pause.
        let heard: Vec<bool> = (0..250)
            .map(|_| d.is_pause(&frame(noise(960, 570.0), 0.0)))
            .collect();
        assert!(!heard[0], "not before the floor is known");
        assert!(
            heard[200..].iter().all(|&p| p),
            "noise after 4 s is a pause"
        );
        // Speech-like tone over it is not; nor is a soft one 9 dB over
        // the noise; the noise after them still is.
        assert!(!d.is_pause(&frame(noise(960, 570.0), 8000.0)));
        assert!(!d.is_pause(&frame(noise(960, 570.0), 1300.0)));
        assert!(d.is_pause(&frame(noise(960, 570.0), 0.0)));
        assert!(d.over_noise(), "the noise floor decides");
        // Digital silence is a pause at once, and drops the floor to it.
        let mut fresh = PauseDetector::default();
        assert!(fresh.is_pause(&[0; 960]));
        assert!(!fresh.over_noise(), "near-silence decides");
        assert!(!fresh.is_pause(&frame(noise(960, 570.0), 0.0)));
    }

    #[test]
    fn cut_removes_the_span_and_fades_across_it() {
        // A ramp: after the cut the samples go on from where the cut ends.
        let mut x: Vec<i16> = (0..960).map(|i| i as i16).collect();
        assert_eq!(cut(&mut x, 120, 600, 120), 600);
        assert_eq!(x.len(), 360);
        assert_eq!(&x[..120], &(0..120).collect::<Vec<i16>>()[..]);
        assert_eq!(x[359], 959);
        // The fade runs from the audio before the cut to the audio after.
        assert!(x[120] < 200 && x[239] > 800, "{} {}", x[120], x[239]);
        assert_eq!(cut(&mut x, 0, 300, 120), 0, "too short");
        assert!(is_quiet(&[50; 480]) && !is_quiet(&[500; 480]));
        // Quiet on average, but with a burst: not a pause.
        let mut burst = vec![0i16; 960];
        burst[930..].fill(500);
        let pause = |x: &[i16]| PauseDetector::default().is_pause(x);
        assert!(is_quiet(&burst) && !pause(&burst) && pause(&[50; 960]));
    }
}
