//! Firmware updates over the air (spec 11) driven end to end: a `Device`, a scripted
//! ThingsBoard that serves chunks as spec 11.2 says, and a host that writes the chunks into a
//! buffer, all on a fake clock with exact topics and bytes.

use std::collections::HashMap;
use std::hash::Hasher as _;

mod common;

use common::{connect_expecting, expect_subscribe, DEVICE_FILTERS};
use serde_json::{json, Value};
use sha2::Digest as _;
use tb_core::{
    ChecksumAlgorithm, Config, Device, Event, FirmwareConfig, FirmwareEvent, PeerError, Transmit,
};

const MIB: usize = 1 << 20;

/// A deterministic pseudo-random image (xorshift), so every byte matters to the checksum.
fn image(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The checksum ThingsBoard would store, computed with the crates directly, in Guava's byte
/// order (spec 11.1).
fn tb_checksum(alg: ChecksumAlgorithm, data: &[u8]) -> String {
    match alg {
        ChecksumAlgorithm::Md5 => hex(&md5::Md5::digest(data)),
        ChecksumAlgorithm::Sha256 => hex(&sha2::Sha256::digest(data)),
        ChecksumAlgorithm::Sha384 => hex(&sha2::Sha384::digest(data)),
        ChecksumAlgorithm::Sha512 => hex(&sha2::Sha512::digest(data)),
        ChecksumAlgorithm::Crc32 => hex(&crc32fast::hash(data).to_le_bytes()),
        ChecksumAlgorithm::Murmur3_32 => hex(&mur3::murmurhash3_x86_32(data, 0).to_le_bytes()),
        ChecksumAlgorithm::Murmur3_128 => {
            let (h1, h2) = mur3::murmurhash3_x64_128(data, 0);
            let mut b = h1.to_le_bytes().to_vec();
            b.extend_from_slice(&h2.to_le_bytes());
            hex(&b)
        }
    }
}

fn offer(title: &str, version: &str, data: &[u8], alg: ChecksumAlgorithm) -> Value {
    json!({
        "fw_title": title,
        "fw_version": version,
        "fw_size": data.len(),
        "fw_checksum": tb_checksum(alg, data),
        "fw_checksum_algorithm": alg.name(),
    })
}

fn device(chunk_size: usize) -> Device {
    let mut d = Device::new(Config {
        firmware: FirmwareConfig {
            chunk_size,
            chunk_timeout_ms: 5_000,
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    connect_expecting(&mut d, &DEVICE_FILTERS);
    d
}

const DEVICE_SUBSCRIBE: &str = "SUBSCRIBE v1/devices/me/attributes v1/devices/me/attributes/response/+ v1/devices/me/rpc/request/+ v1/devices/me/rpc/response/+";
const FW_SUBSCRIBE: &str = "SUBSCRIBE v2/fw/response/+/chunk/+ v2/fw/error";

/// Everything the device sends now, as topics (`SUBSCRIBE` and its filters for a subscribe),
/// acknowledging the publishes when `ack`.
fn sends(d: &mut Device, ack: bool) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(tx) = d.poll_transmit(0) {
        match tx {
            Transmit::Publish(p) => {
                out.push(p.topic.to_string());
                if ack {
                    d.handle_puback(p.id);
                }
            }
            Transmit::Subscribe { filters, .. } => {
                out.push(format!("SUBSCRIBE {}", filters.join(" ")));
            }
        }
    }
    out
}

fn push(d: &mut Device, now: u64, attrs: &Value) {
    d.handle_publish(
        now,
        "v1/devices/me/attributes",
        &serde_json::to_vec(attrs).unwrap(),
    );
}

/// A device with `chunk_size`, a server holding `image`, and a host.
fn setup(chunk_size: usize, image: Vec<u8>) -> (Device, Server, Host) {
    (device(chunk_size), Server::new(image), Host::default())
}

/// ThingsBoard's side of spec 11.2, plus the telemetry it records.
#[derive(Default)]
struct Server {
    image: Vec<u8>,
    /// (topic, payload) of each chunk request, in order.
    requests: Vec<(String, String)>,
    /// Telemetry payloads, in order.
    telemetry: Vec<String>,
    /// Size remembered per request id.
    sizes: HashMap<u32, usize>,
    /// Flip a byte in this chunk index.
    corrupt: Option<u64>,
    /// Answer requests at all.
    answer: bool,
    /// Responses not yet delivered.
    outbox: Vec<(String, Vec<u8>)>,
    /// SUBSCRIBEs to the firmware filters, in order.
    fw_subscribes: usize,
}

impl Server {
    fn new(image: Vec<u8>) -> Server {
        Server {
            image,
            answer: true,
            ..Server::default()
        }
    }

    fn chunk(&mut self, topic: &str, payload: &[u8]) -> (String, Vec<u8>) {
        let rest = topic.strip_prefix("v2/fw/request/").unwrap();
        let (r, i) = rest.split_once("/chunk/").unwrap();
        let (r, i): (u32, u64) = (r.parse().unwrap(), i.parse().unwrap());
        let size = if payload.is_empty() {
            self.sizes.get(&r).copied().unwrap_or(0)
        } else {
            let s: usize = std::str::from_utf8(payload).unwrap().parse().unwrap();
            assert!(s <= 65_536, "PAYLOAD_TOO_LARGE: {s}");
            self.sizes.insert(r, s);
            s
        };
        let mut data = if size == 0 {
            self.image.clone()
        } else {
            let start = (i as usize * size).min(self.image.len());
            let end = (start + size).min(self.image.len());
            self.image[start..end].to_vec()
        };
        if self.corrupt == Some(i) && !data.is_empty() {
            data[0] ^= 0xff;
        }
        (format!("v2/fw/response/{r}/chunk/{i}"), data)
    }

    /// Takes what the device sends (acknowledging it) and queues the answers.
    fn receive(&mut self, d: &mut Device, now: u64) {
        while let Some(tx) = d.poll_transmit(now) {
            let p = match tx {
                Transmit::Publish(p) => p,
                Transmit::Subscribe { filters, .. } => {
                    if filters == ["v2/fw/response/+/chunk/+", "v2/fw/error"] {
                        self.fw_subscribes += 1;
                    }
                    continue;
                }
            };
            d.handle_puback(p.id);
            if p.topic.starts_with("v2/fw/request/") {
                assert_eq!(p.qos, tb_core::QoS::AtLeastOnce);
                assert!(
                    self.fw_subscribes > 0,
                    "a chunk request before the firmware SUBSCRIBE"
                );
                let payload = String::from_utf8(p.payload.clone()).unwrap();
                self.requests.push((p.topic.to_string(), payload));
                if self.answer {
                    let resp = self.chunk(&p.topic, &p.payload);
                    self.outbox.push(resp);
                }
            } else if p.topic == "v1/devices/me/telemetry" {
                self.telemetry.push(String::from_utf8(p.payload).unwrap());
            }
        }
    }

    /// Exchanges messages until neither side has anything left.
    fn run(&mut self, d: &mut Device, host: &mut Host, now: u64) {
        loop {
            self.receive(d, now);
            host.drain(d);
            if self.outbox.is_empty() {
                break;
            }
            for (topic, payload) in std::mem::take(&mut self.outbox) {
                d.handle_publish(now, &topic, &payload);
            }
            host.drain(d);
        }
    }
}

/// The host: writes chunks into a buffer, keeps every other report.
#[derive(Default)]
struct Host {
    file: Vec<u8>,
    started: Vec<(String, String, u64, ChecksumAlgorithm)>,
    progress: Vec<(u64, u64)>,
    verified: Vec<(String, String, u64)>,
    failed: Vec<String>,
    dropped: Vec<PeerError>,
    events: Vec<Event>,
}

impl Host {
    fn drain(&mut self, d: &mut Device) {
        while let Some(ev) = d.poll_firmware_event() {
            match ev {
                FirmwareEvent::Started {
                    title,
                    version,
                    size,
                    algorithm,
                } => {
                    self.file.clear();
                    self.started.push((title, version, size, algorithm));
                }
                FirmwareEvent::Chunk { offset, data } => {
                    assert_eq!(offset, self.file.len() as u64, "chunks come in order");
                    self.file.extend_from_slice(&data);
                }
                FirmwareEvent::Progress { received, total } => {
                    self.progress.push((received, total))
                }
                FirmwareEvent::Verified {
                    title,
                    version,
                    size,
                } => self.verified.push((title, version, size)),
                FirmwareEvent::Failed { error, .. } => self.failed.push(error),
            }
        }
        while let Some(ev) = d.poll_event() {
            match ev {
                Event::Dropped { reason, .. } => self.dropped.push(reason),
                other => self.events.push(other),
            }
        }
    }
}

fn state(title: &str, version: &str, state: &str) -> String {
    format!(
        r#"{{"current_fw_title":"{title}","current_fw_version":"{version}","fw_state":"{state}"}}"#
    )
}

fn failed(error: &str) -> String {
    format!(
        r#"{{"current_fw_title":"Initial","current_fw_version":"v0","fw_error":"{error}","fw_state":"FAILED"}}"#
    )
}

/// Runs a whole update of `data` and checks the common outcome; returns the server's record.
fn full_update(chunk_size: usize, data: Vec<u8>, alg: ChecksumAlgorithm) -> (Server, Host) {
    let (mut d, mut srv, mut host) = setup(chunk_size, data.clone());
    push(&mut d, 0, &offer("lamp", "1.1", &data, alg));
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.failed, Vec::<String>::new());
    assert_eq!(
        host.started,
        [("lamp".into(), "1.1".into(), data.len() as u64, alg)]
    );
    assert_eq!(host.file, data, "the host got the image, byte for byte");
    assert_eq!(
        host.verified,
        [("lamp".into(), "1.1".into(), data.len() as u64)]
    );
    assert_eq!(
        host.progress.last(),
        Some(&(data.len() as u64, data.len() as u64))
    );
    assert!(!d.is_firmware_downloading());
    assert_eq!(
        srv.telemetry,
        [
            state("Initial", "v0", "DOWNLOADING"),
            state("Initial", "v0", "DOWNLOADED"),
            state("Initial", "v0", "VERIFIED"),
        ]
    );
    // The host renamed its file: confirm, and UPDATED goes out with the new current info.
    d.firmware_installed("lamp", "1.1").unwrap();
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.telemetry[3], state("lamp", "1.1", "UPDATED"));
    assert_eq!(d.current_firmware(), ("lamp", "1.1"));
    // The same assignment again changes nothing now.
    push(&mut d, 0, &offer("lamp", "1.1", &data, alg));
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.telemetry.len(), 4);
    assert_eq!(host.started.len(), 1);
    (srv, host)
}

