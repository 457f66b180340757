//! The terminal UI of `call`/`listen` (ratatui + crossterm) when stdout is
//! a terminal: call state, the SAS in large type, warnings, live stats,
//! and keys: a answer, d decline, y/n SAS matches or not, m mute, i/o next
//! input/output device, q (or Ctrl-C) hang up.

use crate::devices::Picker;
use crate::session::{Control, Update};
use crate::stats::Line as StatsLine;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use sotto_engine::call::{CallStats, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the screen shows.
#[derive(Debug, Default)]
pub struct View {
    /// Call state in words.
    pub state: String,
    /// The SAS once Secure.
    pub sas: Option<String>,
    /// Whether the user confirmed the SAS (None: not yet).
    pub confirmed: Option<bool>,
    /// Security warnings, loudest first.
    pub warnings: Vec<String>,
    /// Live figures.
    pub stats: Option<StatsLine>,
    /// Microphone muted.
    pub muted: bool,
    /// Sound devices in use (input, output ids), when on a sound card.
    pub devices: Option<(String, String)>,
    last: Option<(Instant, CallStats)>,
}

impl View {
    /// Folds one update into the view.
    pub fn apply(&mut self, u: &Update) {
        match u {
            Update::Event(e) => match e {
                Event::Ringing { incoming: true } => self.state = "incoming call (a/d)".into(),
                Event::Ringing { incoming: false } => self.state = "ringing".into(),
                Event::Connected => self.state = "connected, securing…".into(),
                Event::PathChanged(k) => self.state = format!("connected ({k:?})"),
                Event::SecureUp { sas, .. } => {
                    self.state = "secure".into();
                    self.sas = Some(sas.clone());
                }
                Event::CacheMismatch => self
                    .warnings
                    .push("CACHE MISMATCH: compare the SAS aloud; y if it matches (only then is the new key remembered)".into()),
                Event::HelloHashMismatch => self
                    .warnings
                    .push("ZRTP-HASH MISMATCH: media peer differs from signalling".into()),
                Event::ServerFailed { server, reason } => {
                    self.warnings.push(format!("server {server}: {reason}"))
                }
                Event::Ended { reason } => self.state = format!("ended: {reason:?}"),
                Event::Stats(_) | Event::Signal(_) => {}
            },
            Update::Stats(s) => {
                let now = Instant::now();
                let prev = self.last.as_ref().map(|(t, p)| (now - *t, p));
                self.stats = Some(StatsLine::of(s, prev));
                self.last = Some((now, (**s).clone()));
            }
            Update::Dropped(_) => {}
            Update::OfferQueued(kept) => self.state = crate::phone::offer_queued(*kept),
            Update::Busy(from) => self
                .warnings
                .push(format!("declined a call from {from}: busy")),
        }
    }

    /// What key `c` asks of the call, noting in the view what it changes
    /// (`i`/`o`, the sound devices, are the caller's).
    pub fn key(&mut self, c: char) -> Option<Control> {
        match c {
            'a' => Some(Control::Answer),
            'd' => Some(Control::Decline),
            // The engine takes a verdict only once Secure; before that
            // the screen must not claim one either.
            'y' | 'n' if self.sas.is_some() => {
                self.confirmed = Some(c == 'y');
                Some(Control::ConfirmSas(c == 'y'))
            }
            'm' => {
                self.muted = !self.muted;
                Some(Control::Mute(self.muted))
            }
            'q' => Some(Control::HangUp),
            _ => None,
        }
    }

    fn draw(&self, f: &mut ratatui::Frame<'_>) {
        let [top, sas, warn, stats, keys] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let mute = if self.muted { "  [muted]" } else { "" };
        let devices = self
            .devices
            .as_ref()
            .map(|(i, o)| format!("  mic: {} / speaker: {}", or_default(i), or_default(o)))
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(format!("{}{mute}{devices}", self.state))
                .block(Block::default().borders(Borders::ALL).title(" sotto ")),
            top,
        );
        let verdict = match self.confirmed {
            Some(true) => " SAS confirmed ",
            Some(false) => " SAS REJECTED ",
            None => " SAS: read it aloud, y if it matches, n if not ",
        };
        f.render_widget(
            Paragraph::new(big(self.sas.as_deref().unwrap_or("")))
                .style(Style::default().add_modifier(Modifier::BOLD))
                .block(Block::default().borders(Borders::ALL).title(verdict)),
            sas,
        );
        let w: Vec<Line> = self
            .warnings
            .iter()
            .map(|w| Line::from(Span::styled(w.clone(), Style::default().fg(Color::Red))))
            .collect();
        f.render_widget(
            Paragraph::new(w).block(Block::default().borders(Borders::ALL).title(" warnings ")),
            warn,
        );
        let s = self
            .stats
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(s).block(Block::default().borders(Borders::ALL).title(" stats ")),
            stats,
        );
        f.render_widget(
            Paragraph::new(
                "a answer  d decline  y/n SAS matches/not  m mute  i/o next mic/speaker  q hang up",
            ),
            keys,
        );
    }
}

fn or_default(id: &str) -> &str {
    if id.is_empty() { "default" } else { id }
}

