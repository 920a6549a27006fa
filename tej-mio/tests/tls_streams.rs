//! tej-mio's own TLS types: `tls::TlsStream` given to `Client::from_stream`
//! and `tls::TlsListener` given to `Server::from_listener`. TLS scenarios
//! every runtime shares (client certificates, untrusted servers, stalled
//! handshakes, close_notify, shutdown) are in the matrix
//! (`tej-examples/tests/conformance.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tej_mio::tls::rustls;
use tej_mio::tls::{TlsListener, TlsStream};
use tej_mio::{Client, Frame, Handler, Server, SessionConfig, ShutdownHandle, Stream};
use tej_test_support::handlers::{Collect, Echo, Events};
use tej_test_support::mio::join;
use tej_test_support::peer::wait_until;
use tej_test_support::tls::{client, localhost, server_with};

fn server_tls(cert: &str) -> Arc<rustls::ServerConfig> {
    server_with(cert.trim_end_matches(".pem"), false)
}

/// A client over a `TlsStream` of its own on `socket` (non-blocking),
/// trusting the test CA for "localhost", logging what it gets to `events`.
fn client_over_tls<S: Stream + 'static>(socket: S, events: &Events) -> Client {
    let stream = TlsStream::client(socket, localhost(), client()).unwrap();
    Client::from_stream(stream, Collect(events.clone()), SessionConfig::default()).unwrap()
}

/// A TLS server on its own thread, counting the handlers it made.
struct TlsServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    made: Arc<AtomicUsize>,
    thread: JoinHandle<io::Result<()>>,
}

impl TlsServer {
    fn start<F, H>(tls: Arc<rustls::ServerConfig>, config: SessionConfig, mut factory: F) -> Self
    where
        F: FnMut() -> H + Send + 'static,
        H: Handler,
    {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .with_config(config)
            .with_tls(tls);
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let thread = std::thread::spawn(move || {
            server.run(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                factory()
            })
        });
        TlsServer {
            addr,
            shutdown,
            made,
            thread,
        }
    }

    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    fn stop(self) {
        self.shutdown.shutdown();
        wait_until("the server to stop", || self.thread.is_finished());
        self.thread.join().unwrap().unwrap();
    }
}

#[test]
fn a_failed_handshake_of_a_client_from_a_stream_is_its_join_error() {
    let server = TlsServer::start(
        server_tls("other-server.pem"),
        SessionConfig::default(),
        || Echo(Events::default()),
    );
    let socket = std::net::TcpStream::connect(server.addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    let events = Events::default();
    let client = client_over_tls(tej_mio::mio::net::TcpStream::from_std(socket), &events);
    let error = join(client).unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    assert_eq!(events.len(), 0, "a callback ran: {:?}", events.snapshot());
    assert_eq!(server.made(), 0);
    server.stop();
}

#[test]
fn a_client_over_a_tls_stream_of_its_own_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.sock");
    let listener = tej_mio::mio::net::UnixListener::bind(&path).unwrap();
    let server =
        Server::from_listener(TlsListener::new(listener, server_tls("server.pem"))).unwrap();
    assert_eq!(server.local_path().as_deref(), Some(path.as_path()));
    let shutdown = server.shutdown_handle();
    let events = Events::default();
    let thread = std::thread::spawn({
        let events = events.clone();
        move || server.run(move || Echo(events.clone()))
    });

    let socket = std::os::unix::net::UnixStream::connect(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let seen = Events::default();
    let client = client_over_tls(tej_mio::mio::net::UnixStream::from_std(socket), &seen);
    assert_eq!(client.peer_addr(), None);
    client
        .sender()
        .send_blocking(Frame::message("unix"))
        .unwrap();
    wait_until("the echo", || seen.contains("echo: unix"));
    client.close();
    join(client).unwrap();
    wait_until("the server's disconnect", || events.len() == 3);
    shutdown.shutdown();
    wait_until("the server to stop", || thread.is_finished());
    thread.join().unwrap().unwrap();
    dir.close().unwrap();
}
