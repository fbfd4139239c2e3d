//! MQTT 3.1.1 packets a client writes and reads (OASIS mqtt-v3.1.1, section 3).
//!
//! Encoders append one whole packet to a `Vec<u8>`; [`decode`] reads one packet a server sends
//! from the front of a buffer, borrowing topic and payload from it, or says it needs more
//! bytes. Packets a server never sends to a client (CONNECT, SUBSCRIBE, PINGREQ, ...) and QoS 2
//! flows (ThingsBoard grants at most QoS 1) are protocol errors.

use alloc::vec::Vec;

/// Packet types (fixed header, bits 7-4).
mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

/// Largest remaining length the protocol can express (four length bytes).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A packet from the server, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNACK (3.2): `code` 0 is accepted, 1-5 are refusals.
    ConnAck {
        /// The server kept a session for this client id.
        session_present: bool,
        /// Connect return code.
        code: u8,
    },
    /// PUBLISH (3.3) at QoS 0 (`pkid` None) or 1.
    Publish {
        /// Topic name.
        topic: &'a str,
        /// Packet identifier, present for QoS 1.
        pkid: Option<u16>,
        /// Application message.
        payload: &'a [u8],
        /// The DUP flag.
        dup: bool,
        /// The RETAIN flag.
        retain: bool,
    },
    /// PUBACK (3.4).
    PubAck {
        /// The acknowledged publish.
        pkid: u16,
    },
    /// SUBACK (3.9): one return code per filter (0-2 granted QoS, 0x80 failure).
    SubAck {
        /// The acknowledged subscribe.
        pkid: u16,
        /// Return codes in filter order.
        codes: &'a [u8],
    },
    /// UNSUBACK (3.11).
    UnsubAck {
        /// The acknowledged unsubscribe.
        pkid: u16,
    },
    /// PINGRESP (3.13).
    PingResp,
}

/// What is wrong with bytes from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining length uses more than four bytes.
    BadRemainingLength,
    /// The packet is bigger than the client's limit.
    TooLarge {
        /// Fixed header plus remaining length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A packet type a server does not send to a client, or QoS 2.
    Unexpected {
        /// First byte of the fixed header.
        header: u8,
    },
    /// Reserved flag bits set, or a body of the wrong length.
    Malformed(&'static str),
    /// A topic name that is not UTF-8.
    BadUtf8,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadRemainingLength => f.write_str("remaining length over four bytes"),
            DecodeError::TooLarge { size, max } => {
                write!(f, "packet of {size} bytes over the {max}-byte limit")
            }
            DecodeError::Unexpected { header } => {
                write!(f, "unexpected packet from a server (header 0x{header:02x})")
            }
            DecodeError::Malformed(what) => write!(f, "malformed {what}"),
            DecodeError::BadUtf8 => f.write_str("topic name is not UTF-8"),
        }
    }
}

/// Reads the remaining length at `buf[1..]`: `Ok(None)` if more bytes are needed, else the
/// length and how many bytes encoded it.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::BadRemainingLength)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes the packet at the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of it, else the packet and the bytes it took.
/// A packet whose total size exceeds `max_size` is refused as soon as its length is known, so
/// a hostile length never makes the caller buffer more than `max_size` bytes.
pub fn decode(buf: &[u8], max_size: usize) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some(&header) = buf.first() else {
        return Ok(None);
    };
    let Some((len, len_bytes)) = remaining_length(buf)? else {
        return Ok(None);
    };
    let size = 1 + len_bytes + len;
    if size > max_size {
        return Err(DecodeError::TooLarge {
            size,
            max: max_size,
        });
    }
    let Some(body) = buf.get(1 + len_bytes..size) else {
        return Ok(None);
    };
    let flags = header & 0x0f;
    let ack = |what| -> Result<u16, DecodeError> {
        if flags != 0 || body.len() != 2 {
            return Err(DecodeError::Malformed(what));
        }
        u16_at(body, 0).ok_or(DecodeError::Malformed(what))
    };
    let packet = match header >> 4 {
        kind::CONNACK => {
            if flags != 0 || body.len() != 2 || body[0] & 0xfe != 0 {
                return Err(DecodeError::Malformed("CONNACK"));
            }
            Packet::ConnAck {
                session_present: body[0] & 1 == 1,
                code: body[1],
            }
        }
        kind::PUBLISH => {
            let qos = (flags >> 1) & 3;
            if qos > 1 {
                return Err(DecodeError::Unexpected { header });
            }
            let topic_len = usize::from(u16_at(body, 0).ok_or(DecodeError::Malformed("PUBLISH"))?);
            let topic_end = 2 + topic_len;
            let topic = body
                .get(2..topic_end)
                .ok_or(DecodeError::Malformed("PUBLISH"))?;
            let topic = core::str::from_utf8(topic).map_err(|_| DecodeError::BadUtf8)?;
            let (pkid, payload_at) = if qos == 1 {
                let id = u16_at(body, topic_end).ok_or(DecodeError::Malformed("PUBLISH"))?;
                if id == 0 {
                    return Err(DecodeError::Malformed("PUBLISH packet id 0"));
                }
                (Some(id), topic_end + 2)
            } else {
                (None, topic_end)
            };
            Packet::Publish {
                topic,
                pkid,
                payload: &body[payload_at..],
                dup: flags & 0x08 != 0,
                retain: flags & 0x01 != 0,
            }
        }
        kind::PUBACK => Packet::PubAck {
            pkid: ack("PUBACK")?,
        },
        kind::SUBACK => {
            if flags != 0 || body.len() < 3 {
                return Err(DecodeError::Malformed("SUBACK"));
            }
            Packet::SubAck {
                pkid: u16_at(body, 0).ok_or(DecodeError::Malformed("SUBACK"))?,
                codes: &body[2..],
            }
        }
        kind::UNSUBACK => Packet::UnsubAck {
            pkid: ack("UNSUBACK")?,
        },
        kind::PINGRESP => {
            if flags != 0 || !body.is_empty() {
                return Err(DecodeError::Malformed("PINGRESP"));
            }
            Packet::PingResp
        }
        _ => return Err(DecodeError::Unexpected { header }),
    };
    Ok(Some((packet, size)))
}

