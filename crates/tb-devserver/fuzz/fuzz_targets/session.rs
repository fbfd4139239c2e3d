//! Arbitrary bytes into a dev server MQTT session, as if read from a socket: decode, handle,
//! answer, time out. The first byte steers (see `tb_devserver::fuzzing::session`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_devserver::fuzzing::session(data));