fn expected_requests(req_id: u32, count: usize, payload: &str) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            (
                format!("v2/fw/request/{req_id}/chunk/{i}"),
                payload.to_string(),
            )
        })
        .collect()
}

#[test]
fn chunk_size_4096_fetches_1_mib_in_256_requests() {
    let (srv, host) = full_update(4096, image(MIB), ChecksumAlgorithm::Sha256);
    assert_eq!(srv.requests, expected_requests(1, 256, "4096"));
    assert_eq!(host.progress.len(), 256);
    assert_eq!(host.progress[0], (4096, MIB as u64));
}

#[test]
fn chunk_size_65536_fetches_1_mib_in_16_requests() {
    let (srv, _) = full_update(65_536, image(MIB), ChecksumAlgorithm::Sha256);
    assert_eq!(srv.requests, expected_requests(1, 16, "65536"));
}

#[test]
fn chunk_size_0_is_capped_to_the_server_limit_for_1_mib() {
    // ThingsBoard would send 1 MiB in one PUBLISH; the device asks for chunks of the largest
    // size the server accepts instead (FirmwareConfig::chunk_size).
    let (srv, _) = full_update(0, image(MIB), ChecksumAlgorithm::Sha256);
    assert_eq!(srv.requests, expected_requests(1, 16, "65536"));
}

