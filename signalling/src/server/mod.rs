//! The `sotto-signald` server: an axum app with an HTTP API (device
//! registration, sessions, push endpoints, key directory, TURN
//! credentials, metrics) and one WebSocket per online device.

mod conn;
mod http;
pub mod hub;
pub mod limits;
pub mod peer;
mod ws;

use std::future::IntoFuture as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Origin;
use crate::config::Config;
use crate::protocol::{DeviceId, MAX_FRAME_BYTES};
use crate::push::jwt::JwtKey;
use crate::push::{Providers, Pusher, RetryPolicy};
use crate::store::Store;
use crate::util::unix_ms;
use hub::Hub;
use limits::RateLimiter;

/// Shared state of one node.
#[derive(Debug)]
pub(crate) struct AppState {
    config: Config,
    /// The origins logins are accepted for ([`Config::accepted_origins`]).
    origins: Vec<Origin>,
    store: Store,
    hub: Arc<Hub>,
    pusher: Pusher,
    device_limits: Mutex<RateLimiter<DeviceId>>,
    ip_limits: Mutex<RateLimiter<IpAddr>>,
    /// The open connections, for WebSockets that proxies carry.
    conns: Arc<conn::Conns>,
    metrics: Option<PrometheusHandle>,
    shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// The client a request on `peer`'s connection comes from: the peer,
    /// or the client a trusted proxy names.
    fn client_of(&self, peer: &conn::Peer, headers: &axum::http::HeaderMap) -> IpAddr {
        peer::client_ip(
            peer.addr.ip(),
            headers,
            &self.config.trusted_proxies,
            self.config.client_ip_header,
        )
    }

