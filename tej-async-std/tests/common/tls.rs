//! rustls configurations from testdata/tls, built with the ring provider.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn path(name: &str) -> String {
    format!("{}/../testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path(name))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path(name)).unwrap()
}

fn roots(name: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs(name) {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

/// The server presenting server.pem (signed by ca.pem), no client auth.
pub fn server() -> Arc<ServerConfig> {
    server_with("server")
}

/// The server presenting other-server.pem, which ca.pem does not trust.
pub fn untrusted_server() -> Arc<ServerConfig> {
    server_with("other-server")
}

fn server_with(name: &str) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs(&format!("{name}.pem")), key(&format!("{name}.key")))
        .unwrap();
    Arc::new(config)
}

/// The server requiring a client certificate signed by ca.pem.
pub fn server_requiring_client_cert() -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots("ca.pem"), provider())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs("server.pem"), key("server.key"))
        .unwrap();
    Arc::new(config)
}

/// The client trusting ca.pem, without a certificate of its own.
pub fn client() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots("ca.pem"))
        .with_no_client_auth();
    Arc::new(config)
}

/// The client trusting ca.pem and presenting client.pem.
pub fn client_with_cert() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots("ca.pem"))
        .with_client_auth_cert(certs("client.pem"), key("client.key"))
        .unwrap();
    Arc::new(config)
}

/// The name in server.pem's SAN.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
