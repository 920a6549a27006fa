//! What every adapter's TLS (feature `rustls`) shares: a client's failed
//! handshake said in one line, the name it sends as SNI, and what a
//! handshake agreed on as [`TlsInfo`].

use std::io;

use tej_core::TlsInfo;

/// What the handshake of `state` agreed on, as plain data: the protocol
/// version, cipher suite, ALPN and the peer's certificates, with `sni`,
/// the server name the client asked for (a server's
/// `ServerConnection::server_name`, the name a client connected to).
pub fn tls_info(state: &rustls::CommonState, sni: Option<&str>) -> TlsInfo {
    let version = match state.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = state
        .negotiated_cipher_suite()
        .map(|suite| {
            let suite = suite.suite();
            suite
                .as_str()
                .map_or_else(|| format!("{suite:?}"), str::to_owned)
        })
        .unwrap_or_default();
    let mut info = TlsInfo::new(version, cipher);
    info.sni = sni.map(str::to_owned);
    info.alpn = state.alpn_protocol().map(<[u8]>::to_vec);
    info.peer_certificates = state
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|der| der.as_ref().to_vec())
        .collect();
    info
}

/// The name a client sends as SNI when it connects to `name`: a DNS name,
/// never an IP address.
///
/// ```
/// use rustls::pki_types::ServerName;
/// use tej_net::tls::sni;
///
/// let host = ServerName::try_from("tej.example").unwrap();
/// assert_eq!(sni(&host).as_deref(), Some("tej.example"));
/// assert_eq!(sni(&ServerName::try_from("192.0.2.1").unwrap()), None);
/// ```
pub fn sni(name: &rustls::pki_types::ServerName<'_>) -> Option<String> {
    match name {
        rustls::pki_types::ServerName::DnsName(dns) => Some(dns.as_ref().to_owned()),
        _ => None,
    }
}

/// `error`, from a client's TLS handshake with the server `name`, said in
/// one line: `TLS handshake with NAME failed: REASON`, where the reason
/// says why the server's certificate was refused (not trusted, not valid
/// for that name, expired, ...) or that the server refused the handshake,
/// and otherwise is the error itself. The kind is kept.
///
/// ```
/// use std::io;
/// use tej_net::tls::handshake_error;
///
/// let refused = io::Error::new(
///     io::ErrorKind::InvalidData,
///     rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
/// );
/// let said = handshake_error("localhost", refused).to_string();
/// assert!(said.starts_with("TLS handshake with localhost failed: the server's certificate is not trusted"));
/// ```
pub fn handshake_error(name: &str, error: io::Error) -> io::Error {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let reason = match tls {
        Some(rustls::Error::InvalidCertificate(certificate)) => std::format!(
            "the server's certificate is not trusted: {}",
            certificate_reason(certificate)
        ),
        Some(rustls::Error::AlertReceived(alert)) => alert_reason(*alert),
        _ => error.to_string(),
    };
    io::Error::new(
        error.kind(),
        std::format!("TLS handshake with {name} failed: {reason}"),
    )
}

/// What `openssl` makes a certificate with that rustls, and so most
/// clients, accept: an end-entity certificate (v3) naming its host.
pub const REMEDY_V3: &str = "sign it again with an extension file, e.g. \
    `openssl x509 -req -in CSR -CA CA.pem -CAkey CA.key -days 365 \
    -extfile <(printf 'basicConstraints=critical,CA:FALSE\\nsubjectAltName=DNS:localhost')`";

/// How to make a self-signed end-entity certificate with `openssl`.
pub const REMEDY_NOT_CA: &str = "make it again with \
    `-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost`, \
    or trust exactly this certificate";

/// Why a peer's certificate was refused, in words (one line, no Debug
/// dump): `it has expired`, `it is not valid for the name ...`, `it is
/// an X.509 v1 certificate ...` with what to run instead. For either
/// side: a client refusing a server's certificate or a server a client's.
///
/// ```
/// use rustls::CertificateError;
/// use tej_net::tls::certificate_reason;
///
/// assert_eq!(certificate_reason(&CertificateError::Expired), "it has expired");
/// ```
pub fn certificate_reason(certificate: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match certificate {
        E::UnknownIssuer => {
            "it is not signed by a trusted certificate authority (unknown issuer)".into()
        }
        E::BadSignature => "its signature does not verify".into(),
        E::BadEncoding => "it is not a well-formed X.509 certificate".into(),
        E::NotValidForName => "it is not valid for this name".into(),
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = match expected {
                rustls::pki_types::ServerName::DnsName(name) => name.as_ref().to_string(),
                rustls::pki_types::ServerName::IpAddress(ip) => {
                    std::net::IpAddr::from(*ip).to_string()
                }
                other => std::format!("{other:?}"),
            };
            if presented.is_empty() {
                std::format!(
                    "it is not valid for the name {expected}: it names no host \
                     (no subjectAltName; the common name is not used)"
                )
            } else {
                // webpki says them as `DnsName("a.test")`: the name alone.
                let bare = |name: &String| {
                    name.split_once('(')
                        .and_then(|(_, rest)| rest.strip_suffix(')'))
                        .map_or(name.as_str(), |inner| inner.trim_matches('"'))
                        .to_string()
                };
                let presented: Vec<String> = presented.iter().map(bare).collect();
                std::format!(
                    "it is not valid for the name {expected}: it is for {}",
                    presented.join(", ")
                )
            }
        }
        E::Expired | E::ExpiredContext { .. } => "it has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet".into(),
        E::Revoked => "it has been revoked".into(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "its extended key usage does not allow this use".into()
        }
        E::UnsupportedSignatureAlgorithmContext { .. } => {
            "it is signed with an unsupported algorithm".into()
        }
        E::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki) => webpki_reason(webpki),
            None => other.to_string(),
        },
        other => other.to_string(),
    }
}

