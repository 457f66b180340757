//! Opus round trips on real speech, with objective checks that fail when
//! the codec path is wrong: waveform correlation after aligning for the
//! codec delay, FEC recovery beating PLC, and DTX in silence.

use std::path::PathBuf;

use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::resample::resample_clip;
use sotto_codecs::{Decoder, Encoder, FrameDuration, samples, wav};

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/speech")
        .join(rel)
}

/// 12 s of 16 kHz speech (Asterisk "dir-intro") brought to 48 kHz.
fn speech_48k() -> Vec<i16> {
    let clip = wav::read(testdata("asterisk_en_16k_g722dec/dir-intro.wav")).unwrap();
    assert_eq!((clip.sample_rate, clip.channels), (16_000, 1));
    let up = resample_clip(&samples::i16_to_f32(&clip.samples), 1, 16_000, 48_000).unwrap();
    samples::f32_to_i16(&up)
}

/// Native fullband 48 kHz speech ("Front Center", alsa-utils).
fn fullband_48k() -> Vec<i16> {
    let clip = wav::read(testdata("alsa_48k/Front_Center.wav")).unwrap();
    assert_eq!((clip.sample_rate, clip.channels), (48_000, 1));
    clip.samples
}

/// Encodes `pcm` (interleaved) frame by frame; the tail that does not
/// fill a frame is dropped.
fn encode_all(enc: &mut OpusEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
    let n = enc.frame_samples() * usize::from(enc.channels());
    pcm.chunks_exact(n)
        .map(|frame| {
            let mut p = Vec::new();
            enc.encode(frame, &mut p).unwrap();
            p
        })
        .collect()
}

fn decode_all(dec: &mut OpusDecoder, packets: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in packets {
        dec.decode_into(p, &mut out).unwrap();
    }
    out
}

/// Normalised cross-correlation of `a[i]` with `b[i + lag]`.
fn correlation(a: &[i16], b: &[i16], lag: usize) -> f64 {
    let n = a.len().min(b.len().saturating_sub(lag));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]), f64::from(b[i + lag]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(1e-9)
}

/// The lag in `0..max_lag` at which `b` best matches `a` (searched on
/// 2 s of speech to keep the test quick), and the whole-clip correlation
/// at that lag.
fn best_lag(a: &[i16], b: &[i16], max_lag: usize) -> (usize, f64) {
    let window = &a[48_000..144_000];
    let lag = (0..max_lag)
        .max_by(|&x, &y| {
            correlation(window, &b[48_000..], x).total_cmp(&correlation(window, &b[48_000..], y))
        })
        .unwrap();
    (lag, correlation(a, b, lag))
}

fn channel(pcm: &[i16], ch: usize, channels: usize) -> Vec<i16> {
    pcm.iter().skip(ch).step_by(channels).copied().collect()
}

#[test]
fn mono_speech_round_trip_is_aligned_and_faithful_for_every_frame_size() {
    let speech = speech_48k();
    for frame in FrameDuration::ALL {
        let mut enc = OpusEncoder::new(OpusConfig {
            frame,
            bitrate: 32_000,
            ..OpusConfig::default()
        })
        .unwrap();
        let lookahead = enc.lookahead().unwrap();
        let packets = encode_all(&mut enc, &speech);
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let out = decode_all(&mut dec, &packets);
        assert_eq!(out.len(), packets.len() * enc.frame_samples());
        // The decoded speech lines up with the input exactly at the
        // encoder's lookahead, and matches it closely there.
        let (lag, corr) = best_lag(&speech, &out, 2 * lookahead);
        eprintln!("{frame:?}: lookahead {lookahead}, best lag {lag}, correlation {corr:.4}");
        // SILK's internal resampling shifts the phase slightly: within 0.25 ms.
        assert!(lag.abs_diff(lookahead) <= 12, "{frame:?}: lag {lag}");
        assert!(corr > 0.9, "{frame:?}: correlation {corr}");
        // Control: misaligned by 1 ms the same check would fail.
        assert!(correlation(&speech, &out, lag + 48) < 0.9);
    }
}

