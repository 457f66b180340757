//! `sotto register`, `sotto call <user>` and `sotto listen`: the softphone
//! against a signald, headless (`--input`/`--output` WAV) with plain line
//! output; keys from stdin lines control the call (a answer, d decline,
//! y/n SAS matches or not, m mute, q hang up); Ctrl-C, SIGTERM and SIGHUP
//! hang up too, then end the process. They are caught from the start: one
//! that comes while signald is slow or hung (logging in, fetching keys,
//! before any offer went out) ends the command at once.
//!
//! A call that never became Secure did not take place: the command fails
//! (`listen` without `--once` says so and listens on), whatever ended it.

use crate::audio::GatedAudio;
use crate::config::{Config, Dirs};
use crate::devices::{DeviceAudio, Picker};
use crate::report::Causes;
use crate::session::{self, Account, Control, Peer, Started, Update};
use crate::stop::{self, Stop, StopSignals, Stopped};
use anyhow::{Context as _, anyhow};
use sotto_codecs::wav::{self, DataEnd};
use sotto_engine::call::echo::{EchoCancelled, EchoCanceller};
use sotto_engine::call::wav::{AudioPort, clip_48k_mono, save_48k_mono};
use sotto_engine::call::{Call, CallConfig, CallStats, EndReason, Event};
use sotto_engine::zrtp::ZidCache;
use sotto_signalling::client::{ClientError, ClientEvent, Connection, SignalClient};
use sotto_signalling::protocol::{CallId, DeviceId};
use sotto_signalling::seal::DeviceIdentity;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest recording kept for `--output`.
const MAX_RECORD: Duration = Duration::from_secs(600);
/// Plain-output statistics interval.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Connecting to signald, a hang guard.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest `--seconds`: a year, far from the timer's overflow.
const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// What a stop before the offer went out leaves undone.
const BEFORE_CALL: &str = ", before the call was placed";

/// Where the configuration lives.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigDir {
    /// Configuration directory (default: the platform's, e.g. ~/.config/sotto).
    #[arg(long, env = "SOTTO_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
}

/// `sotto register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The signalling server URL.
    #[arg(long)]
    pub server: String,
    /// Our user name.
    #[arg(long)]
    pub name: String,
    /// Always relay calls through TURN.
    #[arg(long)]
    pub relay_only: bool,
    /// PEM file of CA certificates to trust for an https server besides
    /// the Web PKI's (kept in config.toml as ca_file).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Replace this directory's existing device key with a new device
    /// (contacts, sound devices and `[audio]` in config.toml are kept).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    dir: ConfigDir,
}

/// Options shared by `call` and `listen`.
#[derive(Debug, clap::Args)]
pub struct CallOpts {
    /// Microphone from a WAV file instead of a device (read at start).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write what we hear, from the moment the call is Secure, to a WAV
    /// file (checked before any call; a call that never became Secure
    /// writes nothing). `listen` writes its first call to FILE and the
    /// next ones to FILE-2, FILE-3… (the number before the extension:
    /// heard.wav, heard-2.wav), printing each name as it is written.
    /// Headless calls only, so it needs --input: what a sound device
    /// plays is not recorded.
    #[arg(long, requires = "input", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Microphone device id (see `sotto devices`); overrides the config.
    #[arg(long)]
    pub input_device: Option<String>,
    /// Speaker device id (see `sotto devices`); overrides the config.
    #[arg(long)]
    pub output_device: Option<String>,
    /// Hang up this many seconds after the call is Secure (at most a year).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=MAX_SECONDS))]
    pub seconds: Option<u64>,
    /// Local address for media sockets (port 0: any). Default: this
    /// machine's first non-loopback address of each IP family; `0.0.0.0`
    /// or `::` also stand for that address.
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Always relay this call through TURN (also set by the config).
    #[arg(long)]
    pub relay_only: bool,
    #[command(flatten)]
    dir: ConfigDir,
}

