//! Ctrl-C, SIGTERM and SIGHUP end a call the way `q` does, so the peer
//! hears a hang-up and the terminal is restored, instead of killing the
//! process mid-call.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop signals, caught from [`StopSignals::new`] on.
pub struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    /// Catches SIGINT, SIGTERM and SIGHUP (needs a tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next one and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.int.recv() => "SIGINT",
            Some(()) = self.term.recv() => "SIGTERM",
            Some(()) = self.hup.recv() => "SIGHUP",
            // The streams never close while the runtime runs.
            else => std::future::pending().await,
        }
    }
}