#[test]
fn chunk_size_0_asks_for_a_small_image_whole_with_an_empty_payload() {
    let (srv, _) = full_update(0, image(5000), ChecksumAlgorithm::Md5);
    assert_eq!(srv.requests, expected_requests(1, 1, ""));
}

#[test]
fn an_image_no_larger_than_one_chunk_is_asked_for_whole_as_the_reference_does() {
    let (srv, _) = full_update(4096, image(4096), ChecksumAlgorithm::Md5);
    assert_eq!(srv.requests, expected_requests(1, 1, ""));
    let (srv, _) = full_update(4096, image(4097), ChecksumAlgorithm::Md5);
    assert_eq!(srv.requests, expected_requests(1, 2, "4096"));
}

#[test]
fn a_chunk_size_over_the_server_limit_is_capped() {
    let (srv, _) = full_update(1_000_000, image(200_000), ChecksumAlgorithm::Md5);
    assert_eq!(srv.requests, expected_requests(1, 4, "65536"));
}

#[test]
fn every_algorithm_verifies_a_1_mib_image() {
    for alg in ChecksumAlgorithm::ALL {
        full_update(65_536, image(MIB), alg);
    }
}

#[test]
fn crc32_and_murmur3_32_accept_the_big_endian_form_too() {
    let data = image(10_000);
    for (alg, value) in [
        (ChecksumAlgorithm::Crc32, crc32fast::hash(&data)),
        (
            ChecksumAlgorithm::Murmur3_32,
            mur3::murmurhash3_x86_32(&data, 0),
        ),
    ] {
        let (mut d, mut srv, mut host) = setup(4096, data.clone());
        let mut attrs = offer("t", "2", &data, alg);
        attrs["fw_checksum"] = json!(format!("{value:08X}"));
        push(&mut d, 0, &attrs);
        srv.run(&mut d, &mut host, 0);
        assert_eq!(host.verified.len(), 1, "{alg:?}");
    }
}

