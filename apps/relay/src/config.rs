//! Server settings: a TOML file, overridden by flags and `SOTTO_RELAY_*`
//! environment variables (clap reads both), checked into [`Settings`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::auth::Credentials;
use crate::policy::PeerPolicy;
use crate::userdb::{self, DatabaseUrl};

/// Errors in the configuration. Each one's text carries its cause's, and
/// none reports that cause again as its `source()`: `{:#}` and anyhow's
/// `Caused by:` would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The TOML does not parse or has unknown keys.
    #[error("config file: {0}")]
    Toml(toml::de::Error),
    /// The users file is malformed (the text names the file and line).
    #[error(transparent)]
    Users(#[from] crate::auth::CredentialError),
    /// The signalling database could not be read.
    #[error(transparent)]
    UserDb(#[from] userdb::UserDbError),
    /// A TURN REST secret is empty: anyone could compute the passwords.
    #[error("{setting}: empty TURN REST secret (anyone could compute the passwords)")]
    EmptySecret {
        /// Where it came from: the setting, and the entry or line.
        setting: String,
    },
    /// A number outside what the setting can mean.
    #[error("{setting} = {value}: must be {expected}")]
    OutOfRange {
        /// The setting (its TOML key).
        setting: &'static str,
        /// The value given.
        value: u64,
        /// What is accepted.
        expected: &'static str,
    },
    /// A setting is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        ConfigError::Toml(e)
    }
}

/// The smallest bandwidth cap, bytes per second: one 1500-byte packet.
/// A bucket holds one second of its rate, so a packet larger than the cap
/// could never pass; a lower cap would silently drop everything.
pub const MIN_BPS: u64 = 1500;
/// Nonce lifetimes accepted, in seconds: shorter ones make clients loop on
/// 438 Stale Nonce; longer ones defeat the point of expiring them.
pub const NONCE_LIFETIME_S: std::ops::RangeInclusive<u64> = 30..=86_400;

/// Secrets shorter than this are accepted (coturn deployments may have
/// them) but logged as weak: they can be brute-forced from one
/// observed username and password.
pub const SHORT_SECRET: usize = 16;

