//! Forged, replayed, oversized and malformed input is refused with a
//! typed error, and the connection stays usable.

mod common;

use futures_util::{SinkExt as _, StreamExt as _};
use sotto_signalling::protocol::{
    CallId, ClientFrame, ErrorCode, MAX_FRAME_BYTES, MessageKind, ServerFrame,
};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use sotto_signalling::server;
use sotto_signalling::util::unix_ms;
use tokio_tungstenite::tungstenite::Message;

use common::{Ws, raw_ws};

async fn roundtrip(ws: &mut Ws, text: String) -> ServerFrame {
    ws.send(Message::text(text)).await.unwrap();
    loop {
        match ws.next().await.expect("connection open").unwrap() {
            Message::Text(t) => return ServerFrame::parse(t.as_str()).unwrap(),
            _ => continue,
        }
    }
}

fn code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

fn send_frame(env: &sotto_signalling::protocol::Envelope) -> String {
    serde_json::to_string(&ClientFrame::Send {
        v: 1,
        msg: env.clone(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, _) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let (mallory_client, mtok) = common::device(&base).await;
    let mut ws = raw_ws(srv.addr, &mtok).await;

    assert_eq!(
        code(&roundtrip(&mut ws, "{".into()).await),
        Some(ErrorCode::Malformed)
    );
    assert_eq!(
        code(&roundtrip(&mut ws, r#"{"type":"send","v":1}"#.into()).await),
        Some(ErrorCode::Malformed)
    );
    let big = format!(
        r#"{{"type":"ack","v":1,"id":"{}","from":"x"}}"#,
        "a".repeat(MAX_FRAME_BYTES)
    );
    assert_eq!(
        code(&roundtrip(&mut ws, big).await),
        Some(ErrorCode::TooLarge)
    );
    assert_eq!(
        code(
            &roundtrip(
                &mut ws,
                r#"{"type":"ack","v":9,"id":"m","from":"x"}"#.into()
            )
            .await
        ),
        Some(ErrorCode::Version)
    );

    // Forged: a message claiming to be from Alice, on Mallory's session.
    let forger = DeviceIdentity::generate();
    let bob_id = bob.device_id();
    let bob_keys = alice
        .device_keys(&alice.login().await.unwrap(), &bob_id)
        .await
        .unwrap();
    let call = CallId::new("c").unwrap();
    let mut env = forger
        .seal(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            unix_ms(),
            &CallPayload::default(),
        )
        .unwrap();
    env.from = alice.device_id();
    assert_eq!(
        code(&roundtrip(&mut ws, send_frame(&env)).await),
        Some(ErrorCode::Forbidden)
    );

    // Mallory's own, properly signed message is accepted once...
    let mallory = mallory_client.identity();
    let env = mallory
        .seal(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            unix_ms(),
            &CallPayload::default(),
        )
        .unwrap();
    let reply = roundtrip(&mut ws, send_frame(&env)).await;
    assert!(matches!(reply, ServerFrame::Accepted { .. }), "{reply:?}");
    // ...and refused when replayed.
    assert_eq!(
        code(&roundtrip(&mut ws, send_frame(&env)).await),
        Some(ErrorCode::Replay)
    );
    // A tampered header breaks the signature.
    let mut t = mallory
        .seal(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            unix_ms(),
            &CallPayload::default(),
        )
        .unwrap();
    t.kind = MessageKind::Hangup;
    assert_eq!(
        code(&roundtrip(&mut ws, send_frame(&t)).await),
        Some(ErrorCode::Forbidden)
    );
    // A timestamp out of the window, old (a resend after a long outage)
    // or ahead (a fast clock), is `stale`, not `replay`: it was not stored.
    for ts in [unix_ms() - 3_600_000, unix_ms() + 3_600_000] {
        let old = mallory
            .seal(
                (&bob_id, &bob_keys),
                call.clone(),
                MessageKind::Offer,
                ts,
                &CallPayload::default(),
            )
            .unwrap();
        assert_eq!(
            code(&roundtrip(&mut ws, send_frame(&old)).await),
            Some(ErrorCode::Stale)
        );
    }
    // Unknown recipient.
    let ghost = DeviceIdentity::generate();
    let env = mallory
        .seal(
            (&ghost.device_id(), ghost.public()),
            call,
            MessageKind::Offer,
            unix_ms(),
            &CallPayload::default(),
        )
        .unwrap();
    assert_eq!(
        code(&roundtrip(&mut ws, send_frame(&env)).await),
        Some(ErrorCode::UnknownDevice)
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_auth_is_single_use_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, _) = common::device(&base).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let me = alice.device_id();
    let ch: serde_json::Value = serde_json::from_slice(
        &post("/v1/challenge", serde_json::json!({"device_id": me}))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let nonce = ch["nonce"].as_str().unwrap();
    let origin = sotto_signalling::auth::Origin::of_url(&base).unwrap();
    let signed = sotto_signalling::auth::session_bytes(&origin, &me, nonce);
    // Signed by another key: refused, and the nonce survives for the owner.
    let other = DeviceIdentity::generate();
    let forged = other.sign(&signed);
    let r = post(
        "/v1/session",
        serde_json::json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": forged}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let sig = alice.identity().sign(&signed);
    let r = post(
        "/v1/session",
        serde_json::json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": sig}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // The same signed challenge cannot open a second session.
    let r = post(
        "/v1/session",
        serde_json::json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": sig}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // No token, no socket; oversized bodies are refused before parsing.
    let r = http.get(format!("{base}/v1/ws")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = post(
        "/v1/devices",
        serde_json::json!({"sign_key": "a".repeat(100_000), "seal_key": "", "sig": ""}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_device_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.device_rate = 0.001;
    cfg.device_burst = 2.0;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut ws = raw_ws(srv.addr, &atok).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let env = alice
            .identity()
            .seal(
                (&bob_id, &bob_keys),
                CallId::new("c").unwrap(),
                MessageKind::Ice,
                unix_ms(),
                &CallPayload::default(),
            )
            .unwrap();
        codes.push(code(&roundtrip(&mut ws, send_frame(&env)).await));
    }
    assert_eq!(codes, [None, None, Some(ErrorCode::RateLimited)]);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ip_rate = 0.001;
    cfg.ip_burst = 3.0;
    let srv = server::start(cfg, None).await.unwrap();
    let url = format!("http://{}/healthz", srv.addr);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(reqwest::get(&url).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    srv.shutdown().await;
}
