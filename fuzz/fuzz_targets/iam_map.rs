//! IAM map texts (kOps Cluster manifests, standalone maps) through issuerd's parser: see
//! `issuerd_fuzz::iam_map`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| issuerd_fuzz::iam_map(data));
