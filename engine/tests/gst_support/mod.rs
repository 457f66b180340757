//! Shared harness for the interop tests against GStreamer: checking that
//! the tools and elements are there, and a `gst-launch-1.0` pipeline run
//! as a child process, with its stderr kept to explain a failure.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Only to fail rather than hang if GStreamer never gets there.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Panics, pointing at `cargo xtask setup`, if a GStreamer tool or one of
/// `elements` is missing: interop tests are never skipped silently.
pub fn require_gstreamer(elements: &[&str]) {
    for tool in ["gst-launch-1.0", "gst-inspect-1.0"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        assert!(
            found,
            "{tool} not found: install GStreamer (gstreamer1.0-tools, \
             gstreamer1.0-plugins-good) with `cargo xtask setup`"
        );
    }
    for element in elements {
        let ok = Command::new("gst-inspect-1.0")
            .args(["--exists", element])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "GStreamer element {element} missing: install gstreamer1.0-plugins-good \
             (with -base, libvpx and opus) with `cargo xtask setup`"
        );
    }
}

/// A scratch directory, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sotto-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `gst-launch-1.0 -q` pipeline, killed on drop; its stderr goes to a
/// file so that a failure can show it.
pub struct Gst {
    child: Child,
    stderr: PathBuf,
}

impl Gst {
    pub fn launch(pipeline: &str, stderr: PathBuf) -> Self {
        let child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("gst-launch-1.0 starts (run `cargo xtask setup`)");
        Self { child, stderr }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it has exited; panics if it failed.
    pub fn exited(&mut self) -> bool {
        match self.child.try_wait().unwrap() {
            None => false,
            Some(status) => {
                assert!(
                    status.success(),
                    "gst-launch-1.0 failed ({status}):\n{}",
                    self.stderr()
                );
                true
            }
        }
    }

    pub fn wait(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while !self.exited() {
            assert!(
                Instant::now() < deadline,
                "gst-launch-1.0 did not finish:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for its `udpsrc` to bind `port`. Bound means ready: datagrams
    /// wait in the socket until udpsrc reads them.
    pub fn wait_bound(&mut self, port: u16) {
        let deadline = Instant::now() + DEADLINE;
        while !udp_port_bound(port) {
            assert!(
                !self.exited(),
                "gst-launch-1.0 ended early:\n{}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "udpsrc never bound {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago, for GStreamer to bind.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from
/// `/proc/net/udp`, so that looking does not take the port).
pub fn udp_port_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    })
}
