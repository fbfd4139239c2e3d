//! Firmware updates over the air (spec: thingsboard-mqtt.md, section 11; api-contract.md 4).
//!
//! The core runs the whole download and reports it; the host only stores bytes:
//!
//! 1. A shared-attribute push, or the `shared` part of an attribute response, whose `fw_title`
//!    or `fw_version` differs from the current firmware starts an update (as the reference
//!    does). The core queues `fw_state: DOWNLOADING` telemetry and emits
//!    [`FirmwareEvent::Started`]: the host opens a temporary file.
//! 2. The core requests chunks on `v2/fw/request/{reqId}/chunk/{n}`, one at a time, and emits
//!    [`FirmwareEvent::Chunk`] (the host writes the bytes at `offset`) and
//!    [`FirmwareEvent::Progress`] per chunk. The checksum is computed as chunks arrive; the
//!    image is never held whole in the core.
//! 3. At the end it queues DOWNLOADED, then VERIFIED and emits [`FirmwareEvent::Verified`]
//!    (the host renames the temporary file and installs it), or queues FAILED with `fw_error`
//!    and emits [`FirmwareEvent::Failed`] (the host deletes the temporary file).
//! 4. Once installed, the host calls [`Device::firmware_installed`](crate::Device::firmware_installed),
//!    which makes the new title and version current and queues `fw_state: UPDATED`.
//!
//! Every failure ends the download once, with one FAILED report, and nothing is retried on its
//! own (the reference re-requests the attributes after a checksum mismatch, which downloads
//! the same broken image again and again).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::hash::Hasher as _;
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::error::PeerError;
use crate::topics;
use crate::Millis;

/// Shared attribute: package title. spec 11.1
pub const FW_TITLE: &str = "fw_title";
/// Shared attribute: package version.
pub const FW_VERSION: &str = "fw_version";
/// Shared attribute: image size in bytes.
pub const FW_SIZE: &str = "fw_size";
/// Shared attribute: checksum as hex.
pub const FW_CHECKSUM: &str = "fw_checksum";
/// Shared attribute: checksum algorithm name.
pub const FW_CHECKSUM_ALGORITHM: &str = "fw_checksum_algorithm";
/// Shared attribute: set only for packages hosted at an external URL (not served over MQTT).
pub const FW_URL: &str = "fw_url";
/// The shared keys to request to learn the assigned firmware (the reference's
/// `REQUIRED_SHARED_KEYS`, same order).
pub const FW_SHARED_KEYS: [&str; 5] = [
    FW_CHECKSUM,
    FW_CHECKSUM_ALGORITHM,
    FW_SIZE,
    FW_TITLE,
    FW_VERSION,
];

/// Firmware settings, part of [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareConfig {
    /// React to `fw_*` shared attributes. When off, the device neither subscribes to the
    /// firmware topics nor starts downloads.
    pub enabled: bool,
    /// Bytes per chunk request. 0 asks for the whole image in one chunk (an empty request
    /// payload, as the reference sends). Either way the size is capped at
    /// [`Config::max_packet_size`](crate::Config::max_packet_size), the server's
    /// `max_payload_size` (65536 by default): ThingsBoard answers a bigger chunk size with
    /// `PAYLOAD_TOO_LARGE` and closes the connection (spec 11.2). So an image larger than the cap
    /// is fetched in chunks of the cap, never in one unbounded message, even with 0; an image
    /// no larger than the chunk size is fetched whole with an empty payload.
    pub chunk_size: usize,
    /// How long a requested chunk may take, counted from when the request is handed to the
    /// host for sending; then the download ends FAILED. No time runs while disconnected.
    pub chunk_timeout_ms: Millis,
    /// Title of the firmware the device runs at start (the reference's `"Initial"`).
    pub initial_title: String,
    /// Version of the firmware the device runs at start (the reference's `"v0"`).
    pub initial_version: String,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig {
            enabled: true,
            chunk_size: 0,
            chunk_timeout_ms: 30_000,
            initial_title: "Initial".into(),
            initial_version: "v0".into(),
        }
    }
}

