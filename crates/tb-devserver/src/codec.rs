//! MQTT framing on top of rumqttc's `mqttbytes` (3.1.1) and `v5::mqttbytes` (5) codecs.
//!
//! Packets are mapped to small version-neutral enums so the session logic is written once.
//! The only bytes this module reads itself are the CONNECT protocol name and level, to pick
//! the codec (and to accept MQTT 3.1 `MQIsdp`/3, which rumqttc does not know: its CONNECT is
//! rewritten to the 3.1.1 layout, which is otherwise identical).

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::{self as m4, v4};
use rumqttc::v5::mqttbytes::{self as m5base, v5};

/// MQTT protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MqttVersion {
    /// MQTT 3.1 (`MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (`MQTT`, level 4).
    V311,
    /// MQTT 5 (`MQTT`, level 5).
    V5,
}

impl MqttVersion {
    /// `3.1`, `3.1.1` or `5`.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V31 => "3.1",
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

/// A decoded CONNECT.
#[derive(Debug, Clone)]
pub(crate) struct ConnectInfo {
    pub(crate) version: MqttVersion,
    pub(crate) client_id: String,
    pub(crate) clean_session: bool,
    /// Empty when absent.
    pub(crate) username: String,
    /// `None` when the password flag is clear (or the password is empty).
    pub(crate) password: Option<String>,
}

/// A packet from the client, version-neutral.
#[derive(Debug)]
pub(crate) enum Inbound {
    Connect(ConnectInfo),
    Publish {
        topic: String,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    },
    PubAck(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet the server ignores (PUBREC/PUBREL/PUBCOMP, packets only servers send).
    Ignored,
}

/// Why no packet came out of the buffer.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// Wait for more bytes.
    Incomplete,
    /// Remaining length above the limit (spec 2.5).
    TooLarge(usize),
    /// Undecodable packet.
    Malformed(String),
    /// CONNECT with a protocol name/level the server does not speak (spec 2.2).
    BadProtocol(String),
}

/// CONNACK outcomes, mapped per version as spec 3.5 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnCode {
    Accepted,
    /// 5 / 0x86.
    BadCredentials,
    /// 2 / 0x85.
    IdentifierRejected,
    /// 5 / 0x87.
    NotAuthorized,
}

impl ConnCode {
    /// The code byte this outcome carries for `version`.
    pub(crate) fn wire(self, version: MqttVersion) -> u8 {
        match (self, version) {
            (ConnCode::Accepted, _) => 0,
            (ConnCode::BadCredentials, MqttVersion::V5) => 0x86,
            (ConnCode::IdentifierRejected, MqttVersion::V5) => 0x85,
            (ConnCode::NotAuthorized, MqttVersion::V5) => 0x87,
            (ConnCode::IdentifierRejected, _) => 2,
            (ConnCode::BadCredentials | ConnCode::NotAuthorized, _) => 5,
        }
    }
}

/// A packet to the client, version-neutral. Reason codes matter only on MQTT 5.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    ConnAck {
        code: ConnCode,
        session_present: bool,
    },
    /// `reason`: MQTT 5 PUBACK reason code (0 = success).
    PubAck {
        pkid: u16,
        reason: u8,
    },
    /// `codes`: `Some(qos)` granted, `None` refused (0x80 / 0x8F).
    SubAck {
        pkid: u16,
        codes: Vec<Option<u8>>,
    },
    /// `existed`: per filter, for MQTT 5 (0x00 / 0x11).
    UnsubAck {
        pkid: u16,
        existed: Vec<bool>,
    },
    Publish {
        topic: String,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    },
    PingResp,
    /// MQTT 5 only; ignored on 3.x.
    Disconnect(u8),
}

/// Length in bytes of the remaining-length field starting at `buf[1]`, if complete.
fn remaining_length_field(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 0..4 {
        let byte = *buf.get(1 + i)?;
        len += ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((i + 1, len));
        }
    }
    None
}