/// `sotto call <user>`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// A contact name from config.toml, or a device id. Ids are base64url
    /// and one in 64 starts with '-', so a leading hyphen is a value here.
    #[arg(allow_hyphen_values = true)]
    pub user: String,
    #[command(flatten)]
    pub(crate) opts: CallOpts,
}

/// `sotto listen`.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Answer incoming calls without asking.
    #[arg(long)]
    pub auto_answer: bool,
    /// Exit after one call.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    opts: CallOpts,
}

/// Generates device keys, registers them and writes the config. An
/// existing device key is replaced only with `--force`, and then the rest
/// of the old config (contacts, sound devices, `[audio]`) is kept.
pub async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let dirs = Dirs::new(args.dir.config_dir)?;
    if dirs.has_key() && !args.force {
        return Err(anyhow!(
            "{} already holds a registered device; pass --force to replace its key \
             (the old device id stops working for this directory)",
            dirs.root().display()
        ));
    }
    let old = dirs.read_config_if_any()?.unwrap_or_default();
    let ca_file = match args.ca_file {
        Some(f) => f.display().to_string(),
        None => old.ca_file.clone(),
    };
    let id = Arc::new(DeviceIdentity::generate());
    let client = signal_client(&args.server, &ca_file, Arc::clone(&id))?;
    let device = client
        .register()
        .await
        .context("registering with signald")?;
    dirs.save_key(&id)?;
    dirs.save_config(&Config {
        server: args.server,
        ca_file,
        user: args.name,
        device_id: device.to_string(),
        relay_only: args.relay_only || old.relay_only,
        ..old
    })?;
    println!("registered device {device}");
    Ok(())
}

/// A client of `server` that also trusts the CAs in `ca_file` (when set).
fn signal_client(
    server: &str,
    ca_file: &str,
    id: Arc<DeviceIdentity>,
) -> anyhow::Result<SignalClient> {
    let pem = match ca_file {
        "" => Vec::new(),
        f => std::fs::read(f).with_context(|| format!("reading ca_file {f}"))?,
    };
    SignalClient::with_extra_roots(server, id, &pem).with_context(|| format!("ca_file {ca_file}"))
}

/// A logged-in, connected device.
struct Device {
    cfg: Config,
    dirs: Dirs,
    account: Account,
    conn: Connection,
}

/// Logs in and connects; a stop signal meanwhile ends it with
/// [`stop::Stopped`] (its message ends with `then`).
async fn device(dir: &ConfigDir, signals: &mut StopSignals, then: &str) -> anyhow::Result<Device> {
    let dirs = Dirs::new(dir.config_dir.clone())?;
    let (cfg, id) = dirs.load()?;
    let client = signal_client(&cfg.server, &cfg.ca_file, Arc::new(id))?
        .with_replay_file(dirs.replay_file())
        .context("replay.journal")?;
    let at = &cfg.server;
    let logging_in = || format!("logging in to signald at {at}");
    // Registering again changes nothing but gives a server that predates
    // signed key entries our signature, without which callers refuse our
    // keys. To the user it is part of logging in (registered long ago).
    let registering = async { client.register().await.with_context(logging_in) };
    signals
        .during(format!("{}{then}", logging_in()), registering)
        .await?;
    let login = async { Account::login(client).await.with_context(logging_in) };
    let account = signals
        .during(format!("{}{then}", logging_in()), login)
        .await?;
    let mut conn = account.client().connect(true);
    let connected = async {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match conn.next_event().await {
                    Some(ClientEvent::Connected) => return Ok(()),
                    Some(_) => {}
                    None => return Err(anyhow!("signalling connection stopped")),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("signald unreachable at {at}"))?
    };
    signals
        .during(format!("connecting to signald at {at}{then}"), connected)
        .await?;
    Ok(Device {
        cfg,
        dirs,
        account,
        conn,
    })
}

