//! A wake being retried stops when its call is cancelled or its offer is
//! no longer queued, and a cancel reaches the push service after the last
//! wake of its call: the service keeps one message per `Topic` (RFC 8030
//! §5.4), so a wake arriving after the cancel would replace it and the
//! phone would ring for a call that ended.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;

use std::time::Duration;

use sotto_signalling::protocol::{CallId, DeviceId, Envelope, MessageId, MessageKind};
use sotto_signalling::push::jwt::JwtKey;
use sotto_signalling::push::webpush::{UaKeys, WebPush, decrypt};
use sotto_signalling::push::{Providers, PushKind, PushMessage, Pusher, RetryPolicy};
use sotto_signalling::store::{PushEndpoint, Store};
use sotto_signalling::util::{b64, unix_ms};
use tokio::sync::mpsc::UnboundedReceiver;

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    pusher: Pusher,
    pushes: UnboundedReceiver<push_sink::Received>,
    ua: UaKeys,
    carol: DeviceId,
    call: CallId,
}

/// Carol has one Web Push subscription, at a push service that answers
/// her first push 503 with `Retry-After: 1`, then 201; an offer of `call-x`
/// is queued for her.
async fn setup() -> Setup {
    let (sink, pushes, script) = push_sink::start().await;
    script
        .lock()
        .unwrap()
        .insert("push/carol".into(), vec![(503, Some(1)), (201, None)]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let carol = DeviceId::new("carol").unwrap();
    let ua = UaKeys::generate().unwrap();
    let ep = PushEndpoint {
        provider: "webpush".into(),
        endpoint: format!("{sink}/push/carol"),
        p256dh: b64(ua.public()),
        auth: b64(ua.auth()),
    };
    assert!(store.put_push_endpoint(&carol, &ep, 10).await.unwrap());
    let call = CallId::new("call-x").unwrap();
    let offer = Envelope {
        v: 1,
        id: MessageId::new("m1").unwrap(),
        from: DeviceId::new("alice").unwrap(),
        to: carol.clone(),
        call_id: call.clone(),
        kind: MessageKind::Offer,
        ts_ms: unix_ms(),
        enc: String::new(),
        ct: String::new(),
        sig: String::new(),
    };
    let far = unix_ms() + 3_600_000;
    store.enqueue(&offer, "{}", far, far).await.unwrap();
    let (vapid, _) = JwtKey::generate_es256().unwrap();
    let providers = Providers {
        webpush: Some(WebPush::new(
            vapid,
            "mailto:test@example.org".into(),
            reqwest::Client::new(),
            vec!["127.0.0.1".into()],
        )),
        ..Providers::default()
    };
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(30),
    };
    let pusher = Pusher::new(store.clone(), providers, policy);
    Setup {
        _dir: dir,
        store,
        pusher,
        pushes,
        ua,
        carol,
        call,
    }
}

fn message(call: &CallId, kind: PushKind) -> PushMessage {
    PushMessage {
        call_id: call.clone(),
        kind,
        ttl_s: 45,
    }
}

/// "wake" or "cancel", as the device would read it.
fn kind(ua: &UaKeys, r: &push_sink::Received) -> String {
    let plain = decrypt(ua, &r.body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    v["kind"].as_str().unwrap().to_owned()
}

/// Hang guard only.
async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within 30 s"))
}

/// Everything the push service has received so far, in order.
fn received(s: &mut Setup) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(r) = s.pushes.try_recv() {
        seen.push(kind(&s.ua, &r));
    }
    seen
}

/// Pushes a wake for the call, which the push service refuses once; returns
/// the push, in back-off by then.
async fn refused_wake(s: &mut Setup) -> tokio::task::JoinHandle<()> {
    let (pusher, carol, msg) = (
        s.pusher.clone(),
        s.carol.clone(),
        message(&s.call, PushKind::Wake),
    );
    let wake = tokio::spawn(async move { pusher.push_now(&carol, &msg).await });
    let first = guard("the first wake", s.pushes.recv()).await.unwrap();
    assert_eq!(kind(&s.ua, &first), "wake");
    wake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_wake_being_retried_and_lands_after_it() {
    let mut s = setup().await;
    // The first wake was refused; it is in back-off when the caller hangs up.
    let wake = refused_wake(&mut s).await;
    // The offer stays queued here: the cancel alone must stop the wake.
    guard(
        "the cancel push",
        s.pusher
            .push_now(&s.carol, &message(&s.call, PushKind::Cancel)),
    )
    .await;
    guard("the wake's end", wake).await.unwrap();
    assert_eq!(
        received(&mut s),
        ["cancel"],
        "after the refused wake, the push service gets the cancel and no wake after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_stops_retrying_once_its_offer_is_no_longer_queued() {
    let mut s = setup().await;
    let wake = refused_wake(&mut s).await;
    // Answered, or withdrawn by another node that pushed the cancel: this
    // pusher hears of it only through the database.
    assert_eq!(
        s.store
            .withdraw_offers(&s.carol, s.call.as_str())
            .await
            .unwrap(),
        1
    );
    guard("the wake's end", wake).await.unwrap();
    assert!(received(&mut s).is_empty(), "no wake retried");
}
