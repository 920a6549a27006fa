//! TLS configurations from PEM files, for `tej serve --tls-*` and
//! `tej send --tls`: rustls with its ring provider, as every adapter's
//! `tls` feature uses.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls13_signature_with_raw_key, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tej_net::tls::{certificate_reason, REMEDY_V3};

mod x509;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds a malformed certificate", path.display()))?;
    if certificates.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

fn roots(path: &Path, certificates: &[CertificateDer<'static>]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate.clone())
            .with_context(|| format!("{} holds an unusable CA certificate", path.display()))?;
    }
    Ok(roots)
}

/// A rustls error in words: a certificate's with its reason, others as
/// rustls says them.
fn said(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(certificate) => certificate_reason(certificate),
        other => other.to_string(),
    }
}

/// A certificate of our own (`tej serve --tls-cert`, `tej send --cert`)
/// that rustls cannot load: an X.509 v1 one, said as such rather than as a
/// key that does not fit.
fn refuse_v1(path: &Path, certificate: &CertificateDer<'_>) -> anyhow::Result<()> {
    if x509::summary(certificate).is_ok_and(|summary| summary.version < 3) {
        bail!(
            "{} is an X.509 v1 certificate (no extensions), which rustls refuses; {REMEDY_V3}",
            path.display()
        );
    }
    Ok(())
}

/// Why most clients will refuse `certificate` as a server's, in one line,
/// or `None`: it is a CA certificate, it names no host (no
/// subjectAltName), it has expired or is not valid yet. `tej serve` prints
/// it at start; a client that pins this very certificate
/// (`tej send --ca` with it) still accepts it.
pub fn server_certificate_warning(path: &Path, certificate: &CertificateDer<'_>) -> Option<String> {
    let summary = x509::summary(certificate).ok()?;
    let now = std::time::SystemTime::now();
    let mut reasons = Vec::new();
    if summary.ca {
        reasons.push("it is a CA certificate (basicConstraints CA:TRUE)");
    }
    if !summary.has_alt_names {
        reasons.push("it names no host (no subjectAltName; clients ignore the common name)");
    }
    if now > summary.not_after {
        reasons.push("it has expired");
    } else if now < summary.not_before {
        reasons.push("it is not valid yet");
    }
    if reasons.is_empty() {
        return None;
    }
    Some(format!(
        "{} will be refused by most clients: {}; they can still trust exactly this \
         certificate (tej send --tls --ca {0}); to make one they accept: openssl req -x509 \
         -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj /CN=localhost \
         -addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost \
         -keyout key.pem -out cert.pem",
        path.display(),
        reasons.join("; ")
    ))
}

/// The warning of [`server_certificate_warning`] for the first
/// certificate of the PEM file `cert`, if any.
///
/// # Errors
///
/// When `cert` cannot be read.
pub fn server_warning(cert: &Path) -> anyhow::Result<Option<String>> {
    Ok(server_certificate_warning(cert, &certificates(cert)?[0]))
}

/// A server configuration: the certificate chain in `cert` (PEM, leaf
/// first) with the private key in `key`; with `client_ca`, every client
/// must present a certificate that a CA in that file signed, or one of its
/// certificates itself (pinned: trusted as it is, CA flag or not).
///
/// # Errors
///
/// A one-line reason: a file unreadable or malformed, an X.509 v1
/// certificate, a key that does not match the certificate.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = certificates(cert)?;
    refuse_v1(cert, &chain[0])?;
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let pins = certificates(ca)?;
            let inner = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, &pins)?),
                provider(),
            )
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(Arc::new(PinnedClients {
                inner,
                pins: Pins::new(pins),
            }))
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| own_certificate_error(cert, key_path, &error))?;
    Ok(Arc::new(config))
}

/// Why our own certificate and key could not be loaded, in one line.
fn own_certificate_error(cert: &Path, key: &Path, error: &rustls::Error) -> anyhow::Error {
    match error {
        rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
            "the private key {} does not fit the certificate {}",
            key.display(),
            cert.display()
        ),
        other => anyhow::anyhow!(
            "cannot use the certificate {}: {}",
            cert.display(),
            said(other)
        ),
    }
}

