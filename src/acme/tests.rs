//! Unit tests: backoff, the cache (modes, round trip, mismatched pairs), renewal dates.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};

use super::*;

fn self_signed(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn issued_names_and_renewal_date() {
    let (chain, key) = self_signed(&["issuer.example", "b.example"]);
    let issued = Issued::from_pem(chain, "test", key, "test").unwrap();
    assert!(issued.covers(&["ISSUER.example".into(), "b.example".into()]));
    assert!(!issued.covers(&["issuer.example".into(), "c.example".into()]));
    let due = issued.renewal_due(Duration::from_secs(3600));
    assert_eq!(
        issued.pair.not_after().duration_since(due).unwrap(),
        Duration::from_secs(3600)
    );
}

#[test]
fn mismatched_key_is_refused_naming_the_files() {
    let (chain, _) = self_signed(&["issuer.example"]);
    let (_, other_key) = self_signed(&["issuer.example"]);
    let error =
        Issued::from_pem(chain, "/c/certificate.pem", other_key, "/c/private-key.pem").unwrap_err();
    let text = chain_text(&error);
    assert!(
        text.contains("/c/certificate.pem") && text.contains("/c/private-key.pem"),
        "{text}"
    );
}

fn chain_text(error: &AcmeError) -> String {
    crate::log::error_chain(error)
}

#[test]
fn cache_round_trip_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("acme");
    let cache = Cache::open(&root).unwrap();
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(cache.certificate().unwrap().is_none());
    let (chain, key) = self_signed(&["issuer.example"]);
    let issued = Issued::from_pem(chain, "test", key, "test").unwrap();
    cache.save_certificate(&issued).unwrap();
    for file in [CERTIFICATE_FILE, KEY_FILE] {
        let mode = std::fs::metadata(cache.path(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let back = cache.certificate().unwrap().unwrap();
    assert_eq!(back.pair.serial(), issued.pair.serial());
    // Only the temporary files' renames: nothing else is left in the directory.
    let mut names = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, [CERTIFICATE_FILE, KEY_FILE]);
}

#[test]
fn a_half_replaced_pair_in_the_cache_is_an_error_not_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let (chain, key) = self_signed(&["issuer.example"]);
    cache
        .save_certificate(&Issued::from_pem(chain, "t", key, "t").unwrap())
        .unwrap();
    let (_, new_key) = self_signed(&["issuer.example"]);
    std::fs::write(cache.path(KEY_FILE), new_key).unwrap();
    assert!(matches!(
        cache.certificate(),
        Err(AcmeError::Certificate(_))
    ));
}

#[test]
fn a_corrupt_account_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    std::fs::write(cache.path(ACCOUNT_FILE), "{not json").unwrap();
    let error = cache.account("https://acme.example/dir").err().unwrap();
    assert!(chain_text(&error).contains(ACCOUNT_FILE));
}

fn settings(cache: &std::path::Path, domains: &[&str]) -> Settings {
    Settings {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        email: None,
        directory: "https://acme.invalid/dir".into(),
        directory_ca: None,
        cache: cache.to_owned(),
        renew_before: Duration::from_secs(30 * 24 * 3600),
        initial_backoff: DEFAULT_INITIAL_BACKOFF,
        max_backoff: DEFAULT_MAX_BACKOFF,
        order_timeout: DEFAULT_ORDER_TIMEOUT,
    }
}

#[test]
fn a_cached_certificate_is_served_at_once_only_if_it_names_every_domain() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let (chain, key) = self_signed(&["issuer.example"]);
    let issued = Issued::from_pem(chain, "t", key, "t").unwrap();
    let serial = issued.pair.serial().to_owned();
    cache.save_certificate(&issued).unwrap();

    let certificates = Certificates::default();
    let status = AcmeStatus::default();
    let acme = Acme::new(
        settings(dir.path(), &["issuer.example"]),
        certificates.clone(),
        status.clone(),
    )
    .unwrap();
    assert!(acme.is_serving());
    assert_eq!(certificates.current().unwrap().serial(), serial);
    let state = status.get();
    assert_eq!(state.source, Some("cache"));
    assert_eq!(state.serial.as_deref(), Some(serial.as_str()));
    assert_eq!(
        state.next_attempt,
        Some(issued.renewal_due(Duration::from_secs(30 * 24 * 3600)))
    );

    let certificates = Certificates::default();
    let acme = Acme::new(
        settings(dir.path(), &["issuer.example", "other.example"]),
        certificates.clone(),
        AcmeStatus::default(),
    )
    .unwrap();
    assert!(!acme.is_serving());
    assert!(certificates.current().is_none());
}

#[test]
fn the_cached_account_is_reused_only_on_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let credentials = |directory: &str| {
        serde_json::from_value::<instant_acme::AccountCredentials>(serde_json::json!({
            "id": "https://ca.example/acct/1",
            "key_pkcs8": "AAAA",
            "directory": directory,
        }))
        .unwrap()
    };
    cache
        .save_account(
            "https://a.example/dir",
            credentials("https://a.example/dir"),
        )
        .unwrap();
    let mode = std::fs::metadata(cache.path(ACCOUNT_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(cache.account("https://a.example/dir").unwrap().is_some());
    assert!(cache.account("https://b.example/dir").unwrap().is_none());
    cache.forget_account().unwrap();
    assert!(cache.account("https://a.example/dir").unwrap().is_none());
}
