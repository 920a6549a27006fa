//! The `tej` subcommands, one module each as cargo lays out its commands:
//! its `clap` arguments (whose doc comments are the `--help` text) and an
//! `exec` that the binary calls. [`serve`] prints what it receives and
//! [`send`] sends files and messages, on any runtime of the
//! [`runtime`](crate::runtime) facade; both print [`report::Event`]s, as
//! text or (`--json`) one JSON object per line. [`demo`] and
//! [`bench`](mod@bench) run [`crate::demo`] and
//! [`crate::bench`](mod@crate::bench).
//!
//! This module holds what several commands share: the parsers of sizes,
//! counts and seconds, the limit arguments and the logging setup.

pub mod bench;
pub mod demo;
pub mod metrics;
pub mod report;
pub mod send;
pub mod serve;
pub mod subject;

use std::time::Duration;

use tej_core::Limits;

/// Parses seconds, whole or fractional: `30`, `0.5`.
///
/// # Errors
///
/// A message for anything that is not a positive, finite number.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("{text:?} is not a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a count of at least 1: `4`, `10000`.
///
/// # Errors
///
/// A message for anything else.
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("{text:?} is not a count of at least 1")),
    }
}

/// Parses a byte count: `1048576`, `64K`, `512M`, `2G`, `1T` (powers of
/// 1024; `KiB`, `MB` and such are read the same), or `unlimited`.
///
/// # Errors
///
/// A message for anything else, or a count that overflows a u64.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("unlimited") {
        return Ok(u64::MAX);
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 4096, 64K, 512M or 2G"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?} has an unknown unit; use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// What a peer may announce to `tej serve` before it is disconnected.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Largest file a peer may send, in bytes; K, M, G, T suffixes
    /// (powers of 1024) or `unlimited` [default: unlimited: files are
    /// streamed to disk or a hasher in constant memory]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// Largest message, in bytes (messages are held in memory) [default: 64M]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_message_size: Option<u64>,
    /// Most files in one frame [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
    /// Longest file name, in bytes, at most 65535 [default: 65535]
    #[arg(long, value_name = "BYTES")]
    pub max_name_len: Option<u16>,
    /// Largest sum of file and message lengths in one frame [default:
    /// unlimited for files, the message's own bound for the message]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_frame_size: Option<u64>,
}

impl LimitArgs {
    /// The limits: each option given, the default for the rest.
    pub fn limits(&self) -> Limits {
        let default = Limits::DEFAULT;
        default
            .max_file_count(self.max_files.unwrap_or(default.max_file_count))
            .max_name_len(self.max_name_len.unwrap_or(default.max_name_len))
            .max_message_size(self.max_message_size.unwrap_or(default.max_message_size))
            // Files are never held in memory by `tej serve`: these bound
            // them wherever they go, and are off unless given.
            .max_file_size(self.max_file_size.unwrap_or(default.max_file_size))
            .max_stored_file_size(self.max_file_size.unwrap_or(u64::MAX))
            .max_frame_size(self.max_frame_size.unwrap_or(default.max_frame_size))
            .max_stored_frame_size(self.max_frame_size.unwrap_or(u64::MAX))
    }
}

/// Sends `tracing` logs (this tool's and the adapters') to stderr, at
/// `default` level, or as `TEJ_LOG` says: a level (`debug`) or any
/// `tracing_subscriber::EnvFilter` directive (`warn,tej_mio=trace`).
pub fn init_logging(default: tracing::Level) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(default.into())
        .with_env_var("TEJ_LOG")
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("unlimited"), Ok(u64::MAX));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn counts_are_positive() {
        assert_eq!(parse_count("4"), Ok(4));
        assert_eq!(parse_count(" 10000 "), Ok(10_000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("many").is_err());
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn every_runtime_is_accepted_by_name() {
        use crate::runtime::Runtime;
        for runtime in Runtime::ALL {
            assert_eq!(runtime.name().parse::<Runtime>(), Ok(*runtime));
            let value = clap::ValueEnum::to_possible_value(runtime).unwrap();
            assert_eq!(value.get_name(), runtime.name());
        }
        assert!("tokyo".parse::<Runtime>().unwrap_err().contains("smol"));
    }
}
