//! One blocking facade over every adapter, so tools and tests can pick the
//! runtime, the transport (TCP or a Unix socket) and TLS at run time and
//! treat them alike.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tej_core::{DisconnectReason, Handler, Sender, SessionConfig};
use tej_net::accept::DEFAULT_MAX_CONNECTIONS;
use tej_net::runtime::{PollIo, Resolve, Runtime as NetRuntime, TlsRuntime};
use tej_net::{Acceptor, ClientHandle, Listener, NewHandler, Observer, ShutdownHandle};

use crate::tls::ClientTls;

/// The adapters a server or client can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Runtime {
    /// `tej-tokio`.
    Tokio,
    /// `tej-async-std` on async-std.
    #[value(name = "async-std")]
    AsyncStd,
    /// `tej-async-std` on smol (`tej_async_std::smol`).
    Smol,
    /// `tej-mio`: a raw mio event loop on a thread of its own.
    Mio,
}

impl Runtime {
    /// Every runtime, in the order tools run them.
    pub const ALL: &'static [Runtime] = &[
        Runtime::Tokio,
        Runtime::AsyncStd,
        Runtime::Smol,
        Runtime::Mio,
    ];

    /// The runtime's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::AsyncStd => "async-std",
            Runtime::Smol => "smol",
            Runtime::Mio => "mio",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Runtime {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        <Runtime as clap::ValueEnum>::from_str(name, false).map_err(|_| {
            let names: Vec<_> = Runtime::ALL.iter().map(|runtime| runtime.name()).collect();
            format!(
                "unknown runtime {name:?}; expected one of: {}",
                names.join(", ")
            )
        })
    }
}

/// Where a server listens or a client connects: a TCP address, or a Unix
/// domain socket's path (`unix:PATH` on the command line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP, `IP:PORT`.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Tcp(addr)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// `unix:PATH`, or `HOST:PORT` resolved to its first address.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, as in unix:/run/tej.sock".into());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        text.to_socket_addrs()
            .map_err(|error| format!("cannot resolve {text:?}: {error}"))?
            .next()
            .map(Endpoint::Tcp)
            .ok_or_else(|| format!("{text:?} resolves to no address"))
    }
}

/// A server running in the background on some runtime.
pub struct RunningServer {
    endpoint: Endpoint,
    shutdown: ShutdownHandle,
    /// Waits, once shut down, for the server's end.
    wait: Box<dyn FnOnce() + Send>,
}

impl fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningServer")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl RunningServer {
    /// Where it listens: the bound address or socket path.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TCP address it listens on.
    ///
    /// # Panics
    ///
    /// For a server on a Unix socket: use [`endpoint`](Self::endpoint).
    pub fn addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(addr) => *addr,
            Endpoint::Unix(path) => panic!("the server listens on {}", path.display()),
        }
    }

    /// Shuts it down gracefully and waits until every connection has ended.
    pub fn stop(self) {
        self.shutdown.shutdown();
        (self.wait)();
    }
}

/// A client connection running in the background on some runtime. It
/// dereferences to its adapter's [`ClientHandle`] (sender, addresses,
/// connection info), the same on every adapter; what needs the adapter
/// itself (waiting for the end, detaching) is here.
pub struct RunningClient {
    /// `None` once joined or detached.
    client: Option<Box<dyn Connected>>,
}

impl fmt::Debug for RunningClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RunningClient").field(&**self).finish()
    }
}

impl Deref for RunningClient {
    type Target = ClientHandle;

    fn deref(&self) -> &ClientHandle {
        self.client
            .as_ref()
            .expect("a client until joined")
            .handle()
    }
}

/// An adapter's client, with what it needs to run: its executor.
trait Connected: Send {
    /// The `ClientHandle` the adapter's `Client` dereferences to.
    fn handle(&self) -> &ClientHandle;
    /// The adapter's `Client::join`, run to completion.
    fn join(self: Box<Self>) -> io::Result<DisconnectReason>;
    /// The adapter's `Client::detach` (`detach`) or its drop (`!detach`);
    /// the connection runs on, on an executor kept alive until it ends.
    fn release(self: Box<Self>, detach: bool);
}

