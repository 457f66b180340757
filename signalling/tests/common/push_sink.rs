//! A local stand-in for a push service's HTTP API (the protocol boundary):
//! records every request, answers with a scripted status per path.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

/// A Web Push subscription's keys (a P-256 point and an auth secret).
pub fn ua_keys() -> (String, String) {
    let rng = ring::rand::SystemRandom::new();
    let key =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    (
        sotto_signalling::util::b64(key.compute_public_key().unwrap().as_ref()),
        sotto_signalling::util::b64(&[7u8; 16]),
    )
}

/// One request received by the sink.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Scripted answers: per path, a list of (status, retry-after) used in turn,
/// the last repeating. Unscripted paths answer 201.
pub type Script = Arc<Mutex<HashMap<String, Vec<(u16, Option<u64>)>>>>;

/// Requests to hold, per path, in turn: a held request is recorded and
/// answered only once released (a push still on its way to the service).
pub type Holds =
    Arc<Mutex<HashMap<String, VecDeque<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>>;

/// The test's side of a held request.
pub struct Held {
    /// Fires when the request has come.
    pub arrived: oneshot::Receiver<()>,
    /// Lets it through.
    pub release: oneshot::Sender<()>,
}

/// Holds the next request to `path` that is not held already.
pub fn hold_next(holds: &Holds, path: &str) -> Held {
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    holds
        .lock()
        .unwrap()
        .entry(path.to_owned())
        .or_default()
        .push_back((arrived_tx, release_rx));
    Held { arrived, release }
}

#[derive(Clone)]
struct Sink {
    tx: mpsc::UnboundedSender<Received>,
    script: Script,
    holds: Holds,
}

async fn handle(
    State(sink): State<Sink>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let hold = sink
        .holds
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    if let Some((arrived, release)) = hold {
        let _ = arrived.send(());
        let _ = release.await;
    }
    let answer = {
        let mut script = sink.script.lock().unwrap();
        match script.get_mut(&path) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) => list[0],
            None => (201, None),
        }
    };
    let _ = sink.tx.send(Received {
        path,
        headers,
        body,
    });
    let mut h = HeaderMap::new();
    if let Some(ra) = answer.1 {
        h.insert("retry-after", ra.to_string().parse().unwrap());
    }
    // A redirect points at another path of this sink.
    if (300..400).contains(&answer.0) {
        h.insert("location", "/redirected".parse().unwrap());
    }
    (StatusCode::from_u16(answer.0).unwrap(), h, "")
}

/// Starts the sink; returns its base URL, the request stream and the script.
pub async fn start() -> (String, mpsc::UnboundedReceiver<Received>, Script) {
    let (url, rx, script, _) = start_holding().await;
    (url, rx, script)
}

/// [`start`], and the holds.
pub async fn start_holding() -> (String, mpsc::UnboundedReceiver<Received>, Script, Holds) {
    let (tx, rx) = mpsc::unbounded_channel();
    let script: Script = Arc::default();
    let holds: Holds = Arc::default();
    let app = Router::new()
        .route("/{*path}", post(handle))
        .with_state(Sink {
            tx,
            script: script.clone(),
            holds: holds.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx, script, holds)
}