#[test]
fn fullband_and_stereo_round_trips() {
    let speech = fullband_48k();
    // Stereo: left = speech, right = inverted half-level speech, so a
    // channel swap or a downmix would show.
    let stereo: Vec<i16> = speech.iter().flat_map(|&s| [s, -s / 2]).collect();
    let mut enc = OpusEncoder::new(OpusConfig {
        channels: 2,
        bitrate: 64_000,
        ..OpusConfig::default()
    })
    .unwrap();
    let lookahead = enc.lookahead().unwrap();
    let packets = encode_all(&mut enc, &stereo);
    let mut dec = OpusDecoder::new(48_000, 2).unwrap();
    let out = decode_all(&mut dec, &packets);
    let (left, right) = (channel(&out, 0, 2), channel(&out, 1, 2));
    let right_in: Vec<i16> = speech.iter().map(|&s| -s / 2).collect();
    let l = correlation(&speech, &left, lookahead);
    let r = correlation(&right_in, &right, lookahead);
    assert!(l > 0.9 && r > 0.9, "left {l}, right {r}");
    assert!(correlation(&speech, &right, lookahead) < -0.9);
}

#[test]
fn bitrate_and_complexity_control_the_output() {
    let speech = speech_48k();
    let mut mean_bytes = Vec::new();
    for (bitrate, complexity) in [(12_000u32, 0u8), (48_000, 10)] {
        let mut enc = OpusEncoder::new(OpusConfig {
            bitrate,
            complexity,
            ..OpusConfig::default()
        })
        .unwrap();
        let lookahead = enc.lookahead().unwrap();
        let packets = encode_all(&mut enc, &speech);
        let bytes: usize = packets.iter().map(Vec::len).sum();
        let mean = bytes as f64 / packets.len() as f64;
        // VBR speech averages near the target: 20 ms at R bit/s is R/400 bytes.
        let target = f64::from(bitrate) / 400.0;
        assert!(
            mean > 0.5 * target && mean < 1.5 * target,
            "{bitrate}: {mean} B"
        );
        mean_bytes.push(mean);
        let out = decode_all(&mut OpusDecoder::new(48_000, 1).unwrap(), &packets);
        let (_, c) = best_lag(&speech, &out, 2 * lookahead);
        // Waveform match is a floor check only: at 48 kbit/s Opus codes
        // the high band in CELT, which keeps the spectrum, not the wave.
        assert!(c > 0.85, "{bitrate}: correlation {c}");
    }
    // Run-time changes take effect.
    let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
    enc.set_bitrate(8_000).unwrap();
    enc.set_complexity(2).unwrap();
    let small: usize = encode_all(&mut enc, &speech).iter().map(Vec::len).sum();
    assert!((small as f64) < 0.5 * mean_bytes[1] * (speech.len() / 960) as f64);
}

/// Every `stride`-th packet in a speech-active region is lost; returns the
/// squared error against the loss-free decode of the lost frames, when
/// concealed by PLC and when recovered from the next packet's FEC.
fn loss_errors(packets: &[Vec<u8>], stride: usize) -> (f64, f64, usize) {
    let reference = decode_all(&mut OpusDecoder::new(48_000, 1).unwrap(), packets);
    let mut plc = OpusDecoder::new(48_000, 1).unwrap();
    let mut fec = OpusDecoder::new(48_000, 1).unwrap();
    let (mut plc_out, mut fec_out) = (Vec::new(), Vec::new());
    let mut lost = Vec::new();
    let mut recovered = 0;
    for (k, p) in packets.iter().enumerate() {
        let is_lost = k % stride == stride / 2 && k + 1 < packets.len();
        if is_lost {
            lost.push(k);
            plc.conceal_into(960, &mut plc_out).unwrap();
            match fec.decode_fec_into(&packets[k + 1], &mut fec_out).unwrap() {
                Some(n) => {
                    assert_eq!(n, 960);
                    recovered += 1;
                }
                None => {
                    fec.conceal_into(960, &mut fec_out).unwrap();
                }
            }
        } else {
            plc.decode_into(p, &mut plc_out).unwrap();
            fec.decode_into(p, &mut fec_out).unwrap();
        }
    }
    let err = |out: &[i16]| -> f64 {
        lost.iter()
            .flat_map(|&k| k * 960..(k + 1) * 960)
            .map(|i| (f64::from(out[i]) - f64::from(reference[i])).powi(2))
            .sum()
    };
    (err(&plc_out), err(&fec_out), recovered)
}