fn m4_err(e: m4::Error) -> DecodeError {
    match e {
        m4::Error::InsufficientBytes(_) => DecodeError::Incomplete,
        m4::Error::PayloadSizeLimitExceeded(n) => DecodeError::TooLarge(n),
        other => DecodeError::Malformed(other.to_string()),
    }
}

fn m5_err(e: m5base::Error) -> DecodeError {
    match e {
        m5base::Error::InsufficientBytes(_) => DecodeError::Incomplete,
        m5base::Error::PayloadSizeLimitExceeded { pkt_size, .. } => DecodeError::TooLarge(pkt_size),
        other => DecodeError::Malformed(other.to_string()),
    }
}

fn qos_u8(q: m4::QoS) -> u8 {
    q as u8
}

/// Decodes the first CONNECT of a connection.
pub(crate) fn decode_connect(buf: &mut BytesMut, max: usize) -> Result<Inbound, DecodeError> {
    // Frame first (checks the size limit before anything else).
    let header = m4::check(buf.iter(), max).map_err(m4_err)?;
    if header.packet_type().map_err(m4_err)? != m4::PacketType::Connect {
        return Err(DecodeError::BadProtocol(
            "first packet is not CONNECT".into(),
        ));
    }
    let frame_len = header.frame_length();
    let (len_len, remaining) =
        remaining_length_field(buf).ok_or_else(|| DecodeError::Malformed("length".into()))?;
    let vh = 1 + len_len;
    let name_len = buf
        .get(vh..vh + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| DecodeError::Malformed("short CONNECT".into()))?;
    let name = buf
        .get(vh + 2..vh + 2 + name_len)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| DecodeError::Malformed("short CONNECT".into()))?;
    let level = *buf
        .get(vh + 2 + name_len)
        .ok_or_else(|| DecodeError::Malformed("short CONNECT".into()))?;
    // MQTT 3.1.1 3.1.2-3 (and MQTT 5 3.1.2.3): the reserved flag must be 0, else the server
    // closes the connection (the codec does not check it).
    let flags = *buf
        .get(vh + 2 + name_len + 1)
        .ok_or_else(|| DecodeError::Malformed("short CONNECT".into()))?;
    if flags & 1 != 0 {
        return Err(DecodeError::Malformed(
            "CONNECT reserved flag is set".into(),
        ));
    }
    match (name.as_str(), level) {
        ("MQTT", 4) => match v4::Packet::read(buf, max).map_err(m4_err)? {
            v4::Packet::Connect(c) => Ok(Inbound::Connect(connect_v4(c, MqttVersion::V311))),
            _ => Err(DecodeError::Malformed("not a CONNECT".into())),
        },
        ("MQTT", 5) => match v5::Packet::read(buf, Some(max as u32)).map_err(m5_err)? {
            v5::Packet::Connect(c, _will, login) => {
                let (username, password) = match login {
                    Some(l) => (l.username, Some(l.password).filter(|p| !p.is_empty())),
                    None => (String::new(), None),
                };
                Ok(Inbound::Connect(ConnectInfo {
                    version: MqttVersion::V5,
                    client_id: c.client_id,
                    clean_session: c.clean_start,
                    username,
                    password,
                }))
            }
            _ => Err(DecodeError::Malformed("not a CONNECT".into())),
        },
        ("MQIsdp", 3) => {
            // Same layout as 3.1.1 apart from the name and level: rewrite and reuse the codec.
            let frame = buf.split_to(frame_len);
            let tail = frame
                .get(vh + 2 + name_len + 1..)
                .ok_or_else(|| DecodeError::Malformed("short CONNECT".into()))?;
            let new_remaining = remaining - 2;
            let mut rewritten = BytesMut::with_capacity(frame_len);
            rewritten.put_u8(0x10);
            let mut x = new_remaining;
            loop {
                let mut byte = (x % 128) as u8;
                x /= 128;
                if x > 0 {
                    byte |= 0x80;
                }
                rewritten.put_u8(byte);
                if x == 0 {
                    break;
                }
            }
            rewritten.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4]);
            rewritten.extend_from_slice(tail);
            match v4::Packet::read(&mut rewritten, usize::MAX).map_err(m4_err)? {
                v4::Packet::Connect(c) => {
                    // Netty enforces MQTT 3.1's 1..23 character client id.
                    let n = c.client_id.chars().count();
                    if n == 0 || n > 23 {
                        return Err(DecodeError::BadProtocol(format!(
                            "MQTT 3.1 client id of {n} characters"
                        )));
                    }
                    Ok(Inbound::Connect(connect_v4(c, MqttVersion::V31)))
                }
                _ => Err(DecodeError::Malformed("not a CONNECT".into())),
            }
        }
        (name, level) => Err(DecodeError::BadProtocol(format!(
            "protocol name {name:?} level {level}"
        ))),
    }
}

