//! Ctrl-C, SIGTERM and SIGHUP end a call the way `q` does, so the peer
//! hears a hang-up and the terminal is restored, instead of killing the
//! process mid-call. Before a call exists (logging in, fetching keys, a
//! server that never answers) they end the command at once with
//! [`Stopped`], rather than after the server's timeouts.

use std::future::Future;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// A stop signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP (the terminal went away).
    Hup,
}

impl Stop {
    /// Its name, e.g. `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Int => "SIGINT",
            Stop::Term => "SIGTERM",
            Stop::Hup => "SIGHUP",
        }
    }

    /// The exit status a shell reports for a process this signal ended:
    /// 128 plus the signal's number (130 for Ctrl-C).
    pub fn exit_code(self) -> u8 {
        128 + match self {
            Stop::Hup => 1,
            Stop::Int => 2,
            Stop::Term => 15,
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stop signal ended the command before it had done its work; `sotto`
/// exits with [`Stop::exit_code`].
#[derive(Debug, thiserror::Error)]
#[error("{signal}: stopped while {doing}")]
pub struct Stopped {
    /// The signal.
    pub signal: Stop,
    /// What the command was doing, e.g. "logging in to signald at …".
    pub doing: String,
}

/// The [`Stopped`] in `e`'s chain, if a stop signal caused it.
pub fn stopped(e: &anyhow::Error) -> Option<&Stopped> {
    e.chain().find_map(|c| c.downcast_ref::<Stopped>())
}

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

    /// Waits for the next one.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            Some(()) = self.int.recv() => Stop::Int,
            Some(()) = self.term.recv() => Stop::Term,
            Some(()) = self.hup.recv() => Stop::Hup,
            // The streams never close while the runtime runs.
            else => std::future::pending().await,
        }
    }

    /// Runs `step` unless a stop signal comes first; then `step` is
    /// dropped (its requests abandoned) and the error is [`Stopped`],
    /// saying it was `doing` that.
    pub async fn during<T>(
        &mut self,
        doing: impl Into<String>,
        step: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            r = step => r,
            signal = self.recv() => Err(Stopped { signal, doing: doing.into() }.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Stop::Int.exit_code(), 130);
        assert_eq!(Stop::Term.exit_code(), 143);
        assert_eq!(Stop::Hup.exit_code(), 129);
    }

    #[test]
    fn a_stop_is_found_under_context() {
        let e = anyhow::Error::from(Stopped {
            signal: Stop::Int,
            doing: "logging in".into(),
        })
        .context("placing the call");
        let s = stopped(&e).expect("found");
        assert_eq!(s.signal, Stop::Int);
        assert_eq!(s.to_string(), "SIGINT: stopped while logging in");
        assert!(stopped(&anyhow::anyhow!("timeout")).is_none());
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("x")).context("y");
        assert!(stopped(&plain.unwrap_err()).is_none());
    }
}
