//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sotto_signalling::client::{ClientEvent, Connection, SignalClient};
use sotto_signalling::config::Config;
use sotto_signalling::protocol::{CallId, DeviceId, Envelope, MessageId, MessageKind};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};

/// Serves `app` on a loopback port; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A fake signald's login, for tests that stand in for the server: any
/// device gets a challenge and, for any answer, the session token `t`.
pub fn fake_login() -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/v1/challenge",
            post(|| async { axum::Json(serde_json::json!({"nonce": "n", "expires_ms": 0})) }),
        )
        .route(
            "/v1/session",
            post(|| async { axum::Json(serde_json::json!({"token": "t", "expires_ms": 0})) }),
        )
}

/// A single-node config on loopback with a SQLite file in `dir`.
/// The test push services listen on loopback, so 127.0.0.1 is allow-listed.
pub fn config(dir: &Path) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.join("signald.db").display()),
        ..Config::default()
    };
    c.push.endpoint_allow_hosts = vec!["127.0.0.1".into()];
    c
}

/// A registered device with a session token.
pub async fn device(base: &str) -> (SignalClient, String) {
    let client = SignalClient::new(base, Arc::new(DeviceIdentity::generate()));
    client.register().await.expect("register");
    let token = client.login().await.expect("login");
    (client, token)
}

/// Whether `e` says the server stored our message `id`, for a connected
/// recipient or queued for one that is not.
pub fn stored(e: &ClientEvent, id: &MessageId) -> bool {
    matches!(e, ClientEvent::Accepted(i) | ClientEvent::Queued(i, _) if i == id)
}

/// Whether `e` says the server queued our message `id` for a recipient
/// that is not connected.
pub fn queued(e: &ClientEvent, id: &MessageId) -> bool {
    matches!(e, ClientEvent::Queued(i, _) if i == id)
}

/// Waits (bounded, as a hang guard only) for the first event matching `pred`.
pub async fn wait_for(
    conn: &mut Connection,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let fut = async {
        loop {
            match conn.next_event().await {
                Some(ev) if pred(&ev) => return ev,
                Some(_) => {}
                None => panic!("connection stopped while waiting for {what}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 30 s"))
}

/// Waits for the next opened call message and returns its envelope and
/// payload.
pub async fn next_message(conn: &mut Connection, what: &str) -> (Box<Envelope>, Box<CallPayload>) {
    match wait_for(conn, what, |e| matches!(e, ClientEvent::Message { .. })).await {
        ClientEvent::Message { envelope, payload } => (envelope, payload),
        _ => unreachable!("wait_for returned an event its predicate refused"),
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WebSocket to signald opened by hand, not through the client.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens signald's WebSocket at `addr` with the session `token`, by hand.
pub async fn raw_ws(addr: std::net::SocketAddr, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// An offer `id` from "alice" to `to`, unsigned: for storing straight into
/// the database, behind the server's back (as another node would).
pub fn unsigned_offer(to: DeviceId, id: &str) -> Envelope {
    Envelope {
        v: sotto_signalling::protocol::PROTOCOL_VERSION,
        id: MessageId::new(id).unwrap(),
        from: DeviceId::new("alice").unwrap(),
        to,
        call_id: CallId::new("c1").unwrap(),
        kind: MessageKind::Offer,
        ts_ms: sotto_signalling::util::unix_ms(),
        enc: String::new(),
        ct: String::new(),
        sig: String::new(),
    }
}
