//! The client: one connection on a mio loop in its own thread.

use std::io;
use std::net::ToSocketAddrs;
use std::ops::Deref;
#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
#[cfg(feature = "tls")]
use std::time::{Duration, Instant};

use mio::{Poll, Token};
use tej_core::{DisconnectReason, Handler, Sender, Session, SessionConfig};
use tej_net::{ClientHandle, ShutdownHandle};

use crate::driver::{describe, Driver, Stream};
use crate::event_loop;

/// A TEJ connection made by this side, running its [`Handler`] on an event
/// loop in a thread of its own, over TCP, a Unix socket, TLS or any
/// [`Stream`].
///
/// It dereferences to [`ClientHandle`], which every adapter's `Client`
/// shares: its [`Sender`], addresses, `close` and `shutdown`.
///
/// For many connections on one thread, or a connection on a loop of your
/// own, use a [`Driver`].
///
/// **Dropping a `Client` closes it gracefully**: as with
/// [`close`](ClientHandle::close), the connection is asked to close once what is
/// queued has been sent, without blocking the dropping thread; its thread
/// still runs to completion (the frames already queued are written, the
/// handler's `disconnected` runs, the socket is shut down). The
/// [`Sender`]s taken from it do not keep the connection open. To keep the
/// connection running without its `Client`, [`detach`](Self::detach) it;
/// to wait for its end and learn why it ended, [`join`](Self::join) it.
#[derive(Debug)]
pub struct Client {
    handle: ClientHandle,
    /// Taken by [`join`](Client::join).
    thread: Option<JoinHandle<io::Result<DisconnectReason>>>,
}

/// Its sender, addresses, `close` and `shutdown`: the same on every adapter.
impl Deref for Client {
    type Target = ClientHandle;

    fn deref(&self) -> &ClientHandle {
        &self.handle
    }
}

impl Client {
    /// Connects to `addr` over TCP and runs `handler` with the default options.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of starting the loop.
    pub fn connect<H>(addr: impl ToSocketAddrs, handler: H) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::connect_with(addr, handler, SessionConfig::default())
    }

    /// Connects to `addr` over TCP (blocking until connected) and runs
    /// `handler` with `config` on a new thread.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of starting the loop.
    pub fn connect_with<H>(
        addr: impl ToSocketAddrs,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::from_stream(connect_tcp(addr)?, handler, config)
    }

    /// Connects to the Unix socket at `path` (blocking until connected)
    /// and runs `handler` with `config` on a new thread.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of starting the loop.
    #[cfg(unix)]
    pub fn connect_unix<H>(
        path: impl AsRef<Path>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::from_stream(connect_unix(path.as_ref())?, handler, config)
    }

    /// Connects to `addr` over TCP, runs the TLS handshake with `tls`
    /// (the server's certificate must be valid for `server_name`), and
    /// then runs `handler` with `config` on a new thread. Blocks until the
    /// handshake is done, for at most `config`'s
    /// [`handshake_timeout`](SessionConfig::handshake_timeout); the
    /// handler's first callback comes after it.
    ///
    /// # Errors
    ///
    /// The error of connecting or of starting the loop, or the handshake's:
    /// an untrusted certificate is `InvalidData`, said in one line
    /// (`TLS handshake with localhost failed: the server's certificate is
    /// not trusted: ...`, as on every adapter); a handshake that ran out of
    /// time is `TimedOut`.
    #[cfg(feature = "tls")]
    pub fn connect_tls<H>(
        addr: impl ToSocketAddrs,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::start_tls(connect_tcp(addr)?, server_name, tls, handler, config)
    }

    /// Connects to the Unix socket at `path`, runs the TLS handshake with
    /// `tls` (the server's certificate must be valid for `server_name`:
    /// a path names no host), and then runs `handler` with `config` on a
    /// new thread: [`connect_tls`](Self::connect_tls) over a Unix socket,
    /// blocking as it does.
    ///
    /// # Errors
    ///
    /// As [`connect_tls`](Self::connect_tls).
    #[cfg(all(unix, feature = "tls"))]
    pub fn connect_unix_tls<H>(
        path: impl AsRef<Path>,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::start_tls(
            connect_unix(path.as_ref())?,
            server_name,
            tls,
            handler,
            config,
        )
    }

    /// Runs the TLS handshake over `stream` (blocking, within the
    /// handshake timeout), then starts the client's loop.
    #[cfg(feature = "tls")]
    fn start_tls<S, H>(
        stream: S,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        S: Stream + 'static,
        H: Handler + Send + 'static,
    {
        let name = server_name.to_str().into_owned();
        let mut stream = crate::tls::TlsStream::client(stream, server_name, tls)?;
        handshake_blocking(&mut stream, config.handshake_timeout)
            .map_err(|error| tej_net::tls::handshake_error(&name, error))?;
        Client::from_stream(stream, handler, config)
    }

    /// Runs `handler` with `config` over an already-connected `stream`
    /// of any kind (non-blocking), on a new thread. A stream that still
    /// needs its handshake (a `tls::TlsStream` just
    /// made) runs it in the loop first: the handler's first callback comes
    /// after it, and a failed handshake is [`join`](Self::join)'s error.
    ///
    /// # Errors
    ///
    /// The error of starting the loop.
    pub fn from_stream<S, H>(stream: S, handler: H, config: SessionConfig) -> io::Result<Client>
    where
        S: Stream + 'static,
        H: Handler + Send + 'static,
    {
        let (poll, waker) = event_loop::new_poll()?;
        let shutdown = ShutdownHandle::new();
        let mut info = describe(&stream, stream.peer_addr());
        info.local = stream.local_addr();
        let session = Session::new(handler, config).with_info(info.clone());
        let sender = session.sender();
        let thread = std::thread::Builder::new()
            .name("tej-mio-client".into())
            .spawn({
                let shutdown = shutdown.clone();
                move || run_client(poll, waker, stream, session, &shutdown)
            })?;
        Ok(Client {
            handle: ClientHandle::new(sender, info, shutdown),
            thread: Some(thread),
        })
    }

    /// Lets the connection run on without this `Client`: dropping it then
    /// does not close the connection, which ends when the peer closes it,
    /// on the returned [`Sender`]'s [`close`](Sender::close), or on a
    /// [`ShutdownHandle`] taken before
    /// ([`shutdown_handle`](ClientHandle::shutdown_handle)). Nothing waits for
    /// its thread any more.
    pub fn detach(mut self) -> Sender {
        self.handle.detach()
    }

    /// Waits until the connection has ended and its handler's
    /// `disconnected` has run, and tells why it ended: the
    /// [`DisconnectReason`] the handler was given
    /// ([`is_graceful`](DisconnectReason::is_graceful) when either side
    /// closed it between frames).
    ///
    /// This does not close the connection: call [`close`](ClientHandle::close)
    /// first to end it from this side.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked, if the stream's handshake failed
    /// (then no callback ran), or if the loop failed (polling or
    /// registering the socket).
    pub fn join(mut self) -> io::Result<DisconnectReason> {
        let thread = self.thread.take().expect("joined only once, by value");
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the client's event loop panicked")),
        }
    }
}

