//! Wires settings, shared state, UDP workers and TCP/TLS listeners together.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::auth::Nonces;
use crate::config::Settings;
use crate::core::{Config, Family, Relay};
use crate::relay_socket::ReservedSockets;
use crate::shared::{Quotas, Shared};
use crate::{tcp, udp};

/// What every core of this server is built from.
#[derive(Debug)]
pub struct Ctx {
    /// The checked settings.
    pub settings: Settings,
    /// Quotas, credentials, nonce key.
    pub shared: Arc<Shared>,
    /// Ports held for RESERVATION-TOKEN.
    pub reserved: Arc<ReservedSockets>,
    /// Caps on TCP/TLS connections, shared by every TCP and TLS listener.
    pub tcp_connections: Arc<tcp::ConnectionLimits>,
    epoch: Instant,
    unix_at_epoch: u64,
}

impl Ctx {
    /// A core configuration from the settings.
    pub fn core_config(&self) -> Config {
        let s = &self.settings;
        let mut c = Config::new(&s.realm, self.epoch, self.unix_at_epoch);
        c.bps_per_allocation = s.bps_per_allocation;
        c.unauth_per_ip_per_s = s.unauth_rate;
        c.policy = s.policy.clone();
        c.families = [(s.relay_v4, Family::V4), (s.relay_v6, Family::V6)]
            .into_iter()
            .filter_map(|(ip, f)| ip.map(|_| f))
            .collect();
        c
    }
}