fn connect_v4(c: v4::Connect, version: MqttVersion) -> ConnectInfo {
    let (username, password) = match c.login {
        Some(l) => (l.username, Some(l.password).filter(|p| !p.is_empty())),
        None => (String::new(), None),
    };
    ConnectInfo {
        version,
        client_id: c.client_id,
        clean_session: c.clean_session,
        username,
        password,
    }
}

/// Decodes one packet after CONNECT.
pub(crate) fn decode(
    buf: &mut BytesMut,
    version: MqttVersion,
    max: usize,
) -> Result<Inbound, DecodeError> {
    if version == MqttVersion::V5 {
        return decode_v5(buf, max);
    }
    Ok(match v4::Packet::read(buf, max).map_err(m4_err)? {
        v4::Packet::Connect(_) => {
            return Err(DecodeError::Malformed("second CONNECT".into()));
        }
        v4::Packet::Publish(p) => Inbound::Publish {
            topic: p.topic,
            qos: qos_u8(p.qos),
            pkid: p.pkid,
            payload: p.payload,
        },
        v4::Packet::PubAck(a) => Inbound::PubAck(a.pkid),
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos_u8(f.qos)))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Disconnect => Inbound::Disconnect,
        _ => Inbound::Ignored,
    })
}

fn decode_v5(buf: &mut BytesMut, max: usize) -> Result<Inbound, DecodeError> {
    Ok(
        match v5::Packet::read(buf, Some(max as u32)).map_err(m5_err)? {
            v5::Packet::Connect(..) => {
                return Err(DecodeError::Malformed("second CONNECT".into()));
            }
            v5::Packet::Publish(p) => Inbound::Publish {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                qos: p.qos as u8,
                pkid: p.pkid,
                payload: p.payload,
            },
            v5::Packet::PubAck(a) => Inbound::PubAck(a.pkid),
            v5::Packet::Subscribe(s) => Inbound::Subscribe {
                pkid: s.pkid,
                filters: s
                    .filters
                    .into_iter()
                    .map(|f| (f.path, f.qos as u8))
                    .collect(),
            },
            v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
                pkid: u.pkid,
                filters: u.filters,
            },
            v5::Packet::PingReq(_) => Inbound::PingReq,
            v5::Packet::Disconnect(_) => Inbound::Disconnect,
            _ => Inbound::Ignored,
        },
    )
}

fn to_qos(q: u8) -> m4::QoS {
    match q {
        0 => m4::QoS::AtMostOnce,
        _ => m4::QoS::AtLeastOnce,
    }
}

fn to_qos5(q: u8) -> m5base::QoS {
    match q {
        0 => m5base::QoS::AtMostOnce,
        _ => m5base::QoS::AtLeastOnce,
    }
}

/// Appends `packet` to `out` in the connection's version. Returns `false` if rumqttc refused
/// to encode it (never expected for the packets the server builds).
pub(crate) fn encode(out: &mut BytesMut, version: MqttVersion, packet: Outbound) -> bool {
    let result = if version == MqttVersion::V5 {
        encode_v5(out, packet)
    } else {
        encode_v4(out, packet)
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            log::warn!(target: "thingsboard_sdk.devserver", "cannot encode packet: {e}");
            false
        }
    }
}

