//! PEM certificate chain + private key -> [`CertifiedPair`]: parsed, checked (the key matches the
//! leaf, the leaf is within its validity period) and described (subject, names, serial, expiry).

use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;
use x509_cert::der::oid::AssociatedOid as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::TlsError;

/// A certificate chain and the key for its leaf, ready for handshakes.
#[derive(Debug)]
pub struct CertifiedPair {
    certified: Arc<CertifiedKey>,
    leaf: Leaf,
    origin: String,
    fingerprint: [u8; 32],
}

/// What the leaf certificate says about itself.
#[derive(Clone, Debug)]
struct Leaf {
    subject: String,
    names: Vec<String>,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl CertifiedPair {
    /// Parses and checks a pair; errors name `origin`.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8], origin: &str) -> Result<Self, TlsError> {
        Self::from_named_pem(chain_pem, origin, key_pem, origin)
    }

    /// Parses and checks a pair read from two inputs; errors name the input at fault.
    pub fn from_named_pem(
        chain_pem: &[u8],
        chain_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsError> {
        let chain = parse_chain(chain_pem, chain_origin)?;
        let key = parse_key(key_pem, key_origin)?;
        let leaf = describe_leaf(&chain[0], chain_origin)?;
        let now = SystemTime::now();
        if leaf.not_after < now {
            return Err(TlsError::Validity {
                origin: chain_origin.to_owned(),
                state: "expired",
                at: leaf.not_after,
            });
        }
        if leaf.not_before > now {
            return Err(TlsError::Validity {
                origin: chain_origin.to_owned(),
                state: "is not valid yet",
                at: leaf.not_before,
            });
        }
        let fingerprint = fingerprint(&chain, &key);
        let signing_key = aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| TlsError::Key {
                origin: key_origin.to_owned(),
                reason: format!("unusable private key: {error}"),
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified.keys_match().map_err(|_| TlsError::Mismatch {
            chain: chain_origin.to_owned(),
            key: key_origin.to_owned(),
        })?;
        let origin = if chain_origin == key_origin {
            chain_origin.to_owned()
        } else {
            format!("{chain_origin} + {key_origin}")
        };
        Ok(Self {
            certified: Arc::new(certified),
            leaf,
            origin,
            fingerprint,
        })
    }

    /// What rustls serves.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }

    /// The DNS names and IP addresses of the leaf's subjectAltName.
    pub fn names(&self) -> &Vec<String> {
        &self.leaf.names
    }

    /// The leaf's notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.leaf.not_after
    }

    /// The leaf's serial number, hex.
    pub fn serial(&self) -> &str {
        &self.leaf.serial
    }

    /// The leaf's subject, RFC 4514.
    pub fn subject(&self) -> &str {
        &self.leaf.subject
    }

    /// Where the pair came from (files, ACME).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether `other` holds the same chain and key bytes.
    pub fn same_as(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }

    /// Whether the leaf covers `host` (exact DNS name, `*.` wildcard of one label, or IP).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.leaf.names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => name == host,
            }
        })
    }

    /// The leaf in one line: subject, names, serial, expiry.
    pub fn describe(&self) -> String {
        format!(
            "subject \"{}\", names [{}], serial {}, expires {}",
            self.leaf.subject,
            self.leaf.names.join(", "),
            self.leaf.serial,
            httpdate::fmt_http_date(self.leaf.not_after),
        )
    }

    /// `/statusz` view.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "origin": self.origin,
            "subject": self.leaf.subject,
            "names": self.leaf.names,
            "serial": self.leaf.serial,
            "not_before": httpdate::fmt_http_date(self.leaf.not_before),
            "not_after": httpdate::fmt_http_date(self.leaf.not_after),
            "chain_length": self.certified.cert.len(),
        })
    }
}

fn parse_chain(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Chain {
        origin: origin.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(error(
            "no CERTIFICATE block (empty or half-written?)".into(),
        ));
    }
    Ok(chain)
}

fn parse_key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The pem error kinds name blocks and positions, never key bytes.
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Key {
        origin: origin.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block (empty or half-written?)"
                    .into()
            }
            other => format!("not a PEM private key ({})", pem_error_kind(&other)),
        },
    })
}

/// The kind of a PEM error without the data it may quote.
fn pem_error_kind(error: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a block has no END line",
        Error::IllegalSectionStart { .. } => "malformed BEGIN line",
        Error::Base64Decode(_) => "invalid base64",
        Error::Io(_) => "read error",
        Error::NoItemsFound => "no block",
        _ => "malformed PEM",
    }
}

fn describe_leaf(der: &CertificateDer<'_>, origin: &str) -> Result<Leaf, TlsError> {
    let error = |reason: String| TlsError::Chain {
        origin: origin.to_owned(),
        reason,
    };
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| error(format!("the first certificate is not valid X.509 ({e})")))?;
    let tbs = &cert.tbs_certificate;
    let mut names = Vec::new();
    for extension in tbs.extensions.iter().flatten() {
        if extension.extn_id != SubjectAltName::OID {
            continue;
        }
        let san = SubjectAltName::from_der(extension.extn_value.as_bytes())
            .map_err(|e| error(format!("unreadable subjectAltName ({e})")))?;
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => names.push(dns.to_string()),
                GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                    4 => {
                        let b: [u8; 4] = ip.as_bytes().try_into().expect("4 bytes");
                        names.push(std::net::Ipv4Addr::from(b).to_string());
                    }
                    16 => {
                        let b: [u8; 16] = ip.as_bytes().try_into().expect("16 bytes");
                        names.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let serial = tbs
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let subject = tbs.subject.to_string();
    Ok(Leaf {
        subject,
        names,
        serial,
        not_before: tbs.validity.not_before.to_system_time(),
        not_after: tbs.validity.not_after.to_system_time(),
    })
}

fn fingerprint(chain: &[CertificateDer<'_>], key: &PrivateKeyDer<'_>) -> [u8; 32] {
    let mut context = ::aws_lc_rs::digest::Context::new(&::aws_lc_rs::digest::SHA256);
    for cert in chain {
        context.update(&(cert.len() as u64).to_be_bytes());
        context.update(cert);
    }
    context.update(key.secret_der());
    context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}
