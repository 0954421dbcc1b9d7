//! Key source paths -> the files they stand for, read whole.
//!
//! A directory is read the way Kubernetes lays out Secret and ConfigMap volumes: the visible names
//! are symlinks into a `..data` directory; `..`-prefixed entries and other hidden files are skipped.

use std::fs;
use std::path::{Path, PathBuf};

use super::KeyError;

/// One key file and its bytes.
pub(crate) struct KeyFile {
    pub(crate) path: PathBuf,
    pub(crate) contents: Vec<u8>,
}

/// Reads a source: a file yields itself, a directory every visible regular file in it, by name.
pub(crate) fn expand(source: &Path) -> Result<Vec<KeyFile>, KeyError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Read { path, source }
    };
    let metadata = fs::metadata(source).map_err(read_error(source))?;
    if !metadata.is_dir() {
        let contents = fs::read(source).map_err(read_error(source))?;
        return Ok(vec![KeyFile {
            path: source.to_owned(),
            contents,
        }]);
    }
    let mut paths = Vec::new();
    for entry in fs::read_dir(source).map_err(read_error(source))? {
        let entry = entry.map_err(read_error(source))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: `tls.key -> ..data/tls.key` is a regular file here.
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => paths.push(path),
            Ok(_) => {}
            // A dangling link mid-swap is retried by the next reload, not skipped silently.
            Err(e) => return Err(read_error(&path)(e)),
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let contents = fs::read(&path).map_err(read_error(&path))?;
            Ok(KeyFile { path, contents })
        })
        .collect()
}
