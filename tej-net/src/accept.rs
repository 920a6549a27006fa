//! What every adapter's server shares, written once: which accept errors
//! concern only one connection and how long to pause after the others,
//! the connection cap, what an accept loop does with each accept
//! ([`ConnectionCap::on_accept`]), and the listening socket.

use core::time::Duration;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::observe::Observer;

/// How long an accept loop pauses after an error such as running out of
/// file descriptors, so that it does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A server's default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Pending connections the kernel queues before `accept`: the usual 128
/// drops SYNs when a thousand clients connect at once, and a burst of ten
/// thousand still overflowed 1,024 here. The kernel caps it at
/// `net.core.somaxconn` (4,096 on current Linux).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Whether an accept error concerns only the connection being accepted
/// (it was aborted or reset before `accept` returned): the loop goes on at
/// once. Any other error (`EMFILE`, `ENFILE`, `ENOBUFS`, ...) calls for a
/// pause of [`ACCEPT_ERROR_BACKOFF`].
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use tej_net::accept::is_per_connection_error;
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

/// The cap on a server's open connections, shared by its accept loop and
/// its connections: a server's whole memory is at most the cap times one
/// connection's bound (see [`Session`](tej_core::Session)).
///
/// The accept loop asks for a [`ConnectionSlot`] for each connection it
/// accepts; the connection keeps it until it ends. At the cap the new
/// connection is accepted and closed at once (never read, no handler made),
/// so the kernel's backlog does not fill with clients waiting in vain.
///
/// ```
/// use tej_net::accept::ConnectionCap;
///
/// let cap = ConnectionCap::new(1);
/// let slot = cap.try_acquire().unwrap();
/// let refused = cap.try_acquire().unwrap_err();
/// assert!(refused.first, "the first refusal at the cap is the one to log loudly");
/// assert!(!cap.try_acquire().unwrap_err().first);
/// drop(slot);
/// assert_eq!(cap.open(), 0);
/// assert!(cap.try_acquire().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    inner: Arc<CapState>,
}

#[derive(Debug)]
struct CapState {
    max: usize,
    open: AtomicUsize,
    /// At the cap and already said so: refusals after the first are quiet.
    refusing: AtomicBool,
}

/// A connection's place under the [`ConnectionCap`], given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    inner: Arc<CapState>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
        self.inner.refusing.store(false, Ordering::Release);
    }
}

/// A connection refused at the [`ConnectionCap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The cap.
    pub max: usize,
    /// The first refusal since the server was last below its cap: worth a
    /// warning in the log; the others are not.
    pub first: bool,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} connections are open, the most allowed: a new one is closed at once",
            self.max
        )
    }
}

impl ConnectionCap {
    /// A cap of `max` open connections.
    pub fn new(max: usize) -> ConnectionCap {
        ConnectionCap {
            inner: Arc::new(CapState {
                max,
                open: AtomicUsize::new(0),
                refusing: AtomicBool::new(false),
            }),
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// A slot for a connection just accepted.
    ///
    /// # Errors
    ///
    /// [`Refused`] at the cap: close the connection at once.
    pub fn try_acquire(&self) -> Result<ConnectionSlot, Refused> {
        let state = &self.inner;
        let admitted = state
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < state.max).then_some(open + 1)
            });
        match admitted {
            Ok(_) => Ok(ConnectionSlot {
                inner: Arc::clone(state),
            }),
            Err(_) => Err(Refused {
                max: state.max,
                first: !state.refusing.swap(true, Ordering::AcqRel),
            }),
        }
    }
}

impl ConnectionCap {
    /// [`try_acquire`](Self::try_acquire) for a connection from `peer`,
    /// logging a refusal (a warning the first time at the cap, then debug
    /// lines until a slot frees).
    pub fn admit(&self, peer: &dyn core::fmt::Debug) -> Option<ConnectionSlot> {
        match self.try_acquire() {
            Ok(slot) => Some(slot),
            Err(refused) if refused.first => {
                tracing::warn!(?peer, "{refused}");
                None
            }
            Err(refused) => {
                tracing::debug!(?peer, "{refused}");
                None
            }
        }
    }

