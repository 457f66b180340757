//! `sotto-signald`: call signalling with push wakeups and TURN credentials.
//!
//! Configuration comes from a TOML file (`--config`), then flags, then
//! `SOTTO_SIGNALD_*` environment variables (flags and env share names).
//!
//! `sotto-signald turn-user add|remove|list` manages the static TURN users
//! that sotto-relay loads from the same database (`auth_database`); it
//! needs `--config` or `--database-url` (flags may follow the subcommand).
//!
//! The TURN shared secret comes from the config file (`[turn] secret` or
//! `secret_file`), `SOTTO_SIGNALD_TURN_SECRET`, or `--turn-secret-file`;
//! never from the command line, where `ps` would show it. SIGHUP is
//! logged and otherwise ignored (nothing is reloaded). Logs go to
//! standard error.
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
    #[arg(long, global = true, env = "SOTTO_SIGNALD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, global = true, env = "SOTTO_SIGNALD_LISTEN")]
    listen: Option<SocketAddr>,
    /// An origin devices reach this server at (`https://host[:port]`);
    /// repeat it, or separate them with commas, for several. Logins signed
    /// for any other origin are refused. Needed unless listening on
    /// loopback; replaces `public_origins` of the config file.
    #[arg(
        long = "public-origin",
        global = true,
        env = "SOTTO_SIGNALD_PUBLIC_ORIGINS",
        value_delimiter = ','
    )]
    public_origins: Vec<String>,
    /// Database URL (`sqlite://file.db` or `postgres://…`).
    #[arg(long, global = true, env = "SOTTO_SIGNALD_DATABASE_URL")]
    database_url: Option<String>,
    /// This node's id.
    #[arg(long, global = true, env = "SOTTO_SIGNALD_NODE_ID")]
    node_id: Option<String>,
    /// Redis URL for multi-node routing (must answer at start; reconnected
    /// by itself after a Redis restart).
    #[arg(long, global = true, env = "SOTTO_SIGNALD_REDIS_URL")]
    redis_url: Option<String>,
    /// Ring timeout (queued offer TTL), seconds, 1 to 300.
    #[arg(long, global = true, env = "SOTTO_SIGNALD_RING_TIMEOUT_S")]
    ring_timeout_s: Option<u64>,
    /// A file holding the TURN shared secret (the relay's
    /// static-auth-secret; a trailing newline is ignored). Or set
    /// SOTTO_SIGNALD_TURN_SECRET, or `[turn] secret_file` / `secret` in the
    /// config file. Never on the command line, where `ps` shows it.
    #[arg(long, global = true, env = "SOTTO_SIGNALD_TURN_SECRET_FILE")]
    turn_secret_file: Option<PathBuf>,
    /// Refused: a secret on the command line shows in `ps`.
    #[arg(long, hide = true)]
    turn_secret: Option<String>,
    /// VAPID key file (created when missing).
    #[arg(long, global = true, env = "SOTTO_SIGNALD_VAPID_KEY_FILE")]
    vapid_key_file: Option<PathBuf>,
    /// Write the bound address to this file once listening (for supervisors and tests).
    #[arg(long, global = true, env = "SOTTO_SIGNALD_ADDR_FILE")]
    addr_file: Option<PathBuf>,
    /// An administrative command instead of serving. Flags above may
    /// come before or after it.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Static TURN users for sotto-relay (`auth_database`); the relay
    /// picks changes up on SIGHUP.
    TurnUser {
        #[command(subcommand)]
        action: TurnUserAction,
    },
}

#[derive(Debug, clap::Subcommand)]
enum TurnUserAction {
    /// Adds or replaces a user. The password is read from
    /// SOTTO_TURN_PASSWORD, else from the first line of standard input
    /// (never from the command line, where `ps` would show it).
    Add {
        /// The relay's realm.
        #[arg(long)]
        realm: String,
        /// TURN username.
        username: String,
    },
    /// Removes a user.
    Remove {
        /// The relay's realm.
        #[arg(long)]
        realm: String,
        /// TURN username.
        username: String,
    },
    /// Lists the users of a realm.
    List {
        /// The relay's realm.
        #[arg(long)]
        realm: String,
    },
}

