//! The output of one read-and-answer step, the same for both engines: assembled in a per-thread
//! buffer (kept for the next step), written once, and whatever the transport did not take handed
//! back for the caller to finish writing.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::transport::Transport;

/// Output buffers larger than this are not kept for reuse.
const MAX_RETAINED_OUTPUT: usize = 256 * 1024;

thread_local! {
    /// Responses and frames are assembled here, written, and the buffer kept for the next step.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What one write of a step's output left to do.
pub(crate) struct Written {
    /// Output the transport did not take at once.
    pub(crate) unwritten: Vec<u8>,
    /// The transport still holds written output (a TLS stream's records): flush it.
    pub(crate) unflushed: bool,
}

impl Written {
    /// All of `out` still to write and flush (nothing was written).
    pub(crate) fn nothing_of(out: &[u8]) -> Self {
        Self {
            unwritten: out.to_vec(),
            unflushed: true,
        }
    }
}

/// Runs `step` with this thread's output buffer, empty; the buffer is kept for the next step
/// unless it grew past [`MAX_RETAINED_OUTPUT`].
pub(crate) fn with_buffer<R>(step: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    OUTPUT.with(|output| {
        let mut out = output.borrow_mut();
        out.clear();
        let result = step(&mut out);
        if out.capacity() > MAX_RETAINED_OUTPUT {
            *out = Vec::new();
        }
        result
    })
}

/// Writes `out` once. TCP sends at once; a transport that buffers (TLS) is flushed here if it
/// can be, else by the caller (`unflushed`).
pub(crate) fn write_once<T: Transport>(
    io: &mut T,
    cx: &mut Context<'_>,
    out: &[u8],
) -> io::Result<Written> {
    if out.is_empty() {
        return Ok(Written {
            unwritten: Vec::new(),
            unflushed: false,
        });
    }
    let unwritten = match Pin::new(&mut *io).poll_write(cx, out) {
        Poll::Ready(Ok(n)) => out[n..].to_vec(),
        Poll::Pending => out.to_vec(),
        Poll::Ready(Err(e)) => return Err(e),
    };
    let unflushed = !matches!(Pin::new(&mut *io).poll_flush(cx), Poll::Ready(Ok(())));
    Ok(Written {
        unwritten,
        unflushed,
    })
}
