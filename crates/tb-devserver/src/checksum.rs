//! Firmware checksums as ThingsBoard computes them (spec 11.1): tb-core's.
//!
//! Design: the algorithm names and Guava's byte order are one rule with one home, tb-core's
//! `firmware` module, which the client checks downloads with. An earlier copy here was kept
//! "so a client is not checked against itself", but what catches a wrong rule is a known
//! answer, not a second copy written by the same hand: tb-core's tests pin the published
//! check values (SMHasher, CRC-32 `0xCBF43926`, FIPS vectors) in Guava's order, and the dev
//! server's tests pin the pushed `fw_checksum`. The dependency points down (tb-core is
//! `no_std`, sans-IO, and knows nothing of the server) and adds no crate to the lock file.

pub use tb_core::firmware::{ChecksumAlgorithm, UnknownAlgorithm};
