//! Path failure with real kernel networking: each endpoint lives in its own
//! network namespace, joined by two veth pairs (one IPv4, one IPv6) that the
//! test creates and removes. Taking the selected path's link down mid-call
//! moves media to the other pair after consent failure, through an ICE
//! restart.
//!
//! A host whose address changes mid-call (the address a transport bound
//! from `0.0.0.0` goes away, another comes) moves the call to the new one.
//!
//! Needs root (`ip netns`); where namespaces cannot be made, this test says
//! why and passes: `transport_faults.rs` covers the same failover with an
//! in-process proxy everywhere. Addresses (10.77.4.0/24, fd77:6::/64) exist
//! only inside the test's own namespaces.

mod transport_support;

use sotto_engine::driver::{NetworkView, TransportHandle};
use sotto_engine::ice::IceConfig;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};
use transport_support::{Call, assert_failover_by_restart, signalling};

/// A named network namespace, deleted on drop (which also deletes its veths).
struct Netns(String);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn new(name: String) -> Result<Self, String> {
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut v = vec!["-n", self.0.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// Binds a UDP socket inside the namespace.
    fn bind(&self, addr: SocketAddr) -> tokio::net::UdpSocket {
        self.view().bind(addr).unwrap()
    }

    /// The namespace as a transport that follows the network sees it.
    fn view(&self) -> NetnsView {
        NetnsView(self.0.clone())
    }
}

/// A namespace's addresses and sockets, for [`TransportHandle::bind_on`].
struct NetnsView(String);

impl NetnsView {
    /// Runs `f` on a thread inside the namespace (a socket stays in the
    /// namespace it was made in; interface addresses are the namespace's).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl NetworkView for NetnsView {
    type Socket = tokio::net::UdpSocket;

    fn addresses(&self) -> Vec<IpAddr> {
        self.inside(sotto_engine::ice::host_addresses)
    }

    fn route_source(&self, v4: bool) -> Option<IpAddr> {
        self.inside(move || sotto_engine::driver::route_source(v4))
    }

