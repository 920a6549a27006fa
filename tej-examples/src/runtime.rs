//! One blocking facade over every adapter, so tools and tests can pick the
//! runtime at run time and treat them alike.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use tej_core::accept::DEFAULT_MAX_CONNECTIONS;
use tej_core::{Handler, Sender, SessionConfig};

/// The adapters a server or client can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// `tej-tokio`.
    Tokio,
    /// `tej-async-std` (which also runs on smol).
    AsyncStd,
    /// `tej-mio`: a raw mio event loop on a thread of its own.
    Mio,
}

impl Runtime {
    /// Every runtime, in the order tools run them.
    pub const ALL: &'static [Runtime] = &[Runtime::Tokio, Runtime::AsyncStd, Runtime::Mio];

    /// The runtime's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::AsyncStd => "async-std",
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
        Runtime::ALL
            .iter()
            .copied()
            .find(|runtime| runtime.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Runtime::ALL.iter().map(|runtime| runtime.name()).collect();
                format!(
                    "unknown runtime {name:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// A server running in the background on some runtime.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Box<dyn FnOnce() + Send>,
}

impl fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts it down gracefully and waits until every connection has ended.
    pub fn stop(self) {
        (self.stop)();
    }
}

/// A client connection running in the background on some runtime.
pub struct RunningClient {
    sender: Sender,
    join: Box<dyn FnOnce() -> io::Result<()> + Send>,
}

impl fmt::Debug for RunningClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningClient")
            .field("sender", &self.sender)
            .finish()
    }
}

impl RunningClient {
    /// A sender for the connection.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Closes once everything queued is sent, and waits for the end.
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn close(self) -> io::Result<()> {
        self.sender.close();
        (self.join)()
    }

    /// Waits for the connection to end, however it ends.
    ///
    /// # Errors
    ///
    /// An error if the connection's handler panicked.
    pub fn join(self) -> io::Result<()> {
        (self.join)()
    }
}

/// What a server started by [`start_server_with`] does beyond each
/// connection's [`SessionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// The most connections open at once. One more is accepted and closed
    /// at once (nothing read, no handler made) until a connection ends.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Starts a server on `runtime` at `bind`, one handler per connection from
/// `factory`, with the default [`ServerOptions`].
///
/// # Errors
///
/// The error of binding.
pub fn start_server<F, H>(
    runtime: Runtime,
    bind: SocketAddr,
    config: SessionConfig,
    factory: F,
) -> io::Result<RunningServer>
where
    F: FnMut() -> H + Send + 'static,
    H: Handler + Send + 'static,
{
    start_server_with(runtime, bind, config, ServerOptions::default(), factory)
}

/// [`start_server`] with `options`.
///
/// # Errors
///
/// The error of binding.
pub fn start_server_with<F, H>(
    runtime: Runtime,
    bind: SocketAddr,
    config: SessionConfig,
    options: ServerOptions,
    factory: F,
) -> io::Result<RunningServer>
where
    F: FnMut() -> H + Send + 'static,
    H: Handler + Send + 'static,
{
    match runtime {
        Runtime::Tokio => {
            let executor = tokio_runtime()?;
            let server = executor
                .block_on(tej_tokio::Server::bind(bind))?
                .with_config(config)
                .with_max_connections(options.max_connections);
            let addr = server.local_addr()?;
            let shutdown = server.shutdown_handle();
            let serving = executor.spawn(server.serve(factory));
            Ok(RunningServer {
                addr,
                stop: Box::new(move || {
                    shutdown.shutdown();
                    let _ = executor.block_on(serving);
                }),
            })
        }
        Runtime::AsyncStd => {
            let server = async_std::task::block_on(tej_async_std::Server::bind(bind))?
                .with_config(config)
                .with_max_connections(options.max_connections);
            let addr = server.local_addr()?;
            let shutdown = server.shutdown_handle();
            let serving = async_std::task::spawn(server.serve(factory));
            Ok(RunningServer {
                addr,
                stop: Box::new(move || {
                    shutdown.shutdown();
                    async_std::task::block_on(serving);
                }),
            })
        }
        Runtime::Mio => {
            let server = tej_mio::Server::bind(bind)?
                .with_config(config)
                .with_max_connections(options.max_connections);
            let addr = server.local_addr()?;
            let shutdown = server.shutdown_handle();
            let serving = std::thread::Builder::new()
                .name("tej-mio-server".into())
                .spawn(move || server.run(factory))?;
            Ok(RunningServer {
                addr,
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

/// Connects to `addr` on `runtime` and runs `handler`.
///
/// # Errors
///
/// The error of connecting.
pub fn connect<H>(
    runtime: Runtime,
    addr: SocketAddr,
    handler: H,
    config: SessionConfig,
) -> io::Result<RunningClient>
where
    H: Handler + Send + 'static,
{
    match runtime {
        Runtime::Tokio => {
            let executor = tokio_runtime()?;
            let client =
                executor.block_on(tej_tokio::Client::connect_with(addr, handler, config))?;
            Ok(RunningClient {
                sender: client.sender(),
                join: Box::new(move || executor.block_on(client.join())),
            })
        }
        Runtime::AsyncStd => {
            let client = async_std::task::block_on(tej_async_std::Client::connect_with(
                addr, handler, config,
            ))?;
            Ok(RunningClient {
                sender: client.sender(),
                join: Box::new(move || async_std::task::block_on(client.join())),
            })
        }
        Runtime::Mio => {
            let client = tej_mio::Client::connect_with(addr, handler, config)?;
            Ok(RunningClient {
                sender: client.sender(),
                join: Box::new(move || client.join()),
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
