//! The subject of an X.509 certificate in words (`CN=tej client,O=tej`),
//! for `tej serve`'s `connected` line.
//!
//! A DER walk of the few fields on the way to the subject, not an X.509
//! crate: `x509-parser` would bring about a dozen crates (asn1-rs,
//! der-parser, nom 7, oid-registry, time, ...) to the tool's build for one
//! string, and rustls has already verified the certificate.

use std::fmt::Write;

/// One DER element: its tag, its contents and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's contents, in order.
fn elements(mut der: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, contents, rest) = element(der)?;
        der = rest;
        Some((tag, contents))
    })
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The short names of the usual attributes (RFC 4514 and OpenSSL's).
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// An object identifier in dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    for (i, &byte) in oid.iter().enumerate() {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if out.is_empty() && i < 9 {
                let first = (value / 40).min(2);
                let _ = write!(out, "{first}.{}", value - first * 40);
            } else {
                let _ = write!(out, ".{value}");
            }
            value = 0;
        }
    }
    out
}

/// A directory string's text: UTF-8, printable, IA5, teletex (read as
/// Latin-1) and BMP strings; anything else as `#` and its DER in hex.
fn text(tag: u8, contents: &[u8], whole: &[u8]) -> String {
    match tag {
        0x0c | 0x13 | 0x16 => String::from_utf8_lossy(contents).into_owned(),
        0x14 => contents.iter().map(|&byte| char::from(byte)).collect(),
        0x1e => char::decode_utf16(
            contents
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        )
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        _ => format!("#{}", hex::encode(whole)),
    }
}

/// `value` escaped as RFC 4514 asks.
fn escape(value: &str, out: &mut String) {
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The subject of the DER certificate `cert` as RFC 4514 writes a
/// distinguished name (the last RDN first: `CN=tej client,O=tej`), or
/// `None` if `cert` is not a certificate.
pub fn subject(cert: &[u8]) -> Option<String> {
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut fields = elements(tbs).peekable();
    // [0] version, when present; then serial, signature, issuer, validity.
    if fields.peek().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.next();
    }
    let (tag, name) = fields.nth(4)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rdns = Vec::new();
    for (tag, rdn) in elements(name) {
        if tag != SET {
            return None;
        }
        let mut parts = Vec::new();
        for (tag, attribute) in elements(rdn) {
            let (OID, oid, value) = element(attribute)? else {
                return None;
            };
            if tag != SEQUENCE {
                return None;
            }
            let (value_tag, contents, _) = element(value)?;
            let mut part = attribute_name(oid).map_or_else(|| dotted(oid), str::to_owned);
            part.push('=');
            escape(&text(value_tag, contents, value), &mut part);
            parts.push(part);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(name: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/tls")
            .join(name);
        rustls::pki_types::CertificateDer::from_pem_file(path)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn the_test_certificates_subjects_read_as_openssl_prints_them() {
        // `openssl x509 -noout -subject -nameopt RFC2253` on each file.
        assert_eq!(
            subject(&der("client.pem")).as_deref(),
            Some("CN=tej client")
        );
        assert_eq!(
            subject(&der("ca.pem")).as_deref(),
            Some("CN=tej-rs test CA")
        );
    }

    #[test]
    fn several_attributes_read_last_first_escaped() {
        // Name: C=FR, O="a,b", CN=x (built by hand).
        let attribute = |oid: &[u8], value: &[u8]| {
            let mut inner = vec![OID, oid.len() as u8];
            inner.extend_from_slice(oid);
            inner.extend_from_slice(&[0x0c, value.len() as u8]);
            inner.extend_from_slice(value);
            let mut seq = vec![SEQUENCE, inner.len() as u8];
            seq.extend(inner);
            let mut set = vec![SET, seq.len() as u8];
            set.extend(seq);
            set
        };
        let mut name = Vec::new();
        name.extend(attribute(&[0x55, 4, 6], b"FR"));
        name.extend(attribute(&[0x55, 4, 10], b"a,b"));
        name.extend(attribute(&[0x2b, 6, 1], b"y"));
        name.extend(attribute(&[0x55, 4, 3], b"x"));
        let mut tbs = vec![0x02, 1, 1, SEQUENCE, 0, SEQUENCE, 0, SEQUENCE, 0];
        tbs.extend([SEQUENCE, name.len() as u8]);
        tbs.extend(name);
        let mut cert = vec![SEQUENCE, tbs.len() as u8 + 2, SEQUENCE, tbs.len() as u8];
        cert.extend(tbs);
        assert_eq!(
            subject(&cert).as_deref(),
            Some("CN=x,1.3.6.1=y,O=a\\,b,C=FR")
        );
    }

    #[test]
    fn what_is_not_a_certificate_has_no_subject() {
        assert_eq!(subject(b""), None);
        assert_eq!(subject(&[0x30, 0x05, 0x30]), None);
        assert_eq!(subject(&[0x04, 0x00]), None);
        let mut cut = der("client.pem");
        cut.truncate(40);
        assert_eq!(subject(&cut), None);
    }
}
