//! The Speex jitter buffer (libspeexdsp, through `sotto-peers`) as a
//! [`Playout`], used the way a Speex application uses it: one
//! `jitter_buffer_get` + `jitter_buffer_tick` per 20 ms frame. It is given
//! the same FEC help as the others: a missing frame is rebuilt from the
//! next packet's LBRR data when that packet has already arrived.

use std::collections::HashMap;

use sotto_codecs::opus::OpusDecoder;
use sotto_peers::speexdsp::{SpeexGet, SpeexJitter};

use crate::buffer::PULL_SAMPLES;
use crate::packet::RtpPacket;

use super::EvalError;
use super::playout::{FRAME, Playout, Sync, decode_frame};

/// Speex's buffer behind the [`Playout`] interface.
pub struct SpeexPlayout {
    jb: SpeexJitter,
    dec: OpusDecoder,
    /// Payloads that have arrived, by frame, for FEC look-ups.
    arrived: HashMap<u64, Vec<u8>>,
    sync: Sync,
    pcm: Vec<i16>,
    ticks: u64,
    inserted: u64,
}

impl SpeexPlayout {
    /// A Speex buffer with its default settings, stepping 20 ms frames.
    pub fn new() -> Result<Self, EvalError> {
        Ok(Self {
            jb: SpeexJitter::new(FRAME as u32).ok_or(EvalError::Peer("jitter_buffer_init"))?,
            dec: OpusDecoder::new(48_000, 1)?,
            arrived: HashMap::new(),
            sync: Sync::default(),
            pcm: Vec::new(),
            ticks: 0,
            inserted: 0,
        })
    }
}

impl Playout for SpeexPlayout {
    fn name(&self) -> String {
        "speex".into()
    }

    fn insert(&mut self, _now_ms: f64, packet: &RtpPacket) {
        self.jb
            .put(&packet.payload, packet.timestamp, FRAME as u32, packet.seq);
        let f = u64::from(packet.timestamp) / FRAME as u64;
        self.arrived.insert(f, packet.payload.clone());
        // Keep the look-up table bounded: 10 s of frames.
        if self.arrived.len() > 500 {
            let oldest = f.saturating_sub(500);
            self.arrived.retain(|&k, _| k >= oldest);
        }
    }

    fn pull(&mut self, _now_ms: f64, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>) {
        // Speex runs on 20 ms steps: get + tick on every other 10 ms pull.
        if self.sync.pcm.len() < PULL_SAMPLES {
            let mut pcm = std::mem::take(&mut self.pcm);
            match self.jb.get(FRAME as u32) {
                SpeexGet::Packet {
                    payload, timestamp, ..
                } => {
                    let f = u64::from(timestamp) / FRAME as u64;
                    let real = decode_frame(&mut self.dec, Some(&payload), None, &mut pcm);
                    self.sync.push(real.then_some(f), &pcm);
                }
                SpeexGet::Insertion | SpeexGet::Error(_) => {
                    decode_frame(&mut self.dec, None, None, &mut pcm);
                    self.inserted += pcm.len() as u64;
                    self.sync.push(None, &pcm);
                }
                SpeexGet::Missing { timestamp } => {
                    let missing = u64::from(timestamp) / FRAME as u64;
                    let next = self.arrived.get(&(missing + 1)).cloned();
                    let real = decode_frame(&mut self.dec, None, next.as_deref(), &mut pcm);
                    self.sync.push(real.then_some(missing), &pcm);
                }
            }
            self.pcm = pcm;
            self.jb.tick();
            self.ticks += 1;
        }
        self.sync.pull(out, played);
    }

    fn stretched(&self) -> (u64, u64) {
        (0, self.inserted)
    }
}
