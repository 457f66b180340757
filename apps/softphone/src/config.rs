//! The softphone's configuration and device keys, in the user's config
//! directory (`~/.config/sotto` on Linux) or `--config-dir`:
//! `config.toml` (server, user name, audio devices, relay-only, contacts),
//! `device.key` (Ed25519 + X25519 secrets, mode 0600) and `zid.cache`
//! (ZRTP retained secrets).

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use sotto_signalling::seal::DeviceIdentity;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The signalling server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
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

    /// Reads `config.toml` and `device.key`.
    pub fn load(&self) -> anyhow::Result<(Config, DeviceIdentity)> {
        let text = std::fs::read_to_string(self.config())
            .with_context(|| format!("{}: run `sotto register` first", self.config().display()))?;
        let cfg: Config = toml::from_str(&text).context("config.toml")?;
        let key = std::fs::read(self.key()).context("device.key")?;
        let id = DeviceIdentity::from_secret_bytes(&key).context("device.key")?;
        Ok((cfg, id))
    }

    /// Writes `config.toml`.
    pub fn save_config(&self, cfg: &Config) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        std::fs::write(self.config(), toml::to_string_pretty(cfg)?)?;
        Ok(())
    }

    /// Writes `device.key`, readable by the owner only.
    pub fn save_key(&self, id: &DeviceIdentity) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        write_private(&self.key(), &id.to_secret_bytes())
    }
}

/// Creates (or truncates) `path` with mode 0600 and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
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
        assert_eq!(id2.device_id(), id.device_id());
        let mode = std::fs::metadata(d.key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