    /// The accept policy, written once for every adapter: a connection
    /// `accepted` is [admitted](Self::admit) under the cap or closed, an
    /// accept error [skipped or waited out](after_accept_error), and
    /// `observer` told of what was accepted or refused.
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use std::net::SocketAddr;
    /// use std::sync::Mutex;
    /// use tej_net::accept::{Accept, ConnectionCap, ACCEPT_ERROR_BACKOFF};
    /// use tej_net::Observer;
    ///
    /// #[derive(Default)]
    /// struct Told(Mutex<Vec<&'static str>>);
    ///
    /// impl Observer for Told {
    ///     fn accepted(&self, _: Option<SocketAddr>) {
    ///         self.0.lock().unwrap().push("accepted");
    ///     }
    ///     fn refused(&self, _: Option<SocketAddr>) {
    ///         self.0.lock().unwrap().push("refused");
    ///     }
    /// }
    ///
    /// let (cap, told) = (ConnectionCap::new(1), Told::default());
    /// let peer = Some("192.0.2.1:4000".parse().unwrap());
    /// let Accept::Serve("first", _, slot) = cap.on_accept(Ok(("first", peer)), Some(&told)) else {
    ///     panic!("the first is served");
    /// };
    /// let second = cap.on_accept(Ok(("second", peer)), Some(&told));
    /// assert!(matches!(second, Accept::Next), "refused at the cap");
    /// assert_eq!(*told.0.lock().unwrap(), ["accepted", "refused"]);
    /// drop(slot);
    /// let aborted = Err::<(&str, _), _>(Error::from(ErrorKind::ConnectionAborted));
    /// assert!(matches!(cap.on_accept(aborted, None), Accept::Next));
    /// let emfile = Err::<(&str, _), _>(Error::from_raw_os_error(24));
    /// assert!(matches!(cap.on_accept(emfile, None), Accept::Pause(ACCEPT_ERROR_BACKOFF)));
    /// ```
    pub fn on_accept<S>(
        &self,
        accepted: std::io::Result<(S, Option<SocketAddr>)>,
        observer: Option<&dyn Observer>,
    ) -> Accept<S> {
        match accepted {
            Ok((stream, peer)) => {
                let slot = self.admit(&peer);
                if let Some(observer) = observer {
                    match slot {
                        Some(_) => observer.accepted(peer),
                        None => observer.refused(peer),
                    }
                }
                slot.map_or(Accept::Next, |slot| Accept::Serve(stream, peer, slot))
            }
            Err(error) => after_accept_error(&error).map_or(Accept::Next, Accept::Pause),
        }
    }
}

/// What an accept loop does next, as [`ConnectionCap::on_accept`] says.
#[derive(Debug)]
pub enum Accept<S> {
    /// Serve this connection from this peer, holding its place under the
    /// cap until it ends.
    Serve(S, Option<SocketAddr>, ConnectionSlot),
    /// Accept the next at once: this one was refused at the cap (and is
    /// closed) or failed before it was accepted.
    Next,
    /// Accept nothing for this long (the system's error, such as running
    /// out of file descriptors).
    Pause(Duration),
}

/// What an accept loop does after `error`, logged here: `None` to go on at
/// once (the error concerned one connection), or the pause to take first.
pub fn after_accept_error(error: &std::io::Error) -> Option<Duration> {
    if is_per_connection_error(error) {
        tracing::debug!(%error, "a connection failed before it was accepted");
        None
    } else {
        tracing::warn!(%error, "accept failed; pausing before the next accept");
        Some(ACCEPT_ERROR_BACKOFF)
    }
}

impl Default for ConnectionCap {
    fn default() -> Self {
        ConnectionCap::new(DEFAULT_MAX_CONNECTIONS)
    }
}

/// The text of a caught panic's payload.
pub fn panic_message(payload: &(dyn core::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// A non-blocking TCP listener on the first of `addrs` that binds, with a
/// backlog of [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restart need not
/// wait for old connections).
///
/// # Errors
///
/// The last address's error, or `InvalidInput` if there was none.
pub fn listen_tcp(
    addrs: impl IntoIterator<Item = std::net::SocketAddr>,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};

    let mut last_error = None;
    for addr in addrs {
        let bound = (|| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            socket.set_nonblocking(true)?;
            Ok(socket.into())
        })();
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind to")
    }))
}

