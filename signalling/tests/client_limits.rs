//! A malicious or broken server cannot make the client buffer more than a
//! frame's worth of memory: HTTP answers and WebSocket messages over
//! [`MAX_FRAME_BYTES`] are refused, not read whole.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use sotto_signalling::auth::register_bytes;
use sotto_signalling::client::{ClientError, ClientEvent, SignalClient};
use sotto_signalling::protocol::{CallId, MAX_FRAME_BYTES, MessageKind, ServerFrame};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use sotto_signalling::util::unix_ms;

/// A genuine, self-signed directory answer for `bob`, padded to well over
/// the frame limit with a field the client ignores.
fn padded_answer(bob: &DeviceIdentity) -> String {
    let (sign, seal) = (bob.public().sign_b64(), bob.public().seal_b64());
    let sig = bob.sign(&register_bytes(&sign, &seal));
    serde_json::json!({
        "sign_key": sign,
        "seal_key": seal,
        "sig": sig,
        "pad": "x".repeat(16 * MAX_FRAME_BYTES),
    })
    .to_string()
}

#[tokio::test]
async fn an_http_answer_over_the_frame_limit_is_refused() {
    let bob = DeviceIdentity::generate();
    let answer = padded_answer(&bob);
    let app = Router::new().route(
        "/v1/devices/{id}/keys",
        get(move || {
            let answer = answer.clone();
            async move { ([("content-type", "application/json")], answer) }
        }),
    );
    let client = SignalClient::new(
        common::serve(app).await,
        Arc::new(DeviceIdentity::generate()),
    );
    let got = client.device_keys("t", &bob.device_id()).await;
    assert!(matches!(got, Err(ClientError::Answer)), "{got:?}");
}

#[tokio::test]
async fn a_streamed_http_answer_over_the_frame_limit_is_refused() {
    // No content-length: the limit holds while reading, not only up front.
    let bob = DeviceIdentity::generate();
    let answer = padded_answer(&bob);
    let app = Router::new().route(
        "/v1/devices/{id}/keys",
        get(move || {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = answer
                .as_bytes()
                .chunks(4096)
                .map(|c| Ok(c.to_vec()))
                .collect();
            async move { Body::from_stream(futures_util::stream::iter(chunks)) }
        }),
    );
    let client = SignalClient::new(
        common::serve(app).await,
        Arc::new(DeviceIdentity::generate()),
    );
    let got = client.device_keys("t", &bob.device_id()).await;
    assert!(matches!(got, Err(ClientError::Answer)), "{got:?}");
}

#[tokio::test]
async fn an_http_answer_within_the_limit_is_still_read() {
    let bob = DeviceIdentity::generate();
    let (sign, seal) = (bob.public().sign_b64(), bob.public().seal_b64());
    let sig = bob.sign(&register_bytes(&sign, &seal));
    let answer = serde_json::json!({"sign_key": sign, "seal_key": seal, "sig": sig});
    let app = Router::new().route(
        "/v1/devices/{id}/keys",
        get(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    let client = SignalClient::new(
        common::serve(app).await,
        Arc::new(DeviceIdentity::generate()),
    );
    let got = client.device_keys("t", &bob.device_id()).await.unwrap();
    assert_eq!(&got, bob.public());
}

/// A server that logs anyone in, then on the WebSocket sends one message
/// far over the frame limit followed by a stale delivery.
#[tokio::test]
async fn a_websocket_message_over_the_frame_limit_drops_the_connection() {
    let me = Arc::new(DeviceIdentity::generate());
    let stale = DeviceIdentity::generate()
        .seal(
            (&me.device_id(), me.public()),
            CallId::new("c").unwrap(),
            MessageKind::Offer,
            unix_ms() - 3_600_000,
            &CallPayload::default(),
        )
        .unwrap();
    let deliver = serde_json::to_string(&ServerFrame::Deliver { v: 1, msg: stale }).unwrap();
    let app = common::fake_login().route(
        "/v1/ws",
        get(move |ws: WebSocketUpgrade| {
            let deliver = deliver.clone();
            async move {
                ws.on_upgrade(move |mut socket| async move {
                    let big = "x".repeat(16 * MAX_FRAME_BYTES);
                    let _ = socket.send(Message::Text(big.into())).await;
                    let _ = socket.send(Message::Text(deliver.into())).await;
                    // Hold the socket open until the client leaves.
                    while let Some(Ok(_)) = socket.recv().await {}
                })
            }
        }),
    );
    let client = SignalClient::new(common::serve(app).await, me);
    let mut conn = client.connect(true);
    assert_eq!(conn.next_event().await, Some(ClientEvent::Connected));
    let next = conn.next_event().await;
    assert_eq!(
        next,
        Some(ClientEvent::Disconnected),
        "the oversized message was read whole, then the connection carried on"
    );
}