impl RunningClient {
    /// Closes once everything queued is sent, waits for the end and tells
    /// why it ended. (Dropping a `RunningClient` drops the adapter's
    /// `Client`, which closes it the same way, without waiting.)
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn close(self) -> io::Result<DisconnectReason> {
        ClientHandle::close(&self);
        self.join()
    }

    /// Ends the connection at once (the adapter's `Client::shutdown`),
    /// waits for the end and tells why it ended.
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn shutdown(self) -> io::Result<DisconnectReason> {
        ClientHandle::shutdown(&self);
        self.join()
    }

    /// Waits for the connection to end, however it ends, and tells why.
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn join(mut self) -> io::Result<DisconnectReason> {
        self.client.take().expect("joined once").join()
    }

    /// Lets the connection run on (the adapter's `Client::detach`) until
    /// the peer closes it or the returned sender's `close`.
    pub fn detach(mut self) -> Sender {
        let client = self.client.take().expect("detached once");
        let sender = client.handle().sender();
        client.release(true);
        sender
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            client.release(false);
        }
    }
}

/// What a server started by [`start_server_with`] does beyond each
/// connection's [`SessionConfig`].
#[derive(Clone)]
pub struct ServerOptions {
    /// The most connections open at once. One more is accepted and closed
    /// at once (nothing read, no handler made) until a connection ends.
    pub max_connections: usize,
    /// Serve TLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Expect a PROXY protocol header (v1 or v2) first on every connection,
    /// before TLS: its client is each connection's peer; a connection
    /// without one is closed before any handler (see
    /// `tej_tokio::Server::with_proxy_protocol`).
    pub proxy_protocol: bool,
    /// After a shutdown, how long connections may take to finish the frame
    /// under way (and, on the async runtimes, the work awaited on it)
    /// before what remains is cut; `None` waits for ever. mio's loop
    /// drains without a deadline.
    pub drain_timeout: Option<std::time::Duration>,
    /// Tell this observer of every connection (metrics).
    pub observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .field("proxy_protocol", &self.proxy_protocol)
            .field("observer", &self.observer.is_some())
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            proxy_protocol: false,
            drain_timeout: Some(tej_net::DEFAULT_DRAIN_TIMEOUT),
            observer: None,
        }
    }
}

/// Starts a server on `runtime` at `bind`, one handler per connection from
/// `factory`, with the default [`ServerOptions`].
///
/// # Errors
///
/// The error of binding.
pub fn start_server<M: 'static>(
    runtime: Runtime,
    bind: impl Into<Endpoint>,
    config: SessionConfig,
    factory: impl NewHandler<M, Handler: Send + 'static> + Send + 'static,
) -> io::Result<RunningServer> {
    start_server_with(runtime, bind, config, ServerOptions::default(), factory)
}

/// [`start_server`] with `options`. A stale Unix socket file at the path (nobody
/// listens on it) is replaced.
///
/// # Errors
///
/// The error of binding.
pub fn start_server_with<M: 'static>(
    runtime: Runtime,
    bind: impl Into<Endpoint>,
    config: SessionConfig,
    options: ServerOptions,
    factory: impl NewHandler<M, Handler: Send + 'static> + Send + 'static,
) -> io::Result<RunningServer> {
    let bind = bind.into();
    match runtime {
        Runtime::Tokio => serve_async::<tej_tokio::Tokio, _>(bind, config, options, factory),
        Runtime::AsyncStd => {
            serve_async::<tej_async_std::AsyncStd, _>(bind, config, options, factory)
        }
        Runtime::Smol => serve_async::<tej_async_std::Smol, _>(bind, config, options, factory),
        Runtime::Mio => serve_mio(bind, config, options, factory),
    }
}

