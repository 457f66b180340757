//! `cargo xtask demo`: real speech through Sotto's SRTP and libsrtp2, both
//! ways, for every profile.
//!
//! 10.5 s of recorded speech (testdata/speech/asterisk_en_8k/demo-nogo.wav,
//! CC BY-SA 3.0, voice of Allison Smith) is G.711 mu-law encoded and cut
//! into 20 ms RTP packets (160-byte payload, PT 0), with the sequence
//! number starting just below 65535 so that the rollover counter moves
//! mid-call, and an RTCP receiver report every 50 packets. For each of the
//! six profiles:
//!
//! 1. Sotto protects, libsrtp2 unprotects (delivered with packets reordered
//!    around the wrap), and the result must equal the original packets;
//!    Sotto's SRTP must also equal libsrtp2's own output byte for byte.
//! 2. libsrtp2 protects, Sotto unprotects, same checks.
//! 3. A few replayed, tampered and truncated packets are sent to both
//!    receivers: each must reject every one.
//!
//! Exits non-zero on any mismatch.

use std::path::Path;
use std::process::ExitCode;

use sotto_codecs::{g711, wav};
use sotto_engine::srtp::{Error, Profile, SrtpContext};
use sotto_peers::libsrtp2::{self, Direction, Session};

const SPEECH: &str = "testdata/speech/asterisk_en_8k/demo-nogo.wav";
/// 20 ms at 8 kHz.
const SAMPLES_PER_PACKET: usize = 160;
const FIRST_SEQ: u16 = 65_500;
const SSRC: u32 = 0x50_77_00_01;
/// Packets kept back until after the bad ones, to be tampered with first.
const HELD_BACK: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nFAILED: see the mismatches above");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("demo error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SPEECH);
    let clip = wav::read(&path)?;
    if clip.sample_rate != g711::SAMPLE_RATE || clip.channels != 1 {
        return Err(format!("{SPEECH} is not 8 kHz mono").into());
    }
    let rtp = packetize(&clip.samples);
    let rtcp: Vec<Vec<u8>> = (0..rtp.len().div_ceil(50) as u32)
        .map(receiver_report)
        .collect();
    let payload_bytes: usize = rtp.len() * SAMPLES_PER_PACKET;
    println!(
        "Speech: {SPEECH}, {:.1} s at 8 kHz -> {} RTP packets of 20 ms G.711 mu-law \
         ({payload_bytes} payload bytes), sequence {FIRST_SEQ}..{} (wraps after 65535), \
         plus {} RTCP receiver reports.",
        clip.seconds(),
        rtp.len(),
        FIRST_SEQ.wrapping_add(rtp.len() as u16 - 1),
        rtcp.len(),
    );
    println!(
        "Delivery order reorders packets around the wrap (..., 65534, 0, 65535, 2, 1, 3, ...).\n"
    );
    println!(
        "{:<28} {:>28} {:>28} {:>26}",
        "profile", "Sotto -> libsrtp2", "libsrtp2 -> Sotto", "bad packets rejected"
    );

    let order = delivery_order(rtp.len());
    // The last packets are held back for the tampering test below.
    let held = order.len() - HELD_BACK;
    let mut all_ok = true;
    for (n, profile) in Profile::ALL.into_iter().enumerate() {
        let (key, salt) = master(profile, n as u8);
        let mut ok = true;
        let mut notes = Vec::new();

        // Direction 1: Sotto protects, libsrtp2 unprotects.
        let mut sotto_tx = SrtpContext::new(profile, &key, &salt)?;
        let mut peer_tx = peer(profile, Direction::Outbound, &key, &salt)?;
        let mut ours = Vec::new();
        let mut identical = true;
        for p in rtp.iter() {
            let mut a = p.clone();
            sotto_tx.protect_rtp(&mut a)?;
            let mut b = p.clone();
            peer_tx.protect(&mut b)?;
            identical &= a == b;
            ours.push(a);
        }
        let mut ours_rtcp = Vec::new();
        for p in &rtcp {
            let mut a = p.clone();
            sotto_tx.protect_rtcp(&mut a)?;
            let mut b = p.clone();
            peer_tx.protect_rtcp(&mut b)?;
            identical &= a == b;
            ours_rtcp.push(a);
        }
        if !identical {
            notes.push("Sotto's SRTP differs from libsrtp2's".to_string());
        }
        let mut peer_rx = peer(profile, Direction::Inbound, &key, &salt)?;
        let mut forward = deliver(
            &ours,
            &rtp,
            &ours_rtcp,
            &rtcp,
            &order[..held],
            &mut |p, is_rtcp| {
                if is_rtcp {
                    peer_rx.unprotect_rtcp(p).is_ok()
                } else {
                    peer_rx.unprotect(p).is_ok()
                }
            },
        );

        // Direction 2: libsrtp2 protects, Sotto unprotects.
        let mut peer_tx = peer(profile, Direction::Outbound, &key, &salt)?;
        let mut theirs = Vec::new();
        for p in &rtp {
            let mut b = p.clone();
            peer_tx.protect(&mut b)?;
            theirs.push(b);
        }
        let mut theirs_rtcp = Vec::new();
        for p in &rtcp {
            let mut b = p.clone();
            peer_tx.protect_rtcp(&mut b)?;
            theirs_rtcp.push(b);
        }
        let mut sotto_rx = SrtpContext::new(profile, &key, &salt)?;
        let mut backward = deliver(
            &theirs,
            &rtp,
            &theirs_rtcp,
            &rtcp,
            &order[..held],
            &mut |p, is_rtcp| {
                if is_rtcp {
                    sotto_rx.unprotect_rtcp(p).is_ok()
                } else {
                    sotto_rx.unprotect_rtp(p).is_ok()
                }
            },
        );

        // Bad packets to both receivers: replays of delivered packets, and
        // tampered or truncated copies of the packets still held back.
        let (sotto_rejected, peer_rejected, bad) =
            attack(&theirs, &ours, &order[held..], &mut sotto_rx, &mut peer_rx);

        // The genuine held-back packets must still be accepted afterwards.
        backward.add(deliver(
            &theirs,
            &rtp,
            &theirs_rtcp,
            &rtcp,
            &order[held..],
            &mut |p, is_rtcp| {
                if is_rtcp {
                    sotto_rx.unprotect_rtcp(p).is_ok()
                } else {
                    sotto_rx.unprotect_rtp(p).is_ok()
                }
            },
        ));
        forward.add(deliver(
            &ours,
            &rtp,
            &ours_rtcp,
            &rtcp,
            &order[held..],
            &mut |p, is_rtcp| {
                if is_rtcp {
                    peer_rx.unprotect_rtcp(p).is_ok()
                } else {
                    peer_rx.unprotect(p).is_ok()
                }
            },
        ));
        let stats = sotto_rx.stats();

        ok &= identical && forward.all_good() && backward.all_good();
        ok &= sotto_rejected == bad && peer_rejected == bad;
        println!(
            "{:<28} {:>28} {:>28} {:>26}",
            profile.name(),
            forward.summary(),
            backward.summary(),
            format!("Sotto {sotto_rejected}/{bad}, libsrtp2 {peer_rejected}/{bad}"),
        );
        println!(
            "{:<28} Sotto receiver counters: {} SRTP + {} SRTCP unprotected, {} auth failures, \
             {} replays, {} malformed",
            "",
            stats.rtp_unprotected,
            stats.rtcp_unprotected,
            stats.auth_failures,
            stats.replays,
            stats.malformed
        );
        for note in notes {
            println!("{:<28} MISMATCH: {note}", "");
        }
        all_ok &= ok;
    }
    if all_ok {
        println!(
            "\nOK: for all {} profiles, both directions recovered every packet byte for byte, \
             Sotto's SRTP/SRTCP equalled libsrtp2's, and every bad packet was rejected by both.",
            Profile::ALL.len()
        );
    }
    Ok(all_ok)
}

