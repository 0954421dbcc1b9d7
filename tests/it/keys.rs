//! Key loading: every accepted form, every refusal (with the file and reason named), JWKS input,
//! Kubernetes volume layout, and no private material anywhere in the output.

use crate::common;

use std::path::{Path, PathBuf};

use common::key;
use issuerd::document::render;
use issuerd::issuer::DiscoveryProfile;
use issuerd::issuer::Issuer;
use issuerd::keys::KeySet;

fn load(paths: &[PathBuf]) -> Result<KeySet, String> {
    KeySet::load(paths).map_err(|e| e.to_string())
}

fn jwks_of(keys: &KeySet) -> String {
    let issuer = Issuer::new("https://issuer.example.com", None, false).unwrap();
    String::from_utf8(
        render(&issuer, DiscoveryProfile::Kubernetes, keys)
            .jwks
            .to_vec(),
    )
    .unwrap()
}

#[test]
fn every_form_of_a_key_gives_the_same_public_key() {
    let forms: &[(&str, &[&str])] = &[
        ("rsa2048", &["pub", "pkcs1-pub", "crt", "pkcs1", "pkcs8"]),
        ("rsa3072", &["pub", "pkcs1-pub", "crt", "pkcs1", "pkcs8"]),
        ("rsa4096", &["pub", "pkcs1-pub", "crt", "pkcs1", "pkcs8"]),
        ("ec256", &["pub", "crt", "sec1", "sec1-params", "pkcs8"]),
        ("ec384", &["pub", "crt", "sec1", "sec1-params", "pkcs8"]),
        ("ec521", &["pub", "crt", "sec1", "sec1-params", "pkcs8"]),
    ];
    for (name, forms) in forms {
        let reference = load(&[key(&format!("{name}.pub.pem"))]).unwrap();
        assert_eq!(reference.keys().len(), 1);
        for form in *forms {
            let file = format!("{name}.{form}.pem");
            let keys = load(&[key(&file)]).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(keys, reference, "{file}");
        }
    }
}

#[test]
fn algorithms_follow_key_types() {
    for (file, alg) in [
        ("rsa2048.pub.pem", "RS256"),
        ("rsa4096.pub.pem", "RS256"),
        ("ec256.pub.pem", "ES256"),
        ("ec384.pub.pem", "ES384"),
        ("ec521.pub.pem", "ES512"),
    ] {
        let keys = load(&[key(file)]).unwrap();
        assert_eq!(keys.keys()[0].algorithm().name(), alg, "{file}");
    }
}

#[test]
fn private_keys_publish_no_private_member() {
    let private = [
        "rsa2048.pkcs1.pem",
        "rsa3072.pkcs8.pem",
        "ec256.sec1.pem",
        "ec384.pkcs8.pem",
        "ec521.sec1-params.pem",
    ]
    .map(key);
    let jwks = jwks_of(&load(&private).unwrap());
    let parsed: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let keys = parsed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 5);
    for jwk in keys {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(jwk.get(member).is_none(), "{member} in {jwk}");
        }
    }
}

/// Every refusal names the file, the block where there is one, and a reason a person can act on.
#[test]
fn refused_inputs_name_the_file_and_reason() {
    let cases = [
        ("bad/rsa1024.pem", "RSA key has 1024 bits; at least 2048"),
        ("bad/ed25519.pem", "Ed25519 keys are not supported"),
        ("bad/x25519.pem", "X25519 keys are not supported"),
        ("bad/dsa.pem", "DSA keys are not supported"),
        ("bad/dsa.pkcs8.pem", "DSA keys are not supported"),
        ("bad/dsa.pub.pem", "DSA keys are not supported"),
        (
            "bad/secp256k1.pem",
            "elliptic curve secp256k1 is not supported",
        ),
        (
            "bad/secp256k1.pub.pem",
            "elliptic curve secp256k1 is not supported",
        ),
        (
            "bad/encrypted.pem",
            "encrypted private keys are not supported",
        ),
        ("bad/empty.pem", "file is empty"),
        ("bad/garbage.pem", "no PEM block found"),
        ("bad/truncated.pem", "no END line"),
        ("bad/mixed-good-and-dsa.pem", "PEM block #2"),
    ];
    for (file, reason) in cases {
        let error = load(&[key(file)]).expect_err(file);
        assert!(
            error.contains(file),
            "{file}: error does not name the file: {error}"
        );
        assert!(
            error.contains(reason),
            "{file}: expected {reason:?} in {error:?}"
        );
    }
}

