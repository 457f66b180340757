//! `cargo xtask bench call`: what a whole call costs.
//!
//! - setup time (place -> both Secure) of real calls over the tokio driver
//!   on loopback, p50/p99: on the direct path, and relay-only through an
//!   in-process sotto-relay (the server the `sotto-relay` binary runs: two
//!   TURN allocations, permissions and channel bindings in the setup);
//! - CPU per second of a two-way speech call, both endpoints (Opus, SRTP,
//!   ZRTP, ICE consent, RTCP, jitter buffer), measured as the wall time of
//!   the single-threaded simulator running the call in virtual time, and
//!   the simultaneous calls one core sustains;
//! - memory per call (its ICE session included): resident-set growth
//!   while many calls are up, minus what the simulator itself records.
//!
//! Not criterion-shaped: prints its own table and a final JSON line.

use sotto_engine::call::driver::{CallHandle, CallSignaller};
use sotto_engine::call::wav::load_48k_mono;
use sotto_engine::call::{Call, CallConfig, CallSignal, Event, PathKind};
use sotto_engine::ice::{IceConfig, TurnServer};
use sotto_engine::sim::{LinkSchedule, Network, Record, Side, Sim};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SETUP_CALLS: usize = 20;
const CPU_CALL_SECONDS: u64 = 30;
const MEMORY_CALLS: usize = 20;

struct Chan(mpsc::UnboundedSender<CallSignal>);

impl CallSignaller for Chan {
    fn send(&mut self, msg: CallSignal) {
        let _ = self.0.send(msg);
    }
}

/// One loopback call: place, auto-answer, until both are Secure; relay-only
/// through `turn` if given (and then both must report the relayed path).
async fn setup_once(turn: Option<&TurnServer>) -> Duration {
    let now = Instant::now();
    let bind = ["127.0.0.1:0".parse().unwrap()];
    let (ta, mut ra) = mpsc::unbounded_channel();
    let (tb, mut rb) = mpsc::unbounded_channel();
    let ice = IceConfig {
        turn_servers: turn.into_iter().cloned().collect(),
        ..IceConfig::default()
    };
    let cfg = || CallConfig {
        relay_only: turn.is_some(),
        ..CallConfig::default()
    };
    let start = |call, tx| CallHandle::start(call, &bind, ice.clone(), Box::new(Chan(tx)), None);
    let mut a = start(Call::outgoing(now, cfg()).unwrap(), ta)
        .await
        .unwrap();
    let mut b = start(Call::incoming(now, cfg()).unwrap(), tb)
        .await
        .unwrap();
    let t0 = Instant::now();
    a.place().await.unwrap();
    let mut secure = (false, false);
    let mut relayed = (false, false);
    let is_relay = |e: &Event| matches!(e, Event::PathChanged(PathKind::Relay));
    while secure != (true, true) {
        tokio::select! {
            Some(m) = ra.recv() => { let _ = b.signal(m).await; }
            Some(m) = rb.recv() => { let _ = a.signal(m).await; }
            Some(e) = a.recv() => {
                relayed.0 |= is_relay(&e);
                secure.0 |= matches!(e, Event::SecureUp { .. });
            }
            Some(e) = b.recv() => match e {
                Event::Ringing { incoming: true } => b.answer().await.unwrap(),
                e => {
                    relayed.1 |= is_relay(&e);
                    secure.1 |= matches!(e, Event::SecureUp { .. });
                }
            },
        }
    }
    let took = t0.elapsed();
    assert_eq!(relayed, (turn.is_some(), turn.is_some()), "path kind");
    a.shutdown().await;
    b.shutdown().await;
    took
}