/// One master key and salt per profile (fixed, so runs are repeatable).
fn master(profile: Profile, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let key = (0..profile.key_len() as u8)
        .map(|i| i.wrapping_mul(31) ^ seed)
        .collect();
    let salt = (0..profile.salt_len() as u8)
        .map(|i| i.wrapping_mul(17) ^ !seed)
        .collect();
    (key, salt)
}

fn peer(
    profile: Profile,
    direction: Direction,
    key: &[u8],
    salt: &[u8],
) -> Result<Session, libsrtp2::Error> {
    let p = libsrtp2::Profile::from_name(profile.name()).expect("libsrtp2 has every profile");
    let mut key_salt = key.to_vec();
    key_salt.extend_from_slice(salt);
    Session::new(p, direction, &key_salt, 64)
}

/// 20 ms RTP packets of mu-law speech (PT 0), the last one padded with silence.
fn packetize(samples: &[i16]) -> Vec<Vec<u8>> {
    samples
        .chunks(SAMPLES_PER_PACKET)
        .enumerate()
        .map(|(i, chunk)| {
            let seq = FIRST_SEQ.wrapping_add(i as u16);
            let marker = if i == 0 { 0x80 } else { 0 };
            let mut p = vec![0x80, marker];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&((i * SAMPLES_PER_PACKET) as u32).to_be_bytes());
            p.extend_from_slice(&SSRC.to_be_bytes());
            p.extend(chunk.iter().map(|&s| g711::encode_sample(s)));
            p.resize(12 + SAMPLES_PER_PACKET, g711::encode_sample(0));
            p
        })
        .collect()
}

