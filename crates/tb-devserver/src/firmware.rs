//! Firmware packages: checksums as ThingsBoard computes them, the `fw_*` shared attributes an
//! assignment sets (spec 11.1, 17.41) and chunk slicing as ThingsBoard's OTA cache does it
//! (spec 11.2, 17.42).
//!
//! Design: the checksums are computed here with the same crates tb-core uses, but by separate
//! code, so a client checked against this server is not checked against itself.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use md5::Digest as _;

use crate::store::FirmwarePackage;
use crate::value::TbValue;

/// The checksum algorithms ThingsBoard offers for a package (`ChecksumAlgorithm`, spec 11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumAlgorithm {
    /// `MD5`.
    Md5,
    /// `SHA256`, ThingsBoard's default.
    #[default]
    Sha256,
    /// `SHA384`.
    Sha384,
    /// `SHA512`.
    Sha512,
    /// `CRC32` (ISO-HDLC, as `java.util.zip.CRC32`).
    Crc32,
    /// `MURMUR3_32` (x86 32-bit, seed 0).
    Murmur3_32,
    /// `MURMUR3_128` (x64 128-bit, seed 0).
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

    /// ThingsBoard's name (`"SHA256"`), the value of `fw_checksum_algorithm`.
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

    /// The algorithm named `name`, ignoring ASCII case (`"sha256"` works).
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The checksum ThingsBoard computes for `data` when the uploader gives none: Guava's
    /// `HashCode.toString()`, lowercase hex of the hash bytes. That is the usual digest for
    /// MD5 and SHA*, the 32-bit value little-endian for CRC32 and MURMUR3_32 (CRC32
    /// `0x12345678` is `"78563412"`), and `h1` then `h2`, each little-endian, for
    /// MURMUR3_128. spec: thingsboard-mqtt.md 11.1, checksum note.
    pub fn checksum(self, data: &[u8]) -> String {
        match self {
            ChecksumAlgorithm::Md5 => hex(&md5::Md5::digest(data)),
            ChecksumAlgorithm::Sha256 => hex(&sha2::Sha256::digest(data)),
            ChecksumAlgorithm::Sha384 => hex(&sha2::Sha384::digest(data)),
            ChecksumAlgorithm::Sha512 => hex(&sha2::Sha512::digest(data)),
            ChecksumAlgorithm::Crc32 => {
                let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data);
                hex(&crc.to_le_bytes())
            }
            ChecksumAlgorithm::Murmur3_32 => hex(&mur3::murmurhash3_x86_32(data, 0).to_le_bytes()),
            ChecksumAlgorithm::Murmur3_128 => {
                let (h1, h2) = mur3::murmurhash3_x64_128(data, 0);
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&h1.to_le_bytes());
                b[8..].copy_from_slice(&h2.to_le_bytes());
                hex(&b)
            }
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of [`ChecksumAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
        write!(
            f,
            "unknown checksum algorithm {:?}; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for ChecksumAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownAlgorithm(s.into()))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Every `fw_*` shared attribute, in ThingsBoard's order (`OtaPackageKey`); removing an
/// assignment deletes them all in one push. spec: 11.1.
pub(crate) const ALL_FW_ATTRIBUTE_KEYS: [&str; 9] = [
    "fw_title",
    "fw_version",
    "fw_ts",
    "fw_state",
    "fw_size",
    "fw_checksum",
    "fw_checksum_algorithm",
    "fw_url",
    "fw_tag",
];

/// What an assignment writes: the shared attributes in ThingsBoard's order (title, version,
/// size, checksum algorithm, checksum, then the tag if any) and the keys it deletes
/// (`fw_tag` without a tag, and `fw_url` since the image is stored here). spec: 11.1, 17.41.
pub(crate) fn assignment_attributes(
    package: &FirmwarePackage,
    checksum: &str,
) -> (Vec<(String, TbValue)>, Vec<&'static str>) {
    let size = i64::try_from(package.data.len()).unwrap_or(i64::MAX);
    let mut attrs = vec![
        (
            "fw_title".to_string(),
            TbValue::String(package.title.clone()),
        ),
        (
            "fw_version".to_string(),
            TbValue::String(package.version.clone()),
        ),
        ("fw_size".to_string(), TbValue::Long(size)),
        (
            "fw_checksum_algorithm".to_string(),
            TbValue::String(package.checksum_algorithm.name().into()),
        ),
        ("fw_checksum".to_string(), TbValue::String(checksum.into())),
    ];
    let deleted = match &package.tag {
        Some(tag) => {
            attrs.push(("fw_tag".to_string(), TbValue::String(tag.clone())));
            vec!["fw_url"]
        }
        None => vec!["fw_tag", "fw_url"],
    };
    (attrs, deleted)
}

/// The bytes ThingsBoard's OTA cache returns for chunk `index` of `size` bytes
/// (`CaffeineOtaPackageCache.get(key, chunkSize, chunk)`): the whole image when `size < 1`,
/// else `[index*size, index*size+size)` clipped to the image, empty past the end. `None`
/// when ThingsBoard would fail to slice and send nothing: its `int` product wraps, and a
/// negative start makes `System.arraycopy` throw, which the transport logs and drops (the
/// PUBACK has gone out already). spec: 11.2, 17.42.
pub(crate) fn chunk(data: &Bytes, size: i32, index: i32) -> Option<Bytes> {
    if size < 1 {
        return Some(data.clone());
    }
    let len = i32::try_from(data.len()).unwrap_or(i32::MAX);
    if len == 0 {
        return Some(Bytes::new());
    }
    let start = size.wrapping_mul(index);
    let n = len.wrapping_sub(start).min(size);
    if start >= len || n <= 0 {
        return Some(Bytes::new());
    }
    let (Ok(start), Ok(n)) = (usize::try_from(start), usize::try_from(n)) else {
        return None;
    };
    Some(data.slice(start..start + n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_of_known_inputs_in_guava_byte_order() {
        let abc = b"abc";
        assert_eq!(
            ChecksumAlgorithm::Md5.checksum(abc),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            ChecksumAlgorithm::Sha256.checksum(abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ChecksumAlgorithm::Sha384
            .checksum(abc)
            .starts_with("cb00753f45a35e8b"));
        assert!(ChecksumAlgorithm::Sha512
            .checksum(abc)
            .starts_with("ddaf35a193617aba"));
        // CRC-32 of "123456789" is 0xcbf43926; Guava writes it little-endian.
        assert_eq!(ChecksumAlgorithm::Crc32.checksum(b"123456789"), "2639f4cb");
        // MurmurHash3 x86_32 of "" with seed 0 is 0; of "hello" it is 0x248bfa47.
        assert_eq!(ChecksumAlgorithm::Murmur3_32.checksum(b""), "00000000");
        assert_eq!(ChecksumAlgorithm::Murmur3_32.checksum(b"hello"), "47fa8b24");
        // x64_128 of "" with seed 0 is (0, 0).
        assert_eq!(ChecksumAlgorithm::Murmur3_128.checksum(b""), "0".repeat(32));
        // x64_128 of "hello": h1 then h2, each little-endian (as Python's
        // `mmh3.hash128(b"hello").to_bytes(16, "little")`).
        assert_eq!(
            ChecksumAlgorithm::Murmur3_128.checksum(b"hello"),
            "029bbd41b3a7d8cb191dae486a901e5b"
        );
    }

    #[test]
    fn names_round_trip_and_ignore_case() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(a.name()), Some(a));
            assert_eq!(a.name().to_lowercase().parse::<ChecksumAlgorithm>(), Ok(a));
        }
        let err = "SHA1".parse::<ChecksumAlgorithm>().unwrap_err();
        assert!(err.to_string().contains("\"SHA1\""), "{err}");
        assert!(err.to_string().contains("MURMUR3_128"), "{err}");
    }

    #[test]
    fn chunks_slice_clip_and_wrap_as_thingsboard_does() {
        let data = Bytes::from_static(b"0123456789");
        let at = |size, index| chunk(&data, size, index).map(|b| b.to_vec());
        assert_eq!(at(0, 5), Some(b"0123456789".to_vec())); // size 0: whole image
        assert_eq!(at(-3, 0), Some(b"0123456789".to_vec()));
        assert_eq!(at(4, 0), Some(b"0123".to_vec()));
        assert_eq!(at(4, 2), Some(b"89".to_vec())); // short last chunk
        assert_eq!(at(4, 3), Some(Vec::new())); // past the end
        assert_eq!(at(i32::MAX, 1), Some(Vec::new()));
        // 65536 * 65536 wraps to 0 in Java's int: chunk 0 again.
        assert_eq!(chunk(&data, 65536, 65536).map(|b| b.len()), Some(10));
        // 65536 * 32768 wraps to i32::MIN; the length check then fails: empty.
        assert_eq!(at(65536, 32768), Some(Vec::new()));
        // 65536 * 65535 wraps to -65536: ThingsBoard's arraycopy throws, nothing is sent.
        assert_eq!(at(65536, 65535), None);
        assert_eq!(chunk(&Bytes::new(), 4, 0), Some(Bytes::new()));
    }
}