#[test]
fn murmur3_128_checksum_uses_guava_byte_order() {
    // h1 then h2, each little-endian: Guava's HashCode for murmur3_128 (spec 11.1).
    let mut h = mur3::Hasher128::with_seed(0);
    h.write(b"");
    assert_eq!(
        tb_checksum(ChecksumAlgorithm::Murmur3_128, b""),
        "00000000000000000000000000000000"
    );
    let (h1, h2) = mur3::murmurhash3_x64_128(b"hello", 0);
    let sum = tb_checksum(ChecksumAlgorithm::Murmur3_128, b"hello");
    assert_eq!(&sum[..16], hex(&h1.to_le_bytes()));
    assert_eq!(&sum[16..], hex(&h2.to_le_bytes()));
}

#[test]
fn a_corrupted_chunk_fails_once_without_retrying() {
    let data = image(64 * 1024);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    srv.corrupt = Some(3);
    let attrs = offer("lamp", "2", &data, ChecksumAlgorithm::Sha256);
    push(&mut d, 0, &attrs);
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.requests.len(), 16, "the whole image was fetched once");
    assert!(host.verified.is_empty());
    let mut bad = data.clone();
    bad[3 * 4096] ^= 0xff;
    let error = format!(
        "SHA256 checksum mismatch: expected {}, got {}",
        tb_checksum(ChecksumAlgorithm::Sha256, &data),
        tb_checksum(ChecksumAlgorithm::Sha256, &bad)
    );
    assert_eq!(host.failed, [error.as_str()]);
    assert_eq!(
        srv.telemetry,
        [
            state("Initial", "v0", "DOWNLOADING"),
            state("Initial", "v0", "DOWNLOADED"),
            failed(&error),
        ]
    );
    // The reference asks for the attributes again here and downloads forever. The device
    // does not, and an answer to the application's own request naming the same firmware
    // does not restart it either.
    let id = d.request_firmware_info(0, 1000).unwrap();
    srv.run(&mut d, &mut host, 0);
    let response = json!({"shared": attrs});
    d.handle_publish(
        0,
        &format!("v1/devices/me/attributes/response/{}", id.0),
        &serde_json::to_vec(&response).unwrap(),
    );
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.requests.len(), 16);
    assert_eq!(srv.telemetry.len(), 3);
    assert_eq!(host.failed.len(), 1);
    assert!(d.poll_timeout().is_none());
    // A new push from the server (the assignment made again) is a new attempt.
    srv.corrupt = None;
    push(&mut d, 0, &attrs);
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.verified.len(), 1);
    assert_eq!(srv.requests[16].0, "v2/fw/request/2/chunk/0");
}

