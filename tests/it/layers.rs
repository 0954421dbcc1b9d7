//! The import graph follows the pipeline: keys -> document -> store -> server/watcher -> app.
//! No module may import one that sits above it (or beside it), so data and imports flow one way.
//! A new module must be given its place in `RANKS`.

use std::path::Path;

/// Each top-level module and its place in the pipeline; a module may import only modules with a
/// lower rank.
const RANKS: &[(&str, u8)] = &[
    // Inputs and leaves.
    ("keys", 0),
    ("issuer", 0),
    ("shutdown", 0),
    ("dev", 0),
    ("log", 0),
    ("retry", 0),
    // Self-contained tools: a health probe and the IAM thumbprint of a TLS chain.
    // Needs shutdown (also rank 0, but a leaf of it).
    ("listener", 1),
    // keys + issuer -> documents.
    ("document", 1),
    // keys + issuer -> tokens minted, fetched and verified (IRSA).
    ("token", 1),
    // Where the mirror publishes (bucket, keys, settings): a description, like the issuer.
    ("bucket", 1),
    // The serving certificate (pair, live resolver, files): an input like the keys.
    ("tls", 1),
    // issuerd's own TLS clients (the container health probe, the IAM thumbprint), on tls::client.
    ("probe", 2),
    ("thumbprint", 2),
    // documents -> published snapshots.
    ("store", 2),
    // Tokens -> the IRSA generators and the issuer doctor.
    ("irsa", 2),
    ("check", 2),
    // Readers and the writer of the store; the STS endpoint, a reader of issuers over HTTP.
    ("server", 3),
    ("watcher", 3),
    ("sts", 3),
    ("mirror", 3),
    // Writes certificates into the live store of the TLS listener (tls), like the watcher.
    ("acme", 3),
    // Configuration, then the wiring of everything.
    ("cli", 4),
    ("config", 5),
    ("app", 6),
];

/// Configuration describes the inputs; it must not reach into the runtime (store, server, ...).
const CONFIGURATION: [&str; 2] = ["cli", "config"];
// listener: `--dev` on port 0 binds its socket while the configuration is resolved.
const CONFIGURATION_MAY_IMPORT: [&str; 7] =
    ["cli", "issuer", "keys", "dev", "bucket", "tls", "listener"];

fn rank(module: &str) -> u8 {
    RANKS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, rank)| *rank)
        .unwrap_or_else(|| panic!("module `{module}` has no place in RANKS (tests/it/layers.rs)"))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut edges = 0;
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let target: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if target.is_empty() || target == module {
                continue;
            }
            edges += 1;
            if rank(&target) >= rank(&module) {
                violations.push(format!("{} imports {target}", relative.display()));
            }
            if CONFIGURATION.contains(&module.as_str())
                && !CONFIGURATION_MAY_IMPORT.contains(&target.as_str())
            {
                violations.push(format!(
                    "{} (configuration) imports runtime module {target}",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        edges > 10,
        "found only {edges} imports: is the scan broken?"
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_store_knows_nothing_of_http() {
    let store = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store.rs"))
        .unwrap()
        .to_ascii_lowercase();
    for word in ["http1", "http/1", "hyper", "headervalue", "\\r\\n"] {
        assert!(!store.contains(word), "store.rs mentions {word:?}");
    }
}

#[test]
fn lib_rs_maps_every_public_module() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let map: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(
        modules.len() > 10,
        "found only {modules:?}: is the scan broken?"
    );
    let missing: Vec<_> = modules
        .iter()
        .filter(|m| !map.contains(&format!("[`{m}`]")))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's map has no bullet for {missing:?}"
    );
}

/// Inside the server, the HTTP/2 engine is on its own: it does not reach into the HTTP/1.1 loop
/// (which hands h2c over to it, and may name its preface).
#[test]
fn the_http2_engine_does_not_import_the_http1_loop() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/http2");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() > 3, "found only {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("use ")) {
            assert!(
                !line.contains("http1"),
                "{} imports the HTTP/1.1 loop: {line}",
                file.display()
            );
        }
    }
}
