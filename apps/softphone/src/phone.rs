//! `sotto register`, `sotto call <user>` and `sotto listen`: the softphone
//! against a signald, headless (`--input`/`--output` WAV) with plain line
//! output; keys from stdin lines control the call (a answer, d decline,
//! y/n SAS matches or not, m mute, q hang up).

use crate::audio::GatedAudio;
use crate::config::{Config, Dirs};
use crate::devices::{DeviceAudio, Picker};
use crate::session::{self, Control, Peer, Started, Update};
use anyhow::{Context as _, anyhow};
use sotto_engine::call::wav::{AudioPort, load_48k_mono, save_48k_mono};
use sotto_engine::call::{Call, CallConfig, CallStats, EndReason, Event};
use sotto_engine::zrtp::ZidCache;
use sotto_signalling::client::{ClientError, ClientEvent, Connection, SignalClient};
use sotto_signalling::protocol::{CallId, DeviceId};
use sotto_signalling::seal::DeviceIdentity;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

/// Longest recording kept for `--output`.
const MAX_RECORD: Duration = Duration::from_secs(600);
/// Plain-output statistics interval.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Connecting to signald, a hang guard.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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
    #[command(flatten)]
    dir: ConfigDir,
}

/// Options shared by `call` and `listen`.
#[derive(Debug, clap::Args)]
pub struct CallOpts {
    /// Microphone from a WAV file instead of a device.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write what we hear to a WAV file.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Microphone device id (see `sotto devices`); overrides the config.
    #[arg(long)]
    pub input_device: Option<String>,
    /// Speaker device id (see `sotto devices`); overrides the config.
    #[arg(long)]
    pub output_device: Option<String>,
    /// Hang up this many seconds after the call is Secure.
    #[arg(long)]
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

/// Generates device keys, registers them and writes the config.
pub async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let dirs = Dirs::new(args.dir.config_dir)?;
    let id = Arc::new(DeviceIdentity::generate());
    let client = SignalClient::new(&args.server, Arc::clone(&id));
    let device = client
        .register()
        .await
        .context("registering with signald")?;
    dirs.save_key(&id)?;
    dirs.save_config(&Config {
        server: args.server,
        user: args.name,
        device_id: device.to_string(),
        relay_only: args.relay_only,
        ..Config::default()
    })?;
    println!("registered device {device}");
    Ok(())
}

/// A logged-in, connected device.
struct Device {
    cfg: Config,
    dirs: Dirs,
    client: SignalClient,
    token: String,
    conn: Connection,
}

async fn device(dir: &ConfigDir) -> anyhow::Result<Device> {
    let dirs = Dirs::new(dir.config_dir.clone())?;
    let (cfg, id) = dirs.load()?;
    let client = SignalClient::new(&cfg.server, Arc::new(id));
    // Registering again changes nothing but gives a server that predates
    // signed key entries our signature, without which callers refuse our keys.
    client
        .register()
        .await
        .context("registering with signald")?;
    let token = client.login().await.context("logging in to signald")?;
    let mut conn = client.connect(true);
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
    .map_err(|_| anyhow!("signald unreachable at {}", cfg.server))??;
    Ok(Device {
        cfg,
        dirs,
        client,
        token,
        conn,
    })
}

/// Places a call and runs it to the end.
pub async fn call(args: CallArgs) -> anyhow::Result<()> {
    let mut dev = device(&args.opts.dir).await?;
    let contact = dev.cfg.contacts.get(&args.user);
    let not_found = || match contact {
        Some(id) => anyhow!(
            "contact {} ({id}) is not registered at {}",
            args.user,
            dev.cfg.server
        ),
        None => anyhow!(
            "{} is neither a contact in config.toml nor a device registered at {}; \
             add it under [contacts] as {} = \"DEVICE_ID\" (`sotto listen` prints a device's id)",
            args.user,
            dev.cfg.server,
            args.user
        ),
    };
    let peer_id = DeviceId::new(contact.unwrap_or(&args.user).clone()).map_err(|_| not_found())?;
    let keys = match dev.client.device_keys(&dev.token, &peer_id).await {
        Err(ClientError::Status(404)) => return Err(not_found()),
        r => r.context("fetching the callee's keys")?,
    };
    let peer = Peer { keys, id: peer_id };
    let call = Call::outgoing(Instant::now(), call_config(&dev, &args.opts)?)?;
    println!("calling {}", args.user);
    let reason = run_call(
        &mut dev,
        &args.opts,
        call,
        None,
        peer,
        CallId::random(),
        false,
    )
    .await?;
    exit_status(reason)
}

