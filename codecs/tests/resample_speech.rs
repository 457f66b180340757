//! Resampler accuracy on real speech: round trips through 48 kHz, and the
//! streaming resampler agreeing with the offline one after its delay.

use std::path::PathBuf;

use sotto_codecs::resample::{StreamResampler, resample_clip};
use sotto_codecs::{samples, wav};

fn speech_16k() -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/speech/asterisk_en_16k_g722dec/dir-intro.wav");
    samples::i16_to_f32(&wav::read(path).unwrap().samples)
}

/// Signal-to-noise ratio of `b` against `a` in dB, ignoring `edge`
/// samples at both ends where the filters start and stop.
fn snr_db(a: &[f32], b: &[f32], edge: usize) -> f64 {
    let n = a.len().min(b.len());
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    for i in edge..n - edge {
        sig += f64::from(a[i]).powi(2);
        noise += f64::from(a[i] - b[i]).powi(2);
    }
    10.0 * (sig / noise.max(1e-20)).log10()
}

#[test]
fn device_rates_round_trip_through_48k() {
    let speech = speech_16k();
    // 11.025 and 22.05 kHz: WAV rates with no whole number of frames in 10 ms.
    for rate in [8_000u32, 11_025, 16_000, 22_050, 44_100] {
        // The source at `rate`: band-limited, as a device would deliver it.
        let source = resample_clip(&speech, 1, 16_000, rate).unwrap();
        let up = resample_clip(&source, 1, rate, 48_000).unwrap();
        let back = resample_clip(&up, 1, 48_000, rate).unwrap();
        let expected_len = source.len() as f64 * 48_000.0 / f64::from(rate);
        assert!(
            (up.len() as f64 - expected_len).abs() <= 2.0,
            "{rate}: {}",
            up.len()
        );
        let snr = snr_db(&source, &back, rate as usize / 50);
        eprintln!("{rate} Hz -> 48 kHz -> {rate} Hz: SNR {snr:.1} dB");
        assert!(snr > 30.0, "{rate}: SNR {snr:.1} dB");
        // Control: a one-sample misalignment would fail the same check.
        assert!(snr_db(&source, &back[1..], rate as usize / 50) < 30.0);
    }
}

#[test]
fn streaming_matches_offline_after_its_delay() {
    let speech = speech_16k();
    let offline = resample_clip(&speech, 1, 16_000, 48_000).unwrap();
    let mut r = StreamResampler::new(16_000, 48_000, 1).unwrap();
    let mut streamed = Vec::new();
    for chunk in speech.chunks_exact(r.input_frames()) {
        r.process(chunk, &mut streamed).unwrap();
    }
    let delayed = &streamed[r.delay_frames()..];
    let n = delayed.len().min(offline.len());
    let worst = (0..n)
        .map(|i| (delayed[i] - offline[i]).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "worst difference {worst}");
}
