//! A device's login is bound to the origin it meant to log in to: a
//! signald where the device is registered cannot hand it another server's
//! challenge and use its signature to log in there as the device.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use sotto_signalling::auth::{Origin, session_bytes};
use sotto_signalling::client::{ClientError, SignalClient};
use sotto_signalling::seal::DeviceIdentity;
use sotto_signalling::server;

/// What the compromised server saw of each login it relayed.
#[derive(Default)]
struct Seen {
    /// The device's signed session request, as the device sent it.
    requests: Vec<serde_json::Value>,
    /// The other server's answers: status and body.
    answers: Vec<(u16, serde_json::Value)>,
}

#[derive(Clone)]
struct Relay {
    /// The compromised server's own signald (registration goes there).
    own: String,
    /// The server it logs in to as the device.
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
}

async fn forward(http: &reqwest::Client, url: String, body: Bytes) -> (u16, Bytes) {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap())
}

fn answer((status, body): (u16, Bytes)) -> (StatusCode, Bytes) {
    (StatusCode::from_u16(status).unwrap(), body)
}

/// The front of a compromised signald: registrations go to its own
/// signald; challenges and session requests are relayed to `target`.
/// Returns its base URL.
async fn compromised_front(listener: tokio::net::TcpListener, relay: Relay) -> String {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/v1/devices",
            post(|State(r): State<Relay>, body: Bytes| async move {
                answer(forward(&r.http, format!("{}/v1/devices", r.own), body).await)
            }),
        )
        .route(
            "/v1/challenge",
            post(|State(r): State<Relay>, body: Bytes| async move {
                answer(forward(&r.http, format!("{}/v1/challenge", r.target), body).await)
            }),
        )
        .route(
            "/v1/session",
            post(|State(r): State<Relay>, body: Bytes| async move {
                let req = serde_json::from_slice(&body).unwrap();
                let (status, got) =
                    forward(&r.http, format!("{}/v1/session", r.target), body).await;
                {
                    let mut seen = r.seen.lock().unwrap();
                    seen.requests.push(req);
                    seen.answers
                        .push((status, serde_json::from_slice(&got).unwrap_or_default()));
                }
                answer((status, got))
            }),
        )
        .with_state(relay);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Server A (compromised) hands the device a challenge from server B,
/// where the device is also registered, and passes the device's signed
/// answer on to B: B must not open a session for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_relayed_from_one_server_to_another_is_refused() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b = server::start(common::config(dir_b.path()), None)
        .await
        .unwrap();
    let b_base = format!("http://{}", b.addr);
    // A's own origin is its front's, where devices reach it.
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg_a = common::config(dir_a.path());
    cfg_a.public_origins = vec![format!("http://{}", front.local_addr().unwrap())];
    let a = server::start(cfg_a, None).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let a_base = compromised_front(
        front,
        Relay {
            own: format!("http://{}", a.addr),
            target: b_base.clone(),
            http: reqwest::Client::new(),
            seen: seen.clone(),
        },
    )
    .await;

    // One device, registered on both servers.
    let device = Arc::new(DeviceIdentity::generate());
    let at_a = SignalClient::new(&a_base, device.clone());
    let at_b = SignalClient::new(&b_base, device.clone());
    at_a.register().await.expect("registered on A");
    at_b.register().await.expect("registered on B");

    // The device logs in to A, which relays B's challenge and the signed
    // answer to B: B refuses a login signed for A's origin, and the device
    // is told so.
    let got = at_a.login().await;
    let a_origin = Origin::of_url(&a_base).unwrap();
    assert!(
        matches!(&got, Err(ClientError::WrongOrigin(o)) if *o == a_origin),
        "{got:?}"
    );
    let (requests, answers) = {
        let seen = seen.lock().unwrap();
        (seen.requests.clone(), seen.answers.clone())
    };
    assert_eq!(answers.len(), 1);
    let (status, body) = &answers[0];
    assert_eq!((*status, &body["error"]), (421, &json!("wrong_origin")));
    assert!(body.get("token").is_none(), "{body}");

    // A cannot make B take it either: the device signed A's origin, so
    // claiming B's breaks the signature; and B does not go by the Host
    // header, which the relay writes.
    let signed = requests[0].clone();
    assert_eq!(signed["origin"], json!(a_origin.as_str()));
    let http = reqwest::Client::new();
    let session = |body: serde_json::Value, host: Option<String>| {
        let mut req = http
            .post(format!("{b_base}/v1/session"))
            .header("content-type", "application/json");
        if let Some(host) = host {
            req = req.header("host", host);
        }
        req.body(body.to_string()).send()
    };
    let mut as_b = signed.clone();
    as_b["origin"] = json!(Origin::of_url(&b_base).unwrap().as_str());
    assert_eq!(session(as_b, None).await.unwrap().status(), 401);
    let a_host = a_base.trim_start_matches("http://").to_owned();
    let r = session(signed.clone(), Some(a_host)).await.unwrap();
    assert_eq!(r.status(), 421);

    // The device itself still logs in to B.
    at_b.login().await.expect("the device's own login to B");
    b.shutdown().await;
    a.shutdown().await;
}

