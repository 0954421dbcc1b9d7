//! The IAM role name kOps gives a ServiceAccount's role: `<name>.<namespace>.sa.<cluster>`, a
//! `*` in the namespace spelled `wildcard`, cut to IAM's 64 characters with a hash suffix
//! (kOps `pkg/model/iam/types.go` `IAMNameForServiceAccountRole`, `pkg/truncate/truncate.go`).
//!
//! The cut, as kOps makes it: a name of at most 64 bytes is kept as it is; a longer one keeps its
//! first 57 bytes, then `-`, then 6 characters of hash: the 32-bit FNV-1a hash of the whole
//! untruncated name, its 4 bytes (big-endian) in RFC 4648's base32 "extended hex" alphabet,
//! lower-cased, first 6 characters (the top 30 bits).

/// The longest IAM role name (kOps `MaxLengthIAMRoleName`; IAM's own limit).
pub const MAX_ROLE_NAME: usize = 64;

/// The characters of the hash suffix kOps appends when it cuts a name.
const HASH_LEN: usize = 6;

/// RFC 4648 section 7 ("base32hex"), lower case, as kOps prints it.
const BASE32_HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// The role name kOps creates for ServiceAccount `name` in `namespace` of cluster `cluster`.
///
/// kOps cuts bytes; for a name that is not ASCII (which IAM and kOps's validation refuse anyway)
/// this cuts at the character boundary at or before kOps's cut, so it never splits a character.
pub fn role_name(name: &str, namespace: &str, cluster: &str) -> String {
    let full = format!("{name}.{}.sa.{cluster}", namespace.replace('*', "wildcard"));
    truncate(&full, MAX_ROLE_NAME, false)
}

/// kOps's `TruncateString` with the default hash length: `s` itself when it fits in `max` bytes
/// (and `always_hash` is off), else its head, `-` and the hash of all of `s`, in `max` bytes.
fn truncate(s: &str, max: usize, always_hash: bool) -> String {
    if !always_hash && s.len() <= max {
        return s.to_owned();
    }
    let hash = hash(s);
    let mut keep = max.saturating_sub(hash.len() + 1).min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{hash}", &s[..keep])
}

/// kOps's `HashString(s, 6)`: FNV-1a (32 bits) of `s`, base32hex of its big-endian bytes,
/// lower case, the first [`HASH_LEN`] characters.
fn hash(s: &str) -> String {
    let h = fnv1a32(s.as_bytes());
    // Character k of the base32 text is bits 31-5k..27-5k of the hash (the 7th would be the
    // last 2 bits padded with zeros; kOps keeps 6).
    (0..HASH_LEN)
        .map(|k| char::from(BASE32_HEX[((h >> (27 - 5 * k)) & 0x1f) as usize]))
        .collect()
}

