//! A malicious or broken server cannot make the client buffer more than a
//! frame's worth of memory: HTTP answers over [`MAX_FRAME_BYTES`] are
//! refused, not read whole.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use sotto_signalling::auth::register_bytes;
use sotto_signalling::client::{ClientError, SignalClient};
use sotto_signalling::protocol::MAX_FRAME_BYTES;
use sotto_signalling::seal::DeviceIdentity;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

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
    let client = SignalClient::new(serve(app).await, Arc::new(DeviceIdentity::generate()));
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
    let client = SignalClient::new(serve(app).await, Arc::new(DeviceIdentity::generate()));
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
    let client = SignalClient::new(serve(app).await, Arc::new(DeviceIdentity::generate()));
    let got = client.device_keys("t", &bob.device_id()).await.unwrap();
    assert_eq!(&got, bob.public());
}
