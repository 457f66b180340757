//! The key directory cannot swap a device's sealing key: clients check the
//! device's own registration signature over both keys.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use sotto_signalling::auth::register_bytes;
use sotto_signalling::client::{ClientError, SignalClient};
use sotto_signalling::seal::DeviceIdentity;
use sotto_signalling::server;
use sotto_signalling::store::Store;
use sotto_signalling::util::unix_ms;

/// A directory on loopback that answers every key lookup with `answer`.
async fn directory(answer: serde_json::Value) -> String {
    let app = Router::new().route(
        "/v1/devices/{id}/keys",
        get(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    common::serve(app).await
}

#[tokio::test]
async fn a_directory_answer_with_a_swapped_seal_key_is_refused() {
    let bob = DeviceIdentity::generate();
    let server_key = DeviceIdentity::generate();
    let (sign, seal) = (bob.public().sign_b64(), bob.public().seal_b64());
    let sig = bob.sign(&register_bytes(&sign, &seal));
    let alice = SignalClient::new("", Arc::new(DeviceIdentity::generate()));
    let lookup = |base: String| {
        let alice = SignalClient::new(base, alice.identity().clone());
        let id = bob.device_id();
        async move { alice.device_keys("t", &id).await }
    };

    // Bob's own signed answer is taken.
    let honest =
        directory(serde_json::json!({"sign_key": sign, "seal_key": seal, "sig": sig})).await;
    assert_eq!(lookup(honest).await.unwrap(), *bob.public());

    // Bob's signing key and signature, the server's sealing key.
    let swapped = directory(serde_json::json!({
        "sign_key": sign,
        "seal_key": server_key.public().seal_b64(),
        "sig": sig,
    }))
    .await;
    let err = lookup(swapped).await.unwrap_err();
    assert!(
        matches!(err, ClientError::KeyBinding(ref d) if *d == bob.device_id()),
        "{err:?}"
    );

    // No signature at all.
    let unsigned =
        directory(serde_json::json!({"sign_key": sign, "seal_key": seal, "sig": null})).await;
    assert!(matches!(
        lookup(unsigned).await,
        Err(ClientError::KeyBinding(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_registered_without_a_kept_signature_must_register_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let db = cfg.database_url.clone();
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;

    // A row as it was before signatures were kept.
    let bob = SignalClient::new(&base, Arc::new(DeviceIdentity::generate()));
    let p = bob.identity().public();
    let store = Store::open(&db).await.unwrap();
    store
        .register_device(&bob.device_id(), &p.sign_b64(), &p.seal_b64(), unix_ms())
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(
        alice.device_keys(&atok, &bob.device_id()).await,
        Err(ClientError::KeyBinding(_))
    ));

    // Registering again stores the signature, and the keys verify.
    bob.register().await.unwrap();
    assert_eq!(
        alice.device_keys(&atok, &bob.device_id()).await.unwrap(),
        *p
    );
    srv.shutdown().await;
}