/// The 32-bit FNV-1a hash (Go's `hash/fnv.New32a`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_published_vectors() {
        // The FNV reference test vectors (draft-eastlake-fnv): "", "a", "foobar".
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    /// The expected values of kOps's own `pkg/truncate/truncate_test.go`.
    #[test]
    fn truncate_matches_kops_test_grid() {
        let cases = [
            ("foo", 64, false, "foo"),
            (
                "this_string_is_33_characters_long",
                64,
                false,
                "this_string_is_33_characters_long",
            ),
            (
                "this_string_is_33_characters_long",
                64,
                true,
                "this_string_is_33_characters_long-t4mk8d",
            ),
            (
                "this_string_is_longer_it_is_46_characters_long",
                32,
                false,
                "this_string_is_longer_it_-ha2gug",
            ),
            (
                "this_string_is_longer_it_is_46_characters_long",
                32,
                true,
                "this_string_is_longer_it_-ha2gug",
            ),
            (
                "this_string_is_even_longer_due_to_extreme_verbosity_it_is_in_fact_84_characters_long",
                64,
                false,
                "this_string_is_even_longer_due_to_extreme_verbosity_it_is-7mc0g6",
            ),
        ];
        for (input, max, always, expected) in cases {
            assert_eq!(
                truncate(input, max, always),
                expected,
                "{input} {max} {always}"
            );
        }
    }

    /// Role names in kOps's integration test outputs
    /// (`tests/integration/update_cluster/{irsa,nth-imds-processor-irsa}/kubernetes.tf`).
    #[test]
    fn role_names_match_kops_integration_outputs() {
        let cases = [
            (
                "myserviceaccount",
                "default",
                "minimal.example.com",
                "myserviceaccount.default.sa.minimal.example.com",
            ),
            (
                "myserviceaccount",
                "test-*",
                "minimal.example.com",
                "myserviceaccount.test-wildcard.sa.minimal.example.com",
            ),
            (
                "myotherserviceaccount",
                "myapp",
                "minimal.example.com",
                "myotherserviceaccount.myapp.sa.minimal.example.com",
            ),
            (
                "aws-cloud-controller-manager",
                "kube-system",
                "nthimdsprocessor.longclustername.example.com",
                "aws-cloud-controller-manager.kube-system.sa.nthimdsproces-25s838",
            ),
            (
                "aws-node-termination-handler",
                "kube-system",
                "nthimdsprocessor.longclustername.example.com",
                "aws-node-termination-handler.kube-system.sa.nthimdsproces-vt9566",
            ),
            (
                "dns-controller",
                "kube-system",
                "nthimdsprocessor.longclustername.example.com",
                "dns-controller.kube-system.sa.nthimdsprocessor.longcluste-e6uuer",
            ),
            (
                "ebs-csi-controller-sa",
                "kube-system",
                "nthimdsprocessor.longclustername.example.com",
                "ebs-csi-controller-sa.kube-system.sa.nthimdsprocessor.lon-kfj86l",
            ),
        ];
        for (name, namespace, cluster, expected) in cases {
            assert_eq!(role_name(name, namespace, cluster), expected);
        }
    }

    #[test]
    fn a_name_of_64_is_kept_and_one_of_65_is_cut_to_64() {
        // "a.b.sa." is 7 bytes: clusters of 57 and 58 bytes give 64 and 65.
        let cluster64 = format!("{}.example.com", "c".repeat(57 - 12));
        let kept = role_name("a", "b", &cluster64);
        assert_eq!(kept.len(), 64);
        assert_eq!(kept, format!("a.b.sa.{cluster64}"));

        let cluster65 = format!("{}.example.com", "c".repeat(58 - 12));
        let full = format!("a.b.sa.{cluster65}");
        let cut = role_name("a", "b", &cluster65);
        assert_eq!(cut.len(), 64);
        assert_eq!(&cut[..57], &full[..57]);
        assert_eq!(&cut[57..58], "-");
        assert_eq!(&cut[58..], hash(&full));
        // The hash is of the whole name: names that share their first 57 bytes differ.
        let other = role_name("a", "b", &format!("{}.example.org", "c".repeat(58 - 12)));
        assert_eq!(&other[..57], &cut[..57]);
        assert_ne!(other, cut);
    }

    #[test]
    fn a_long_cluster_name_is_cut_whatever_the_entry() {
        let cluster = format!("{}.example.com", "x".repeat(200));
        for (name, namespace) in [("a", "b"), ("app", "*"), ("app", "team-*")] {
            let role = role_name(name, namespace, &cluster);
            assert_eq!(role.len(), MAX_ROLE_NAME, "{role}");
            assert!(role.starts_with(&format!("{name}.")), "{role}");
            assert!(!role.contains('*'), "{role}");
        }
        assert_ne!(
            role_name("app", "*", &cluster),
            role_name("app", "team-*", &cluster)
        );
    }

    #[test]
    fn the_namespace_wildcard_is_spelled_out() {
        assert_eq!(
            role_name("app", "*", "c.example.com"),
            "app.wildcard.sa.c.example.com"
        );
        assert_eq!(
            role_name("app", "a*b*", "c.example.com"),
            "app.awildcardbwildcard.sa.c.example.com"
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 56 ASCII bytes, then a 2-byte character across kOps's cut at 57.
        let s = format!("{}é{}", "a".repeat(56), "b".repeat(20));
        let cut = truncate(&s, 64, false);
        assert!(cut.len() <= 64);
        assert!(cut.starts_with(&"a".repeat(56)));
        assert_eq!(cut.len(), 56 + 1 + HASH_LEN);
    }
}
