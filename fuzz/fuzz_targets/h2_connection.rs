//! A client's bytes, in chunks, through one HTTP/2 connection: see `issuerd_fuzz::h2_connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| issuerd_fuzz::h2_connection(data));