/// A client configuration that trusts the CA certificates in `ca`, or the
/// system's roots without it; with `identity` (certificate chain, key),
/// presents that certificate to servers that ask for one. A server whose
/// certificate is itself in `ca` is trusted as it is (pinned), whatever its
/// CA flag, version or names: what `openssl req -x509` makes.
///
/// # Errors
///
/// A one-line reason: a file unreadable or malformed, no system roots, an
/// X.509 v1 client certificate, a key that does not fit its certificate.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let (roots, pins) = match ca {
        Some(ca) => {
            let pins = certificates(ca)?;
            (roots(ca, &pins)?, pins)
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no system root certificates found; pass --ca PEM");
            }
            (roots, Vec::new())
        }
    };
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .context("server certificate verifier")?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServers {
            inner,
            pins: Pins::new(pins),
        }));
    let config = match identity {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            refuse_v1(cert, &chain[0])?;
            let private = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("cannot read a private key from {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|error| own_certificate_error(cert, key, &error))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A pinned certificate's own checks: within its validity period. The
/// chain, CA flag and version are what pinning sets aside; the handshake's
/// signature is still checked with its key.
fn check_pinned(certificate: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let summary = x509::summary(certificate).map_err(|_| CertificateError::BadEncoding)?;
    let at = |time: std::time::SystemTime| {
        UnixTime::since_unix_epoch(
            time.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    };
    let now_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs());
    if now_at > summary.not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: at(summary.not_after),
        }
        .into());
    }
    if now_at < summary.not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: at(summary.not_before),
        }
        .into());
    }
    Ok(())
}

/// Certificates trusted as they are, whatever their chain, CA flag or
/// version: what both verifiers below pin.
#[derive(Debug)]
struct Pins {
    certificates: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Pins {
    fn new(certificates: Vec<CertificateDer<'static>>) -> Pins {
        Pins {
            certificates,
            provider: provider(),
        }
    }

    /// Whether `certificate` is exactly one of the pinned ones.
    fn holds(&self, certificate: &CertificateDer<'_>) -> bool {
        self.certificates
            .iter()
            .any(|pin| pin.as_ref() == certificate.as_ref())
    }

    /// The TLS 1.3 handshake signature: a pinned certificate's checked with
    /// its public key alone (webpki cannot parse an X.509 v1 certificate),
    /// any other by `otherwise`.
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        otherwise: impl FnOnce() -> Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if !self.holds(certificate) {
            return otherwise();
        }
        let summary = x509::summary(certificate).map_err(|_| CertificateError::BadEncoding)?;
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(summary.spki),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

/// The handshake-signature methods of both verifiers below, which rustls
/// declares alike in its two verifier traits: TLS 1.2 signatures and the
/// schemes as the inner webpki verifier has them, TLS 1.3 signatures
/// through the pins (a pinned certificate's checked with its key alone).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.pins.verify_tls13_signature(message, cert, dss, || {
                self.inner.verify_tls13_signature(message, cert, dss)
            })
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The webpki verifier of servers' certificates, but a certificate that is
/// exactly one of `pins` is trusted as it is (within its validity period).
#[derive(Debug)]
struct PinnedServers {
    inner: Arc<WebPkiServerVerifier>,
    pins: Pins,
}

impl ServerCertVerifier for PinnedServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.holds(end_entity) {
            check_pinned(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    handshake_signatures!();
}

/// The webpki verifier of clients' certificates, with the same pinning as
/// [`PinnedServers`]; a refused certificate is logged with its reason in
/// words (the client only gets an alert).
#[derive(Debug)]
struct PinnedClients {
    inner: Arc<dyn ClientCertVerifier>,
    pins: Pins,
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = if self.pins.holds(end_entity) {
            check_pinned(end_entity, now).map(|()| ClientCertVerified::assertion())
        } else {
            self.inner
                .verify_client_cert(end_entity, intermediates, now)
        };
        if let Err(error) = &verified {
            tracing::warn!("refused a client certificate: {}", said(error));
        }
        verified
    }

    handshake_signatures!();
}

/// The name a server's certificate is checked against: a DNS name or an
/// IP address.
///
/// # Errors
///
/// When `name` is neither.
pub fn server_name(name: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .with_context(|| format!("{name:?} is not a DNS name or an IP address"))
}

/// What a client needs for TLS: its configuration and the server's name.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls configuration.
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    /// The server's name and the configuration, as the adapters'
    /// `connect_tls` take them.
    pub fn parts(&self) -> (ServerName<'static>, Arc<ClientConfig>) {
        (self.server_name.clone(), Arc::clone(&self.config))
    }
}