/// What a download reports to the host, from [`Device::poll_firmware_event`](crate::Device::poll_firmware_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareEvent {
    /// A download began: open a temporary file. The title is passed as the server gave it;
    /// checking that it is a safe file name is the host's job (report a bad one with
    /// [`Device::fail_firmware`](crate::Device::fail_firmware)).
    Started {
        /// `fw_title`.
        title: String,
        /// `fw_version`.
        version: String,
        /// `fw_size`: the bytes to expect.
        size: u64,
        /// `fw_checksum_algorithm`.
        algorithm: ChecksumAlgorithm,
    },
    /// Image bytes: write `data` at `offset`. Chunks come in order, without gaps.
    Chunk {
        /// Where `data` starts in the image.
        offset: u64,
        /// The bytes, exactly as received.
        data: Vec<u8>,
    },
    /// Bytes received so far, after each chunk (for a log line or a progress bar).
    Progress {
        /// Bytes received.
        received: u64,
        /// `fw_size`.
        total: u64,
    },
    /// The whole image arrived and its checksum matches: install it, then call
    /// [`Device::firmware_installed`](crate::Device::firmware_installed).
    Verified {
        /// `fw_title`.
        title: String,
        /// `fw_version`.
        version: String,
        /// Bytes written.
        size: u64,
    },
    /// The update ended without an image: discard what was written. FAILED telemetry with
    /// `fw_error` was queued, except when a newer assignment replaced the download.
    Failed {
        /// `fw_title`, or empty when the offer lacked it.
        title: String,
        /// `fw_version`, or empty when the offer lacked it.
        version: String,
        /// The reason, as sent in `fw_error`.
        error: String,
    },
}

/// A checksum algorithm ThingsBoard offers (spec 11.1, `fw_checksum_algorithm`).
///
/// Design: the one home of ThingsBoard's checksum rules (names, Guava byte order); the dev
/// server uses it too. Both sides agree by construction, so what keeps them right is the
/// known-answer tests below (published check values, Guava's byte order), not a second copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumAlgorithm {
    /// `MD5`
    Md5,
    /// `SHA256`, ThingsBoard's default.
    #[default]
    Sha256,
    /// `SHA384`
    Sha384,
    /// `SHA512`
    Sha512,
    /// `CRC32` (IEEE, as `java.util.zip.CRC32` and Guava's `crc32()`)
    Crc32,
    /// `MURMUR3_32` (x86 32-bit, seed 0, as Guava's `murmur3_32`)
    Murmur3_32,
    /// `MURMUR3_128` (x64 128-bit, seed 0, as Guava's `murmur3_128`)
    Murmur3_128,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in ThingsBoard's order.
    pub const ALL: [ChecksumAlgorithm; 7] = [
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha384,
        ChecksumAlgorithm::Sha512,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Murmur3_32,
        ChecksumAlgorithm::Murmur3_128,
    ];

    /// Parses ThingsBoard's name (`"SHA256"`); case-insensitive.
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// ThingsBoard's name.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Md5 => "MD5",
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Sha384 => "SHA384",
            ChecksumAlgorithm::Sha512 => "SHA512",
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Murmur3_32 => "MURMUR3_32",
            ChecksumAlgorithm::Murmur3_128 => "MURMUR3_128",
        }
    }

    /// The checksum of `data` in one call, as [`Digest::hex`] writes it (ThingsBoard's own,
    /// spec 11.1): what a server computes for a package when the uploader gives none.
    pub fn checksum(self, data: &[u8]) -> String {
        let mut sum = Checksum::new(self);
        sum.update(data);
        sum.finish().hex
    }
}

impl core::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for ChecksumAlgorithm {
    type Err = UnknownAlgorithm;

    /// As [`ChecksumAlgorithm::from_name`], with an error naming the value and the choices.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownAlgorithm(s.into()))
    }
}

/// A name that is not one of [`ChecksumAlgorithm::ALL`] (the caller's: a usage error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl core::fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "unknown checksum algorithm {:?}; expected one of ",
            self.0
        )?;
        for (i, a) in ChecksumAlgorithm::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{}", a.name())?;
        }
        Ok(())
    }
}

impl core::error::Error for UnknownAlgorithm {}

/// CRC-32 (ISO-HDLC, as zlib and Guava's `crc32()`). With the `crc-table` feature (on by
/// default) through a 256-entry table: 1 KiB instead of the 16 KiB slice-by-16 tables of faster
/// implementations. Without it bit by bit, with no table at all.
// Design: a microcontroller hashes an image as fast as the network brings it (kilobytes per
// second), which the bitwise loop keeps up with; its 1 KiB of flash is worth more.
static CRC32: crc::Crc<u32, CrcTable> = crc::Crc::<u32, CrcTable>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(feature = "crc-table")]
type CrcTable = crc::Table<1>;
#[cfg(not(feature = "crc-table"))]
type CrcTable = crc::NoTable;