/// A non-blocking Unix domain socket listener at `path`, with a backlog of
/// [`LISTEN_BACKLOG`].
///
/// A socket file is not removed when its listener is dropped, so a server
/// that stopped leaves one behind. Binding replaces such a stale socket
/// (one that refuses connections: nobody listens on it); it never replaces
/// a socket a live server accepts on, nor anything that is not a socket
/// (both fail with `AddrInUse`). Telling the two apart connects to the
/// socket once, so a live server there sees a connection open and close.
///
/// # Errors
///
/// The error of binding, or of removing a stale socket.
#[cfg(unix)]
pub fn listen_unix(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::io::ErrorKind;
    use std::os::unix::fs::FileTypeExt;

    let listen = || -> std::io::Result<std::os::unix::net::UnixListener> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(std::os::fd::OwnedFd::from(socket).into())
    };
    match listen() {
        Err(error) if error.kind() == ErrorKind::AddrInUse => {
            let is_socket = std::fs::symlink_metadata(path)
                .is_ok_and(|metadata| metadata.file_type().is_socket());
            // Without waiting: a live server with a full backlog says
            // `WouldBlock`, and is live.
            let refuses = || -> std::io::Result<bool> {
                let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                probe.set_nonblocking(true)?;
                Ok(probe
                    .connect(&SockAddr::unix(path)?)
                    .is_err_and(|refused| refused.kind() == ErrorKind::ConnectionRefused))
            };
            if !(is_socket && refuses()?) {
                return Err(error);
            }
            tracing::debug!(path = %path.display(), "replacing a stale Unix socket");
            std::fs::remove_file(path)?;
            listen()
        }
        bound => bound,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::listen_unix;
    use std::io::ErrorKind;

    #[test]
    fn a_stale_unix_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tej.sock");
        let first = listen_unix(&path).unwrap();
        drop(first);
        assert!(path.exists(), "a dropped listener leaves its file");
        let second = listen_unix(&path).expect("the stale socket replaced");
        // The new listener is the one at the path: a client reaches it.
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        second.set_nonblocking(false).unwrap();
        let (accepted, _) = second.accept().unwrap();
        assert_eq!(
            accepted.peer_addr().unwrap().as_pathname(),
            client.local_addr().unwrap().as_pathname()
        );
    }

    #[test]
    fn a_live_unix_socket_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tej.sock");
        let live = listen_unix(&path).unwrap();
        let error = listen_unix(&path).expect_err("a live server's socket");
        assert_eq!(error.kind(), ErrorKind::AddrInUse);
        // Still the live server's: it accepts.
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        live.set_nonblocking(false).unwrap();
        live.accept().unwrap();
    }

    #[test]
    fn a_live_unix_socket_with_a_full_backlog_is_kept_without_waiting() {
        use socket2::{Domain, SockAddr, Socket, Type};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tej.sock");
        let live = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        live.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        live.listen(0).unwrap();
        // Fill its backlog: connects that nobody accepts.
        let mut waiting = Vec::new();
        loop {
            let client = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            client.set_nonblocking(true).unwrap();
            match client.connect(&SockAddr::unix(&path).unwrap()) {
                Ok(()) => waiting.push(client),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => panic!("{error}"),
            }
            assert!(waiting.len() < 1000, "the backlog never filled");
        }
        let (done, result) = std::sync::mpsc::channel();
        let probed = path.clone();
        std::thread::spawn(move || done.send(listen_unix(&probed).map(drop)));
        let error = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("binding waited on a full backlog")
            .expect_err("a live server's socket");
        assert_eq!(error.kind(), ErrorKind::AddrInUse);
        drop(live);
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, b"mine").unwrap();
        let error = listen_unix(&path).expect_err("not a socket");
        assert_eq!(error.kind(), ErrorKind::AddrInUse);
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    }
}