/// Appends the remaining length of a packet.
fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

/// Appends a length-prefixed field (UTF-8 string or binary data, at most 65,535 bytes: the
/// callers check).
fn put_field(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Bytes a PUBLISH of this topic and payload takes (for a size check before queueing).
pub fn publish_size(topic: &str, payload_len: usize, qos1: bool) -> usize {
    let len = 2 + topic.len() + if qos1 { 2 } else { 0 } + payload_len;
    1 + length_bytes(len) + len
}

fn length_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// CONNECT (3.1) with protocol level 4, a clean session and no will.
///
/// `client_id`, `username` and `password` must each be at most 65,535 bytes.
pub fn connect(
    out: &mut Vec<u8>,
    client_id: &str,
    username: Option<&str>,
    password: Option<&[u8]>,
    keep_alive_s: u16,
) {
    let mut flags = 0x02; // clean session
    let mut len = 10 + 2 + client_id.len();
    if let Some(u) = username {
        flags |= 0x80;
        len += 2 + u.len();
    }
    if let Some(p) = password {
        flags |= 0x40;
        len += 2 + p.len();
    }
    out.push(kind::CONNECT << 4);
    put_remaining_length(out, len);
    put_field(out, b"MQTT");
    out.push(4); // protocol level 3.1.1
    out.push(flags);
    out.extend_from_slice(&keep_alive_s.to_be_bytes());
    put_field(out, client_id.as_bytes());
    if let Some(u) = username {
        put_field(out, u.as_bytes());
    }
    if let Some(p) = password {
        put_field(out, p);
    }
}

/// PUBLISH (3.3) at QoS 0 (`pkid` None) or QoS 1 (`pkid` Some), never retained.
pub fn publish(out: &mut Vec<u8>, topic: &str, payload: &[u8], pkid: Option<u16>, dup: bool) {
    let mut header = kind::PUBLISH << 4;
    if pkid.is_some() {
        header |= 0x02;
        if dup {
            header |= 0x08;
        }
    }
    out.push(header);
    put_remaining_length(out, 2 + topic.len() + pkid.map_or(0, |_| 2) + payload.len());
    put_field(out, topic.as_bytes());
    if let Some(id) = pkid {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// PUBACK (3.4).
pub fn puback(out: &mut Vec<u8>, pkid: u16) {
    out.extend_from_slice(&[kind::PUBACK << 4, 2]);
    out.extend_from_slice(&pkid.to_be_bytes());
}

/// SUBSCRIBE (3.8): every filter at `qos`.
pub fn subscribe(out: &mut Vec<u8>, pkid: u16, filters: &[&str], qos: u8) {
    let len = 2 + filters.iter().map(|f| 2 + f.len() + 1).sum::<usize>();
    out.push(kind::SUBSCRIBE << 4 | 0x02); // reserved flags 0010 (3.8.1)
    put_remaining_length(out, len);
    out.extend_from_slice(&pkid.to_be_bytes());
    for f in filters {
        put_field(out, f.as_bytes());
        out.push(qos);
    }
}

/// PINGREQ (3.12).
pub fn pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[kind::PINGREQ << 4, 0]);
}

/// DISCONNECT (3.14).
pub fn disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[kind::DISCONNECT << 4, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_with_token_and_keepalive() {
        let mut out = Vec::new();
        connect(&mut out, "c1", Some("tok"), None, 60);
        #[rustfmt::skip]
        let want = [
            0x10, 19,                 // CONNECT, remaining length (10 + 4 + 5)
            0, 4, b'M', b'Q', b'T', b'T',
            4,                        // protocol level 3.1.1
            0x82,                     // user name, clean session
            0, 60,                    // keep alive
            0, 2, b'c', b'1',         // client id
            0, 3, b't', b'o', b'k',   // user name
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn publish_qos1_carries_pkid_and_dup() {
        let mut out = Vec::new();
        publish(&mut out, "a/b", b"{}", Some(7), true);
        #[rustfmt::skip]
        let want = [
            0x3a, 9,                  // PUBLISH, DUP, QoS 1
            0, 3, b'a', b'/', b'b',   // topic
            0, 7,                     // packet id
            b'{', b'}',
        ];
        assert_eq!(out, want);
        assert_eq!(publish_size("a/b", 2, true), out.len());
    }

    #[test]
    fn publish_qos0_has_no_pkid_and_no_dup() {
        let mut out = Vec::new();
        publish(&mut out, "t", b"x", None, true);
        assert_eq!(out, [0x30, 4, 0, 1, b't', b'x']);
    }

    #[test]
    fn subscribe_lists_each_filter_with_qos() {
        let mut out = Vec::new();
        subscribe(&mut out, 1, &["a", "b/+"], 1);
        #[rustfmt::skip]
        let want = [
            0x82, 12,
            0, 1,                          // packet id
            0, 1, b'a', 1,                 // filter, QoS
            0, 3, b'b', b'/', b'+', 1,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn long_remaining_length_takes_two_bytes() {
        let mut out = Vec::new();
        let payload = [0u8; 200];
        publish(&mut out, "t", &payload, None, false);
        assert_eq!(&out[..3], &[0x30, 0xcb, 0x01]); // 203 = 0x4b | 1 << 7
        assert_eq!(publish_size("t", 200, false), out.len());
        let (p, n) = decode(&out, 1024).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert!(matches!(p, Packet::Publish { topic: "t", payload, .. } if payload.len() == 200));
    }

    #[test]
    fn decodes_server_packets() {
        assert_eq!(
            decode(&[0x20, 2, 0, 0], 64),
            Ok(Some((
                Packet::ConnAck {
                    session_present: false,
                    code: 0
                },
                4
            )))
        );
        assert_eq!(
            decode(&[0x40, 2, 1, 2, 0xff], 64),
            Ok(Some((Packet::PubAck { pkid: 0x0102 }, 4)))
        );
        assert_eq!(
            decode(&[0x90, 4, 0, 1, 1, 0x80], 64),
            Ok(Some((
                Packet::SubAck {
                    pkid: 1,
                    codes: &[1, 0x80]
                },
                6
            )))
        );
        assert_eq!(decode(&[0xd0, 0], 64), Ok(Some((Packet::PingResp, 2))));
        #[rustfmt::skip]
        let publish = [
            0x33, 8,                  // PUBLISH QoS 1, RETAIN
            0, 1, b't',
            0, 9,                     // packet id
            b'a', b'b', b'c',
        ];
        assert_eq!(
            decode(&publish, 64),
            Ok(Some((
                Packet::Publish {
                    topic: "t",
                    pkid: Some(9),
                    payload: b"abc",
                    dup: false,
                    retain: true
                },
                10
            )))
        );
    }

    #[test]
    fn partial_input_needs_more() {
        let full = [0x30, 4, 0, 1, b't', b'x'];
        for n in 0..full.len() {
            assert_eq!(decode(&full[..n], 64), Ok(None), "{n} bytes");
        }
        assert_eq!(decode(&[0x30, 0x80, 0x80], 64), Ok(None));
    }

    #[test]
    fn refuses_what_a_server_must_not_send() {
        assert_eq!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0xff], 64),
            Err(DecodeError::BadRemainingLength)
        );
        assert_eq!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0x7f], 64),
            Err(DecodeError::TooLarge {
                size: 5 + MAX_REMAINING_LENGTH,
                max: 64
            })
        );
        assert_eq!(
            decode(&[0x34, 5, 0, 1, b't', 0, 1], 64),
            Err(DecodeError::Unexpected { header: 0x34 }) // QoS 2
        );
        assert_eq!(
            decode(&[0x10, 0], 64),
            Err(DecodeError::Unexpected { header: 0x10 }) // CONNECT
        );
        assert_eq!(
            decode(&[0x30, 3, 0, 5, b't'], 64),
            Err(DecodeError::Malformed("PUBLISH")) // topic longer than the packet
        );
        assert_eq!(
            decode(&[0x30, 3, 0, 1, 0xff], 64),
            Err(DecodeError::BadUtf8)
        );
        assert_eq!(
            decode(&[0x32, 5, 0, 1, b't', 0, 0], 64),
            Err(DecodeError::Malformed("PUBLISH packet id 0"))
        );
        assert_eq!(
            decode(&[0x41, 2, 0, 1], 64),
            Err(DecodeError::Malformed("PUBACK"))
        );
        assert_eq!(
            decode(&[0x20, 2, 2, 0], 64),
            Err(DecodeError::Malformed("CONNACK"))
        );
    }
}
