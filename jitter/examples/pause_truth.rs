//! How often the pause detector takes speech for a pause over background
//! noise. Reads two recordings of the same speech with the same timing
//! (e.g. `received_fixed_200.wav` of two `sotto-jitter eval` runs on one
//! trace, one with `--noise-dbfs`), runs [`PauseDetector`] over both, 20 ms
//! at a time, and takes the clean one's pauses as the truth. For each
//! run of quiet the buffer may wait for before it edits a pause (0, 40
//! and 80 ms: `pause_edit_after_ms`), prints the share of the noisy
//! recording's frames it would edit and how many of those are speech in
//! the clean one.
//!
//! ```text
//! sotto-jitter eval --trace T --format mahimahi --seconds 60 --no-pesq --out clean
//! sotto-jitter eval --trace T --format mahimahi --seconds 60 --no-pesq --out noisy --noise-dbfs -30
//! cargo run --release -p sotto-jitter --example pause_truth -- \
//!     clean/received_fixed_200.wav noisy/received_fixed_200.wav
//! ```

use sotto_jitter::stretch::PauseDetector;

/// 20 ms at 48 kHz: the frames the buffer decides on.
const FRAME: usize = 960;

/// Whether each 20 ms frame of `pcm` is a pause, in order.
fn pauses(pcm: &[i16]) -> Vec<bool> {
    let mut d = PauseDetector::default();
    pcm.chunks_exact(FRAME).map(|f| d.is_pause(f)).collect()
}

/// Which frames the buffer would edit: pauses after at least `after`
/// quiet frames before them.
fn edited(quiet: &[bool], after: usize) -> Vec<bool> {
    let mut run = 0;
    quiet
        .iter()
        .map(|&q| {
            let edit = q && run >= after;
            run = if q { run + 1 } else { 0 };
            edit
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [clean, noisy] = args.as_slice() else {
        return Err("usage: pause_truth CLEAN.wav NOISY.wav".into());
    };
    let read = |p: &str| -> Result<Vec<i16>, Box<dyn std::error::Error>> {
        let clip = sotto_codecs::wav::read(p)?;
        if clip.sample_rate != 48_000 || clip.channels != 1 {
            return Err(format!("{p}: need 48 kHz mono").into());
        }
        Ok(clip.samples)
    };
    let truth = pauses(&read(clean)?);
    let heard = pauses(&read(noisy)?);
    let n = truth.len().min(heard.len());
    let (truth, heard) = (&truth[..n], &heard[..n]);
    println!(
        "{n} frames; pauses in the clean recording: {:.1} %",
        100.0 * truth.iter().filter(|&&t| t).count() as f64 / n as f64
    );
    for after in [0, 2, 4] {
        let edit = edited(heard, after);
        let edits = edit.iter().filter(|&&e| e).count();
        let wrong = edit.iter().zip(truth).filter(|&(&e, &t)| e && !t).count();
        println!(
            "edited after {:>2} ms of quiet: {:.1} % of frames, of which {:.1} % speech in the clean recording",
            after * FRAME / 48,
            100.0 * edits as f64 / n as f64,
            100.0 * wrong as f64 / edits.max(1) as f64
        );
    }
    Ok(())
}
