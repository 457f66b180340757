//! Sound-card audio through cpal: the device callbacks talk to the call
//! only through wait-free SPSC rings (rtrb), so they never block or
//! allocate. Streams run at 48 kHz, 16-bit; the first channel is captured
//! and playback is copied to every channel.

use anyhow::{Context as _, anyhow};
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use sotto_engine::call::wav::AudioPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// 48 kHz: the engine's rate, so no resampling sits in the callbacks.
const RATE: u32 = 48_000;
/// Ring size each way: 200 ms, enough to ride out scheduling hiccups.
const RING: usize = RATE as usize / 5;

/// Microphone and speaker as an [`AudioPort`]. The cpal streams live on
/// their own thread (they are not `Send` everywhere) until this is dropped.
pub struct DeviceAudio {
    mic: rtrb::Consumer<i16>,
    speaker: rtrb::Producer<i16>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn pick(devices: impl Iterator<Item = cpal::Device>, name: &str) -> Option<cpal::Device> {
    devices
        .into_iter()
        .find(|d| d.description().is_ok_and(|x| x.name() == name))
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
        let Ok(chunk) = self.mic.read_chunk(frame.len()) else {
            return false; // not 10 ms captured yet
        };
        let (a, b) = chunk.as_slices();
        frame[..a.len()].copy_from_slice(a);
        frame[a.len()..].copy_from_slice(b);
        chunk.commit_all();
        true
    }

    fn play(&mut self, frame: &[i16]) {
        for &s in frame {
            if self.speaker.push(s).is_err() {
                break; // the device is behind: drop rather than wait
            }
        }
    }
}

impl Drop for DeviceAudio {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
