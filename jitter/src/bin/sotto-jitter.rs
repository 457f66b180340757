//! `sotto-jitter eval`: run real speech through Opus, a network trace and
//! every jitter buffer (Sotto, Speex, fixed delays, the offline oracle)
//! and report playout delay against late loss.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use sotto_codecs::{resample, samples, wav};
use sotto_jitter::JitterConfig;
use sotto_jitter::eval::{self, EvalConfig, report};
use sotto_jitter::link::Link;
use sotto_jitter::link::cicv5g::{Cicv5gTrace, DelayTraceConfig, DelayTraceLink};
use sotto_jitter::link::histogram::{DelayHistogram, HistogramLink};
use sotto_jitter::link::mahimahi::{CrossTraffic, MahimahiConfig, MahimahiLink, MahimahiTrace};
use sotto_jitter::link::synthetic::{
    GilbertElliott, Handover, Jitter, SyntheticConfig, SyntheticLink,
};
use sotto_jitter::pesq::{self, PesqMode};

#[derive(Parser)]
#[command(name = "sotto-jitter", about = "Sotto jitter buffer evaluation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate every buffer on one trace.
    Eval(EvalArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// mahimahi capacity trace (one delivery opportunity per line, ms).
    Mahimahi,
    /// CICV5G per-packet round-trip trace (one-way = RTT / 2).
    Cicv5g,
    /// One-way delay histogram (DETERMINISTIC6G): independent delays drawn
    /// from it, delivered in order (a radio bearer delivers in sequence).
    Histogram,
    /// Synthetic link; --trace names a preset: clean, jitter, handover or bursty.
    Synthetic,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Trace file (or synthetic preset name).
    #[arg(long)]
    trace: String,
    /// How to read the trace.
    #[arg(long, value_enum)]
    format: Format,
    /// Speech WAV (any rate, mono or stereo); looped to --seconds.
    #[arg(long)]
    speech: Option<PathBuf>,
    /// Seconds of speech to send.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Background noise mixed into the speech (what is sent and what it
    /// is scored against), dBFS RMS; -40 puts it 23 dB under the default
    /// speech.
    #[arg(long, allow_hyphen_values = true)]
    noise_dbfs: Option<f64>,
    /// Send every frame, pauses too, as a sender without Opus DTX does
    /// (WebRTC's default): the pauses reach the buffer as quiet frames.
    #[arg(long)]
    no_dtx: bool,
    /// Output directory for WAVs, CSV, PNG and JSON.
    #[arg(long, default_value = "jitter-eval")]
    out: PathBuf,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Constant cross traffic on a mahimahi link, kbit/s.
    #[arg(long, default_value_t = 0)]
    cross_kbps: u64,
    /// Fixed-delay buffers to run alongside, ms.
    #[arg(long, value_delimiter = ',', default_values_t = [40u32, 80, 120, 200])]
    fixed_ms: Vec<u32>,
    /// Also run the oracles at these late-loss rates, percent of frames.
    #[arg(long, value_delimiter = ',')]
    oracle_late_pct: Vec<f64>,
    /// At those rates, also run the pause oracle charging this much per
    /// change of delay (ms summed over frames; e.g. 10000 = 10 ms over
    /// 20 s of frames).
    #[arg(long, value_delimiter = ',')]
    oracle_change_penalty: Vec<f64>,
    /// Skip PESQ scoring.
    #[arg(long)]
    no_pesq: bool,
    /// Tuning: lowest quantile of the delay histogram the target uses.
    #[arg(long, default_value_t = defaults().estimator.quantile)]
    quantile: f64,
    /// Tuning: highest quantile the target may rise to (see --late-cost-ms).
    #[arg(long, default_value_t = defaults().estimator.quantile_max)]
    quantile_max: f64,
    /// Tuning: what a late packet costs, ms of delay per unit of probability (0 = plain quantile).
    #[arg(long, default_value_t = defaults().estimator.late_cost_ms)]
    late_cost_ms: f64,
    /// Tuning: per-packet forgetting factor of the delay histogram.
    #[arg(long, default_value_t = defaults().estimator.forget)]
    forget: f64,
    /// Tuning: how long a delay peak holds the target up, ms.
    #[arg(long, default_value_t = defaults().estimator.peak_hold_ms)]
    peak_hold_ms: f64,
    /// Tuning: peak decay after the hold, ms per second.
    #[arg(long, default_value_t = defaults().estimator.peak_decay_ms_per_s)]
    peak_decay: f64,
    /// Tuning: a delay peak counts only as the head of a burst of arrivals.
    #[arg(long, default_value_t = defaults().estimator.peak_needs_burst, action = clap::ArgAction::Set)]
    peak_needs_burst: bool,
    /// Tuning: backlog above target that is dropped at once, ms.
    #[arg(long, default_value_t = defaults().flush_excess_ms)]
    flush_excess_ms: f64,
    /// Tuning: longest wait for the backlog behind a packet an outage
    /// held up by more than the flush excess, then flushed to target, ms
    /// (0: off, the default).
    #[arg(long, default_value_t = defaults().outage_hold_ms)]
    outage_hold_ms: f64,
    /// Tuning: backlog above target that is played up to twice as fast, ms.
    #[arg(long, default_value_t = defaults().catch_up_excess_ms)]
    catch_up_excess_ms: f64,
    /// Tuning: how far above target before shortening a pause, ms.
    #[arg(long, default_value_t = defaults().high_band_ms)]
    high_band_ms: f64,
    /// Tuning: how far below target before lengthening a pause (or stretching speech when no pauses come), ms.
    #[arg(long, default_value_t = defaults().low_band_ms)]
    low_band_ms: f64,
    /// Tuning: how far above target before accelerating speech while pauses come, ms.
    #[arg(long, default_value_t = defaults().speech_high_band_ms)]
    speech_high_band_ms: f64,
    /// Tuning: how far below target before stretching speech while pauses come, ms (inf = never).
    #[arg(long, default_value_t = defaults().speech_low_band_ms)]
    speech_low_band_ms: f64,
    /// Tuning: a pause is edited only once it has lasted this long, ms.
    #[arg(long, default_value_t = defaults().pause_edit_after_ms)]
    pause_edit_after_ms: f64,
    /// Tuning: the same while the speech comes with background noise, ms.
    #[arg(long, default_value_t = defaults().noisy_pause_edit_after_ms)]
    noisy_pause_edit_after_ms: f64,
    /// Tuning: most slack added to the network target, ms.
    #[arg(long, default_value_t = defaults().margin_ms)]
    margin_ms: f64,
    /// Tuning: how long a packet out of order keeps missing packets treated as possibly late, ms (inf = always).
    #[arg(long, default_value_t = defaults().reorder_window_ms)]
    reorder_window_ms: f64,
}

