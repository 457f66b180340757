//! `sotto-signald`: call signalling with push wakeups and TURN credentials.
//!
//! Configuration comes from a TOML file (`--config`), then flags, then
//! `SOTTO_SIGNALD_*` environment variables (flags and env share names).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sotto_signalling::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "sotto-signald",
    version,
    about = "Sotto call signalling server"
)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "SOTTO_SIGNALD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "SOTTO_SIGNALD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Database URL (`sqlite://file.db` or `postgres://…`).
    #[arg(long, env = "SOTTO_SIGNALD_DATABASE_URL")]
    database_url: Option<String>,
    /// This node's id.
    #[arg(long, env = "SOTTO_SIGNALD_NODE_ID")]
    node_id: Option<String>,
    /// Redis URL for multi-node routing.
    #[arg(long, env = "SOTTO_SIGNALD_REDIS_URL")]
    redis_url: Option<String>,
    /// Ring timeout (queued offer TTL), seconds.
    #[arg(long, env = "SOTTO_SIGNALD_RING_TIMEOUT_S")]
    ring_timeout_s: Option<u64>,
    /// TURN shared secret.
    #[arg(long, env = "SOTTO_SIGNALD_TURN_SECRET")]
    turn_secret: Option<String>,
    /// VAPID key file (created when missing).
    #[arg(long, env = "SOTTO_SIGNALD_VAPID_KEY_FILE")]
    vapid_key_file: Option<PathBuf>,
    /// Write the bound address to this file once listening (for supervisors and tests).
    #[arg(long, env = "SOTTO_SIGNALD_ADDR_FILE")]
    addr_file: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<(Config, Option<PathBuf>)> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Config::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.database_url {
            c.database_url = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = v;
        }
        if let Some(v) = self.redis_url {
            c.redis_url = Some(v);
        }
        if let Some(v) = self.ring_timeout_s {
            c.ring_timeout_s = v;
        }
        if let Some(v) = self.turn_secret {
            c.turn.secret = Some(v);
        }
        if let Some(v) = self.vapid_key_file {
            c.push.vapid_key_file = Some(v);
        }
        Ok((c, self.addr_file))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (config, addr_file) = Args::parse().into_config()?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let running = sotto_signalling::server::start(config, Some(metrics)).await?;
    if let Some(path) = addr_file {
        // Written whole then renamed, so readers never see half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, running.addr.to_string())?;
        std::fs::rename(&tmp, &path)?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    running.shutdown().await;
    Ok(())
}
