//! Logging conventions shared by every module: how a list is recorded as a field, and an error
//! with its causes on one line.

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

/// `error: cause: cause` on one line, for logs, `/statusz` and messages; a cause whose text the
/// message already holds is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
