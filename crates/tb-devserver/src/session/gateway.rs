//! What a gateway publishes on `v1/gateway/*`: each message goes to the feature modules for
//! the sub-devices it names; this file maps the outcome onto MQTT as ThingsBoard's gateway
//! handler does (thingsboard-gateway.md A.4-A.12).

use super::Session;
use crate::features::gateway::{self, Opened, Via};
use crate::features::{attributes, claiming, rpc, telemetry, Rejection};
use crate::json::JVal;
use crate::log::excerpt;
use crate::store::now_ms;
use crate::topics::*;
use crate::value::parse_payload;

/// Bucket indexes: messages, telemetry messages, telemetry data points.
const MESSAGES: usize = 0;
const TELEMETRY: usize = 1;
const POINTS: usize = 2;

fn device_name(v: Option<&JVal>) -> Option<String> {
    match v {
        Some(JVal::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Session {
    /// A.12: valid JSON of the wrong shape, a missing or ill-typed field, no usable device
    /// entry: PUBACK 0x83 (MQTT 5; a plain PUBACK on 3.x), then the connection is closed.
    fn gw_runtime_error(&mut self, pkid: u16, qos: u8, what: &str) {
        self.log(format_args!("bad gateway message ({what}): closing"));
        let code = if self.is_v5() { 0x83 } else { 0 };
        self.puback(pkid, qos, code);
        self.close(&format!("bad gateway message ({what})"), 0x83);
    }

    /// Takes tokens of the gateway's sub-device buckets (`gatewayRateLimits`, A.11): one
    /// telemetry message and `points` data points for an upload, else one message. On
    /// refusal: PUBACK 0x97 (MQTT 5), the S→G notice, and the connection closes.
    fn gw_rate_ok(&mut self, pkid: u16, qos: u8, device: &str, points: Option<usize>) -> bool {
        let now = std::time::Instant::now();
        let mut take = |i: usize, n: usize| {
            self.gw_buckets[i]
                .as_mut()
                .map_or(true, |b| b.try_take(n as f64, now))
        };
        let ok = match points {
            Some(p) => take(TELEMETRY, 1) && take(POINTS, p),
            None => take(MESSAGES, 1),
        };
        if !ok {
            self.log(format_args!(
                "gateway rate limit exceeded by \"{device}\": closing"
            ));
            if self.is_v5() {
                self.puback(pkid, qos, 0x97);
                let mut notice = String::from("{\"device\":");
                crate::json::write_json_string(&mut notice, device);
                notice.push_str(",\"reason\":150}");
                self.publish(GW_DISCONNECT.into(), bytes::Bytes::from(notice), None);
            }
            self.close("gateway rate limit exceeded", 0x97);
        }
        ok
    }

    /// Get-or-open (A.3); creating or opening costs one gateway message token. A device it
    /// creates gets type `device_type` (only a connect names one, A.4), else `default`. On
    /// refusal: PUBACK `refused` and the connection stays open. Returns whether the device is
    /// open.
    fn gw_open(
        &mut self,
        pkid: u16,
        qos: u8,
        device: &str,
        device_type: Option<&str>,
        refused: u8,
    ) -> bool {
        if gateway::is_open(&self.shared, device, self.conn_id) {
            return true;
        }
        let now = std::time::Instant::now();
        let ok = self.gw_buckets[MESSAGES]
            .as_mut()
            .map_or(true, |b| b.try_take(1.0, now));
        if !ok {
            self.log(format_args!(
                "gateway rate limit: cannot open \"{device}\" now"
            ));
            self.puback(pkid, qos, if self.is_v5() { refused } else { 0 });
            return false;
        }
        let super::Role::Device(gateway) = &self.role else {
            return false;
        };
        let via = Via {
            conn_id: self.conn_id,
            tx: self.tx.clone(),
            gateway,
        };
        match gateway::open(&self.shared, device, device_type, &via) {
            Opened::Created => self.log(format_args!("sub-device \"{device}\" created")),
            Opened::Reopened => self.log(format_args!("sub-device \"{device}\" connected")),
            Opened::Already => {}
        }
        true
    }

    pub(super) fn gateway_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let known = [
            GW_CONNECT,
            GW_DISCONNECT,
            GW_TELEMETRY,
            GW_ATTRIBUTES,
            GW_ATTR_REQUEST,
            GW_RPC,
            GW_CLAIM,
        ];
        if !known.contains(&topic) {
            // A.2: any other gateway topic: PUBACK 0x90, nothing else.
            self.log(format_args!(
                "publish to unsupported gateway topic {topic:?} acknowledged and dropped"
            ));
            return self.puback(pkid, qos, 0x90);
        }
        let json = match parse_payload(payload) {
            Ok(j) => j,
            Err(e) => {
                // A.12: unparseable JSON: MQTT 5 PUBACK 0x99 and keep, 3.x close.
                let r = Rejection::payload(&format!("gateway payload on {topic}"), &e);
                return self.rejected_gw(pkid, qos, r);
            }
        };
        match topic {
            GW_CONNECT | GW_DISCONNECT => self.gw_connect(topic, qos, pkid, &json),
            GW_TELEMETRY | GW_ATTRIBUTES | GW_CLAIM => self.gw_upload(topic, qos, pkid, json),
            GW_ATTR_REQUEST => self.gw_attribute_request(qos, pkid, &json),
            _ => self.gw_rpc_reply(qos, pkid, &json),
        }
    }

    fn rejected_gw(&mut self, pkid: u16, qos: u8, r: Rejection) {
        match r {
            // A.12: a conversion failure is 0x99 on MQTT 5 (kept), a close on 3.x.
            Rejection::Invalid(what) | Rejection::Unchecked(what) => {
                self.log(format_args!("invalid {what}"));
                if self.is_v5() && qos > 0 {
                    self.puback(pkid, qos, 0x99);
                } else {
                    self.close(&format!("invalid {what}"), 0x99);
                }
            }
        }
    }

    fn gw_connect(&mut self, topic: &str, qos: u8, pkid: u16, json: &JVal) {
        let Some(device) = device_name(json.get("device")) else {
            return self.gw_runtime_error(pkid, qos, "no device name");
        };
        if topic == GW_DISCONNECT {
            // A.5: always PUBACK 0.
            if gateway::close(&self.shared, &device, self.conn_id) {
                self.log(format_args!("sub-device \"{device}\" disconnected"));
            }
            return self.puback(pkid, qos, 0);
        }
        // A.4: `type` missing or null -> `default`. Design: an empty string or a non-string
        // (which the spec leaves open) counts as missing, so no device gets an odd type.
        let device_type = match json.get("type") {
            Some(JVal::Str(t)) if !t.is_empty() => Some(t.as_str()),
            _ => None,
        };
        if self.gw_open(pkid, qos, &device, device_type, 0x80) {
            self.puback(pkid, qos, 0);
        }
    }

    fn gw_upload(&mut self, topic: &str, qos: u8, pkid: u16, json: JVal) {
        let JVal::Obj(members) = json else {
            return self.gw_runtime_error(pkid, qos, "not an object");
        };
        // A.6, A.7, A.10: entries of the wrong kind are skipped; none left is an error.
        let total = members.len();
        let usable: Vec<(String, JVal)> = members
            .into_iter()
            .filter(|(_, v)| match topic {
                GW_TELEMETRY => matches!(v, JVal::Arr(_)),
                _ => matches!(v, JVal::Obj(_)),
            })
            .collect();
        if usable.len() < total {
            self.log(format_args!(
                "{} entries of {topic} skipped (wrong kind)",
                total - usable.len()
            ));
        }
        if usable.is_empty() {
            return self.gw_runtime_error(pkid, qos, &format!("no usable entry in {topic}"));
        }
        let typing = self.shared.config.typing();
        // Design: each device's value is typed from the message's parse tree, moved, not
        // written back to text and parsed again; its text is written for the log line only,
        // into a buffer the session keeps (no allocation per device).
        let mut text = std::mem::take(&mut self.json_text);
        for (device, value) in usable {
            if device.is_empty() {
                return self.gw_runtime_error(pkid, qos, "empty device name");
            }
            if !self.gw_open(pkid, qos, &device, None, 0x80) {
                return;
            }
            match topic {
                GW_TELEMETRY => {
                    text.clear();
                    value.write_json(&mut text);
                    let entries = match telemetry::typed_upload(value, typing, now_ms()) {
                        Ok(e) => e,
                        Err(r) => return self.rejected_gw(pkid, qos, r),
                    };
                    let points = telemetry::point_count(&entries);
                    if !self.gw_rate_ok(pkid, qos, &device, Some(points)) {
                        return;
                    }
                    telemetry::save(&self.shared, &device, entries);
                    self.log(format_args!(
                        "gateway telemetry for \"{device}\" ({points} values): {}",
                        excerpt(text.as_bytes())
                    ));
                }
                GW_ATTRIBUTES => {
                    text.clear();
                    value.write_json(&mut text);
                    let values = match attributes::typed_upload(value, typing) {
                        Ok(v) => v,
                        Err(r) => return self.rejected_gw(pkid, qos, r),
                    };
                    if !self.gw_rate_ok(pkid, qos, &device, Some(values.len())) {
                        return;
                    }
                    self.log(format_args!(
                        "gateway client attributes for \"{device}\": {}",
                        excerpt(text.as_bytes())
                    ));
                    attributes::save_client(&self.shared, &device, values);
                }
                _ => {
                    text.clear();
                    value.write_json(&mut text);
                    let default_ms = self.shared.config.claim_duration_ms;
                    let claim = match claiming::parse(text.as_bytes(), default_ms) {
                        Ok(c) => c,
                        Err(r) => return self.rejected_gw(pkid, qos, r),
                    };
                    if !self.gw_rate_ok(pkid, qos, &device, None) {
                        return;
                    }
                    self.log(format_args!("gateway claim for \"{device}\""));
                    claiming::save(&self.shared, &device, claim);
                }
            }
        }
        if text.capacity() <= 64 * 1024 {
            self.json_text = text;
        }
        // One PUBACK for the whole message (A.6).
        self.puback(pkid, qos, 0);
    }

    fn gw_attribute_request(&mut self, qos: u8, pkid: u16, json: &JVal) {
        // A.8: id (an int, or a numeric string), device, client (boolean), key or keys.
        let id = json.get("id").and_then(JVal::as_gson_long);
        let device = device_name(json.get("device"));
        let client = match json.get("client") {
            Some(JVal::Bool(b)) => Some(*b),
            _ => None,
        };
        let keys = match (json.get("key"), json.get("keys")) {
            (Some(JVal::Str(k)), _) => Some(vec![k.clone()]),
            (None, Some(JVal::Arr(items))) => items
                .iter()
                .map(|i| match i {
                    JVal::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        let (Some(id), Some(device), Some(client), Some(keys)) = (id, device, client, keys) else {
            return self.gw_runtime_error(pkid, qos, "attribute request fields");
        };
        if !self.gw_open(pkid, qos, &device, None, 0x83) {
            return;
        }
        if !self.gw_rate_ok(pkid, qos, &device, None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let Some(response) = gateway::attribute_response(&self.shared, &device, id, client, &keys)
        else {
            return;
        };
        self.log(format_args!(
            "gateway attribute request {id} for \"{device}\" -> {response}"
        ));
        self.publish(GW_ATTR_RESPONSE.into(), bytes::Bytes::from(response), None);
    }

    fn gw_rpc_reply(&mut self, qos: u8, pkid: u16, json: &JVal) {
        let device = device_name(json.get("device"));
        let id = json.get("id").and_then(JVal::as_gson_long);
        let data = json.get("data");
        let (Some(device), Some(id), Some(data)) = (device, id, data) else {
            return self.gw_runtime_error(pkid, qos, "RPC reply fields");
        };
        if !self.gw_open(pkid, qos, &device, None, 0x80) {
            return;
        }
        if !self.gw_rate_ok(pkid, qos, &device, None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let text = data.to_json();
        let id = i32::try_from(id).unwrap_or(-1);
        if rpc::handle_reply(&self.shared, &device, id, &text) {
            self.log(format_args!(
                "server RPC {id} reply from sub-device \"{device}\": {}",
                excerpt(text.as_bytes())
            ));
        } else {
            self.log(format_args!(
                "server RPC {id} reply from \"{device}\" is stale: dropped"
            ));
        }
    }
}
