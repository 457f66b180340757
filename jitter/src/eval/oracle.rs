//! The offline playout oracle (Moon, Kurose & Towsley, "Packet audio
//! playout delay adjustment: performance bounds and algorithms", Multimedia
//! Systems 6(1), 1998): knowing every arrival in advance, pick one playout
//! offset per talkspurt so that the mean playout delay is as low as any
//! such schedule can make it for a given number of late packets.
//!
//! Within a talkspurt the offset is the delay of the packet that still
//! makes it; choosing to let the `j` slowest packets be late sets the
//! offset to the `j+1`-th largest delay. Across talkspurts a dynamic
//! programme over the late-packet budget gives the exact optimum.

/// One talkspurt: the delays (ms, send to effective arrival) of the
/// packets that reached the receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Talkspurt {
    /// Delays of the arrived packets, any order.
    pub delays: Vec<f64>,
}

/// The oracle's schedule for one late-packet budget.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleSchedule {
    /// Playout offset (ms after sending) chosen for each talkspurt.
    pub offsets: Vec<f64>,
    /// Packets played.
    pub played: usize,
    /// Packets late.
    pub late: usize,
    /// Mean playout delay of the played packets, ms.
    pub mean_delay_ms: f64,
}

/// The best per-talkspurt schedule with at most `budget` late packets.
pub fn schedule(spurts: &[Talkspurt], budget: usize) -> OracleSchedule {
    // Per talkspurt, delays sorted from the slowest.
    let sorted: Vec<Vec<f64>> = spurts
        .iter()
        .map(|s| {
            let mut d = s.delays.clone();
            d.sort_by(|a, b| b.total_cmp(a));
            d
        })
        .collect();
    let b = budget;
    // dp[j] = least total delay with j late packets so far; choice[s][j]
    // = late packets given to spurt s on the best path to dp[j].
    let mut dp = vec![f64::INFINITY; b + 1];
    dp[0] = 0.0;
    let mut choice: Vec<Vec<usize>> = Vec::with_capacity(sorted.len());
    for d in &sorted {
        let n = d.len();
        let mut next = vec![f64::INFINITY; b + 1];
        let mut pick = vec![0usize; b + 1];
        if n == 0 {
            choice.push((0..=b).map(|_| 0).collect());
            continue;
        }
        for (used, &base) in dp.iter().enumerate() {
            if !base.is_finite() {
                continue;
            }
            for late in 0..n.min(b - used + 1) {
                let cost = base + d[late] * (n - late) as f64;
                if cost < next[used + late] {
                    next[used + late] = cost;
                    pick[used + late] = late;
                }
            }
        }
        dp = next;
        choice.push(pick);
    }
    // Fewest mean delay over all budgets up to `b` (more late packets can
    // only help the total, but the mean is over fewer packets).
    let total: usize = sorted.iter().map(Vec::len).sum();
    let mut best = (0usize, f64::INFINITY);
    for (j, &cost) in dp.iter().enumerate() {
        if cost.is_finite() && total > j {
            let mean = cost / (total - j) as f64;
            if mean < best.1 {
                best = (j, mean);
            }
        }
    }
    let mut offsets = vec![0.0; sorted.len()];
    let mut j = best.0;
    for s in (0..sorted.len()).rev() {
        let late = if sorted[s].is_empty() {
            0
        } else {
            choice[s][j]
        };
        offsets[s] = sorted[s].get(late).copied().unwrap_or(0.0);
        j -= late;
    }
    OracleSchedule {
        offsets,
        played: total - best.0,
        late: best.0,
        mean_delay_ms: if best.1.is_finite() { best.1 } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spurt(d: &[f64]) -> Talkspurt {
        Talkspurt { delays: d.to_vec() }
    }

    #[test]
    fn no_budget_plays_each_spurt_at_its_slowest_packet() {
        let s = schedule(&[spurt(&[10.0, 50.0, 20.0]), spurt(&[30.0, 30.0])], 0);
        assert_eq!(s.offsets, vec![50.0, 30.0]);
        assert_eq!((s.played, s.late), (5, 0));
        assert!((s.mean_delay_ms - (150.0 + 60.0) / 5.0).abs() < 1e-9);
    }

    #[test]
    fn the_budget_goes_where_it_saves_most() {
        // One late packet: dropping the 500 ms outlier saves far more than
        // anything in the second spurt.
        let s = schedule(
            &[spurt(&[10.0, 500.0, 20.0, 15.0]), spurt(&[40.0, 30.0])],
            1,
        );
        assert_eq!(s.offsets, vec![20.0, 40.0]);
        assert_eq!(s.late, 1);
        assert!((s.mean_delay_ms - (60.0 + 80.0) / 5.0).abs() < 1e-9);
    }

    #[test]
    fn matches_brute_force_on_small_cases() {
        let spurts = [
            spurt(&[5.0, 70.0, 12.0]),
            spurt(&[40.0, 41.0]),
            spurt(&[9.0, 90.0, 8.0, 7.0]),
        ];
        for budget in 0..5 {
            let s = schedule(&spurts, budget);
            // Brute force over the late count of each spurt.
            let mut best = f64::INFINITY;
            for a in 0..3 {
                for b in 0..2 {
                    for c in 0..4 {
                        if a + b + c > budget {
                            continue;
                        }
                        let mut cost = 0.0;
                        for (sp, late) in spurts.iter().zip([a, b, c]) {
                            let mut d = sp.delays.clone();
                            d.sort_by(|x, y| y.total_cmp(x));
                            cost += d[late] * (d.len() - late) as f64;
                        }
                        best = best.min(cost / (9 - a - b - c) as f64);
                    }
                }
            }
            assert!((s.mean_delay_ms - best).abs() < 1e-9, "budget {budget}");
        }
    }
}