#[test]
fn a_chunk_of_the_wrong_length_fails() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data[..9_000].to_vec()); // the server's file is shorter
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Md5));
    srv.run(&mut d, &mut host, 0);
    let error = "chunk 2 has 808 bytes, expected 1808 (fw_size 10000)";
    assert_eq!(host.failed, [error]);
    assert_eq!(srv.telemetry[1], failed(error));
    assert_eq!(srv.requests.len(), 3);
}

#[test]
fn a_link_drop_mid_download_resumes_from_the_next_missing_chunk() {
    let data = image(MIB);
    let (mut d, mut srv, mut host) = setup(65_536, data.clone());
    push(
        &mut d,
        0,
        &offer("lamp", "2", &data, ChecksumAlgorithm::Murmur3_128),
    );
    // Serve five chunks, then let the request for chunk 5 go out unanswered.
    srv.receive(&mut d, 0);
    for _ in 0..5 {
        let (topic, payload) = srv.outbox.remove(0);
        d.handle_publish(0, &topic, &payload);
        srv.receive(&mut d, 0);
    }
    host.drain(&mut d);
    assert_eq!(host.file.len(), 5 * 65_536);
    assert_eq!(srv.requests.last().unwrap().0, "v2/fw/request/1/chunk/5");
    let late = srv.outbox.remove(0);
    assert!(srv.outbox.is_empty());
    assert!(d.poll_timeout().is_some());

    d.handle_disconnected();
    assert_eq!(
        d.poll_timeout(),
        None,
        "no chunk timer while the link is down"
    );
    d.handle_connected();
    expect_subscribe(&mut d);
    srv.receive(&mut d, 0);
    // The old request is not resent: one fresh request, under a new id, for chunk 5.
    assert_eq!(
        srv.requests[6..],
        [("v2/fw/request/2/chunk/5".to_string(), "65536".to_string())]
    );
    // The answer to the old request arrives late: dropped as stale, not written twice.
    d.handle_publish(0, &late.0, &late.1);
    host.drain(&mut d);
    assert_eq!(
        host.dropped,
        [PeerError::UnexpectedChunk {
            request: 1,
            chunk: 5
        }]
    );
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.file, data);
    assert_eq!(host.verified.len(), 1);
    assert_eq!(srv.requests.len(), 6 + 11);
    assert_eq!(srv.requests.last().unwrap().0, "v2/fw/request/2/chunk/15");
}

#[test]
fn a_request_not_yet_acknowledged_at_the_drop_is_replaced_not_resent() {
    let data = image(10_000);
    let mut d = device(4096);
    let mut host = Host::default();
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Crc32));
    let sent = sends(&mut d, false);
    assert_eq!(
        sent,
        [
            "v1/devices/me/telemetry",
            FW_SUBSCRIBE,
            "v2/fw/request/1/chunk/0"
        ]
    );
    d.handle_disconnected();
    d.handle_connected();
    let again = sends(&mut d, true);
    // Each connection subscribes again: ThingsBoard keeps no subscriptions (spec 2.7).
    assert_eq!(
        again,
        [
            DEVICE_SUBSCRIBE,
            "v1/devices/me/telemetry",
            FW_SUBSCRIBE,
            "v2/fw/request/2/chunk/0"
        ]
    );
    assert_eq!(d.unacknowledged_qos1(), 0);
    host.drain(&mut d);
}

