//! rustls configurations (ring provider) from the test certificates in
//! `testdata/tls`: `ca.pem` signs `server.pem` (for `localhost`) and
//! `client.pem`; `other-server.pem` is signed by a CA nobody trusts.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The path of `name` in `testdata/tls`.
pub fn path(name: &str) -> std::path::PathBuf {
    crate::testdata("tls").join(name)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in `name`.
pub fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path(name))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The private key in `name`.
pub fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path(name)).unwrap()
}

fn roots() -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs("ca.pem") {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

/// A server presenting `name.pem` (`server` or `other-server`), requiring
/// a client certificate signed by ca.pem if `client_auth`.
pub fn server_with(name: &str, client_auth: bool) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(), provider())
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(
        builder
            .with_single_cert(certs(&format!("{name}.pem")), key(&format!("{name}.key")))
            .unwrap(),
    )
}

/// The server presenting server.pem, no client authentication.
pub fn server() -> Arc<ServerConfig> {
    server_with("server", false)
}

/// A client trusting ca.pem, presenting client.pem if `client_cert`.
pub fn client_with(client_cert: bool) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots());
    Arc::new(if client_cert {
        builder
            .with_client_auth_cert(certs("client.pem"), key("client.key"))
            .unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

/// A client trusting ca.pem, without a certificate of its own.
pub fn client() -> Arc<ClientConfig> {
    client_with(false)
}

/// The name in server.pem's SAN.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