fn encode_v4(out: &mut BytesMut, packet: Outbound) -> Result<(), String> {
    let p = match packet {
        Outbound::ConnAck {
            code,
            session_present,
        } => {
            let code = match code.wire(MqttVersion::V311) {
                0 => v4::ConnectReturnCode::Success,
                2 => v4::ConnectReturnCode::BadClientId,
                _ => v4::ConnectReturnCode::NotAuthorized,
            };
            v4::Packet::ConnAck(v4::ConnAck::new(code, session_present))
        }
        Outbound::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(pkid)),
        Outbound::SubAck { pkid, codes } => v4::Packet::SubAck(v4::SubAck::new(
            pkid,
            codes
                .into_iter()
                .map(|c| match c {
                    Some(q) => v4::SubscribeReasonCode::Success(to_qos(q)),
                    None => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Outbound::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
        Outbound::Publish {
            topic,
            qos,
            pkid,
            payload,
        } => {
            let mut p = v4::Publish::from_bytes(topic, to_qos(qos), payload);
            p.pkid = if qos == 0 { 0 } else { pkid };
            v4::Packet::Publish(p)
        }
        Outbound::PingResp => v4::Packet::PingResp,
        Outbound::Disconnect(_) => return Ok(()),
    };
    p.write(out, usize::MAX)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn encode_v5(out: &mut BytesMut, packet: Outbound) -> Result<(), String> {
    let p = match packet {
        Outbound::ConnAck {
            code,
            session_present,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present,
            code: match code {
                ConnCode::Accepted => v5::ConnectReturnCode::Success,
                ConnCode::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                ConnCode::IdentifierRejected => v5::ConnectReturnCode::ClientIdentifierNotValid,
                ConnCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
            },
            properties: None,
        }),
        Outbound::PubAck { pkid, reason } => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: match reason {
                0x00 => v5::PubAckReason::Success,
                0x80 => v5::PubAckReason::UnspecifiedError,
                0x83 => v5::PubAckReason::ImplementationSpecificError,
                0x90 => v5::PubAckReason::TopicNameInvalid,
                0x97 => v5::PubAckReason::QuotaExceeded,
                _ => v5::PubAckReason::PayloadFormatInvalid,
            },
            properties: None,
        }),
        Outbound::SubAck { pkid, codes } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: codes
                .into_iter()
                .map(|c| match c {
                    Some(q) => v5::SubscribeReasonCode::Success(to_qos5(q)),
                    None => v5::SubscribeReasonCode::TopicFilterInvalid,
                })
                .collect(),
            properties: None,
        }),
        Outbound::UnsubAck { pkid, existed } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: existed
                .into_iter()
                .map(|e| {
                    if e {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect(),
            properties: None,
        }),
        Outbound::Publish {
            topic,
            qos,
            pkid,
            payload,
        } => {
            let mut p = v5::Publish::new(topic, to_qos5(qos), payload, None);
            p.pkid = if qos == 0 { 0 } else { pkid };
            v5::Packet::Publish(p)
        }
        Outbound::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outbound::Disconnect(code) => {
            use v5::DisconnectReasonCode as R;
            let reason = match code {
                0x00 => R::NormalDisconnection,
                0x81 => R::MalformedPacket,
                0x82 => R::ProtocolError,
                0x83 => R::ImplementationSpecificError,
                0x87 => R::NotAuthorized,
                0x8b => R::ServerShuttingDown,
                0x8e => R::SessionTakenOver,
                0x90 => R::TopicNameInvalid,
                0x96 => R::MessageRateTooHigh,
                0x97 => R::QuotaExceeded,
                0x98 => R::AdministrativeAction,
                0x99 => R::PayloadFormatInvalid,
                0xa0 => R::MaximumConnectTime,
                // 0x85/0x86 are CONNACK-only codes the codec cannot put in a DISCONNECT.
                _ => return Ok(()),
            };
            v5::Packet::Disconnect(v5::Disconnect::new(reason))
        }
    };
    p.write(out, None).map(|_| ()).map_err(|e| e.to_string())
}
