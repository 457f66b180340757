//! `sotto zrtp probe`: a bare ZRTP endpoint over UDP (tokio) that operators
//! can point at any ZRTP peer. On Secure it prints one JSON line with the
//! SAS, the negotiated algorithms and both directions' SRTP master keys and
//! salts, and exits 0; on failure it prints a JSON line to stderr and exits
//! non-zero.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use sotto_engine::zrtp::{
    AuthTagAlgo, CipherAlgo, Config, Endpoint, Event, Failure, HashAlgo, HelloHash, KeyAgreement,
    Policy, Role, SasAlgo, SecureInfo, ZidCache,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Which side to play.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProbeRole {
    /// Send the Commit.
    Initiator,
    /// Wait for the peer's Commit.
    Responder,
}

/// Options of `sotto zrtp probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Local UDP address to bind.
    #[arg(long)]
    listen: SocketAddr,
    /// The peer's UDP address.
    #[arg(long)]
    remote: SocketAddr,
    /// Our role.
    #[arg(long, value_enum, default_value = "initiator")]
    role: ProbeRole,
    /// Key agreements offered, preferred first (X255, X448, EC25, EC38, DH3k, DH2k).
    #[arg(long, value_delimiter = ',')]
    ka: Vec<String>,
    /// Hashes offered (S256, S384).
    #[arg(long, value_delimiter = ',')]
    hash: Vec<String>,
    /// Ciphers offered (AES1, AES3).
    #[arg(long, value_delimiter = ',')]
    cipher: Vec<String>,
    /// SRTP auth tags offered (HS32, HS80).
    #[arg(long, value_delimiter = ',')]
    auth: Vec<String>,
    /// SAS renderings offered (B32, B256).
    #[arg(long, value_delimiter = ',')]
    sas: Vec<String>,
    /// ZID cache file (created if missing, updated on success; after a
    /// cache mismatch it is left as it was, since the probe verifies no SAS).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// The peer's zrtp-hash from signalling, `"1.10 <hex>"`.
    #[arg(long)]
    peer_hello_hash: Option<String>,
    /// SSRC for our packets (random if absent).
    #[arg(long)]
    ssrc: Option<u32>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

fn list<T: FromStr>(names: &[String], default: Vec<T>) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    if names.is_empty() {
        return Ok(default);
    }
    names
        .iter()
        .map(|n| n.parse::<T>().with_context(|| format!("algorithm {n:?}")))
        .collect()
}

fn config(args: &ProbeArgs) -> Result<Config> {
    let d = Policy::default();
    let mut key_agreements: Vec<KeyAgreement> = list(&args.ka, d.key_agreements)?;
    if !key_agreements.contains(&KeyAgreement::Mult) {
        key_agreements.push(KeyAgreement::Mult);
    }
    let policy = Policy {
        hashes: list::<HashAlgo>(&args.hash, d.hashes)?,
        ciphers: list::<CipherAlgo>(&args.cipher, d.ciphers)?,
        auth_tags: list::<AuthTagAlgo>(&args.auth, d.auth_tags)?,
        key_agreements,
        sas: list::<SasAlgo>(&args.sas, d.sas)?,
    };
    let role = match args.role {
        ProbeRole::Initiator => Role::Initiator,
        ProbeRole::Responder => Role::Responder,
    };
    let mut cfg = Config {
        policy,
        ..Config::new(role)
    };
    if let Some(ssrc) = args.ssrc {
        cfg.ssrc = ssrc;
    }
    if let Some(h) = &args.peer_hello_hash {
        cfg.peer_hello_hash = Some(h.parse::<HelloHash>()?);
    }
    Ok(cfg)
}

/// The JSON line printed on Secure.
pub fn secure_json(info: &SecureInfo) -> serde_json::Value {
    serde_json::json!({
        "event": "secure",
        "sas": info.sas,
        "role": info.role.name(),
        "key_agreement": info.suite.key_agreement.name(),
        "hash": info.suite.hash.name(),
        "cipher": info.suite.cipher.name(),
        "auth_tag": info.suite.auth.name(),
        "sas_algo": info.suite.sas.name(),
        "sas_verified": info.sas_verified,
        "cache_mismatch": info.cache_mismatch,
        "peer_zid": hex::encode(info.peer_zid),
        "initiator_key": hex::encode(&info.srtp.initiator_key),
        "initiator_salt": hex::encode(&info.srtp.initiator_salt),
        "responder_key": hex::encode(&info.srtp.responder_key),
        "responder_salt": hex::encode(&info.srtp.responder_salt),
    })
}

/// Runs the probe; the exit code is 0 on Secure.
pub fn main(args: ProbeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("tokio runtime: {e}")),
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&crate::report::Causes(&e).to_string()),
    }
}

fn fail(reason: &str) -> ExitCode {
    eprintln!(
        "{}",
        serde_json::json!({ "event": "failed", "reason": reason })
    );
    ExitCode::FAILURE
}

async fn run(args: ProbeArgs) -> Result<()> {
    let cfg = config(&args)?;
    let cache = match &args.cache {
        Some(p) => ZidCache::load(p).with_context(|| format!("cache {}", p.display()))?,
        None => ZidCache::new(),
    };
    let sock = UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let role = cfg.role;
    let mut ep = Endpoint::new(cfg, cache);
    eprintln!(
        "{}",
        serde_json::json!({ "event": "hello_hash", "zrtp_hash": ep.hello_hash().to_string() })
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    ep.start(Instant::now());
    let mut buf = vec![0u8; 4096];
    let mut secure: Option<(Box<SecureInfo>, Instant)> = None;
    loop {
        while let Some(p) = ep.poll_transmit() {
            sock.send_to(&p, args.remote).await.context("send")?;
        }
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Secure(info) => {
                    // A responder lingers briefly to re-answer a repeated
                    // Confirm2 in case its Conf2ACK was lost.
                    let linger = if role == Role::Responder {
                        Duration::from_millis(300)
                    } else {
                        Duration::ZERO
                    };
                    secure = Some((info, Instant::now() + linger));
                }
                Event::Failed(f) => bail!("handshake failed: {}", describe(f)),
                Event::CacheMismatch { peer_zid } => {
                    eprintln!(
                        "{}",
                        serde_json::json!({ "event": "cache_mismatch", "peer_zid": hex::encode(peer_zid) })
                    );
                }
                Event::HelloHashMismatch => {
                    eprintln!("{}", serde_json::json!({ "event": "hello_hash_mismatch" }));
                }
                _ => {}
            }
        }
        if let Some((info, until)) = &secure
            && Instant::now() >= *until
        {
            println!("{}", secure_json(info));
            if let Some(p) = &args.cache {
                ep.cache()
                    .save(p)
                    .with_context(|| format!("save cache {}", p.display()))?;
            }
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("no result within {} s", args.timeout);
        }
        let mut wake = ep.poll_timeout().unwrap_or(deadline).min(deadline);
        if let Some((_, until)) = &secure {
            wake = wake.min(*until);
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, from) = r.context("recv")?;
                if from == args.remote {
                    let _ = ep.handle_input(Instant::now(), &buf[..n]);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                ep.handle_timeout(Instant::now());
            }
        }
    }
}

fn describe(f: Failure) -> String {
    match f {
        Failure::Local(e) => format!("{e} (sent Error 0x{:x})", e.code()),
        Failure::Peer(code) => format!("peer sent Error 0x{code:x}"),
        Failure::Timeout => "timeout: no answer from the peer".to_string(),
        Failure::HelloHashMismatch => "peer Hello does not match --peer-hello-hash".to_string(),
    }
}
