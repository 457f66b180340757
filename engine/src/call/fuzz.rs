//! Fuzz entry point for what the network can hand a secured call.

use super::Input;
use crate::sim::{LinkSchedule, Network, Side, Sim, SimVideo};
use crate::video::VideoConfig;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Inputs one pair serves before it is rebuilt (the simulator keeps its
/// logs and audio, so a pair must not live for ever).
const RUNS_PER_PAIR: u32 = 256;

thread_local! {
    /// A secured pair, reused across inputs (the handshake is costly)
    /// and rebuilt once either call has ended, and every [`RUNS_PER_PAIR`].
    static PAIR: RefCell<(Option<Sim>, u32)> = const { RefCell::new((None, 0)) };
}

fn secure_pair() -> Option<Sim> {
    let net = Network::symmetric(LinkSchedule::fixed(Duration::from_millis(5)));
    let cfg = || super::CallConfig {
        video: Some(VideoConfig::default()),
        ..super::CallConfig::default()
    };
    let mut sim = Sim::new(Instant::now(), cfg(), cfg(), net).ok()?;
    // A tone keeps audio flowing (silence would be DTX), and small video
    // flows beside it.
    let tone: Vec<i16> = (0..4_800).map(|i| ((i % 48) as i16 - 24) * 400).collect();
    for side in [Side::A, Side::B] {
        sim.set_audio(side, tone.clone());
        sim.set_video(side, SimVideo::new(64, 48, 15).ok()?);
    }
    sim.place().ok()?;
    sim.run_until(Duration::from_secs(2), |s| s.peer(Side::B).is_ringing());
    sim.answer().ok()?;
    sim.run_until(Duration::from_secs(5), Sim::both_secure)
        .then_some(sim)
}

/// Splits `data` into datagrams (2-byte big-endian length prefixes) and
/// feeds them, as if they had arrived on the selected path, to a call that
/// is Secure and exchanging audio and video; then lets the pair run on. Must never
/// panic or grow without bound.
pub fn fuzz_input(data: &[u8]) {
    PAIR.with(|cell| {
        let (pair, runs) = &mut *cell.borrow_mut();
        let ended = |s: &Sim| s.peer(Side::A).call.is_ended() || s.peer(Side::B).call.is_ended();
        *runs += 1;
        if *runs > RUNS_PER_PAIR || pair.as_ref().is_none_or(ended) {
            *pair = secure_pair();
            *runs = 0;
        }
        let Some(sim) = pair.as_mut() else { return };
        let now = sim.now();
        let mut rest = data;
        while rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let (d, r) = rest[2..].split_at(n);
            let _ = sim
                .peer_mut(Side::A)
                .call
                .handle_input(now, Input::Datagram(d));
            rest = r;
        }
        sim.run_for(Duration::from_millis(40));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_datagrams_never_end_or_break_a_secure_call() {
        let mut x: u64 = 0x5077_0CA1_1F00_D5ED;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..(RUNS_PER_PAIR as usize - 1) {
            let mut data = Vec::new();
            for _ in 0..4 {
                let len = (next() % 200) as usize + 12;
                data.extend_from_slice(&(len as u16).to_be_bytes());
                let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Steer the first byte to ZRTP, RTP and RTCP (RFC 7983 ranges).
                d[0] = [0x10, 0x80, 0x80, 0x81][round % 4];
                if round % 4 == 2 {
                    d[1] = 200; // an SR
                }
                data.extend_from_slice(&d);
            }
            fuzz_input(&data);
        }
        PAIR.with(|cell| {
            let cell = cell.borrow();
            let sim = cell.0.as_ref().expect("a secure pair");
            let a = &sim.peer(Side::A).call;
            assert!(a.is_secure() && !a.is_ended());
            let st = a.stats();
            assert!(st.inbound.srtp_rejected > 100, "{st:?}");
            assert!(st.inbound.packets_received > 100);
        });
    }
}
