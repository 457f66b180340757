//! Sound-card audio through cpal: the device callbacks talk to the call
//! only through wait-free SPSC rings (rtrb), so they never block or
//! allocate. A device runs at 48 kHz, the engine's rate, when it can, in
//! whatever sample format it offers; a card that cannot (44.1 kHz only,
//! say) runs at its own rate, and the call's audio tick resamples each
//! 10 ms frame (in buffers made once, see [`sotto_codecs::bridge`]), never
//! the callback.
//! The first channel is captured and playback is copied to every channel.

mod format;

pub use format::DeviceFormat;
use format::{ENGINE_RATE, device_format};
use sotto_codecs::bridge::RateBridge;

use anyhow::{Context as _, anyhow};
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use cpal::{FromSample, SampleFormat, SizedSample};
use sotto_engine::call::wav::{AudioPort, frames_in, frames_ready, pop_frame, push_frame};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One pair of running cpal streams and our ends of their rings. The
/// streams live on their own thread (they are not `Send` everywhere) until
/// this is dropped.
struct Streams {
    /// Microphone samples at `input.rate`.
    mic: rtrb::Consumer<i16>,
    /// Speaker samples at `output.rate`.
    speaker: rtrb::Producer<i16>,
    input: DeviceFormat,
    output: DeviceFormat,
    /// Device rate to 48 kHz, when the microphone runs at another rate.
    from_mic: Option<RateBridge>,
    /// 48 kHz to the device rate, when the speaker runs at another rate.
    to_speaker: Option<RateBridge>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Microphone and speaker as an [`AudioPort`]; a [`Switcher`] moves it to
/// other devices mid-call.
pub struct DeviceAudio {
    streams: Streams,
    switched: std::sync::mpsc::Receiver<Streams>,
    switcher: Switcher,
}

/// Moves a running [`DeviceAudio`] to other devices. Opening the new
/// devices happens on the caller's thread; the call's audio tick only swaps
/// the finished streams in, so it never waits for a sound card.
#[derive(Clone)]
pub struct Switcher(std::sync::mpsc::Sender<Streams>);

impl Switcher {
    /// Opens `input` and `output` (the defaults when empty) and hands them
    /// to the call; the old devices close at its next audio tick. Blocks
    /// while the devices open.
    pub fn switch(&self, input: &str, output: &str) -> anyhow::Result<()> {
        let streams = Streams::open(input, output, ENGINE_RATE)?;
        self.0
            .send(streams)
            .map_err(|_| anyhow!("the call's audio has ended"))
    }
}

/// A sound device as the user picks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable name to put in the config or on the command line (the
    /// backend's id, e.g. ALSA's `hw:CARD=PCH,DEV=0`).
    pub id: String,
    /// What the system calls it.
    pub description: String,
}

/// The input and output devices of the default host.
pub fn list() -> anyhow::Result<(Vec<DeviceInfo>, Vec<DeviceInfo>)> {
    let host = cpal::default_host();
    let infos = |ds: Box<dyn Iterator<Item = cpal::Device>>| -> Vec<DeviceInfo> {
        ds.filter_map(|d| {
            Some(DeviceInfo {
                id: d.id().ok()?.id().to_owned(),
                description: d
                    .description()
                    .map(|x| x.name().to_owned())
                    .unwrap_or_default(),
            })
        })
        .collect()
    };
    Ok((
        infos(Box::new(host.input_devices().context("input devices")?)),
        infos(Box::new(host.output_devices().context("output devices")?)),
    ))
}

/// The devices a call can move between, and which are in use: what the
/// terminal UI's device keys step through.
pub struct Picker {
    switcher: Switcher,
    inputs: Vec<DeviceInfo>,
    outputs: Vec<DeviceInfo>,
    input: usize,
    output: usize,
}

impl Picker {
    /// A picker over the host's devices, starting at the ones named (ids;
    /// the first device when empty or unknown).
    pub fn new(switcher: Switcher, input: &str, output: &str) -> anyhow::Result<Self> {
        let (inputs, outputs) = list()?;
        let at = |ds: &[DeviceInfo], name: &str| ds.iter().position(|d| d.id == name).unwrap_or(0);
        Ok(Self {
            input: at(&inputs, input),
            output: at(&outputs, output),
            switcher,
            inputs,
            outputs,
        })
    }