/// This host's interface addresses (getifaddrs), both families.
pub fn host_addresses() -> std::io::Result<Vec<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(addrs
        .filter_map(|i| {
            let a = i.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect())
}

/// Refuses this host's interface addresses as peers if a listener is on a
/// wildcard address (concrete listen, relay and external IPs are refused
/// from the settings already); returns how many are refused.
fn refresh_host_addresses(settings: &Settings) -> std::io::Result<usize> {
    if !settings.listens_on_wildcard() {
        return Ok(0);
    }
    let ips = host_addresses()?;
    let n = ips.len();
    settings.policy.set_host_addresses(ips);
    Ok(n)
}

/// A running relay.
pub struct Server {
    ctx: Arc<Ctx>,
    workers: Vec<udp::WorkerHandle>,
    stop_udp: Arc<AtomicBool>,
    stop_tcp: watch::Sender<bool>,
    tcp_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Bound UDP listen addresses.
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP listen addresses.
    pub tcp_addrs: Vec<SocketAddr>,
    /// Bound TLS listen addresses.
    pub tls_addrs: Vec<SocketAddr>,
}

impl Server {
    /// Binds everything and starts the workers; TCP/TLS tasks run on the
    /// current tokio runtime.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        // The same checks as --check-config: refuse to start (rather than
        // answer every Allocate with 508) if a relay_ip cannot be bound.
        let tls = settings.preflight()?;
        let credentials = settings.credentials().await?;
        if credentials.counts() == (0, 0) {
            tracing::warn!("no credentials loaded: nobody can allocate until a reload adds some");
        }
        let mut nonce_key = [0u8; 32];
        getrandom::fill(&mut nonce_key).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
        let shared = Arc::new(
            Shared::new(
                credentials,
                Nonces::new(nonce_key, settings.nonce_lifetime.as_secs()),
                Quotas::new(settings.max_allocations, settings.max_allocations_per_user),
            )
            // One budget for UDP workers and every TCP/TLS connection.
            .with_bps_total(settings.bps_total),
        );
        let tcp_connections = Arc::new(tcp::ConnectionLimits::new(
            settings.max_tcp_connections,
            settings.max_tcp_connections_per_ip,
        ));
        // Before any core exists: a wildcard listener must not let a client
        // reach this host's own addresses from the first request on.
        refresh_host_addresses(&settings).context("reading interface addresses")?;
        // Until the drivers pass the clock they read with their input.
        let unix_at_epoch = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let ctx = Arc::new(Ctx {
            settings,
            shared,
            reserved: Arc::default(),
            tcp_connections,
            epoch: Instant::now(),
            unix_at_epoch,
        });
        let s = &ctx.settings;

        // UDP: port 0 is resolved first; every worker then shares the port.
        let mut per_worker: Vec<Vec<std::net::UdpSocket>> =
            (0..s.workers).map(|_| Vec::new()).collect();
        let mut udp_addrs = Vec::new();
        for addr in &s.listen {
            let addr = udp::resolve_port_zero(*addr).with_context(|| format!("bind UDP {addr}"))?;
            let first = udp::bind_reuseport(addr).with_context(|| format!("bind UDP {addr}"))?;
            let bound = first.local_addr()?;
            udp_addrs.push(bound);
            per_worker[0].push(first);
            for sockets in per_worker.iter_mut().skip(1) {
                sockets
                    .push(udp::bind_reuseport(bound).with_context(|| format!("bind UDP {bound}"))?);
            }
        }
        let stop_udp = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        if !udp_addrs.is_empty() {
            let advertise_ctx = ctx.clone();
            let advertise: Arc<dyn Fn(SocketAddr) -> SocketAddr + Send + Sync> =
                Arc::new(move |a| advertise_ctx.settings.advertised(a));
            for (i, listeners) in per_worker.into_iter().enumerate() {
                let setup = udp::WorkerSetup {
                    listeners,
                    core: Relay::new(ctx.core_config(), ctx.shared.clone()),
                    relay_ips: (s.relay_v4, s.relay_v6),
                    advertise: advertise.clone(),
                    shutdown: stop_udp.clone(),
                    reserved: ctx.reserved.clone(),
                };
                workers.push(udp::spawn(setup, format!("relay-udp-{i}"))?);
            }
        }

        let (stop_tcp, stop_rx) = watch::channel(false);
        let mut tcp_tasks = Vec::new();
        let mut tcp_addrs = Vec::new();
        for addr in &s.listen_tcp {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind TCP {addr}"))?;
            tcp_addrs.push(l.local_addr()?);
            tcp_tasks.push(tokio::spawn(tcp::serve(
                l,
                None,
                ctx.clone(),
                stop_rx.clone(),
            )));
        }
        let mut tls_addrs = Vec::new();
        if let Some(acceptor) = tls {
            for addr in &s.listen_tls {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind TLS {addr}"))?;
                tls_addrs.push(l.local_addr()?);
                tcp_tasks.push(tokio::spawn(tcp::serve(
                    l,
                    Some(acceptor.clone()),
                    ctx.clone(),
                    stop_rx.clone(),
                )));
            }
        }
        Ok(Server {
            ctx,
            workers,
            stop_udp,
            stop_tcp,
            tcp_tasks,
            udp_addrs,
            tcp_addrs,
            tls_addrs,
        })
    }

    /// Re-reads the users file, secrets and database (SIGHUP). On error
    /// (an unreadable source, an empty secret or password, …) the old
    /// credentials stay in force and the failure is counted.
    pub async fn reload_credentials(&self) -> anyhow::Result<(usize, usize)> {
        let c = self
            .ctx
            .settings
            .credentials()
            .await
            .inspect_err(|_| crate::metrics::reload_failed())?;
        let counts = c.counts();
        let (_, secrets_before) = self.ctx.shared.credentials().counts();
        self.ctx.shared.replace_credentials(c);
        if secrets_before > 0 && counts.1 == 0 {
            // An emptied secrets file is valid, but locks out every client
            // of the signalling server's TURN REST credentials.
            tracing::warn!(
                secrets_before,
                "credentials reloaded without any TURN REST secret: every REST credential is refused now"
            );
        }
        Ok(counts)
    }

    /// Re-reads this host's interface addresses into the peer policy when
    /// a listener is on a wildcard address (SIGHUP: addresses come and go
    /// with DHCP, VPNs and containers). Returns how many are refused; on
    /// error the old list stays.
    pub fn refresh_host_addresses(&self) -> std::io::Result<usize> {
        refresh_host_addresses(&self.ctx.settings)
    }

    /// Live allocations across all workers and connections.
    pub fn allocations(&self) -> usize {
        self.ctx.shared.quotas.total()
    }

    /// Stops accepting, lets workers flush their queued answers, and joins them.
    pub async fn shutdown(self) {
        let _ = self.stop_tcp.send(true);
        self.stop_udp.store(true, Ordering::Relaxed);
        for w in &self.workers {
            let _ = w.waker.wake();
        }
        for t in self.tcp_tasks {
            let _ = t.await;
        }
        for w in self.workers {
            let _ = tokio::task::spawn_blocking(move || w.thread.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    /// The address this host would send from towards the Internet: an
    /// interface address found without getifaddrs (a UDP connect sends
    /// nothing). None without a route.
    fn route_source() -> Option<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect("198.51.100.1:9").ok()?;
        Some(s.local_addr().ok()?.ip())
    }

    /// Listening on 0.0.0.0, the relay names none of its addresses; its
    /// interfaces' addresses (here the route source, and every one
    /// getifaddrs lists) are refused as peers by default all the same.
    #[tokio::test]
    async fn wildcard_listener_refuses_this_hosts_addresses() {
        let settings = Options {
            listen: vec!["0.0.0.0:0".parse().unwrap()],
            relay_ip: vec!["127.0.0.1".parse().unwrap()],
            auth_secrets: vec!["a-long-enough-secret".into()],
            workers: Some(1),
            ..Options::default()
        }
        .resolve()
        .unwrap();
        assert!(settings.listens_on_wildcard());
        let server = Server::start(settings).await.unwrap();
        let policy = server.ctx.core_config().policy;
        let mut own = host_addresses().unwrap();
        assert!(!own.is_empty());
        match route_source() {
            Some(ip) => own.push(ip),
            None => eprintln!("no route: checking getifaddrs' addresses only"),
        }
        for ip in own {
            assert!(policy.is_host_address(ip), "{ip} is not known as ours");
            assert!(!policy.permits(ip), "{ip} is accepted as a peer");
        }
        assert!(server.refresh_host_addresses().unwrap() > 0);
        server.shutdown().await;
    }
}