/// The `--input` WAV, read and checked before any call, and the
/// `--output` file checked (see [`check_output`]).
fn load_input(opts: &CallOpts) -> anyhow::Result<Option<Vec<i16>>> {
    let Some(p) = &opts.input else {
        return Ok(None);
    };
    let input = || format!("--input {}", p.display());
    let loaded = wav::load(p).with_context(input)?;
    if let DataEnd::Early { declared_frames } = loaded.end {
        // A truncated recording: play what is there, but say so.
        println!(
            "warning: --input {} ends early: read {:.2} s of the {:.2} s its header declares",
            p.display(),
            loaded.clip.seconds(),
            declared_frames as f64 / f64::from(loaded.clip.sample_rate)
        );
    }
    let pcm = clip_48k_mono(&loaded.clip).with_context(input)?;
    if pcm.is_empty() {
        println!(
            "warning: --input {} holds no audio (an empty WAV): the call sends silence",
            p.display()
        );
    }
    if let Some(out) = &opts.output {
        check_output(out)?;
    }
    Ok(Some(pcm))
}

/// Fails now, naming `path`, if `--output` could not be written after a
/// call, rather than losing what the call received. An existing file is
/// left as it is (probed with a write of no bytes, which a file that
/// takes no writes, such as /proc/version, refuses); a new one is created
/// and removed again.
fn check_output(path: &Path) -> anyhow::Result<()> {
    let cannot = || format!("cannot write --output {}", path.display());
    if path.is_dir() {
        return Err(anyhow!("{}: it is a directory", cannot()));
    }
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(mut f) => match std::io::Write::write(&mut f, &[]) {
            Ok(_) => Ok(()),
            Err(e) => Err(e).with_context(cannot),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(anyhow!("{}: no directory {}", cannot(), dir.display()));
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(cannot)?;
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Err(e) => Err(e).with_context(cannot),
    }
}

/// Where `listen --output FILE` writes its calls: FILE, then FILE-2,
/// FILE-3… with the number before the extension.
struct Outputs {
    first: PathBuf,
    written: u32,
}

impl Outputs {
    /// The file for the next call.
    fn next(&self) -> PathBuf {
        numbered(&self.first, self.written + 1)
    }
}

/// `path` for the `n`th call: `path` itself for the first, then
/// `stem-n.ext` (or `name-n` without an extension).
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// Writes the recording of a call that became Secure to `path` and says
/// so; a call that never did writes nothing (and leaves `path` alone).
fn save_recording(path: &Path, ended: &Ended) -> anyhow::Result<bool> {
    if !ended.secure {
        println!("{} not written: the call never connected", path.display());
        return Ok(false);
    }
    save_48k_mono(path, &ended.recording)
        .with_context(|| format!("writing --output {}", path.display()))?;
    println!(
        "wrote {} ({:.1} s)",
        path.display(),
        ended.recording.len() as f64 / 48_000.0
    );
    Ok(true)
}

