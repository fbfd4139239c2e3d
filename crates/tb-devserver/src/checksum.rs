//! Firmware checksums as ThingsBoard computes them (spec 11.1).
//!
//! Design: the checksums are computed here with the same crates tb-core uses, but by separate
//! code, so a client checked against this server is not checked against itself.

use std::fmt;
use std::str::FromStr;

use md5::Digest as _;

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
}
