//! A thin tokio driver for a [`Call`]: the sockets and ICE stay in the
//! transport driver ([`TransportHandle`]); this task only shuttles between
//! it, the call, the application's signalling and an [`AudioPort`] ticked
//! every 10 ms. It reads the clock; the call never does.

use super::pump::AudioPump;
use super::wav::AudioPort;
use super::{Call, CallError, CallSignal, CallStats, Event, Input, Transmit};
use crate::driver::{DriverError, LocalAddrs, TransportEvent, TransportHandle};
use crate::ice::{IceConfig, SignalMessage, Signaller};
use crate::video::VideoFrame;
use crate::zrtp::ZidCache;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Commands queued to the task (bounded: the app is back-pressured).
const COMMAND_QUEUE: usize = 64;
/// Events queued to the app; beyond this they are dropped (and counted).
const EVENT_QUEUE: usize = 256;
/// The audio tick.
const TICK: Duration = Duration::from_millis(10);

/// Carries [`CallSignal`]s to the peer; implemented by the app's signalling client.
pub trait CallSignaller: Send + 'static {
    /// Sends one message to the peer. Must not block.
    fn send(&mut self, msg: CallSignal);
}

/// A camera and a screen for a call's video, served by the call task on
/// its 10 ms tick. Both must return at once (a real camera hands its
/// frames over through a queue).
pub trait VideoPort: Send + 'static {
    /// The newest frame the camera captured since the last call, if any.
    fn capture(&mut self) -> Option<VideoFrame>;
    /// A received frame to show.
    fn render(&mut self, frame: VideoFrame);
}

enum Command {
    Place,
    Answer,
    Decline,
    HangUp,
    OfferQueued(Duration),
    Mute(bool),
    ConfirmSas(bool),
    Signal(CallSignal),
    Stats(oneshot::Sender<CallStats>),
    ZidCache(oneshot::Sender<ZidCache>),
    NetworkChanged,
    Video(Box<dyn VideoPort>),
}

/// Forwards our ICE session's credentials and candidates into the call task.
struct IceForward(mpsc::UnboundedSender<SignalMessage>);

impl Signaller for IceForward {
    fn send(&mut self, msg: SignalMessage) {
        // The ICE session bounds how many messages it produces.
        let _ = self.0.send(msg);
    }
}

/// The application's handle on a running call. The task ends when the
/// call ends (after closing the transport); dropping the handle hangs up.
pub struct CallHandle {
    cmd: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    task: Option<JoinHandle<()>>,
    local: LocalAddrs,
    final_cache: FinalCache,
}

/// The call's ZID cache as it ended, left by the task before it stops
/// taking commands, so that it can still be saved afterwards.
type FinalCache = Arc<Mutex<Option<ZidCache>>>;

impl CallHandle {
    /// Binds UDP sockets on `bind` and starts `call` over them with `ice`
    /// (adjusted by [`Call::ice_config`]); `audio` is ticked every 10 ms.
    pub async fn start(
        call: Call,
        bind: &[SocketAddr],
        ice: IceConfig,
        signaller: Box<dyn CallSignaller>,
        audio: Option<Box<dyn AudioPort>>,
    ) -> Result<Self, DriverError> {
        let (ice_tx, ice_rx) = mpsc::unbounded_channel();
        let transport =
            TransportHandle::bind(bind, call.ice_config(ice), Box::new(IceForward(ice_tx))).await?;
        let local = transport.shared_local_addrs();
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let final_cache = FinalCache::default();
        let task = Task {
            call,
            transport: Some(transport),
            signaller,
            audio,
            video: None,
            events: ev_tx,
            pump: AudioPump::default(),
            dropped_events: 0,
            ended: None,
            final_cache: Arc::clone(&final_cache),
        };
        let task = tokio::spawn(task.run(cmd_rx, ice_rx));
        Ok(Self {
            cmd: cmd_tx,
            events: ev_rx,
            task: Some(task),
            local,
            final_cache,
        })
    }

