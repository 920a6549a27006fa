//! One blocking facade over every adapter, so tools and tests can pick the
//! runtime, the transport (TCP or a Unix socket) and TLS at run time and
//! treat them alike.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tej_core::{DisconnectReason, Handler, Sender, SessionConfig};
use tej_net::accept::DEFAULT_MAX_CONNECTIONS;
use tej_net::runtime::{PollIo, Resolve, Runtime as NetRuntime, TlsRuntime};
use tej_net::{Acceptor, Listener, NewHandler, Observer};

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
    stop: Box<dyn FnOnce() + Send>,
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
        (self.stop)();
    }
}

/// A client connection running in the background on some runtime.
pub struct RunningClient {
    sender: Sender,
    peer_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
    /// `None` once joined or detached.
    client: Option<Box<dyn Connected>>,
}

impl fmt::Debug for RunningClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningClient")
            .field("sender", &self.sender)
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

/// An adapter's client, with what it needs to run: its executor.
trait Connected: Send {
    /// The adapter's `Client::shutdown`.
    fn shutdown(&self);
    /// The adapter's `Client::join`, run to completion.
    fn join(self: Box<Self>) -> io::Result<DisconnectReason>;
    /// The adapter's `Client::detach` (`detach`) or its drop (`!detach`);
    /// the connection runs on, on an executor kept alive until it ends.
    fn release(self: Box<Self>, detach: bool);
}

impl RunningClient {
    /// A sender for the connection.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The server's address (`None` over a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// This side's address (`None` over a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Closes once everything queued is sent, waits for the end and tells
    /// why it ended. (Dropping a `RunningClient` drops the adapter's
    /// `Client`, which closes it the same way, without waiting.)
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn close(self) -> io::Result<DisconnectReason> {
        self.sender.close();
        self.join()
    }

    /// Ends the connection at once (the adapter's `Client::shutdown`),
    /// waits for the end and tells why it ended.
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn shutdown(self) -> io::Result<DisconnectReason> {
        if let Some(client) = &self.client {
            client.shutdown();
        }
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
        if let Some(client) = self.client.take() {
            client.release(true);
        }
        self.sender.clone()
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
pub fn start_server<F, M>(
    runtime: Runtime,
    bind: impl Into<Endpoint>,
    config: SessionConfig,
    factory: F,
) -> io::Result<RunningServer>
where
    F: NewHandler<M> + Send + 'static,
    F::Handler: Send + 'static,
    M: 'static,
{
    start_server_with(runtime, bind, config, ServerOptions::default(), factory)
}

/// [`start_server`] with `options`. A stale Unix socket file at the path (nobody
/// listens on it) is replaced.
///
/// # Errors
///
/// The error of binding.
pub fn start_server_with<F, M>(
    runtime: Runtime,
    bind: impl Into<Endpoint>,
    config: SessionConfig,
    options: ServerOptions,
    factory: F,
) -> io::Result<RunningServer>
where
    F: NewHandler<M> + Send + 'static,
    F::Handler: Send + 'static,
    M: 'static,
{
    let bind = bind.into();
    match runtime {
        Runtime::Tokio => serve_async::<tej_tokio::Tokio, _, _>(bind, config, options, factory),
        Runtime::AsyncStd => {
            serve_async::<tej_async_std::AsyncStd, _, _>(bind, config, options, factory)
        }
        Runtime::Smol => serve_async::<tej_async_std::Smol, _, _>(bind, config, options, factory),
        Runtime::Mio => {
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
                stop: Box::new(move || {
                    shutdown.shutdown();
                    match serving.join() {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "the mio server ended with an error")
                        }
                        Err(_) => tracing::warn!("the mio server's thread panicked"),
                    }
                }),
            })
        }
    }
}

/// How the facade runs an async runtime's futures: to completion, or in
/// the background until a closure waits for them.
trait Executor: Sized + Send + 'static {
    /// The executor, started if it has to be.
    fn start() -> io::Result<Self>;
    /// Runs `future` to completion.
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T;
    /// Runs `future` in the background; the closure waits for its end.
    fn background(
        self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Box<dyn FnOnce() + Send>;
    /// Keeps the executor running tasks until the connection of `sender`
    /// has ended (a global executor always does).
    fn keep_alive(self, sender: Sender) {
        let _ = sender;
    }
}

