//! Header blocks through issuerd's HPACK decoder and loona-hpack: see
//! `issuerd_fuzz::hpack_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| issuerd_fuzz::hpack_decoder(data));
