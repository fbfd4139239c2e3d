//! Firmware updates over the air (spec 11), the last part of the exchange: the scripted
//! ThingsBoard assigns an image through shared attributes (11.1) and serves it in raw chunks
//! (11.2); the firmware writes the chunks into a RAM buffer standing in for the update flash
//! slot and reports through the state telemetry tb-core queues (11.3).
//!
//! The images are generated on the board from a seed, byte by byte ([`image_byte`]), so the
//! server can serve any slice without holding the image. The expected checksums are hard-coded
//! here, computed on the host with Python's `hashlib`/`zlib`, so tb-core's `Checksum` is
//! checked against an independent implementation, not against itself:
//!
//! ```python
//! import hashlib, zlib
//! M = 0xFFFFFFFF
//! def byte(seed, i):
//!     x = (i + seed) * 0x9E3779B1 & M
//!     x ^= x >> 15
//!     x = x * 0x85EBCA6B & M
//!     x ^= x >> 13
//!     return x >> 24
//! def image(seed, n): return bytes(byte(seed, i) for i in range(n))
//! hashlib.sha256(image(1, 3500)).hexdigest()               # UPDATE
//! zlib.crc32(image(2, 700)).to_bytes(4, "little").hex()    # SMALL_UPDATE (Guava's order)
//! bad = bytearray(image(3, 2100)); bad[1031] ^= 1
//! hashlib.md5(image(3, 2100)).hexdigest(), hashlib.md5(bad).hexdigest()  # CORRUPTED
//! ```

use alloc::format;
use alloc::string::String;

use tb_core::{ChecksumAlgorithm, Device, Event, FirmwareEvent, Millis, SubscriptionId};

use super::Checker;

/// Bytes per chunk request (`FirmwareConfig::chunk_size` of the device session).
pub const CHUNK: usize = 1024;

/// How long a requested chunk may take (`FirmwareConfig::chunk_timeout_ms`, default).
const CHUNK_TIMEOUT_MS: Millis = 30_000;

/// Size of the buffer standing in for the update slot; the largest image fits.
const SLOT: usize = 4096;

