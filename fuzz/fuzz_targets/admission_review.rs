//! Request bodies through the IRSA webhook's core (decode, mutate, answer): see
//! `issuerd_fuzz::admission_review`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| issuerd_fuzz::admission_review(data));