/// Connects to `addr` on `runtime` and runs `handler`.
///
/// # Errors
///
/// The error of connecting.
pub fn connect(
    runtime: Runtime,
    addr: impl Into<Endpoint>,
    handler: impl Handler + Send + 'static,
    config: SessionConfig,
) -> io::Result<RunningClient> {
    connect_with(runtime, &addr.into(), None, handler, config)
}

/// Connects to `endpoint` on `runtime`, through TLS with `tls`, and runs
/// `handler`.
///
/// # Errors
///
/// The error of connecting or of the TLS handshake (a one-line reason,
/// such as an untrusted certificate).
pub fn connect_with(
    runtime: Runtime,
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    handler: impl Handler + Send + 'static,
    config: SessionConfig,
) -> io::Result<RunningClient> {
    match runtime {
        Runtime::Tokio => connect_async::<tej_tokio::Tokio>(endpoint, tls, handler, config),
        Runtime::AsyncStd => {
            connect_async::<tej_async_std::AsyncStd>(endpoint, tls, handler, config)
        }
        Runtime::Smol => connect_async::<tej_async_std::Smol>(endpoint, tls, handler, config),
        Runtime::Mio => connect_mio(endpoint, tls, handler, config),
    }
}

/// An async runtime of `tej-net`'s, whose `Server` and `Client` the facade
/// runs alike, with what it needs beyond them: an executor to run their
/// futures on, and every stream a client connects over (plain, TLS; TCP,
/// Unix socket). What a server serves over is in [`serve_async`]'s bounds.
trait AsyncRuntime:
    TlsRuntime
    + Resolve<SocketAddr>
    + PollIo<Self::TcpStream>
    + PollIo<Self::UnixStream>
    + PollIo<Self::TlsStream<Self::TcpStream>>
    + PollIo<Self::TlsStream<Self::UnixStream>>
{
    /// What runs the runtime's futures: nothing for a global executor
    /// (async-std's, smol's), a runtime object for Tokio.
    type Executor: Send + 'static;
    /// The executor, started if it has to be.
    fn executor() -> io::Result<Self::Executor>;
    /// Runs `future` to completion.
    fn block_on<T>(executor: &Self::Executor, future: impl Future<Output = T>) -> T;
    /// Keeps the executor running tasks until the connection of `sender`
    /// has ended (a global executor always does).
    fn keep_alive(executor: Self::Executor, sender: Sender) {
        let _ = (executor, sender);
    }
}

impl AsyncRuntime for tej_tokio::Tokio {
    type Executor = tokio::runtime::Runtime;
    fn executor() -> io::Result<Self::Executor> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    fn block_on<T>(executor: &Self::Executor, future: impl Future<Output = T>) -> T {
        executor.block_on(future)
    }
    fn keep_alive(executor: Self::Executor, sender: Sender) {
        // Dropping a tokio runtime drops its tasks: this one goes once the
        // connection is over and its stream has had a moment to shut down.
        std::thread::spawn(move || {
            executor.block_on(async {
                while !sender.is_closed() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            })
        });
    }
}

