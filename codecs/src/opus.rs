//! Opus (RFC 6716) through libopus, bundled by the `opus` crate.
//!
//! The encoder exposes what a voice call adapts at run time: bitrate,
//! complexity, in-band FEC (LBRR) with the expected packet-loss hint, and
//! DTX. The decoder adds PLC (decoding "nothing") and FEC recovery of a
//! lost frame from the LBRR data in the packet after it.

use ::opus as lib;

use crate::CodecError;
use crate::codec::{Decoder, Encoder, FrameDuration};

/// Largest payload we ask libopus for: RFC 6716 §3.4 caps a packet at
/// 1275 bytes per frame, and a 60 ms packet may hold three 20 ms frames.
const MAX_PAYLOAD: usize = 3 * 1275 + 7;

/// Longest audio one Opus packet can hold: 120 ms (RFC 6716 §3.2.5).
const MAX_PACKET_MS: usize = 120;

/// Payloads this short are DTX frames: libopus then emits only the TOC
/// byte (or TOC + one byte), and such packets need not be transmitted
/// (libopus `opus_encode` documentation).
const DTX_MAX_LEN: usize = 2;

/// Sample rates libopus accepts for PCM in and out.
const RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The intended use of the encoder (maps to `OPUS_APPLICATION_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// Speech intelligibility first: the mode for calls.
    Voip,
    /// Fidelity to the input, e.g. music.
    Audio,
    /// Lowest delay; disables the speech (SILK) layer, and with it FEC.
    LowDelay,
}

/// Encoder settings. [`OpusConfig::default`] is a 48 kHz mono 20 ms voice
/// stream at 24 kbit/s with FEC and DTX off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    /// PCM rate in Hz: 8, 12, 16, 24 or 48 kHz.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Duration of each encoded frame.
    pub frame: FrameDuration,
    /// Coding mode.
    pub application: Application,
    /// Target bitrate in bit/s (500 to 512 000).
    pub bitrate: u32,
    /// 0 (cheapest) to 10 (best).
    pub complexity: u8,
    /// In-band forward error correction (LBRR).
    pub fec: bool,
    /// Expected packet loss in percent (0-100); with `fec` the encoder
    /// spends more bits on redundancy as this rises.
    pub packet_loss_pct: u8,
    /// Discontinuous transmission in silence.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
            frame: FrameDuration::Ms20,
            application: Application::Voip,
            bitrate: 24_000,
            complexity: 9,
            fec: false,
            packet_loss_pct: 0,
            dtx: false,
        }
    }
}

fn check_rate(rate: u32) -> Result<(), CodecError> {
    if RATES.contains(&rate) {
        Ok(())
    } else {
        Err(CodecError::Config(format!("Opus cannot run at {rate} Hz")))
    }
}

fn lib_channels(channels: u16) -> Result<lib::Channels, CodecError> {
    match channels {
        1 => Ok(lib::Channels::Mono),
        2 => Ok(lib::Channels::Stereo),
        n => Err(CodecError::Config(format!(
            "Opus takes 1 or 2 channels, not {n}"
        ))),
    }
}

/// An Opus encoder.
pub struct OpusEncoder {
    inner: lib::Encoder,
    config: OpusConfig,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .finish()
    }
}

impl OpusEncoder {
    /// Creates an encoder with `config`.
    pub fn new(config: OpusConfig) -> Result<Self, CodecError> {
        check_rate(config.sample_rate)?;
        let application = match config.application {
            Application::Voip => lib::Application::Voip,
            Application::Audio => lib::Application::Audio,
            Application::LowDelay => lib::Application::LowDelay,
        };
        let inner = lib::Encoder::new(
            config.sample_rate,
            lib_channels(config.channels)?,
            application,
        )?;
        let mut enc = Self {
            inner,
            config: config.clone(),
            scratch: vec![0; MAX_PAYLOAD],
        };
        enc.set_bitrate(config.bitrate)?;
        enc.set_complexity(config.complexity)?;
        enc.set_fec(config.fec)?;
        enc.set_packet_loss_pct(config.packet_loss_pct)?;
        enc.set_dtx(config.dtx)?;
        Ok(enc)
    }

    /// The current settings.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Sets the target bitrate in bit/s.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let bits = i32::try_from(bps)
            .ok()
            .filter(|b| (500..=512_000).contains(b))
            .ok_or_else(|| CodecError::Config(format!("bitrate {bps} out of 500..=512000")))?;
        self.inner.set_bitrate(lib::Bitrate::Bits(bits))?;
        self.config.bitrate = bps;
        Ok(())
    }

    /// Sets the computational complexity, 0 to 10.
    pub fn set_complexity(&mut self, complexity: u8) -> Result<(), CodecError> {
        if complexity > 10 {
            return Err(CodecError::Config(format!("complexity {complexity} > 10")));
        }
        self.inner.set_complexity(i32::from(complexity))?;
        self.config.complexity = complexity;
        Ok(())
    }

    /// Turns in-band FEC on or off.
    pub fn set_fec(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner.set_inband_fec(on)?;
        self.config.fec = on;
        Ok(())
    }

    /// Sets the expected packet loss in percent, 0 to 100.
    pub fn set_packet_loss_pct(&mut self, pct: u8) -> Result<(), CodecError> {
        if pct > 100 {
            return Err(CodecError::Config(format!("packet loss {pct}% > 100")));
        }
        self.inner.set_packet_loss_perc(i32::from(pct))?;
        self.config.packet_loss_pct = pct;
        Ok(())
    }

    /// Turns discontinuous transmission on or off.
    pub fn set_dtx(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner.set_dtx(on)?;
        self.config.dtx = on;
        Ok(())
    }

    /// Samples per channel of algorithmic delay (lookahead) the encoder
    /// adds; decoded audio lags the input by this much.
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        Ok(usize::try_from(self.inner.get_lookahead()?).unwrap_or(0))
    }
}

impl Encoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    fn channels(&self) -> u16 {
        self.config.channels
    }

    fn frame_duration(&self) -> FrameDuration {
        self.config.frame
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        let expected = self.frame_samples() * usize::from(self.config.channels);
        if pcm.len() != expected {
            return Err(CodecError::FrameSize {
                got: pcm.len(),
                expected,
            });
        }
        let n = self.inner.encode(pcm, &mut self.scratch)?;
        out.clear();
        out.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    fn is_dtx(&self, payload: &[u8]) -> bool {
        payload.len() <= DTX_MAX_LEN
    }
}

/// An Opus decoder.
pub struct OpusDecoder {
    inner: lib::Decoder,
    sample_rate: u32,
    channels: u16,
    /// Samples per channel of the last frame decoded or concealed; used
    /// when a caller conceals without saying how much.
    last_frame: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl OpusDecoder {
    /// Creates a decoder producing `channels` channels at `sample_rate` Hz
    /// (any Opus stream can be decoded at any supported rate).
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self, CodecError> {
        check_rate(sample_rate)?;
        Ok(Self {
            inner: lib::Decoder::new(sample_rate, lib_channels(channels)?)?,
            sample_rate,
            channels,
            last_frame: FrameDuration::Ms20.samples(sample_rate),
        })
    }

    /// Samples per channel of the last frame produced.
    pub fn last_frame_samples(&self) -> usize {
        self.last_frame
    }

    fn run(
        &mut self,
        payload: &[u8],
        samples: usize,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let ch = usize::from(self.channels);
        let start = out.len();
        out.resize(start + samples * ch, 0);
        match self.inner.decode(payload, &mut out[start..], fec) {
            Ok(n) => {
                out.truncate(start + n * ch);
                self.last_frame = n;
                Ok(n)
            }
            Err(e) => {
                out.truncate(start);
                Err(e.into())
            }
        }
    }

    fn max_samples(&self) -> usize {
        self.sample_rate as usize / 1000 * MAX_PACKET_MS
    }
}

impl Decoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// 48 kHz whatever rate it decodes at (RFC 7587 §4.1).
    fn clock_rate(&self) -> u32 {
        48_000
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn payload_samples(&self, payload: &[u8]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::Malformed("empty Opus payload"));
        }
        Ok(self.inner.get_nb_samples(payload)?)
    }

    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::Malformed("empty Opus payload"));
        }
        let max = self.max_samples();
        self.run(payload, max, false, out)
    }

    fn conceal_into(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        // libopus conceals in multiples of 2.5 ms, up to one packet.
        let quantum = self.sample_rate as usize / 400;
        if samples == 0 || !samples.is_multiple_of(quantum) || samples > self.max_samples() {
            return Err(CodecError::Config(format!(
                "cannot conceal {samples} samples: need a multiple of {quantum} up to {}",
                self.max_samples()
            )));
        }
        self.run(&[], samples, false, out)
    }

    fn has_fec(&self, payload: &[u8]) -> bool {
        packet_has_fec(payload)
    }

    fn decode_fec_into(
        &mut self,
        next_payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<Option<usize>, CodecError> {
        if !packet_has_fec(next_payload) {
            return Ok(None);
        }
        let samples = self.payload_samples(next_payload)?;
        self.run(next_payload, samples, true, out).map(Some)
    }

    fn is_dtx(&self, payload: &[u8]) -> bool {
        !payload.is_empty() && payload.len() <= DTX_MAX_LEN
    }

    /// libopus carries its state over a concealment: CELT overlap-adds the
    /// next frame onto the concealed one and SILK glues the energy of the
    /// two, so the first decoded sample continues the concealed audio.
    fn joins_after_concealment(&self) -> bool {
        true
    }
}

/// Whether an Opus packet carries LBRR (FEC) data for the previous packet.
///
/// Only the SILK layer carries LBRR, so CELT-only packets (TOC config
/// 16-31) never do. In SILK and hybrid packets the first frame starts
/// with the SILK header bits (RFC 6716 §4.2.3): for the mid channel one
/// VAD flag per 20 ms SILK frame then the LBRR flag, then the same for
/// the side channel in stereo. Each is a range-coded symbol with
/// probability 1/2, and the first such symbols of a range-coded frame are
/// the leading bits of its first byte (RFC 6716 §4.1.3.1), so the flags
/// can be read without decoding.
pub fn packet_has_fec(payload: &[u8]) -> bool {
    let Some(&toc) = payload.first() else {
        return false;
    };
    let config = toc >> 3;
    if config >= 16 {
        return false;
    }
    // SILK-only configs 0-11 cycle 10/20/40/60 ms; hybrid 12-15 are 10/20.
    let silk_frames: u32 = match (config < 12, config % 4) {
        (true, 2) => 2,
        (true, 3) => 3,
        _ => 1,
    };
    let channels: u32 = if toc & 0x04 != 0 { 2 } else { 1 };
    let Ok(packet) = lib::packet::parse(payload) else {
        return false;
    };
    let Some(first) = packet.frames.first().and_then(|f| f.first()) else {
        return false;
    };
    (1..=channels).any(|ch| first & (0x80u8 >> (ch * (silk_frames + 1) - 1)) != 0)
}

/// Feeds `data` to an Opus decoder every way the receive path does
/// (payload length, FEC check and recovery, decode, concealment); the
/// fuzz target `opus_decode` calls this. The first byte picks the output
/// rate and channel count. Never panics.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&select, payload)) = data.split_first() else {
        return;
    };
    let rate = RATES[usize::from(select % 5)];
    let channels = 1 + u16::from(select & 0x80 != 0);
    let Ok(mut dec) = OpusDecoder::new(rate, channels) else {
        return;
    };
    let mut out = Vec::new();
    let _ = dec.payload_samples(payload);
    let _ = dec.decode_fec_into(payload, &mut out);
    let _ = dec.decode_into(payload, &mut out);
    let _ = dec.conceal_into(dec.last_frame_samples(), &mut out);
    let _ = dec.decode_into(payload, &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, channels: usize, phase: &mut f32) -> Vec<i16> {
        let mut v = Vec::with_capacity(samples * channels);
        for _ in 0..samples {
            *phase += 2.0 * std::f32::consts::PI * 440.0 / 48_000.0;
            let s = (phase.sin() * 8000.0) as i16;
            v.extend(std::iter::repeat_n(s, channels));
        }
        v
    }

    #[test]
    fn every_frame_duration_and_channel_count_round_trips() {
        for channels in [1u16, 2] {
            for frame in FrameDuration::ALL {
                let mut enc = OpusEncoder::new(OpusConfig {
                    channels,
                    frame,
                    ..OpusConfig::default()
                })
                .unwrap();
                let mut dec = OpusDecoder::new(48_000, channels).unwrap();
                let n = enc.frame_samples();
                let mut phase = 0.0;
                let mut payload = Vec::new();
                enc.encode(&tone(n, channels.into(), &mut phase), &mut payload)
                    .unwrap();
                assert_eq!(dec.payload_samples(&payload).unwrap(), n);
                let pcm = dec.decode(&payload).unwrap();
                assert_eq!(pcm.len(), n * usize::from(channels));
            }
        }
    }

    #[test]
    fn wrong_frame_size_and_settings_are_typed_errors() {
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        let err = enc.encode(&[0; 100], &mut Vec::new()).unwrap_err();
        assert!(matches!(
            err,
            CodecError::FrameSize {
                got: 100,
                expected: 960
            }
        ));
        assert!(enc.set_complexity(11).is_err());
        assert!(enc.set_packet_loss_pct(101).is_err());
        assert!(enc.set_bitrate(100).is_err());
        assert!(OpusDecoder::new(44_100, 1).is_err());
        assert!(OpusDecoder::new(48_000, 3).is_err());
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        assert!(dec.conceal(100).is_err());
        assert!(dec.decode(&[]).is_err());
    }

    #[test]
    fn garbage_payloads_never_panic() {
        let mut dec = OpusDecoder::new(48_000, 2).unwrap();
        let mut x: u32 = 0x1234_5678;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = packet_has_fec(&bytes);
            let _ = dec.payload_samples(&bytes);
            let _ = dec.decode(&bytes);
            let _ = dec.decode_fec(&bytes);
            fuzz_decode(&bytes);
        }
    }

    #[test]
    fn celt_only_packets_never_claim_fec() {
        // TOC config 31 (CELT FB 20 ms), whatever follows.
        assert!(!packet_has_fec(&[31 << 3, 0xff, 0xff]));
        assert!(!packet_has_fec(&[]));
    }
}