/// An incremental checksum: feed the image in pieces with [`update`](Checksum::update), then
/// [`finish`](Checksum::finish).
pub struct Checksum(Hasher);

enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Crc32(crc::Digest<'static, u32, CrcTable>),
    Murmur3_32(mur3::Hasher32),
    Murmur3_128(mur3::Hasher128),
}

impl core::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Checksum")
    }
}

impl Checksum {
    /// A fresh checksum of nothing.
    pub fn new(algorithm: ChecksumAlgorithm) -> Checksum {
        Checksum(match algorithm {
            ChecksumAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            ChecksumAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            ChecksumAlgorithm::Crc32 => Hasher::Crc32(CRC32.digest()),
            ChecksumAlgorithm::Murmur3_32 => Hasher::Murmur3_32(mur3::Hasher32::with_seed(0)),
            ChecksumAlgorithm::Murmur3_128 => Hasher::Murmur3_128(mur3::Hasher128::with_seed(0)),
        })
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Crc32(h) => h.update(data),
            Hasher::Murmur3_32(h) => h.write(data),
            Hasher::Murmur3_128(h) => h.write(data),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let reversible = matches!(self.0, Hasher::Crc32(_) | Hasher::Murmur3_32(_));
        let hex = match self.0 {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha384(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
            Hasher::Crc32(h) => hex(&h.finalize().to_le_bytes()),
            Hasher::Murmur3_32(h) => hex(&h.finish32().to_le_bytes()),
            Hasher::Murmur3_128(h) => {
                let (h1, h2) = h.finish128();
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&h1.to_le_bytes());
                b[8..].copy_from_slice(&h2.to_le_bytes());
                hex(&b)
            }
        };
        Digest { hex, reversible }
    }
}

/// A finished checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    hex: String,
    reversible: bool,
}

