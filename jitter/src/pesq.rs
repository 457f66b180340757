//! PESQ (ITU-T P.862) scores of received speech, through the PyPI `pesq`
//! package run by `scripts/pesq_score.py`.
//!
//! The interpreter is `$SOTTO_PYTHON` (set by `cargo xtask test` to the
//! venv that `cargo xtask setup` makes), else `python3`. PESQ is an
//! optional extra of the evaluation: without Python or the package every
//! call fails with [`PesqError::Unavailable`], which callers may report
//! and carry on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use sotto_codecs::wav::{self, Clip};

/// The scoring script, embedded so the library works from any directory.
const SCRIPT: &str = include_str!("../scripts/pesq_score.py");

/// Which PESQ variant to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PesqMode {
    /// P.862.2 wideband (16 kHz): MOS-LQO 1.04 to 4.64.
    Wideband,
    /// P.862.1 narrowband (8 or 16 kHz).
    Narrowband,
}

impl PesqMode {
    fn arg(self) -> &'static str {
        match self {
            Self::Wideband => "wb",
            Self::Narrowband => "nb",
        }
    }
}

/// Why no score could be computed.
#[derive(Debug, thiserror::Error)]
pub enum PesqError {
    /// No Python interpreter, or it lacks `pesq`/`numpy`.
    #[error("PESQ unavailable ({python}): {reason}")]
    Unavailable {
        /// The interpreter tried.
        python: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The inputs are not a valid pair (format, rate, unreadable file).
    #[error("PESQ input rejected: {0}")]
    Input(String),
    /// PESQ ran but could not score the pair (e.g. no speech in it).
    #[error("PESQ could not score the pair: {0}")]
    Failed(String),
    /// Writing a temporary WAV failed.
    #[error("writing a temporary WAV: {0}")]
    Wav(#[from] sotto_codecs::CodecError),
    /// The temporary directory for the WAVs could not be made.
    #[error("making a temporary directory: {0}")]
    TempDir(std::io::Error),
}

/// The interpreter the scores run with.
pub fn python() -> PathBuf {
    std::env::var_os("SOTTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Checks that Python with `pesq` and `numpy` can be run.
pub fn available() -> Result<(), PesqError> {
    let python = python();
    let out = Command::new(&python)
        .args(["-c", "import numpy, pesq"])
        .output()
        .map_err(|e| PesqError::Unavailable {
            python: python.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PesqError::Unavailable {
            python,
            // The last line of a Python traceback names the missing module.
            reason: String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned(),
        })
    }
}

/// Scores the WAV file `degraded` against `reference`: mono 16-bit PCM at
/// one rate (16 kHz for wideband). Returns the MOS-LQO.
pub fn score_files(reference: &Path, degraded: &Path, mode: PesqMode) -> Result<f64, PesqError> {
    let python = python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(reference)
        .arg(degraded)
        .arg(mode.arg())
        .output()
        .map_err(|e| PesqError::Unavailable {
            python: python.clone(),
            reason: e.to_string(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .ok_or_else(|| PesqError::Failed(format!("unexpected output {text:?}")))
        }
        Some(2) => Err(PesqError::Unavailable {
            python,
            reason: stderr,
        }),
        Some(3) => Err(PesqError::Failed(stderr)),
        _ => Err(PesqError::Input(stderr)),
    }
}

/// Scores mono PCM `degraded` against `reference`, both at `sample_rate`,
/// through temporary WAV files that are removed afterwards.
pub fn score(
    reference: &[i16],
    degraded: &[i16],
    sample_rate: u32,
    mode: PesqMode,
) -> Result<f64, PesqError> {
    let files = TempPair::new()?;
    for (path, samples) in [(&files.reference, reference), (&files.degraded, degraded)] {
        wav::write(
            path,
            &Clip {
                sample_rate,
                channels: 1,
                samples: samples.to_vec(),
            },
        )?;
    }
    score_files(&files.reference, &files.degraded, mode)
}

/// Two temporary WAV paths in a private directory, deleted on drop.
struct TempPair {
    dir: PathBuf,
    reference: PathBuf,
    degraded: PathBuf,
}

impl TempPair {
    fn new() -> Result<Self, PesqError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("sotto-pesq-{}-{n}-{nanos}", std::process::id()));
        // create_dir fails if the name exists, so nobody else's files or
        // links are written through.
        std::fs::create_dir(&dir).map_err(PesqError::TempDir)?;
        Ok(Self {
            reference: dir.join("ref.wav"),
            degraded: dir.join("deg.wav"),
            dir,
        })
    }
}

impl Drop for TempPair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/speech")
            .join(rel)
    }

    /// PESQ is optional: with `SOTTO_PYTHON` set (as `cargo xtask test`
    /// does) it must work; otherwise a machine without it skips, saying so.
    fn pesq_or_skip() -> bool {
        match available() {
            Ok(()) => true,
            Err(e) if std::env::var_os("SOTTO_PYTHON").is_some() => {
                panic!("SOTTO_PYTHON is set but PESQ does not run: {e}")
            }
            Err(e) => {
                eprintln!("skipping PESQ test: {e} (run `cargo xtask setup`, set SOTTO_PYTHON)");
                false
            }
        }
    }

    #[test]
    fn known_scores_of_the_quality_fixtures() {
        if !pesq_or_skip() {
            return;
        }
        // Golden values: ../shared/data/README.md §3 (pesq 0.0.4).
        let reference = speech("asterisk_en_16k_g722dec/dir-intro.wav");
        let opus12k = speech("quality_fixtures/dir-intro_16k_opus12k_voip.wav");
        let wb = score_files(&reference, &opus12k, PesqMode::Wideband).unwrap();
        assert!((wb - 3.8416).abs() < 1e-3, "{wb}");
        let nb = score_files(&reference, &opus12k, PesqMode::Narrowband).unwrap();
        assert!((nb - 3.9878).abs() < 1e-3, "{nb}");
        let identity = score_files(&reference, &reference, PesqMode::Wideband).unwrap();
        assert!((identity - 4.6439).abs() < 1e-3, "{identity}");
        // The pesq package's own test pair (upstream README: 1.0832337...).
        let babble = score_files(
            &speech("pesq_repo/speech.wav"),
            &speech("pesq_repo/speech_bab_0dB.wav"),
            PesqMode::Wideband,
        )
        .unwrap();
        assert!((babble - 1.0832).abs() < 1e-3, "{babble}");
    }

    #[test]
    fn in_memory_scoring_and_typed_failures() {
        if !pesq_or_skip() {
            return;
        }
        let clip = wav::read(speech("asterisk_en_16k_g722dec/dir-intro.wav")).unwrap();
        let s = &clip.samples[..16_000 * 6];
        // 20 ms frames, every fifth zeroed: a clearly degraded copy.
        let mut holes = s.to_vec();
        holes.chunks_mut(320).step_by(5).for_each(|f| f.fill(0));
        let clean = score(s, s, 16_000, PesqMode::Wideband).unwrap();
        let damaged = score(s, &holes, 16_000, PesqMode::Wideband).unwrap();
        assert!(clean > 4.5 && damaged < 2.5, "{clean} {damaged}");
        // Silence has no utterances to score.
        let silence = vec![0i16; 16_000 * 2];
        assert!(matches!(
            score(&silence, &silence, 16_000, PesqMode::Wideband),
            Err(PesqError::Failed(_))
        ));
        assert!(matches!(
            score_files(
                Path::new("/nonexistent.wav"),
                Path::new("/x.wav"),
                PesqMode::Wideband
            ),
            Err(PesqError::Input(_))
        ));
    }

    /// The codec path judged by PESQ: 16 kHz speech up to 48 kHz, Opus
    /// 24 kbit/s with FEC, back down to 16 kHz; then the same with 10 %
    /// of the packets lost, repaired three ways.
    #[test]
    fn opus_path_scores_and_loss_repair_ranks_as_expected() {
        use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
        use sotto_codecs::resample::resample_clip;
        use sotto_codecs::{Decoder, Encoder, samples};

        if !pesq_or_skip() {
            return;
        }
        let clip = wav::read(speech("asterisk_en_16k_g722dec/dir-intro.wav")).unwrap();
        let up = resample_clip(&samples::i16_to_f32(&clip.samples), 1, 16_000, 48_000).unwrap();
        let pcm = samples::f32_to_i16(&up);
        let encode = |config: OpusConfig| -> (usize, Vec<Vec<u8>>) {
            let mut enc = OpusEncoder::new(config).unwrap();
            let lookahead = enc.lookahead().unwrap();
            let packets = pcm
                .chunks_exact(960)
                .map(|f| {
                    let mut p = Vec::new();
                    enc.encode(f, &mut p).unwrap();
                    p
                })
                .collect();
            (lookahead, packets)
        };
        let (lookahead, packets) = encode(OpusConfig {
            fec: true,
            packet_loss_pct: 10,
            ..OpusConfig::default()
        });
        let (_, plain) = encode(OpusConfig {
            complexity: 10,
            ..OpusConfig::default()
        });
        // 10 % independent loss, fixed seed.
        let mut rng = crate::link::rng::Rng::new(1);
        let lost: Vec<bool> = packets.iter().map(|_| rng.chance(0.1)).collect();
        #[derive(Clone, Copy)]
        enum Repair {
            None,
            ZeroFill,
            Plc,
            Fec,
        }
        let score_with = |packets: &[Vec<u8>], repair: Repair| {
            let mut dec = OpusDecoder::new(48_000, 1).unwrap();
            let mut out = Vec::new();
            for (k, p) in packets.iter().enumerate() {
                if !lost[k] || matches!(repair, Repair::None) {
                    dec.decode_into(p, &mut out).unwrap();
                    continue;
                }
                let next = packets
                    .get(k + 1)
                    .filter(|_| !lost.get(k + 1).unwrap_or(&true));
                match (repair, next) {
                    (Repair::ZeroFill, _) => out.extend([0; 960]),
                    (Repair::Fec, Some(next))
                        if dec.decode_fec_into(next, &mut out).unwrap().is_some() => {}
                    _ => {
                        dec.conceal_into(960, &mut out).unwrap();
                    }
                }
            }
            let down = resample_clip(&samples::i16_to_f32(&out), 1, 48_000, 16_000).unwrap();
            let mut degraded = samples::f32_to_i16(&down);
            // Remove the codec delay so both signals start together.
            degraded.drain(..lookahead / 3);
            degraded.resize(clip.samples.len(), 0);
            score(&clip.samples, &degraded, 16_000, PesqMode::Wideband).unwrap()
        };
        let reference = score_with(&plain, Repair::None);
        let clean = score_with(&packets, Repair::None);
        let zero = score_with(&packets, Repair::ZeroFill);
        let plc = score_with(&packets, Repair::Plc);
        let fec = score_with(&packets, Repair::Fec);
        eprintln!(
            "PESQ-WB Opus 24k: no FEC {reference:.3}; with FEC: clean {clean:.3}, \
             10 % loss zero-fill {zero:.3}, PLC {plc:.3}, FEC {fec:.3}"
        );
        // ../shared/data/README.md §3: Opus 24 kbit/s VoIP 20 ms through
        // ffmpeg/libopus scores 4.493 on this file.
        assert!((reference - 4.493).abs() < 0.1, "{reference}");
        // FEC's redundancy costs some clean quality.
        assert!(clean > 4.0 && clean <= reference, "{clean}");
        assert!(
            zero < plc && plc < fec && fec < clean,
            "{zero} {plc} {fec} {clean}"
        );
    }
}