async fn turn_user(database_url: &str, action: TurnUserAction) -> anyhow::Result<()> {
    let store = sotto_signalling::store::Store::open(database_url).await?;
    match action {
        TurnUserAction::Add { realm, username } => {
            let password = match std::env::var("SOTTO_TURN_PASSWORD") {
                Ok(p) => zeroize::Zeroizing::new(p),
                Err(_) => {
                    let mut line = zeroize::Zeroizing::new(String::new());
                    std::io::stdin().read_line(&mut line)?;
                    zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
                }
            };
            anyhow::ensure!(!password.is_empty(), "empty password");
            anyhow::ensure!(
                !username.is_empty() && !realm.is_empty(),
                "empty username or realm"
            );
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64;
            store
                .put_turn_user(&realm, &username, &password, now_ms)
                .await?;
            println!("TURN user {username} ({realm}) stored");
        }
        TurnUserAction::Remove { realm, username } => {
            anyhow::ensure!(
                store.remove_turn_user(&realm, &username).await?,
                "no TURN user {username} in realm {realm}"
            );
            println!("TURN user {username} ({realm}) removed");
        }
        TurnUserAction::List { realm } => {
            for u in store.turn_users(&realm).await? {
                println!("{u}");
            }
        }
    }
    store.close().await;
    Ok(())
}

impl Args {
    /// Whether the database was named (`--config`, whose `database_url`
    /// is used, or `--database-url`), rather than left to the default.
    fn names_database(&self) -> bool {
        self.config.is_some() || self.database_url.is_some()
    }

    fn into_config(self) -> anyhow::Result<(Config, Option<PathBuf>, Option<Command>)> {
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
        if !self.public_origins.is_empty() {
            c.public_origins = self.public_origins;
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
        anyhow::ensure!(
            self.turn_secret.is_none(),
            "--turn-secret is refused: the secret would show in `ps` to every user of this \
             machine; set SOTTO_SIGNALD_TURN_SECRET, or give --turn-secret-file FILE"
        );
        if let Ok(v) = std::env::var("SOTTO_SIGNALD_TURN_SECRET") {
            c.turn.secret = Some(v);
            c.turn.secret_file = None;
        }
        if let Some(v) = self.turn_secret_file {
            c.turn.secret_file = Some(v);
            c.turn.secret = None;
        }
        if let Some(v) = self.vapid_key_file {
            c.push.vapid_key_file = Some(v);
        }
        Ok((c, self.addr_file, self.command))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    // Logs go to standard error, coloured only on a terminal (not into a
    // journal or a file as escape codes).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let names_database = args.names_database();
    let (config, addr_file, command) = args.into_config()?;
    if let Some(Command::TurnUser { action }) = command {
        // Never a database made up in the working directory by mistake.
        anyhow::ensure!(
            names_database,
            "turn-user needs the database sotto-relay reads: give --config FILE (its \
             database_url) or --database-url URL (or SOTTO_SIGNALD_CONFIG / \
             SOTTO_SIGNALD_DATABASE_URL)"
        );
        eprintln!(
            "database: {}",
            sotto_signalling::server::redact_url(&config.database_url)
        );
        return turn_user(&config.database_url, action).await;
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    // Handlers before the server says where it is: a supervisor may signal
    // it as soon as it is up. SIGHUP (a closed terminal, or `reload` by
    // habit) must not kill the server, as its default action would.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let running = sotto_signalling::server::start(config, Some(metrics)).await?;
    if let Some(path) = addr_file {
        // Written whole then renamed, so readers never see half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, running.addr.to_string())?;
        std::fs::rename(&tmp, &path)?;
    }
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupt: shutting down");
                break;
            }
            _ = hup.recv() => tracing::info!(
                "SIGHUP: nothing is reloaded; restart sotto-signald to apply configuration changes"
            ),
        }
    }
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let args =
            Args::try_parse_from(std::iter::once("sotto-signald").chain(args.iter().copied()));
        args.unwrap().into_config().unwrap().0
    }

    #[test]
    fn public_origins_come_from_repeated_or_comma_separated_flags() {
        let c = config(&[
            "--public-origin",
            "https://a.example",
            "--public-origin",
            "https://b.example:8443",
        ]);
        assert_eq!(
            c.public_origins,
            ["https://a.example", "https://b.example:8443"]
        );
        let c = config(&["--public-origin", "https://a.example,https://b.example"]);
        assert_eq!(c.public_origins, ["https://a.example", "https://b.example"]);
        let bound = SocketAddr::from(([0, 0, 0, 0], 8787));
        let accepted = c.accepted_origins(bound).unwrap();
        assert_eq!(accepted.len(), 2);
        // Without them, a server off loopback does not start.
        assert!(config(&[]).accepted_origins(bound).is_err());
    }
}