/// The buffer's defaults, which the tuning options start from (and show
/// in `--help`).
fn defaults() -> JitterConfig {
    JitterConfig::default()
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval(args) => run(&args),
    }
}

/// Default speech: a real 12 s prompt kept in the repository.
fn default_speech() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/speech/asterisk_en_16k_g722dec/dir-intro.wav")
}

/// Reads speech as 48 kHz mono, looped or cut to `seconds`.
fn load_speech(path: &Path, seconds: f64) -> Result<Vec<i16>> {
    let clip = wav::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mono = match clip.channels {
        1 => clip.samples,
        2 => samples::stereo_to_mono(&clip.samples),
        n => bail!("{}: {n} channels", path.display()),
    };
    let pcm = if clip.sample_rate == 48_000 {
        mono
    } else {
        let f = resample::resample_clip(&samples::i16_to_f32(&mono), 1, clip.sample_rate, 48_000)?;
        samples::f32_to_i16(&f)
    };
    if pcm.is_empty() {
        bail!("{}: no audio", path.display());
    }
    let want = (seconds * 48_000.0) as usize;
    Ok(pcm.iter().copied().cycle().take(want).collect())
}

fn link_for(args: &EvalArgs) -> Result<Box<dyn Link>> {
    Ok(match args.format {
        Format::Mahimahi => {
            let trace = MahimahiTrace::from_path(&args.trace)?;
            let cross = if args.cross_kbps > 0 {
                CrossTraffic::Constant {
                    bitrate_bps: args.cross_kbps * 1000,
                    packet_bytes: 1200,
                }
            } else {
                CrossTraffic::None
            };
            Box::new(MahimahiLink::new(
                trace,
                MahimahiConfig {
                    cross,
                    ..MahimahiConfig::default()
                },
            )?)
        }
        Format::Cicv5g => {
            let trace = Cicv5gTrace::from_path(&args.trace)?;
            Box::new(DelayTraceLink::new(&trace, DelayTraceConfig::default())?)
        }
        Format::Histogram => {
            let histogram = DelayHistogram::from_path(&args.trace)?;
            Box::new(HistogramLink::new(histogram, true, 1))
        }
        Format::Synthetic => Box::new(SyntheticLink::new(preset(&args.trace)?)?),
    })
}

/// Named synthetic links.
fn preset(name: &str) -> Result<SyntheticConfig> {
    let ms = Duration::from_millis;
    let base = SyntheticConfig {
        fifo: false,
        seed: 1,
        ..SyntheticConfig::default()
    };
    Ok(match name {
        // A constant 40 ms path: every buffer should score like loss-free Opus.
        "clean" => SyntheticConfig { fifo: true, ..base },
        // Heavy-tailed jitter and some random loss.
        "jitter" => SyntheticConfig {
            jitter: Some(Jitter::Pareto {
                scale: ms(10),
                shape: 2.5,
            }),
            loss: Some(GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.5,
                loss_good: 0.0,
                loss_bad: 0.5,
            }),
            ..base
        },
        // Mobile handovers every ~10 s: 300 ms outage, then a decaying spike.
        "handover" => SyntheticConfig {
            jitter: Some(Jitter::LogNormal {
                median: ms(5),
                sigma: 0.6,
            }),
            handover: Some(Handover {
                mean_interval: ms(10_000),
                outage: ms(300),
                spike: ms(200),
                recovery: ms(1_000),
                drop_during_outage: false,
            }),
            fifo: true,
            ..base
        },
        // Bursty loss with mild jitter.
        "bursty" => SyntheticConfig {
            jitter: Some(Jitter::LogNormal {
                median: ms(4),
                sigma: 0.5,
            }),
            loss: Some(GilbertElliott {
                p_good_to_bad: 0.03,
                p_bad_to_good: 0.3,
                loss_good: 0.005,
                loss_bad: 0.6,
            }),
            ..base
        },
        other => bail!("unknown synthetic preset {other:?} (clean, jitter, handover, bursty)"),
    })
}

