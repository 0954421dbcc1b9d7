//! The `--acme-cache` directory: account credentials, certificate chain and key, each written
//! atomically with mode 0600, so a restart reuses them instead of ordering again.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};

use super::AcmeError;
use super::certificate::Issued;

/// The account file.
pub const ACCOUNT_FILE: &str = "account.json";
/// The certificate chain file (PEM, leaf first).
pub const CERTIFICATE_FILE: &str = "certificate.pem";
/// The certificate's private key file (PEM, PKCS#8).
pub const KEY_FILE: &str = "private-key.pem";

/// The account as cached: tied to the directory it was created on.
#[derive(Serialize, Deserialize)]
pub(super) struct CachedAccount {
    /// The ACME directory URL.
    directory: String,
    /// instant-acme's opaque credentials (account URL and key).
    credentials: AccountCredentials,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir`, created (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Self, AcmeError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| AcmeError::Cache {
                path: dir.to_owned(),
                action: "create",
                source,
            })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Path of `file` in the cache.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The cached account for `directory`; `None` when there is none or it is for another one.
    pub fn account(&self, directory: &str) -> Result<Option<AccountCredentials>, AcmeError> {
        let Some(bytes) = self.read(ACCOUNT_FILE)? else {
            return Ok(None);
        };
        let path = self.path(ACCOUNT_FILE);
        let cached: CachedAccount =
            serde_json::from_slice(&bytes).map_err(|e| AcmeError::CacheContent {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if cached.directory != directory {
            tracing::info!(
                path = %path.display(),
                cached = %cached.directory,
                directory,
                "cached ACME account is for another directory, creating a new account"
            );
            return Ok(None);
        }
        Ok(Some(cached.credentials))
    }

    /// Saves the account.
    pub fn save_account(
        &self,
        directory: &str,
        credentials: AccountCredentials,
    ) -> Result<(), AcmeError> {
        let cached = CachedAccount {
            directory: directory.to_owned(),
            credentials,
        };
        let json = serde_json::to_vec_pretty(&cached).map_err(|e| AcmeError::CacheContent {
            path: self.path(ACCOUNT_FILE),
            reason: e.to_string(),
        })?;
        self.write(ACCOUNT_FILE, &json)
    }

    /// Removes the cached account (the server no longer knows it).
    pub fn forget_account(&self) -> Result<(), AcmeError> {
        let path = self.path(ACCOUNT_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AcmeError::Cache {
                path,
                action: "remove",
                source,
            }),
        }
    }

    /// The cached certificate, if both files are there; a pair that does not parse, match or is
    /// expired is an error (the caller logs it and orders a new one).
    pub fn certificate(&self) -> Result<Option<Issued>, AcmeError> {
        let (Some(chain), Some(key)) = (self.read(CERTIFICATE_FILE)?, self.read(KEY_FILE)?) else {
            return Ok(None);
        };
        let text = |file: &str, bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|_| AcmeError::CacheContent {
                path: self.path(file),
                reason: "not UTF-8 PEM".into(),
            })
        };
        let chain_origin = self.path(CERTIFICATE_FILE).display().to_string();
        let key_origin = self.path(KEY_FILE).display().to_string();
        Issued::from_pem(
            text(CERTIFICATE_FILE, chain)?,
            &chain_origin,
            text(KEY_FILE, key)?,
            &key_origin,
        )
        .map(Some)
    }

    /// Saves a certificate: the key first, then the chain, each replaced atomically; a crash in
    /// between leaves a pair that does not match, which the next start rejects and reorders.
    pub fn save_certificate(&self, issued: &Issued) -> Result<(), AcmeError> {
        self.write(KEY_FILE, issued.key_pem().as_bytes())?;
        self.write(CERTIFICATE_FILE, issued.chain_pem.as_bytes())
    }

    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, AcmeError> {
        let path = self.path(file);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AcmeError::Cache {
                path,
                action: "read",
                source,
            }),
        }
    }

    /// Writes `bytes` to a temporary file (mode 0600) beside `file`, syncs it, renames it over.
    fn write(&self, file: &str, bytes: &[u8]) -> Result<(), AcmeError> {
        let path = self.path(file);
        let error = |source| AcmeError::Cache {
            path: path.clone(),
            action: "write",
            source,
        };
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir).map_err(error)?;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
        temp.write_all(bytes).map_err(error)?;
        temp.as_file().sync_all().map_err(error)?;
        temp.persist(&path).map_err(|e| error(e.error))?;
        Ok(())
    }
}
