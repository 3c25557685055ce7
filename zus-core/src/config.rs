//! The zus configuration file (TOML). Every key is optional; a missing file section or key
//! takes its default. Unknown keys are an error, so a typo is reported rather than ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `zus` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/zpmfs/zus.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub fuse: FuseConfig,
    pub zuf: ZufConfig,
    pub log: LogConfig,
}

/// `[zuf]`: the zuf.ko transport (`zus serve`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZufConfig {
    /// Run a polling thread on this CPU: calls from the other CPUs are answered without a
    /// sleep, a wake-up or an address-space switch, at the price of that CPU spinning while
    /// calls come (it sleeps after 1 ms without one). None: every call goes to the server
    /// thread of its own CPU.
    pub poll_cpu: Option<usize>,
}

/// `[fuse]`: the FUSE transport.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuseConfig {
    /// Threads serving /dev/fuse, each pinned to one CPU; 0 means one per CPU.
    pub threads: usize,
    /// How long the kernel may cache attributes and directory entries, in milliseconds.
    pub attr_ttl_ms: u64,
    /// Let users other than root use the mount (the `allow_other` mount option).
    pub allow_other: bool,
    /// How requests travel: "auto" (io_uring where the kernel offers it, else /dev/fuse),
    /// "uring" (io_uring or no mount) or "dev" (/dev/fuse). The mount option `fuse_channel=`
    /// overrides it.
    pub channel: crate::fuse::channel::ChannelChoice,
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig { threads: 0, attr_ttl_ms: 1000, allow_other: false, channel: Default::default() }
    }
}

impl FuseConfig {
    /// The attribute and entry time-to-live.
    pub fn attr_ttl(&self) -> Duration {
        Duration::from_millis(self.attr_ttl_ms)
    }
}

/// `[log]`: diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// off, error, warn, info, debug or trace.
    pub level: LogLevel,
    /// Append messages to this file; without it they go to standard error, which a server
    /// running in the background has closed.
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: LogLevel::Warn, file: None }
    }
}

/// A log level as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    Read { path: PathBuf, err: std::io::Error },
    Parse { path: PathBuf, msg: String },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read { path, err } => {
                let reason = match err.raw_os_error() {
                    Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
                    None => err.to_string(),
                };
                write!(f, "cannot read config {}: {reason}", path.display())
            }
            ConfigError::Parse { path, msg } => {
                write!(f, "bad config {}: {}", path.display(), msg.trim_end())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parse configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), msg: e.to_string() })
    }

    /// Load `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::Read { path: path.to_path_buf(), err })?;
        Config::parse(&text, path)
    }

    /// Load `explicit` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if it exists,
    /// else the defaults.
    pub fn load_default_or(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) => Config::load(path),
            None => {
                let path = Path::new(DEFAULT_CONFIG_PATH);
                if path.exists() {
                    Config::load(path)
                } else {
                    Ok(Config::default())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse("").expect("empty config parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.fuse.threads, 0);
        assert_eq!(c.fuse.attr_ttl(), Duration::from_secs(1));
        assert!(!c.fuse.allow_other);
        assert_eq!(c.log.level, LogLevel::Warn);
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "[fuse]\nthreads = 4\nattr_ttl_ms = 250\nallow_other = true\n\
             [log]\nlevel = \"debug\"\nfile = \"/var/log/zus.log\"\n",
        )
        .expect("parses");
        assert_eq!(
            c.fuse,
            FuseConfig { threads: 4, attr_ttl_ms: 250, allow_other: true, ..Default::default() }
        );
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.log.file.as_deref(), Some(Path::new("/var/log/zus.log")));
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let c = parse("[fuse]\nallow_other = true\n").expect("parses");
        assert_eq!(c.fuse.threads, 0);
        assert_eq!(c.fuse.attr_ttl_ms, 1000);
        assert!(c.fuse.allow_other);
    }

    #[test]
    fn zuf_poll_cpu_parses() {
        assert_eq!(parse("").unwrap().zuf.poll_cpu, None);
        assert_eq!(parse("[zuf]\npoll_cpu = 1\n").unwrap().zuf.poll_cpu, Some(1));
        assert!(parse("[zuf]\npoll_cpu = -1\n").is_err());
        assert!(parse("[zuf]\npoll = 1\n").is_err());
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse("[fuse]\nthread = 4\n").expect_err("typo rejected");
        assert!(err.to_string().contains("thread"), "{err}");
        assert!(parse("[fusee]\n").is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse("[fuse]\nthreads = -1\n").is_err());
        assert!(parse("[fuse]\nallow_other = \"yes\"\n").is_err());
        assert!(parse("[log]\nlevel = \"loud\"\n").is_err());
        assert!(parse("not toml at all [").is_err());
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../../configs/zus.toml");
        let c = parse(text).expect("configs/zus.toml parses");
        assert_eq!(c, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load_default_or(Some(Path::new("/nonexistent/zus.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/zus.toml"), "{err}");
    }
}