impl Executor for tokio::runtime::Runtime {
    fn start() -> io::Result<Self> {
        tokio_runtime()
    }
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        tokio::runtime::Runtime::block_on(self, future)
    }
    fn background(
        self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Box<dyn FnOnce() + Send> {
        let task = self.spawn(future);
        Box::new(move || {
            let _ = self.block_on(task);
        })
    }
    fn keep_alive(self, sender: Sender) {
        // Dropping a tokio runtime drops its tasks: this one goes once the
        // connection is over and its stream has had a moment to shut down.
        std::thread::spawn(move || {
            self.block_on(async {
                while !sender.is_closed() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            })
        });
    }
}

/// async-std's global executor.
struct AsyncStdExecutor;

impl Executor for AsyncStdExecutor {
    fn start() -> io::Result<Self> {
        Ok(AsyncStdExecutor)
    }
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
    fn background(
        self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Box<dyn FnOnce() + Send> {
        let task = async_std::task::spawn(future);
        Box::new(move || async_std::task::block_on(task))
    }
}

/// smol's global executor.
struct SmolExecutor;

impl Executor for SmolExecutor {
    fn start() -> io::Result<Self> {
        Ok(SmolExecutor)
    }
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
    fn background(
        self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Box<dyn FnOnce() + Send> {
        let task = smol::spawn(future);
        Box::new(move || smol::block_on(task))
    }
}

/// An async runtime of `tej-net`'s, with what the facade needs of it:
/// every stream it serves and connects over, plain and TLS.
trait AsyncRuntime:
    TlsRuntime
    + Resolve<SocketAddr>
    + PollIo<<Self as NetRuntime>::TcpStream>
    + PollIo<<Self as NetRuntime>::UnixStream>
    + PollIo<<Self as TlsRuntime>::TlsStream<<Self as NetRuntime>::TcpStream>>
    + PollIo<<Self as TlsRuntime>::TlsStream<<Self as NetRuntime>::UnixStream>>
    + PollIo<TcpIo<Self>>
    + PollIo<UnixIo<Self>>
    + PollIo<<Self::TlsAcceptor as Acceptor<Self, TcpIo<Self>>>::Stream>
    + PollIo<<Self::TlsAcceptor as Acceptor<Self, UnixIo<Self>>>::Stream>
where
    Self::TlsAcceptor: Acceptor<Self, TcpIo<Self>> + Acceptor<Self, UnixIo<Self>>,
{
    /// The runtime's executor.
    type Executor: Executor;
}

type TcpIo<R> = <<R as NetRuntime>::TcpListener as Listener<R>>::Io;
type UnixIo<R> = <<R as NetRuntime>::UnixListener as Listener<R>>::Io;

impl AsyncRuntime for tej_tokio::Tokio {
    type Executor = tokio::runtime::Runtime;
}

impl AsyncRuntime for tej_async_std::AsyncStd {
    type Executor = AsyncStdExecutor;
}

impl AsyncRuntime for tej_async_std::Smol {
    type Executor = SmolExecutor;
}

fn serve_async<R, F, M>(
    bind: Endpoint,
    config: SessionConfig,
    options: ServerOptions,
    factory: F,
) -> io::Result<RunningServer>
where
    R: AsyncRuntime,
    R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>>,
    F: NewHandler<M> + Send + 'static,
    F::Handler: Send + 'static,
    M: 'static,
{
    fn start<R, L, F, M>(
        executor: R::Executor,
        server: tej_net::Server<R, L>,
        endpoint: Endpoint,
        config: SessionConfig,
        options: ServerOptions,
        factory: F,
    ) -> RunningServer
    where
        R: AsyncRuntime + PollIo<L::Io> + PollIo<<R::TlsAcceptor as Acceptor<R, L::Io>>::Stream>,
        R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>> + Acceptor<R, L::Io>,
        L: Listener<R>,
        F: NewHandler<M> + Send + 'static,
        F::Handler: Send + 'static,
        M: 'static,
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
            Some(tls) => executor.background(server.with_tls(tls).serve(factory)),
            None => executor.background(server.serve(factory)),
        };
        RunningServer {
            endpoint,
            stop: Box::new(move || {
                shutdown.shutdown();
                wait();
            }),
        }
    }
    let executor = R::Executor::start()?;
    match bind {
        Endpoint::Tcp(addr) => {
            let server = executor.block_on(tej_net::Server::<R>::bind(addr))?;
            let endpoint = Endpoint::Tcp(server.local_addr()?);
            Ok(start(executor, server, endpoint, config, options, factory))
        }
        Endpoint::Unix(path) => {
            let server =
                executor.block_on(tej_net::Server::<R, R::UnixListener>::bind_unix(&path))?;
            Ok(start(
                executor,
                server,
                Endpoint::Unix(path),
                config,
                options,
                factory,
            ))
        }
    }
}