#[test]
fn fec_recovers_lost_frames_closer_than_plc() {
    let speech = speech_48k();
    let mut enc = OpusEncoder::new(OpusConfig {
        fec: true,
        packet_loss_pct: 20,
        bitrate: 32_000,
        ..OpusConfig::default()
    })
    .unwrap();
    let packets = encode_all(&mut enc, &speech);
    let dec = OpusDecoder::new(48_000, 1).unwrap();
    let with_fec = packets.iter().filter(|p| dec.has_fec(p)).count();
    assert!(
        with_fec * 2 > packets.len(),
        "{with_fec}/{} carry FEC",
        packets.len()
    );

    let (plc_err, fec_err, recovered) = loss_errors(&packets, 7);
    eprintln!(
        "{recovered} lost frames recovered by FEC: error energy {:.3} of PLC's",
        fec_err / plc_err
    );
    assert!(recovered > 0);
    assert!(
        fec_err < 0.2 * plc_err,
        "FEC {fec_err:e} vs PLC {plc_err:e}"
    );

    // Without FEC no packet claims LBRR data and recovery falls back.
    let mut plain = OpusEncoder::new(OpusConfig {
        bitrate: 32_000,
        ..OpusConfig::default()
    })
    .unwrap();
    let packets = encode_all(&mut plain, &speech);
    assert!(packets.iter().all(|p| !dec.has_fec(p)));
    let (plc_err, fec_err, recovered) = loss_errors(&packets, 7);
    assert_eq!(recovered, 0);
    assert_eq!(plc_err, fec_err);
}

#[test]
fn fec_flag_is_found_in_stereo_and_long_frames() {
    // The LBRR flag sits at a different bit for stereo and for 40/60 ms
    // SILK frames (RFC 6716 §4.2.3); check each layout is read right.
    let speech = speech_48k();
    for (channels, frame) in [
        (2u16, FrameDuration::Ms20),
        (1, FrameDuration::Ms40),
        (1, FrameDuration::Ms60),
        (2, FrameDuration::Ms60),
        (1, FrameDuration::Ms10),
    ] {
        let pcm: Vec<i16> = speech
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, channels.into()))
            .collect();
        let packets_with = |fec| {
            let mut enc = OpusEncoder::new(OpusConfig {
                channels,
                frame,
                fec,
                packet_loss_pct: 20,
                bitrate: 24_000,
                ..OpusConfig::default()
            })
            .unwrap();
            encode_all(&mut enc, &pcm)
        };
        let dec = OpusDecoder::new(48_000, channels).unwrap();
        let on = packets_with(true);
        let flagged = on.iter().filter(|p| dec.has_fec(p)).count();
        assert!(
            flagged * 2 > on.len(),
            "{channels} ch {frame:?}: {flagged}/{}",
            on.len()
        );
        let off = packets_with(false);
        assert!(
            off.iter().all(|p| !dec.has_fec(p)),
            "{channels} ch {frame:?}"
        );
    }
}

