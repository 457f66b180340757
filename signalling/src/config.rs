//! Server configuration: a TOML file, overridden by flags and
//! `SOTTO_SIGNALD_*` environment variables (see the binary).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::auth::Origin;
pub use crate::server::peer::{Cidr, ForwardedHeader};

/// A setting outside what the server can work with; it refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{setting} = {value}: must be {expected}")]
pub struct ConfigError {
    /// The setting's name as written in the TOML file (`push.max_attempts`).
    pub setting: &'static str,
    /// The value given.
    pub value: String,
    /// What is accepted.
    pub expected: String,
}

/// Checks an integer setting against its range.
fn in_range(
    setting: &'static str,
    value: u64,
    range: RangeInclusive<u64>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(ConfigError {
        setting,
        value: value.to_string(),
        expected: format!("between {} and {}", range.start(), range.end()),
    })
}

/// Checks a rate or burst: finite and at least `min` (`min` itself allowed
/// only when `inclusive`).
fn finite_at_least(
    setting: &'static str,
    value: f64,
    min: f64,
    inclusive: bool,
) -> Result<(), ConfigError> {
    let ok = value.is_finite() && (value > min || (inclusive && value == min));
    if ok {
        return Ok(());
    }
    Err(ConfigError {
        setting,
        value: value.to_string(),
        expected: format!(
            "a finite number {} {min}",
            if inclusive { "of at least" } else { "above" }
        ),
    })
}

/// Everything `sotto-signald` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The origins (`scheme://host[:port]`) this server answers to: the
    /// base URLs that devices are given, such as
    /// `["https://signal.example.org"]`, each written without a path.
    /// Spelling is normalised (case, default port, trailing `/`).
    ///
    /// A device signs its login for the origin it is talking to, and a
    /// login signed for any other origin is refused (421 `wrong_origin`):
    /// so a server where the device is also registered cannot pass the
    /// device's login off to this one. Behind a reverse proxy or TLS
    /// terminator, list the URL clients use, not the address listened on.
    ///
    /// Empty (the default) is allowed only when [`Self::listen`] is a
    /// loopback address, and then means the address this server is bound
    /// to, `http://127.0.0.1:<port>` (for development, tests and `sotto
    /// demo`); with any other listen address the server refuses to start.
    /// The server does not fall back to the request's `Host` (or
    /// `X-Forwarded-Host`, `Forwarded`) header: the login request is sent
    /// by whoever relays it, so in the attack this setting stops the
    /// header would be written by the attacker and would bind nothing.
    pub public_origins: Vec<String>,
    /// `sqlite://path/file.db` (default) or `postgres://…`.
    pub database_url: String,
    /// This node's name, unique among nodes sharing a database.
    pub node_id: String,
    /// Redis URL for routing between nodes; none for a single node.
    pub redis_url: Option<String>,
    /// How long an offer waits for its callee (queued-message TTL), seconds,
    /// 1 to 300 (no longer than the 5-minute replay window, or a queued
    /// message could not be opened when delivered).
    pub ring_timeout_s: u64,
    /// Session lifetime, seconds, 60 to 31536000 (a year).
    pub session_ttl_s: u64,
    /// Messages per second a device may send (sustained); finite, above 0.
    pub device_rate: f64,
    /// Burst of messages a device may send; finite, at least 1.
    pub device_burst: f64,
    /// HTTP requests and WebSocket upgrades per second from one IP; finite, above 0.
    pub ip_rate: f64,
    /// Burst of requests from one IP; finite, at least 1.
    pub ip_burst: f64,
    /// Seconds between WebSocket pings to each device, 1 to 600.
    pub ws_ping_interval_s: u64,
    /// Pings in a row a device may leave unanswered before its connection
    /// is taken for dead and dropped (its offers then go by push), 1 to 10.
    pub ws_missed_pongs: u32,
    /// Unexpired messages that may wait for one device, 1 to 100000;
    /// more are refused (`queue_full`) until it reads some or they expire.
    pub queue_max_messages: u64,
    /// Bytes of messages that may wait for one device, 65536 to 1073741824.
    pub queue_max_bytes: u64,
    /// Unexpired messages one sender may have waiting for one device,
    /// 1 to `queue_max_messages`.
    pub queue_max_per_sender: u64,
    /// Connections open at once, in all (WebSockets of online devices
    /// included), 1 to 1000000; more are closed as soon as accepted. Keep
    /// it under the process's open-file limit.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64),
    /// 1 to 1000000. A trusted proxy's own sockets are exempt; each
    /// WebSocket it carries counts for the client it names.
    pub max_connections_per_ip: usize,
    /// Seconds a connection has to send a whole request (headers and
    /// body), from its opening or from the answer to its previous request,
    /// 1 to 300; then it is closed. Idle keep-alive connections close
    /// after it too. WebSockets are exempt once open.
    pub request_timeout_s: u64,
    /// Seconds that a shutdown (SIGTERM) waits for requests in progress,
    /// 0 to 3600; connections still open then are dropped, and the
    /// database is closed.
    pub shutdown_grace_s: u64,
    /// Address blocks (`10.0.0.0/8`, `::1`) of reverse proxies in front of
    /// this server. For a request from one of them, the client address
    /// (for the per-IP limits) is taken from `client_ip_header`: its
    /// rightmost entry that is not itself a trusted proxy. From anyone
    /// else the header is ignored. Empty by default: the socket's peer.
    pub trusted_proxies: Vec<Cidr>,
    /// The header trusted proxies name the client in: `x-forwarded-for`
    /// (default) or `forwarded` (RFC 7239). The proxies must append to it
    /// (or set it), never pass on a client's own.
    pub client_ip_header: ForwardedHeader,
    /// Address blocks that may read `/metrics` (the client address as
    /// resolved through `trusted_proxies`); others get 403. Loopback by
    /// default, so a public server does not show its traffic to everyone;
    /// add the Prometheus server's address, e.g. `["127.0.0.1", "::1",
    /// "10.1.2.3"]`.
    pub metrics_allow: Vec<Cidr>,
    /// TURN credential issuing.
    pub turn: TurnConfig,
    /// Push providers.
    pub push: PushConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            public_origins: Vec::new(),
            database_url: "sqlite://signald.db".into(),
            node_id: "node-1".into(),
            redis_url: None,
            ring_timeout_s: 45,
            session_ttl_s: 24 * 3600,
            device_rate: 20.0,
            device_burst: 50.0,
            ip_rate: 50.0,
            ip_burst: 200.0,
            ws_ping_interval_s: 20,
            ws_missed_pongs: 2,
            queue_max_messages: 1_000,
            queue_max_bytes: 8 << 20,
            queue_max_per_sender: 200,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            request_timeout_s: 30,
            shutdown_grace_s: 10,
            trusted_proxies: Vec::new(),
            client_ip_header: ForwardedHeader::default(),
            metrics_allow: ["127.0.0.0/8", "::1"]
                .into_iter()
                .map(|c| Cidr::parse(c).expect("a valid block"))
                .collect(),
            turn: TurnConfig::default(),
            push: PushConfig::default(),
        }
    }
}