/// Connects to `endpoint` on `R`, through TLS with `tls`, and runs `handler`.
fn connect_async<R, H>(
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    handler: H,
    config: SessionConfig,
) -> io::Result<RunningClient>
where
    R: AsyncRuntime,
    R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>>,
    H: Handler + Send + 'static,
{
    type Client<R> = tej_net::Client<R>;
    let executor = R::Executor::start()?;
    let client = executor.block_on(async {
        match (endpoint, tls) {
            (Endpoint::Tcp(addr), None) => Client::<R>::connect_with(*addr, handler, config).await,
            (Endpoint::Tcp(addr), Some(tls)) => {
                let (name, tls) = (tls.server_name.clone(), tls.config.clone());
                Client::<R>::connect_tls(*addr, name, tls, handler, config).await
            }
            (Endpoint::Unix(path), None) => Client::<R>::connect_unix(path, handler, config).await,
            (Endpoint::Unix(path), Some(tls)) => {
                let (name, tls) = (tls.server_name.clone(), tls.config.clone());
                Client::<R>::connect_unix_tls(path, name, tls, handler, config).await
            }
        }
    })?;
    Ok(RunningClient {
        sender: client.sender(),
        peer_addr: client.peer_addr(),
        local_addr: client.local_addr(),
        client: Some(Box::new(AsyncClient { executor, client })),
    })
}

/// An async runtime's client and its executor.
struct AsyncClient<R: AsyncRuntime>
where
    R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>>,
{
    executor: R::Executor,
    client: tej_net::Client<R>,
}

impl<R: AsyncRuntime> Connected for AsyncClient<R>
where
    R::TlsAcceptor: Acceptor<R, TcpIo<R>> + Acceptor<R, UnixIo<R>>,
{
    fn shutdown(&self) {
        self.client.shutdown();
    }
    fn join(self: Box<Self>) -> io::Result<DisconnectReason> {
        let AsyncClient { executor, client } = *self;
        executor.block_on(client.join())
    }
    fn release(self: Box<Self>, detach: bool) {
        let AsyncClient { executor, client } = *self;
        let sender = client.sender();
        if detach {
            client.detach();
        } else {
            drop(client);
        }
        executor.keep_alive(sender);
    }
}

impl Connected for tej_mio::Client {
    fn shutdown(&self) {
        tej_net::ClientHandle::shutdown(self);
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

/// Connects to `addr` on `runtime` and runs `handler`.
///
/// # Errors
///
/// The error of connecting.
pub fn connect<H>(
    runtime: Runtime,
    addr: impl Into<Endpoint>,
    handler: H,
    config: SessionConfig,
) -> io::Result<RunningClient>
where
    H: Handler + Send + 'static,
{
    connect_with(runtime, &addr.into(), None, handler, config)
}

/// Connects to `endpoint` on `runtime`, through TLS with `tls`, and runs
/// `handler`.
///
/// # Errors
///
/// The error of connecting or of the TLS handshake (a one-line reason,
/// such as an untrusted certificate).
pub fn connect_with<H>(
    runtime: Runtime,
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    handler: H,
    config: SessionConfig,
) -> io::Result<RunningClient>
where
    H: Handler + Send + 'static,
{
    match runtime {
        Runtime::Tokio => connect_async::<tej_tokio::Tokio, _>(endpoint, tls, handler, config),
        Runtime::AsyncStd => {
            connect_async::<tej_async_std::AsyncStd, _>(endpoint, tls, handler, config)
        }
        Runtime::Smol => connect_async::<tej_async_std::Smol, _>(endpoint, tls, handler, config),
        Runtime::Mio => {
            let client = match (endpoint, tls) {
                (Endpoint::Tcp(addr), None) => {
                    tej_mio::Client::connect_with(*addr, handler, config)?
                }
                (Endpoint::Tcp(addr), Some(tls)) => tej_mio::Client::connect_tls(
                    *addr,
                    tls.server_name.clone(),
                    tls.config.clone(),
                    handler,
                    config,
                )?,
                (Endpoint::Unix(path), None) => {
                    tej_mio::Client::connect_unix(path, handler, config)?
                }
                (Endpoint::Unix(path), Some(tls)) => tej_mio::Client::connect_unix_tls(
                    path,
                    tls.server_name.clone(),
                    tls.config.clone(),
                    handler,
                    config,
                )?,
            };
            Ok(RunningClient {
                sender: client.sender(),
                peer_addr: client.peer_addr(),
                local_addr: client.local_addr(),
                client: Some(Box::new(client)),
            })
        }
    }
}

fn tokio_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