#[test]
fn stale_duplicate_and_unexpected_chunks_are_dropped() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    push(
        &mut d,
        0,
        &offer("t", "2", &data, ChecksumAlgorithm::Sha512),
    );
    srv.receive(&mut d, 0);
    let (topic0, chunk0) = srv.outbox.remove(0);
    d.handle_publish(0, &topic0, &chunk0);
    // A duplicate of chunk 0, a chunk from the future, another request id, a bad topic.
    d.handle_publish(0, &topic0, &chunk0);
    d.handle_publish(0, "v2/fw/response/1/chunk/2", &[0; 4096]);
    d.handle_publish(0, "v2/fw/response/7/chunk/1", &[0; 4096]);
    d.handle_publish(0, "v2/fw/response/x/chunk/1", &[0; 4096]);
    host.drain(&mut d);
    assert_eq!(
        host.dropped,
        [
            PeerError::UnexpectedChunk {
                request: 1,
                chunk: 0
            },
            PeerError::UnexpectedChunk {
                request: 1,
                chunk: 2
            },
            PeerError::UnexpectedChunk {
                request: 7,
                chunk: 1
            },
            PeerError::BadId,
        ]
    );
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.file, data);
    assert_eq!(host.verified.len(), 1);
    // A chunk with no download at all.
    d.handle_publish(0, "v2/fw/response/1/chunk/3", b"\x00\x01\x02");
    host.drain(&mut d);
    assert_eq!(
        host.dropped.last(),
        Some(&PeerError::UnexpectedChunk {
            request: 1,
            chunk: 3
        })
    );
}

#[test]
fn a_chunk_that_never_comes_times_out_into_failed() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    srv.answer = false;
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Md5));
    assert_eq!(
        d.poll_timeout(),
        None,
        "the timer starts when the request leaves"
    );
    srv.run(&mut d, &mut host, 1_000);
    assert_eq!(d.poll_timeout(), Some(6_000));
    d.handle_timeout(5_999);
    host.drain(&mut d);
    assert!(host.failed.is_empty());
    d.handle_timeout(6_000);
    srv.run(&mut d, &mut host, 6_000);
    let error = "chunk 0 (byte 0 of 10000) did not arrive within 5000 ms";
    assert_eq!(host.failed, [error]);
    assert_eq!(
        srv.telemetry,
        [state("Initial", "v0", "DOWNLOADING"), failed(error)]
    );
    assert_eq!(d.poll_timeout(), None);
    // An answer after the timeout is stale.
    d.handle_publish(6_001, "v2/fw/response/1/chunk/0", &data[..4096]);
    host.drain(&mut d);
    assert_eq!(
        host.dropped,
        [PeerError::UnexpectedChunk {
            request: 1,
            chunk: 0
        }]
    );
}

#[test]
fn a_push_without_size_or_checksum_fails_without_a_download() {
    let (mut d, mut srv, mut host) = setup(4096, Vec::new());
    let sub = d.subscribe_to_attribute("*");
    push(
        &mut d,
        0,
        &json!({"fw_title": "lamp", "fw_version": "2", "fw_checksum_algorithm": "SHA256"}),
    );
    srv.run(&mut d, &mut host, 0);
    let error = "firmware attributes missing: fw_size, fw_checksum";
    assert_eq!(host.failed, [error]);
    assert_eq!(srv.telemetry, [failed(error)]);
    assert!(srv.requests.is_empty());
    assert!(host.started.is_empty());
    // The application still gets the push.
    assert!(matches!(
        &host.events[..],
        [Event::AttributeUpdate { subscriptions, .. }] if subscriptions == &[sub]
    ));
}

#[test]
fn an_unknown_algorithm_or_a_bad_size_fails() {
    for (attrs, error) in [
        (
            json!({"fw_title": "t", "fw_version": "2", "fw_size": 10, "fw_checksum": "ab",
                   "fw_checksum_algorithm": "SHA1"}),
            r#"unsupported fw_checksum_algorithm \"SHA1\""#,
        ),
        (
            json!({"fw_title": "t", "fw_version": "2", "fw_size": -1, "fw_checksum": "ab",
                   "fw_checksum_algorithm": "MD5"}),
            "fw_size must be a whole number of bytes, got -1",
        ),
        (
            json!({"fw_title": "t", "fw_version": "2", "fw_size": "ten", "fw_checksum": "ab",
                   "fw_checksum_algorithm": "MD5"}),
            r#"fw_size must be a whole number of bytes, got \"ten\""#,
        ),
        (
            json!({"fw_title": "t", "fw_version": "2", "fw_size": 10, "fw_checksum": 5,
                   "fw_checksum_algorithm": "MD5"}),
            "fw_checksum must be a hex string, got 5",
        ),
        (
            json!({"fw_version": "2", "fw_size": 1, "fw_checksum": "ab",
                   "fw_checksum_algorithm": "MD5"}),
            "firmware attributes missing: fw_title",
        ),
    ] {
        let (mut d, mut srv, mut host) = setup(4096, Vec::new());
        push(&mut d, 0, &attrs);
        srv.run(&mut d, &mut host, 0);
        assert_eq!(srv.telemetry, [failed(error)]);
        assert!(srv.requests.is_empty());
    }
}