/// TURN REST credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Shared secret with the relays (coturn `static-auth-secret`); none
    /// disables the endpoint. Not empty; 16 bytes or more (shorter draws
    /// a warning, as from the relay).
    pub secret: Option<String>,
    /// A file holding the secret instead (a trailing newline is ignored),
    /// read at start; not with `secret`.
    pub secret_file: Option<PathBuf>,
    /// Credential lifetime, seconds (0 means one day), at most 2592000 (30 days).
    pub ttl_s: u64,
    /// Relay URIs handed out, e.g. `turn:relay.example:3478?transport=udp`:
    /// each `turn:` or `turns:` (RFC 7065).
    pub uris: Vec<String>,
}

/// Push providers; each is off unless configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// VAPID P-256 key (PKCS#8 DER or PEM); created there when missing.
    /// None disables Web Push and UnifiedPush.
    pub vapid_key_file: Option<PathBuf>,
    /// VAPID contact (`mailto:` or `https:`).
    pub vapid_subject: String,
    /// APNs (VoIP wakes, background cancels).
    pub apns: Option<ApnsConfig>,
    /// FCM HTTP v1.
    pub fcm: Option<FcmConfig>,
    /// Delivery attempts per push, 1 to 20.
    pub max_attempts: u32,
    /// First retry delay, milliseconds (doubles each time), 1 to 60000.
    pub retry_base_ms: u64,
    /// Push endpoints a device may register, 1 to 100; more are refused
    /// (409 `too_many_endpoints`) until dead ones are pruned.
    pub max_endpoints_per_device: u32,
    /// Hosts (names or IP literals, as written in endpoint URLs) that Web
    /// Push and UnifiedPush endpoints may name although they are not public
    /// `https:` hosts on port 443: plain `http:`, loopback and private
    /// addresses and other ports are allowed for these only. Empty by default; e.g. `["127.0.0.1"]` for a
    /// push distributor on this machine.
    pub endpoint_allow_hosts: Vec<String>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            vapid_key_file: None,
            vapid_subject: "mailto:ops@example.invalid".into(),
            apns: None,
            fcm: None,
            max_attempts: 4,
            retry_base_ms: 250,
            max_endpoints_per_device: 10,
            endpoint_allow_hosts: Vec::new(),
        }
    }
}

