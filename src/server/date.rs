//! The `Date` header line, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`
const LINE_LEN: usize = 37;

thread_local! {
    static CACHED: RefCell<(u64, [u8; LINE_LEN])> = const { RefCell::new((u64::MAX, [0; LINE_LEN])) };
}

/// Appends the current `date: …\r\n` header line.
pub(crate) fn append_date_line(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let line = format!("date: {}\r\n", httpdate::fmt_http_date(now));
            cached.1.copy_from_slice(&line.as_bytes()[..LINE_LEN]);
            cached.0 = second;
        }
        out.extend_from_slice(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_line_is_an_http_date() {
        let mut out = Vec::new();
        append_date_line(&mut out);
        let line = std::str::from_utf8(&out).unwrap();
        let value = line
            .strip_prefix("date: ")
            .unwrap()
            .strip_suffix("\r\n")
            .unwrap();
        let parsed = httpdate::parse_http_date(value).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew.as_secs() <= 2, "{line}");
    }
}