    /// Ids of the devices in use.
    pub fn current(&self) -> (String, String) {
        let id = |ds: &[DeviceInfo], k: usize| ds.get(k).map_or(String::new(), |d| d.id.clone());
        (id(&self.inputs, self.input), id(&self.outputs, self.output))
    }

    /// Moves the call to the next input (or output) device, skipping ones
    /// that fail to open; returns the ids now in use. Blocks while devices
    /// open.
    pub fn next(&mut self, input: bool) -> anyhow::Result<(String, String)> {
        let n = if input {
            self.inputs.len()
        } else {
            self.outputs.len()
        };
        let mut last_error = anyhow!("no {} devices", if input { "input" } else { "output" });
        for step in 1..=n {
            let (mut i, mut o) = (self.input, self.output);
            if input {
                i = (i + step) % n;
            } else {
                o = (o + step) % n;
            }
            let id =
                |ds: &[DeviceInfo], k: usize| ds.get(k).map_or(String::new(), |d| d.id.clone());
            match self
                .switcher
                .switch(&id(&self.inputs, i), &id(&self.outputs, o))
            {
                Ok(()) => {
                    (self.input, self.output) = (i, o);
                    return Ok(self.current());
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

/// The device whose id (or, failing that, description) is `name`.
fn pick(devices: impl Iterator<Item = cpal::Device>, name: &str) -> Option<cpal::Device> {
    let devices: Vec<cpal::Device> = devices.collect();
    let by_id = devices
        .iter()
        .position(|d| d.id().is_ok_and(|i| i.id() == name));
    let by_description = || {
        devices
            .iter()
            .position(|d| d.description().is_ok_and(|x| x.name() == name))
    };
    let i = by_id.or_else(by_description)?;
    devices.into_iter().nth(i)
}

impl DeviceAudio {
    /// Opens the named devices (the defaults when empty).
    pub fn open(input: &str, output: &str) -> anyhow::Result<Self> {
        Self::open_at(input, output, ENGINE_RATE)
    }

    /// Opens the named devices at `preferred` Hz where they can run at it:
    /// tests make a device that takes any rate run at another than 48 kHz.
    fn open_at(input: &str, output: &str, preferred: u32) -> anyhow::Result<Self> {
        let (tx, switched) = std::sync::mpsc::channel();
        Ok(Self {
            streams: Streams::open(input, output, preferred)?,
            switched,
            switcher: Switcher(tx),
        })
    }

    /// How the input and output devices in use run.
    pub fn formats(&self) -> (DeviceFormat, DeviceFormat) {
        (self.streams.input, self.streams.output)
    }

    /// A handle that moves this audio to other devices.
    pub fn switcher(&self) -> Switcher {
        self.switcher.clone()
    }

    /// Takes the newest streams a [`Switcher`] opened, closing the old ones.
    fn adopt_switched(&mut self) {
        while let Ok(s) = self.switched.try_recv() {
            let old = std::mem::replace(&mut self.streams, s);
            // Closing a sound card can take a while: not on the audio tick.
            std::thread::spawn(move || drop(old));
        }
    }
}

/// Our ends of a pair of running streams' rings, and their formats.
struct Opened {
    mic: rtrb::Consumer<i16>,
    speaker: rtrb::Producer<i16>,
    input: DeviceFormat,
    output: DeviceFormat,
}

/// An input stream in the device's format `T`, pushing the first channel
/// into `ring` as `i16`.
fn build_input<T>(
    d: &cpal::Device,
    f: DeviceFormat,
    mut ring: rtrb::Producer<i16>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    i16: FromSample<T>,
{
    let channels = usize::from(f.channels.max(1));
    d.build_input_stream(
        stream_config(f),
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            for frame in data.chunks(channels) {
                // A full ring drops the newest samples: never wait.
                let _ = ring.push(i16::from_sample_(frame[0]));
            }
        },
        |e| tracing::warn!("input stream: {e}"),
        None,
    )
}

/// An output stream in the device's format `T`, playing `ring` on every
/// channel (silence when it runs dry).
fn build_output<T>(
    d: &cpal::Device,
    f: DeviceFormat,
    mut ring: rtrb::Consumer<i16>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<i16>,
{
    let channels = usize::from(f.channels.max(1));
    d.build_output_stream(
        stream_config(f),
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            for frame in data.chunks_mut(channels) {
                frame.fill(T::from_sample_(ring.pop().unwrap_or(0)));
            }
        },
        |e| tracing::warn!("output stream: {e}"),
        None,
    )
}

fn stream_config(f: DeviceFormat) -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: f.channels,
        sample_rate: f.rate,
        buffer_size: cpal::BufferSize::Default,
    }
}

/// A ring of 200 ms at `rate`: enough to ride out scheduling hiccups.
fn ring(rate: u32) -> (rtrb::Producer<i16>, rtrb::Consumer<i16>) {
    rtrb::RingBuffer::new(rate as usize / 5)
}

/// Opens and starts the streams; they run until dropped.
fn start_streams(
    input: &str,
    output: &str,
    preferred: u32,
) -> anyhow::Result<((cpal::Stream, cpal::Stream), Opened)> {
    let host = cpal::default_host();
    let inp = if input.is_empty() {
        host.default_input_device()
    } else {
        pick(host.input_devices()?, input)
    }
    .ok_or_else(|| anyhow!("no input device {input:?}"))?;
    let out = if output.is_empty() {
        host.default_output_device()
    } else {
        pick(host.output_devices()?, output)
    }
    .ok_or_else(|| anyhow!("no output device {output:?}"))?;
    let (fi, fo) = (
        device_format(&inp, true, preferred)?,
        device_format(&out, false, preferred)?,
    );
    let (mic_tx, mic) = ring(fi.rate);
    let (speaker, spk_rx) = ring(fo.rate);
    use SampleFormat as S;
    let is = match fi.sample {
        S::I16 => build_input::<i16>(&inp, fi, mic_tx),
        S::F32 => build_input::<f32>(&inp, fi, mic_tx),
        S::I32 => build_input::<i32>(&inp, fi, mic_tx),
        S::F64 => build_input::<f64>(&inp, fi, mic_tx),
        S::U16 => build_input::<u16>(&inp, fi, mic_tx),
        S::I8 => build_input::<i8>(&inp, fi, mic_tx),
        S::U8 => build_input::<u8>(&inp, fi, mic_tx),
        other => return Err(anyhow!("input sample format {other} not handled")),
    }?;
    let os = match fo.sample {
        S::I16 => build_output::<i16>(&out, fo, spk_rx),
        S::F32 => build_output::<f32>(&out, fo, spk_rx),
        S::I32 => build_output::<i32>(&out, fo, spk_rx),
        S::F64 => build_output::<f64>(&out, fo, spk_rx),
        S::U16 => build_output::<u16>(&out, fo, spk_rx),
        S::I8 => build_output::<i8>(&out, fo, spk_rx),
        S::U8 => build_output::<u8>(&out, fo, spk_rx),
        other => return Err(anyhow!("output sample format {other} not handled")),
    }?;
    is.play()?;
    os.play()?;
    let opened = Opened {
        mic,
        speaker,
        input: fi,
        output: fo,
    };
    Ok(((is, os), opened))
}

impl Streams {
    /// Opens the devices, at `preferred` Hz where they can run at it.
    fn open(input: &str, output: &str, preferred: u32) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let (input, output) = (input.to_owned(), output.to_owned());
        let thread = std::thread::spawn(move || {
            let (streams, opened) = match start_streams(&input, &output, preferred) {
                Ok((streams, opened)) => (Some(streams), Ok(opened)),
                Err(e) => (None, Err(crate::report::Causes(&e).to_string())),
            };
            let _ = ready_tx.send(opened);
            while streams.is_some() && !stop2.load(Ordering::Acquire) {
                std::thread::park();
            }
            drop(streams);
        });
        let opened = ready_rx
            .recv()
            .map_err(|_| anyhow!("audio thread died"))?
            .map_err(|e| anyhow!("audio devices: {e}"))?;
        let (fi, fo) = (opened.input, opened.output);
        tracing::info!(?fi, ?fo, "sound devices opened");
        Ok(Self {
            mic: opened.mic,
            speaker: opened.speaker,
            input: fi,
            output: fo,
            from_mic: RateBridge::new(fi.rate, ENGINE_RATE)?,
            to_speaker: RateBridge::new(ENGINE_RATE, fo.rate)?,
            stop,
            thread: Some(thread),
        })
    }
}

impl AudioPort for DeviceAudio {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        self.adopt_switched();
        let s = &mut self.streams;
        // False until 10 ms have been captured.
        match &mut s.from_mic {
            None => pop_frame(&mut s.mic, frame),
            Some(bridge) => {
                if !pop_frame(&mut s.mic, bridge.frame()) {
                    return false;
                }
                frame.copy_from_slice(bridge.convert());
                true
            }
        }
    }

    fn play(&mut self, frame: &[i16]) {
        let s = &mut self.streams;
        // The device is behind: drop the frame rather than wait.
        match &mut s.to_speaker {
            None => push_frame(&mut s.speaker, frame),
            Some(bridge) => {
                bridge.frame().copy_from_slice(frame);
                push_frame(&mut s.speaker, bridge.convert())
            }
        };
    }

    fn captured_frames(&self) -> usize {
        frames_ready(&self.streams.mic, self.streams.input.frame_len())
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        Some(frames_in(
            &self.streams.speaker,
            self.streams.output.frame_len(),
        ))
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_engine::call::wav::FRAME;

    /// Captures one 10 ms frame, polling as the call's tick would (bounded
    /// as a hang guard, not a timing assertion); whether it was silence.
    fn capture_one(a: &mut DeviceAudio) -> Option<bool> {
        let mut frame = [1i16; FRAME];
        for _ in 0..1_000 {
            if a.capture(&mut frame) {
                return Some(frame.iter().all(|&s| s == 0));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// [`tone_hz`](sotto_engine::sim::audio::tone_hz), which must find one.
    fn tone_hz(pcm: &[i16], rate: u32) -> f64 {
        sotto_engine::sim::audio::tone_hz(pcm, rate).expect("more than 100 periods of a tone")
    }

    fn tone(hz: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    /// Where the child test below writes and reads its audio.
    const CHILD_DIR: &str = "SOTTO_TEST_ALSA_DIR";

    /// `pcm` on every channel, as a raw file in format `f` (the ones the
    /// plugin device offers by default: f32 or i16, little-endian).
    fn raw_file(pcm: &[i16], f: DeviceFormat) -> Vec<u8> {
        let sample = |s: i16| match f.sample {
            SampleFormat::F32 => f32::from_sample_(s).to_le_bytes().to_vec(),
            SampleFormat::I16 => s.to_le_bytes().to_vec(),
            other => panic!("test device offers {other}"),
        };
        pcm.iter()
            .flat_map(|s| std::iter::repeat_n(sample(*s), usize::from(f.channels)))
            .flatten()
            .collect()
    }

    /// The first channel of a raw file in format `f`.
    fn first_channel(raw: &[u8], f: DeviceFormat) -> Vec<i16> {
        let width = f.sample.sample_size();
        raw.chunks_exact(width * usize::from(f.channels))
            .map(|b| match f.sample {
                SampleFormat::F32 => {
                    i16::from_sample_(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                _ => i16::from_le_bytes([b[0], b[1]]),
            })
            .collect()
    }

    #[test]
    fn a_device_at_44_1_khz_plays_and_captures_at_pitch() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            // ALSA reads `~/.asoundrc` once per process: run this test
            // again in a child whose HOME has a device made of ALSA
            // plugins (no sound card needed) that captures from
            // `tone.raw` and plays to `played.raw`.
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().display();
            let asoundrc = format!(
                r#"pcm.sottofile {{
    type file
    slave.pcm "null"
    file "{d}/played.raw"
    infile "{d}/tone.raw"
    format "raw"
    hint {{ show on; description "capture from tone.raw, play to played.raw" }}
}}
"#
            );
            std::fs::write(dir.path().join(".asoundrc"), asoundrc).unwrap();
            // The plugin opens its input file as the device opens; the
            // child writes the tone once it knows the channel count.
            std::fs::write(dir.path().join("tone.raw"), []).unwrap();
            let me = std::env::current_exe().unwrap();
            let out = std::process::Command::new(me)
                .args([
                    "devices::tests::a_device_at_44_1_khz_plays_and_captures_at_pitch",
                    "--exact",
                    "--nocapture",
                ])
                .env("HOME", dir.path())
                .env(CHILD_DIR, dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            println!("{text}");
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "{text}");
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        // Cards that cannot run at 48 kHz are what this is for; ALSA's
        // plugins cannot make one (a plug converts, a hw needs a card), so
        // this device, which takes any rate, is asked for 44.1 kHz.
        let host = cpal::default_host();
        let card = pick(host.input_devices().unwrap(), "sottofile").expect("listed");
        let fi = device_format(&card, true, 44_100).unwrap();
        // Four seconds of a 1 kHz tone at 44.1 kHz.
        let raw = raw_file(&tone(1_000.0, 44_100, 44_100 * 4), fi);
        std::fs::write(dir.join("tone.raw"), raw).unwrap();

        let mut audio = DeviceAudio::open_at("sottofile", "sottofile", 44_100).unwrap();
        let (fi, fo) = audio.formats();
        println!("input {fi}, output {fo}");
        assert_eq!((fi.rate, fo.rate), (44_100, 44_100));

        // Capture: 48 kHz frames carry the tone at 1 kHz (1088 Hz if the
        // device's samples were taken as 48 kHz ones).
        let mut captured = Vec::new();
        let mut frame = [0i16; FRAME];
        for _ in 0..2_000 {
            if captured.len() >= 48_000 {
                break;
            }
            if audio.capture(&mut frame) {
                captured.extend_from_slice(&frame);
            } else {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert!(captured.len() >= 48_000, "captured {}", captured.len());
        let hz = tone_hz(&captured[4_800..48_000], 48_000);
        println!("captured tone at {hz:.1} Hz");
        assert!((hz - 1_000.0).abs() < 10.0, "captured tone at {hz:.1} Hz");

        // Playback: a 1 kHz tone at 48 kHz reaches the device as 1 kHz at
        // its 44.1 kHz (919 Hz if 48 kHz samples were played as they are).
        let sent = tone(1_000.0, 48_000, 48_000);
        for f in sent.chunks_exact(FRAME) {
            while audio.queued_playout_frames().unwrap_or(0) > 10 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            audio.play(f);
        }
        while audio.queued_playout_frames().unwrap_or(0) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(audio);
        let played = first_channel(&std::fs::read(dir.join("played.raw")).unwrap(), fo);
        // The tone, without the silence a device running faster than real
        // time plays between frames.
        let played: Vec<i16> = played.into_iter().filter(|s| *s != 0).collect();
        assert!(played.len() > 40_000, "played {} samples", played.len());
        let hz = tone_hz(&played, 44_100);
        println!("played tone at {hz:.1} Hz");
        assert!((hz - 1_000.0).abs() < 10.0, "played tone at {hz:.1} Hz");
    }

    #[test]
    fn alsa_null_devices_run_the_callbacks_and_switch_mid_call() {
        // ALSA's `null` PCM (alsa.conf) needs no sound card: capture gives
        // silence at the real rate, playback discards.
        let (inputs, outputs) = list().unwrap();
        assert!(inputs.iter().any(|d| d.id == "null"), "{inputs:?}");
        assert!(outputs.iter().any(|d| d.id == "null"), "{outputs:?}");
        let mut audio = DeviceAudio::open("null", "null").unwrap();
        assert_eq!(capture_one(&mut audio), Some(true), "silence from null");
        for _ in 0..50 {
            audio.play(&[1000; FRAME]);
        }
        audio.switcher().switch("null", "null").unwrap();
        assert_eq!(capture_one(&mut audio), Some(true), "after the switch");
        assert!(DeviceAudio::open("no such device", "null").is_err());
        assert!(audio.switcher().switch("null", "no such device").is_err());
        assert_eq!(capture_one(&mut audio), Some(true), "old devices kept");

        // The picker steps to devices that open and reports them.
        let mut picker = Picker::new(audio.switcher(), "null", "null").unwrap();
        assert_eq!(picker.current(), ("null".into(), "null".into()));
        let (i, o) = picker.next(true).unwrap();
        assert_eq!(o, "null");
        assert!(inputs.iter().any(|d| d.id == i));
        assert!(
            capture_one(&mut audio).is_some(),
            "after the picker's switch"
        );
    }
}
