//! Connection timeouts and limits, with their defaults: what the engines and the accept loop
//! are configured with.

use std::time::Duration;

use crate::listener;

/// Connection timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Time a client has to finish a request head once it has sent its first byte (408 after).
    pub header_read: Duration,
    /// Time an idle keep-alive connection is kept (nginx's default is 75 s).
    pub keep_alive: Duration,
    /// Time a response may take to be written; a client that stops reading is cut off after it.
    pub write: Duration,
    /// Time a closing connection spends draining input it will not read, so the kernel does not
    /// reset the connection before the client has read the response.
    pub linger: Duration,
}

impl Timeouts {
    /// The defaults, the only copy: the flags, the config file and the engines all start here.
    pub const DEFAULT: Self = Self {
        header_read: Duration::from_secs(30),
        keep_alive: Duration::from_secs(75),
        write: Duration::from_secs(30),
        linger: Duration::from_secs(2),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Default time an HTTP/2 client has to send its preface and SETTINGS.
pub const DEFAULT_H2_HANDSHAKE: Duration = Duration::from_secs(10);

/// Connection limits beyond the timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Time an HTTP/2 client has, from the start of the connection, to send its preface and
    /// SETTINGS; it is closed after that.
    pub h2_handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: listener::default_max_connections(),
            h2_handshake: DEFAULT_H2_HANDSHAKE,
        }
    }
}
