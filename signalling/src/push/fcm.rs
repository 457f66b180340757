//! FCM HTTP v1 pushes, authorised by an OAuth 2.0 access token obtained
//! with a service-account JWT (RFC 7523 bearer grant).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::jwt::JwtKey;
use super::{Attempt, PushError, PushKind, PushMessage, classify};
use crate::store::PushEndpoint;

/// The OAuth scope FCM sends require.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// A service account: the fields of Google's JSON key file we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    /// Project the app belongs to.
    pub project_id: String,
    /// The account's e-mail (JWT issuer).
    pub client_email: String,
    /// PKCS#8 RSA private key, PEM.
    pub private_key: String,
    /// OAuth token endpoint.
    pub token_uri: String,
}

/// FCM adapter.
#[derive(Debug)]
pub struct Fcm {
    base_url: String,
    account: ServiceAccount,
    key: JwtKey,
    http: reqwest::Client,
    /// (expires at, access token).
    token: Mutex<Option<(u64, String)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl Fcm {
    /// An adapter sending to `base_url` (e.g. `https://fcm.googleapis.com`).
    pub fn new(
        base_url: String,
        account: ServiceAccount,
        http: reqwest::Client,
    ) -> Result<Self, PushError> {
        let key = JwtKey::rs256_from_pkcs8(account.private_key.as_bytes())?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            account,
            key,
            http,
            token: Mutex::new(None),
        })
    }

    async fn access_token(&self, now_s: u64) -> Result<String, PushError> {
        let mut cached = self.token.lock().await;
        if let Some((exp, tok)) = cached.as_ref()
            && now_s + 60 < *exp
        {
            return Ok(tok.clone());
        }
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": now_s,
            "exp": now_s + 3600,
        });
        let assertion = self.key.sign(json!({}), &claims)?;
        let res = self
            .http
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| PushError::OAuth(e.to_string()))?;
        if !res.status().is_success() {
            return Err(PushError::OAuth(format!(
                "token endpoint answered {}",
                res.status()
            )));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| PushError::OAuth(e.to_string()))?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| PushError::OAuth("malformed token answer".into()))?;
        *cached = Some((now_s + answer.expires_in, answer.access_token.clone()));
        Ok(answer.access_token)
    }

    /// Drops the cached access token if it is still `token`.
    async fn forget_token(&self, token: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|(_, t)| t == token) {
            *cached = None;
        }
    }

    /// One delivery attempt to the registration token in `ep.endpoint`.
    /// A 401 means the cached access token was revoked before it expired:
    /// it is dropped and the message sent once more with a fresh one.
    pub async fn send(&self, ep: &PushEndpoint, msg: &PushMessage, now_s: u64) -> Attempt {
        let mut renewed = false;
        loop {
            let token = match self.access_token(now_s).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("fcm: {e}");
                    return Attempt::Retry(None);
                }
            };
            let res = self.post(ep, msg, &token).await;
            if !renewed
                && res
                    .as_ref()
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED)
            {
                tracing::info!("fcm: access token refused; getting a new one");
                self.forget_token(&token).await;
                renewed = true;
                continue;
            }
            return classify(res, |status, body| {
                status == 400 && body.contains("UNREGISTERED")
            })
            .await;
        }
    }

    async fn post(
        &self,
        ep: &PushEndpoint,
        msg: &PushMessage,
        token: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let kind = match msg.kind {
            PushKind::Wake => "wake",
            PushKind::Cancel => "cancel",
        };
        let body = json!({"message": {
            "token": ep.endpoint,
            "data": {"call_id": msg.call_id.as_str(), "kind": kind},
            "android": {"priority": "HIGH", "ttl": format!("{}s", msg.ttl_s), "collapse_key": msg.topic()},
        }});
        self.http
            .post(format!(
                "{}/v1/projects/{}/messages:send",
                self.base_url, self.account.project_id
            ))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
    }
}