#[test]
fn a_missing_file_is_named() {
    let error = load(&[key("does-not-exist.pem")]).unwrap_err();
    assert!(error.contains("does-not-exist.pem"), "{error}");
}

#[test]
fn one_bad_file_fails_the_whole_load() {
    let error = load(&[key("rsa2048.pub.pem"), key("bad/rsa1024.pem")]).unwrap_err();
    assert!(error.contains("rsa1024.pem"), "{error}");
}

/// Damaged private key files: a blank line inside the block (the pem crate would quote the
/// next line, which holds the private scalar), a corrupt base64 symbol, and a truncated key.
#[test]
fn damaged_private_keys_never_leak_into_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["ec256.sec1.pem", "rsa2048.pkcs8.pem", "ec521.pkcs8.pem"] {
        let text = std::fs::read_to_string(key(name)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let body: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let first = lines.iter().position(|l| !l.starts_with("-----")).unwrap();
        let mut blank_inside = lines.clone();
        blank_inside.insert(first + 1, "");
        let mut corrupt = text.clone();
        corrupt = corrupt.replacen(&body[1][..10], "!!!!!!!!!!", 1);
        let mut short = lines.clone();
        short.remove(first + 1);
        for (variant, contents) in [
            ("blank", blank_inside.join("\n")),
            ("corrupt", corrupt),
            ("short", short.join("\n")),
        ] {
            let path = write(tmp.path(), &format!("{variant}-{name}"), &contents);
            let error = format!(
                "{:?} / {}",
                KeySet::load(std::slice::from_ref(&path)).unwrap_err(),
                KeySet::load(&[path]).unwrap_err()
            );
            for line in &body {
                for chunk in line.as_bytes().chunks(12) {
                    let chunk = std::str::from_utf8(chunk).unwrap();
                    assert!(
                        !error.contains(chunk),
                        "{variant} {name}: leaks {chunk:?}: {error}"
                    );
                }
            }
        }
    }
}

#[test]
fn errors_never_contain_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    // A private key whose public half does not match: the base64 body must not leak.
    let good = std::fs::read_to_string(key("bad/rsa1024.pem")).unwrap();
    let body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
    let path = tmp.path().join("k.pem");
    std::fs::write(&path, &good).unwrap();
    let error = format!(
        "{:?} {}",
        KeySet::load(std::slice::from_ref(&path)).unwrap_err(),
        KeySet::load(&[path]).unwrap_err()
    );
    for chunk in body.as_bytes().chunks(16) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        assert!(!error.contains(chunk), "error leaks key material: {error}");
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn jwks_file(keys: serde_json::Value) -> String {
    serde_json::json!({ "keys": keys }).to_string()
}

#[test]
fn a_saved_jwks_is_accepted_with_its_kids() {
    let tmp = tempfile::tempdir().unwrap();
    let issued = load(&[key("rsa2048.pub.pem"), key("ec384.pub.pem")]).unwrap();
    let mut saved: serde_json::Value = serde_json::from_str(&jwks_of(&issued)).unwrap();
    saved["keys"][0]["kid"] = "custom-kid".into();
    let path = write(tmp.path(), "saved.json", &saved.to_string());
    let loaded = load(&[path]).unwrap();
    let kids: Vec<&str> = loaded.kids().collect();
    assert!(kids.contains(&"custom-kid"), "{kids:?}");
    assert_eq!(loaded.keys().len(), 2);
    let material: Vec<_> = loaded
        .keys()
        .iter()
        .map(|k| k.spki_der().to_vec())
        .collect();
    for key in issued.keys() {
        assert!(material.contains(&key.spki_der().to_vec()));
    }
}

#[test]
fn a_jwks_round_trips_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let issued = load(&[
        key("rsa3072.pub.pem"),
        key("ec521.pub.pem"),
        key("ec256lz.pub.pem"),
    ])
    .unwrap();
    let path = write(tmp.path(), "jwks.json", &jwks_of(&issued));
    assert_eq!(jwks_of(&load(&[path]).unwrap()), jwks_of(&issued));
}

