//! Server configuration: a TOML file, overridden by flags and
//! `SOTTO_SIGNALD_*` environment variables (see the binary).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
    /// How long an offer waits for its callee (queued-message TTL), seconds.
    pub ring_timeout_s: u64,
    /// Session lifetime, seconds.
    pub session_ttl_s: u64,
    /// Messages per second a device may send (sustained).
    pub device_rate: f64,
    /// Burst of messages a device may send.
    pub device_burst: f64,
    /// HTTP requests and WebSocket upgrades per second from one IP.
    pub ip_rate: f64,
    /// Burst of requests from one IP.
    pub ip_burst: f64,
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
    /// Credential lifetime, seconds (0 means one day).
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
    /// APNs VoIP.
    pub apns: Option<ApnsConfig>,
    /// FCM HTTP v1.
    pub fcm: Option<FcmConfig>,
    /// Delivery attempts per push.
    pub max_attempts: u32,
    /// First retry delay, milliseconds (doubles each time).
    pub retry_base_ms: u64,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../signald.example.toml");
        let c = Config::from_toml(text).unwrap();
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
