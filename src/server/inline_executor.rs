//! The executor hyper's h2 server runs each stream on: the stream is polled once in place, on
//! the connection's task, and spawned only if it has to wait. Every response issuerd sends is
//! ready at once (precomputed bytes), so a stream normally completes in that first poll and the
//! task spawn (allocation, scheduling, a wake-up on another worker) per request is saved.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Polls a future once inline; spawns it on the tokio runtime if it is not done.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InlineFirst;

impl<F> hyper::rt::Executor<F> for InlineFirst
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let mut future = Box::pin(future);
        // A no-op waker is enough: a future that is not done is spawned, and the task's first
        // poll registers its real waker before anything can be missed.
        if poll_once(future.as_mut()).is_pending() {
            tokio::spawn(future);
        }
    }
}

fn poll_once<F: Future<Output = ()>>(future: Pin<&mut F>) -> Poll<()> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_ready_future_runs_inline_and_a_waiting_one_is_spawned() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        InlineFirst.execute(async move { flag.store(true, Ordering::SeqCst) });
        assert!(done.load(Ordering::SeqCst), "ran before execute returned");

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
        InlineFirst.execute(async move {
            rx.await.unwrap();
            finished_tx.send(()).unwrap();
        });
        tx.send(()).unwrap();
        // Woken through the spawned task's real waker, not the no-op one of the first poll.
        tokio::time::timeout(std::time::Duration::from_secs(5), finished_rx)
            .await
            .expect("the waiting future was spawned and woken")
            .unwrap();
    }
}