#[test]
fn bad_jwks_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let issued = load(&[key("ec256.pub.pem")]).unwrap();
    let good: serde_json::Value = serde_json::from_str(&jwks_of(&issued)).unwrap();
    let jwk = good["keys"][0].clone();
    let with = |member: &str, value: serde_json::Value| {
        let mut jwk = jwk.clone();
        jwk[member] = value;
        jwks_file(serde_json::json!([jwk]))
    };
    let cases = [
        (with("d", "AAAA".into()), "private member \"d\""),
        (
            with("alg", "ES384".into()),
            "JWK alg \"ES384\" does not match",
        ),
        (
            {
                let mut jwk = jwk.clone();
                jwk["crv"] = "P-384".into();
                jwk.as_object_mut().unwrap().remove("alg");
                jwks_file(serde_json::json!([jwk]))
            },
            "must be 48 bytes",
        ),
        (with("crv", "secp256k1".into()), "elliptic curve secp256k1"),
        (with("kty", "OKP".into()), "not supported"),
        (with("use", "enc".into()), "not \"sig\""),
        (with("x", "!!".into()), "not base64url"),
        (jwks_file(serde_json::json!([])), "JWKS has no keys"),
        ("{\"keys\": 5}".to_owned(), "no \"keys\" array"),
        ("{not json".to_owned(), "invalid JSON"),
    ];
    for (i, (contents, reason)) in cases.into_iter().enumerate() {
        let path = write(tmp.path(), &format!("case{i}.json"), &contents);
        let error = load(&[path]).unwrap_err();
        assert!(error.contains(&format!("case{i}.json")), "{error}");
        assert!(
            error.contains(reason),
            "case {i}: expected {reason:?} in {error:?}"
        );
    }
    // An RSA JWK with alg ES256 and a private RSA JWK.
    let rsa = load(&[key("rsa2048.pub.pem")]).unwrap();
    let mut rsa_jwk: serde_json::Value = serde_json::from_str(&jwks_of(&rsa)).unwrap();
    rsa_jwk["keys"][0]["alg"] = "ES256".into();
    let path = write(tmp.path(), "rsa-alg.json", &rsa_jwk.to_string());
    assert!(load(&[path]).unwrap_err().contains("does not match"));
    rsa_jwk["keys"][0]["alg"] = "RS256".into();
    rsa_jwk["keys"][0]["qi"] = "AQAB".into();
    let path = write(tmp.path(), "rsa-private.json", &rsa_jwk.to_string());
    assert!(load(&[path]).unwrap_err().contains("private member \"qi\""));
}

#[test]
fn one_kid_on_two_different_keys_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = load(&[key("ec256.pub.pem")]).unwrap();
    let b = load(&[key("ec384.pub.pem")]).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&jwks_of(&b)).unwrap();
    doc["keys"][0]["kid"] = a.keys()[0].kid().into();
    let path = write(tmp.path(), "clash.json", &doc.to_string());
    let error = load(&[key("ec256.pub.pem"), path]).unwrap_err();
    assert!(error.contains("carried by two different keys"), "{error}");
    assert!(
        error.contains("clash.json") && error.contains("ec256.pub.pem"),
        "{error}"
    );
}

#[test]
fn an_empty_directory_is_an_empty_set_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let error = load(&[tmp.path().to_owned()]).unwrap_err();
    assert!(error.contains("no keys found"), "{error}");
}

#[test]
fn a_kubernetes_secret_volume_is_read_through_its_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    // The layout the kubelet writes for a Secret volume: `..<timestamp>/` holds the files,
    // `..data` links to it, and the visible names link through `..data`.
    common::kubelet_write(
        tmp.path(),
        1,
        &[
            ("sa.key", key("rsa2048.pkcs1.pem")),
            ("extra.pub", key("ec256.pub.pem")),
        ],
    );
    write(tmp.path(), ".hidden", "not a key");
    let keys = load(&[tmp.path().to_owned()]).unwrap();
    let expected = load(&[key("rsa2048.pub.pem"), key("ec256.pub.pem")]).unwrap();
    assert_eq!(keys, expected);
}

#[test]
fn oversized_files_are_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = std::fs::read_to_string(key("ec256.pub.pem")).unwrap();
    big.push_str(&"# padding\n".repeat(120_000));
    let path = write(tmp.path(), "big.pem", &big);
    let error = load(&[path]).unwrap_err();
    assert!(
        error.contains("big.pem") && error.contains("over 1 MiB"),
        "{error}"
    );
}

#[test]
fn a_fifo_is_refused_instead_of_blocking_the_load() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("key.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let error = load(&[fifo]).unwrap_err();
    assert!(
        error.contains("key.pem") && error.contains("not a regular file"),
        "{error}"
    );
}
