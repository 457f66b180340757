//! Path failure with real kernel networking: each endpoint lives in its own
//! network namespace, joined by two veth pairs (one IPv4, one IPv6) that the
//! test creates and removes. Taking the selected path's link down mid-call
//! moves media to the other pair after consent failure, through an ICE
//! restart.
//!
//! Needs root (`ip netns`); where namespaces cannot be made, this test says
//! why and passes: `transport_faults.rs` covers the same failover with an
//! in-process proxy everywhere. Addresses (10.77.4.0/24, fd77:6::/64) exist
//! only inside the test's own namespaces.

mod transport_support;

use sotto_engine::driver::TransportHandle;
use sotto_engine::ice::IceConfig;
use std::net::SocketAddr;
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

    /// Binds a UDP socket inside the namespace (a thread enters it, binds,
    /// and hands the socket back: a socket stays in the namespace it was made in).
    fn bind(&self, addr: SocketAddr) -> tokio::net::UdpSocket {
        let path = format!("/var/run/netns/{}", self.0);
        let sock = std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = std::net::UdpSocket::bind(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .join()
        .unwrap();
        tokio::net::UdpSocket::from_std(sock).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// Two namespaces joined by a v4 and a v6 veth pair; returns them and the
/// interface names on A's side.
fn topology() -> Result<(Netns, Netns, String, String), String> {
    let id = std::process::id() % 100_000;
    let a = Netns::new(format!("sotto-a-{id}"))?;
    let b = Netns::new(format!("sotto-b-{id}"))?;
    let (a4, b4, a6, b6) = (
        format!("a4-{id}"),
        format!("b4-{id}"),
        format!("a6-{id}"),
        format!("b6-{id}"),
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

#[tokio::test]
async fn link_down_moves_media_to_the_other_pair() {
    let (ns_a, ns_b, a4, a6) = match topology() {
        Ok(t) => t,
        Err(why) => {
            println!(
                "SKIPPED: network namespaces unavailable here ({why}); transport_faults.rs covers failover"
            );
            return;
        }
    };
    let cfg = |controlling| IceConfig {
        controlling,
        consent_interval: Duration::from_millis(300),
        consent_timeout: Duration::from_millis(1500),
        ..IceConfig::default()
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
