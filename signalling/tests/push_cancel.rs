//! A wake being retried stops when its call is cancelled or its offer is
//! no longer queued, and a cancel reaches the push service after the last
//! wake of its call: the service keeps one message per `Topic` (RFC 8030
//! §5.4), so a wake arriving after the cancel would replace it and the
//! phone would ring for a call that ended. That holds across nodes too,
//! which share only the database.

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
    script: push_sink::Script,
    holds: push_sink::Holds,
    ua: UaKeys,
    carol: DeviceId,
    call: CallId,
}

/// Carol has one Web Push subscription, at a push service that answers
/// her first push 503 with `Retry-After: 1`, then 201; an offer of `call-x`
/// is queued for her.
async fn setup() -> Setup {
    let (sink, pushes, script, holds) = push_sink::start_holding().await;
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
    queue(&store, &carol, &call, MessageKind::Offer, "m1").await;
    let pusher = node(&store);
    Setup {
        _dir: dir,
        store,
        pusher,
        pushes,
        script,
        holds,
        ua,
        carol,
        call,
    }
}

/// Queues a message of `kind` from Alice for `to`.
async fn queue(store: &Store, to: &DeviceId, call: &CallId, kind: MessageKind, id: &str) {
    let env = Envelope {
        v: 1,
        id: MessageId::new(id).unwrap(),
        from: DeviceId::new("alice").unwrap(),
        to: to.clone(),
        call_id: call.clone(),
        kind,
        ts_ms: unix_ms(),
        enc: String::new(),
        ct: String::new(),
        sig: String::new(),
    };
    let far = unix_ms() + 3_600_000;
    store.enqueue(&env, "{}", far, far).await.unwrap();
}

/// A signald node's pusher over the shared database.
fn node(store: &Store) -> Pusher {
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
    Pusher::new(store.clone(), providers, policy)
}

/// The caller hangs up through another node: the cancel message is
/// queued for Carol and her offer withdrawn; returns that node's cancel
/// push, which does not know of this node's wake.
async fn cancelled_elsewhere(s: &Setup) -> impl std::future::Future<Output = ()> + use<> {
    queue(&s.store, &s.carol, &s.call, MessageKind::Cancel, "m2").await;
    let withdrawn = s
        .store
        .withdraw_offers(&s.carol, s.call.as_str())
        .await
        .unwrap();
    assert_eq!(withdrawn, 1);
    let (other, carol, msg) = (
        node(&s.store),
        s.carol.clone(),
        message(&s.call, PushKind::Cancel),
    );
    async move { other.push_now(&carol, &msg).await }
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

/// Node A's wake is still on its way to the push service when the caller's
/// cancel reaches node B, which pushes its cancel at once: the cancel lands
/// first. A follows its wake with a cancel, so the service keeps a cancel.
/// Before, the wake landed last and the phone rang for a call that ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_overtaken_by_another_nodes_cancel_is_followed_by_one() {
    let mut s = setup().await;
    s.script
        .lock()
        .unwrap()
        .insert("push/carol".into(), vec![(201, None)]);
    let held = push_sink::hold_next(&s.holds, "push/carol");
    let (pusher, carol, msg) = (
        s.pusher.clone(),
        s.carol.clone(),
        message(&s.call, PushKind::Wake),
    );
    let wake = tokio::spawn(async move { pusher.push_now(&carol, &msg).await });
    guard("the wake on its way", held.arrived).await.unwrap();
    guard("node B's cancel", cancelled_elsewhere(&s).await).await;
    held.release.send(()).unwrap();
    guard("the wake's end", wake).await.unwrap();
    assert_eq!(received(&mut s), ["cancel", "wake", "cancel"]);
}

/// A wake whose task starts only after another node withdrew its offer is
/// not sent, and no cancel follows it (that node sent one). Before, the
/// wake went out after the cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_for_an_offer_already_withdrawn_is_not_sent() {
    let mut s = setup().await;
    s.script
        .lock()
        .unwrap()
        .insert("push/carol".into(), vec![(201, None)]);
    guard("node B's cancel", cancelled_elsewhere(&s).await).await;
    guard(
        "the wake",
        s.pusher
            .push_now(&s.carol, &message(&s.call, PushKind::Wake)),
    )
    .await;
    assert_eq!(received(&mut s), ["cancel"]);
}
