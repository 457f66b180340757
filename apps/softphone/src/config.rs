//! The softphone's configuration and device keys, in the user's config
//! directory (`~/.config/sotto` on Linux) or `--config-dir`:
//! `config.toml` (server, user name, audio devices, relay-only, contacts,
//! `[audio]` codec and jitter buffer settings),
//! `device.key` (Ed25519 + X25519 secrets, mode 0600) and `zid.cache`
//! (ZRTP retained secrets).

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use sotto_engine::call::AudioConfig;
use sotto_jitter::JitterConfig;
use sotto_signalling::seal::DeviceIdentity;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The signalling server, e.g. `http://127.0.0.1:8080` or
    /// `https://signal.example.org`.
    pub server: String,
    /// PEM file of CA certificates to trust for an `https` server besides
    /// the Web PKI's (a deployment's own CA); empty for none.
    pub ca_file: String,
    /// Our user name (shown to contacts; the server knows only device ids).
    pub user: String,
    /// Our device id, as the server registered it.
    pub device_id: String,
    /// Input device name (default device when empty).
    pub input_device: String,
    /// Output device name (default device when empty).
    pub output_device: String,
    /// Only ever use the TURN relay (hides our addresses from the callee).
    pub relay_only: bool,
    /// Contacts: name to device id.
    pub contacts: BTreeMap<String, String>,
    /// Codec and jitter buffer settings, `[audio]`.
    pub audio: AudioSettings,
}

impl Config {
    /// The name `device_id` is listed under in `[contacts]`, if any.
    pub fn contact_name(&self, device_id: &str) -> Option<&str> {
        self.contacts
            .iter()
            .find(|(_, id)| *id == device_id)
            .map(|(name, _)| name.as_str())
    }
}

/// `[audio]` in `config.toml`: what a user may want to change about the
/// audio of their calls. Missing keys take the engine's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioSettings {
    /// Opus bitrate we send, bit/s (500 to 512 000).
    pub bitrate: u32,
    /// In-band forward error correction: a lost packet is rebuilt from
    /// the next one.
    pub fec: bool,
    /// Discontinuous transmission: in silence only comfort noise is sent
    /// (off for music).
    pub dtx: bool,
    /// Lowest target delay of the jitter buffer, ms: more delay for
    /// smoother playout (WebRTC's `jitterBufferTarget`).
    pub min_target_ms: f64,
    /// Highest target delay of the jitter buffer, ms (under 7 000).
    pub max_target_ms: f64,
    /// Back to live after an outage, ms (0: off). After an outage of
    /// seconds the buffer waits up to this long for the backlog, then
    /// drops it and plays live; off, it plays the backlog up to twice as
    /// fast and drops only what is more than 3 s behind.
    pub outage_hold_ms: f64,
    /// Remove the echo of what the speaker plays from what the microphone
    /// hears (WebRTC's AEC3), for sound devices; no use with a headset,
    /// where it costs about 1.5 % of a core (`cargo xtask bench echo`) and 10 ms of delay.
    pub echo_cancellation: bool,
}

impl Default for AudioSettings {
    fn default() -> Self {
        let d = AudioConfig::default();
        Self {
            bitrate: d.bitrate,
            fec: d.fec,
            dtx: d.dtx,
            min_target_ms: d.jitter.min_target_ms,
            max_target_ms: d.jitter.max_target_ms,
            outage_hold_ms: d.jitter.outage_hold_ms,
            echo_cancellation: true,
        }
    }
}

impl AudioSettings {
    /// The engine's audio settings with these applied (checked where a
    /// call is made, and by [`Dirs::load`]).
    pub fn audio_config(&self) -> AudioConfig {
        let d = AudioConfig::default();
        AudioConfig {
            bitrate: self.bitrate,
            fec: self.fec,
            dtx: self.dtx,
            jitter: JitterConfig {
                min_target_ms: self.min_target_ms,
                max_target_ms: self.max_target_ms,
                outage_hold_ms: self.outage_hold_ms,
                ..d.jitter
            },
            ..d
        }
    }
}

/// Where the files live.
#[derive(Debug, Clone)]
pub struct Dirs {
    root: PathBuf,
}