impl Digest {
    /// The digest as lowercase hex, in the byte order ThingsBoard writes a checksum it
    /// computes itself: Guava's `HashCode.toString()` (spec 11.1). That is the usual digest for
    /// MD5 and SHA*, the 32-bit value little-endian for CRC32 and MURMUR3_32, and `h1` then
    /// `h2`, each little-endian, for MURMUR3_128 (the reference C code's output bytes).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether the digest equals `expected` (hex, any case, surrounding blanks ignored).
    ///
    /// For CRC32 and MURMUR3_32 both byte orders match: a checksum ThingsBoard computed is
    /// little-endian (Guava, spec 11.1), while one typed in by the uploader usually comes from
    /// a tool printing the value big-endian (`crc32`, zlib, Python `"%08x"`). Both name the
    /// same 32-bit value; a wrong image matches either only by a 2^-31 chance.
    pub fn matches(&self, expected: &str) -> bool {
        let got = &self.hex;
        let expected = expected.trim();
        if got.eq_ignore_ascii_case(expected) {
            return true;
        }
        if self.reversible && got.len() == 8 && expected.len() == 8 {
            // Swap the four hex byte pairs.
            let g = got.as_bytes();
            let e = expected.as_bytes();
            return (0..4).all(|i| {
                let (gi, ei) = (2 * i, 2 * (3 - i));
                g[gi].eq_ignore_ascii_case(&e[ei]) && g[gi + 1].eq_ignore_ascii_case(&e[ei + 1])
            });
        }
        false
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

// ---- the download state machine ----------------------------------------------------------

/// What the firmware machine asks the device to queue.
#[derive(Debug)]
pub(crate) enum Out {
    /// `fw_state` telemetry, through the ordinary telemetry path (spec 11.3).
    Telemetry(Value),
    /// A chunk request (QoS 1, spec 11.2).
    Request { topic: String, payload: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    title: String,
    version: String,
    size: u64,
    checksum: String,
    algorithm: ChecksumAlgorithm,
}

#[derive(Debug)]
struct Download {
    target: Target,
    request_id: u32,
    /// Bytes per chunk; `None` asks for the whole image (empty payload) as chunk 0.
    chunk: Option<u64>,
    next_chunk: u64,
    received: u64,
    hasher: Checksum,
    /// Set when the request for `next_chunk` is handed to the host.
    deadline: Option<Millis>,
}

#[derive(Debug)]
enum State {
    Idle,
    /// Boxed: the hash state is a few hundred bytes, and the device is idle most of its life.
    Downloading(Box<Download>),
    /// Verified, waiting for the host to install it.
    Verified(Target),
}

/// The firmware half of a [`Device`](crate::Device).
#[derive(Debug)]
pub(crate) struct Firmware {
    cfg: FirmwareConfig,
    /// The largest chunk size the server accepts (spec 2.5, 11.2).
    max_chunk: u64,
    current_title: String,
    current_version: String,
    last_request_id: u32,
    state: State,
    /// The (title, version) that last failed: an attribute response offering it again does
    /// not start another download (no retry storm); a push from the server does.
    last_failed: Option<(String, String)>,
    events: alloc::collections::VecDeque<FirmwareEvent>,
}

/// A JSON attribute value as text: strings as they are, numbers and booleans printed; `null`
/// or absent is `None` (the reference tests `is not None`).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Firmware {
    pub(crate) fn new(cfg: FirmwareConfig, max_packet_size: usize) -> Firmware {
        Firmware {
            current_title: cfg.initial_title.clone(),
            current_version: cfg.initial_version.clone(),
            cfg,
            max_chunk: max_packet_size as u64,
            last_request_id: 0,
            state: State::Idle,
            last_failed: None,
            events: alloc::collections::VecDeque::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    pub(crate) fn current(&self) -> (&str, &str) {
        (&self.current_title, &self.current_version)
    }

    pub(crate) fn set_current(&mut self, title: &str, version: &str) {
        self.current_title = title.into();
        self.current_version = version.into();
    }

    pub(crate) fn is_downloading(&self) -> bool {
        matches!(self.state, State::Downloading(_))
    }

    pub(crate) fn poll_event(&mut self) -> Option<FirmwareEvent> {
        self.events.pop_front()
    }

    pub(crate) fn deadline(&self) -> Option<Millis> {
        match &self.state {
            State::Downloading(d) => d.deadline,
            _ => None,
        }
    }

    /// `{"current_fw_title", "current_fw_version", ["fw_error",] "fw_state"}` (spec 11.3; the
    /// reference sends the current info with every state). Keys are inserted in sorted order,
    /// so the bytes are the same whether serde_json keeps insertion order (host) or sorts
    /// (no_std build).
    fn state_telemetry(&self, state: &str, error: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert(
            "current_fw_title".into(),
            Value::String(self.current_title.clone()),
        );
        m.insert(
            "current_fw_version".into(),
            Value::String(self.current_version.clone()),
        );
        if let Some(e) = error {
            m.insert("fw_error".into(), Value::String(e.into()));
        }
        m.insert("fw_state".into(), Value::String(state.into()));
        Value::Object(m)
    }

    /// A shared-attribute object (a push, or the `shared` part of a response).
    pub(crate) fn offer(&mut self, data: &Map<String, Value>, from_push: bool, out: &mut Vec<Out>) {
        if !self.cfg.enabled {
            return;
        }
        let title = text(data.get(FW_TITLE));
        let version = text(data.get(FW_VERSION));
        // The reference's test: a present title or version that differs from the current one.
        let differs = title.as_ref().is_some_and(|t| *t != self.current_title)
            || version.as_ref().is_some_and(|v| *v != self.current_version);
        if !differs {
            return;
        }
        let same =
            |t: &Target| Some(&t.title) == title.as_ref() && Some(&t.version) == version.as_ref();
        match &self.state {
            // The same assignment again (a repeated push, or the answer to a request made
            // while downloading): keep going.
            State::Downloading(d) if same(&d.target) => return,
            State::Verified(t) if same(t) => return,
            _ => {}
        }
        let title_s = title.clone().unwrap_or_default();
        let version_s = version.clone().unwrap_or_default();
        if !from_push && self.last_failed.as_ref() == Some(&(title_s.clone(), version_s.clone())) {
            return;
        }
        if let State::Downloading(d) = core::mem::replace(&mut self.state, State::Idle) {
            // A newer assignment replaces the download; the server already moved on, so no
            // FAILED telemetry for the old one.
            self.events.push_back(FirmwareEvent::Failed {
                title: d.target.title,
                version: d.target.version,
                error: format!("replaced by firmware {title_s} {version_s}"),
            });
        }
        match parse_target(data, title, version) {
            Ok(target) => self.start(target, out),
            Err(error) => self.fail_with(title_s, version_s, error, out),
        }
    }

    fn start(&mut self, target: Target, out: &mut Vec<Out>) {
        out.push(Out::Telemetry(self.state_telemetry("DOWNLOADING", None)));
        self.events.push_back(FirmwareEvent::Started {
            title: target.title.clone(),
            version: target.version.clone(),
            size: target.size,
            algorithm: target.algorithm,
        });
        let cap = if self.cfg.chunk_size == 0 {
            self.max_chunk
        } else {
            (self.cfg.chunk_size as u64).min(self.max_chunk)
        }
        .max(1);
        // The reference asks for the whole image (empty payload) when one chunk covers it.
        let chunk = if target.size <= cap { None } else { Some(cap) };
        let dl = Download {
            hasher: Checksum::new(target.algorithm),
            target,
            request_id: 0,
            chunk,
            next_chunk: 0,
            received: 0,
            deadline: None,
        };
        self.state = State::Downloading(Box::new(dl));
        self.request_next(out);
    }

    /// Requests the next missing chunk under a fresh request id, or finishes an empty image.
    fn request_next(&mut self, out: &mut Vec<Out>) {
        let State::Downloading(d) = &mut self.state else {
            return;
        };
        if d.received >= d.target.size {
            return self.finish(out);
        }
        if d.request_id == 0 {
            self.last_request_id = self.last_request_id.wrapping_add(1).max(1);
            d.request_id = self.last_request_id;
        }
        d.deadline = None;
        let topic = format!(
            "{}{}{}{}",
            topics::FW_REQUEST_PREFIX,
            d.request_id,
            topics::FW_CHUNK_INFIX,
            d.next_chunk
        );
        // spec 11.2: an explicit size on every request, so a request never depends on what the
        // server remembers for the id (it forgets it with the connection).
        let payload = d
            .chunk
            .map(|c| c.to_string().into_bytes())
            .unwrap_or_default();
        out.push(Out::Request { topic, payload });
    }

    /// The link is back: ask again for the chunk that was in flight, under a new request id
    /// (a late answer to the old one is then recognised as stale). The device has already
    /// removed the old request from its queue.
    pub(crate) fn resume(&mut self, out: &mut Vec<Out>) {
        if let State::Downloading(d) = &mut self.state {
            d.request_id = 0;
            self.request_next(out);
        }
    }

    /// The link dropped: the chunk timer stops.
    pub(crate) fn pause(&mut self) {
        if let State::Downloading(d) = &mut self.state {
            d.deadline = None;
        }
    }

    /// The host took the chunk request for sending: the chunk timer starts.
    pub(crate) fn request_sent(&mut self, now: Millis) {
        let timeout = self.cfg.chunk_timeout_ms;
        if let State::Downloading(d) = &mut self.state {
            d.deadline = Some(now.saturating_add(timeout));
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Millis, out: &mut Vec<Out>) {
        let error = match &self.state {
            State::Downloading(d) if d.deadline.is_some_and(|t| t <= now) => format!(
                "chunk {} (byte {} of {}) did not arrive within {} ms",
                d.next_chunk, d.received, d.target.size, self.cfg.chunk_timeout_ms
            ),
            _ => return,
        };
        self.fail(error, out);
    }

    /// `v2/fw/response/{reqId}/chunk/{n}`: binary, never decoded.
    pub(crate) fn handle_chunk(
        &mut self,
        topic: &str,
        payload: &[u8],
        out: &mut Vec<Out>,
    ) -> Result<(), PeerError> {
        let (request, chunk) = parse_chunk_topic(topic)?;
        let d = match &mut self.state {
            State::Downloading(d) if d.request_id == request && d.next_chunk == chunk => d,
            _ => return Err(PeerError::UnexpectedChunk { request, chunk }),
        };
        let remaining = d.target.size - d.received;
        let expected = d.chunk.map_or(remaining, |c| c.min(remaining));
        if payload.len() as u64 != expected {
            let error = format!(
                "chunk {chunk} has {} bytes, expected {expected} (fw_size {})",
                payload.len(),
                d.target.size
            );
            self.fail(error, out);
            return Ok(());
        }
        d.hasher.update(payload);
        let offset = d.received;
        d.received += expected;
        d.next_chunk += 1;
        d.deadline = None;
        let (received, total) = (d.received, d.target.size);
        self.events.push_back(FirmwareEvent::Chunk {
            offset,
            data: payload.to_vec(),
        });
        self.events
            .push_back(FirmwareEvent::Progress { received, total });
        self.request_next(out);
        Ok(())
    }

    /// `v2/fw/error`: plain text (`NOT_FOUND`, `FAILURE`, `PAYLOAD_TOO_LARGE`); the server
    /// closes the connection next (spec 11.2).
    pub(crate) fn handle_error(
        &mut self,
        payload: &[u8],
        out: &mut Vec<Out>,
    ) -> Result<(), PeerError> {
        if !self.is_downloading() {
            return Err(PeerError::NoFirmwareDownload);
        }
        let text = String::from_utf8_lossy(payload);
        self.fail(format!("server refused the download: {text}"), out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Out>) {
        let State::Downloading(d) = core::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        out.push(Out::Telemetry(self.state_telemetry("DOWNLOADED", None)));
        let algorithm = d.target.algorithm;
        let digest = d.hasher.finish();
        if digest.matches(&d.target.checksum) {
            out.push(Out::Telemetry(self.state_telemetry("VERIFIED", None)));
            self.events.push_back(FirmwareEvent::Verified {
                title: d.target.title.clone(),
                version: d.target.version.clone(),
                size: d.received,
            });
            self.state = State::Verified(d.target);
        } else {
            let error = format!(
                "{} checksum mismatch: expected {}, got {}",
                algorithm.name(),
                d.target.checksum,
                digest.hex()
            );
            self.fail_with(d.target.title, d.target.version, error, out);
        }
    }

    /// Ends the active download (or the verified image waiting to be installed) as FAILED.
    /// Returns whether there was one.
    pub(crate) fn fail(&mut self, error: String, out: &mut Vec<Out>) -> bool {
        let (title, version) = match core::mem::replace(&mut self.state, State::Idle) {
            State::Downloading(d) => (d.target.title, d.target.version),
            State::Verified(t) => (t.title, t.version),
            State::Idle => return false,
        };
        self.fail_with(title, version, error, out);
        true
    }

    fn fail_with(&mut self, title: String, version: String, error: String, out: &mut Vec<Out>) {
        self.state = State::Idle;
        out.push(Out::Telemetry(self.state_telemetry("FAILED", Some(&error))));
        self.last_failed = Some((title.clone(), version.clone()));
        self.events.push_back(FirmwareEvent::Failed {
            title,
            version,
            error,
        });
    }

    /// The host installed an image: it becomes current, and UPDATED is reported.
    pub(crate) fn installed(&mut self, title: &str, version: &str) -> Value {
        self.set_current(title, version);
        self.last_failed = None;
        if matches!(&self.state, State::Verified(t) if t.title == title && t.version == version) {
            self.state = State::Idle;
        }
        self.state_telemetry("UPDATED", None)
    }
}

fn parse_target(
    data: &Map<String, Value>,
    title: Option<String>,
    version: Option<String>,
) -> Result<Target, String> {
    let mut missing: Vec<&str> = Vec::new();
    if title.is_none() {
        missing.push(FW_TITLE);
    }
    if version.is_none() {
        missing.push(FW_VERSION);
    }
    for key in [FW_SIZE, FW_CHECKSUM, FW_CHECKSUM_ALGORITHM] {
        if !matches!(data.get(key), Some(v) if !v.is_null()) {
            missing.push(key);
        }
    }
    if let Some(url) = data.get(FW_URL).and_then(Value::as_str) {
        return Err(format!(
            "firmware is hosted at {url}; ThingsBoard serves only stored packages over MQTT"
        ));
    }
    if !missing.is_empty() {
        return Err(format!(
            "firmware attributes missing: {}",
            missing.join(", ")
        ));
    }
    let size = match data.get(FW_SIZE) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "fw_size must be a whole number of bytes, got {}",
            as_json(data.get(FW_SIZE))
        )
    })?;
    let checksum = match data.get(FW_CHECKSUM) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        other => {
            return Err(format!(
                "fw_checksum must be a hex string, got {}",
                as_json(other)
            ))
        }
    };
    let name = text(data.get(FW_CHECKSUM_ALGORITHM)).unwrap_or_default();
    let algorithm = ChecksumAlgorithm::from_name(&name)
        .ok_or_else(|| format!("unsupported fw_checksum_algorithm {name:?}"))?;
    Ok(Target {
        title: title.unwrap_or_default(),
        version: version.unwrap_or_default(),
        size,
        checksum,
        algorithm,
    })
}

/// A value as the server sent it (JSON text: `-5`, `"abc"`) for an error a user reads in
/// `fw_error` and the log; never Rust's `Debug` form (`Some(Number(-5))`).
fn as_json(v: Option<&Value>) -> String {
    let v = v.unwrap_or(&Value::Null);
    String::from_utf8(crate::payload::encode(v)).unwrap_or_default()
}

/// Splits `v2/fw/response/{reqId}/chunk/{n}` into its two numbers.
fn parse_chunk_topic(topic: &str) -> Result<(u32, u64), PeerError> {
    let rest = topic
        .strip_prefix(topics::FW_RESPONSE_PREFIX)
        .ok_or(PeerError::UnknownTopic)?;
    // Design: the request id ends at the first '/', and the numbers are read by hand: no
    // substring search and no `str::parse`, whose code costs flash on a microcontroller.
    let (request, tail) = rest.split_at(rest.find('/').ok_or(PeerError::UnknownTopic)?);
    let chunk = tail
        .strip_prefix(topics::FW_CHUNK_INFIX)
        .ok_or(PeerError::UnknownTopic)?;
    // At most 19 digits: below u64::MAX, so the sum cannot overflow.
    let decimal = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 {
            return None;
        }
        s.bytes().try_fold(0u64, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    };
    let request = decimal(request)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(PeerError::BadId)?;
    let chunk = decimal(chunk).ok_or(PeerError::BadId)?;
    Ok((request, chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut c = Checksum::new(alg);
        c.update(data);
        c.finish().hex().into()
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(
            ChecksumAlgorithm::from_name("sha256"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(ChecksumAlgorithm::from_name("SHA1"), None);
        assert_eq!(ChecksumAlgorithm::from_name(""), None);
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(
                a.to_string().to_lowercase().parse::<ChecksumAlgorithm>(),
                Ok(a)
            );
        }
        let err = "SHA1".parse::<ChecksumAlgorithm>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown checksum algorithm \"SHA1\"; expected one of MD5, SHA256, SHA384, SHA512, \
             CRC32, MURMUR3_32, MURMUR3_128"
        );
        assert_eq!(ChecksumAlgorithm::default(), ChecksumAlgorithm::Sha256);
    }

    #[test]
    fn known_vectors() {
        use ChecksumAlgorithm::*;
        assert_eq!(digest(Md5, b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            digest(Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(Sha384, b"abc"),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            digest(Sha512, b"abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        // CRC-32 check value 0xCBF43926, written little-endian as Guava does.
        assert_eq!(digest(Crc32, b"123456789"), "2639f4cb");
        // murmur3_x86_32("hello", 0) = 613153351 = 0x248bfa47.
        assert_eq!(digest(Murmur3_32, b"hello"), "47fa8b24");
        assert_eq!(digest(Murmur3_32, b""), "00000000");
        assert_eq!(digest(Murmur3_128, b""), "00000000000000000000000000000000");
        // x64_128 of "hello": h1 then h2, each little-endian (Python's
        // `mmh3.hash128(b"hello").to_bytes(16, "little")`).
        assert_eq!(
            digest(Murmur3_128, b"hello"),
            "029bbd41b3a7d8cb191dae486a901e5b"
        );
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(a.checksum(b"hello"), digest(a, b"hello"), "{a:?}");
        }
    }

    /// SMHasher's `VerificationTest`: hash keys `[0]`, `[0,1]`, ... `[0..255]` with seed
    /// `256 - len`, then hash the concatenated digests with seed 0; the first four bytes,
    /// little-endian, are the published check value. This proves the crate computes the
    /// canonical algorithm and that our byte order is the reference C code's.
    fn smhasher_verification(width: usize, hash: impl Fn(&[u8], u32) -> Vec<u8>) -> u32 {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut all = Vec::new();
        for i in 0..256 {
            let h = hash(&key[..i], 256 - i as u32);
            assert_eq!(h.len(), width);
            all.extend_from_slice(&h);
        }
        let f = hash(&all, 0);
        u32::from_le_bytes([f[0], f[1], f[2], f[3]])
    }

    #[test]
    fn murmur3_matches_smhasher_check_values() {
        let v32 = smhasher_verification(4, |d, seed| {
            let mut h = mur3::Hasher32::with_seed(seed);
            h.write(d);
            h.finish32().to_le_bytes().to_vec()
        });
        assert_eq!(v32, 0xB0F5_7EE3);
        let v128 = smhasher_verification(16, |d, seed| {
            let mut h = mur3::Hasher128::with_seed(seed);
            // Feed in uneven pieces to exercise the incremental path.
            for piece in d.chunks(7) {
                h.write(piece);
            }
            let (h1, h2) = h.finish128();
            let mut b = h1.to_le_bytes().to_vec();
            b.extend_from_slice(&h2.to_le_bytes());
            b
        });
        assert_eq!(v128, 0x6384_BA69);
    }

    #[test]
    fn incremental_equals_one_shot_for_every_algorithm() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for a in ChecksumAlgorithm::ALL {
            let whole = digest(a, &data);
            let mut c = Checksum::new(a);
            for piece in data.chunks(333) {
                c.update(piece);
            }
            assert_eq!(c.finish().hex(), whole, "{a:?}");
        }
    }

    #[test]
    fn checksum_comparison_ignores_case_and_accepts_both_orders_for_32_bit_values() {
        let sum = |a, data: &[u8]| {
            let mut c = Checksum::new(a);
            c.update(data);
            c.finish()
        };
        let crc = sum(ChecksumAlgorithm::Crc32, b"123456789");
        assert!(crc.matches("2639f4cb"));
        assert!(crc.matches("2639F4CB"));
        assert!(crc.matches("cbf43926"));
        assert!(crc.matches(" CBF43926\n"));
        assert!(!crc.matches("cbf43927"));
        assert!(!crc.matches(""));
        let m = sum(ChecksumAlgorithm::Murmur3_32, b"hello");
        assert!(m.matches("248BFA47"));
        assert!(m.matches("47fa8b24"));
        // MD5 has one order only.
        let md5 = sum(ChecksumAlgorithm::Md5, b"123456789");
        let hexed = md5.hex().to_string();
        assert!(md5.matches(&hexed.to_uppercase()));
        let reversed: String = hexed
            .as_bytes()
            .chunks(2)
            .rev()
            .map(|p| core::str::from_utf8(p).unwrap())
            .collect();
        assert!(!md5.matches(&reversed));
    }

    #[test]
    fn chunk_topics_parse_strictly() {
        assert_eq!(parse_chunk_topic("v2/fw/response/3/chunk/17"), Ok((3, 17)));
        assert_eq!(
            parse_chunk_topic("v2/fw/response/x/chunk/0"),
            Err(PeerError::BadId)
        );
        assert_eq!(
            parse_chunk_topic("v2/fw/response/1/chunk/"),
            Err(PeerError::BadId)
        );
        assert_eq!(
            parse_chunk_topic("v2/fw/response/1"),
            Err(PeerError::UnknownTopic)
        );
        assert_eq!(
            parse_chunk_topic("v2/fw/response/99999999999/chunk/0"),
            Err(PeerError::BadId)
        );
        assert_eq!(
            parse_chunk_topic("v2/fw/response/4294967295/chunk/9999999999999999999"),
            Ok((u32::MAX, 9_999_999_999_999_999_999))
        );
        for bad in [
            "v2/fw/response/1/chunk/99999999999999999999", // 20 digits
            "v2/fw/response/1/chunk/+1",
            "v2/fw/response/1/chunk/1 ",
            "v2/fw/response//chunk/1",
        ] {
            assert_eq!(parse_chunk_topic(bad), Err(PeerError::BadId), "{bad}");
        }
        for unknown in ["v2/fw/response/1/chunks/1", "v2/fw/response/1/x/chunk/1"] {
            assert_eq!(
                parse_chunk_topic(unknown),
                Err(PeerError::UnknownTopic),
                "{unknown}"
            );
        }
    }

    #[test]
    fn missing_attributes_are_named() {
        let data: Map<String, Value> = serde_json::from_str(
            r#"{"fw_title":"t","fw_version":"2","fw_checksum_algorithm":"MD5"}"#,
        )
        .unwrap();
        let err = parse_target(&data, Some("t".into()), Some("2".into())).unwrap_err();
        assert_eq!(err, "firmware attributes missing: fw_size, fw_checksum");
    }

    #[test]
    fn state_telemetry_keys_are_sorted_so_both_serde_builds_agree() {
        let fw = Firmware::new(FirmwareConfig::default(), 65536);
        let v = fw.state_telemetry("FAILED", Some("boom"));
        assert_eq!(
            crate::payload::encode(&v),
            br#"{"current_fw_title":"Initial","current_fw_version":"v0","fw_error":"boom","fw_state":"FAILED"}"#
        );
    }
}
