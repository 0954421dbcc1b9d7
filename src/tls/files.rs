//! A certificate pair read from two files (`--tls-cert`, `--tls-key`), loaded at start and on
//! every change the watcher sees; a refused pair keeps the one being served.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::{Certificates, CertifiedPair, TlsError};

/// Warn about expiry this long before it.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The certificate chain and key files, and the live certificates they feed.
#[derive(Clone, Debug)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl CertificateFiles {
    /// Reads and checks the pair.
    pub fn load(&self) -> Result<CertifiedPair, TlsError> {
        let chain = read(&self.cert)?;
        let key = read(&self.key)?;
        CertifiedPair::from_named_pem(
            &chain,
            &self.cert.display().to_string(),
            &key,
            &self.key.display().to_string(),
        )
    }

    /// Loads the pair into `certificates` if it changed; a refused pair is logged and recorded,
    /// and the served one stays. Returns whether the files held a usable pair.
    pub async fn reload(&self, certificates: &Certificates, cause: &'static str) -> bool {
        let files = self.clone();
        let loaded = tokio::task::spawn_blocking(move || files.load()).await;
        let pair = match loaded {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => {
                warn!(cause, %error, "certificate reload failed; still serving the last good certificate");
                certificates.record_failure(error.to_string());
                return false;
            }
            Err(join_error) => {
                warn!(cause, error = %join_error, "certificate reload task failed");
                certificates.record_failure(join_error.to_string());
                return false;
            }
        };
        if certificates
            .current()
            .is_some_and(|current| current.same_as(&pair))
        {
            debug!(cause, "certificate unchanged");
            certificates.record_unchanged();
            return true;
        }
        log_loaded(&pair, cause);
        certificates.install(pair);
        true
    }
}

/// Logs a certificate being put in service, and warns when it expires within
/// [`EXPIRY_WARNING`].
pub fn log_loaded(pair: &CertifiedPair, cause: &'static str) {
    info!(
        cause,
        origin = pair.origin(),
        subject = pair.subject(),
        names = crate::log::list(pair.names()),
        serial = pair.serial(),
        not_after = %httpdate::fmt_http_date(pair.not_after()),
        "serving certificate"
    );
    warn_if_expiring(pair);
}

/// Warns when `pair` expires within [`EXPIRY_WARNING`].
pub(super) fn warn_if_expiring(pair: &CertifiedPair) {
    let left = pair
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if left < EXPIRY_WARNING {
        warn!(
            origin = pair.origin(),
            not_after = %httpdate::fmt_http_date(pair.not_after()),
            days_left = left.as_secs() / 86_400,
            "the serving certificate expires soon; renew it"
        );
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}
