//! Logging conventions shared by every module: how a list is recorded as a field.

/// A list as a log field: a JSON array in JSON logs when tracing's `valuable` support is compiled
/// in (`--cfg tracing_unstable`, set in `.cargo/config.toml`), its `Debug` form otherwise (a
/// build with its own `RUSTFLAGS`, which replace that setting).
#[cfg(tracing_unstable)]
#[allow(clippy::ptr_arg)] // valuable lists are Vecs; a slice would have to be borrowed twice
pub fn list<T: valuable::Valuable>(items: &Vec<T>) -> impl tracing::Value + '_ {
    tracing::field::valuable(items)
}

/// A list as a log field: its `Debug` form (this build lacks `--cfg tracing_unstable`, which
/// records it as a JSON array in JSON logs).
#[cfg(not(tracing_unstable))]
#[allow(clippy::ptr_arg)] // the same signature as with `tracing_unstable`
pub fn list<T: std::fmt::Debug>(items: &Vec<T>) -> impl tracing::Value + '_ {
    tracing::field::debug(items)
}
