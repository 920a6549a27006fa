//! What every adapter's TLS (feature `rustls`) shares: a client's failed
//! handshake said in one line, and what a handshake agreed on as
//! [`TlsInfo`].

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
        Some(rustls::Error::InvalidCertificate(certificate)) => certificate_reason(certificate),
        Some(rustls::Error::AlertReceived(alert)) => {
            std::format!("the server refused the handshake (TLS alert {alert:?})")
        }
        _ => error.to_string(),
    };
    io::Error::new(
        error.kind(),
        std::format!("TLS handshake with {name} failed: {reason}"),
    )
}

fn certificate_reason(certificate: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let why = match certificate {
        E::UnknownIssuer | E::BadSignature => "it is not signed by a trusted certificate authority",
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it is not valid for this server name"
        }
        E::Expired | E::ExpiredContext { .. } => "it has expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet",
        E::Revoked => "it has been revoked",
        _ => return std::format!("the server's certificate is not trusted: {certificate:?}"),
    };
    std::format!("the server's certificate is not trusted: {why}")
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
        assert!(handshake_error("x", alert)
            .to_string()
            .contains("the server refused the handshake"));
    }
}
