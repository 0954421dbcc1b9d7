//! The server's encoded forms of a snapshot's documents: the precomputed HTTP/1.1 heads and HTTP/2
//! header blocks, and header values for `http::Response`s, built once per published generation
//! and shared by every connection.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::response_block;

use crate::document::Document;
use crate::store::{Reader, Snapshot};

/// One document with every header precomputed.
#[derive(Debug)]
pub(crate) struct EncodedDocument {
    /// Request path.
    pub(crate) path: String,
    /// Body bytes.
    pub(crate) body: Bytes,
    /// `Content-Type`.
    pub(crate) content_type: HeaderValue,
    /// Strong `ETag`.
    pub(crate) etag: HeaderValue,
    /// `Content-Length`.
    pub(crate) content_length: HeaderValue,
    /// `Cache-Control`.
    pub(crate) cache_control: HeaderValue,
    /// The HTTP/1.1 `200` status line and headers, without `Date` and the closing blank line,
    /// so the HTTP/1.1 hot path copies instead of formatting.
    pub(crate) http1_ok_head: Bytes,
    /// The same for `304 Not Modified`.
    pub(crate) http1_not_modified_head: Bytes,
    /// The HTTP/2 header block (HPACK, no dynamic table) of `200`, without `date`.
    pub(crate) h2_ok_block: Bytes,
    /// The same for `304 Not Modified`.
    pub(crate) h2_not_modified_block: Bytes,
}

impl EncodedDocument {
    fn new(document: &Document) -> Self {
        let Document {
            path,
            body,
            content_type,
            etag,
            cache_control,
        } = document;
        let common = format!(
            "etag: {etag}\r\ncache-control: {cache_control}\r\naccess-control-allow-origin: *\r\n"
        );
        let http1_ok_head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{common}",
            body.len()
        );
        let http1_not_modified_head = format!("HTTP/1.1 304 Not Modified\r\n{common}");
        let common_fields = [
            ("etag", etag.as_str()),
            ("cache-control", cache_control.as_str()),
            ("access-control-allow-origin", "*"),
        ];
        let length = body.len().to_string();
        let h2_block = |status, fields: &[(&str, &str)]| {
            let mut block = Vec::new();
            response_block::put_status(&mut block, status);
            for (name, value) in fields.iter().chain(&common_fields) {
                response_block::put_field(&mut block, name, value.as_bytes());
            }
            Bytes::from(block)
        };
        let h2_ok_block = h2_block(
            StatusCode::OK,
            &[("content-type", content_type), ("content-length", &length)],
        );
        let h2_not_modified_block = h2_block(StatusCode::NOT_MODIFIED, &[]);
        let value = |text: &str| {
            HeaderValue::from_str(text).expect("rendered header values are visible ASCII")
        };
        Self {
            path: path.clone(),
            body: body.clone(),
            content_type: value(content_type),
            etag: value(etag),
            content_length: HeaderValue::from(body.len()),
            cache_control: value(cache_control),
            http1_ok_head: Bytes::from(http1_ok_head),
            http1_not_modified_head: Bytes::from(http1_not_modified_head),
            h2_ok_block,
            h2_not_modified_block,
        }
    }
}

/// A snapshot and its encoded documents.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The snapshot these were built from (kids, generation and health for `/statusz`).
    pub(crate) snapshot: Arc<Snapshot>,
    /// The discovery document.
    pub(crate) discovery: EncodedDocument,
    /// The JWKS.
    pub(crate) jwks: EncodedDocument,
}

impl Encoded {
    fn new(snapshot: Arc<Snapshot>) -> Self {
        Self {
            discovery: EncodedDocument::new(&snapshot.discovery),
            jwks: EncodedDocument::new(&snapshot.jwks),
            snapshot,
        }
    }
}

/// Encodes each published generation once, whichever connection sees it first.
#[derive(Debug)]
pub(crate) struct Encoder {
    reader: Reader,
    newest: Mutex<Arc<Encoded>>,
}

impl Encoder {
    pub(crate) fn new(reader: Reader) -> Self {
        let newest = Mutex::new(Arc::new(Encoded::new(reader.snapshot())));
        Self { reader, newest }
    }

    /// The encoded form of the newest published snapshot.
    pub(crate) fn current(&self) -> Arc<Encoded> {
        self.encode(self.reader.snapshot())
    }

    /// A per-connection view that touches shared state only when a new snapshot was published.
    pub(crate) fn view(&self) -> View {
        let mut reader = self.reader.clone();
        let _ = reader.newer();
        View {
            reader,
            encoded: self.current(),
        }
    }

    /// The encoded form of `snapshot`, built at most once per generation (a reader that is
    /// behind gets its own, unshared encoding rather than replacing a newer one).
    fn encode(&self, snapshot: Arc<Snapshot>) -> Arc<Encoded> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        if newest.snapshot.generation == snapshot.generation {
            return Arc::clone(&newest);
        }
        let encoded = Arc::new(Encoded::new(snapshot));
        if encoded.snapshot.generation > newest.snapshot.generation {
            *newest = Arc::clone(&encoded);
        }
        encoded
    }
}

/// A connection's handle on the newest encoded snapshot: checking for a newer one is an atomic
/// load, so a request costs no lock and no shared reference count.
#[derive(Debug)]
pub(crate) struct View {
    reader: Reader,
    encoded: Arc<Encoded>,
}

impl View {
    /// The newest published snapshot, encoded.
    pub(crate) fn get(&mut self, encoder: &Encoder) -> &Encoded {
        if let Some(snapshot) = self.reader.newer() {
            self.encoded = encoder.encode(snapshot);
        }
        &self.encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::{DiscoveryProfile, Issuer, Publication};
    use crate::keys::{KeySet, PublicKey};
    use crate::store::Store;

    fn keys(pem: &str) -> KeySet {
        KeySet::from_public_keys(PublicKey::from_pem(pem.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn each_generation_is_encoded_once_and_views_follow_publishes() {
        let publication = Publication {
            issuer: Issuer::new("https://h.example", None, false).unwrap(),
            profile: DiscoveryProfile::Kubernetes,
            max_age_secs: 60,
        };
        let store = Store::new(
            publication,
            keys(include_str!("../../tests/fixtures/keys/ec256.pub.pem")),
        );
        let encoder = Encoder::new(store.reader());
        let mut view = encoder.view();
        let first = encoder.current();
        assert!(Arc::ptr_eq(&first, &encoder.current()));
        assert_eq!(view.get(&encoder).snapshot.generation, 1);
        let head = String::from_utf8(first.jwks.http1_ok_head.to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\n"));
        assert!(head.contains(&format!("content-length: {}\r\n", first.jwks.body.len())));
        assert!(head.contains("cache-control: public, max-age=60\r\n"));

        store.publish(keys(include_str!(
            "../../tests/fixtures/keys/ec384.pub.pem"
        )));
        let second = view.get(&encoder);
        assert_eq!(second.snapshot.generation, 2);
        assert_ne!(second.jwks.etag, first.jwks.etag);
        assert!(std::ptr::eq(second, &*encoder.current()));
    }
}
