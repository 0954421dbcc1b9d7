//! Unit tests: backoff, status, sync against an in-memory sink.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::issuer::{DiscoveryProfile, Publication};
use crate::keys::{KeySet, PublicKey};
use crate::store::Snapshot;

const EC256: &str = include_str!("../../tests/fixtures/keys/ec256.pub.pem");
const EC384: &str = include_str!("../../tests/fixtures/keys/ec384.pub.pem");

fn issuer(url: &str, jwks: Option<&str>) -> Issuer {
    Issuer::new(url, jwks, false).unwrap()
}

fn snapshot(pem: &str, generation: u64) -> Snapshot {
    let keys = KeySet::from_public_keys(PublicKey::from_pem(pem.as_bytes()).unwrap()).unwrap();
    let publication = Publication {
        issuer: issuer("https://b.s3.eu-west-1.amazonaws.com/p", None),
        profile: DiscoveryProfile::Kubernetes,
        max_age_secs: 60,
    };
    Snapshot::build(&publication, keys, generation)
}

/// Records every call, in order.
#[derive(Default)]
struct MemorySink {
    objects: Mutex<HashMap<String, Object>>,
    log: Mutex<Vec<String>>,
}

impl ObjectSink for MemorySink {
    async fn get(&self, key: &str) -> Result<Option<Object>, MirrorError> {
        self.log.lock().unwrap().push(format!("get {key}"));
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, object: &Object) -> Result<(), MirrorError> {
        self.log.lock().unwrap().push(format!("put {key}"));
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), object.clone());
        Ok(())
    }
    async fn set_public_read(&self, key: &str) -> Result<(), MirrorError> {
        self.log.lock().unwrap().push(format!("acl {key}"));
        Ok(())
    }
}

#[tokio::test]
async fn sync_writes_jwks_first_reads_back_and_then_skips() {
    let sink = MemorySink::default();
    let (layout, _) = Layout::new(&issuer("https://h.example/p", None), "p");
    let first = snapshot(EC256, 1);
    let outcome = sync(&sink, &layout, &first, MirrorAcl::PublicRead, false)
        .await
        .unwrap();
    assert_eq!(
        outcome.written,
        [layout.jwks_key.clone(), layout.discovery_key.clone()]
    );
    let log = sink.log.lock().unwrap().clone();
    let (j, d) = (&layout.jwks_key, &layout.discovery_key);
    assert_eq!(
        log,
        [
            format!("get {j}"),
            format!("put {j}"),
            format!("acl {j}"),
            format!("get {j}"),
            format!("get {d}"),
            format!("put {d}"),
            format!("acl {d}"),
            format!("get {d}"),
        ]
    );
    let stored = sink.objects.lock().unwrap()[j].clone();
    assert_eq!(stored, Object::from_document(&first.jwks));
    assert_eq!(stored.content_type, "application/jwk-set+json");
    assert_eq!(stored.cache_control, "public, max-age=60");

    // Same snapshot again: reads only.
    sink.log.lock().unwrap().clear();
    let again = sync(&sink, &layout, &first, MirrorAcl::Default, true)
        .await
        .unwrap();
    assert!(again.written.is_empty());
    assert_eq!(sink.log.lock().unwrap().len(), 2);
    // With the ACL asked for on unchanged objects: reads and ACLs, no writes.
    sink.log.lock().unwrap().clear();
    let acl = sync(&sink, &layout, &first, MirrorAcl::PublicRead, true)
        .await
        .unwrap();
    // Reported as such, not as unchanged.
    assert_eq!(acl.acl_set, [j.clone(), d.clone()]);
    assert!(acl.unchanged.is_empty() && acl.written.is_empty());
    let log = sink.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            format!("get {j}"),
            format!("acl {j}"),
            format!("get {d}"),
            format!("acl {d}")
        ]
    );

    // A new key set changes both documents (ES256 -> ES384 changes the algorithms too).
    let second = snapshot(EC384, 2);
    let outcome = sync(&sink, &layout, &second, MirrorAcl::Default, false)
        .await
        .unwrap();
    assert_eq!(outcome.written.len(), 2);
}

#[test]
fn status_tracks_behind_and_in_sync() {
    let status = MirrorStatus::new("s3://b/p".into());
    assert!(!status.get().in_sync());
    status.pending(1);
    status.failed("boom".into());
    let state = status.get();
    assert!(state.behind_since.is_some());
    assert_eq!(state.to_json()["state"], "behind");
    assert_eq!(state.to_json()["last_error"], "boom");
    status.synced(1, 2);
    let state = status.get();
    assert!(state.in_sync());
    assert!(state.last_error.is_none() && state.behind_since.is_none());
    assert_eq!(state.writes, 2);
    status.pending(2);
    assert!(!status.get().in_sync());
}