/// An in-process sotto-relay on loopback (loopback peers allowed) and the
/// credentials to use it.
async fn start_relay() -> (sotto_relay::server::Server, TurnServer) {
    const USER: &str = "bench";
    const PASS: &str = "bench-password";
    let dir = std::env::temp_dir().join(format!("sotto-call-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, format!("{USER}:{PASS}\n")).unwrap();
    let options = sotto_relay::config::Options {
        realm: Some("sotto.bench".into()),
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        users_file: Some(users),
        allow_loopback_peers: Some(true),
        workers: Some(1),
        ..Default::default()
    };
    let server = sotto_relay::server::Server::start(options.resolve().unwrap())
        .await
        .unwrap();
    let turn = TurnServer {
        addr: server.udp_addrs[0],
        username: USER.into(),
        password: PASS.into(),
        realm: String::new(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    (server, turn)
}

/// `SETUP_CALLS` setups, sorted.
fn setups(rt: &tokio::runtime::Runtime, turn: Option<&TurnServer>) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..SETUP_CALLS)
        .map(|_| rt.block_on(setup_once(turn)))
        .collect();
    v.sort();
    v
}

fn speech(rel: &str) -> Vec<i16> {
    load_48k_mono(format!(
        "{}/../testdata/speech/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A secure simulated call with this speech each way (looped).
fn secure_sim(a: &[i16], b: &[i16]) -> Sim {
    let net = Network::symmetric(LinkSchedule::fixed(Duration::from_millis(40)));
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net,
    )
    .unwrap();
    sim.set_audio(Side::A, a.to_vec());
    sim.set_audio(Side::B, b.to_vec());
    sim.connect(Duration::from_secs(2), Duration::from_secs(10))
        .unwrap();
    sim
}

/// Heap the simulator itself holds for its records (not part of a call).
fn sim_records(sim: &Sim) -> isize {
    [Side::A, Side::B]
        .iter()
        .map(|&s| {
            let p = sim.peer(s);
            (2 * (p.audio.sent.capacity() + p.audio.received.capacity())
                + p.log.capacity() * std::mem::size_of::<Record>()) as isize
        })
        .sum()
}

/// Resident set size from `/proc/self/status` (Linux), in bytes.
fn rss_bytes() -> isize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let setup = setups(&rt, None);
    let (p50, p99) = (pct(&setup, 0.5), pct(&setup, 0.99));
    let (relay, turn) = rt.block_on(start_relay());
    let setup = setups(&rt, Some(&turn));
    let (rp50, rp99) = (pct(&setup, 0.5), pct(&setup, 0.99));
    rt.block_on(relay.shutdown());

    let (sa, sb) = (
        speech("asterisk_en_16k_g722dec/dir-intro.wav"),
        speech("pesq_repo/speech.wav"),
    );
    let mut sim = secure_sim(&sa, &sb);
    let t = Instant::now();
    let end = sim.elapsed() + Duration::from_secs(CPU_CALL_SECONDS);
    sim.run_until(end, |_| false);
    let cpu_ms_per_s = t.elapsed().as_secs_f64() * 1000.0 / CPU_CALL_SECONDS as f64;
    let calls_per_core = 1000.0 / cpu_ms_per_s;
    drop(sim);

    let before = rss_bytes();
    let sims: Vec<Sim> = (0..MEMORY_CALLS)
        .map(|_| {
            // 100 ms of speech, looped: the source clip is not the call's memory.
            let mut s = secure_sim(&sa[48_000..52_800], &sb[48_000..52_800]);
            s.run_for(Duration::from_secs(2));
            s
        })
        .collect();
    let records: isize = sims.iter().map(sim_records).sum();
    let heap = rss_bytes() - before - records;
    let per_call_kib = heap as f64 / (2 * MEMORY_CALLS) as f64 / 1024.0;
    drop(sims);

    println!("call setup, loopback direct ({SETUP_CALLS} calls): p50 {p50:.1} ms, p99 {p99:.1} ms");
    println!(
        "call setup, loopback relay-only via sotto-relay ({SETUP_CALLS} calls): \
         p50 {rp50:.1} ms, p99 {rp99:.1} ms"
    );
    println!(
        "two-way speech call, both endpoints: {cpu_ms_per_s:.2} ms CPU per s of call \
         -> {calls_per_core:.0} simultaneous two-way calls per core (simulator overhead included)"
    );
    println!(
        "memory per call (RSS growth, with its ICE session, after 2 s of audio): {per_call_kib:.0} KiB"
    );
    println!(
        "{{\"bench\":\"call\",\"setup_direct_p50_ms\":{p50:.2},\"setup_direct_p99_ms\":{p99:.2},\
         \"setup_relay_p50_ms\":{rp50:.2},\"setup_relay_p99_ms\":{rp99:.2},\
         \"cpu_ms_per_call_second\":{cpu_ms_per_s:.3},\"calls_per_core\":{calls_per_core:.1},\
         \"rss_kib_per_call\":{per_call_kib:.1}}}"
    );
}