#[test]
fn dtx_sends_tiny_packets_in_silence_only() {
    let speech = speech_48k();
    let silence = vec![0i16; 48_000 * 2];
    let mut input = silence.clone();
    input.extend_from_slice(&speech[..48_000 * 3]);
    input.extend_from_slice(&silence);
    let mut enc = OpusEncoder::new(OpusConfig {
        dtx: true,
        ..OpusConfig::default()
    })
    .unwrap();
    let packets = encode_all(&mut enc, &input);
    let (first_silence, rest) = packets.split_at(100);
    let dtx_in_silence = first_silence.iter().filter(|p| enc.is_dtx(p)).count();
    eprintln!("DTX: {dtx_in_silence}/100 frames of silence sent as DTX");
    assert!(
        dtx_in_silence > 80,
        "{dtx_in_silence}/100 DTX frames in silence"
    );
    assert!(
        first_silence
            .iter()
            .filter(|p| enc.is_dtx(p))
            .all(|p| p.len() <= 2)
    );
    // Speech (skip 200 ms where the encoder ramps up) is never DTX.
    let speech_part = &rest[10..150];
    let dtx_in_speech = speech_part.iter().filter(|p| enc.is_dtx(p)).count();
    assert!(dtx_in_speech < 10, "{dtx_in_speech} DTX frames in speech");
    // The decoder accepts DTX frames and produces quiet audio for them.
    let mut dec = OpusDecoder::new(48_000, 1).unwrap();
    for p in first_silence {
        assert_eq!(dec.is_dtx(p), p.len() <= 2);
        let pcm = dec.decode(p).unwrap();
        assert_eq!(pcm.len(), 960);
        assert!(pcm.iter().all(|s| s.unsigned_abs() < 1000));
    }
    // Without DTX, silence still costs real packets.
    let mut no_dtx = OpusEncoder::new(OpusConfig::default()).unwrap();
    let packets = encode_all(&mut no_dtx, &silence);
    assert!(packets.iter().all(|p| !no_dtx.is_dtx(p)));
}

#[test]
fn plc_continues_speech_and_the_next_packet_joins() {
    let speech = speech_48k();
    let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
    let packets = encode_all(&mut enc, &speech);
    let mut dec = OpusDecoder::new(48_000, 1).unwrap();
    // Find a loud frame, lose it, and check PLC is not silence.
    let loud = (50..packets.len())
        .find(|&k| packets[k].len() > 60)
        .expect("speech has loud frames");
    for p in &packets[..loud] {
        dec.decode(p).unwrap();
    }
    let concealed = dec.conceal(960).unwrap();
    let energy: f64 = concealed.iter().map(|&s| f64::from(s).powi(2)).sum();
    assert!(energy > 0.0);
    assert_eq!(dec.decode(&packets[loud + 1]).unwrap().len(), 960);
    // PLC lengths other than 20 ms work too, in 2.5 ms steps.
    assert_eq!(dec.conceal(480).unwrap().len(), 480);
    assert_eq!(dec.conceal(120).unwrap().len(), 120);
}

#[test]
fn the_packet_after_a_concealment_continues_it_without_a_step() {
    // What `joins_after_concealment` promises the jitter buffer: a loud
    // frame lost (and one 10 ms wait) in speech, the next packet's first
    // sample steps from the last concealed one no more than the loss-free
    // decode steps anywhere in the 40 ms around it.
    let speech = speech_48k();
    let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
    let packets = encode_all(&mut enc, &speech);
    let clean = decode_all(&mut OpusDecoder::new(48_000, 1).unwrap(), &packets);
    assert!(
        OpusDecoder::new(48_000, 1)
            .unwrap()
            .joins_after_concealment()
    );
    let loud: Vec<usize> = (50..packets.len() - 1)
        .filter(|&k| packets[k].len() > 60)
        .step_by(7)
        .take(20)
        .collect();
    assert_eq!(loud.len(), 20);
    for conceal in [960, 480] {
        for &k in &loud {
            let mut dec = OpusDecoder::new(48_000, 1).unwrap();
            for p in &packets[..k] {
                dec.decode(p).unwrap();
            }
            let concealed = dec.conceal(conceal).unwrap();
            let next = dec.decode(&packets[k + 1]).unwrap();
            let join = (i32::from(next[0]) - i32::from(concealed[conceal - 1])).abs();
            let around = &clean[(k - 1) * 960..(k + 1) * 960];
            let natural = around
                .windows(2)
                .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
                .max()
                .unwrap();
            assert!(join <= natural, "frame {k}: {join} vs {natural}");
        }
    }
}