    fn bind(&self, addr: SocketAddr) -> std::io::Result<Self::Socket> {
        let s = self.inside(move || {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })?;
        tokio::net::UdpSocket::from_std(s)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// Two namespaces joined by a v4 and a v6 veth pair; returns them and the
/// interface names on A's side.
/// `tag` (one letter) keeps the names of tests running at once apart.
fn topology(tag: &str) -> Result<(Netns, Netns, String, String), String> {
    let id = std::process::id() % 100_000;
    let a = Netns::new(format!("sotto-{tag}a-{id}"))?;
    let b = Netns::new(format!("sotto-{tag}b-{id}"))?;
    let (a4, b4, a6, b6) = (
        format!("{tag}a4-{id}"),
        format!("{tag}b4-{id}"),
        format!("{tag}a6-{id}"),
        format!("{tag}b6-{id}"),
    );
    for (x, y) in [(&a4, &b4), (&a6, &b6)] {
        ip(&[
            "link", "add", x, "netns", &a.0, "type", "veth", "peer", "name", y, "netns", &b.0,
        ])?;
        a.ip(&["link", "set", x, "up"])?;
        b.ip(&["link", "set", y, "up"])?;
    }
    a.ip(&["addr", "add", "10.77.4.1/24", "dev", &a4])?;
    b.ip(&["addr", "add", "10.77.4.2/24", "dev", &b4])?;
    // nodad: usable at once, no duplicate-address-detection wait.
    a.ip(&["addr", "add", "fd77:6::1/64", "dev", &a6, "nodad"])?;
    b.ip(&["addr", "add", "fd77:6::2/64", "dev", &b6, "nodad"])?;
    Ok((a, b, a4, a6))
}

/// [`topology`], or `None` (and why, printed) where namespaces cannot be made.
fn topology_or_skip(tag: &str) -> Option<(Netns, Netns, String, String)> {
    match topology(tag) {
        Ok(t) => Some(t),
        Err(why) => {
            println!(
                "SKIPPED: network namespaces unavailable here ({why}); transport_faults.rs covers failover, call_sim.rs moves"
            );
            None
        }
    }
}

/// Short consent timers, so that faults are noticed quickly.
fn cfg(controlling: bool) -> IceConfig {
    IceConfig {
        controlling,
        consent_interval: Duration::from_millis(300),
        consent_timeout: Duration::from_millis(1500),
        ..IceConfig::default()
    }
}

#[tokio::test]
async fn link_down_moves_media_to_the_other_pair() {
    let Some((ns_a, ns_b, a4, a6)) = topology_or_skip("l") else {
        return;
    };
    let (sa, from_a, sb, from_b) = signalling();
    let a_socks = vec![
        ns_a.bind("10.77.4.1:0".parse().unwrap()),
        ns_a.bind("[fd77:6::1]:0".parse().unwrap()),
    ];
    let b_socks = vec![
        ns_b.bind("10.77.4.2:0".parse().unwrap()),
        ns_b.bind("[fd77:6::2]:0".parse().unwrap()),
    ];
    let a = TransportHandle::start(a_socks, cfg(true), Box::new(sa)).unwrap();
    let b = TransportHandle::start(b_socks, cfg(false), Box::new(sb)).unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(call.connect(Duration::from_secs(20)).await);
    assert!(call.exchange(1, 20, 18).await, "no media before the fault");
    let first = call.a_selected.unwrap();
    let dead_v4 = first.remote.is_ipv4();
    ns_a.ip(&["link", "set", if dead_v4 { &a4 } else { &a6 }, "down"])
        .unwrap();
    let cut = Instant::now();
    let moved = call
        .run_until(Duration::from_secs(30), |c| {
            c.a_selected.is_some_and(|p| p.remote.is_ipv4() != dead_v4)
        })
        .await;
    assert!(moved, "no failover: {:?}", call.a_events);
    assert!(
        call.exchange(2, 50, 45).await,
        "media did not resume on the other pair"
    );
    let f = assert_failover_by_restart(&call, cut).await;
    println!(
        "link down -> consent loss and ICE restart after {:?}; restart -> new pair after {:?}",
        f.to_restart, f.restart_to_selected
    );
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
}

/// A binds from `0.0.0.0`; mid-call its address 10.77.4.1 is replaced by
/// 10.77.4.3 (a new DHCP lease, another network). Within a look at the
/// interfaces (2 s) A moves to the new address, ICE restarts there, and
/// media flows again both ways. Before, A kept its socket on the address
/// that was gone and the call was lost. The callee B moves the same way
/// as the caller (`call_sim.rs`).
#[tokio::test]
async fn an_address_that_goes_away_moves_the_call() {
    let Some((ns_a, ns_b, a4, _)) = topology_or_skip("m") else {
        return;
    };
    let (sa, from_a, sb, from_b) = signalling();
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let a = TransportHandle::bind_on(ns_a.view(), &[any], cfg(true), Box::new(sa)).unwrap();
    assert_eq!(a.local_addrs()[0].ip().to_string(), "10.77.4.1");
    let b_socks = vec![ns_b.bind("10.77.4.2:0".parse().unwrap())];
    let b = TransportHandle::start(b_socks, cfg(false), Box::new(sb)).unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(call.connect(Duration::from_secs(20)).await);
    assert!(call.exchange(1, 20, 18).await, "no media before the move");

    // Gone first, then the new one (Wi-Fi lost, cellular up a moment
    // later; deleting a primary address would take a secondary with it).
    ns_a.ip(&["addr", "del", "10.77.4.1/24", "dev", &a4])
        .unwrap();
    ns_a.ip(&["addr", "add", "10.77.4.3/24", "dev", &a4])
        .unwrap();
    let cut = Instant::now();
    let new_ip: IpAddr = "10.77.4.3".parse().unwrap();
    let moved = call
        .run_until(Duration::from_secs(20), |c| {
            c.a_selected.is_some_and(|p| p.socket.ip() == new_ip)
                && c.b_selected.is_some_and(|p| p.remote.ip() == new_ip)
        })
        .await;
    assert!(moved, "A did not move: {:?}", call.a_events);
    println!("address replaced -> new pair after {:?}", cut.elapsed());
    assert!(
        call.exchange(2, 50, 45).await,
        "media did not resume from the new address"
    );
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
}
