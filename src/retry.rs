//! How issuerd's background tasks (the bucket mirror, ACME) wait before retrying a failure.

use std::time::Duration;

/// Exponential backoff with jitter: between half and all of `initial * 2^(attempt-1)`, capped at
/// `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    ceiling / 2 + ceiling.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..40 {
            let ceiling = (initial * 2u32.pow(attempt.min(20) - 1)).min(max);
            let delay = backoff(initial, max, attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }
}
