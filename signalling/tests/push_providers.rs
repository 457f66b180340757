//! APNs VoIP (HTTP/2, ES256 provider token) and FCM HTTP v1 (RS256
//! service-account OAuth grant) adapters against local stand-ins for the
//! providers' HTTP APIs: headers, tokens and bodies are checked, and dead
//! tokens (BadDeviceToken, UNREGISTERED) are pruned.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Version};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use sotto_signalling::config::{ApnsConfig, FcmConfig};
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::push::apns::Apns;
use sotto_signalling::push::fcm::{Fcm, ServiceAccount};
use sotto_signalling::push::jwt::JwtKey;
use sotto_signalling::push::{Attempt, PushKind, PushMessage};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;
use sotto_signalling::store::{PushEndpoint, Store};
use sotto_signalling::util::unb64;
use tokio::sync::mpsc;

#[derive(Clone)]
struct Provider {
    apns_key: Arc<Vec<u8>>,
    rsa_key: Arc<Vec<u8>>,
    tx: mpsc::UnboundedSender<(String, serde_json::Value)>,
    oauth_grants: Arc<Mutex<u32>>,
    /// Access tokens FCM refuses with 401 (revoked); `*` refuses them all.
    revoked: Arc<Mutex<HashSet<String>>>,
}

/// The access token the stand-in OAuth endpoint issues as grant `n`.
fn access_token(n: u32) -> String {
    format!("ya29.test-token-{n}")
}

fn jwt_parts(jwt: &str) -> (serde_json::Value, serde_json::Value, String, Vec<u8>) {
    let mut it = jwt.split('.');
    let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let j = |p: &str| serde_json::from_slice(&unb64(p).unwrap()).unwrap();
    (j(h), j(c), format!("{h}.{c}"), unb64(s).unwrap())
}

async fn apns(
    State(p): State<Provider>,
    Path(token): Path<String>,
    req: Request,
) -> impl IntoResponse {
    assert_eq!(req.version(), Version::HTTP_2, "APNs is HTTP/2 only");
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 4096).await.unwrap();
    let h = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let bearer = h("authorization");
    let (header, claims, input, sig) = jwt_parts(bearer.strip_prefix("bearer ").unwrap());
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p.apns_key.as_slice())
        .verify(input.as_bytes(), &sig)
        .expect("provider token verifies with the APNs key");
    let seen = serde_json::json!({
        "alg": header["alg"], "kid": header["kid"], "iss": claims["iss"],
        "push_type": h("apns-push-type"), "topic": h("apns-topic"), "priority": h("apns-priority"),
        "expiration": h("apns-expiration"), "collapse": h("apns-collapse-id"),
        "body": serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
    });
    let _ = p.tx.send((format!("apns/{token}"), seen));
    if token.starts_with("bb") {
        (StatusCode::BAD_REQUEST, r#"{"reason":"BadDeviceToken"}"#)
    } else {
        (StatusCode::OK, "")
    }
}

async fn oauth(State(p): State<Provider>, body: Bytes) -> impl IntoResponse {
    let form: Vec<(String, String)> = url_decode(&body);
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        get("grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let (header, claims, input, sig) = jwt_parts(&get("assertion"));
    assert_eq!(header["alg"], "RS256");
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, p.rsa_key.as_slice())
        .verify(input.as_bytes(), &sig)
        .expect("assertion verifies with the service account's key");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(claims["iss"], "signald@test.iam.example");
    let mut grants = p.oauth_grants.lock().unwrap();
    *grants += 1;
    axum::Json(
        serde_json::json!({"access_token": access_token(*grants), "expires_in": 3600, "token_type": "Bearer"}),
    )
}

fn url_decode(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).unwrap();
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    text.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (dec(k), dec(v))
        })
        .collect()
}

async fn fcm(State(p): State<Provider>, req: Request) -> impl IntoResponse {
    let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
    let token = auth.strip_prefix("Bearer ").unwrap();
    let grants = *p.oauth_grants.lock().unwrap();
    assert!(
        (1..=grants).any(|n| access_token(n) == token),
        "{token} was issued"
    );
    let refused = {
        let revoked = p.revoked.lock().unwrap();
        revoked.contains(token) || revoked.contains("*")
    };
    if refused {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#,
        );
    }
    let body: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(req.into_body(), 4096).await.unwrap())
            .unwrap();
    let token = body["message"]["token"].as_str().unwrap().to_owned();
    let _ = p.tx.send((format!("fcm/{token}"), body));
    if token == "dead" {
        (
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#,
        )
    } else {
        (StatusCode::OK, r#"{"name":"projects/p/messages/1"}"#)
    }
}

