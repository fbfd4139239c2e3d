//! Arbitrary bytes into the dev server's lenient JSON parser and payload typing; what parses
//! must write back as JSON that parses to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_devserver::fuzzing::json(data));
