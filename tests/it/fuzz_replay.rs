//! Replays the committed fuzz corpora (`fuzz/corpus/h2_connection`, `fuzz/corpus/hpack_decoder`,
//! `fuzz/corpus/iam_map`, `fuzz/corpus/admission_review`) through the invariant checks the fuzz
//! targets run (`fuzz/src/lib.rs`, included here), on the stable toolchain: what the fuzzer once
//! reached stays checked by `cargo test`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

// The fuzz crate's library, whose items are `pub` there.
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// Runs every file of `fuzz/corpus/<target>` through `check`; fails if the directory is
/// missing or empty, and names every input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} cannot be read: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "corpus {} is empty", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).expect("a corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&data)))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {target} fail (each panic is printed above): {failed:#?}",
        failed.len(),
        inputs.len()
    );
}

#[test]
fn the_h2_connection_corpus_keeps_every_invariant() {
    replay("h2_connection", checks::h2_connection);
}

#[test]
fn the_hpack_decoder_corpus_agrees_with_loona_hpack() {
    replay("hpack_decoder", checks::hpack_decoder);
}

#[test]
fn the_iam_map_corpus_keeps_every_invariant() {
    replay("iam_map", checks::iam_map);
}

#[test]
fn the_admission_review_corpus_is_answered_and_patched_idempotently() {
    replay("admission_review", checks::admission_review);
}