fn webpki_reason(error: &webpki::Error) -> String {
    use webpki::Error as W;
    match error {
        W::CaUsedAsEndEntity => std::format!(
            "it is a CA certificate (basicConstraints CA:TRUE) used as an end-entity \
             certificate; {REMEDY_NOT_CA}"
        ),
        W::UnsupportedCertVersion => std::format!(
            "it is an X.509 v1 certificate (no extensions), which rustls refuses; {REMEDY_V3}"
        ),
        W::EndEntityUsedAsCa => "an end-entity certificate (CA:FALSE) signed it".into(),
        W::RequiredEkuNotFoundContext(_) => "its extended key usage does not allow this use".into(),
        W::UnsupportedCriticalExtension => {
            "it has a critical extension rustls does not know".into()
        }
        W::PathLenConstraintViolated => "its chain is longer than a CA allows (pathlen)".into(),
        W::NameConstraintViolation => "it breaks its CA's name constraints".into(),
        other => std::format!("rejected by the verifier ({other})"),
    }
}

/// What a failed TLS read or write on an established connection says
/// in words, when rustls failed it: in TLS 1.3 a server refuses a
/// client's certificate after the client's side of the handshake is done,
/// so the client learns of it at its first read. `None` for other errors.
///
/// ```
/// use std::io;
/// use tej_net::tls::io_error_reason;
///
/// let alert = io::Error::new(
///     io::ErrorKind::InvalidData,
///     rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
/// );
/// assert_eq!(
///     io_error_reason(&alert).unwrap(),
///     "the server refused the handshake: it requires a client certificate (--cert and --key)"
/// );
/// assert!(io_error_reason(&io::Error::from(io::ErrorKind::ConnectionReset)).is_none());
/// ```
pub fn io_error_reason(error: &io::Error) -> Option<String> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(alert_reason(*alert)),
        rustls::Error::InvalidCertificate(certificate) => Some(std::format!(
            "the peer's certificate is not trusted: {}",
            certificate_reason(certificate)
        )),
        _ => None,
    }
}

/// A TLS alert from the peer, in words: most say what it thought of our
/// certificate.
fn alert_reason(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    let why = match alert {
        A::CertificateRequired => "it requires a client certificate (--cert and --key)",
        A::UnknownCA => "our certificate is not signed by a CA it trusts (unknown issuer)",
        A::CertificateExpired => "our certificate has expired or is not valid yet",
        A::BadCertificate => "our certificate is malformed or not valid (bad certificate)",
        A::UnsupportedCertificate => {
            "it does not accept our certificate (an X.509 v1 or CA certificate?)"
        }
        A::CertificateRevoked => "our certificate has been revoked",
        A::CertificateUnknown => "it did not accept our certificate (its log says why)",
        A::DecryptError => "our certificate's key did not verify (decrypt error)",
        A::ProtocolVersion | A::HandshakeFailure | A::InsufficientSecurity => {
            "no TLS version or cipher suite in common"
        }
        other => return std::format!("the server refused the handshake (TLS alert {other:?})"),
    };
    std::format!("the server refused the handshake: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_read_as_not_trusted_and_others_pass_through() {
        let expired = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        let said = handshake_error("tej.test", expired);
        assert_eq!(said.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            said.to_string(),
            "TLS handshake with tej.test failed: the server's certificate is not trusted: it has expired"
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let said = handshake_error("tej.test", reset);
        assert_eq!(said.kind(), io::ErrorKind::ConnectionReset);
        assert!(said
            .to_string()
            .starts_with("TLS handshake with tej.test failed: "));
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert_eq!(
            handshake_error("x", alert).to_string(),
            "TLS handshake with x failed: the server refused the handshake: \
             it requires a client certificate (--cert and --key)"
        );
    }

    fn other(error: webpki::Error) -> rustls::CertificateError {
        rustls::CertificateError::Other(rustls::OtherError(std::sync::Arc::new(error)))
    }

    #[test]
    fn the_verifiers_own_errors_are_said_in_words_with_a_remedy() {
        let ca = certificate_reason(&other(webpki::Error::CaUsedAsEndEntity));
        assert!(
            ca.starts_with("it is a CA certificate (basicConstraints CA:TRUE) used as an end-entity certificate; make it again with `-addext basicConstraints=critical,CA:FALSE"),
            "{ca}"
        );
        let v1 = certificate_reason(&other(webpki::Error::UnsupportedCertVersion));
        assert!(
            v1.starts_with("it is an X.509 v1 certificate (no extensions), which rustls refuses; sign it again with an extension file, e.g. `openssl x509 -req"),
            "{v1}"
        );
        for said in [ca, v1] {
            assert!(!said.contains('\n') && !said.contains("Other"), "{said}");
        }
        let name = certificate_reason(&rustls::CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("a.test").unwrap(),
            presented: vec!["DnsName(\"b.test\")".into(), "IpAddress(192.0.2.1)".into()],
        });
        assert_eq!(
            name,
            "it is not valid for the name a.test: it is for b.test, 192.0.2.1"
        );
    }
}
