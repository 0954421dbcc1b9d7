//! `serve --dev`: an ephemeral RSA key pair in a private temporary directory.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};

/// The generated key; the directory and key are deleted when this is dropped.
#[derive(Debug)]
pub struct DevKey {
    /// Held only so the directory lives as long as the key is served.
    _dir: tempfile::TempDir,
    private_key: PathBuf,
}

/// Why the dev key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    /// Key generation failed.
    #[error("cannot generate the development key pair")]
    Generate,
    /// The key could not be written.
    #[error("cannot write the development key")]
    Write(#[source] std::io::Error),
}

impl DevKey {
    /// Generates an RSA 2048 key and writes it as PKCS#8 PEM, mode 0600, in a new 0700 directory.
    pub fn generate() -> Result<Self, DevKeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| DevKeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| DevKeyError::Generate)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let dir = tempfile::Builder::new()
            .prefix("issuerd-dev-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(DevKeyError::Write)?;
        let private_key = dir.path().join("sa.key");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_key)
            .map_err(DevKeyError::Write)?;
        file.write_all(pem.as_bytes()).map_err(DevKeyError::Write)?;
        Ok(Self {
            _dir: dir,
            private_key,
        })
    }

    /// The private key file (serve publishes its public half).
    pub fn private_key(&self) -> &Path {
        &self.private_key
    }
}
