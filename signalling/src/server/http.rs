//! HTTP API handlers: registration, challenge/session auth, push
//! endpoints, key directory, TURN credentials, VAPID key, metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::AppState;
use super::conn::Peer;
use super::peer::ip_key;
use crate::auth::{self, SessionAnswer};
use crate::protocol::DeviceId;
use crate::push::{EndpointRefused, check_endpoint};
use crate::seal::{DevicePublic, verify_b64};
use crate::store::PushEndpoint;
use crate::util::{random_token, unix_ms};

/// API failures, each a status and a stable code.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(&'static str),
    Unauthorized,
    /// The client's address may not read this (`/metrics`).
    Forbidden,
    NotFound,
    Conflict(&'static str),
    /// A login signed for an origin this server does not answer to.
    WrongOrigin,
    RateLimited,
    Internal,
    /// Any other status, with its code (framework rejections: a body too
    /// large, the wrong content type, a method not allowed…).
    Status(StatusCode, &'static str),
}

impl ApiError {
    /// The error a framework rejection stands for, keeping its status.
    pub(crate) fn rejected(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::UPGRADE_REQUIRED => "upgrade_required",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        Self::Status(status, code)
    }
}

/// `Json<T>` whose rejections (bad JSON, wrong content type, a body too
/// large) answer `{"error": code}` like the rest of the API, not plain text.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::rejected(rejection.status())),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            Self::BadRequest(c) => (StatusCode::BAD_REQUEST, c),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(c) => (StatusCode::CONFLICT, c),
            Self::WrongOrigin => (StatusCode::MISDIRECTED_REQUEST, "wrong_origin"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Status(status, code) => (status, code),
        };
        (status, Json(json!({"error": code}))).into_response()
    }
}

impl From<crate::error::StoreError> for ApiError {
    fn from(e: crate::error::StoreError) -> Self {
        tracing::warn!("store: {e}");
        Self::Internal
    }
}

/// Per-IP rate limit on every request (WebSocket upgrades included).
pub(crate) async fn ip_limit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let client = state.client_of(&peer, req.headers());
    let allowed = state
        .ip_limits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(&ip_key(client), Instant::now());
    if !allowed {
        metrics::counter!("signald_rate_limited_total", "scope" => "ip").increment(1);
        return ApiError::RateLimited.into_response();
    }
    next.run(req).await
}

/// The device of a `Bearer` session token (header, or `token` in the query
/// for WebSocket clients that cannot set headers).
pub(crate) async fn authed(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<DeviceId, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query_token)
        .ok_or(ApiError::Unauthorized)?;
    if token.len() > 128 {
        return Err(ApiError::Unauthorized);
    }
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    state
        .store
        .session_device(&hash, unix_ms())
        .await?
        .ok_or(ApiError::Unauthorized)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterReq {
    sign_key: String,
    seal_key: String,
    sig: String,
}

