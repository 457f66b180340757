//! Server configuration: a TOML file, overridden by flags and
//! `SOTTO_SIGNALD_*` environment variables (see the binary).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

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
    /// TURN credential issuing.
    pub turn: TurnConfig,
    /// Push providers.
    pub push: PushConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
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
            turn: TurnConfig::default(),
            push: PushConfig::default(),
        }
    }
}

/// TURN REST credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Shared secret with the relays (coturn `static-auth-secret`); none disables the endpoint.
    pub secret: Option<String>,
    /// Credential lifetime, seconds (0 means one day), at most 2592000 (30 days).
    pub ttl_s: u64,
    /// Relay URIs handed out, e.g. `turn:relay.example:3478?transport=udp`.
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
    /// `https:` hosts: plain `http:`, loopback and private addresses are
    /// allowed for these only. Empty by default; e.g. `["127.0.0.1"]` for a
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
        in_range("ring_timeout_s", self.ring_timeout_s, 1..=300)?;
        in_range("session_ttl_s", self.session_ttl_s, 60..=31_536_000)?;
        finite_at_least("device_rate", self.device_rate, 0.0, false)?;
        finite_at_least("device_burst", self.device_burst, 1.0, true)?;
        finite_at_least("ip_rate", self.ip_rate, 0.0, false)?;
        finite_at_least("ip_burst", self.ip_burst, 1.0, true)?;
        in_range("ws_ping_interval_s", self.ws_ping_interval_s, 1..=600)?;
        in_range("ws_missed_pongs", self.ws_missed_pongs.into(), 1..=10)?;
        in_range("turn.ttl_s", self.turn.ttl_s, 0..=2_592_000)?;
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
        let cases: [(&str, Breaks); 17] = [
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
    fn example_config_parses() {
        let text = include_str!("../signald.example.toml");
        let c = Config::from_toml(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ring_timeout_s, 45);
        assert_eq!(c.turn.uris.len(), 2);
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
    }
}