/// The TOML file and the command line share these fields; every field is
/// optional so that flags can override a file field by field.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Authentication realm.
    #[arg(long, env = "SOTTO_RELAY_REALM")]
    pub realm: Option<String>,
    /// UDP listen addresses (default 0.0.0.0:3478).
    #[arg(long = "listen", env = "SOTTO_RELAY_LISTEN", value_delimiter = ',')]
    pub listen: Vec<SocketAddr>,
    /// TCP listen addresses.
    #[arg(
        long = "listen-tcp",
        env = "SOTTO_RELAY_LISTEN_TCP",
        value_delimiter = ','
    )]
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS listen addresses (need `tls_cert` and `tls_key`).
    #[arg(
        long = "listen-tls",
        env = "SOTTO_RELAY_LISTEN_TLS",
        value_delimiter = ','
    )]
    pub listen_tls: Vec<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "SOTTO_RELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "SOTTO_RELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Local addresses relayed sockets bind to (one IPv4 and/or one IPv6).
    #[arg(long = "relay-ip", env = "SOTTO_RELAY_RELAY_IP", value_delimiter = ',')]
    pub relay_ip: Vec<IpAddr>,
    /// Public addresses advertised instead of `relay_ip` (behind 1:1 NAT).
    #[arg(
        long = "external-ip",
        env = "SOTTO_RELAY_EXTERNAL_IP",
        value_delimiter = ','
    )]
    pub external_ip: Vec<IpAddr>,
    /// UDP workers (default: one per CPU).
    #[arg(long, env = "SOTTO_RELAY_WORKERS")]
    pub workers: Option<usize>,
    /// Users file: `user:password` or `user:0x<md5 key>` per line (an
    /// empty password is an error).
    #[arg(long, env = "SOTTO_RELAY_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// TURN REST shared secrets (first is current; others still accepted).
    /// An empty secret is an error; one under 16 bytes is logged as weak.
    #[arg(
        long = "auth-secret",
        env = "SOTTO_RELAY_AUTH_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub auth_secrets: Vec<String>,
    /// File with one TURN REST secret per line (re-read on SIGHUP; blank
    /// and `#` lines skipped).
    #[arg(long, env = "SOTTO_RELAY_AUTH_SECRETS_FILE")]
    pub auth_secrets_file: Option<PathBuf>,
    /// Signalling database with a `turn_users` table (`sqlite:///path` or
    /// `postgres://…`), read at start and on SIGHUP.
    #[arg(long, env = "SOTTO_RELAY_AUTH_DATABASE", hide_env_values = true)]
    pub auth_database: Option<String>,
    /// Peer ranges allowed (every port) although special-purpose or the
    /// relay's own addresses (which are refused by default: relay,
    /// external and listen IPs, and with a wildcard listener every
    /// interface address, re-read on SIGHUP; the advertised relayed
    /// address is a peer for live allocations' ports only).
    #[arg(
        long = "allow-peer",
        env = "SOTTO_RELAY_ALLOW_PEER",
        value_delimiter = ','
    )]
    pub allow_peers: Vec<IpNet>,
    /// Peer ranges refused in addition to the built-in ones.
    #[arg(
        long = "deny-peer",
        env = "SOTTO_RELAY_DENY_PEER",
        value_delimiter = ','
    )]
    pub deny_peers: Vec<IpNet>,
    /// Allow loopback peers (tests and benchmarks only).
    #[arg(long, env = "SOTTO_RELAY_ALLOW_LOOPBACK_PEERS", num_args = 0..=1, default_missing_value = "true")]
    #[serde(default)]
    pub allow_loopback_peers: Option<bool>,
    /// Total allocations (default 100000; 0 = unlimited).
    #[arg(long, env = "SOTTO_RELAY_MAX_ALLOCATIONS")]
    pub max_allocations: Option<usize>,
    /// Allocations per user (default 100; 0 = unlimited). TURN REST
    /// usernames `<expiry>:<user>` count against `<user>`, so fresh
    /// credentials do not give a fresh quota.
    #[arg(long, env = "SOTTO_RELAY_MAX_ALLOCATIONS_PER_USER")]
    pub max_allocations_per_user: Option<usize>,
    /// Bytes per second per allocation (default 0 = no cap; else >= 1500).
    #[arg(long, env = "SOTTO_RELAY_BPS_PER_ALLOCATION")]
    pub bps_per_allocation: Option<u64>,
    /// Bytes per second for the whole server, one budget for UDP, TCP and
    /// TLS allocations together (default 0 = no cap; else >= 1500).
    #[arg(long, env = "SOTTO_RELAY_BPS_TOTAL")]
    pub bps_total: Option<u64>,
    /// Unauthenticated requests per second per source, an IPv4 address or
    /// an IPv6 /64 (default 50; 0 = no limit, for benchmarks only).
    #[arg(long, env = "SOTTO_RELAY_UNAUTH_RATE")]
    pub unauth_rate: Option<u32>,
    /// Nonce lifetime in seconds (default 600; 30..=86400).
    #[arg(long, env = "SOTTO_RELAY_NONCE_LIFETIME")]
    pub nonce_lifetime: Option<u64>,
    /// Concurrent TCP and TLS connections (default 10000; 0 = no limit).
    #[arg(long, env = "SOTTO_RELAY_MAX_TCP_CONNECTIONS")]
    pub max_tcp_connections: Option<usize>,
    /// Concurrent TCP and TLS connections per source IP (default 64;
    /// 0 = no limit).
    #[arg(long, env = "SOTTO_RELAY_MAX_TCP_CONNECTIONS_PER_IP")]
    pub max_tcp_connections_per_ip: Option<usize>,
    /// Seconds a TCP/TLS connection may go without an allocation before it
    /// is closed: after connecting, and after its allocation ends
    /// (default 10; 1..=3600).
    #[arg(long, env = "SOTTO_RELAY_TCP_ALLOCATE_TIMEOUT")]
    pub tcp_allocate_timeout: Option<u64>,
    /// Prometheus endpoint, e.g. 127.0.0.1:9641.
    #[arg(long, env = "SOTTO_RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Options {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Ok(toml::from_str(&read(path)?)?)
    }

    /// `self` with every field set in `over` replacing it.
    pub fn overridden_by(self, over: Options) -> Options {
        fn pick<T>(base: Option<T>, over: Option<T>) -> Option<T> {
            over.or(base)
        }
        fn list<T>(base: Vec<T>, over: Vec<T>) -> Vec<T> {
            if over.is_empty() { base } else { over }
        }
        Options {
            realm: pick(self.realm, over.realm),
            listen: list(self.listen, over.listen),
            listen_tcp: list(self.listen_tcp, over.listen_tcp),
            listen_tls: list(self.listen_tls, over.listen_tls),
            tls_cert: pick(self.tls_cert, over.tls_cert),
            tls_key: pick(self.tls_key, over.tls_key),
            relay_ip: list(self.relay_ip, over.relay_ip),
            external_ip: list(self.external_ip, over.external_ip),
            workers: pick(self.workers, over.workers),
            users_file: pick(self.users_file, over.users_file),
            auth_secrets: list(self.auth_secrets, over.auth_secrets),
            auth_secrets_file: pick(self.auth_secrets_file, over.auth_secrets_file),
            auth_database: pick(self.auth_database, over.auth_database),
            allow_peers: list(self.allow_peers, over.allow_peers),
            deny_peers: list(self.deny_peers, over.deny_peers),
            allow_loopback_peers: pick(self.allow_loopback_peers, over.allow_loopback_peers),
            max_allocations: pick(self.max_allocations, over.max_allocations),
            max_allocations_per_user: pick(
                self.max_allocations_per_user,
                over.max_allocations_per_user,
            ),
            bps_per_allocation: pick(self.bps_per_allocation, over.bps_per_allocation),
            bps_total: pick(self.bps_total, over.bps_total),
            unauth_rate: pick(self.unauth_rate, over.unauth_rate),
            nonce_lifetime: pick(self.nonce_lifetime, over.nonce_lifetime),
            max_tcp_connections: pick(self.max_tcp_connections, over.max_tcp_connections),
            max_tcp_connections_per_ip: pick(
                self.max_tcp_connections_per_ip,
                over.max_tcp_connections_per_ip,
            ),
            tcp_allocate_timeout: pick(self.tcp_allocate_timeout, over.tcp_allocate_timeout),
            metrics_listen: pick(self.metrics_listen, over.metrics_listen),
        }
    }

    /// Checks everything and produces the settings the server runs with.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let invalid = |s: &str| Err(ConfigError::Invalid(s.to_owned()));
        let realm = self.realm.unwrap_or_else(|| "sotto".to_owned());
        if realm.is_empty() || realm.len() > 127 {
            return invalid("realm must be 1..=127 bytes");
        }
        let listen =
            if self.listen.is_empty() && self.listen_tcp.is_empty() && self.listen_tls.is_empty() {
                vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 3478))]
            } else {
                self.listen
            };
        if !self.listen_tls.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return invalid("listen_tls needs tls_cert and tls_key");
        }
        // Relayed addresses must be concrete: default to the listen IPs.
        let relay_ips: Vec<IpAddr> = if self.relay_ip.is_empty() {
            let mut ips: Vec<IpAddr> = listen
                .iter()
                .chain(&self.listen_tcp)
                .chain(&self.listen_tls)
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .collect();
            ips.dedup();
            one_per_family("relay_ip (not set: taken from the listen addresses)", &ips)?;
            ips
        } else {
            one_per_family("relay_ip", &self.relay_ip)?;
            self.relay_ip
        };
        one_per_family("external_ip", &self.external_ip)?;
        for ip in &relay_ips {
            if ip.is_unspecified() && !self.external_ip.iter().any(|e| e.is_ipv4() == ip.is_ipv4())
            {
                return invalid("an unspecified relay_ip needs an external_ip of the same family");
            }
        }
        let relay_v4 = relay_ips.iter().find(|ip| ip.is_ipv4()).copied();
        let relay_v6 = relay_ips.iter().find(|ip| ip.is_ipv6()).copied();
        if relay_v4.is_none() && relay_v6.is_none() {
            return invalid("set relay_ip: listening on a wildcard address gives no relay address");
        }
        let mut policy = PeerPolicy::new(self.allow_peers, self.deny_peers);
        // Our relayed addresses are peers for the ports of live
        // allocations (two clients of this relay, both relay-only).
        for local in [relay_v4, relay_v6].into_iter().flatten() {
            let advertised = self
                .external_ip
                .iter()
                .find(|e| e.is_ipv4() == local.is_ipv4())
                .copied()
                .unwrap_or(local);
            policy.add_relay_address(advertised, local);
        }
        // The host's own concrete addresses (wildcard listeners name none).
        policy.deny_own(
            relay_ips.iter().chain(&self.external_ip).copied().chain(
                listen
                    .iter()
                    .chain(&self.listen_tcp)
                    .chain(&self.listen_tls)
                    .map(|a| a.ip()),
            ),
        );
        if self.allow_loopback_peers == Some(true) {
            tracing::warn!(
                "allow_loopback_peers: clients may relay to this host's loopback services (tests and benchmarks only)"
            );
            policy.allow_loopback();
        }
        if self.users_file.is_none()
            && self.auth_secrets.is_empty()
            && self.auth_secrets_file.is_none()
            && self.auth_database.is_none()
        {
            return invalid(
                "no credentials: set users_file, auth_secrets, auth_secrets_file or auth_database",
            );
        }
        if let Some(i) = self.auth_secrets.iter().position(|s| s.trim().is_empty()) {
            return Err(ConfigError::EmptySecret {
                setting: format!("auth_secrets entry {}", i + 1),
            });
        }
        let auth_database = self
            .auth_database
            .as_deref()
            .map(DatabaseUrl::parse)
            .transpose()?;
        let out_of_range = |setting, value, expected| {
            Err(ConfigError::OutOfRange {
                setting,
                value,
                expected,
            })
        };
        let bps_per_allocation = self.bps_per_allocation.unwrap_or(0);
        let bps_total = self.bps_total.unwrap_or(0);
        for (setting, bps) in [
            ("bps_per_allocation", bps_per_allocation),
            ("bps_total", bps_total),
        ] {
            if bps != 0 && bps < MIN_BPS {
                return out_of_range(setting, bps, "0 (no cap) or at least 1500 bytes/s");
            }
        }
        let nonce_lifetime = self.nonce_lifetime.unwrap_or(600);
        if !NONCE_LIFETIME_S.contains(&nonce_lifetime) {
            return out_of_range("nonce_lifetime", nonce_lifetime, "30..=86400 seconds");
        }
        let tcp_allocate_timeout = self.tcp_allocate_timeout.unwrap_or(10);
        if !(1..=3600).contains(&tcp_allocate_timeout) {
            return out_of_range(
                "tcp_allocate_timeout",
                tcp_allocate_timeout,
                "1..=3600 seconds",
            );
        }
        let max_allocations = self.max_allocations.unwrap_or(100_000);
        let unauth_rate = self.unauth_rate.unwrap_or(50);
        // 0 means "no limit" for every cap; say so where it weakens defences.
        if max_allocations == 0 {
            tracing::warn!("max_allocations = 0: no limit on allocations");
        }
        if unauth_rate == 0 {
            tracing::warn!("unauth_rate = 0: unauthenticated requests are not rate limited");
        }
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 || workers > 256 {
            return invalid("workers must be 1..=256");
        }
        Ok(Settings {
            realm,
            listen,
            listen_tcp: self.listen_tcp,
            listen_tls: self.listen_tls,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            relay_v4,
            relay_v6,
            external_ip: self.external_ip,
            workers,
            users_file: self.users_file,
            auth_secrets: self.auth_secrets,
            auth_secrets_file: self.auth_secrets_file,
            auth_database,
            policy,
            max_allocations,
            max_allocations_per_user: self.max_allocations_per_user.unwrap_or(100),
            bps_per_allocation,
            bps_total,
            unauth_rate,
            nonce_lifetime: Duration::from_secs(nonce_lifetime),
            max_tcp_connections: self.max_tcp_connections.unwrap_or(10_000),
            max_tcp_connections_per_ip: self.max_tcp_connections_per_ip.unwrap_or(64),
            tcp_allocate_timeout: Duration::from_secs(tcp_allocate_timeout),
            metrics_listen: self.metrics_listen,
        })
    }
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Realm.
    pub realm: String,
    /// UDP listeners.
    pub listen: Vec<SocketAddr>,
    /// TCP listeners.
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS listeners.
    pub listen_tls: Vec<SocketAddr>,
    /// TLS certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// TLS key.
    pub tls_key: Option<PathBuf>,
    /// IPv4 address relayed sockets bind to, if IPv4 relaying is offered.
    pub relay_v4: Option<IpAddr>,
    /// IPv6 address relayed sockets bind to, if IPv6 relaying is offered.
    pub relay_v6: Option<IpAddr>,
    /// Advertised public addresses.
    pub external_ip: Vec<IpAddr>,
    /// UDP worker threads.
    pub workers: usize,
    /// Users file (re-read on SIGHUP).
    pub users_file: Option<PathBuf>,
    /// REST secrets given directly.
    pub auth_secrets: Vec<String>,
    /// REST secrets file (re-read on SIGHUP).
    pub auth_secrets_file: Option<PathBuf>,
    /// Signalling database with TURN users (re-read on SIGHUP).
    pub auth_database: Option<DatabaseUrl>,
    /// Peer policy.
    pub policy: PeerPolicy,
    /// Total allocations.
    pub max_allocations: usize,
    /// Allocations per user.
    pub max_allocations_per_user: usize,
    /// Per-allocation cap, bytes/s.
    pub bps_per_allocation: u64,
    /// Server-wide cap, bytes/s.
    pub bps_total: u64,
    /// Unauthenticated requests per second per IP.
    pub unauth_rate: u32,
    /// Nonce lifetime.
    pub nonce_lifetime: Duration,
    /// Concurrent TCP/TLS connections (0 = no limit).
    pub max_tcp_connections: usize,
    /// Concurrent TCP/TLS connections per source IP (0 = no limit).
    pub max_tcp_connections_per_ip: usize,
    /// How long a TCP/TLS connection may go without an allocation.
    pub tcp_allocate_timeout: Duration,
    /// Prometheus endpoint.
    pub metrics_listen: Option<SocketAddr>,
}

