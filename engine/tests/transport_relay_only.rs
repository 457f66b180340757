//! Relay-only mode ("always relay calls"): the endpoint advertises only its
//! relayed candidate and no datagram leaves toward the peer directly, even
//! though the peer offers host candidates that would work.

mod transport_support;

use sotto_engine::driver::{TransportHandle, UdpIo};
use sotto_engine::ice::{IceConfig, SignalMessage};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use transport_support::{Auth, Call, Coturn, signalling};

/// A UDP socket that records every destination it sends to.
struct Recording {
    inner: UdpSocket,
    sent_to: Arc<Mutex<Vec<SocketAddr>>>,
}

impl UdpIo for Recording {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send {
        self.sent_to.lock().unwrap().push(to);
        self.inner.send_to(buf, to)
    }

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send {
        self.inner.recv_from(buf)
    }
}

#[tokio::test]
async fn relay_only_never_sends_directly_to_the_peer() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let (sa, from_a, sb, from_b) = signalling();
    let sent_to = Arc::new(Mutex::new(Vec::new()));
    let sock = Recording {
        inner: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        sent_to: sent_to.clone(),
    };
    let a_cfg = IceConfig {
        controlling: true,
        relay_only: true,
        turn_servers: vec![turn.server("u", "p")],
        ..IceConfig::default()
    };
    let a = TransportHandle::start(vec![sock], a_cfg, Box::new(sa)).unwrap();
    // The peer is an ordinary endpoint with a reachable host candidate.
    let b_cfg = IceConfig {
        controlling: false,
        ..IceConfig::default()
    };
    let b = TransportHandle::bind(&["127.0.0.1:0".parse().unwrap()], b_cfg, Box::new(sb))
        .await
        .unwrap();
    let b_addr = b.local_addrs()[0];
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(
        call.connect(Duration::from_secs(30)).await,
        "relay-only call did not connect: {:?}",
        call.a_events
    );
    assert!(call.a_selected.unwrap().relayed);
    assert!(call.exchange(3, 50, 45).await, "media did not flow");
    // The peer sees A only at the relay: its selected remote is coturn's relayed address.
    let b_remote = call.b_selected.unwrap().remote;
    assert_eq!(b_remote.ip(), turn.addr.ip());
    assert_ne!(b_remote.port(), turn.addr.port());

    // A advertised nothing but relayed candidates, without its host address.
    let cands: Vec<&String> = call
        .a_signals
        .iter()
        .filter_map(|m| match m {
            SignalMessage::Candidate { candidate, .. } => Some(candidate),
            _ => None,
        })
        .collect();
    assert!(!cands.is_empty());
    assert!(
        cands
            .iter()
            .all(|c| c.contains("typ relay") && c.contains("raddr 0.0.0.0 rport 0")),
        "{cands:?}"
    );

    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
    // Every datagram A sent went to the TURN server; none to the peer.
    let dests = sent_to.lock().unwrap().clone();
    assert!(dests.len() >= 50, "only {} datagrams recorded", dests.len());
    assert!(
        dests.iter().all(|d| *d == turn.addr),
        "direct packets: {:?}",
        dests
            .iter()
            .filter(|d| **d != turn.addr)
            .collect::<Vec<_>>()
    );
    assert!(!dests.contains(&b_addr));
}