/// A TCP connection to `addr`, made blocking, then non-blocking for mio.
fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<mio::net::TcpStream> {
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(stream))
}

/// A Unix socket connection to `path`, made blocking, then non-blocking
/// for mio.
#[cfg(unix)]
fn connect_unix(path: &Path) -> io::Result<mio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_nonblocking(true)?;
    Ok(mio::net::UnixStream::from_std(stream))
}

/// Runs `stream`'s handshake on a poll of its own until done, failed or
/// `timeout`.
#[cfg(feature = "tls")]
fn handshake_blocking<S: Stream>(stream: &mut S, timeout: Duration) -> io::Result<()> {
    use mio::{Events, Interest};

    const TOKEN: Token = Token(1);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(stream, TOKEN, Interest::READABLE | Interest::WRITABLE)?;
    let start = Instant::now();
    let mut events = Events::with_capacity(4);
    let result = loop {
        match crate::driver::try_handshake(stream, start.elapsed(), timeout) {
            Ok(false) => {}
            done => break done.map(drop),
        }
        let left = timeout.saturating_sub(start.elapsed());
        match poll.poll(&mut events, Some(left)) {
            Err(error) if error.kind() != io::ErrorKind::Interrupted => break Err(error),
            _ => {}
        }
    };
    poll.registry().deregister(stream)?;
    result
}

/// The client's loop: runs until its one connection has ended.
fn run_client<S: Stream + 'static, H: Handler>(
    mut poll: Poll,
    waker: Arc<mio::Waker>,
    stream: S,
    session: Session<H>,
    shutdown: &ShutdownHandle,
) -> io::Result<DisconnectReason> {
    let mut driver = Driver::<H>::new(Token(1)..Token(3), Arc::clone(&waker));
    driver.keep_ends();
    driver.add_session(poll.registry(), stream, session)?;
    event_loop::run(&mut poll, &mut driver, shutdown)?;
    if let Some((_, error)) = driver.take_handshake_errors().pop() {
        return Err(io::Error::new(
            error.kind(),
            format!("the handshake failed: {error}"),
        ));
    }
    match driver.take_ends().pop() {
        Some((_, end)) => end,
        None => Err(io::Error::other("the connection ended without a reason")),
    }
}