impl Settings {
    /// Loads every configured credential source into one store, at start,
    /// for `--check-config` and on SIGHUP: the users file, the REST secrets
    /// (given and from their file) and the signalling database (whose users
    /// win over same-named users-file lines). All or nothing: on any error
    /// the caller keeps what it had.
    pub async fn credentials(&self) -> Result<Credentials, ConfigError> {
        let mut c = Credentials::new();
        if let Some(p) = &self.users_file {
            c.load_users(&read(p)?, &self.realm)?;
        }
        for (i, s) in self.auth_secrets.iter().enumerate() {
            add_secret(&mut c, s, || format!("auth_secrets entry {}", i + 1))?;
        }
        if let Some(p) = &self.auth_secrets_file {
            for (i, line) in read(p)?.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                add_secret(&mut c, line, || {
                    format!("auth_secrets_file {} line {}", p.display(), i + 1)
                })?;
            }
        }
        if let Some(db) = &self.auth_database {
            userdb::load(db, &self.realm, &mut c).await?;
        }
        Ok(c)
    }

    /// What the settings name on this host, checked at start and by
    /// `--check-config` alike: the TLS certificate and key load (the
    /// acceptor, when there are TLS listeners) and a socket can be bound
    /// on each relay_ip, so that a relay that starts can also allocate.
    pub fn preflight(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        use anyhow::Context as _;
        for ip in [self.relay_v4, self.relay_v6].into_iter().flatten() {
            std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).with_context(|| {
                format!("relay_ip {ip}: cannot bind a relayed socket there (is it an address of this host?)")
            })?;
        }
        if self.listen_tls.is_empty() {
            return Ok(None);
        }
        let cert = self
            .tls_cert
            .as_deref()
            .context("listen_tls needs tls_cert")?;
        let key = self
            .tls_key
            .as_deref()
            .context("listen_tls needs tls_key")?;
        crate::tls::acceptor(cert, key).map(Some)
    }

    /// Whether a listener is bound to a wildcard address (0.0.0.0, ::):
    /// then the settings name none of the host's addresses, which the
    /// server reads from its interfaces instead (at start and on SIGHUP).
    pub fn listens_on_wildcard(&self) -> bool {
        self.listen
            .iter()
            .chain(&self.listen_tcp)
            .chain(&self.listen_tls)
            .any(|a| a.ip().is_unspecified())
    }

    /// The address advertised for a relayed socket bound to `bound`.
    pub fn advertised(&self, bound: SocketAddr) -> SocketAddr {
        match self
            .external_ip
            .iter()
            .find(|e| e.is_ipv4() == bound.is_ipv4())
        {
            Some(ip) => SocketAddr::new(*ip, bound.port()),
            None => bound,
        }
    }
}

