//! APNs pushes over HTTP/2 with token-based (ES256 JWT) auth: wakes as
//! VoIP pushes, cancels as background pushes (see [`super::serves`]).

use std::sync::Mutex;

use serde_json::json;

use super::jwt::JwtKey;
use super::{Attempt, PushKind, PushMessage, classify};
use crate::store::PushEndpoint;

/// APNs provider-token settings.
#[derive(Debug)]
pub struct Apns {
    base_url: String,
    team_id: String,
    key_id: String,
    topic: String,
    key: JwtKey,
    http: reqwest::Client,
    /// (issued at, token): APNs wants a token refreshed at most hourly.
    token: Mutex<Option<(u64, String)>>,
}

/// Refresh the provider token after this long (APNs refuses ones older than an hour).
const TOKEN_LIFETIME_S: u64 = 50 * 60;

impl Apns {
    /// An adapter posting to `base_url` (e.g. `https://api.push.apple.com`)
    /// for app `topic` (the bundle id; `.voip` is appended for VoIP pushes).
    pub fn new(
        base_url: String,
        team_id: String,
        key_id: String,
        topic: String,
        key: JwtKey,
    ) -> Result<Self, reqwest::Error> {
        // APNs speaks only HTTP/2.
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            // A push service has no reason to redirect; following one
            // would let it point our requests anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            team_id,
            key_id,
            topic,
            key,
            http,
            token: Mutex::new(None),
        })
    }

    fn provider_token(&self, now_s: u64) -> Option<String> {
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((iat, tok)) = cached.as_ref()
            && now_s < iat + TOKEN_LIFETIME_S
        {
            return Some(tok.clone());
        }
        let tok = self
            .key
            .sign(
                json!({"kid": self.key_id}),
                &json!({"iss": self.team_id, "iat": now_s}),
            )
            .ok()?;
        *cached = Some((now_s, tok.clone()));
        Some(tok)
    }

    /// One delivery attempt to the device token in `ep.endpoint`: a wake
    /// as a VoIP push (`ep` an `apns` PushKit token), a cancel as a
    /// background push (`ep` an `apns-app` token of the app itself).
    pub async fn send(&self, ep: &PushEndpoint, msg: &PushMessage, now_s: u64) -> Attempt {
        let Some(token) = self.provider_token(now_s) else {
            return Attempt::Failed;
        };
        if !ep.endpoint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Attempt::Gone;
        }
        // iOS terminates an app that does not report each VoIP push to
        // CallKit as a new call, so only a wake is one. A background push
        // goes to the bundle id itself, and Apple requires priority 5.
        let (kind, push_type, topic, priority, aps) = match msg.kind {
            PushKind::Wake => (
                "wake",
                "voip",
                format!("{}.voip", self.topic),
                "10",
                json!({}),
            ),
            PushKind::Cancel => (
                "cancel",
                "background",
                self.topic.clone(),
                "5",
                json!({"content-available": 1}),
            ),
        };
        let body = json!({"aps": aps, "call_id": msg.call_id.as_str(), "kind": kind}).to_string();
        let res = self
            .http
            .post(format!("{}/3/device/{}", self.base_url, ep.endpoint))
            .header("authorization", format!("bearer {token}"))
            .header("apns-push-type", push_type)
            .header("apns-topic", topic)
            .header("apns-priority", priority)
            .header("apns-expiration", (now_s + msg.ttl_s).to_string())
            .header("apns-collapse-id", msg.topic())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        classify(res, |status, body| {
            status == 400
                && (body.contains("BadDeviceToken") || body.contains("DeviceTokenNotForTopic"))
        })
        .await
    }
}