#[test]
fn pushes_that_name_no_new_firmware_are_ignored() {
    let (mut d, mut srv, mut host) = setup(4096, Vec::new());
    for attrs in [
        json!({"deleted": ["fw_tag", "fw_url"]}),
        json!({"fw_title": "Initial", "fw_version": "v0", "fw_size": 1}),
        json!({"fw_title": null, "other": 1}),
        json!({"color": "red"}),
    ] {
        push(&mut d, 0, &attrs);
    }
    srv.run(&mut d, &mut host, 0);
    assert!(srv.telemetry.is_empty());
    assert!(host.failed.is_empty() && host.started.is_empty());
}

#[test]
fn a_server_error_fails_the_download() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    srv.answer = false;
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Md5));
    srv.run(&mut d, &mut host, 0);
    d.handle_publish(0, "v2/fw/error", b"NOT_FOUND");
    srv.run(&mut d, &mut host, 0);
    let error = "server refused the download: NOT_FOUND";
    assert_eq!(host.failed, [error]);
    assert_eq!(srv.telemetry[1], failed(error));
    // The server closes the connection next; the reconnect does not resume anything.
    d.handle_disconnected();
    d.handle_connected();
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.requests.len(), 1);
    // An error with no download is dropped.
    d.handle_publish(0, "v2/fw/error", b"NOT_FOUND");
    host.drain(&mut d);
    assert_eq!(host.dropped, [PeerError::NoFirmwareDownload]);
}

#[test]
fn an_attribute_response_starts_an_update_from_its_shared_part() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    let id = d.request_firmware_info(0, 1000).unwrap();
    let Some(Transmit::Publish(p)) = d.poll_transmit(0) else {
        panic!()
    };
    assert_eq!(p.topic, "v1/devices/me/attributes/request/1");
    assert_eq!(
        p.payload,
        br#"{"sharedKeys":"fw_checksum,fw_checksum_algorithm,fw_size,fw_title,fw_version"}"#
    );
    d.handle_puback(p.id);
    let response = json!({"shared": offer("t", "2", &data, ChecksumAlgorithm::Sha384)});
    d.handle_publish(
        0,
        &format!("v1/devices/me/attributes/response/{}", id.0),
        &serde_json::to_vec(&response).unwrap(),
    );
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.verified.len(), 1);
    assert!(matches!(host.events[..], [Event::AttributeResponse { .. }]));
}

#[test]
fn a_new_assignment_replaces_a_download_in_progress() {
    let old = image(10_000);
    let new = image(20_000);
    let (mut d, mut srv, mut host) = setup(4096, old.clone());
    srv.answer = false;
    push(&mut d, 0, &offer("t", "2", &old, ChecksumAlgorithm::Md5));
    srv.run(&mut d, &mut host, 0);
    // The same assignment pushed again does not restart it.
    push(&mut d, 0, &offer("t", "2", &old, ChecksumAlgorithm::Md5));
    srv.run(&mut d, &mut host, 0);
    assert_eq!(srv.requests.len(), 1);
    srv.image = new.clone();
    srv.answer = true;
    push(&mut d, 0, &offer("t", "3", &new, ChecksumAlgorithm::Md5));
    srv.run(&mut d, &mut host, 0);
    assert_eq!(host.failed, ["replaced by firmware t 3"]);
    assert_eq!(host.verified, [("t".into(), "3".into(), 20_000)]);
    assert_eq!(host.file, new);
    assert_eq!(srv.requests[1].0, "v2/fw/request/2/chunk/0");
    // No FAILED for the replaced download.
    assert_eq!(
        srv.telemetry,
        [
            state("Initial", "v0", "DOWNLOADING"),
            state("Initial", "v0", "DOWNLOADING"),
            state("Initial", "v0", "DOWNLOADED"),
            state("Initial", "v0", "VERIFIED"),
        ]
    );
}