/// Whether `s` looks like a device id as signald hands them out: 16
/// bytes in base64url, 22 characters.
fn looks_like_device_id(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `name` as a TOML key: bare when it can be, else a quoted string.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare {
        return name.to_owned();
    }
    let mut q = String::from("\"");
    for c in name.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Why `user` (a contact name or a device id) cannot be called at
/// `server`: a contact whose device is gone, an id nobody registered, or
/// neither, with the `[contacts]` line that would add it.
fn not_found(user: &str, contact: Option<&String>, server: &str) -> anyhow::Error {
    match contact {
        Some(id) => anyhow!("contact {user} ({id}) is not registered at {server}"),
        None if looks_like_device_id(user) => anyhow!(
            "no device {user} is registered at {server}: check the id \
             (`sotto listen` prints a device's id)"
        ),
        None => anyhow!(
            "{user} is neither a contact in config.toml nor a device registered at {server}; \
             add it under [contacts] as {} = \"DEVICE_ID\" (`sotto listen` prints a device's id)",
            toml_key(user)
        ),
    }
}

/// Places a call and runs it to the end.
pub async fn call(args: CallArgs) -> anyhow::Result<()> {
    // Caught before anything talks to signald, so that a stop while it is
    // slow or hung ends the command now rather than after its timeouts
    // (or, uncaught, kills it without a word).
    let mut signals = StopSignals::new()?;
    let input = load_input(&args.opts)?;
    let mut dev = device(&args.opts.dir, &mut signals, BEFORE_CALL).await?;
    let contact = dev.cfg.contacts.get(&args.user);
    let not_found = || not_found(&args.user, contact, &dev.cfg.server);
    let peer_id = DeviceId::new(contact.unwrap_or(&args.user).clone()).map_err(|_| not_found())?;
    if peer_id == dev.account.client().device_id() {
        // It would only ring nothing until the ring timeout.
        let who = match contact {
            Some(id) => format!("contact {} is this device's own id ({id})", args.user),
            None => format!("{peer_id} is this device's own id"),
        };
        return Err(anyhow!("{who}: a device cannot call itself"));
    }
    let fetch = async {
        match dev.account.device_keys(&peer_id).await {
            Err(ClientError::Status(404)) => Err(not_found()),
            r => r.context("fetching the callee's keys"),
        }
    };
    let doing = format!(
        "fetching the callee's keys from signald at {}{BEFORE_CALL}",
        dev.cfg.server
    );
    let keys = signals.during(doing, fetch).await?;
    let peer = Peer { keys, id: peer_id };
    let call = Call::outgoing(Instant::now(), call_config(&dev, &args.opts)?)?;
    println!("calling {}", args.user);
    let ended = run_call(
        &mut dev,
        &args.opts,
        input,
        &mut signals,
        call,
        None,
        peer,
        CallId::random(),
        false,
    )
    .await?;
    if let Some(p) = &args.opts.output {
        save_recording(p, &ended)?;
    }
    match ended.stopped {
        // Ctrl-C while it rang: the command was stopped before its work
        // was done, and exits as a shell reports the signal.
        Some(signal) if !ended.secure => Err(Stopped {
            signal,
            doing: "connecting the call, before it was secure".into(),
        }
        .into()),
        _ => exit_status(&ended),
    }
}

/// Waits for calls and runs them. A call that fails on our side (no TURN
/// relay, no sound) is declined and the phone keeps listening; a stop
/// signal ends the call in progress (or declines the one being set up)
/// and then the phone. Each call that became Secure is recorded to its
/// own `--output` file (see [`Outputs`]).
pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let mut signals = StopSignals::new()?;
    let input = load_input(&args.opts)?;
    let mut outputs = args
        .opts
        .output
        .clone()
        .map(|first| Outputs { first, written: 0 });
    let mut dev = device(&args.opts.dir, &mut signals, "").await?;
    // The ZID cache is read for every call; a broken one fails now.
    call_config(&dev, &args.opts)?;
    println!(
        "listening as {} ({})",
        dev.cfg.user,
        dev.account.client().device_id()
    );
    loop {
        let (call_id, from, offer, _) = tokio::select! {
            o = session::next_offer(&mut dev.conn) => o?,
            name = signals.recv() => {
                println!("{name}: stopped listening");
                return Ok(());
            }
        };
        let ended = answer(
            &mut dev,
            &args,
            input.clone(),
            &mut signals,
            (call_id.clone(), from.clone()),
            offer,
        )
        .await;
        match ended {
            Ok(ended) => {
                let saved = match &mut outputs {
                    Some(out) => save_recording(&out.next(), &ended).map(|w| {
                        out.written += u32::from(w);
                    }),
                    None => Ok(()),
                };
                if let Some(s) = ended.stopped {
                    // Told to stop: the phone's normal end, whatever the call.
                    saved?;
                    println!("{s}: stopped listening");
                    return Ok(());
                }
                let status = saved.and_then(|()| exit_status(&ended));
                if args.once {
                    return status;
                }
                if let Err(e) = status {
                    println!("call from {from}: {}", Causes(&e));
                }
            }
            Err(e) => {
                // A stop before the call was running: the caller is
                // declined (not left ringing), then the phone stops.
                let stop = stop::stopped(&e).map(|s| s.signal);
                match stop {
                    Some(s) => println!("{s}: declining the call from {from}"),
                    None => println!("call from {from} failed: {}; declined", Causes(&e)),
                }
                let declined = async {
                    let id =
                        session::decline_offer(&dev.account, &dev.conn, &from, call_id).await?;
                    if stop.is_some() {
                        // The process ends next: the decline must be out first.
                        session::flush(&mut dev.conn, [id].into()).await;
                    }
                    Ok(())
                };
                if let Err(d) = signals.during("declining the call", declined).await {
                    println!("warning: cannot decline the call: {}", Causes(&d));
                }
                if let Some(s) = stop {
                    println!("{s}: stopped listening");
                    return Ok(());
                }
                if args.once {
                    return Err(e);
                }
            }
        }
    }
}

