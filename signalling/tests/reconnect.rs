//! The client library rides out a server outage: messages sent while the
//! server is down are kept, resent after reconnecting (with back-off), and
//! delivered once.

mod common;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_are_resent_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    let srv = server::start(cfg.clone(), None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "connected", |e| *e == ClientEvent::Connected).await;

    // The server goes away; Alice keeps sending.
    cfg.listen = srv.addr;
    srv.shutdown().await;
    common::wait_for(&mut aconn, "disconnected", |e| {
        *e == ClientEvent::Disconnected
    })
    .await;
    let call = CallId::new("outage").unwrap();
    let offer = aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    let ice = aconn
        .send(
            (&bob_id, &bob_keys),
            call,
            MessageKind::Ice,
            &CallPayload::default(),
        )
        .unwrap();

    // Back on the same address: the driver reconnects and resends both.
    let srv = server::start(cfg, None).await.unwrap();
    common::wait_for(&mut aconn, "offer accepted", |e| common::stored(e, &offer)).await;
    common::wait_for(&mut aconn, "ice accepted", |e| common::stored(e, &ice)).await;
    let mut bconn = bob.connect(true);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        if let ClientEvent::Message { envelope, .. } =
            common::wait_for(&mut bconn, "messages", |e| {
                matches!(e, ClientEvent::Message { .. })
            })
            .await
        {
            kinds.push(envelope.kind);
        }
    }
    assert_eq!(kinds, [MessageKind::Offer, MessageKind::Ice]);
    srv.shutdown().await;
}

/// A delivered message whose sender's keys cannot be fetched for a passing
/// reason (here the session behind the lookup is gone: 401) is neither
/// acknowledged nor dropped: the client reconnects, and the server's
/// redelivery is opened once the keys can be had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_key_lookup_leaves_the_message_for_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let db = cfg.database_url.clone();
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    let mut bconn = bob.connect(true);
    common::wait_for(&mut aconn, "alice connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    common::wait_for(&mut bconn, "bob connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;

    // Every session ends; the open WebSockets stay up, but Bob's lookup of
    // Alice's keys will be refused until he logs in again.
    let store = sotto_signalling::store::Store::open(&db).await.unwrap();
    store.sweep(u64::MAX / 2).await.unwrap();
    store.close().await;

    let sent = aconn
        .send(
            (&bob_id, &bob_keys),
            CallId::new("lookup").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    match common::wait_for(&mut bconn, "the offer, or its loss", |e| {
        matches!(e, ClientEvent::Message { .. } | ClientEvent::Dropped(_))
    })
    .await
    {
        ClientEvent::Message { envelope, .. } => assert_eq!(envelope.id, sent),
        other => panic!("the offer was dropped: {other:?}"),
    }
    srv.shutdown().await;
}

/// A TCP hop to the server that can go silent: its connections stay open
/// but carry nothing more (what a network that changed under a connection
/// looks like from the device). New connections pass.
struct SilenceableHop {
    addr: std::net::SocketAddr,
    silenced: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>,
}

impl SilenceableHop {
    /// The hop's listener; devices reach the server at its address.
    async fn bind() -> tokio::net::TcpListener {
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    /// Forwards what `listener` accepts to `server`.
    fn start(listener: tokio::net::TcpListener, server: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = listener.local_addr().unwrap();
        let silenced: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let flags = silenced.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = tokio::net::TcpStream::connect(server).await else {
                    continue;
                };
                let quiet = Arc::new(AtomicBool::new(false));
                flags.lock().unwrap().push(quiet.clone());
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                for (mut from, mut to) in [(cr, uw), (ur, cw)] {
                    let quiet = quiet.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if quiet.load(Ordering::SeqCst) {
                                // Hold both ends open; pass nothing.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { addr, silenced }
    }

    /// Silences every connection made so far.
    fn silence(&self) {
        for f in self.silenced.lock().unwrap().iter() {
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Waits until `conn` drops its connection and makes a new one.
async fn reconnects(conn: &mut sotto_signalling::client::Connection) {
    common::wait_for(conn, "the connection dropped", |e| {
        *e == ClientEvent::Disconnected
    })
    .await;
    common::wait_for(conn, "connected again", |e| *e == ClientEvent::Connected).await;
}

/// The device's connection goes silent without closing (its network
/// changed): the client's pings go unanswered, it takes the connection
/// for dead and connects again. Before, it waited on the dead connection
/// forever, and calls reached it only by push, or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let listener = SilenceableHop::bind().await;
    let mut cfg = common::config(dir.path());
    // Devices log in to the hop's origin.
    cfg.public_origins = vec![format!("http://{}", listener.local_addr().unwrap())];
    let srv = server::start(cfg, None).await.unwrap();
    let hop = SilenceableHop::start(listener, srv.addr);
    let (bob, _) = common::device(&format!("http://{}", hop.addr)).await;
    let bob = bob.with_ping_interval(std::time::Duration::from_millis(200));
    let mut conn = bob.connect(true);
    common::wait_for(&mut conn, "connected", |e| *e == ClientEvent::Connected).await;
    hop.silence();
    reconnects(&mut conn).await;
    srv.shutdown().await;
}

/// A push while connected means the server does not see this connection
/// (it pushes only to devices it has no connection of): the client connects
/// again at once. A push that came before the connection changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_while_connected_replaces_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let (bob, _) = common::device(&format!("http://{}", srv.addr)).await;
    let mut conn = bob.connect(false);
    conn.on_push_received();
    common::wait_for(&mut conn, "connected", |e| *e == ClientEvent::Connected).await;
    conn.on_push_received();
    reconnects(&mut conn).await;
    srv.shutdown().await;
}
