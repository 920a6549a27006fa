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
#[derive(Clone, Copy)]
pub struct Case {
    /// `setup::scenario`, as the matrix names them.
    pub name: &'static str,
    pub setup: Setup,
    pub run: fn(Setup),
}

/// Lists each of `[scenarios]` (functions of a [`Setup`] in scope where it
/// is called) on each setup (`module: ServerRuntime, ClientRuntime, Net;`)
/// as a [`Case`] named `module::scenario`, in a function `cases()` defined
/// where it is called; the suite's `main` hands them to
/// [`harness::run`](crate::harness::run).
#[macro_export]
macro_rules! matrix {
    ($scenarios:tt $($module:ident: $server:ident, $client:ident, $net:ident;)*) => {
        /// Every scenario of this matrix on every setup.
        pub fn cases() -> ::std::vec::Vec<$crate::matrix::Case> {
            let mut cases = ::std::vec::Vec::new();
            $( $crate::matrix!(@setup cases, $module, $server, $client, $net, $scenarios); )*
            cases
        }
    };
    (@setup $cases:ident, $module:ident, $server:ident, $client:ident, $net:ident, [$($scenario:ident),* $(,)?]) => {
        let setup = $crate::matrix::Setup {
            server: $crate::matrix::Runtime::$server,
            client: $crate::matrix::Runtime::$client,
            net: $crate::matrix::Net::$net,
        };
        $(
            $cases.push($crate::matrix::Case {
                name: concat!(stringify!($module), "::", stringify!($scenario)),
                setup,
                run: $scenario,
            });
        )*
    };
}