impl AsyncRuntime for tej_async_std::AsyncStd {
    type Executor = ();
    fn executor() -> io::Result<()> {
        Ok(())
    }
    fn block_on<T>((): &(), future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
}

impl AsyncRuntime for tej_async_std::Smol {
    type Executor = ();
    fn executor() -> io::Result<()> {
        Ok(())
    }
    fn block_on<T>((): &(), future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

/// Runs `future` on `R` in the background, spawned from within its
/// executor (Tokio spawns only there); the closure waits for its end and
/// keeps the executor until then.
fn background<R: AsyncRuntime>(
    executor: R::Executor,
    future: impl Future<Output = ()> + Send + 'static,
) -> Box<dyn FnOnce() + Send> {
    let (ended, end) = std::sync::mpsc::sync_channel(1);
    R::block_on(&executor, async {
        R::spawn(async move {
            future.await;
            let _ = ended.send(());
        });
    });
    Box::new(move || {
        // An error: the task was dropped (it panicked), so it has ended too.
        if end.recv().is_err() {
            tracing::warn!("the server's task ended without returning");
        }
        drop(executor);
    })
}

/// The streams a server of `R` accepts: over TCP, over a Unix socket.
type TcpIo<R> = <<R as NetRuntime>::TcpListener as Listener<R>>::Io;
type UnixIo<R> = <<R as NetRuntime>::UnixListener as Listener<R>>::Io;
/// The stream a server of `R` serves TLS over `S` with.
type TlsIo<R, S> = <<R as TlsRuntime>::TlsAcceptor as Acceptor<R, S>>::Stream;

/// tej-net's `Server` on `R`, bound at `bind` and run in the background.
fn serve_async<R, M: 'static>(
    bind: Endpoint,
    config: SessionConfig,
    options: ServerOptions,
    factory: impl NewHandler<M, Handler: Send + 'static> + Send + 'static,
) -> io::Result<RunningServer>
where
    R: AsyncRuntime
        + PollIo<TcpIo<R>>
        + PollIo<UnixIo<R>>
        + PollIo<TlsIo<R, TcpIo<R>>>
        + PollIo<TlsIo<R, UnixIo<R>>>,
    R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>>,
{
    /// The rest, on either listener.
    fn start<R, L, M: 'static>(
        executor: R::Executor,
        server: tej_net::Server<R, L>,
        endpoint: Endpoint,
        config: SessionConfig,
        options: ServerOptions,
        factory: impl NewHandler<M, Handler: Send + 'static> + Send + 'static,
    ) -> RunningServer
    where
        R: AsyncRuntime + PollIo<L::Io> + PollIo<TlsIo<R, L::Io>>,
        R::TlsAcceptor: Acceptor<R, L::Io>,
        L: Listener<R>,
    {
        let mut server = server
            .with_config(config)
            .with_max_connections(options.max_connections)
            .with_drain_timeout(options.drain_timeout);
        if options.proxy_protocol {
            server = server.with_proxy_protocol();
        }
        if let Some(observer) = options.observer {
            server = server.with_observer(observer);
        }
        let shutdown = server.shutdown_handle();
        let wait = match options.tls {
            Some(tls) => background::<R>(executor, server.with_tls(tls).serve(factory)),
            None => background::<R>(executor, server.serve(factory)),
        };
        RunningServer {
            endpoint,
            shutdown,
            wait,
        }
    }
    let executor = R::executor()?;
    match bind {
        Endpoint::Tcp(addr) => {
            let server = R::block_on(&executor, tej_net::Server::<R>::bind(addr))?;
            let endpoint = Endpoint::Tcp(server.local_addr()?);
            Ok(start(executor, server, endpoint, config, options, factory))
        }
        Endpoint::Unix(path) => {
            let binding = tej_net::Server::<R, R::UnixListener>::bind_unix(&path);
            let server = R::block_on(&executor, binding)?;
            let endpoint = Endpoint::Unix(path);
            Ok(start(executor, server, endpoint, config, options, factory))
        }
    }
}

/// tej-mio's `Server` (its own type) at `bind`, run on a thread of its own.
fn serve_mio<M: 'static>(
    bind: Endpoint,
    config: SessionConfig,
    options: ServerOptions,
    factory: impl NewHandler<M, Handler: Send + 'static> + Send + 'static,
) -> io::Result<RunningServer> {
    let (server, endpoint) = match bind {
        Endpoint::Tcp(addr) => {
            let server = tej_mio::Server::bind(addr)?;
            let endpoint = Endpoint::Tcp(server.local_addr()?);
            (server, endpoint)
        }
        Endpoint::Unix(path) => (tej_mio::Server::bind_unix(&path)?, Endpoint::Unix(path)),
    };
    let mut server = server
        .with_config(config)
        .with_max_connections(options.max_connections);
    if options.proxy_protocol {
        server = server.with_proxy_protocol();
    }
    if let Some(tls) = options.tls {
        server = server.with_tls(tls);
    }
    if let Some(observer) = options.observer {
        server = server.with_observer(observer);
    }
    let shutdown = server.shutdown_handle();
    let serving = std::thread::Builder::new()
        .name("tej-mio-server".into())
        .spawn(move || server.run(factory))?;
    Ok(RunningServer {
        endpoint,
        shutdown,
        wait: Box::new(move || match serving.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the mio server ended with an error"),
            Err(_) => tracing::warn!("the mio server's thread panicked"),
        }),
    })
}