/// The SAS in large type: each character as a 3x3 block of itself.
fn big(sas: &str) -> Vec<Line<'static>> {
    (0..3)
        .map(|_| {
            Line::from(
                sas.chars()
                    .map(|c| format!("{0}{0}{0}  ", c.to_ascii_uppercase()))
                    .collect::<String>(),
            )
        })
        .collect()
}

/// The key a press stands for. Raw mode turns Ctrl-C into a key: it hangs
/// up (`q`); other keys with Ctrl or Alt are not ours (Ctrl-D is no `d`).
fn key_char(k: KeyEvent) -> Option<char> {
    let KeyCode::Char(c) = k.code else {
        return None;
    };
    if k.modifiers == KeyModifiers::CONTROL && c.eq_ignore_ascii_case(&'c') {
        return Some('q');
    }
    (k.modifiers - KeyModifiers::SHIFT).is_empty().then_some(c)
}

/// Key presses, read on a thread (crossterm's reader blocks).
fn keys(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<char> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if !event::poll(Duration::from_millis(100)).unwrap_or(false) {
                continue;
            }
            if let Ok(TermEvent::Key(k)) = event::read()
                && k.kind == KeyEventKind::Press
                && let Some(c) = key_char(k)
                && tx.send(c).is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Runs the UI until `updates` closes; `on_secure` is called at Secure.
/// Returns the sound devices the user moved the call to, if any.
pub async fn run(
    mut updates: mpsc::UnboundedReceiver<Update>,
    ctl: mpsc::Sender<Control>,
    mut picker: Option<Picker>,
    mut on_secure: impl FnMut(),
    auto_answer: bool,
    seconds: Option<u64>,
) -> std::io::Result<Option<(String, String)>> {
    let mut term = ratatui::init();
    let stop = Arc::new(AtomicBool::new(false));
    let mut keys = keys(Arc::clone(&stop));
    let mut view = View {
        devices: picker.as_ref().map(Picker::current),
        ..View::default()
    };
    let mut hangup_at: Option<tokio::time::Instant> = None;
    let mut switched = false;
    let result = loop {
        if let Err(e) = term.draw(|f| view.draw(f)) {
            break Err(e);
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            u = updates.recv() => match u {
                None => break Ok(()),
                Some(u) => {
                    if let Update::Event(Event::SecureUp { .. }) = &u {
                        on_secure();
                        hangup_at = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                    }
                    if auto_answer && matches!(u, Update::Event(Event::Ringing { incoming: true })) {
                        let _ = ctl.send(Control::Answer).await;
                    }
                    view.apply(&u);
                }
            },
            Some(c) = keys.recv() => {
                let c = match c {
                    'i' | 'o' => {
                        if let Some(p) = picker.as_mut() {
                            // Opening a sound card blocks for a moment.
                            match tokio::task::block_in_place(|| p.next(c == 'i')) {
                                Ok(now) => {
                                    view.devices = Some(now);
                                    switched = true;
                                }
                                Err(e) => view.warnings.push(format!("sound device: {}", crate::report::Causes(&e))),
                            }
                        }
                        None
                    }
                    c => view.key(c),
                };
                if let Some(c) = c { let _ = ctl.send(c).await; }
            }
            () = tokio::time::sleep_until(hangup_at.unwrap_or(far)) => {
                hangup_at = None;
                let _ = ctl.send(Control::HangUp).await;
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    ratatui::restore();
    for w in &view.warnings {
        println!("warning: {w}");
    }
    println!("{}", view.state);
    result.map(|()| view.devices.filter(|_| switched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use sotto_engine::call::EndReason;

    #[test]
    fn a_sas_verdict_before_secure_is_ignored() {
        let mut v = View::default();
        assert_eq!(v.key('y'), None);
        assert_eq!(v.key('n'), None);
        assert_eq!(v.confirmed, None);
        v.sas = Some("ab12".into()); // what SecureUp sets
        assert_eq!(v.key('n'), Some(Control::ConfirmSas(false)));
        assert_eq!(v.confirmed, Some(false));
    }

    #[test]
    fn ctrl_c_hangs_up_and_other_modified_keys_are_ignored() {
        let k = |c, m| key_char(KeyEvent::new(KeyCode::Char(c), m));
        assert_eq!(k('c', KeyModifiers::CONTROL), Some('q'));
        assert_eq!(k('d', KeyModifiers::CONTROL), None);
        assert_eq!(k('n', KeyModifiers::CONTROL), None);
        assert_eq!(k('y', KeyModifiers::ALT), None);
        assert_eq!(k('d', KeyModifiers::NONE), Some('d'));
        assert_eq!(k('Y', KeyModifiers::SHIFT), Some('Y'));
    }

    #[test]
    fn sas_warnings_and_state_are_drawn() {
        let mut v = View::default();
        v.apply(&Update::Event(Event::CacheMismatch));
        v.apply(&Update::Event(Event::Ended {
            reason: EndReason::LocalHangup,
        }));
        v.sas = Some("ab12".into());
        let mut t = Terminal::new(TestBackend::new(80, 16)).unwrap();
        t.draw(|f| v.draw(f)).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(text.contains("AAA  BBB  111  222"), "{text}");
        assert!(text.contains("CACHE MISMATCH"), "{text}");
        assert!(text.contains("ended: LocalHangup"), "{text}");
    }
}
