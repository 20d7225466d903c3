//! TLS for SSL and SASL_SSL listeners (rustls, ring): the server
//! configuration from PEM files, reloaded when the files change, and the
//! principal of a client certificate.
//!
//! Reload: each shard keeps its [`TlsAcceptors`]; a new connection takes the
//! current acceptor, and at most once per [`RELOAD_CHECK_MS`] that first
//! compares the files' modification times with those of the last load. A
//! change loads them again; a load that fails (a key that is half written,
//! say) is logged and the previous configuration goes on serving until the
//! files change again. Open connections keep the configuration they began
//! with.
//!
//! Principal: with a client certificate (`ssl_client_auth` requested or
//! required) the connection's principal is `User:` and the certificate's
//! subject as RFC 2253 writes it, most specific attribute first
//! (`User:CN=alice,O=Weir,C=SE`), as Kafka's default
//! `ssl.principal.mapping.rules` gives; a SASL session's user takes its
//! place on a SASL_SSL listener. Without a certificate it is `User:ANONYMOUS`.

use futures_rustls::TlsAcceptor;
use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use weir_shards::{BrokerConfig, SslClientAuth};

/// How often, at most, a new connection looks whether the files changed.
pub const RELOAD_CHECK_MS: i64 = 1000;

/// The files a TLS listener is configured from.
#[derive(Clone, Debug)]
struct TlsFiles {
    certificate: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    client_auth: SslClientAuth,
}

impl TlsFiles {
    fn from_config(config: &BrokerConfig) -> Result<TlsFiles, String> {
        let missing = |name: &str| format!("a TLS listener needs {name}");
        Ok(TlsFiles {
            certificate: config.ssl_certificate_location.clone().ok_or_else(|| missing("ssl_certificate_location"))?,
            key: config.ssl_key_location.clone().ok_or_else(|| missing("ssl_key_location"))?,
            ca: config.ssl_ca_location.clone(),
            client_auth: config.ssl_client_auth,
        })
    }

    /// The files' modification times (`None` for one that cannot be read).
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        [Some(&self.certificate), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| modified(p))
            .collect()
    }

    /// Reads the files and builds the server configuration: TLS 1.3 and 1.2,
    /// the client certificate policy, ALPN none (Kafka has none).
    fn load(&self) -> Result<ServerConfig, String> {
        let certificates = CertificateDer::pem_file_iter(&self.certificate)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("ssl_certificate_location {}: {e}", self.certificate.display()))?;
        if certificates.is_empty() {
            return Err(format!("ssl_certificate_location {}: no certificate in it", self.certificate.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("ssl_key_location {}: {e}", self.key.display()))?;
        // rustls deprecates ring's provider for its lack of post-quantum key
        // exchange (X25519MLKEM768); aws-lc-rs has it, at the cost of a C and
        // CMake build. Classical X25519/P-256 is what Kafka's clients offer today.
        #[allow(deprecated)]
        let provider = Arc::new(ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match (self.client_auth, &self.ca) {
            (SslClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => return Err("ssl_client_auth requested or required needs ssl_ca_location".into()),
            (auth, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("ssl_ca_location {}: {e}", ca.display()))?;
                let (added, _) = roots.add_parsable_certificates(cas);
                if added == 0 {
                    return Err(format!("ssl_ca_location {}: no usable CA certificate in it", ca.display()));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match auth {
                    SslClientAuth::Requested => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("ssl_ca_location: {e}"))?)
            }
        };
        builder.with_single_cert(certificates, key).map_err(|e| {
            format!(
                "ssl_certificate_location {} with ssl_key_location {}: {e}",
                self.certificate.display(),
                self.key.display()
            )
        })
    }
}

/// Checks at start that the TLS listeners' files load, so that a broker with
/// a wrong path or a key that does not match its certificate does not start.
pub fn check_config(config: &BrokerConfig) -> Result<(), String> {
    if config.listeners()?.iter().any(|l| l.protocol.is_tls()) {
        TlsAcceptors::new(config)?;
    }
    Ok(())
}

/// One shard's TLS acceptor, reloaded when the files change.
pub struct TlsAcceptors {
    files: TlsFiles,
    current: RefCell<Current>,
}

struct Current {
    acceptor: TlsAcceptor,
    stamps: Vec<Option<SystemTime>>,
    checked_ms: i64,
}

impl TlsAcceptors {
    /// Loads the files named in `config`.
    pub fn new(config: &BrokerConfig) -> Result<TlsAcceptors, String> {
        let files = TlsFiles::from_config(config)?;
        let stamps = files.stamps();
        let acceptor = TlsAcceptor::from(Arc::new(files.load()?));
        let checked_ms = weir_runtime::clock::now_ms();
        Ok(TlsAcceptors { files, current: RefCell::new(Current { acceptor, stamps, checked_ms }) })
    }

    /// The acceptor for a new connection, from the files as they are now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.borrow_mut();
        let now_ms = weir_runtime::clock::now_ms();
        if now_ms - current.checked_ms >= RELOAD_CHECK_MS {
            current.checked_ms = now_ms;
            let stamps = self.files.stamps();
            if stamps != current.stamps {
                current.stamps = stamps;
                match self.files.load() {
                    Ok(config) => {
                        current.acceptor = TlsAcceptor::from(Arc::new(config));
                        tracing::info!(certificate = %self.files.certificate.display(), "TLS files reloaded");
                    }
                    Err(e) => tracing::error!("TLS files changed but cannot be loaded, serving the previous ones: {e}"),
                }
            }
        }
        current.acceptor.clone()
    }
}

