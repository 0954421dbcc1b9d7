//! `[server] workers`: how the issuer listener's connections are run ([`crate::server::workers`]
//! runs them).

use std::num::NonZeroUsize;

/// The most worker threads.
pub const MAX_WORKERS: usize = 1024;
/// The most workers `auto` starts, however many cores the node has: a JWKS server needs no
/// more, and each worker's counters then have a shard of their own.
pub const MAX_AUTO_WORKERS: usize = 16;

/// How connections are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Workers {
    /// One worker per core this process may use ([`std::thread::available_parallelism`]:
    /// CPU affinity and cgroup CPU quotas included), at most [`MAX_AUTO_WORKERS`].
    #[default]
    Auto,
    /// This many workers.
    Count(NonZeroUsize),
    /// The process's multi-thread runtime, shared by every connection.
    Shared,
}

impl Workers {
    /// The worker threads to start; `None` for [`Workers::Shared`].
    pub fn threads(self) -> Option<NonZeroUsize> {
        match self {
            Self::Auto => {
                let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
                NonZeroUsize::new(cores.min(MAX_AUTO_WORKERS))
            }
            Self::Count(n) => Some(n),
            Self::Shared => None,
        }
    }
}

impl std::str::FromStr for Workers {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "auto" => Ok(Self::Auto),
            "shared" => Ok(Self::Shared),
            number => match number.parse::<usize>() {
                Ok(n @ 1..=MAX_WORKERS) => Ok(Self::Count(NonZeroUsize::new(n).expect("n >= 1"))),
                _ => Err(format!(
                    "{value:?}: give auto (one per core), shared (one multi-thread runtime), or a \
                     number from 1 to {MAX_WORKERS}"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auto_shared_and_counts() {
        assert_eq!("auto".parse(), Ok(Workers::Auto));
        assert_eq!(" shared ".parse(), Ok(Workers::Shared));
        assert_eq!(
            "3".parse(),
            Ok(Workers::Count(NonZeroUsize::new(3).unwrap()))
        );
        for bad in ["0", "1025", "-1", "two", ""] {
            let error = bad.parse::<Workers>().unwrap_err();
            assert!(error.contains("auto") && error.contains("1024"), "{error}");
        }
        assert!(Workers::Auto.threads().unwrap().get() >= 1);
        assert_eq!(Workers::Shared.threads(), None);
    }
}