    /// Whether `peer` is one of the trusted proxies.
    fn is_proxy(&self, peer: &conn::Peer) -> bool {
        let ip = peer.addr.ip();
        self.config.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: Store,
}

impl Running {
    /// Stops accepting, closes every connection, and closes the database
    /// (queued messages stay stored).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.store.close().await;
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Opens the store, builds the push providers and starts serving.
/// `metrics` is the Prometheus handle rendered at `/metrics`.
/// Refuses to start, with a [`crate::config::ConfigError`] naming the
/// setting, when the configuration is out of range.
pub async fn start(
    mut config: Config,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Running> {
    if let Some(path) = config.turn.secret_file.take() {
        let text = tokio::fs::read_to_string(&path)
            .await
            .with_context(|| format!("reading the TURN secret file {}", path.display()))?;
        config.turn.secret = Some(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    config.validate()?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        database = %redact_url(&config.database_url),
        node = %config.node_id,
        "starting"
    );
    let store = Store::open(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?;
    // Connections this node held before a crash are gone.
    store.clear_node(&config.node_id).await?;
    let providers = build_providers(&config).await?;
    let policy = RetryPolicy {
        max_attempts: config.push.max_attempts,
        base_delay: Duration::from_millis(config.push.retry_base_ms),
        max_delay: Duration::from_secs(config.ring_timeout_s),
    };
    let pusher = Pusher::new(store.clone(), providers, policy);
    let hub = Hub::new(
        config.node_id.clone(),
        store.clone(),
        config.redis_url.as_deref(),
    )
    .await
    .with_context(|| {
        let url = config.redis_url.as_deref().unwrap_or_default();
        format!("connecting to redis {}", redact_url(url))
    })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let origins = config.accepted_origins(addr)?;
    let shown: Vec<&str> = origins.iter().map(Origin::as_str).collect();
    if config.public_origins.is_empty() {
        tracing::info!(
            "public_origins is unset: logins are accepted for {shown:?} only, the address \
             listened on; list the URLs devices use in public_origins"
        );
    } else {
        tracing::info!("logins are accepted for {shown:?}");
    }
    let conns = conn::Conns::new(conn::ConnLimits {
        max_total: config.max_connections,
        max_per_ip: config.max_connections_per_ip,
        request_timeout: Duration::from_secs(config.request_timeout_s),
        trusted_proxies: config.trusted_proxies.clone().into(),
    });
    let grace = Duration::from_secs(config.shutdown_grace_s);
    let (tx, rx) = watch::channel(false);
    let state = Arc::new(AppState {
        device_limits: Mutex::new(RateLimiter::new(config.device_rate, config.device_burst)),
        ip_limits: Mutex::new(RateLimiter::new(config.ip_rate, config.ip_burst)),
        config,
        origins,
        store: store.clone(),
        hub,
        pusher,
        conns: conns.clone(),
        metrics,
        shutdown: rx.clone(),
    });
    spawn_sweeper(store.clone(), rx.clone());
    let app = router(state);
    let (mut stop, mut stop_serving) = (rx.clone(), rx);
    let listener = conn::ConnListener::new(listener, conns.clone());
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<conn::Peer>(),
        )
        .with_graceful_shutdown(async move {
            stopped(&mut stop_serving).await;
        });
        let mut serve = std::pin::pin!(serve.into_future());
        tokio::select! {
            _ = &mut serve => return,
            _ = stopped(&mut stop) => {}
        }
        // Requests in progress get the grace period; then every connection
        // still open is dropped, so that a client that never finishes its
        // request cannot keep the database from being closed.
        if tokio::time::timeout(grace, &mut serve).await.is_err() {
            tracing::warn!(
                open = conns.count(),
                "connections still open {grace:?} after shutdown began: dropping them"
            );
            conns.drop_all();
            // Hang guard: dropped sockets fail their next read or write.
            let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
        }
    });
    tracing::info!(%addr, "sotto-signald listening");
    Ok(Running {
        addr,
        shutdown: tx,
        task,
        store,
    })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/devices", post(http::register))
        .route("/v1/devices/{id}/keys", get(http::device_keys))
        .route("/v1/challenge", post(http::challenge))
        .route("/v1/session", post(http::session))
        .route("/v1/push", put(http::put_push))
        .route("/v1/turn", get(http::turn))
        .route("/v1/vapid", get(http::vapid))
        .route("/v1/ws", get(ws::upgrade))
        .route("/metrics", get(http::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { http::ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            http::ApiError::rejected(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::ip_limit,
        ))
        .layer(DefaultBodyLimit::max(MAX_FRAME_BYTES))
        .layer(axum::middleware::from_fn(conn::request_deadline))
        .with_state(state)
}

async fn build_providers(config: &Config) -> anyhow::Result<Providers> {
    // Push services have no reason to redirect; following one would let a
    // device's endpoint send our requests anywhere.
    let builder = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
    };
    let http = builder().build().context("building the HTTP client")?;
    let allow_hosts = &config.push.endpoint_allow_hosts;
    // Endpoints come from devices: names resolve to public addresses only,
    // and never through a proxy from the environment (HTTPS_PROXY,
    // ALL_PROXY…), which would resolve them itself, past that check.
    let device_http = builder()
        .no_proxy()
        .dns_resolver(Arc::new(crate::push::PublicResolver::new(allow_hosts)))
        .build()
        .context("building the HTTP client")?;
    let mut providers = Providers::default();
    if let Some(path) = &config.push.vapid_key_file {
        let key = match tokio::fs::read(path).await {
            Ok(bytes) => {
                use std::os::unix::fs::PermissionsExt as _;
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        "the VAPID key {} is readable by others; chmod 600 it",
                        path.display()
                    );
                }
                JwtKey::es256_from_pkcs8(&bytes)
                    .with_context(|| format!("VAPID key {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, der) = JwtKey::generate_es256()?;
                let to = path.clone();
                tokio::task::spawn_blocking(move || write_private(&to, &der))
                    .await?
                    .with_context(|| format!("saving the VAPID key {}", path.display()))?;
                key
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading the VAPID key {}", path.display()));
            }
        };
        providers.webpush = Some(crate::push::webpush::WebPush::new(
            key,
            config.push.vapid_subject.clone(),
            device_http,
            allow_hosts.clone(),
        ));
    }
    if let Some(a) = &config.push.apns {
        let apns_key = || format!("APNs key {}", a.key_file.display());
        let key = JwtKey::es256_from_pkcs8(
            &tokio::fs::read(&a.key_file)
                .await
                .with_context(|| format!("reading the {}", apns_key()))?,
        )
        .with_context(apns_key)?;
        providers.apns = Some(crate::push::apns::Apns::new(
            a.base_url.clone(),
            a.team_id.clone(),
            a.key_id.clone(),
            a.bundle_id.clone(),
            key,
        )?);
    }
    if let Some(f) = &config.push.fcm {
        let account = tokio::fs::read(&f.service_account_file)
            .await
            .with_context(|| {
                format!(
                    "reading the FCM account {}",
                    f.service_account_file.display()
                )
            })?;
        let account = serde_json::from_slice(&account).with_context(|| {
            format!(
                "parsing the FCM account {}",
                f.service_account_file.display()
            )
        })?;
        providers.fcm = Some(crate::push::fcm::Fcm::new(
            f.base_url.clone(),
            account,
            http,
        )?);
    }
    Ok(providers)
}

/// Writes a secret key file readable by its owner only (0600), whole or
/// not at all: a temp file beside it, synced, then renamed over `path`.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // A leftover from a crash may have other permissions: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Deletes expired queue rows, ids, challenges and sessions every few seconds.
fn spawn_sweeper(store: Store, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = store.sweep(unix_ms()).await {
                        tracing::warn!("sweep: {e}");
                    }
                }
                _ = stopped(&mut shutdown) => break,
            }
        }
    });
}

/// `url` with any password in it replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Resolves once shutdown is requested (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn passwords_are_left_out_of_urls_in_messages() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://sig:hunter2@db.example:5432/sig?sslmode=require"),
            "postgres://sig:***@db.example:5432/sig?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact_url("postgres://sig@db/sig"), "postgres://sig@db/sig");
        assert_eq!(
            redact_url("sqlite:///var/lib/s.db"),
            "sqlite:///var/lib/s.db"
        );
    }

    #[tokio::test]
    async fn a_bad_vapid_key_is_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.der");
        std::fs::write(&path, b"not a key").unwrap();
        let config = crate::config::Config {
            push: crate::config::PushConfig {
                vapid_key_file: Some(path.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = super::build_providers(&config).await.unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains(&format!("VAPID key {}", path.display())),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_created_vapid_key_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.der");
        // A world-readable leftover of an interrupted earlier write.
        std::fs::write(dir.path().join("vapid.der.tmp"), b"junk").unwrap();
        let config = crate::config::Config {
            push: crate::config::PushConfig {
                vapid_key_file: Some(path.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let providers = super::build_providers(&config).await.unwrap();
        assert!(providers.webpush.is_some());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        assert!(!dir.path().join("vapid.der.tmp").exists());
        // What was written is the key that is used from then on.
        let again = super::build_providers(&config).await.unwrap();
        assert_eq!(
            again.webpush.unwrap().public_key_b64(),
            providers.webpush.unwrap().public_key_b64()
        );
    }
}