fn openssl(args: &[&str]) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .status()
        .expect("openssl is installed");
    assert!(ok.success(), "openssl {args:?}");
}

/// Keys (an APNs .p8 and a service account), and the stand-in for the
/// APNs, FCM and OAuth endpoints on loopback.
struct Fixture {
    dir: tempfile::TempDir,
    base: String,
    provider: Provider,
    rx: mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    /// The APNs key, PKCS#8 DER.
    apns_der: Vec<u8>,
}

impl Fixture {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| dir.path().join(n).display().to_string();
        // APNs key (.p8 is PKCS#8 P-256) and a service-account RSA key.
        let (_, apns_der) = JwtKey::generate_es256().unwrap();
        let apns_pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&apns_der)
        );
        std::fs::write(d("AuthKey.p8"), &apns_pem).unwrap();
        let apns_pub = JwtKey::es256_from_pkcs8(&apns_der).unwrap().public_key();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &d("sa.pem"),
        ]);
        openssl(&[
            "rsa",
            "-in",
            &d("sa.pem"),
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-out",
            &d("sa.pub"),
        ]);

        let (tx, rx) = mpsc::unbounded_channel();
        let provider = Provider {
            apns_key: Arc::new(apns_pub),
            rsa_key: Arc::new(std::fs::read(d("sa.pub")).unwrap()),
            tx,
            oauth_grants: Arc::default(),
            revoked: Arc::default(),
        };
        let app = Router::new()
            .route("/3/device/{token}", post(apns))
            .route("/token", post(oauth))
            .route("/v1/projects/sotto-test/messages:send", post(fcm))
            .with_state(provider.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let account = serde_json::json!({
            "type": "service_account",
            "project_id": "sotto-test",
            "client_email": "signald@test.iam.example",
            "private_key": std::fs::read_to_string(d("sa.pem")).unwrap(),
            "token_uri": format!("{base}/token"),
        });
        std::fs::write(d("sa.json"), account.to_string()).unwrap();
        Self {
            dir,
            base,
            provider,
            rx,
            apns_der,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn grants(&self) -> u32 {
        *self.provider.oauth_grants.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_and_fcm_adapters() {
    let Fixture {
        dir,
        base,
        provider,
        mut rx,
        ..
    } = Fixture::start().await;
    let d = |n: &str| dir.path().join(n).display().to_string();
    let mut cfg = common::config(dir.path());
    cfg.push.apns = Some(ApnsConfig {
        base_url: base.clone(),
        team_id: "TEAM123456".into(),
        key_id: "KEY1234567".into(),
        bundle_id: "org.sotto.app".into(),
        key_file: d("AuthKey.p8").into(),
    });
    cfg.push.fcm = Some(FcmConfig {
        base_url: base.clone(),
        service_account_file: d("sa.json").into(),
    });
    let srv = server::start(cfg, None).await.unwrap();
    let sbase = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&sbase).await;
    let (bob, btok) = common::device(&sbase).await;
    bob.put_push(&btok, "apns", "aa01", "", "").await.unwrap();
    bob.put_push(&btok, "apns", "bb02", "", "").await.unwrap();
    bob.put_push(&btok, "fcm", "live", "", "").await.unwrap();
    bob.put_push(&btok, "fcm", "dead", "", "").await.unwrap();

    let mut aconn = alice.connect(true);
    let bob_id = bob.device_id();
    let keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let call = CallId::new("call-native").unwrap();
    let id = aconn
        .send(
            (&bob_id, &keys),
            call.clone(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    common::wait_for(&mut aconn, "accepted", |e| common::queued(e, &id)).await;

    let mut seen = std::collections::HashMap::new();
    while seen.len() < 4 {
        let (k, v) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        seen.insert(k, v);
    }
    let a = &seen["apns/aa01"];
    assert_eq!(a["alg"], "ES256");
    assert_eq!(a["kid"], "KEY1234567");
    assert_eq!(a["iss"], "TEAM123456");
    assert_eq!(a["push_type"], "voip");
    assert_eq!(a["topic"], "org.sotto.app.voip");
    assert_eq!(a["priority"], "10");
    assert_eq!(a["collapse"], call.as_str());
    assert!(
        a["expiration"].as_str().unwrap().parse::<u64>().unwrap()
            > sotto_signalling::util::unix_ms() / 1000
    );
    assert_eq!(a["body"]["call_id"], call.as_str());
    let f = &seen["fcm/live"]["message"];
    assert_eq!(f["android"]["priority"], "HIGH");
    assert_eq!(f["android"]["ttl"], "45s");
    assert_eq!(f["android"]["collapse_key"], call.as_str());
    assert_eq!(f["data"]["kind"], "wake");
    assert_eq!(
        *provider.oauth_grants.lock().unwrap(),
        1,
        "the access token is cached"
    );

    // Dead tokens are pruned; live ones stay.
    let store = Store::open(&format!("sqlite://{}", d("signald.db")))
        .await
        .unwrap();
    let mut left = Vec::new();
    for _ in 0..300 {
        left = store
            .push_endpoints(&bob_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.endpoint)
            .collect();
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, ["aa01", "live"]);
    srv.shutdown().await;
}

/// A revoked access token (FCM answers 401) is dropped and replaced at
/// once, not used until it would have expired; a 401 with the fresh token
/// too ends the attempt instead of looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_replaces_a_revoked_access_token() {
    let fx = Fixture::start().await;
    let account: ServiceAccount =
        serde_json::from_slice(&std::fs::read(fx.path("sa.json")).unwrap()).unwrap();
    let fcm = Fcm::new(fx.base.clone(), account, reqwest::Client::new()).unwrap();
    let ep = PushEndpoint {
        provider: "fcm".into(),
        endpoint: "live".into(),
        p256dh: String::new(),
        auth: String::new(),
    };
    let msg = PushMessage {
        call_id: CallId::new("call-revoked").unwrap(),
        kind: PushKind::Wake,
        ttl_s: 45,
    };
    let now_s = sotto_signalling::util::unix_ms() / 1000;

    assert_eq!(fcm.send(&ep, &msg, now_s).await, Attempt::Sent);
    assert_eq!(fcm.send(&ep, &msg, now_s).await, Attempt::Sent);
    assert_eq!(fx.grants(), 1, "the access token is cached");

    fx.provider.revoked.lock().unwrap().insert(access_token(1));
    assert_eq!(fcm.send(&ep, &msg, now_s).await, Attempt::Sent);
    assert_eq!(fx.grants(), 2, "a new token replaced the revoked one");
    assert_eq!(fcm.send(&ep, &msg, now_s).await, Attempt::Sent);
    assert_eq!(fx.grants(), 2, "the new token is cached");

    fx.provider.revoked.lock().unwrap().insert("*".into());
    assert_eq!(fcm.send(&ep, &msg, now_s).await, Attempt::Failed);
    assert_eq!(fx.grants(), 3, "one new token per refused send, no more");
}

/// A cancel is not a VoIP push (iOS would terminate an app that does not
/// report it to CallKit as a new call) but a background push to the app's
/// own topic, at the priority Apple requires for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_cancel_is_a_background_push() {
    let mut fx = Fixture::start().await;
    let apns = Apns::new(
        fx.base.clone(),
        "TEAM123456".into(),
        "KEY1234567".into(),
        "org.sotto.app".into(),
        JwtKey::es256_from_pkcs8(&fx.apns_der).unwrap(),
    )
    .unwrap();
    let ep = PushEndpoint {
        provider: "apns-app".into(),
        endpoint: "cc03".into(),
        p256dh: String::new(),
        auth: String::new(),
    };
    let msg = PushMessage {
        call_id: CallId::new("call-cancelled").unwrap(),
        kind: PushKind::Cancel,
        ttl_s: 45,
    };
    let now_s = sotto_signalling::util::unix_ms() / 1000;
    assert_eq!(apns.send(&ep, &msg, now_s).await, Attempt::Sent);
    let (path, seen) = fx.rx.recv().await.unwrap();
    assert_eq!(path, "apns/cc03");
    assert_eq!(seen["push_type"], "background");
    assert_eq!(seen["topic"], "org.sotto.app");
    assert_eq!(seen["priority"], "5");
    assert_eq!(seen["body"]["aps"]["content-available"], 1);
    assert_eq!(seen["body"]["kind"], "cancel");
    assert_eq!(seen["body"]["call_id"], "call-cancelled");
}
