//! `sotto-relay`: a TURN relay for Sotto calls and standard TURN clients.
#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Parser;
use sotto_relay::config::Options;
use sotto_relay::server::Server;
use tokio::signal::unix::{SignalKind, signal};

/// TURN relay (RFC 8656 / RFC 5766) over UDP, TCP and TLS.
#[derive(Debug, Parser)]
#[command(name = "sotto-relay", version)]
struct Cli {
    /// TOML configuration file; flags and SOTTO_RELAY_* variables override it.
    #[arg(long, short, env = "SOTTO_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and credentials, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "SOTTO_RELAY_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    options: Options,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOTTO_RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: journald and log files get plain text.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cli.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let base = match &cli.config {
        Some(p) => Options::from_file(p)?,
        None => Options::default(),
    };
    let settings = base.overridden_by(cli.options).resolve()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers.clamp(1, 4))
        .enable_all()
        .build()?;
    if cli.check_config {
        // What start checks: TLS files and relay addresses, then the same
        // credential load as at start and on SIGHUP (files and database).
        settings.preflight()?;
        let (users, secrets) = rt.block_on(settings.credentials())?.counts();
        println!(
            "config ok: realm={} udp={:?} tcp={:?} tls={:?} relay_v4={:?} relay_v6={:?} workers={} users={users} secrets={secrets}",
            settings.realm,
            settings.listen,
            settings.listen_tcp,
            settings.listen_tls,
            settings.relay_v4,
            settings.relay_v6,
            settings.workers
        );
        return Ok(());
    }
    rt.block_on(run(settings))
}

async fn run(settings: sotto_relay::config::Settings) -> anyhow::Result<()> {
    if let Some(addr) = settings.metrics_listen {
        let addr = sotto_relay::metrics::install(addr).await?;
        tracing::info!(%addr, "metrics endpoint: GET /metrics, /healthz");
    }
    // Handlers first: a supervisor may reload (SIGHUP) or stop the relay as
    // soon as it says it is ready, and SIGHUP's default action would kill it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let server = Server::start(settings).await?;
    tracing::info!(udp = ?server.udp_addrs, tcp = ?server.tcp_addrs, tls = ?server.tls_addrs, "sotto-relay ready");
    // One line on stdout for supervisors and tests that use port 0.
    println!(
        "READY udp={} tcp={} tls={}",
        join(&server.udp_addrs),
        join(&server.tcp_addrs),
        join(&server.tls_addrs)
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match server.reload_credentials().await {
                    Ok((users, secrets)) => tracing::info!(users, secrets, "credentials reloaded"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "credential reload failed; keeping the old ones"),
                }
                if let Err(e) = server.refresh_host_addresses() {
                    tracing::error!(error = %e, "reading interface addresses failed; keeping the old ones");
                }
            }
        }
    }
    tracing::info!(allocations = server.allocations(), "shutting down");
    server.shutdown().await;
    Ok(())
}

fn join(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