/// APNs provider-token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// `https://api.push.apple.com` (or the sandbox, or a test endpoint).
    pub base_url: String,
    /// Apple team id (JWT `iss`).
    pub team_id: String,
    /// Key id (JWT `kid`).
    pub key_id: String,
    /// The app's bundle id.
    pub bundle_id: String,
    /// The `.p8` key (PKCS#8 P-256 PEM).
    pub key_file: PathBuf,
}

/// FCM HTTP v1 settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// `https://fcm.googleapis.com` (or a test endpoint).
    pub base_url: String,
    /// The service-account JSON key file (its `token_uri` is the OAuth endpoint).
    pub service_account_file: PathBuf,
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The origins logins are accepted for when bound to `bound`: the
    /// normalised [`Self::public_origins`], or, when that is empty and
    /// `bound` is a loopback address, `bound`'s own `http:` origin and
    /// `http://localhost` on its port (what a developer types).
    pub fn accepted_origins(&self, bound: SocketAddr) -> Result<Vec<Origin>, ConfigError> {
        let mut origins: Vec<Origin> = Vec::new();
        for text in &self.public_origins {
            let origin = Origin::parse(text).map_err(|e| ConfigError {
                setting: "public_origins",
                value: format!("{text:?}"),
                expected: format!(
                    "an origin, scheme://host[:port] with http or https and nothing after \
                     (e.g. \"https://signal.example.org\"); this one: {e}"
                ),
            })?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        if !origins.is_empty() {
            return Ok(origins);
        }
        let unset = || ConfigError {
            setting: "public_origins",
            value: "[]".into(),
            expected: format!(
                "the URLs devices reach this server at (e.g. [\"https://signal.example.org\"]) \
                 when listen ({}) is not a loopback address",
                self.listen
            ),
        };
        if !bound.ip().is_loopback() {
            return Err(unset());
        }
        let localhost = Origin::parse(&format!("http://localhost:{}", bound.port()));
        Ok(vec![
            Origin::of_addr(bound).map_err(|_| unset())?,
            localhost.map_err(|_| unset())?,
        ])
    }

    /// Settings that work but are probably a mistake, one line each;
    /// [`crate::server::start`] logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(secret) = &self.turn.secret
            && !secret.is_empty()
            && secret.len() < 16
        {
            out.push(format!(
                "turn.secret is {} bytes: use 16 or more (the relay warns too)",
                secret.len()
            ));
        }
        let behind_tls = self
            .public_origins
            .iter()
            .any(|o| o.to_ascii_lowercase().starts_with("https:"));
        if behind_tls && self.listen.ip().is_loopback() && self.trusted_proxies.is_empty() {
            out.push(format!(
                "listening on {} for https origins, so behind a proxy on this host, but \
                 trusted_proxies is empty: every client shares the proxy's per-IP limits \
                 (max_connections_per_ip, ip_rate) and may read /metrics; list the proxy, \
                 e.g. [\"127.0.0.1\", \"::1\"]",
                self.listen
            ));
        }
        if self.turn.secret.is_some() && self.turn.uris.is_empty() {
            out.push("turn.secret is set but turn.uris is empty: credentials name no relay".into());
        }
        out
    }

    /// Refuses settings the server cannot run with (zero timeouts, rates
    /// that lock everyone out, lifetimes that overflow), naming the first
    /// one found. [`crate::server::start`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.is_empty() || self.node_id.len() > 64 {
            return Err(ConfigError {
                setting: "node_id",
                value: format!("{:?}", self.node_id),
                expected: "1 to 64 bytes".into(),
            });
        }
        self.accepted_origins(self.listen)?;
        in_range("ring_timeout_s", self.ring_timeout_s, 1..=300)?;
        in_range("session_ttl_s", self.session_ttl_s, 60..=31_536_000)?;
        finite_at_least("device_rate", self.device_rate, 0.0, false)?;
        finite_at_least("device_burst", self.device_burst, 1.0, true)?;
        finite_at_least("ip_rate", self.ip_rate, 0.0, false)?;
        finite_at_least("ip_burst", self.ip_burst, 1.0, true)?;
        in_range("ws_ping_interval_s", self.ws_ping_interval_s, 1..=600)?;
        in_range("ws_missed_pongs", self.ws_missed_pongs.into(), 1..=10)?;
        in_range("queue_max_messages", self.queue_max_messages, 1..=100_000)?;
        in_range("queue_max_bytes", self.queue_max_bytes, 65_536..=1 << 30)?;
        in_range(
            "queue_max_per_sender",
            self.queue_max_per_sender,
            1..=self.queue_max_messages,
        )?;
        in_range(
            "max_connections",
            self.max_connections as u64,
            1..=1_000_000,
        )?;
        in_range(
            "max_connections_per_ip",
            self.max_connections_per_ip as u64,
            1..=1_000_000,
        )?;
        in_range("request_timeout_s", self.request_timeout_s, 1..=300)?;
        in_range("shutdown_grace_s", self.shutdown_grace_s, 0..=3600)?;
        in_range("turn.ttl_s", self.turn.ttl_s, 0..=2_592_000)?;
        if self.turn.secret.is_some() && self.turn.secret_file.is_some() {
            return Err(ConfigError {
                setting: "turn.secret",
                value: "(set)".into(),
                expected: "unset when turn.secret_file is set: one or the other".into(),
            });
        }
        if self.turn.secret.as_deref() == Some("") {
            return Err(ConfigError {
                setting: "turn.secret",
                value: "\"\"".into(),
                expected: "the relays' shared secret (coturn static-auth-secret), not empty; \
                           leave it unset to issue no TURN credentials"
                    .into(),
            });
        }
        for uri in &self.turn.uris {
            let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
            let host = uri.split_once(':').map_or("", |(_, rest)| rest);
            if !matches!(scheme.as_deref(), Some("turn" | "turns")) || host.is_empty() {
                return Err(ConfigError {
                    setting: "turn.uris",
                    value: format!("{uri:?}"),
                    expected: "turn:host[:port][?transport=udp|tcp] or turns:… (RFC 7065)".into(),
                });
            }
        }
        in_range("push.max_attempts", self.push.max_attempts.into(), 1..=20)?;
        in_range("push.retry_base_ms", self.push.retry_base_ms, 1..=60_000)?;
        in_range(
            "push.max_endpoints_per_device",
            self.push.max_endpoints_per_device.into(),
            1..=100,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_refused_by_name() {
        assert_eq!(Config::default().validate(), Ok(()));
        type Breaks = fn(&mut Config);
        let cases: [(&str, Breaks); 28] = [
            ("turn.secret", |c| c.turn.secret = Some(String::new())),
            ("turn.uris", |c| c.turn.uris = vec!["http://nope".into()]),
            ("turn.uris", |c| c.turn.uris = vec!["turn:".into()]),
            ("turn.secret", |c| {
                c.turn.secret = Some("a-long-enough-secret".into());
                c.turn.secret_file = Some("/etc/secret".into());
            }),
            ("queue_max_messages", |c| c.queue_max_messages = 0),
            ("queue_max_bytes", |c| c.queue_max_bytes = 1),
            ("queue_max_per_sender", |c| c.queue_max_per_sender = 1_001),
            ("max_connections", |c| c.max_connections = 0),
            ("max_connections_per_ip", |c| c.max_connections_per_ip = 0),
            ("request_timeout_s", |c| c.request_timeout_s = 0),
            ("shutdown_grace_s", |c| c.shutdown_grace_s = 3601),
            ("push.max_endpoints_per_device", |c| {
                c.push.max_endpoints_per_device = 0
            }),
            ("ws_ping_interval_s", |c| c.ws_ping_interval_s = 0),
            ("ws_missed_pongs", |c| c.ws_missed_pongs = 0),
            ("ring_timeout_s", |c| c.ring_timeout_s = 0),
            ("ring_timeout_s", |c| c.ring_timeout_s = u64::MAX),
            ("session_ttl_s", |c| c.session_ttl_s = 0),
            ("session_ttl_s", |c| c.session_ttl_s = u64::MAX / 100),
            ("device_rate", |c| c.device_rate = 0.0),
            ("device_rate", |c| c.device_rate = f64::NAN),
            ("device_burst", |c| c.device_burst = f64::INFINITY),
            ("ip_rate", |c| c.ip_rate = -1.0),
            ("ip_burst", |c| c.ip_burst = 0.5),
            ("turn.ttl_s", |c| c.turn.ttl_s = u64::MAX),
            ("push.max_attempts", |c| c.push.max_attempts = 0),
            ("push.retry_base_ms", |c| c.push.retry_base_ms = 0),
            ("push.retry_base_ms", |c| c.push.retry_base_ms = u64::MAX),
            ("node_id", |c| c.node_id.clear()),
        ];
        for (setting, break_it) in cases {
            let mut c = Config::default();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
            assert!(err.to_string().starts_with(setting));
        }
        // Large but finite rates (load tests) are fine.
        let c = Config {
            ip_rate: 1e9,
            ip_burst: 1e9,
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_short_turn_secret_is_warned_about() {
        let mut c = Config::default();
        assert!(c.warnings().is_empty());
        c.turn.secret = Some("short".into());
        c.turn.uris = vec!["TURNS:relay.example.org:5349".into()];
        assert_eq!(c.validate(), Ok(()));
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("16"), "{w:?}");
        c.turn.secret = Some("0123456789abcdef".into());
        assert!(c.warnings().is_empty());
        // Behind a TLS terminator on this host, the proxy must be trusted.
        c.public_origins = vec!["https://signal.example.org".into()];
        assert!(
            c.warnings()[0].contains("trusted_proxies"),
            "{:?}",
            c.warnings()
        );
        c.trusted_proxies = vec![Cidr::parse("127.0.0.1").unwrap()];
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../signald.example.toml");
        let c = Config::from_toml(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ring_timeout_s, 45);
        assert_eq!(c.turn.uris.len(), 2);
        assert_eq!(c.public_origins, ["https://signal.example.org"]);
    }

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = Config::from_toml(
            "ring_timeout_s = 30\n[turn]\nsecret = \"s\"\nuris = [\"turn:a:3478\"]\n",
        )
        .unwrap();
        assert_eq!(c.ring_timeout_s, 30);
        assert_eq!(c.turn.secret.as_deref(), Some("s"));
        assert_eq!(c.node_id, "node-1");
        assert!(Config::from_toml("bogus = 1").is_err());
        let c = Config::from_toml(
            "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nclient_ip_header = \"forwarded\"\n",
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.client_ip_header, ForwardedHeader::Forwarded);
        assert!(Config::from_toml("trusted_proxies = [\"10.0.0.1/8\"]").is_err());
    }

    #[test]
    fn public_origins_parse_and_are_normalised() {
        let c = Config::from_toml(
            "listen = \"0.0.0.0:8787\"\npublic_origins = [\"HTTPS://Signal.Example.org:443/\", \
             \"http://[::1]:8080\", \"https://signal.example.org\"]\n",
        )
        .unwrap();
        assert_eq!(c.validate(), Ok(()));
        let bound = "0.0.0.0:8787".parse().unwrap();
        let origins: Vec<String> = c
            .accepted_origins(bound)
            .unwrap()
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(origins, ["https://signal.example.org", "http://[::1]:8080"]);
        // Set, the list replaces the loopback default.
        let c = Config {
            public_origins: vec!["https://signal.example.org".into()],
            ..Config::default()
        };
        let bound = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(c.accepted_origins(bound).unwrap().len(), 1);
        assert!(Config::from_toml("public_origins = \"https://a.example\"").is_err());
    }

    #[test]
    fn public_origins_that_are_not_origins_are_refused() {
        for bad in [
            "signal.example.org",
            "https://signal.example.org/signal",
            "wss://signal.example.org",
            "https://user@signal.example.org",
            "",
        ] {
            let c = Config {
                public_origins: vec![bad.into()],
                ..Config::default()
            };
            let err = c.validate().unwrap_err();
            assert_eq!(err.setting, "public_origins", "{bad:?}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn unset_public_origins_mean_the_loopback_address_bound_to() {
        let c = Config::default();
        assert!(c.public_origins.is_empty());
        assert_eq!(c.validate(), Ok(()));
        let origins = c
            .accepted_origins("127.0.0.1:41234".parse().unwrap())
            .unwrap();
        let names = |o: Vec<Origin>| o.iter().map(|o| o.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            names(origins),
            ["http://127.0.0.1:41234", "http://localhost:41234"]
        );
        let origins = c.accepted_origins("[::1]:41234".parse().unwrap()).unwrap();
        assert_eq!(
            names(origins),
            ["http://[::1]:41234", "http://localhost:41234"]
        );
        // Not on loopback, the server does not know its public name, and
        // will not guess it from the requests: it refuses to start.
        for listen in ["0.0.0.0:8787", "[::]:8787", "192.0.2.7:8787"] {
            let c = Config {
                listen: listen.parse().unwrap(),
                ..Config::default()
            };
            let err = c.validate().unwrap_err();
            assert_eq!(err.setting, "public_origins", "{listen}: {err}");
            assert!(err.to_string().contains(listen), "{err}");
        }
    }
}
