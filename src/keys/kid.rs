//! Key IDs: base64url (no padding) of SHA-256 over the DER SubjectPublicKeyInfo, as kube-apiserver
//! computes them (`keyIDFromPublicKey` in `pkg/serviceaccount/jwt.go`).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Returns the Kubernetes key ID of a public key given as canonical DER SubjectPublicKeyInfo.
pub fn key_id(spki_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, spki_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_43_chars_of_base64url() {
        let kid = key_id(b"anything");
        assert_eq!(kid.len(), 43);
        assert!(
            kid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn kid_depends_on_every_byte() {
        assert_ne!(key_id(b"spki-a"), key_id(b"spki-b"));
    }
}