    /// The local socket addresses now (after a network change, the new ones).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        crate::driver::lock(&self.local).clone()
    }

    async fn send(&self, c: Command) -> Result<(), DriverError> {
        self.cmd.send(c).await.map_err(|_| DriverError::Stopped)
    }

    /// Places the call ([`Call::place`]).
    pub async fn place(&self) -> Result<(), DriverError> {
        self.send(Command::Place).await
    }

    /// Answers ([`Call::answer`]).
    pub async fn answer(&self) -> Result<(), DriverError> {
        self.send(Command::Answer).await
    }

    /// Declines ([`Call::decline`]).
    pub async fn decline(&self) -> Result<(), DriverError> {
        self.send(Command::Decline).await
    }

    /// Hangs up ([`Call::hang_up`]).
    pub async fn hang_up(&self) -> Result<(), DriverError> {
        self.send(Command::HangUp).await
    }

    /// Signalling keeps our offer this long for a callee that is not
    /// connected ([`Call::offer_queued`]).
    pub async fn offer_queued(&self, kept_for: Duration) -> Result<(), DriverError> {
        self.send(Command::OfferQueued(kept_for)).await
    }

    /// Mutes or unmutes ([`Call::set_muted`]).
    pub async fn set_muted(&self, muted: bool) -> Result<(), DriverError> {
        self.send(Command::Mute(muted)).await
    }

    /// Confirms or rejects the SAS ([`Call::confirm_sas`]).
    pub async fn confirm_sas(&self, matches: bool) -> Result<(), DriverError> {
        self.send(Command::ConfirmSas(matches)).await
    }

    /// Tells the call that the network changed
    /// ([`TransportHandle::network_changed`]).
    pub async fn network_changed(&self) -> Result<(), DriverError> {
        self.send(Command::NetworkChanged).await
    }

    /// Gives the call a camera and a screen. Video flows once the call is
    /// Secure, if both sides set it up ([`CallConfig::video`](super::CallConfig::video)).
    pub async fn set_video(&self, port: Box<dyn VideoPort>) -> Result<(), DriverError> {
        self.send(Command::Video(port)).await
    }

    /// Delivers a message from the peer's signalling.
    pub async fn signal(&self, msg: CallSignal) -> Result<(), DriverError> {
        self.send(Command::Signal(msg)).await
    }

    /// A statistics snapshot.
    pub async fn stats(&self) -> Result<CallStats, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// The call's ZID cache ([`Call::zid_cache`]), to persist once Secure
    /// (and again after a SAS confirmation); after the call ended, the
    /// cache as it ended (a rejected SAS ends the call and must be saved).
    pub async fn zid_cache(&self) -> Result<ZidCache, DriverError> {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::ZidCache(tx)).await.is_ok()
            && let Ok(c) = rx.await
        {
            return Ok(c);
        }
        // The task stopped taking commands: it left the final cache first.
        let last = self.final_cache.lock().unwrap_or_else(|e| e.into_inner());
        last.clone().ok_or(DriverError::Stopped)
    }

    /// Next event (never [`Event::Signal`]: those go to the signaller);
    /// `None` once the task has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Hangs up if still in a call and waits for the task (and its
    /// sockets) to finish. Events not received yet are dropped; the call's
    /// final ZID cache is returned instead (`None` only if the task
    /// panicked), so that a secret retained as the call went Secure is
    /// saved even if its `SecureUp` was never received.
    pub async fn shutdown(mut self) -> Option<ZidCache> {
        // The task must not wait for room in a queue nobody reads.
        self.events.close();
        let _ = self.cmd.send(Command::HangUp).await;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.final_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

struct Task {
    call: Call,
    transport: Option<TransportHandle>,
    signaller: Box<dyn CallSignaller>,
    audio: Option<Box<dyn AudioPort>>,
    video: Option<Box<dyn VideoPort>>,
    events: mpsc::Sender<Event>,
    pump: AudioPump,
    dropped_events: u64,
    /// `Ended`, when the event queue was full as the call ended.
    ended: Option<Event>,
    final_cache: FinalCache,
}

impl Task {
    async fn run(
        mut self,
        mut cmd: mpsc::Receiver<Command>,
        mut ice: mpsc::UnboundedReceiver<SignalMessage>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while let Some(mut transport) = self.transport.take() {
            let deadline = self
                .call
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            let mut stop = false;
            tokio::select! {
                ev = transport.recv() => match ev {
                    Some(TransportEvent::Ice(e)) => self.input(Input::Ice(e)),
                    Some(TransportEvent::Media(d)) => self.input(Input::Datagram(&d)),
                    None => {
                        self.input(Input::TransportClosed);
                        stop = true;
                    }
                },
                Some(m) = ice.recv() => self.input(Input::IceSignal(m)),
                c = cmd.recv() => match c {
                    Some(Command::NetworkChanged) => {
                        let _ = transport.network_changed().await;
                    }
                    Some(c) => self.command(c),
                    None => self.call.hang_up(Instant::now()),
                },
                _ = tick.tick() => self.audio_tick(),
                () = sleep => self.call.handle_timeout(Instant::now()),
            }
            self.flush(&transport).await;
            if stop || self.call.is_ended() {
                transport.shutdown().await;
            } else {
                self.transport = Some(transport);
            }
        }
        // Answer stats and cache requests (the cache is final now: save it
        // after the end too) and drain commands until the handle goes.
        drop(ice);
        *self.final_cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(self.call.zid_cache().clone());
        cmd.close();
        while let Some(c) = cmd.recv().await {
            match c {
                Command::Stats(tx) => {
                    let _ = tx.send(self.call.stats());
                }
                Command::ZidCache(tx) => {
                    let _ = tx.send(self.call.zid_cache().clone());
                }
                _ => {}
            }
        }
        // No command can wait for this task now: wait for the app to take
        // the `Ended` its full queue had no room for.
        if let Some(e) = self.ended.take()
            && self.events.send(e).await.is_err()
        {
            self.dropped_events += 1;
        }
    }

    fn input(&mut self, i: Input<'_>) {
        // A refused input (bad message, wrong state) leaves the call as it was.
        let _ = self.call.handle_input(Instant::now(), i);
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        let r: Result<(), CallError> = match c {
            Command::Place => self.call.place(now),
            Command::Answer => self.call.answer(now),
            Command::Decline => self.call.decline(now),
            Command::HangUp => {
                self.call.hang_up(now);
                Ok(())
            }
            Command::OfferQueued(kept_for) => self.call.offer_queued(now, kept_for),
            Command::Mute(m) => {
                self.call.set_muted(m);
                Ok(())
            }
            Command::ConfirmSas(ok) => self.call.confirm_sas(now, ok),
            Command::Signal(s) => self.call.handle_input(now, Input::Signal(s)),
            Command::Stats(tx) => {
                let _ = tx.send(self.call.stats());
                Ok(())
            }
            // Taken by the run loop, which holds the transport.
            Command::NetworkChanged => Ok(()),
            Command::Video(port) => {
                self.video = Some(port);
                Ok(())
            }
            Command::ZidCache(tx) => {
                let _ = tx.send(self.call.zid_cache().clone());
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::debug!("call command refused: {e}");
        }
    }

    fn audio_tick(&mut self) {
        if let Some(audio) = self.audio.as_mut() {
            self.pump
                .tick(Instant::now(), &mut self.call, audio.as_mut());
        }
        if let Some(video) = self.video.as_mut() {
            if let Some(frame) = video.capture() {
                let _ = self.call.push_video(Instant::now(), &frame);
            }
            while let Some(frame) = self.call.poll_video() {
                video.render(frame);
            }
        }
    }

    async fn flush(&mut self, transport: &TransportHandle) {
        while let Some(t) = self.call.poll_transmit() {
            let r = match t {
                Transmit::Datagram(d) => transport.send_media(d).await,
                Transmit::IceSignal(m) => transport.signal(m).await,
            };
            if r.is_err() {
                break;
            }
        }
        while let Some(e) = self.call.poll_event() {
            match e {
                Event::Signal(s) => self.signaller.send(s),
                // The last event: kept for after the loop when the app is
                // behind (waiting here could deadlock with an app that
                // waits for this task's answer to a command).
                e @ Event::Ended { .. } => {
                    if let Err(mpsc::error::TrySendError::Full(e)) = self.events.try_send(e) {
                        self.ended = Some(e);
                    }
                }
                e => {
                    if self.events.try_send(e).is_err() {
                        self.dropped_events += 1;
                    }
                }
            }
        }
    }
}
