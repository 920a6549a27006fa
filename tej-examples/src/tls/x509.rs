//! The few fields of an X.509 certificate the CLI looks at before rustls
//! does (its version, CA flag, validity, subjectAltName and public key), read
//! from its DER: enough to say why a certificate will be refused, and to
//! check a pinned certificate's validity period, which webpki cannot parse
//! when it is X.509 v1. A reader of a few DER headers rather than an X.509
//! crate (six more crates to build for five fields).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the CLI needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    /// 1 for X.509 v1 (no extensions), 3 for v3.
    pub version: u8,
    /// basicConstraints says `CA:TRUE`.
    pub ca: bool,
    /// It has a subjectAltName extension (the only place names are read from).
    pub has_alt_names: bool,
    /// Not valid before this time.
    pub not_before: SystemTime,
    /// Not valid after this time.
    pub not_after: SystemTime,
    /// Its SubjectPublicKeyInfo, DER (tag and length included).
    pub spki: &'a [u8],
}

/// Why a certificate's DER could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a well-formed X.509 certificate")
    }
}

impl std::error::Error for Malformed {}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
const BOOLEAN: u8 = 0x01;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// 2.5.29.19 and 2.5.29.17, the OIDs' content bytes.
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: its tag, its content, the whole element and what
/// follows it.
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn element(input: &[u8]) -> Result<Element<'_>, Malformed> {
    let (&tag, rest) = input.split_first().ok_or(Malformed)?;
    let (&first, rest) = rest.split_first().ok_or(Malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(Malformed);
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(Malformed);
    }
    let header = input.len() - rest.len();
    Ok((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

/// The element at the start of `input`, which must carry `tag`: its
/// content and what follows.
fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), Malformed> {
    let (found, content, _, rest) = element(input)?;
    if found == tag {
        Ok((content, rest))
    } else {
        Err(Malformed)
    }
}

/// Reads `der`, a certificate.
///
/// # Errors
///
/// [`Malformed`] when it is not a certificate's DER.
pub fn summary(der: &[u8]) -> Result<Summary<'_>, Malformed> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut version = 1;
    let mut rest = tbs;
    if let Ok((explicit, after)) = expect(rest, VERSION) {
        let (number, _) = expect(explicit, 0x02)?;
        version = number.last().map_or(1, |v| v.saturating_add(1));
        rest = after;
    }
    let (_serial, rest) = expect(rest, 0x02)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (_subject, rest) = expect(rest, SEQUENCE)?;
    let (spki_tag, _, spki, mut rest) = element(rest)?;
    if spki_tag != SEQUENCE {
        return Err(Malformed);
    }
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;

    let (mut ca, mut has_alt_names) = (false, false);
    while !rest.is_empty() {
        let (tag, content, _, after) = element(rest)?;
        rest = after;
        if tag != EXTENSIONS {
            continue; // issuerUniqueID, subjectUniqueID
        }
        let (mut extensions, _) = expect(content, SEQUENCE)?;
        while !extensions.is_empty() {
            let (extension, after) = expect(extensions, SEQUENCE)?;
            extensions = after;
            let (oid, mut fields) = expect(extension, OID)?;
            if let Ok((_critical, after)) = expect(fields, BOOLEAN) {
                fields = after;
            }
            let (value, _) = expect(fields, OCTET_STRING)?;
            if oid == SUBJECT_ALT_NAME {
                has_alt_names = true;
            } else if oid == BASIC_CONSTRAINTS {
                let (constraints, _) = expect(value, SEQUENCE)?;
                if let Ok((flag, _)) = expect(constraints, BOOLEAN) {
                    ca = flag.first().is_some_and(|&byte| byte != 0);
                }
            }
        }
    }
    Ok(Summary {
        version,
        ca,
        has_alt_names,
        not_before,
        not_after,
        spki,
    })
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) and what follows it.
fn time(input: &[u8]) -> Result<(SystemTime, &[u8]), Malformed> {
    let (tag, content, _, rest) = element(input)?;
    let digits = |range: std::ops::Range<usize>| -> Result<i64, Malformed> {
        let bytes = content.get(range).ok_or(Malformed)?;
        bytes.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit()
                .then(|| n * 10 + i64::from(b - b'0'))
                .ok_or(Malformed)
        })
    };
    let (year, at) = match (tag, content.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (digits(0..4)?, 4),
        _ => return Err(Malformed),
    };
    if content.last() != Some(&b'Z') {
        return Err(Malformed);
    }
    let (month, day) = (digits(at..at + 2)?, digits(at + 2..at + 4)?);
    let (hour, minute, second) = (
        digits(at + 4..at + 6)?,
        digits(at + 6..at + 8)?,
        digits(at + 8..at + 10)?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(Malformed);
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let at = match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
    };
    Ok((at, rest))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn testdata(name: &str) -> CertificateDer<'static> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/tls")
            .join(name);
        CertificateDer::from_pem_file(path).unwrap()
    }

    #[test]
    fn reads_the_test_certificates() {
        let ca = testdata("ca.pem");
        let ca = summary(&ca).unwrap();
        assert_eq!((ca.version, ca.ca, ca.has_alt_names), (3, true, false));
        let server = testdata("server.pem");
        let server = summary(&server).unwrap();
        assert_eq!(
            (server.version, server.ca, server.has_alt_names),
            (3, false, true)
        );
        assert!(server.not_before < SystemTime::now() && SystemTime::now() < server.not_after);
        assert_eq!(server.spki[0], SEQUENCE);
    }

    #[test]
    fn times_and_garbage() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let (at, rest) = time(b"\x17\x0d491231235959Z").unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            2_524_607_999
        );
        let (at, _) = time(b"\x18\x0f19500101000000Z").unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(at).unwrap().as_secs(),
            631_152_000
        );
        assert_eq!(summary(b""), Err(Malformed));
        assert_eq!(summary(b"\x30\x84\xff\xff\xff\xff"), Err(Malformed));
        assert_eq!(summary(b"\x30\x03\x30\x01\x00"), Err(Malformed));
    }
}
