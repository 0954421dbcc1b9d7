//! The serving certificate: PEM chain + private key -> a validated [`CertifiedPair`], kept live in
//! [`Certificates`] (the rustls certificate resolver), reloaded from files or installed by ACME.
//! Nothing here knows about sockets; `server::tls` builds the acceptor on top. [`client`] holds
//! what issuerd's own TLS clients share.

mod certificates;
pub mod client;
mod files;
mod pair;

use std::path::PathBuf;
use std::time::SystemTime;

pub use self::certificates::{ACME_TLS_ALPN, Certificates};
pub use self::files::{CertificateFiles, EXPIRY_WARNING, log_loaded};
pub use self::pair::CertifiedPair;

/// Why a certificate pair was refused. Every variant names the input (file or origin).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate chain input has no usable `CERTIFICATE` block.
    #[error("{origin}: {reason}")]
    Chain {
        /// Where the chain came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key input has no usable key.
    #[error("{origin}: {reason}")]
    Key {
        /// Where the key came from.
        origin: String,
        /// What is wrong with it (never the key material).
        reason: String,
    },
    /// The key is not the one the leaf certificate was issued for.
    #[error("{key} does not match the certificate in {chain} (the leaf's public key differs)")]
    Mismatch {
        /// Where the chain came from.
        chain: String,
        /// Where the key came from.
        key: String,
    },
    /// The leaf certificate is outside its validity period.
    #[error("{origin}: the certificate {state} ({})", httpdate::fmt_http_date(*at))]
    Validity {
        /// Where the chain came from.
        origin: String,
        /// "expired" or "is not valid yet".
        state: &'static str,
        /// notAfter or notBefore.
        at: SystemTime,
    },
}
