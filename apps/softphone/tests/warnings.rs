//! A forged `zrtp-hash` reaches the user as a warning: the test places a
//! real call (engine `Call` over the tokio driver, real signald) to a
//! `sotto listen` process, but the offer it seals carries a zrtp-hash that
//! is not its Hello's (what a signalling path that lied would deliver).
//! `sotto` must print the warning and refuse the call.

use sotto_engine::call::driver::{CallHandle, CallSignaller};
use sotto_engine::call::{Call, CallConfig, CallSignal, CodecParams, SessionDescription};
use sotto_engine::ice::{IceConfig, SignalMessage};
use sotto_signalling::client::{ClientEvent, SignalClient};
use sotto_signalling::protocol::{CallId, DeviceId, MessageKind};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Out(mpsc::UnboundedSender<CallSignal>);

impl CallSignaller for Out {
    fn send(&mut self, msg: CallSignal) {
        let _ = self.0.send(msg);
    }
}

/// The softphone's mapping for the messages this test sends (see src/wire.rs).
fn payload(s: &CallSignal) -> Option<(MessageKind, CallPayload)> {
    match s {
        CallSignal::Offer(sd) => Some((
            MessageKind::Offer,
            CallPayload {
                media: Some("opus pt=111 rate=48000 ptime=20 fec=1 dtx=1".into()),
                ice_ufrag: Some(sd.ice_ufrag.clone()),
                ice_pwd: Some(sd.ice_pwd.clone()),
                candidates: sd.candidates.clone(),
                // Forged: a well-formed hash of some other Hello.
                zrtp_hash: Some(format!("1.10 {}", "ab".repeat(32))),
                reason: None,
            },
        )),
        CallSignal::Ice(SignalMessage::Candidate { ufrag, candidate }) => Some((
            MessageKind::Ice,
            CallPayload {
                media: Some("candidate".into()),
                ice_ufrag: Some(ufrag.clone()),
                candidates: vec![candidate.clone()],
                ..CallPayload::default()
            },
        )),
        CallSignal::Hangup => Some((MessageKind::Hangup, CallPayload::default())),
        _ => None,
    }
}

fn answer(p: &CallPayload) -> Option<CallSignal> {
    Some(CallSignal::Answer(SessionDescription {
        ice_ufrag: p.ice_ufrag.clone()?,
        ice_pwd: p.ice_pwd.clone()?,
        candidates: p.candidates.clone(),
        zrtp_hash: p.zrtp_hash.clone()?,
        codec: CodecParams::default(),
        video: None,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_zrtp_hash_is_a_warning_and_the_call_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signald = sotto_signalling::server::start(
        sotto_signalling::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.path().join("signald.db").display()),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let server = format!("http://{}", signald.addr);
    let bdir = dir.path().join("bob");
    let reg = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args([
            "register",
            "--server",
            &server,
            "--name",
            "bob",
            "--config-dir",
        ])
        .arg(&bdir)
        .output()
        .unwrap();
    assert!(reg.status.success(), "{reg:?}");
    let bob_id = String::from_utf8(reg.stdout).unwrap();
    let bob_id = DeviceId::new(bob_id.trim().strip_prefix("registered device ").unwrap()).unwrap();

    let mut bob = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args([
            "listen",
            "--once",
            "--auto-answer",
            "--bind",
            "127.0.0.1:0",
            "--config-dir",
        ])
        .arg(&bdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (line_tx, mut lines) = mpsc::unbounded_channel();
    let stdout = bob.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("bob: {l}");
            let _ = line_tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.starts_with("listening as")) {
        tokio::select! {
            Some(l) = lines.recv() => seen.push(l),
            () = tokio::time::sleep_until(guard) => panic!("bob never listened: {seen:?}"),
        }
    }

    let alice = SignalClient::new(&server, Arc::new(DeviceIdentity::generate()));
    alice.register().await.unwrap();
    let token = alice.login().await.unwrap();
    let keys = alice.device_keys(&token, &bob_id).await.unwrap();
    let mut conn = alice.connect(true);
    let (tx, mut out) = mpsc::unbounded_channel();
    let mut call = CallHandle::start(
        Call::outgoing(Instant::now(), CallConfig::default()).unwrap(),
        &["127.0.0.1:0".parse().unwrap()],
        IceConfig::default(),
        Box::new(Out(tx)),
        None,
    )
    .await
    .unwrap();
    call.place().await.unwrap();
    let call_id = CallId::random();
    let exited = loop {
        tokio::select! {
            Some(s) = out.recv() => if let Some((kind, p)) = payload(&s) {
                conn.send((&bob_id, &keys), call_id.clone(), kind, &p).unwrap();
            },
            Some(ClientEvent::Message { envelope, payload }) = conn.next_event() => {
                let s = match envelope.kind {
                    MessageKind::Answer => answer(&payload),
                    MessageKind::Ice => Some(CallSignal::Ice(SignalMessage::Candidate {
                        ufrag: payload.ice_ufrag.clone().unwrap_or_default(),
                        candidate: payload.candidates.first().cloned().unwrap_or_default(),
                    })),
                    MessageKind::Hangup => Some(CallSignal::Hangup),
                    _ => None,
                };
                if let Some(s) = s { let _ = call.signal(s).await; }
            }
            Some(_) = call.recv() => {}
            Some(l) = lines.recv() => seen.push(l),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(st) = bob.try_wait().unwrap() { break st; }
            }
            () = tokio::time::sleep_until(guard) => panic!("bob did not end the call: {seen:?}"),
        }
    };
    while let Ok(l) = lines.try_recv() {
        seen.push(l);
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("warning: zrtp-hash mismatch")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("secure ")), "{seen:?}");
    assert!(
        seen.iter().any(|l| l == "ended HelloHashMismatch"),
        "{seen:?}"
    );
    assert!(!exited.success(), "a refused call is not a clean exit");
    call.shutdown().await;
    signald.shutdown().await;
}
