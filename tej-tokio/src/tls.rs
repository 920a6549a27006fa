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
        Ok(Err(error)) => Err(handshake_error(&name, error)),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "TLS handshake with {name} failed: no answer within {:?}",
                config.handshake_timeout
            ),
        )),
    }
}

/// `error` from a client's handshake with `name`, said in one line: why
/// the server was refused (its certificate is not trusted, not valid for
/// that name, expired) or what went wrong.
fn handshake_error(name: &str, error: io::Error) -> io::Error {
    let reason = match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(certificate)) => {
            use rustls::CertificateError as E;
            let why = match certificate {
                E::UnknownIssuer | E::BadSignature => {
                    "the server's certificate is not trusted (not signed by a trusted CA)"
                }
                E::NotValidForName | E::NotValidForNameContext { .. } => {
                    "the server's certificate is not valid for this name"
                }
                E::Expired | E::ExpiredContext { .. } => "the server's certificate has expired",
                E::NotValidYet | E::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet"
                }
                E::Revoked => "the server's certificate has been revoked",
                _ => "the server's certificate was refused",
            };
            format!("{why}: {error}")
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server refused the handshake (alert {alert:?})")
        }
        _ => error.to_string(),
    };
    io::Error::new(
        error.kind(),
        format!("TLS handshake with {name} failed: {reason}"),
    )
}
