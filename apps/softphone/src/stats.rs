//! The few live figures a person reads during a call, from the engine's
//! W3C statistics: RTT, loss, jitter-buffer delay, bitrate, path.

use sotto_engine::call::CallStats;
use std::time::Duration;

/// One line of live statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    /// Round-trip time, when RTCP has measured it.
    pub rtt_ms: Option<f64>,
    /// Received packets lost so far, percent.
    pub loss_pct: f64,
    /// Mean jitter-buffer delay so far, ms.
    pub jitter_buffer_ms: f64,
    /// Send bitrate since the previous snapshot (payload), kbit/s.
    pub send_kbps: Option<f64>,
    /// Whether media goes through a relay; `None` until a path is
    /// selected (while ringing, or after consent was lost).
    pub relayed: Option<bool>,
}

impl Line {
    /// From a snapshot and, for rates, the previous one `elapsed` before.
    pub fn of(s: &CallStats, prev: Option<(Duration, &CallStats)>) -> Self {
        let i = &s.inbound;
        let lost = i.packets_lost.max(0) as f64;
        let expected = i.packets_received as f64 + lost;
        let j = &i.jitter_buffer;
        Self {
            rtt_ms: s
                .remote_inbound
                .round_trip_time
                .map(|d| d.as_secs_f64() * 1000.0),
            loss_pct: if expected > 0.0 {
                100.0 * lost / expected
            } else {
                0.0
            },
            jitter_buffer_ms: if j.jitter_buffer_emitted_count > 0 {
                1000.0 * j.jitter_buffer_delay / j.jitter_buffer_emitted_count as f64
            } else {
                0.0
            },
            send_kbps: prev.filter(|(dt, _)| !dt.is_zero()).map(|(dt, p)| {
                let bytes = s.outbound.bytes_sent.saturating_sub(p.outbound.bytes_sent);
                bytes as f64 * 8.0 / dt.as_secs_f64() / 1000.0
            }),
            relayed: s
                .candidate_pair
                .selected
                .then_some(s.candidate_pair.relayed),
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        write!(
            f,
            "rtt={}ms loss={:.1}% jb={:.0}ms send={}kbps path={}",
            opt(self.rtt_ms),
            self.loss_pct,
            self.jitter_buffer_ms,
            opt(self.send_kbps),
            match self.relayed {
                Some(true) => "relay",
                Some(false) => "direct",
                None => "-",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_w3c_stats() {
        let mut a = CallStats::default();
        a.outbound.bytes_sent = 1000;
        let mut b = a.clone();
        b.outbound.bytes_sent = 11_000;
        b.inbound.packets_received = 90;
        b.inbound.packets_lost = 10;
        b.inbound.jitter_buffer.jitter_buffer_delay = 6.0;
        b.inbound.jitter_buffer.jitter_buffer_emitted_count = 100;
        b.candidate_pair.relayed = true;
        b.candidate_pair.selected = true;
        let l = Line::of(&b, Some((Duration::from_secs(2), &a)));
        assert_eq!(l.loss_pct, 10.0);
        assert_eq!(l.jitter_buffer_ms, 60.0);
        assert_eq!(l.send_kbps, Some(40.0));
        assert_eq!(
            l.to_string(),
            "rtt=-ms loss=10.0% jb=60ms send=40kbps path=relay"
        );
    }

    #[test]
    fn no_path_is_shown_before_one_is_selected() {
        let ringing = CallStats::default();
        assert_eq!(
            Line::of(&ringing, None).to_string(),
            "rtt=-ms loss=0.0% jb=0ms send=-kbps path=-"
        );
    }
}
