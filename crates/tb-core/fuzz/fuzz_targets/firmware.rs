//! Firmware chunk handling: a download in progress fed any sequence of chunk responses,
//! errors, stray topics, timeouts and reconnects.
//!
//! Input: byte 0 picks the checksum algorithm (low 3 bits) and the chunk size (next 2 bits:
//! 0, 1, 7 or 64 bytes); byte 1 is the announced image size (0..=255). The rest is a list of
//! steps, each one op byte and, for ops that carry one, a length byte and that many payload
//! bytes. Ops (low 3 bits): 0 answer the last chunk request on its own topic, 1 the same on
//! another request id, 2 another chunk index, 3 an error on `v2/fw/error`, 4 a stray publish
//! on a topic taken from the payload, 5 a reconnect, 6 let time pass beyond the chunk timeout,
//! 7 a new offer for other firmware.
//!
//! Checked: no panic; chunks come in order without gaps or overlap and never exceed the
//! announced size; a download ends at most once (Verified or Failed), and Verified only when
//! every byte arrived; nothing is requested for a download that ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tb_core::{ChecksumAlgorithm, Config, Device, FirmwareConfig, FirmwareEvent, Transmit};

/// The last chunk request the device sent: (request id, chunk index).
fn drain(dev: &mut Device, now: u64, last: &mut Option<(String, String)>) -> usize {
    let mut requests = 0;
    while let Some(tx) = dev.poll_transmit(now) {
        if let Transmit::Publish(p) = tx {
            if let Some(rest) = p.topic.strip_prefix("v2/fw/request/") {
                let mut parts = rest.split("/chunk/");
                let req = parts.next().unwrap_or_default().to_string();
                let idx = parts.next().unwrap_or_default().to_string();
                *last = Some((req, idx));
                requests += 1;
            }
            dev.handle_puback(p.id);
        }
    }
    requests
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let algorithm = ChecksumAlgorithm::ALL[(data[0] & 7) as usize % ChecksumAlgorithm::ALL.len()];
    let chunk_size = [0, 1, 7, 64][((data[0] >> 3) & 3) as usize];
    let size = u64::from(data[1]);
    let mut dev = Device::new(Config {
        firmware: FirmwareConfig {
            chunk_size,
            chunk_timeout_ms: 1_000,
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    let mut now = 0u64;
    dev.handle_connected();
    let mut last = None;
    drain(&mut dev, now, &mut last);
    let offer = |version: u32| {
        json!({
            "fw_title": "image.bin",
            "fw_version": version.to_string(),
            "fw_size": size,
            "fw_checksum": "00",
            "fw_checksum_algorithm": algorithm.name(),
        })
        .to_string()
    };
    let mut version = 1;
    dev.handle_publish(now, "v1/devices/me/attributes", offer(version).as_bytes());
    drain(&mut dev, now, &mut last);

    let mut written = 0u64;
    let mut ended = false;
    let mut rest = &data[2..];
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let payload: &[u8] = if matches!(op & 7, 0..=4) {
            let Some((&len, tail)) = rest.split_first() else {
                break;
            };
            let n = (len as usize).min(tail.len());
            rest = &tail[n..];
            &tail[..n]
        } else {
            &[]
        };
        let (req, idx) = last.clone().unwrap_or_default();
        match op & 7 {
            0 => dev.handle_publish(now, &format!("v2/fw/response/{req}/chunk/{idx}"), payload),
            1 => dev.handle_publish(now, &format!("v2/fw/response/9{req}/chunk/{idx}"), payload),
            2 => dev.handle_publish(
                now,
                &format!("v2/fw/response/{req}/chunk/{}", op >> 3),
                payload,
            ),
            3 => dev.handle_publish(now, "v2/fw/error", payload),
            4 => dev.handle_publish(now, &String::from_utf8_lossy(payload), b"\x00"),
            5 => {
                dev.handle_disconnected();
                dev.handle_connected();
            }
            6 => {
                now += 1_001;
                dev.handle_timeout(now);
            }
            _ => {
                version += 1;
                dev.handle_publish(now, "v1/devices/me/attributes", offer(version).as_bytes());
                written = 0;
                ended = false;
            }
        }
        let requests = drain(&mut dev, now, &mut last);
        while let Some(ev) = dev.poll_firmware_event() {
            match ev {
                FirmwareEvent::Started { size: s, .. } => {
                    assert_eq!(s, size);
                    written = 0;
                    ended = false;
                }
                FirmwareEvent::Chunk { offset, data } => {
                    assert!(!ended, "a chunk after the download ended");
                    assert_eq!(offset, written, "chunks in order, without gaps");
                    written += data.len() as u64;
                    assert!(written <= size, "more bytes than announced");
                }
                FirmwareEvent::Progress { received, total } => {
                    assert_eq!((received, total), (written, size));
                }
                FirmwareEvent::Verified { size: s, .. } => {
                    assert!(!ended, "a download ended twice");
                    assert_eq!((s, written), (size, size));
                    ended = true;
                }
                FirmwareEvent::Failed { .. } => {
                    // A replaced download fails after its successor started: only the current
                    // one must not end twice.
                    ended = true;
                }
            }
        }
        if ended && !dev.is_firmware_downloading() {
            assert_eq!(requests, 0, "a chunk request after the download ended");
        }
    }
});
