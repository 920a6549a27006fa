//! TLS with [rustls](https://docs.rs/rustls) and `tokio-rustls` (feature
//! `tls`), both re-exported here so that your configuration is built with
//! the very versions this crate uses.
//!
//! Only rustls's `ring` provider is compiled in: build configurations with
//! `builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`
//! (no process-wide default provider is needed). A server takes its
//! configuration in [`Server::with_tls`](crate::Server::with_tls), a client
//! in [`Client::connect_tls`](crate::Client::connect_tls); a stream from a
//! [`TlsConnector`] or [`TlsAcceptor`] of your own can also be given to
//! [`Client::from_stream`](crate::Client::from_stream) or
//! [`run_session`](crate::run_session). When a session ends its stream is
//! shut down, which sends TLS's close_notify.

use std::io;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tej_core::SessionConfig;
use tokio::io::{AsyncRead, AsyncWrite};

pub use rustls;
pub use tokio_rustls;
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The client's side of a TLS handshake over `stream`, within the
/// session's handshake timeout, its failure given a one-line reason.
pub(crate) async fn client_handshake<S>(
    stream: S,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    config: &SessionConfig,
) -> io::Result<ClientTlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name.to_str().into_owned();
    let handshake = TlsConnector::from(tls).connect(server_name, stream);
    match tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(tej_net::tls::handshake_error(&name, error)),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "TLS handshake with {name} failed: no answer within {:?}",
                config.handshake_timeout
            ),
        )),
    }
}