/// Runs one incoming call (its call id and caller, and their offer) to the end.
async fn answer(
    dev: &mut Device,
    args: &ListenArgs,
    input: Option<Vec<i16>>,
    signals: &mut StopSignals,
    (call_id, from): (CallId, DeviceId),
    offer: sotto_engine::call::CallSignal,
) -> anyhow::Result<Ended> {
    let fetch = async {
        dev.account
            .device_keys(&from)
            .await
            .context("fetching the caller's keys")
    };
    let peer = Peer {
        keys: signals.during("fetching the caller's keys", fetch).await?,
        id: from,
    };
    match dev.cfg.contact_name(peer.id.as_str()) {
        Some(name) => println!("incoming call from {name} ({})", peer.id),
        None => println!("incoming call from {}", peer.id),
    }
    let call = Call::incoming(Instant::now(), call_config(dev, &args.opts)?)?;
    run_call(
        dev,
        &args.opts,
        input,
        signals,
        call,
        Some(offer),
        peer,
        call_id,
        args.auto_answer,
    )
    .await
}

/// How a call ended.
struct Ended {
    reason: EndReason,
    /// Whether it was ever Secure.
    secure: bool,
    /// The stop signal that hung it up: the phone exits after it.
    stopped: Option<Stop>,
    /// What we heard from the moment it was Secure (headless calls).
    recording: Vec<i16>,
}

/// The sound devices, with the echo of the speaker removed from the
/// microphone when `[audio] echo_cancellation` is on (the default).
fn with_echo_cancelled(d: DeviceAudio, dev: &Device) -> Box<dyn AudioPort> {
    if !dev.cfg.audio.echo_cancellation {
        return Box::new(d);
    }
    match EchoCanceller::start() {
        Ok(aec) => Box::new(EchoCancelled::new(d, aec)),
        Err(e) => {
            println!("warning: {e}; the peer may hear an echo (use a headset)");
            Box::new(d)
        }
    }
}

/// The media sockets' addresses: the one asked for, or one per family
/// that follows the network (a call moves when its address goes away).
fn bind_addrs(bind: Option<SocketAddr>) -> Vec<SocketAddr> {
    bind.map_or_else(sotto_engine::driver::following_bind_addrs, |b| vec![b])
}

/// The command's result for a call that ended: a hang-up by either side
/// after it was Secure is success; a call that never became Secure did
/// not take place, whatever ended it (the peer's hang-up included).
fn exit_status(ended: &Ended) -> anyhow::Result<()> {
    let never = "the call never connected";
    match (&ended.reason, ended.secure) {
        (EndReason::LocalHangup | EndReason::RemoteHangup, true) => Ok(()),
        (r, true) => Err(anyhow!("call ended: {r:?}")),
        (EndReason::RemoteHangup, false) => Err(anyhow!(
            "{never}: the other side hung up before it was secure"
        )),
        (EndReason::LocalHangup, false) => Err(anyhow!("{never}: hung up before it was secure")),
        (r, false) => Err(anyhow!("{never}: {r:?}")),
    }
}

