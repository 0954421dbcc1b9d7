//! Key source paths -> the files they stand for, read whole.
//!
//! A directory is read the way Kubernetes lays out Secret and ConfigMap volumes: the visible names
//! are symlinks into a `..data` directory; `..`-prefixed entries and other hidden files are skipped.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{KeyError, Reason};

/// Larger files are refused unread: a key bundle of hundreds of keys is a few hundred KiB.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

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
        return Ok(vec![read(source)?]);
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
    paths.iter().map(|path| read(path)).collect()
}

fn read(path: &Path) -> Result<KeyFile, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let too_large = |size| KeyError::Rejected {
        path: path.to_owned(),
        location: None,
        reason: Reason::TooLarge(size),
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        // A FIFO would block the reload forever; a device could be endless.
        return Err(KeyError::Rejected {
            path: path.to_owned(),
            location: None,
            reason: Reason::Malformed("not a regular file".into()),
        });
    }
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    // The file may grow between the stat and the read: never read more than the limit.
    let mut contents = Vec::with_capacity(metadata.len() as usize);
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut contents))
        .map_err(read_error)?;
    if contents.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(too_large(contents.len() as u64));
    }
    Ok(KeyFile {
        path: path.to_owned(),
        contents,
    })
}