/// The principal of a TLS connection: `User:` and the client certificate's
/// subject (RFC 2253), or `User:ANONYMOUS` without one.
pub fn principal(connection: &ServerConnection) -> String {
    let subject = connection.peer_certificates().and_then(|chain| chain.first()).and_then(|cert| subject(cert));
    format!("User:{}", subject.as_deref().unwrap_or("ANONYMOUS"))
}

/// The subject of a DER certificate as RFC 2253 writes it (the last RDN
/// first); `None` when the DER is not a certificate.
pub fn subject(certificate: &[u8]) -> Option<String> {
    let (_, certificate, _) = der(certificate, SEQUENCE)?;
    let (_, tbs, _) = der(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der(rest, 0xa0)?.2; // [0] version
    }
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE] {
        rest = der(rest, tag)?.2; // serial, signature algorithm, issuer, validity
    }
    let (_, mut names, _) = der(rest, SEQUENCE)?;
    let mut rdns = Vec::new();
    while !names.is_empty() {
        let (_, mut set, after) = der(names, SET)?;
        names = after;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (_, attribute, after) = der(set, SEQUENCE)?;
            set = after;
            let (_, oid, value) = der(attribute, OID)?;
            let (tag, value, _) = der_any(value)?;
            attributes.push(format!("{}={}", attribute_name(oid), attribute_value(tag, value)));
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// One DER element of tag `tag` at the start of `input`.
fn der(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    der_any(input).filter(|(found, _, _)| *found == tag)
}

/// One DER element at the start of `input`: its tag, contents and what follows.
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |len, b| len << 8 | *b as usize);
        rest = &rest[count..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// RFC 2253's short names (and Kafka's, through Java's X500Principal), else the dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    let known = [
        (&[0x55, 0x04, 0x03][..], "CN"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "STREET"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01], "UID"),
    ];
    if let Some((_, name)) = known.iter().find(|(known, _)| *known == oid) {
        return name.to_string();
    }
    let mut arcs = Vec::new();
    let mut arc = 0u64;
    for byte in oid {
        arc = arc << 7 | (byte & 0x7f) as u64;
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (arc / 40).min(2);
                arcs.push(first);
                arcs.push(arc - first * 40);
            } else {
                arcs.push(arc);
            }
            arc = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A string attribute, escaped as RFC 2253 asks; anything else as `#` and its hex.
fn attribute_value(tag: u8, value: &[u8]) -> String {
    // UTF8String, PrintableString, IA5String, TeletexString (taken as Latin-1 would be; ASCII in practice).
    let text = match tag {
        0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8_lossy(value).into_owned(),
        _ => return format!("#{}", value.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    };
    let mut escaped = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag and length bytes of a DER element around `contents`.
    fn element(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.extend_from_slice(&[0x82, (contents.len() >> 8) as u8, contents.len() as u8]);
        }
        out.extend_from_slice(contents);
        out
    }

    fn attribute(oid: &[u8], tag: u8, value: &str) -> Vec<u8> {
        element(SET, &element(SEQUENCE, &[element(OID, oid), element(tag, value.as_bytes())].concat()))
    }

    /// A certificate skeleton: what `subject` walks past, then the subject.
    fn certificate(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            element(0xa0, &element(INTEGER, &[2])),
            element(INTEGER, &[1, 2, 3]),
            element(SEQUENCE, &element(OID, &[0x2a, 0x86, 0x48])),
            element(SEQUENCE, &attribute(&[0x55, 0x04, 0x03], 0x0c, "issuer")),
            element(SEQUENCE, &[0u8; 200]),
            element(SEQUENCE, subject),
            element(SEQUENCE, &[]),
        ]
        .concat();
        element(SEQUENCE, &[element(SEQUENCE, &tbs), element(SEQUENCE, &[]), element(0x03, &[0])].concat())
    }

    #[test]
    fn the_subject_reads_as_rfc_2253_writes_it() {
        let subject_der = [
            attribute(&[0x55, 0x04, 0x06], 0x13, "SE"),
            attribute(&[0x55, 0x04, 0x0a], 0x0c, "Weir, Inc."),
            attribute(&[0x55, 0x04, 0x03], 0x0c, "alice"),
            attribute(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01], 0x16, "a@b"),
        ]
        .concat();
        assert_eq!(
            subject(&certificate(&subject_der)).as_deref(),
            Some("1.2.840.113549.1.9.1=a@b,CN=alice,O=Weir\\, Inc.,C=SE")
        );
        assert_eq!(subject(&certificate(&[])).as_deref(), Some(""));
    }

    #[test]
    fn malformed_der_has_no_subject() {
        let good = certificate(&attribute(&[0x55, 0x04, 0x03], 0x0c, "alice"));
        assert_eq!(subject(&good).as_deref(), Some("CN=alice"));
        for cut in 0..good.len() {
            assert_eq!(subject(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(subject(b"not DER at all"), None);
        assert_eq!(subject(&[]), None);
    }
}