fn call_config(dev: &Device, opts: &CallOpts) -> anyhow::Result<CallConfig> {
    Ok(CallConfig {
        zid_cache: ZidCache::load(&dev.dirs.zid_cache()).context("zid.cache")?,
        relay_only: opts.relay_only || dev.cfg.relay_only,
        audio: dev.cfg.audio.audio_config(),
        ..CallConfig::default()
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_call(
    dev: &mut Device,
    opts: &CallOpts,
    input: Option<Vec<i16>>,
    signals: &mut StopSignals,
    call: Call,
    offer: Option<sotto_engine::call::CallSignal>,
    peer: Peer,
    call_id: CallId,
    auto_answer: bool,
) -> anyhow::Result<Ended> {
    let relay_only = opts.relay_only || dev.cfg.relay_only;
    // An outgoing call's offer goes out only once `run` below runs: a stop
    // until then ends the command with nothing for the callee to hear.
    let then = if offer.is_none() { BEFORE_CALL } else { "" };
    let fetch = async {
        match dev.account.ice_config().await {
            Ok(ice) => Ok(ice),
            Err(e) if !relay_only => {
                println!("warning: no TURN relay ({}); direct paths only", Causes(&e));
                Ok(Default::default())
            }
            Err(e) => Err(e),
        }
    };
    let doing = format!(
        "fetching TURN credentials from signald at {}{then}",
        dev.cfg.server
    );
    let ice = signals.during(doing, fetch).await?;
    let headless = |source| GatedAudio::new(source, 48_000 * MAX_RECORD.as_secs() as usize);
    let input_device = opts
        .input_device
        .as_deref()
        .unwrap_or(&dev.cfg.input_device);
    let output_device = opts
        .output_device
        .as_deref()
        .unwrap_or(&dev.cfg.output_device);
    let mut picker = None;
    let (audio, gate, recording): (Box<dyn AudioPort>, _, _) = match input {
        Some(pcm) => {
            let a = headless(pcm);
            let (g, r) = (a.gate(), a.recording());
            (Box::new(a), g, r)
        }
        None => match DeviceAudio::open(input_device, output_device) {
            Ok(d) => {
                let (fi, fo) = d.formats();
                println!("sound: input {fi}, output {fo}");
                match Picker::new(d.switcher(), input_device, output_device) {
                    Ok(p) => picker = Some(p),
                    Err(e) => println!("warning: cannot list sound devices: {}", Causes(&e)),
                }
                // --output needs --input: nothing to record here.
                let a = headless(Vec::new());
                (with_echo_cancelled(d, dev), a.gate(), a.recording())
            }
            Err(e) => {
                println!(
                    "warning: {}; no sound (use --input/--output WAV)",
                    Causes(&e)
                );
                let a = headless(Vec::new());
                let (g, r) = (a.gate(), a.recording());
                (Box::new(a), g, r)
            }
        },
    };
    let start = async {
        let mut started = Started::new(call, &bind_addrs(opts.bind), ice, audio).await?;
        started.persist_cache(dev.dirs.zid_cache());
        for a in started.handle().local_addrs() {
            println!("media socket {a}");
        }
        match offer {
            Some(o) => started.handle().signal(o).await?,
            // Queued for `run` to seal and send.
            None => started.handle().place().await?,
        }
        Ok(started)
    };
    let started = signals
        .during(format!("starting the call{then}"), start)
        .await?;
    let (ctl_tx, ctl_rx) = mpsc::channel(8);
    let (upd_tx, upd_rx) = mpsc::unbounded_channel();
    let run = started.run(
        &dev.account,
        &mut dev.conn,
        &peer,
        &call_id,
        ctl_rx,
        upd_tx,
        STATS_EVERY,
    );
    let ui = async {
        if std::io::stdout().is_terminal() {
            let gate2 = gate.clone();
            let devices = crate::tui::run(
                upd_rx,
                ctl_tx.clone(),
                picker,
                move || gate2.open(),
                auto_answer,
                opts.seconds,
            )
            .await?;
            return Ok(devices);
        }
        plain(upd_rx, &ctl_tx, &gate, auto_answer, opts.seconds).await;
        Ok::<_, std::io::Error>(None)
    };
    let both = async { tokio::join!(run, ui) };
    tokio::pin!(both);
    let mut stopped = None;
    let (outcome, ui) = loop {
        tokio::select! {
            r = &mut both => break r,
            // A hang-up like `q`: the peer hears it, the terminal is restored.
            s = signals.recv(), if stopped.is_none() => {
                stopped = Some(s);
                let _ = ctl_tx.send(Control::HangUp).await;
            }
        }
    };
    match ui {
        Ok(Some((input, output))) => {
            // Remember the devices the user moved to for the next call.
            if let Err(e) = dev.dirs.save_devices(&input, &output) {
                println!("warning: cannot save the device choice: {}", Causes(&e));
            }
            dev.cfg.input_device = input;
            dev.cfg.output_device = output;
        }
        Ok(None) => {}
        Err(e) => println!("warning: terminal: {e}"),
    }
    let outcome = outcome?;
    let recording = match recording.lock() {
        Ok(mut r) => std::mem::take(&mut *r),
        Err(e) => std::mem::take(&mut *e.into_inner()),
    };
    Ok(Ended {
        reason: outcome.reason,
        secure: outcome.secure,
        stopped,
        recording,
    })
}

/// Plain line output and stdin keys (from the process's one reader, see
/// [`crate::keys`]), until the call's updates end.
async fn plain(
    mut upd_rx: mpsc::UnboundedReceiver<Update>,
    ctl_tx: &mpsc::Sender<Control>,
    gate: &crate::audio::Gate,
    auto_answer: bool,
    seconds: Option<u64>,
) {
    let mut stdin_open = true;
    let mut muted = false;
    let mut hangup_at: Option<tokio::time::Instant> = None;
    let mut last: Option<(Instant, CallStats)> = None;
    loop {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            u = upd_rx.recv() => match u {
                None => return,
                Some(u) => {
                    if let Update::Event(Event::SecureUp { .. }) = &u {
                        gate.open();
                        hangup_at = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                    }
                    if auto_answer && matches!(u, Update::Event(Event::Ringing { incoming: true })) {
                        let _ = ctl_tx.send(Control::Answer).await;
                    }
                    show(&u, &mut last);
                }
            },
            l = crate::keys::next_line(), if stdin_open => match l {
                Some(l) => {
                    let c = match l.trim() {
                        "a" => Some(Control::Answer),
                        "d" => Some(Control::Decline),
                        "y" => Some(Control::ConfirmSas(true)),
                        "n" => Some(Control::ConfirmSas(false)),
                        "m" => { muted = !muted; Some(Control::Mute(muted)) }
                        "q" => Some(Control::HangUp),
                        _ => None,
                    };
                    if let Some(c) = c { let _ = ctl_tx.send(c).await; }
                }
                None => stdin_open = false,
            },
            () = tokio::time::sleep_until(hangup_at.unwrap_or(far)) => {
                hangup_at = None;
                let _ = ctl_tx.send(Control::HangUp).await;
            }
        }
    }
}

/// What the caller is told when the callee is not connected.
pub fn offer_queued(kept: Duration) -> String {
    format!(
        "not connected: signald keeps the offer {} s and wakes the callee by push if it can",
        kept.as_secs()
    )
}

/// One plain output line per event; statistics every 5 s.
fn show(u: &Update, last: &mut Option<(Instant, CallStats)>) {
    match u {
        Update::Event(e) => match e {
            Event::Ringing { incoming: true } => println!("ringing: a answer, d decline"),
            Event::Ringing { incoming: false } => println!("ringing"),
            Event::Connected => println!("connected"),
            Event::PathChanged(k) => println!("path {k:?}"),
            Event::SecureUp {
                sas,
                algorithms,
                sas_verified,
            } => println!(
                "secure sas={sas} verified={sas_verified} algorithms={algorithms} (y: SAS matches, n: it does not)"
            ),
            Event::CacheMismatch => {
                println!(
                    "warning: cache mismatch: retained secrets differ. Compare the SAS aloud; \
                     press y if it matches (only then is the new key remembered), n if not"
                )
            }
            Event::HelloHashMismatch => {
                println!(
                    "warning: zrtp-hash mismatch: the media peer is not who signalling described"
                )
            }
            Event::ServerFailed { server, reason } => {
                println!("warning: server {server}: {reason}")
            }
            Event::Ended { reason } => println!("ended {reason:?}"),
            Event::Stats(_) | Event::Signal(_) => {}
        },
        Update::Stats(s) => {
            let now = Instant::now();
            if last
                .as_ref()
                .is_some_and(|(t, _)| now - *t < Duration::from_secs(5))
            {
                return;
            }
            let line = crate::stats::Line::of(s, last.as_ref().map(|(t, p)| (now - *t, p)));
            println!("stats {line}");
            *last = Some((now, (**s).clone()));
        }
        Update::Dropped(m) => println!("dropped signalling message: {m}"),
        Update::Busy(from) => println!("declined a call from {from}: busy"),
        Update::OfferQueued(kept) => println!("{}", offer_queued(*kept)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_certificates_is_a_clear_error() {
        let id = || Arc::new(DeviceIdentity::generate());
        let server = "https://signal.example.org";
        assert!(signal_client(server, "", id()).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-ca.pem");
        let e = signal_client(server, &missing.display().to_string(), id()).unwrap_err();
        assert!(format!("{e:#}").contains("reading ca_file"), "{e:#}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = signal_client(server, &bad.display().to_string(), id()).unwrap_err();
        assert!(format!("{e:#}").contains("TLS set-up"), "{e:#}");
    }

    #[test]
    fn listen_numbers_its_recordings_before_the_extension() {
        let first = Path::new("out/heard.wav");
        assert_eq!(numbered(first, 1), first);
        assert_eq!(numbered(first, 2), Path::new("out/heard-2.wav"));
        assert_eq!(numbered(first, 13), Path::new("out/heard-13.wav"));
        assert_eq!(numbered(Path::new("heard"), 3), Path::new("heard-3"));
        assert_eq!(
            numbered(Path::new("a.b/heard.x.wav"), 2),
            Path::new("a.b/heard.x-2.wav")
        );
        let out = Outputs {
            first: first.into(),
            written: 1,
        };
        assert_eq!(out.next(), Path::new("out/heard-2.wav"));
    }

    #[test]
    fn the_contact_line_offered_is_valid_toml_for_any_name() {
        for name in [
            "bob",
            "no such!",
            "bob.smith",
            "",
            "a\"b\\c",
            "tab\there",
            "émile",
        ] {
            let line = format!("[contacts]\n{} = \"DEVICE_ID\"\n", toml_key(name));
            let cfg: Config = toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                cfg.contacts.get(name).map(String::as_str),
                Some("DEVICE_ID"),
                "{line}"
            );
        }
        assert_eq!(toml_key("bob_2-x"), "bob_2-x");
        assert!(looks_like_device_id("-gfDc0NvdVrWK50yd0ho5Q"));
        assert!(!looks_like_device_id("bob"));
        let e = not_found("AAAAAAAAAAAAAAAAAAAAAA", None, "http://s").to_string();
        assert!(
            e.contains("no device AAAAAAAAAAAAAAAAAAAAAA") && !e.contains("[contacts]"),
            "{e}"
        );
    }
}