/// Adds one REST secret; `setting` names it in the error or warning.
fn add_secret(
    c: &mut Credentials,
    secret: &str,
    setting: impl Fn() -> String,
) -> Result<(), ConfigError> {
    c.add_secret(secret)
        .map_err(|_| ConfigError::EmptySecret { setting: setting() })?;
    if secret.len() < SHORT_SECRET {
        tracing::warn!(
            setting = setting(),
            "TURN REST secret shorter than {SHORT_SECRET} bytes: weak against guessing"
        );
    }
    Ok(())
}

/// Refuses two different addresses of one family: relayed sockets bind
/// to (and are advertised as) one address per family, and extras would
/// be ignored.
fn one_per_family(setting: &str, ips: &[IpAddr]) -> Result<(), ConfigError> {
    for v4 in [true, false] {
        let mut of: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv4() == v4).collect();
        of.sort();
        of.dedup();
        if of.len() > 1 {
            let list: Vec<String> = of.iter().map(ToString::to_string).collect();
            return Err(ConfigError::Invalid(format!(
                "{setting}: several {} addresses ({}): relayed sockets bind to one address per family",
                if v4 { "IPv4" } else { "IPv6" },
                list.join(", ")
            )));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let file: Options = toml::from_str(
            r#"
            realm = "example.org"
            listen = ["127.0.0.1:3478"]
            auth_secrets = ["a"]
            max_allocations = 5
            allow_peers = ["10.0.0.0/8"]
            "#,
        )
        .unwrap();
        let flags = Options {
            max_allocations: Some(7),
            workers: Some(2),
            ..Options::default()
        };
        let s = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(s.relay_v4, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.realm, "example.org");
        assert_eq!(s.max_allocations, 7);
        assert_eq!(s.workers, 2);
        assert!(s.policy.permits("10.1.1.1".parse().unwrap()));
        assert!(!s.policy.permits("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn own_addresses_are_not_peers() {
        let o = Options {
            listen: vec![
                "9.9.9.9:3478".parse().unwrap(),
                "0.0.0.0:3479".parse().unwrap(),
            ],
            listen_tcp: vec!["[2606:4700::9]:3478".parse().unwrap()],
            relay_ip: vec!["1.2.3.4".parse().unwrap()],
            external_ip: vec!["5.6.7.8".parse().unwrap()],
            auth_secrets: vec!["a-long-enough-secret".into()],
            ..Options::default()
        };
        let s = o.clone().resolve().unwrap();
        for own in [
            "1.2.3.4",
            "5.6.7.8",
            "9.9.9.9",
            "2606:4700::9",
            "::ffff:1.2.3.4",
        ] {
            assert!(!s.policy.permits(own.parse().unwrap()), "{own}");
        }
        assert!(s.policy.permits("1.2.3.5".parse().unwrap()));
        // The advertised relayed address is a peer on live relayed ports
        // (checked by the core), reached at relay_ip; relay_ip itself,
        // never advertised, is not a peer.
        use crate::policy::Verdict;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(s.policy.verdict(ip("5.6.7.8")), Verdict::RelayedPortsOnly);
        assert_eq!(s.policy.verdict(ip("1.2.3.4")), Verdict::Refused);
        assert_eq!(
            s.policy.local_of("5.6.7.8:40000".parse().unwrap()),
            "1.2.3.4:40000".parse().unwrap()
        );
        let allowed = Options {
            allow_peers: vec!["5.6.7.8/32".parse().unwrap()],
            ..o
        };
        let s = allowed.resolve().unwrap();
        assert!(s.policy.permits("5.6.7.8".parse().unwrap()));
        assert!(!s.policy.permits("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn shipped_example_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/sotto-relay.toml");
        let o = Options::from_file(&p).unwrap();
        assert_eq!(o.realm.as_deref(), Some("turn.example.org"));
        assert_eq!(o.relay_ip.len(), 2);
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(toml::from_str::<Options>("nonsense = 1").is_err());
        assert!(Options::default().resolve().is_err(), "no credentials");
        let tls = Options {
            auth_secrets: vec!["a".into()],
            listen_tls: vec!["127.0.0.1:5349".parse().unwrap()],
            ..Options::default()
        };
        assert!(tls.resolve().is_err());
        let db = Options {
            auth_database: Some("mysql://db/sotto".into()),
            ..Options::default()
        };
        assert!(db.resolve().is_err(), "only sqlite: and postgres: URLs");
    }

    #[test]
    fn values_that_would_change_meaning_are_errors() {
        let base = || Options {
            listen: vec!["127.0.0.1:3478".parse().unwrap()],
            auth_secrets: vec!["a-long-enough-secret".into()],
            workers: Some(4),
            ..Options::default()
        };
        let refused = |o: Options, setting: &str| match o.resolve() {
            Err(ConfigError::OutOfRange { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("{setting}: {other:?}"),
        };
        for n in [0, 3601] {
            let o = Options {
                tcp_allocate_timeout: Some(n),
                ..base()
            };
            refused(o, "tcp_allocate_timeout");
        }
        for n in [0, 29, 86_401] {
            let o = Options {
                nonce_lifetime: Some(n),
                ..base()
            };
            refused(o, "nonce_lifetime");
        }
        for bps in [1, MIN_BPS - 1] {
            let o = Options {
                bps_per_allocation: Some(bps),
                ..base()
            };
            refused(o, "bps_per_allocation");
            let o = Options {
                bps_total: Some(bps),
                ..base()
            };
            refused(o, "bps_total");
        }
        // A small server-wide cap is one budget, not divided per worker.
        let s = Options {
            bps_total: Some(MIN_BPS),
            nonce_lifetime: Some(30),
            ..base()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.bps_total, MIN_BPS);
        // 0 is "no limit" for every cap, as documented.
        let s = Options {
            max_allocations: Some(0),
            unauth_rate: Some(0),
            bps_total: Some(0),
            ..base()
        }
        .resolve()
        .unwrap();
        assert_eq!((s.max_allocations, s.unauth_rate, s.bps_total), (0, 0, 0));
    }

    #[tokio::test]
    async fn empty_secrets_and_passwords_are_config_errors() {
        let base = || Options {
            listen: vec!["127.0.0.1:3478".parse().unwrap()],
            ..Options::default()
        };
        for secrets in [vec![""], vec!["a-long-enough-secret", "", "b"], vec!["  "]] {
            let o = Options {
                auth_secrets: secrets.iter().map(|s| s.to_string()).collect(),
                ..base()
            };
            let e = o.resolve().unwrap_err();
            assert!(
                matches!(&e, ConfigError::EmptySecret { setting } if setting.starts_with("auth_secrets entry")),
                "{e}"
            );
        }
        let from_toml: Options = toml::from_str("auth_secrets = [\"\"]").unwrap();
        assert!(matches!(
            from_toml.overridden_by(base()).resolve(),
            Err(ConfigError::EmptySecret { .. })
        ));
        // Files are re-read on SIGHUP, so they are checked when loaded.
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, "alice:pw\nmallory:\n").unwrap();
        let s = Options {
            users_file: Some(users),
            ..base()
        }
        .resolve()
        .unwrap();
        let e = s.credentials().await.unwrap_err();
        assert!(e.to_string().contains("line 2: empty password"), "{e}");
    }

    /// Each cause is printed once by `{:#}` (and by anyhow's `Caused by:`)
    /// and fully by `{}`. "users file: users file line 1: empty password /
    /// Caused by: users file line 1: empty password" is what it was.
    #[test]
    fn errors_print_each_cause_once() {
        let toml_error = toml::from_str::<Options>("nonsense = 1").unwrap_err();
        let toml_text = toml_error.to_string();
        let db_error = sqlx::Error::Protocol("no turn_users table".into());
        let cases: Vec<(anyhow::Error, String)> = vec![
            (
                ConfigError::from(crate::auth::CredentialError::EmptyPassword(1)).into(),
                "users file line 1: empty password".into(),
            ),
            (ConfigError::from(toml_error).into(), toml_text),
            (
                read(Path::new("/nonexistent/sotto-relay.toml"))
                    .unwrap_err()
                    .into(),
                "No such file".into(),
            ),
            (
                ConfigError::from(userdb::UserDbError::from(db_error)).into(),
                "no turn_users table".into(),
            ),
        ];
        for (e, cause) in cases {
            let plain = e.to_string();
            let alternate = format!("{e:#}");
            let debug = format!("{e:?}");
            assert!(plain.contains(&cause), "{plain}");
            assert_eq!(alternate.matches(&cause).count(), 1, "{alternate}");
            assert_eq!(debug.matches(&cause).count(), 1, "{debug}");
        }
    }

    #[tokio::test]
    async fn sources_load_into_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, "alice:pw\nbob:pw\n").unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::write(&secrets, "# current first\nnew\nold\n").unwrap();
        let o = Options {
            listen: vec!["127.0.0.1:3478".parse().unwrap()],
            users_file: Some(users),
            auth_secrets: vec!["given".into()],
            auth_secrets_file: Some(secrets),
            ..Options::default()
        };
        let s = o.resolve().unwrap();
        assert_eq!(s.credentials().await.unwrap().counts(), (2, 3));
    }
}