/// `POST /v1/devices`: registers a device's keys, proven by a signature
/// with the signing key over both keys. The id is derived from the key.
pub(crate) async fn register(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<RegisterReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let public = DevicePublic::from_b64(&req.sign_key, &req.seal_key)
        .map_err(|_| ApiError::BadRequest("bad_key"))?;
    verify_b64(
        &public.sign,
        &auth::register_bytes(&req.sign_key, &req.seal_key),
        &req.sig,
    )
    .map_err(|_| ApiError::Unauthorized)?;
    let id = public.device_id();
    state
        .store
        .register_device_signed(&id, &req.sign_key, &req.seal_key, &req.sig, unix_ms())
        .await?;
    metrics::counter!("signald_registrations_total").increment(1);
    tracing::info!(device = %id, "registered");
    Ok(Json(json!({"device_id": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeReq {
    device_id: DeviceId,
}

/// `POST /v1/challenge`: a single-use nonce for a registered device.
pub(crate) async fn challenge(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ChallengeReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.store.device_keys(&req.device_id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let nonce = random_token(32);
    let expires_ms = unix_ms() + auth::CHALLENGE_TTL_MS;
    state
        .store
        .put_challenge(&nonce, &req.device_id, expires_ms)
        .await?;
    Ok(Json(json!({"nonce": nonce, "expires_ms": expires_ms})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionReq {
    device_id: DeviceId,
    /// The origin the device signed for ([`auth::session_bytes`]); absent
    /// from a v1 login, which is refused.
    #[serde(default)]
    origin: Option<String>,
    nonce: String,
    sig: String,
}

/// `POST /v1/session`: trades a signed challenge for a session token.
/// The signature covers the origin the device is talking to, which must be
/// one this server answers to (`public_origins`): else 421 `wrong_origin`,
/// for a login meant for another server (and passed on by it). A v1 login,
/// with no origin, is refused with 400 `origin_required`.
pub(crate) async fn session(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<SessionReq>,
) -> Result<Json<SessionAnswer>, ApiError> {
    let Some(signed_for) = req.origin.as_deref() else {
        return Err(ApiError::BadRequest("origin_required"));
    };
    // Compared as sent: a client signs the canonical form, as listed.
    let Some(origin) = state.origins.iter().find(|o| o.as_str() == signed_for) else {
        metrics::counter!("signald_wrong_origin_logins_total").increment(1);
        let shown: String = signed_for.chars().take(200).collect();
        tracing::info!(
            device = %req.device_id,
            "login signed for origin {shown:?} refused: not in public_origins"
        );
        return Err(ApiError::WrongOrigin);
    };
    let keys = state
        .store
        .device_keys(&req.device_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let public = DevicePublic::from_b64(&keys.sign, &keys.seal).map_err(|_| ApiError::Internal)?;
    if req.nonce.len() > 64 {
        return Err(ApiError::Unauthorized);
    }
    let now = unix_ms();
    // Signature first, so a forged request does not burn the real nonce.
    verify_b64(
        &public.sign,
        &auth::session_bytes(origin, &req.device_id, &req.nonce),
        &req.sig,
    )
    .map_err(|_| ApiError::Unauthorized)?;
    if !state
        .store
        .take_challenge(&req.nonce, &req.device_id, now)
        .await?
    {
        return Err(ApiError::Unauthorized);
    }
    let token = random_token(32);
    let expires_ms = now + state.config.session_ttl_s * 1000;
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    state
        .store
        .put_session(&hash, &req.device_id, expires_ms)
        .await?;
    tracing::info!(device = %req.device_id, "login");
    Ok(Json(SessionAnswer { token, expires_ms }))
}

/// `GET /v1/devices/{id}/keys`: the public keys of a device (authed), with
/// the device's own signature over them (`sig`, null for a device that
/// registered before signatures were kept), so that clients need not trust
/// this directory for the sealing key.
pub(crate) async fn device_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authed(&state, &headers, None).await?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound);
    };
    let id = DeviceId::new(id).map_err(|_| ApiError::NotFound)?;
    let keys = state
        .store
        .device_keys(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "device_id": id,
        "sign_key": keys.sign,
        "seal_key": keys.seal,
        "sig": keys.reg_sig,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushReq {
    provider: String,
    endpoint: String,
    #[serde(default)]
    p256dh: String,
    #[serde(default)]
    auth: String,
}

/// `PUT /v1/push`: adds a push endpoint to the caller's own device. Web
/// Push endpoints must be public `https:` URLs on port 443 unless their host is in
/// `push.endpoint_allow_hosts` (400 `endpoint_not_allowed`); a device has
/// at most `push.max_endpoints_per_device` (409 `too_many_endpoints`).
pub(crate) async fn put_push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PushReq>,
) -> Result<StatusCode, ApiError> {
    let device = authed(&state, &headers, None).await?;
    if req.endpoint.is_empty()
        || req.endpoint.len() > 1024
        || req.p256dh.len() > 128
        || req.auth.len() > 64
    {
        return Err(ApiError::BadRequest("bad_endpoint"));
    }
    match req.provider.as_str() {
        "webpush" | "unifiedpush" => {
            let keys_ok = crate::util::unb64(&req.p256dh).is_some_and(|k| k.len() == 65)
                && crate::util::unb64(&req.auth).is_some_and(|a| a.len() == 16);
            if !keys_ok {
                return Err(ApiError::BadRequest("bad_endpoint"));
            }
            check_endpoint(&req.endpoint, &state.config.push.endpoint_allow_hosts).map_err(
                |e| match e {
                    EndpointRefused::NotUrl => ApiError::BadRequest("bad_endpoint"),
                    EndpointRefused::NotHttps
                    | EndpointRefused::NotPublic
                    | EndpointRefused::Port => ApiError::BadRequest("endpoint_not_allowed"),
                },
            )?;
        }
        "apns" | "apns-app" | "fcm" => {}
        _ => return Err(ApiError::BadRequest("bad_provider")),
    }
    let ep = PushEndpoint {
        provider: req.provider,
        endpoint: req.endpoint,
        p256dh: req.p256dh,
        auth: req.auth,
    };
    let max = state.config.push.max_endpoints_per_device;
    if !state.store.put_push_endpoint(&device, &ep, max).await? {
        return Err(ApiError::Conflict("too_many_endpoints"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/turn`: TURN REST credentials for the caller.
pub(crate) async fn turn(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<crate::turn::TurnCredentials>, ApiError> {
    let device = authed(&state, &headers, None).await?;
    let turn = &state.config.turn;
    let secret = turn.secret.as_deref().ok_or(ApiError::NotFound)?;
    let ttl = if turn.ttl_s == 0 { 86_400 } else { turn.ttl_s };
    Ok(Json(crate::turn::credentials(
        secret.as_bytes(),
        device.as_str(),
        unix_ms() / 1000,
        ttl,
        turn.uris.clone(),
    )))
}

/// `GET /v1/vapid`: the VAPID public key apps subscribe with.
pub(crate) async fn vapid(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = state.pusher.vapid_public_key().ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"public_key": key})))
}

/// `GET /metrics`: Prometheus text, for clients in `metrics_allow`.
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Result<String, ApiError> {
    let client = state.client_of(&peer, &headers);
    if !state
        .config
        .metrics_allow
        .iter()
        .any(|c| c.contains(client))
    {
        return Err(ApiError::Forbidden);
    }
    metrics::gauge!("signald_connected_devices").set(state.hub.connected() as f64);
    state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .ok_or(ApiError::NotFound)
}
