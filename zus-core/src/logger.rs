//! A small logger for the `log` facade (fuser logs through it too): one line per message to
//! standard error or to the configured file.

use std::fs::File;
use std::io::Write;

use parking_lot::Mutex;

use crate::config::LogConfig;

struct Logger {
    level: log::LevelFilter,
    out: Mutex<Box<dyn Write + Send>>,
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut out = self.out.lock();
        // A log line that cannot be written is dropped: there is nowhere left to report it.
        let _ = writeln!(out, "zus[{}]: {}: {}", std::process::id(), record.level(), record.args());
    }

    fn flush(&self) {
        let _ = self.out.lock().flush();
    }
}

/// Install the logger. Opens the log file (appending) if one is configured.
pub fn init(cfg: &LogConfig) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = match &cfg.file {
        Some(path) => Box::new(File::options().create(true).append(true).open(path)?),
        None => Box::new(std::io::stderr()),
    };
    let level = cfg.level.to_filter();
    let logger = Box::new(Logger { level, out: Mutex::new(out) });
    // Fails only if a logger is already installed, which then stays.
    if log::set_logger(Box::leak(logger)).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}
