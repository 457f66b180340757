//! `sotto demo`: a whole call on one machine with every real part in the
//! path. An embedded signald (SQLite in a temp dir) and sotto-relay run
//! in-process; a trace-driven impairment hop (ATT LTE mahimahi traces)
//! sits in front of the relay; Bob's device sleeps until signald's Web
//! Push reaches the local push endpoint and decrypts (RFC 8291, Bob's
//! subscription keys) to a wake for Alice's call; Bob wakes, answers,
//! media goes relay-only through the hop and the relay, ZRTP reaches
//! Secure, real speech flows both ways, and the quality is reported.

use crate::audio::{GatedAudio, repeat_to};
use crate::demo_video::{self, DemoVideo, Seen};
use crate::impair::{ClientLink, Hop, Schedule};
use crate::plot::delay_plot;
use crate::push::{CallPush, Distributor};
use crate::report::Causes;
use crate::session::{self, Account, Control, Peer, Started, Update};
use anyhow::{Context as _, anyhow};
use sotto_engine::call::wav::{load_48k_mono, save_48k_mono};
use sotto_engine::call::{Call, CallConfig, CallStats, Event, PathKind};
use sotto_engine::sim::audio::compare;
use sotto_jitter::link::mahimahi::{MahimahiConfig, MahimahiLink, MahimahiTrace, QueueLimit};
use sotto_jitter::link::{LinkSummary, TraceError};
use sotto_signalling::client::{ClientEvent, SignalClient};
use sotto_signalling::protocol::CallId;
use sotto_signalling::seal::DeviceIdentity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Options of `sotto demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds of speech each way once the call is Secure; at least 5:
    /// less leaves too little speech to score (the correlation and PESQ
    /// of a 1 s call mean nothing).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(MIN_SECONDS..))]
    pub seconds: u32,
    /// Where to write the WAVs, the plot and summary.json (default: a new temp dir, kept).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The repository's testdata directory (speech and traces). The
    /// default is the one of the checkout this binary was built from.
    #[arg(long, value_name = "DIR", default_value = BUILT_TESTDATA)]
    pub testdata: PathBuf,
    /// Skip PESQ scoring.
    #[arg(long)]
    pub no_pesq: bool,
    /// Where in the LTE traces Alice's link starts, seconds (Bob's starts
    /// 90 s later). For the default 20 s call, the default puts Alice on
    /// a congested stretch (uplink p95 about 170 ms) and Bob on a clear
    /// one; 0 is the drive's worst (uplink p95 about 2.2 s, 16 % loss).
    /// The demo prints these figures for the stretch of trace its call
    /// uses.
    #[arg(long, default_value_t = 60)]
    pub trace_offset: u64,
    /// Video beside the speech: each side sends a 160x120 test pattern
    /// at 15 fps. Off by default: the LTE hop gives each datagram the
    /// delay of the next packet of a voice stream, so video's extra
    /// datagrams run it through the trace faster than real time and cost
    /// the speech delay the trace never had (PESQ-WB 4.0 -> 2.0).
    #[arg(long)]
    pub video: bool,
}

/// The testdata directory of the checkout `sotto` was built from: right
/// for `cargo xtask demo`, missing for a binary installed elsewhere.
const BUILT_TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");
/// The testdata files the demo reads, under `--testdata`.
const TESTDATA_FILES: [&str; 4] = [
    "traces/mahimahi/ATT-LTE-driving-2016.up",
    "traces/mahimahi/ATT-LTE-driving-2016.down",
    "speech/asterisk_en_16k_g722dec/dir-intro.wav",
    "speech/asterisk_en_8k/demo-nogo.wav",
];
/// Trace beyond the talk that a call's datagrams use: set-up (push
/// wake-up, ICE, ZRTP) and hang-up, with room to spare. The link
/// figures printed cover the talk and this.
const SETUP_TRACE_S: u64 = 5;
/// Trace scheduled beyond the talk, so that a slow set-up never runs out.
const SPARE_TRACE_S: u64 = 40;

/// The shortest `--seconds`.
const MIN_SECONDS: i64 = 5;
/// Speech windows the comparison of what Bob heard needs to mean anything.
const MIN_WINDOWS: usize = 5;

/// Bounds on each phase (hang guards, not measurements).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Statistics sampling for the plot.
const STATS_EVERY: Duration = Duration::from_millis(250);
/// 20 ms packets modelled per second on each hop direction (media + RTCP + STUN).
const PACKETS_PER_SECOND: u64 = 60;

struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:6.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Runs the demo; prints progress and a final JSON line.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let clock = Clock(Instant::now());
    check_testdata(&args.testdata)?;
    let out = match &args.out {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("sotto-demo-")
            .tempdir()
            .context("creating a temporary output directory")?
            .keep(),
    };
    if out.exists() && !out.is_dir() {
        return Err(anyhow!(
            "--out {} is not a directory (the demo writes several files into it)",
            out.display()
        ));
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating the output directory --out {}", out.display()))?;
    let work = tempfile::tempdir()?;
    clock.say(format!("output directory: {}", out.display()));
    let lo: SocketAddr = "127.0.0.1:0".parse()?;

    // Relay, and the LTE hop in front of it.
    let secret = hex::encode(sotto_engine::zrtp::crypto::random::<16>());
    let relay = sotto_relay::server::Server::start(
        sotto_relay::config::Options {
            listen: vec![lo],
            auth_secrets: vec![secret.clone()],
            allow_loopback_peers: Some(true),
            workers: Some(1),
            ..Default::default()
        }
        .resolve()?,
    )
    .await?;
    let relay_addr = *relay
        .udp_addrs
        .first()
        .context("relay has no UDP address")?;
    clock.say(format!("sotto-relay listening on udp {relay_addr}"));
    let traces = args.testdata.join("traces/mahimahi");
    let packets = (u64::from(args.seconds) + SPARE_TRACE_S) * PACKETS_PER_SECOND;
    let mut links = Vec::new();
    for (who, offset_s) in [
        ("alice", args.trace_offset),
        ("bob", args.trace_offset + 90),
    ] {
        let (up, up_d) = schedule(&traces.join("ATT-LTE-driving-2016.up"), offset_s, packets)?;
        let (down, down_d) =
            schedule(&traces.join("ATT-LTE-driving-2016.down"), offset_s, packets)?;
        let (u, d) = (used(&up_d, args.seconds), used(&down_d, args.seconds));
        clock.say(format!(
            "{who}'s LTE link (ATT-LTE-driving-2016 from {offset_s} s, the stretch the call uses): up mean {:?} p95 {:?} loss {:.1} %, down mean {:?} p95 {:?} loss {:.1} %",
            u.mean_delay, u.p95_delay, 100.0 * u.loss_rate(), d.mean_delay, d.p95_delay, 100.0 * d.loss_rate()
        ));
        links.push(ClientLink { up, down });
    }
    let hop = Hop::start(lo, relay_addr, links).await?;

    // Push endpoint and signald.
    let (push, mut pushes) = Distributor::start(lo).await?;
    let mut cfg = sotto_signalling::config::Config {
        listen: lo,
        database_url: format!("sqlite://{}", work.path().join("signald.db").display()),
        ..Default::default()
    };
    cfg.turn.secret = Some(secret);
    cfg.turn.uris = vec![format!("turn:{}?transport=udp", hop.addr)];
    cfg.push.vapid_key_file = Some(work.path().join("vapid.der"));
    cfg.push.retry_base_ms = 50;
    // The demo's push distributor is on loopback, which signald refuses
    // as a push endpoint unless allowed.
    cfg.push.endpoint_allow_hosts = vec![lo.ip().to_string()];
    let signald = sotto_signalling::server::start(cfg, None).await?;
    let base = format!("http://{}", signald.addr);
    clock.say(format!(
        "sotto-signald on {base} (SQLite in {})",
        work.path().display()
    ));

    // Devices.
    let alice = SignalClient::new(&base, Arc::new(DeviceIdentity::generate()));
    let bob = SignalClient::new(&base, Arc::new(DeviceIdentity::generate()));
    alice.register().await?;
    bob.register().await?;
    let alice_acc = Account::login(alice.clone()).await?;
    let bob_acc = Account::login(bob.clone()).await?;
    let sub = push.subscribe("bob")?;
    let (b, sub) = (&bob, &sub);
    bob_acc
        .with_token(|t| async move {
            b.put_push(&t, "unifiedpush", &sub.endpoint, &sub.p256dh, &sub.auth)
                .await
        })
        .await?;
    clock.say(format!(
        "registered alice {} and bob {}; bob's push endpoint {}; bob goes to sleep",
        alice.device_id(),
        bob.device_id(),
        sub.endpoint
    ));

    // Speech.
    let n = args.seconds as usize * 48_000;
    let speech = args.testdata.join("speech");
    let a_src = repeat_to(
        &load_48k_mono(speech.join("asterisk_en_16k_g722dec/dir-intro.wav"))?,
        n,
    );
    let b_src = repeat_to(
        &load_48k_mono(speech.join("asterisk_en_8k/demo-nogo.wav"))?,
        n,
    );
    let record = n + 5 * 48_000;
    // Each side's camera and screen, with --video.
    let cams = if args.video {
        Some((DemoVideo::new(clock.0)?, DemoVideo::new(clock.0)?))
    } else {
        None
    };
    let (a_cam, b_cam) = (cams.clone().map(|c| c.0), cams.clone().map(|c| c.1));

    // Bob: asleep until pushed, then answers what arrives.
    let (bob_upd_tx, mut bob_upd) = mpsc::unbounded_channel();
    let (bob_ctl_tx, bob_ctl_rx) = mpsc::channel(8);
    let (bob_info_tx, mut bob_info) = mpsc::unbounded_channel::<String>();
    let b_audio = GatedAudio::new(b_src.clone(), record);
    let (b_gate, b_rec) = (b_audio.gate(), b_audio.recording());
    let (bob_addr_tx, bob_addr_rx) = tokio::sync::oneshot::channel();
    let bob_task = tokio::spawn({
        let bob = bob.clone();
        let b_cam = b_cam.clone();
        async move {
            let mut conn = bob.connect(false);
            let p = pushes
                .recv()
                .await
                .ok_or_else(|| anyhow!("push endpoint closed"))?;
            // Opened with bob's subscription keys, as his phone would: a
            // push that does not decrypt to signald's wake fails the demo.
            let plain = p.message.as_deref().map_err(|e| {
                anyhow!("bob: the push on {} does not decrypt: {e}", p.subscription)
            })?;
            let wake = CallPush::parse(plain).with_context(|| {
                format!(
                    "bob: the decrypted push is not signald's call push: {:?}",
                    String::from_utf8_lossy(plain)
                )
            })?;
            if wake.kind != "wake" {
                return Err(anyhow!("bob: expected a wake push, got {wake:?}"));
            }
            let _ = bob_info_tx.send(format!(
                "bob: push received on {} (topic {:?}, TTL {:?} s, {} encrypted bytes), \
                 decrypted (RFC 8291) with bob's subscription keys: wake for call {}: waking",
                p.subscription, p.topic, p.ttl, p.body_len, wake.call_id
            ));
            conn.on_push_received();
            let (call_id, from, offer, _) = session::next_offer(&mut conn).await?;
            if call_id.as_str() != wake.call_id {
                return Err(anyhow!(
                    "bob: the offer is for call {call_id} but the push woke him for {}",
                    wake.call_id
                ));
            }
            let _ = bob_info_tx.send("bob: connected, offer received for the pushed call".into());
            let peer = Peer {
                keys: bob_acc.device_keys(&from).await?,
                id: from,
            };
            let mut ice = bob_acc.ice_config().await?;
            ice.relay_only = true;
            let call = Call::incoming(Instant::now(), call_config(b_cam.is_some()))?;
            let started = Started::new(call, &[lo], ice, Box::new(b_audio)).await?;
            if let Some(cam) = &b_cam {
                started.handle().set_video(cam.port()).await?;
            }
            let _ = bob_addr_tx.send(started.handle().local_addrs().to_vec());
            started.handle().signal(offer).await?;
            started
                .run(
                    &bob_acc,
                    &mut conn,
                    &peer,
                    &call_id,
                    bob_ctl_rx,
                    bob_upd_tx,
                    STATS_EVERY,
                )
                .await
        }
    });

    // Alice calls.
    let mut aconn = alice.connect(true);
    loop {
        match aconn.next_event().await {
            Some(ClientEvent::Connected) => break,
            Some(_) => {}
            None => return Err(anyhow!("alice's signalling connection stopped")),
        }
    }
    let bob_id = bob.device_id();
    let peer = Peer {
        keys: alice_acc.device_keys(&bob_id).await?,
        id: bob_id,
    };
    let mut ice = alice_acc.ice_config().await?;
    ice.relay_only = true;
    let a_audio = GatedAudio::new(a_src.clone(), record);
    let (a_gate, a_rec) = (a_audio.gate(), a_audio.recording());
    let started = Started::new(
        Call::outgoing(Instant::now(), call_config(a_cam.is_some()))?,
        &[lo],
        ice,
        Box::new(a_audio),
    )
    .await?;
    if let Some(cam) = &a_cam {
        started.handle().set_video(cam.port()).await?;
    }
    let t_offer = Instant::now();
    started.handle().place().await?;
    clock.say("alice: calling bob (relay-only)");
    let (alice_upd_tx, mut alice_upd) = mpsc::unbounded_channel();
    let (alice_ctl_tx, alice_ctl_rx) = mpsc::channel(8);
    let call_id = CallId::random();
    let alice_task = tokio::spawn(async move {
        started
            .run(
                &alice_acc,
                &mut aconn,
                &peer,
                &call_id,
                alice_ctl_rx,
                alice_upd_tx,
                STATS_EVERY,
            )
            .await
    });

    // Watch both sides.
    let mut t = Times::default();
    let mut sas: [Option<String>; 2] = [None, None];
    let mut path: [Option<PathKind>; 2] = [None, None];
    let mut warnings = Vec::new();
    let mut bob_stats: Vec<(Instant, CallStats)> = Vec::new();
    let mut alice_last = CallStats::default();
    let mut ended = [false, false];
    let mut talk_until: Option<tokio::time::Instant> = None;
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut last_progress = Instant::now();
    while !(ended[0] && ended[1]) {
        let guard = talk_until.map_or(setup_deadline, |t| t + Duration::from_secs(10));
        let wake = talk_until.unwrap_or(guard).min(guard);
        let (side, upd) = tokio::select! {
            Some(u) = alice_upd.recv() => (0, u),
            Some(u) = bob_upd.recv() => (1, u),
            Some(s) = bob_info.recv() => {
                if s.contains("push received") { t.push = Some(Instant::now()); }
                clock.say(s);
                continue;
            }
            () = tokio::time::sleep_until(wake) => {
                if talk_until.is_some_and(|t| tokio::time::Instant::now() >= t) && !ended[0] {
                    clock.say("alice: hanging up");
                    let _ = alice_ctl_tx.send(Control::HangUp).await;
                    talk_until = None;
                    continue;
                }
                return Err(anyhow!("the call did not progress (sides ended: {ended:?}); output in {}", out.display()));
            }
        };
        let who = ["alice", "bob"][side];
        match upd {
            Update::Event(Event::Ringing { incoming: true }) => {
                clock.say("bob: ringing; answering");
                let _ = bob_ctl_tx.send(Control::Answer).await;
            }
            Update::Event(Event::Ringing { incoming: false }) => {
                t.ringing = Some(Instant::now());
                clock.say("alice: bob's phone is ringing");
            }
            Update::Event(Event::Connected) => clock.say(format!("{who}: ICE connected")),
            Update::Event(Event::PathChanged(k)) => {
                path[side] = Some(k);
                clock.say(format!("{who}: media path {k:?}"));
            }
            Update::Event(Event::SecureUp {
                sas: s, algorithms, ..
            }) => {
                clock.say(format!("{who}: ZRTP Secure, SAS \"{s}\" ({algorithms})"));
                sas[side] = Some(s);
                [&a_gate, &b_gate][side].open();
                if side == 0 {
                    t.secure = Some(Instant::now());
                }
                if sas[0].is_some() && sas[1].is_some() {
                    clock.say(format!(
                        "talking for {} s over the LTE traces…",
                        args.seconds
                    ));
                    talk_until = Some(
                        tokio::time::Instant::now() + Duration::from_secs(args.seconds.into()),
                    );
                }
            }
            Update::Event(Event::CacheMismatch) => {
                warnings.push(format!("{who}: ZRTP cache mismatch"))
            }
            Update::Event(Event::HelloHashMismatch) => {
                warnings.push(format!("{who}: zrtp-hash mismatch"))
            }
            Update::Event(Event::Ended { reason }) => {
                ended[side] = true;
                clock.say(format!("{who}: call ended ({reason:?})"));
            }
            Update::Event(_) => {}
            Update::Stats(s) => {
                if side == 1 {
                    if talk_until.is_some() && last_progress.elapsed() >= Duration::from_secs(5) {
                        last_progress = Instant::now();
                        clock.say(format!(
                            "bob: {} packets in, {} lost, jitter buffer {:.0} ms",
                            s.inbound.packets_received,
                            s.inbound.packets_lost,
                            mean_jb_ms(&s.inbound.jitter_buffer)
                        ));
                    }
                    bob_stats.push((Instant::now(), *s));
                } else {
                    alice_last = *s;
                }
            }
            Update::Dropped(m) => clock.say(format!("{who}: dropped signalling message: {m}")),
            Update::Busy(from) => clock.say(format!("{who}: declined a call from {from}: busy")),
            Update::OfferQueued(kept) => {
                clock.say(format!("{who}: {}", crate::phone::offer_queued(kept)))
            }
        }
    }
    let a_end = alice_task.await??;
    let b_end = bob_task.await??;
    let bob_addrs = bob_addr_rx.await.unwrap_or_default();

    // Setup and security.
    let ms = |a: Option<Instant>| a.map(|a| (a - t_offer).as_secs_f64() * 1000.0);
    let (ring_ms, secure_ms) = (ms(t.ringing), ms(t.secure));
    let sas_equal = sas[0].is_some() && sas[0] == sas[1];
    let relayed = path == [Some(PathKind::Relay); 2];

    // Quality of what Bob heard.
    let bob_final = bob_stats.last().map(|s| s.1.clone()).unwrap_or_default();
    let q_bob = Quality::of(&bob_final);
    let q_alice = Quality::of(&alice_last);
    let b_heard = b_rec.lock().map(|r| r.clone()).unwrap_or_default();
    let a_heard = a_rec.lock().map(|r| r.clone()).unwrap_or_default();
    save_48k_mono(out.join("bob_received.wav"), &b_heard)?;
    save_48k_mono(out.join("alice_received.wav"), &a_heard)?;
    let sim = compare(&a_src, &b_heard, Duration::from_millis(1500));
    if sim.windows < MIN_WINDOWS {
        warnings.push(format!(
            "too little of alice's speech reached bob to score ({} of {MIN_WINDOWS} windows): \
             correlation and PESQ mean nothing",
            sim.windows
        ));
    }
    let pesq = if args.no_pesq {
        Err("skipped (--no-pesq)".to_owned())
    } else {
        pesq_wb(&a_src, &b_heard, sim.median_lag)
    };

    // Plot: the jitter buffer delay Bob's call reported against the network
    // delay Bob's downlink gave each datagram.
    let start = bob_stats.first().map(|s| s.0);
    let mut buffer = Vec::new();
    for w in bob_stats.windows(2) {
        let (a, b) = (&w[0].1.inbound.jitter_buffer, &w[1].1.inbound.jitter_buffer);
        let n = b
            .jitter_buffer_emitted_count
            .saturating_sub(a.jitter_buffer_emitted_count);
        if n > 0 {
            let d = (b.jitter_buffer_delay - a.jitter_buffer_delay) / n as f64 * 1000.0;
            buffer.push(((w[1].0 - start.unwrap_or(w[1].0)).as_secs_f64(), d));
        }
    }
    let network: Vec<(f64, f64)> = bob_addrs
        .iter()
        .find_map(|a| hop.client_log(*a))
        .map(|(_, down)| {
            let d = down.lock().unwrap_or_else(|e| e.into_inner());
            let off = start.map_or(0.0, |s| (s - clock.0).as_secs_f64());
            d.delays
                .iter()
                .map(|&(t, ms)| (t - off, ms))
                .filter(|p| p.0 >= 0.0)
                .collect()
        })
        .unwrap_or_default();
    let png = out.join("jitter_buffer_delay.png");
    if let Err(e) = delay_plot(
        &png,
        "Bob: jitter buffer delay over an ATT LTE trace",
        &network,
        &buffer,
    ) {
        clock.say(format!("plot failed: {}", Causes(&e)));
    }

    relay.shutdown().await;
    signald.shutdown().await;
    drop(hop);
    drop(push);

    println!();
    println!(
        "setup:     offer -> ringing {} ms -> secure {} ms",
        fmt_ms(ring_ms),
        fmt_ms(secure_ms)
    );
    println!(
        "SAS:       alice \"{}\"  bob \"{}\"  ({})",
        sas[0].as_deref().unwrap_or("-"),
        sas[1].as_deref().unwrap_or("-"),
        if sas_equal { "equal" } else { "DIFFERENT" }
    );
    println!(
        "path:      alice {:?}, bob {:?} (relay-only through sotto-relay)",
        path[0], path[1]
    );
    println!(
        "ended:     alice {:?}, bob {:?}",
        a_end.reason, b_end.reason
    );
    for (who, q) in [("bob hears alice", &q_bob), ("alice hears bob", &q_alice)] {
        println!(
            "{who}: {} packets, loss {:.2} %, mean jitter-buffer delay {:.0} ms, concealment {:.2} %",
            q.packets, q.loss_pct, q.mean_jb_ms, q.concealed_pct
        );
    }
    let video = cams.as_ref().map(|(a, b)| {
        [
            Seen::of(b, a, bob_final.video.as_ref()),
            Seen::of(a, b, alice_last.video.as_ref()),
        ]
    });
    for (who, v) in ["bob sees alice", "alice sees bob"]
        .iter()
        .zip(video.iter().flatten())
    {
        println!(
            "{who}: {} frames shown of {} captured ({}x{} VP8, {} fps; none leaves before Secure), \
             PSNR min {:.1} dB, median {:.1} dB; {} key frame(s), {} packets repaired by NACK; \
             pictures waited {:.0} ms on average for their sound (lip sync)",
            v.shown,
            v.sent,
            demo_video::WIDTH,
            demo_video::HEIGHT,
            demo_video::FPS,
            v.psnr_min,
            v.psnr_median,
            v.key_frames,
            v.repaired,
            v.mean_sync_wait_ms
        );
    }
    println!(
        "bob's audio vs alice's speech: correlation {:.2}, envelope {:.2}, lag {:?}",
        sim.median_correlation, sim.median_envelope_correlation, sim.median_lag
    );
    match &pesq {
        Ok(s) => println!("PESQ-WB (bob's received audio vs alice's speech): {s:.2}"),
        Err(e) => println!("PESQ-WB: unavailable: {e}"),
    }
    for w in &warnings {
        println!("WARNING {w}");
    }
    println!(
        "wrote {}, {}, {}",
        out.join("bob_received.wav").display(),
        out.join("alice_received.wav").display(),
        png.display()
    );
    let summary = serde_json::json!({
        "ok": sas_equal && relayed,
        "out": out,
        "offer_to_ringing_ms": ring_ms,
        "offer_to_secure_ms": secure_ms,
        "push_ms": ms(t.push),
        "sas": sas,
        "sas_equal": sas_equal,
        "path": path.map(|p| p.map(|k| format!("{k:?}"))),
        "warnings": warnings,
        "bob": q_bob.json(),
        "alice": q_alice.json(),
        "correlation": sim.median_correlation,
        "envelope_correlation": sim.median_envelope_correlation,
        "pesq_wb": pesq.as_ref().ok(),
        "video": video.as_ref().map(|[bob, alice]| serde_json::json!({
            "bob": bob.json(),
            "alice": alice.json(),
        })),
        "seconds": args.seconds,
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    println!("{summary}");
    if !(sas_equal && relayed) {
        return Err(anyhow!("the call was not secure and relayed on both sides"));
    }
    Ok(())
}

fn call_config(video: bool) -> CallConfig {
    CallConfig {
        relay_only: true,
        video: video.then(demo_video::config),
        ..CallConfig::default()
    }
}

#[derive(Default)]
struct Times {
    push: Option<Instant>,
    ringing: Option<Instant>,
    secure: Option<Instant>,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// Fails, saying what the demo needs, unless `dir` holds the testdata
/// files it reads.
fn check_testdata(dir: &Path) -> anyhow::Result<()> {
    let Some(missing) = TESTDATA_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|f| !f.is_file())
    else {
        return Ok(());
    };
    let default = if dir == Path::new(BUILT_TESTDATA) {
        " (the default: the checkout this binary was built from)"
    } else {
        ""
    };
    Err(anyhow!(
        "the demo needs the Sotto repository's testdata directory (speech and LTE traces): \
         {} has no {}{default}; pass --testdata DIR, the testdata directory of a Sotto checkout",
        dir.display(),
        missing.strip_prefix(dir).unwrap_or(&missing).display()
    ))
}

/// The link figures of the stretch of trace a call of `seconds` uses.
fn used(deliveries: &[sotto_jitter::link::Delivery], seconds: u32) -> LinkSummary {
    let n = (u64::from(seconds) + SETUP_TRACE_S) * PACKETS_PER_SECOND;
    let n = usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(deliveries.len());
    LinkSummary::of(&deliveries[..n])
}

fn schedule(
    trace: &Path,
    offset_s: u64,
    packets: u64,
) -> anyhow::Result<(Schedule, Vec<sotto_jitter::link::Delivery>)> {
    let trace = MahimahiTrace::from_path(trace).map_err(|e| match e {
        // It names the file already.
        e @ TraceError::Io { .. } => anyhow::Error::from(e),
        e => anyhow::Error::from(e).context(format!("reading {}", trace.display())),
    })?;
    let mut link = MahimahiLink::new(
        trace,
        MahimahiConfig {
            start_offset: Duration::from_secs(offset_s),
            // A drop-tail queue of about a second of voice: outages longer
            // than that lose packets rather than delay them without bound.
            queue_limit: Some(QueueLimit::Packets(60)),
            ..MahimahiConfig::default()
        },
    )?;
    Ok(Schedule::from_link(&mut link, packets, 120)?)
}

fn mean_jb_ms(j: &sotto_jitter::JitterStats) -> f64 {
    if j.jitter_buffer_emitted_count == 0 {
        return 0.0;
    }
    j.jitter_buffer_delay / j.jitter_buffer_emitted_count as f64 * 1000.0
}

/// Call quality from one side's final statistics.
struct Quality {
    packets: u64,
    loss_pct: f64,
    mean_jb_ms: f64,
    concealed_pct: f64,
}

impl Quality {
    fn of(s: &CallStats) -> Self {
        let i = &s.inbound;
        let expected = i.packets_received as f64 + i.packets_lost.max(0) as f64;
        let j = &i.jitter_buffer;
        Self {
            packets: i.packets_received,
            loss_pct: if expected > 0.0 {
                100.0 * i.packets_lost.max(0) as f64 / expected
            } else {
                0.0
            },
            mean_jb_ms: mean_jb_ms(j),
            concealed_pct: if j.total_samples_pulled > 0 {
                100.0 * j.concealed_samples as f64 / j.total_samples_pulled as f64
            } else {
                0.0
            },
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "packets_received": self.packets,
            "loss_pct": self.loss_pct,
            "mean_jitter_buffer_delay_ms": self.mean_jb_ms,
            "concealed_pct": self.concealed_pct,
        })
    }
}

/// PESQ-WB of `heard` (aligned by `lag`) against `sent`, both 48 kHz.
fn pesq_wb(sent: &[i16], heard: &[i16], lag: Duration) -> Result<f64, String> {
    use sotto_codecs::{resample, samples};
    let skip = (lag.as_secs_f64() * 48_000.0) as usize;
    let heard = heard.get(skip..).unwrap_or(&[]);
    let n = sent.len().min(heard.len());
    if n < 48_000 {
        return Err("less than a second of received audio".into());
    }
    let to16 = |x: &[i16]| -> Result<Vec<i16>, String> {
        let f = resample::resample_clip(&samples::i16_to_f32(x), 1, 48_000, 16_000)
            .map_err(|e| e.to_string())?;
        Ok(samples::f32_to_i16(&f))
    };
    sotto_jitter::pesq::score(
        &to16(&sent[..n])?,
        &to16(&heard[..n])?,
        16_000,
        sotto_jitter::pesq::PesqMode::Wideband,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args as _, Parser};

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        args: DemoArgs,
    }

    fn help(id: &str) -> String {
        let cmd = DemoArgs::augment_args(clap::Command::new("demo"));
        let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
        arg.get_help().unwrap().to_string()
    }

    /// The figures the demo prints for one side's link: (up, down).
    fn link(offset: u64, seconds: u32) -> (LinkSummary, LinkSummary) {
        let traces = Path::new(BUILT_TESTDATA).join("traces/mahimahi");
        let packets = (u64::from(seconds) + SPARE_TRACE_S) * PACKETS_PER_SECOND;
        let dir = |d: &str| {
            let trace = traces.join(format!("ATT-LTE-driving-2016.{d}"));
            used(&schedule(&trace, offset, packets).unwrap().1, seconds)
        };
        (dir("up"), dir("down"))
    }

    #[test]
    fn too_short_a_call_to_score_is_refused_with_the_minimum() {
        let e = Demo::try_parse_from(["demo", "--seconds", "1"]).unwrap_err();
        assert!(e.to_string().contains("5.."), "{e}");
        assert!(help("seconds").contains("at least 5"));
        assert_eq!(Demo::parse_from(["demo", "--seconds", "5"]).args.seconds, 5);
        assert_eq!(Demo::parse_from(["demo"]).args.seconds, 20);
    }

    #[test]
    fn the_trace_offset_help_states_what_the_demo_measures() {
        let d = Demo::parse_from(["demo"]).args;
        let text = help("trace_offset");
        // The default: Alice congested, Bob clear.
        let (up, _) = link(d.trace_offset, d.seconds);
        let p95 = (up.p95_delay.as_secs_f64() * 100.0).round() * 10.0;
        assert!(
            text.contains(&format!("uplink p95 about {p95} ms")),
            "{p95}: {text}"
        );
        let (bob_up, bob_down) = link(d.trace_offset + 90, d.seconds);
        assert!(bob_up.p95_delay.max(bob_down.p95_delay) < Duration::from_millis(100));
        assert!(bob_up.loss_rate() == 0.0 && bob_down.loss_rate() == 0.0);
        // The drive's worst.
        let (worst, _) = link(0, d.seconds);
        let said = format!(
            "uplink p95 about {:.1} s, {:.0} % loss",
            worst.p95_delay.as_secs_f64(),
            100.0 * worst.loss_rate()
        );
        assert!(text.contains(&said), "{said}: {text}");
    }
}