/// Waits for calls and runs them.
pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let mut dev = device(&args.opts.dir).await?;
    println!("listening as {} ({})", dev.cfg.user, dev.client.device_id());
    loop {
        let (call_id, from, offer, _) = session::next_offer(&mut dev.conn).await?;
        let peer = Peer {
            keys: dev.client.device_keys(&dev.token, &from).await?,
            id: from,
        };
        match dev.cfg.contact_name(peer.id.as_str()) {
            Some(name) => println!("incoming call from {name} ({})", peer.id),
            None => println!("incoming call from {}", peer.id),
        }
        let call = Call::incoming(Instant::now(), call_config(&dev, &args.opts)?)?;
        let reason = run_call(
            &mut dev,
            &args.opts,
            call,
            Some(offer),
            peer,
            call_id,
            args.auto_answer,
        )
        .await?;
        if args.once {
            return exit_status(reason);
        }
    }
}

/// The media sockets' addresses: the one asked for, or one per family.
fn bind_addrs(bind: Option<SocketAddr>) -> Vec<SocketAddr> {
    bind.map_or_else(sotto_engine::driver::default_bind_addrs, |b| vec![b])
}

fn exit_status(reason: EndReason) -> anyhow::Result<()> {
    match reason {
        EndReason::LocalHangup | EndReason::RemoteHangup => Ok(()),
        r => Err(anyhow!("call ended: {r:?}")),
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
    call: Call,
    offer: Option<sotto_engine::call::CallSignal>,
    peer: Peer,
    call_id: CallId,
    auto_answer: bool,
) -> anyhow::Result<EndReason> {
    let relay_only = opts.relay_only || dev.cfg.relay_only;
    let ice = match session::ice_config(&dev.client, &dev.token).await {
        Ok(ice) => ice,
        Err(e) if !relay_only => {
            println!("warning: no TURN relay ({e:#}); direct paths only");
            Default::default()
        }
        Err(e) => return Err(e),
    };
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
    let (audio, gate, recording): (Box<dyn AudioPort>, _, _) = match &opts.input {
        Some(p) => {
            let a = headless(load_48k_mono(p).with_context(|| format!("{}", p.display()))?);
            let (g, r) = (a.gate(), a.recording());
            (Box::new(a), g, r)
        }
        None => match DeviceAudio::open(input_device, output_device) {
            Ok(d) => {
                match Picker::new(d.switcher(), input_device, output_device) {
                    Ok(p) => picker = Some(p),
                    Err(e) => println!("warning: cannot list sound devices: {e:#}"),
                }
                // --output records headless calls only.
                let a = headless(Vec::new());
                (Box::new(d), a.gate(), a.recording())
            }
            Err(e) => {
                println!("warning: {e:#}; no sound (use --input/--output WAV)");
                let a = headless(Vec::new());
                let (g, r) = (a.gate(), a.recording());
                (Box::new(a), g, r)
            }
        },
    };
    let mut started = Started::new(call, &bind_addrs(opts.bind), ice, audio).await?;
    started.persist_cache(dev.dirs.zid_cache());
    for a in started.handle().local_addrs() {
        println!("media socket {a}");
    }
    match offer {
        Some(o) => started.handle().signal(o).await?,
        None => started.handle().place().await?,
    }
    let (ctl_tx, ctl_rx) = mpsc::channel(8);
    let (upd_tx, mut upd_rx) = mpsc::unbounded_channel();
    let run = started.run(&mut dev.conn, &peer, &call_id, ctl_rx, upd_tx, STATS_EVERY);
    let reason = if std::io::stdout().is_terminal() {
        let gate2 = gate.clone();
        let tui = crate::tui::run(
            upd_rx,
            ctl_tx.clone(),
            picker,
            move || gate2.open(),
            auto_answer,
            opts.seconds,
        );
        let (reason, ui) = tokio::join!(run, tui);
        if let Some((input, output)) = ui? {
            // Remember the devices the user moved to for the next call.
            dev.cfg.input_device = input;
            dev.cfg.output_device = output;
            if let Err(e) = dev.dirs.save_config(&dev.cfg) {
                println!("warning: cannot save the device choice: {e:#}");
            }
        }
        reason
    } else {
        let plain = async {
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
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
                                hangup_at = opts.seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                            }
                            if auto_answer && matches!(u, Update::Event(Event::Ringing { incoming: true })) {
                                let _ = ctl_tx.send(Control::Answer).await;
                            }
                            show(&u, &mut last);
                        }
                    },
                    l = stdin.next_line(), if stdin_open => match l {
                        Ok(Some(l)) => {
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
                        _ => stdin_open = false,
                    },
                    () = tokio::time::sleep_until(hangup_at.unwrap_or(far)) => {
                        hangup_at = None;
                        let _ = ctl_tx.send(Control::HangUp).await;
                    }
                }
            }
        };
        tokio::join!(run, plain).0
    };
    let reason = reason?;
    if let Some(p) = &opts.output {
        let pcm = recording.lock().map(|r| r.clone()).unwrap_or_default();
        save_48k_mono(p, &pcm).with_context(|| format!("{}", p.display()))?;
    }
    Ok(reason)
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
                println!("warning: cache mismatch: retained secrets differ, compare the SAS aloud")
            }
            Event::HelloHashMismatch => {
                println!(
                    "warning: zrtp-hash mismatch: the media peer is not who signalling described"
                )
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
    }
}