#[test]
fn the_host_can_fail_an_update_it_cannot_store() {
    let data = image(10_000);
    let (mut d, mut srv, mut host) = setup(4096, data.clone());
    push(
        &mut d,
        0,
        &offer("../x", "2", &data, ChecksumAlgorithm::Md5),
    );
    host.drain(&mut d);
    // The title is passed as given; the host refuses it.
    assert_eq!(host.started[0].0, "../x");
    assert!(d.fail_firmware("title \"../x\" leaves the firmware folder"));
    srv.run(&mut d, &mut host, 0);
    assert!(srv.requests.is_empty(), "the queued request was withdrawn");
    assert_eq!(
        srv.telemetry,
        [
            state("Initial", "v0", "DOWNLOADING"),
            failed(r#"title \"../x\" leaves the firmware folder"#),
        ]
    );
    assert_eq!(d.unacknowledged_qos1(), 0);
    assert!(!d.fail_firmware("again"));
}

#[test]
fn an_empty_image_verifies_without_a_request() {
    let (mut d, mut srv, mut host) = setup(4096, Vec::new());
    push(&mut d, 0, &offer("t", "2", &[], ChecksumAlgorithm::Sha256));
    srv.run(&mut d, &mut host, 0);
    assert!(srv.requests.is_empty());
    assert_eq!(host.verified, [("t".into(), "2".into(), 0)]);
}

#[test]
fn firmware_can_be_turned_off() {
    let mut d = Device::new(Config {
        firmware: FirmwareConfig {
            enabled: false,
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    d.handle_connected();
    match d.poll_transmit(0) {
        Some(Transmit::Subscribe { filters, .. }) => assert_eq!(filters.len(), 4),
        other => panic!("{other:?}"),
    }
    let data = image(100);
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Md5));
    let mut srv = Server::new(data);
    let mut host = Host::default();
    srv.run(&mut d, &mut host, 0);
    assert!(srv.telemetry.is_empty() && host.started.is_empty());
    // Chunks are then just unexpected.
    d.handle_publish(0, "v2/fw/response/1/chunk/0", b"x");
    host.drain(&mut d);
    assert_eq!(host.dropped.len(), 1);
}

#[test]
fn the_initial_firmware_comes_from_the_config_and_can_be_set() {
    let mut d = Device::new(Config {
        firmware: FirmwareConfig {
            initial_title: "lamp".into(),
            initial_version: "1.0".into(),
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    assert_eq!(d.current_firmware(), ("lamp", "1.0"));
    assert_eq!(
        Device::new(Config::default()).current_firmware(),
        ("Initial", "v0")
    );
    d.set_current_firmware("lamp", "1.1");
    assert_eq!(d.current_firmware(), ("lamp", "1.1"));
}

#[test]
fn a_chunk_request_of_an_ended_download_is_not_resent_after_reconnect() {
    let data = image(10_000);
    let mut d = device(4096);
    let mut host = Host::default();
    push(&mut d, 0, &offer("t", "2", &data, ChecksumAlgorithm::Md5));
    let sent = sends(&mut d, false);
    assert_eq!(sent[2], "v2/fw/request/1/chunk/0");
    assert!(d.fail_firmware("disk full"));
    d.handle_disconnected();
    d.handle_connected();
    let again: Vec<String> = sends(&mut d, false)
        .into_iter()
        .filter(|t| !t.starts_with("SUBSCRIBE"))
        .collect();
    // DOWNLOADING again (unacknowledged telemetry is resent), FAILED, and no chunk request:
    // ThingsBoard would answer one for a removed assignment with NOT_FOUND and a disconnect.
    assert_eq!(
        again,
        ["v1/devices/me/telemetry", "v1/devices/me/telemetry"]
    );
    host.drain(&mut d);
    assert_eq!(host.failed, ["disk full"]);
}