impl Dirs {
    /// `dir`, or the platform's config directory for sotto.
    pub fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let root = match dir {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "sotto")
                .ok_or_else(|| anyhow!("no home directory: pass --config-dir"))?
                .config_dir()
                .to_path_buf(),
        };
        Ok(Self { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    fn key(&self) -> PathBuf {
        self.root.join("device.key")
    }

    /// The ZRTP cache file.
    pub fn zid_cache(&self) -> PathBuf {
        self.root.join("zid.cache")
    }

    /// The ids of the sealed messages this device was handed in the last
    /// minutes, so that signald cannot deliver one again after a restart.
    pub fn replay_file(&self) -> PathBuf {
        self.root.join("replay.journal")
    }

    /// Whether a device key exists (a registered device lives here).
    pub fn has_key(&self) -> bool {
        self.key().exists()
    }

    /// Reads `config.toml`, `None` when there is none.
    pub fn read_config_if_any(&self) -> anyhow::Result<Option<Config>> {
        match std::fs::read_to_string(self.config()) {
            Ok(text) => Ok(Some(toml::from_str(&text).context("config.toml")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("config.toml"),
        }
    }

    /// Reads `config.toml` and `device.key`.
    pub fn load(&self) -> anyhow::Result<(Config, DeviceIdentity)> {
        let cfg = self.read_config_if_any()?.ok_or_else(|| {
            anyhow!(
                "{} not found: run `sotto register` first",
                self.config().display()
            )
        })?;
        // Out-of-range settings stop the phone now, not at its first call.
        cfg.audio
            .audio_config()
            .validate()
            .context("config.toml [audio]")?;
        let key = std::fs::read(self.key()).context("device.key")?;
        let id = DeviceIdentity::from_secret_bytes(&key).context("device.key")?;
        Ok((cfg, id))
    }

    /// Writes `config.toml`.
    pub fn save_config(&self, cfg: &Config) -> anyhow::Result<()> {
        write_private(&self.config(), toml::to_string_pretty(cfg)?.as_bytes())
            .context("writing config.toml")
    }

    /// Sets the sound devices in `config.toml` as it is now on disk (the
    /// user may have edited it during the call), leaving the rest alone.
    pub fn save_devices(&self, input: &str, output: &str) -> anyhow::Result<()> {
        let mut cfg = self.read_config_if_any()?.unwrap_or_default();
        cfg.input_device = input.to_owned();
        cfg.output_device = output.to_owned();
        self.save_config(&cfg)
    }

    /// Writes `device.key`, readable by the owner only.
    pub fn save_key(&self, id: &DeviceIdentity) -> anyhow::Result<()> {
        write_private(&self.key(), &id.to_secret_bytes()).context("writing device.key")
    }
}

/// Replaces `path` with `bytes`, mode 0600, all or nothing: a temp file in
/// the same directory is written, synced and renamed over it, so a crash
/// leaves the old file or the new one, never a truncated one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{}: no directory", path.display()))?;
    std::fs::create_dir_all(dir)?;
    // tempfile creates it 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn config_and_private_key_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dirs::new(Some(dir.path().join("sotto"))).unwrap();
        let mut cfg = Config {
            server: "http://127.0.0.1:1".into(),
            user: "alice".into(),
            relay_only: true,
            ..Config::default()
        };
        cfg.contacts.insert("bob".into(), "abc".into());
        let id = DeviceIdentity::generate();
        d.save_config(&cfg).unwrap();
        d.save_key(&id).unwrap();
        let (c2, id2) = d.load().unwrap();
        assert_eq!(c2, cfg);
        assert_eq!(c2.contact_name("abc"), Some("bob"));
        assert_eq!(c2.contact_name("abd"), None);
        assert_eq!(id2.device_id(), id.device_id());
        let mode = std::fs::metadata(d.key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn saving_replaces_the_file_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dirs::new(Some(dir.path().to_path_buf())).unwrap();
        // A key file left readable by an older version gets 0600 on rewrite.
        std::fs::write(d.key(), b"old").unwrap();
        std::fs::set_permissions(d.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
        d.save_key(&DeviceIdentity::generate()).unwrap();
        let mode = std::fs::metadata(d.key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temp file is left beside them.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["device.key"]);
    }

    #[test]
    fn a_device_switch_changes_only_the_device_fields_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dirs::new(Some(dir.path().to_path_buf())).unwrap();
        d.save_config(&Config {
            user: "alice".into(),
            ..Config::default()
        })
        .unwrap();
        // Edited by hand while a call ran.
        std::fs::write(
            d.config(),
            "user = \"alice\"\n[contacts]\nbob = \"abc\"\n[audio]\ndtx = false\n",
        )
        .unwrap();
        d.save_devices("mic", "speaker").unwrap();
        let c = d.read_config_if_any().unwrap().unwrap();
        assert_eq!(
            (c.input_device.as_str(), c.output_device.as_str()),
            ("mic", "speaker")
        );
        assert_eq!(c.contact_name("abc"), Some("bob"));
        assert!(!c.audio.dtx);
    }

    #[test]
    fn audio_settings_take_the_defaults_for_missing_keys_and_refuse_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dirs::new(Some(dir.path().to_path_buf())).unwrap();
        d.save_key(&DeviceIdentity::generate()).unwrap();
        let load = |toml: &str| {
            std::fs::write(d.config(), toml).unwrap();
            d.load().map(|(c, _)| c)
        };
        let cfg =
            load("user = \"alice\"\n[audio]\ndtx = false\noutage_hold_ms = 1000.0\n").unwrap();
        let audio = cfg.audio.audio_config();
        assert!(!audio.dtx && audio.fec);
        assert_eq!(audio.bitrate, AudioConfig::default().bitrate);
        assert_eq!(audio.jitter.outage_hold_ms, 1000.0);
        assert_eq!(load("").unwrap().audio, AudioSettings::default());
        for (bad, says) in [
            ("[audio]\nbitrate = 100\n", "bitrate"),
            ("[audio]\nmax_target_ms = -5.0\n", "max_target_ms"),
            ("[audio]\nmin_target_ms = 3000.0\n", "min_target_ms"),
            ("[audio]\nbitrat = 32000\n", "unknown field"),
        ] {
            let e = format!("{:#}", load(bad).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