fn run(args: &EvalArgs) -> Result<()> {
    let speech_path = args.speech.clone().unwrap_or_else(default_speech);
    let mut pcm = load_speech(&speech_path, args.seconds)?;
    if let Some(db) = args.noise_dbfs {
        if !(db.is_finite() && db <= 0.0) {
            bail!("--noise-dbfs {db}: need a level at or under 0 dBFS");
        }
        eval::add_noise(&mut pcm, db, 1);
    }
    let mut link = link_for(args)?;
    let mut config = EvalConfig {
        fixed_delays: args.fixed_ms.clone(),
        oracle_late_pct: args.oracle_late_pct.clone(),
        oracle_change_penalty: args.oracle_change_penalty.clone(),
        dtx: !args.no_dtx,
        ..EvalConfig::default()
    };
    let j = &mut config.jitter;
    j.estimator.quantile = args.quantile;
    j.estimator.quantile_max = args.quantile_max;
    j.estimator.late_cost_ms = args.late_cost_ms;
    j.estimator.forget = args.forget;
    j.estimator.peak_hold_ms = args.peak_hold_ms;
    j.estimator.peak_decay_ms_per_s = args.peak_decay;
    j.estimator.peak_needs_burst = args.peak_needs_burst;
    j.flush_excess_ms = args.flush_excess_ms;
    j.outage_hold_ms = args.outage_hold_ms;
    j.catch_up_excess_ms = args.catch_up_excess_ms;
    j.high_band_ms = args.high_band_ms;
    j.low_band_ms = args.low_band_ms;
    j.speech_high_band_ms = args.speech_high_band_ms;
    j.speech_low_band_ms = args.speech_low_band_ms;
    j.pause_edit_after_ms = args.pause_edit_after_ms;
    j.noisy_pause_edit_after_ms = args.noisy_pause_edit_after_ms;
    j.margin_ms = args.margin_ms;
    j.reorder_window_ms = args.reorder_window_ms;
    let trace_name = Path::new(&args.trace)
        .file_name()
        .map_or(args.trace.clone(), |n| n.to_string_lossy().into_owned());
    eprintln!(
        "sotto-jitter: {} s of {} over {trace_name}",
        args.seconds,
        speech_path.display()
    );
    let started = std::time::Instant::now();
    let mut report = eval::evaluate(&pcm, link.as_mut(), &config, |name| {
        eprintln!(
            "  [{:>5.1} s] running {name}",
            started.elapsed().as_secs_f64()
        );
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let reference_pesq = if args.no_pesq {
        None
    } else if let Err(e) = pesq::available() {
        eprintln!("  PESQ skipped: {e}");
        None
    } else {
        eprintln!(
            "  [{:>5.1} s] scoring PESQ-WB",
            started.elapsed().as_secs_f64()
        );
        let scorer = |r: &[i16], d: &[i16]| pesq_wb(r, d);
        eval::quality::score_all(&pcm, &mut report, &config, &scorer)
    };
    report::write_csv(&args.out.join("packets.csv"), &report)?;
    report::write_wavs(&args.out, &report)?;
    eval::plot::plot(
        &args.out.join("delay.png"),
        &format!("{trace_name}: network delay vs playout delay"),
        &report,
        &["sotto", "speex", "oracle", "fixed_80"],
    )?;
    let l = &report.link;
    println!(
        "trace {trace_name}: {} packets, {} lost ({:.2}%), {} reordered, delay mean {:.1} ms p95 {:.1} ms",
        l.sent,
        l.lost,
        l.loss_rate() * 100.0,
        l.reordered,
        l.mean_delay.as_secs_f64() * 1000.0,
        l.p95_delay.as_secs_f64() * 1000.0
    );
    if let Some(p) = reference_pesq {
        println!("loss-free Opus PESQ-WB: {p:.2}");
    }
    print!("{}", report::table(&report));
    for line in report::goal(&report) {
        println!("goal: {line}");
    }
    println!(
        "wrote {}/{{packets.csv,delay.png,received_*.wav}}",
        args.out.display()
    );
    let json = report::json(&trace_name, &report, reference_pesq);
    std::fs::write(args.out.join("summary.json"), json.to_string())?;
    if args.json {
        println!("{json}");
    }
    Ok(())
}

/// PESQ-WB through the project's PESQ wrapper (Python `pesq`).
fn pesq_wb(reference: &[i16], degraded: &[i16]) -> Option<f64> {
    pesq::score(reference, degraded, 16_000, PesqMode::Wideband).ok()
}
