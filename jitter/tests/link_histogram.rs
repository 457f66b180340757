//! DETERMINISTIC6G 5G one-way delay histograms (uplink and downlink).

use std::path::PathBuf;
use std::time::Duration;

use sotto_jitter::link::histogram::{DelayHistogram, HistogramLink};
use sotto_jitter::link::{Link, LinkSummary, voice_stream};

fn histogram(direction: &str) -> DelayHistogram {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../testdata/traces/deterministic6g/5G-midband-{direction}_PD-Wireless-5G-2a.csv"
    ));
    DelayHistogram::from_path(path).unwrap()
}

#[test]
fn ranges_match_the_data_readme() {
    // ../shared/data/README.md §1c: uplink bins 0.103 ms wide from 3.7 to
    // 14.0 ms; downlink 0.141 ms wide from 3.0 to 17.1 ms (the last bins
    // may be empty, so the range can end earlier).
    let (lo, hi) = histogram("Uplink").range_ms();
    assert!(
        (lo - 3.7).abs() < 1e-9 && hi > 13.0 && hi <= 14.103 + 1e-6,
        "{lo} {hi}"
    );
    let (lo, hi) = histogram("Downlink").range_ms();
    assert!(
        (lo - 3.0).abs() < 1e-9 && hi > 13.0 && hi <= 17.1 + 0.141 + 1e-6,
        "{lo} {hi}"
    );
}

#[test]
fn sampled_delays_reproduce_the_histogram() {
    for direction in ["Uplink", "Downlink"] {
        let h = histogram(direction);
        let (lo, hi) = h.range_ms();
        let mean = h.mean_ms();
        assert!(mean > 4.0 && mean < 12.0, "{direction}: {mean}");
        let stream = voice_stream(50_000, Duration::from_millis(1), 100);
        let out = HistogramLink::new(h.clone(), false, 3)
            .run(&stream)
            .unwrap();
        let s = LinkSummary::of(&out);
        let got = s.mean_delay.as_secs_f64() * 1000.0;
        assert!((got - mean).abs() < 0.05, "{direction}: {got} vs {mean}");
        for d in &out {
            let ms = d.delay().unwrap().as_secs_f64() * 1000.0;
            assert!(ms >= lo - 1e-6 && ms <= hi + 1e-6);
        }
        // Repeatable, and FIFO removes the reordering i.i.d. delays cause.
        assert_eq!(
            HistogramLink::new(h.clone(), false, 3)
                .run(&stream)
                .unwrap(),
            out
        );
        assert!(s.reordered > 0);
        let fifo = HistogramLink::new(h, true, 3).run(&stream).unwrap();
        assert_eq!(LinkSummary::of(&fifo).reordered, 0);
    }
}
