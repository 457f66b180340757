//! A server behind TLS (`https://`, as an operator runs signald behind a
//! TLS-terminating proxy): login over HTTPS and the WebSocket over `wss://`
//! both work, with the deployment's own CA added to the client's roots,
//! and a certificate the client does not trust is refused.

mod common;

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sotto_signalling::client::{ClientError, ClientEvent, SignalClient};
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use sotto_signalling::server;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (its PEM) and a `localhost` certificate it issued, as a TLS
/// acceptor.
fn ca_and_acceptor() -> (String, TlsAcceptor) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

/// Terminates TLS on `listener` and forwards each connection to
/// `upstream`.
fn tls_proxy(listener: TcpListener, acceptor: TlsAcceptor, upstream: std::net::SocketAddr) {
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_tls_is_reached_over_https_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = proxy.local_addr().unwrap().port();
    let base = format!("https://localhost:{port}");
    // Devices sign their logins for the proxy's https: origin, which
    // signald (speaking plain HTTP behind it) must be told it answers to.
    let mut cfg = common::config(dir.path());
    cfg.public_origins = vec![base.clone()];
    let srv = server::start(cfg, None).await.unwrap();
    let (ca_pem, acceptor) = ca_and_acceptor();
    tls_proxy(proxy, acceptor, srv.addr);

    // Without the deployment's CA the certificate is not trusted.
    let stranger = SignalClient::new(&base, Arc::new(DeviceIdentity::generate()));
    assert!(matches!(
        stranger.register().await,
        Err(ClientError::Http(_))
    ));
    assert!(matches!(
        SignalClient::with_extra_roots(
            &base,
            stranger.identity().clone(),
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        ),
        Err(ClientError::Tls(_))
    ));

    let client = |pem: &str| {
        SignalClient::with_extra_roots(&base, Arc::new(DeviceIdentity::generate()), pem.as_bytes())
            .unwrap()
    };
    let (alice, bob) = (client(&ca_pem), client(&ca_pem));
    for c in [&alice, &bob] {
        c.register().await.expect("register over https");
    }
    let atok = alice.login().await.expect("login over https");
    let bob_keys = alice.device_keys(&atok, &bob.device_id()).await.unwrap();

    // The WebSocket runs over TLS too: a message goes through it.
    let mut bconn = bob.connect(true);
    common::wait_for(&mut bconn, "bob connected over wss", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "alice connected over wss", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let offer = CallPayload {
        zrtp_hash: Some("1.10 0123abcd".into()),
        ..Default::default()
    };
    let call = CallId::new("call-over-tls").unwrap();
    aconn
        .send(
            (&bob.device_id(), &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &offer,
        )
        .unwrap();
    let (envelope, payload) = common::next_message(&mut bconn, "offer over wss").await;
    assert_eq!((envelope.call_id, envelope.from), (call, alice.device_id()));
    assert_eq!(*payload, offer);
}