/// One firmware package the scripted server assigns to the device.
pub struct Case {
    pub title: &'static str,
    pub version: &'static str,
    /// Seed of the image's bytes (see [`image_byte`]).
    pub seed: u32,
    /// `fw_size`.
    pub size: usize,
    pub algorithm: ChecksumAlgorithm,
    /// `fw_checksum`, as ThingsBoard stores it (spec 11.1), computed on the host.
    pub checksum: &'static str,
    /// Flip bit 0 of this image byte in the server's answer (a corrupted chunk), and the
    /// checksum of what then arrives, computed on the host.
    pub corrupt: Option<(usize, &'static str)>,
}

/// SHA256 (the default algorithm), 3 full chunks and a short one of 428 bytes.
pub const UPDATE: Case = Case {
    title: "lm3s-app",
    version: "1.1",
    seed: 1,
    size: 3500,
    algorithm: ChecksumAlgorithm::Sha256,
    checksum: "cf64ce554af690650c37dd8ea03a7efbcca8d7bd983f08541018ede1c0d8c608",
    corrupt: None,
};

/// CRC32 with the value little-endian as Guava writes it (0xd485679f), and an image smaller
/// than a chunk: fetched whole with an empty request payload.
pub const SMALL_UPDATE: Case = Case {
    title: "lm3s-app",
    version: "1.2",
    seed: 2,
    size: 700,
    algorithm: ChecksumAlgorithm::Crc32,
    checksum: "9f6785d4",
    corrupt: None,
};

/// MD5, 2 full chunks and one of 52 bytes; one byte of chunk 1 arrives flipped, so the
/// download ends in a checksum mismatch.
pub const CORRUPTED: Case = Case {
    title: "lm3s-app",
    version: "1.3",
    seed: 3,
    size: 2100,
    algorithm: ChecksumAlgorithm::Md5,
    checksum: "19bc62a0f128f6b10a1c121dac1e8865",
    corrupt: Some((CHUNK + 7, "cde8b00d95d4137938e46a8b981d42c9")),
};

/// Byte `i` of the image with `seed`: a multiply-xorshift hash of the index, so any slice can
/// be produced alone (the Python above is the same function).
fn image_byte(seed: u32, i: usize) -> u8 {
    let mut x = (i as u32).wrapping_add(seed).wrapping_mul(0x9e37_79b1);
    x ^= x >> 15;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    (x >> 24) as u8
}

/// `fw_state` telemetry as tb-core sends it: the current firmware with every state, keys
/// sorted (no_std serde_json), `fw_error` only on failure (spec 11.3).
fn state(current: (&str, &str), fw_state: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| format!(r#""fw_error":"{e}","#));
    format!(
        r#"{{"current_fw_title":"{}","current_fw_version":"{}",{error}"fw_state":"{fw_state}"}}"#,
        current.0, current.1
    )
}

/// Runs one update from the assignment to UPDATED (or to FAILED for a corrupted image).
/// `request_id` is the id tb-core gives this download's chunk requests (one per download).
/// Returns the clock at the end.
pub fn update(
    c: &mut Checker,
    dev: &mut Device,
    mut now: Millis,
    on_all: SubscriptionId,
    request_id: u32,
    case: &Case,
) -> Millis {
    let (title, version) = dev.current_firmware();
    let (old_title, old_version) = (String::from(title), String::from(version));
    let current = (old_title.as_str(), old_version.as_str());

    // spec 11.1: one push with the package's attributes (ThingsBoard also records
    // fw_state INITIATED itself; the device sends nothing for it).
    let push = format!(
        r#"{{"fw_checksum":"{}","fw_checksum_algorithm":"{}","fw_size":{},"fw_title":"{}","fw_version":"{}"}}"#,
        case.checksum,
        case.algorithm.name(),
        case.size,
        case.title,
        case.version
    );
    dev.handle_publish(now, "v1/devices/me/attributes", push.as_bytes());
    drop(push);
    // The push is still an attribute update for the application's callbacks.
    match c.event(dev) {
        Some(Event::AttributeUpdate { subscriptions, .. }) => {
            c.eq("callbacks", subscriptions.as_slice(), &[on_all][..])
        }
        other => c.check("attribute update", false, || format!("got {:?}", other)),
    }
    c.no_event(dev);
    match dev.poll_firmware_event() {
        Some(FirmwareEvent::Started {
            title,
            version,
            size,
            algorithm,
        }) => {
            c.eq("started title", title.as_str(), case.title);
            c.eq("started version", version.as_str(), case.version);
            c.eq("started size", size, case.size as u64);
            c.eq("started algorithm", algorithm, case.algorithm);
        }
        other => c.check("download started", false, || format!("got {:?}", other)),
    }
    c.publish(
        dev,
        now,
        "v1/devices/me/telemetry",
        state(current, "DOWNLOADING", None).as_bytes(),
    );

    // The firmware's update slot; chunk events are written into it at their offset.
    let mut slot = [0u8; SLOT];
    let mut written = 0usize;
    // spec 11.2: an image that fits one chunk is asked for whole, with an empty payload.
    let whole = case.size <= CHUNK;
    let chunks = if whole { 1 } else { case.size.div_ceil(CHUNK) };
    for n in 0..chunks {
        let topic = format!("v2/fw/request/{request_id}/chunk/{n}");
        let size: &[u8] = if whole { b"" } else { b"1024" };
        if n == 0 && request_id == 1 {
            // The connection's first download: the firmware filters first.
            c.firmware_subscribe(dev, now);
        }
        c.publish(dev, now, &topic, size);
        c.idle(dev, now); // one chunk in flight at a time
        c.eq(
            "chunk deadline",
            dev.poll_timeout(),
            Some(now + CHUNK_TIMEOUT_MS),
        );
        if n == 0 {
            // spec 11.1: the second push ThingsBoard sends with every stored package; it does
            // not disturb the download.
            dev.handle_publish(
                now,
                "v1/devices/me/attributes",
                br#"{"deleted":["fw_tag","fw_url"]}"#,
            );
            match c.event(dev) {
                Some(Event::AttributeUpdate { subscriptions, .. }) => {
                    c.eq("callbacks", subscriptions.as_slice(), &[on_all][..])
                }
                other => c.check("deleted push", false, || format!("got {:?}", other)),
            }
            c.check(
                "still downloading",
                dev.is_firmware_downloading(),
                String::new,
            );
            c.idle(dev, now);
        }

        // The server's answer: the raw slice [n*1024, n*1024+1024) of the image.
        let start = n * CHUNK;
        let end = (start + CHUNK).min(case.size);
        let mut buf = [0u8; CHUNK];
        let part = &mut buf[..end - start];
        for (i, b) in part.iter_mut().enumerate() {
            *b = image_byte(case.seed, start + i);
        }
        if let Some((at, _)) = case.corrupt {
            if (start..end).contains(&at) {
                part[at - start] ^= 1;
            }
        }
        now += 20;
        let topic = format!("v2/fw/response/{request_id}/chunk/{n}");
        dev.handle_publish(now, &topic, part);
        drop(topic);

        // The writer: chunks come in order, without gaps.
        match dev.poll_firmware_event() {
            Some(FirmwareEvent::Chunk { offset, data }) => {
                c.eq("chunk offset", offset, written as u64);
                c.eq("chunk length", data.len(), end - start);
                if written + data.len() <= SLOT {
                    slot[written..written + data.len()].copy_from_slice(&data);
                    written += data.len();
                }
            }
            other => c.check("chunk", false, || format!("got {:?}", other)),
        }
        match dev.poll_firmware_event() {
            Some(FirmwareEvent::Progress { received, total }) => c.eq(
                "progress",
                (received, total),
                (end as u64, case.size as u64),
            ),
            other => c.check("progress", false, || format!("got {:?}", other)),
        }
    }
    c.eq("bytes written", written, case.size);
    c.publish(
        dev,
        now,
        "v1/devices/me/telemetry",
        state(current, "DOWNLOADED", None).as_bytes(),
    );

    if let Some((at, got)) = case.corrupt {
        // Exactly one FAILED report, naming both checksums.
        let error = format!(
            "{} checksum mismatch: expected {}, got {}",
            case.algorithm.name(),
            case.checksum,
            got
        );
        c.publish(
            dev,
            now,
            "v1/devices/me/telemetry",
            state(current, "FAILED", Some(&error)).as_bytes(),
        );
        match dev.poll_firmware_event() {
            Some(FirmwareEvent::Failed {
                title,
                version,
                error: e,
            }) => {
                c.eq("failed title", title.as_str(), case.title);
                c.eq("failed version", version.as_str(), case.version);
                c.eq("fw_error", e.as_str(), error.as_str());
            }
            other => c.check("download failed", false, || format!("got {:?}", other)),
        }
        // The firmware discards the slot. Nothing is left to fail: no second report.
        c.eq(
            "the corrupted byte arrived",
            slot[at],
            image_byte(case.seed, at) ^ 1,
        );
        c.check(
            "nothing left to fail",
            !dev.fail_firmware("discarded"),
            String::new,
        );
        c.eq("current firmware kept", dev.current_firmware(), current);
    } else {
        c.publish(
            dev,
            now,
            "v1/devices/me/telemetry",
            state(current, "VERIFIED", None).as_bytes(),
        );
        match dev.poll_firmware_event() {
            Some(FirmwareEvent::Verified {
                title,
                version,
                size,
            }) => {
                c.eq("verified title", title.as_str(), case.title);
                c.eq("verified version", version.as_str(), case.version);
                c.eq("verified size", size, case.size as u64);
            }
            other => c.check("download verified", false, || format!("got {:?}", other)),
        }
        // Check every written byte before "installing" (swapping slots, in a real firmware).
        let intact = (0..case.size).all(|i| slot[i] == image_byte(case.seed, i));
        c.check("image written intact", intact, String::new);
        now += 100;
        c.check(
            "installed",
            dev.firmware_installed(case.title, case.version).is_ok(),
            String::new,
        );
        c.publish(
            dev,
            now,
            "v1/devices/me/telemetry",
            state((case.title, case.version), "UPDATED", None).as_bytes(),
        );
        c.eq(
            "current firmware",
            dev.current_firmware(),
            (case.title, case.version),
        );
    }
    let extra = dev.poll_firmware_event();
    c.check("no further firmware event", extra.is_none(), || {
        format!("got {:?}", extra)
    });
    c.eq("no chunk timer", dev.poll_timeout(), None);
    c.idle(dev, now);
    c.no_event(dev);
    now
}
