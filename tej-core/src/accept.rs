//! The accept-loop policy every adapter's server shares: which accept
//! errors concern only one connection, and how long to pause after the
//! others.

use core::time::Duration;

/// How long an accept loop pauses after an error such as running out of
/// file descriptors, so that it does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Whether an accept error concerns only the connection being accepted
/// (it was aborted or reset before `accept` returned): the loop goes on at
/// once. Any other error (`EMFILE`, `ENFILE`, `ENOBUFS`, ...) calls for a
/// pause of [`ACCEPT_ERROR_BACKOFF`].
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use tej_core::accept::is_per_connection_error;
///
/// assert!(is_per_connection_error(&Error::from(ErrorKind::ConnectionAborted)));
/// assert!(!is_per_connection_error(&Error::from_raw_os_error(24))); // EMFILE
/// ```
pub fn is_per_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}