/// An RTCP receiver report (one report block) from our SSRC.
fn receiver_report(n: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&0x7065_6572u32.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&(u32::from(FIRST_SEQ) + n * 50).to_be_bytes());
    p.extend_from_slice(&[0u8; 12]);
    p
}

/// Outcome of delivering one direction's packets to a receiver.
#[derive(Default)]
struct Delivery {
    recovered: usize,
    total: usize,
    rtcp_recovered: usize,
    rtcp_total: usize,
}

impl Delivery {
    fn add(&mut self, other: Delivery) {
        self.recovered += other.recovered;
        self.total += other.total;
        self.rtcp_recovered += other.rtcp_recovered;
        self.rtcp_total += other.rtcp_total;
    }

    fn all_good(&self) -> bool {
        self.recovered == self.total && self.rtcp_recovered == self.rtcp_total
    }

    fn summary(&self) -> String {
        format!(
            "{}/{} RTP {}/{} RTCP {}",
            self.recovered,
            self.total,
            self.rtcp_recovered,
            self.rtcp_total,
            if self.all_good() { "ok" } else { "FAIL" }
        )
    }
}

/// Packet indices in delivery order: neighbours swapped around the wrap.
fn delivery_order(n: usize) -> Vec<usize> {
    let wrap = usize::from(u16::MAX - FIRST_SEQ) + 1; // index of seq 0
    let mut order: Vec<usize> = (0..n).collect();
    for at in [wrap, wrap + 2] {
        order.swap(at, at - 1);
    }
    order
}

/// Delivers the packets at `indices` to `unprotect` (with the RTCP report
/// due after every 50th RTP packet) and counts those that come back equal
/// to the original.
fn deliver(
    protected: &[Vec<u8>],
    plain: &[Vec<u8>],
    protected_rtcp: &[Vec<u8>],
    plain_rtcp: &[Vec<u8>],
    indices: &[usize],
    unprotect: &mut dyn FnMut(&mut Vec<u8>, bool) -> bool,
) -> Delivery {
    let mut d = Delivery::default();
    for &i in indices {
        d.total += 1;
        let mut p = protected[i].clone();
        if unprotect(&mut p, false) && p == plain[i] {
            d.recovered += 1;
        }
        if i % 50 == 49 || i == protected.len() - 1 {
            let r = i / 50;
            d.rtcp_total += 1;
            let mut p = protected_rtcp[r].clone();
            if unprotect(&mut p, true) && p == plain_rtcp[r] {
                d.rtcp_recovered += 1;
            }
        }
    }
    d
}

/// Replays three delivered packets, tampers with three held-back ones
/// (header, payload, tag) and truncates one; returns how many each
/// receiver rejected, and how many bad packets there were.
fn attack(
    to_sotto: &[Vec<u8>],
    to_peer: &[Vec<u8>],
    held: &[usize],
    sotto: &mut SrtpContext,
    peer: &mut Session,
) -> (usize, usize, usize) {
    let bad = |stream: &[Vec<u8>]| -> Vec<Vec<u8>> {
        let mut out = vec![
            stream[0].clone(),
            stream[40].clone(),
            stream[held[0] - 1].clone(),
        ];
        for (&i, pos) in held.iter().zip([5usize, 60, usize::MAX]) {
            let mut p = stream[i].clone();
            let at = pos.min(p.len() - 1);
            p[at] ^= 0x40;
            out.push(p);
        }
        let mut short = stream[held[held.len() - 1]].clone();
        short.truncate(14);
        out.push(short);
        out
    };
    let mut sotto_rejected = 0;
    for mut p in bad(to_sotto) {
        match sotto.unprotect_rtp(&mut p) {
            Err(Error::Replayed | Error::TooOld | Error::AuthFailed | Error::Malformed) => {
                sotto_rejected += 1
            }
            Err(e) => println!("unexpected error kind: {e}"),
            Ok(()) => {}
        }
    }
    let bad_for_peer = bad(to_peer);
    let count = bad_for_peer.len();
    let peer_rejected = bad_for_peer
        .into_iter()
        .filter(|p| peer.unprotect(&mut p.clone()).is_err())
        .count();
    (sotto_rejected, peer_rejected, count)
}
