//! A transport that follows the network, told the network changed while
//! its old address still works, deletes the TURN allocation it made from
//! the old address (Refresh, LIFETIME 0, from the old socket) before it
//! lets that socket go. Before (found in review), the socket was dropped
//! first and the allocation stayed on the relay, holding a port and a
//! place of the user's quota, until it expired.

mod transport_support;

use sotto_engine::driver::{NetworkView, TransportHandle, UdpIo};
use sotto_engine::ice::{IceConfig, SignalMessage};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use transport_support::{Auth, ChanSignaller, Coturn};

type Log = Arc<Mutex<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>>;

/// A real socket on 127.0.0.1 that calls itself `shown` and logs its sends.
struct Mapped {
    sock: tokio::net::UdpSocket,
    shown: SocketAddr,
    log: Log,
}

impl UdpIo for Mapped {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shown)
    }
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.log
            .lock()
            .unwrap()
            .push((self.shown, to, buf.to_vec()));
        self.sock.send_to(buf, to).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.recv_from(buf).await
    }
}

struct View {
    ips: Arc<Mutex<Vec<IpAddr>>>,
    log: Log,
}

impl NetworkView for View {
    type Socket = Mapped;
    fn addresses(&self) -> Vec<IpAddr> {
        self.ips.lock().unwrap().clone()
    }
    fn route_source(&self, _: bool) -> Option<IpAddr> {
        None
    }
    fn bind(&self, addr: SocketAddr) -> io::Result<Mapped> {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.set_nonblocking(true)?;
        let port = s.local_addr()?.port();
        Ok(Mapped {
            sock: tokio::net::UdpSocket::from_std(s)?,
            shown: SocketAddr::new(addr.ip(), port),
            log: self.log.clone(),
        })
    }
}

fn is_refresh_request(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] == 0x00 && d[1] == 0x04
}

#[tokio::test]
async fn a_move_deletes_the_allocation_made_from_the_old_address() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let ips = Arc::new(Mutex::new(vec!["192.0.2.1".parse::<IpAddr>().unwrap()]));
    let log: Log = Arc::default();
    let view = View {
        ips: ips.clone(),
        log: log.clone(),
    };
    let cfg = IceConfig {
        relay_only: true,
        turn_servers: vec![turn.server("u", "p")],
        ..IceConfig::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let t = TransportHandle::bind_on(view, &[any], cfg, Box::new(ChanSignaller(tx))).unwrap();
    let old = t.local_addrs()[0];
    // Wait for the relayed candidate (allocation made from `old`).
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = rx.recv().await {
            if let SignalMessage::Candidate { candidate, .. } = m
                && candidate.contains("typ relay")
            {
                return;
            }
        }
    })
    .await
    .expect("no relayed candidate");
    let before = log.lock().unwrap().len();
    // Another network becomes the default; the old one is still up.
    ips.lock()
        .unwrap()
        .insert(0, "198.51.100.5".parse().unwrap());
    t.network_changed().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<_> = log.lock().unwrap()[before..].to_vec();
    let from_new = after
        .iter()
        .filter(|(l, _, _)| l.ip().to_string() == "198.51.100.5")
        .count();
    let deletions_from_old = after
        .iter()
        .filter(|(l, to, d)| *l == old && *to == turn.addr && is_refresh_request(d))
        .count();
    println!(
        "sent after the change: {} from the new socket, {} deletions from the old {old}",
        from_new, deletions_from_old
    );
    assert!(from_new > 0, "the transport did not move");
    let now = t.local_addrs();
    assert_eq!(now.len(), 1);
    assert_eq!(
        now[0].ip().to_string(),
        "198.51.100.5",
        "local_addrs follows the move"
    );
    assert!(
        deletions_from_old > 0,
        "the old allocation's deletion never left the old socket (still usable): it lives on at the relay until it expires"
    );
    t.shutdown().await;
}