/// tej-net's `Client` on `R`, connected to `endpoint` (through TLS with
/// `tls`) and run in the background.
fn connect_async<R: AsyncRuntime>(
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    handler: impl Handler + Send + 'static,
    config: SessionConfig,
) -> io::Result<RunningClient> {
    type Client<R> = tej_net::Client<R>;
    let executor = R::executor()?;
    let client = R::block_on(&executor, async {
        match (endpoint, tls.map(ClientTls::parts)) {
            (Endpoint::Tcp(addr), None) => Client::<R>::connect_with(*addr, handler, config).await,
            (Endpoint::Tcp(addr), Some((name, tls))) => {
                Client::<R>::connect_tls(*addr, name, tls, handler, config).await
            }
            (Endpoint::Unix(path), None) => Client::<R>::connect_unix(path, handler, config).await,
            (Endpoint::Unix(path), Some((name, tls))) => {
                Client::<R>::connect_unix_tls(path, name, tls, handler, config).await
            }
        }
    })?;
    let client = AsyncClient::<R> { executor, client };
    Ok(RunningClient {
        client: Some(Box::new(client)),
    })
}

/// tej-mio's `Client` (its own type), connected to `endpoint` (through TLS
/// with `tls`); its loop runs on a thread of its own.
fn connect_mio(
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    handler: impl Handler + Send + 'static,
    config: SessionConfig,
) -> io::Result<RunningClient> {
    type Client = tej_mio::Client;
    let client = match (endpoint, tls.map(ClientTls::parts)) {
        (Endpoint::Tcp(addr), None) => Client::connect_with(*addr, handler, config)?,
        (Endpoint::Tcp(addr), Some((name, tls))) => {
            Client::connect_tls(*addr, name, tls, handler, config)?
        }
        (Endpoint::Unix(path), None) => Client::connect_unix(path, handler, config)?,
        (Endpoint::Unix(path), Some((name, tls))) => {
            Client::connect_unix_tls(path, name, tls, handler, config)?
        }
    };
    Ok(RunningClient {
        client: Some(Box::new(client)),
    })
}

/// An async runtime's client and its executor.
struct AsyncClient<R: AsyncRuntime> {
    executor: R::Executor,
    client: tej_net::Client<R>,
}

impl<R: AsyncRuntime> Connected for AsyncClient<R> {
    fn handle(&self) -> &ClientHandle {
        &self.client
    }
    fn join(self: Box<Self>) -> io::Result<DisconnectReason> {
        R::block_on(&self.executor, self.client.join())
    }
    fn release(self: Box<Self>, detach: bool) {
        let AsyncClient { executor, client } = *self;
        let sender = client.sender();
        if detach {
            client.detach();
        } else {
            drop(client);
        }
        R::keep_alive(executor, sender);
    }
}

impl Connected for tej_mio::Client {
    fn handle(&self) -> &ClientHandle {
        self
    }
    fn join(self: Box<Self>) -> io::Result<DisconnectReason> {
        tej_mio::Client::join(*self)
    }
    fn release(self: Box<Self>, detach: bool) {
        if detach {
            let _ = tej_mio::Client::detach(*self);
        }
    }
}