/// A v1 login (the device id and nonce signed, no origin) is refused,
/// with or without an origin beside it, and does not use up the nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_login_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let (device, _) = common::device(&base).await;
    let me = device.device_id();
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let ch: serde_json::Value = post("/v1/challenge", json!({"device_id": me}))
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let nonce = ch["nonce"].as_str().unwrap();
    let v1 = [
        b"sotto-session v1\0".as_slice(),
        me.as_str().as_bytes(),
        b"\0",
        nonce.as_bytes(),
    ]
    .concat();
    let v1_sig = device.identity().sign(&v1);
    let r = post(
        "/v1/session",
        json!({"device_id": me, "nonce": nonce, "sig": v1_sig}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "origin_required");
    let origin = Origin::of_url(&base).unwrap();
    let r = post(
        "/v1/session",
        json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": v1_sig}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // The same nonce, signed as v2 for this server, still opens a session.
    let v2_sig = device.identity().sign(&session_bytes(&origin, &me, nonce));
    let r = post(
        "/v1/session",
        json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": v2_sig}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    srv.shutdown().await;
}

/// Forwards each connection on a loopback port to `upstream`, as a reverse
/// proxy in front of signald would (the `Host` header is the proxy's).
async fn tcp_forwarder(listener: tokio::net::TcpListener, upstream: std::net::SocketAddr) {
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
}

/// With `public_origins` set, a server behind a proxy takes logins for its
/// public URL however it is spelt, and no longer for the address it
/// listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answers_to_its_public_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = front.local_addr().unwrap().port();
    let mut cfg = common::config(dir.path());
    cfg.public_origins = vec![format!("HTTP://LocalHost:{port}/")];
    let srv = server::start(cfg, None).await.unwrap();
    tcp_forwarder(front, srv.addr).await;

    let device = Arc::new(DeviceIdentity::generate());
    let public = SignalClient::new(format!("http://localhost:{port}"), device.clone());
    public.register().await.unwrap();
    let token = public.login().await.expect("login at the public origin");
    let keys = public.device_keys(&token, &device.device_id()).await;
    assert_eq!(keys.unwrap(), *device.public(), "the session works");
    let respelt = SignalClient::new(format!("http://LOCALHOST:{port}/"), device.clone());
    respelt
        .login()
        .await
        .expect("login at the public origin respelt");

    let direct_base = format!("http://{}", srv.addr);
    let direct = SignalClient::new(&direct_base, device.clone());
    let got = direct.login().await;
    assert!(
        matches!(&got, Err(ClientError::WrongOrigin(o)) if o.as_str() == direct_base),
        "{got:?}"
    );
    assert!(
        got.unwrap_err().to_string().contains(&direct_base),
        "the error names the origin"
    );
    srv.shutdown().await;
}

/// Listening beyond loopback with no `public_origins`, the server does not
/// know the URLs devices use: it refuses to start, naming the setting.
#[tokio::test]
async fn unset_public_origins_off_loopback_stop_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let err = server::start(cfg, None).await.unwrap_err();
    let err = err
        .downcast_ref::<sotto_signalling::config::ConfigError>()
        .unwrap_or_else(|| panic!("not a config error: {err:#}"));
    assert_eq!(err.setting, "public_origins");
}
