//! Sound-card audio through cpal: the device callbacks talk to the call
//! only through wait-free SPSC rings (rtrb), so they never block or
//! allocate. Streams run at 48 kHz, 16-bit; the first channel is captured
//! and playback is copied to every channel.

use anyhow::{Context as _, anyhow};
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use sotto_engine::call::wav::{AudioPort, frames_in, frames_ready, pop_frame, push_frame};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// 48 kHz: the engine's rate, so no resampling sits in the callbacks.
const RATE: u32 = 48_000;
/// Ring size each way: 200 ms, enough to ride out scheduling hiccups.
const RING: usize = RATE as usize / 5;

/// One pair of running cpal streams and our ends of their rings. The
/// streams live on their own thread (they are not `Send` everywhere) until
/// this is dropped.
struct Streams {
    mic: rtrb::Consumer<i16>,
    speaker: rtrb::Producer<i16>,
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
        let streams = Streams::open(input, output)?;
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

fn stream_config(d: &cpal::Device, input: bool) -> anyhow::Result<cpal::StreamConfig> {
    let def = if input {
        d.default_input_config()
    } else {
        d.default_output_config()
    }
    .context("device configuration")?;
    Ok(cpal::StreamConfig {
        channels: def.channels(),
        sample_rate: RATE,
        buffer_size: cpal::BufferSize::Default,
    })
}

impl DeviceAudio {
    /// Opens the named devices (the defaults when empty).
    pub fn open(input: &str, output: &str) -> anyhow::Result<Self> {
        let (tx, switched) = std::sync::mpsc::channel();
        Ok(Self {
            streams: Streams::open(input, output)?,
            switched,
            switcher: Switcher(tx),
        })
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

impl Streams {
    fn open(input: &str, output: &str) -> anyhow::Result<Self> {
        let (mic_tx, mic) = rtrb::RingBuffer::<i16>::new(RING);
        let (speaker, spk_rx) = rtrb::RingBuffer::<i16>::new(RING);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let (input, output) = (input.to_owned(), output.to_owned());
        let thread = std::thread::spawn(move || {
            let streams = (|| -> anyhow::Result<(cpal::Stream, cpal::Stream)> {
                let host = cpal::default_host();
                let inp = if input.is_empty() {
                    host.default_input_device()
                } else {
                    pick(host.input_devices()?, &input)
                }
                .ok_or_else(|| anyhow!("no input device {input:?}"))?;
                let out = if output.is_empty() {
                    host.default_output_device()
                } else {
                    pick(host.output_devices()?, &output)
                }
                .ok_or_else(|| anyhow!("no output device {output:?}"))?;
                let (ic, oc) = (stream_config(&inp, true)?, stream_config(&out, false)?);
                let (ich, och) = (
                    usize::from(ic.channels.max(1)),
                    usize::from(oc.channels.max(1)),
                );
                let mut mic_tx = mic_tx;
                let mut spk_rx = spk_rx;
                let is = inp.build_input_stream(
                    ic,
                    move |data: &[i16], _: &cpal::InputCallbackInfo| {
                        for f in data.chunks(ich) {
                            // A full ring drops the newest samples: never wait.
                            let _ = mic_tx.push(f[0]);
                        }
                    },
                    |e| tracing::warn!("input stream: {e}"),
                    None,
                )?;
                let os = out.build_output_stream(
                    oc,
                    move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                        for f in data.chunks_mut(och) {
                            f.fill(spk_rx.pop().unwrap_or(0));
                        }
                    },
                    |e| tracing::warn!("output stream: {e}"),
                    None,
                )?;
                is.play()?;
                os.play()?;
                Ok((is, os))
            })();
            let ok = streams.is_ok();
            let _ = ready_tx.send(streams.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
            while ok && !stop2.load(Ordering::Acquire) {
                std::thread::park();
            }
            drop(streams);
        });
        ready_rx
            .recv()
            .map_err(|_| anyhow!("audio thread died"))?
            .map_err(|e| anyhow!("audio devices: {e}"))?;
        Ok(Self {
            mic,
            speaker,
            stop,
            thread: Some(thread),
        })
    }
}

impl AudioPort for DeviceAudio {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        self.adopt_switched();
        // False until 10 ms have been captured.
        pop_frame(&mut self.streams.mic, frame)
    }

    fn play(&mut self, frame: &[i16]) {
        // The device is behind: drop the frame rather than wait.
        push_frame(&mut self.streams.speaker, frame);
    }

    fn captured_frames(&self) -> usize {
        frames_ready(&self.streams.mic)
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        Some(frames_in(&self.streams.speaker))
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
