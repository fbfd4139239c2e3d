//! `codec::decode` on any bytes, with any size limit.
//!
//! Input: one byte choosing the limit (`16 * (b + 1)` bytes), then the bytes from the server.
//!
//! Checked: no panic; a decoded packet took at least its two header bytes, at most the input
//! and at most the limit; a PUBLISH re-encoded with the client's encoder decodes to the same
//! packet; cutting a decodable packet short always asks for more bytes.
#![no_main]

use fw_mqtt::codec::{self, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, bytes)) = data.split_first() else {
        return;
    };
    let max = 16 * (usize::from(limit) + 1);
    let Ok(Some((packet, used))) = codec::decode(bytes, max) else {
        return;
    };
    assert!(
        used >= 2 && used <= bytes.len() && used <= max,
        "{used} of {}",
        bytes.len()
    );
    for cut in 0..used {
        assert_eq!(codec::decode(&bytes[..cut], max), Ok(None), "cut at {cut}");
    }
    if let Packet::Publish {
        topic,
        pkid,
        payload,
        ..
    } = packet
    {
        let mut out = Vec::new();
        codec::publish(&mut out, topic, payload, pkid, false);
        match codec::decode(&out, usize::MAX) {
            Ok(Some((
                Packet::Publish {
                    topic: t,
                    pkid: p,
                    payload: b,
                    ..
                },
                n,
            ))) => {
                assert_eq!((t, p, b, n), (topic, pkid, payload, out.len()));
            }
            other => panic!("re-encoded PUBLISH decodes as {other:?}"),
        }
    }
});
