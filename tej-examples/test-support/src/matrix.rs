//! The cross-runtime test matrix: a scenario written once against the
//! blocking facade in `tej_examples::runtime` runs per [`Setup`] (server
//! runtime, client runtime, transport), one test each, listed by
//! [`matrix!`](crate::matrix!) and run by [`harness`](crate::harness). Used
//! by `conformance.rs` and `faults.rs`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tej_core::SessionConfig;
pub use tej_examples::runtime::Runtime;
use tej_examples::runtime::{self, Endpoint, RunningClient, RunningServer, ServerOptions};
use tej_examples::tls::ClientTls;

use crate::peer::Raw;
use crate::recorder::Recorder;
use crate::tls as certs;

/// The transport a scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Tcp,
    Unix,
    Tls,
}

impl Net {
    pub fn name(self) -> &'static str {
        match self {
            Net::Tcp => "tcp",
            Net::Unix => "unix",
            Net::Tls => "tls",
        }
    }
}

/// Who serves, who connects, and over what.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub server: Runtime,
    pub client: Runtime,
    pub net: Net,
}

/// A client's TLS: trusting ca.pem, presenting client.pem if `cert`.
pub fn client_tls_with(cert: bool) -> ClientTls {
    ClientTls {
        config: certs::client_with(cert),
        server_name: certs::localhost(),
    }
}

pub fn client_tls() -> ClientTls {
    client_tls_with(false)
}

/// What a scenario's server is started with beyond its session config.
#[derive(Clone)]
pub struct Options {
    /// Over TLS: the certificate (`server`, `other-server`) and whether
    /// client certificates are required.
    pub cert: &'static str,
    pub client_auth: bool,
    pub proxy_protocol: bool,
    pub max_connections: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cert: "server",
            client_auth: false,
            proxy_protocol: false,
            max_connections: None,
        }
    }
}

/// A server of a scenario, with the directory of its Unix socket.
pub struct TestServer {
    pub server: RunningServer,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn endpoint(&self) -> &Endpoint {
        self.server.endpoint()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}

pub fn serve(s: Setup, config: SessionConfig, handler: Recorder) -> TestServer {
    serve_with(s, config, Options::default(), handler)
}

pub fn serve_with(
    s: Setup,
    config: SessionConfig,
    options: Options,
    handler: Recorder,
) -> TestServer {
    let (bind, dir) = match s.net {
        Net::Tcp | Net::Tls => (SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into(), None),
        Net::Unix => {
            let dir = tempfile::tempdir().unwrap();
            (Endpoint::Unix(dir.path().join("tej.sock")), Some(dir))
        }
    };
    let mut server_options = ServerOptions {
        tls: (s.net == Net::Tls).then(|| certs::server_with(options.cert, options.client_auth)),
        proxy_protocol: options.proxy_protocol,
        ..ServerOptions::default()
    };
    if let Some(max) = options.max_connections {
        server_options.max_connections = max;
    }
    let server =
        runtime::start_server_with(s.server, bind, config, server_options, handler.factory())
            .expect("server starts");
    TestServer { server, _dir: dir }
}

pub fn try_connect(
    s: Setup,
    server: &TestServer,
    tls: Option<ClientTls>,
    handler: Recorder,
    config: SessionConfig,
) -> io::Result<RunningClient> {
    runtime::connect_with(s.client, server.endpoint(), tls.as_ref(), handler, config)
}

pub fn connect(
    s: Setup,
    server: &TestServer,
    handler: Recorder,
    config: SessionConfig,
) -> RunningClient {
    connect_to(s, server.endpoint(), handler, config)
}

/// Connects the scenario's client to `endpoint` (a server, or something
/// in front of it), through TLS over [`Net::Tls`].
pub fn connect_to(
    s: Setup,
    endpoint: &Endpoint,
    handler: Recorder,
    config: SessionConfig,
) -> RunningClient {
    let tls = (s.net == Net::Tls).then(client_tls);
    runtime::connect_with(s.client, endpoint, tls.as_ref(), handler, config)
        .expect("client connects")
}

/// A raw byte stream to the server, over the scenario's transport.
pub fn raw(s: Setup, server: &TestServer) -> Raw {
    match (server.endpoint(), s.net) {
        (Endpoint::Unix(path), _) => Raw::unix(path),
        (Endpoint::Tcp(addr), Net::Tls) => Raw::tls(*addr),
        (Endpoint::Tcp(addr), _) => Raw::tcp(*addr),
    }
}

/// One scenario on one setup.
#[derive(Clone)]
pub struct Case {
    /// `setup::scenario`, as the matrix names them.
    pub name: String,
    pub setup: Setup,
    pub run: fn(Setup),
}

/// A runtime's name in a setup's name: `tokio`, `async_std`, `smol`, `mio`.
fn runtime_name(runtime: Runtime) -> String {
    runtime.name().replace('-', "_")
}

/// Each runtime serving its own clients over `net`, named `prefix`
/// followed by the runtime (`tokio`, `async_std`, `smol`, `mio`).
pub fn same_runtime(prefix: &str, net: Net) -> Vec<(String, Setup)> {
    Runtime::ALL
        .iter()
        .map(|&runtime| {
            let setup = Setup {
                server: runtime,
                client: runtime,
                net,
            };
            (format!("{prefix}{}", runtime_name(runtime)), setup)
        })
        .collect()
}

/// Each runtime serving its own clients over `net`, as [`same_runtime`],
/// then each (server, client) pair of `pairs`, named `prefix` followed by
/// `server_server_client_client`.
pub fn runtimes_and_pairs(
    prefix: &str,
    net: Net,
    pairs: &[(Runtime, Runtime)],
) -> Vec<(String, Setup)> {
    let mut setups = same_runtime(prefix, net);
    setups.extend(pairs.iter().map(|&(server, client)| {
        let name = format!(
            "{prefix}{}_server_{}_client",
            runtime_name(server),
            runtime_name(client)
        );
        (
            name,
            Setup {
                server,
                client,
                net,
            },
        )
    }));
    setups
}

/// Lists each of `[scenarios]` (functions of a [`Setup`] in scope where it
/// is called) on each named setup of the lists that follow (see
/// [`same_runtime`] and [`runtimes_and_pairs`]) as a [`Case`] named `setup::scenario`,
/// setup by setup, in a function `cases()` defined where it is called; the
/// suite's `main` hands them to [`harness::run`](crate::harness::run).
#[macro_export]
macro_rules! matrix {
    ([$($scenario:ident),* $(,)?] $($setups:expr),* $(,)?) => {
        /// Every scenario of this matrix on every setup.
        pub fn cases() -> ::std::vec::Vec<$crate::matrix::Case> {
            let scenarios: &[(&str, fn($crate::matrix::Setup))] =
                &[$((stringify!($scenario), $scenario)),*];
            [$($setups),*]
                .into_iter()
                .flatten()
                .flat_map(|(setup_name, setup)| {
                    scenarios.iter().map(move |&(scenario, run)| $crate::matrix::Case {
                        name: format!("{setup_name}::{scenario}"),
                        setup,
                        run,
                    })
                })
                .collect()
        }
    };
}
