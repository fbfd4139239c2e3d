//! What a device publishes: each topic goes to its feature module; this file maps the
//! feature's verdict onto MQTT (PUBACK codes, closes, responses) as spec 2.9 says.

use bytes::Bytes;

use super::Session;
use crate::config::RateLimits;
use crate::events::Event;
use crate::features::rpc::ClientRpcRequest;
use crate::features::{attributes, claiming, firmware, provisioning, rpc, telemetry, Rejection};
use crate::json::{write_json_string, JVal};
use crate::log::excerpt;
use crate::store::now_ms;
use crate::topics::*;
use crate::value::parse_payload;

fn limits_json(out: &mut String, limits: &RateLimits) {
    let field = |out: &mut String, name: &str, v: &Option<String>| {
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        match v {
            Some(s) => write_json_string(out, s),
            None => out.push_str("null"),
        }
    };
    out.push('{');
    field(out, "messages", &limits.messages);
    out.push(',');
    field(out, "telemetryMessages", &limits.telemetry_messages);
    out.push(',');
    field(out, "telemetryDataPoints", &limits.telemetry_data_points);
    out.push('}');
}

impl Session {
    /// spec 2.9: a validation failure closes MQTT 3.x sessions without PUBACK (unless the
    /// profile option says to PUBACK), and PUBACKs 0x99 on MQTT 5 (QoS 0: DISCONNECT 0x99).
    fn invalid(&mut self, pkid: u16, qos: u8, what: &str) {
        self.log(format_args!("invalid {what}"));
        if self.is_v5() {
            if qos == 0 {
                self.close(&format!("invalid {what}"), 0x99);
            } else {
                self.puback(pkid, qos, 0x99);
            }
        } else if self.shared.config.send_puback_on_validation_failure && qos > 0 {
            self.puback(pkid, qos, 0);
        } else {
            self.close(&format!("invalid {what}"), 0x99);
        }
    }

    /// spec 2.9: unchecked failures close the session (MQTT 5: DISCONNECT 0x8B first).
    fn unchecked(&mut self, what: &str) {
        self.log(format_args!("bad {what}: closing"));
        self.close(&format!("bad {what}"), 0x8b);
    }

    fn rejected(&mut self, pkid: u16, qos: u8, r: Rejection) {
        match r {
            Rejection::Invalid(what) => self.invalid(pkid, qos, &what),
            Rejection::Unchecked(what) => self.unchecked(&what),
        }
    }

    /// Takes rate-limit tokens; on refusal closes the session (spec 17.45) and returns false.
    ///
    /// As ThingsBoard's transport counts (thingsboard-gateway.md A.11): an upload with data
    /// points takes one telemetry message and its points; any other message one message.
    fn rate_ok(&mut self, telemetry_points: Option<usize>) -> bool {
        let now = std::time::Instant::now();
        let mut take = |i: usize, n: usize| {
            self.buckets[i]
                .as_mut()
                .map_or(true, |b| b.try_take(n as f64, now))
        };
        let ok = match telemetry_points {
            Some(points) => take(1, 1) && take(2, points),
            None => take(0, 1),
        };
        if !ok {
            self.log(format_args!("rate limit exceeded: closing"));
            self.close("rate limit exceeded", 0x83);
        }
        ok
    }

    pub(super) fn device_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: Bytes) {
        if let super::Role::Device(name) = &self.role {
            self.shared.events.activity(name);
            if self.shared.events.watching(name) {
                self.shared.events.send(Event::Log {
                    device: name.clone(),
                    ts: now_ms(),
                    up: true,
                    topic: topic.to_string(),
                    payload: crate::events::log_payload(&payload),
                });
            }
        }
        if topic.starts_with(GATEWAY_PREFIX) {
            if self.gateway {
                self.gateway_publish(topic, qos, pkid, &payload);
            } else {
                // spec 2.9: ignored, no PUBACK, no close.
                self.log(format_args!(
                    "ignored {topic} from a device that is not a gateway"
                ));
            }
            return;
        }
        if topic == ATTRIBUTES_TOPIC {
            self.post_attributes(qos, pkid, &payload);
        } else if topic == TELEMETRY_TOPIC {
            self.post_telemetry(qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix(ATTR_REQUEST_PREFIX) {
            self.attribute_request(id, qos, pkid, &payload, ATTR_RESPONSE_PREFIX);
        } else if let Some(id) = topic.strip_prefix(RPC_RESPONSE_PREFIX) {
            self.rpc_reply(id, qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix(RPC_REQUEST_PREFIX) {
            self.client_rpc(id, qos, pkid, &payload, RPC_RESPONSE_PREFIX, true);
        } else if topic == CLAIM_TOPIC {
            self.claim(qos, pkid, &payload);
        } else if let Some(rest) = topic.strip_prefix(FW_REQUEST_PREFIX) {
            self.firmware_request("fw", rest, qos, pkid, &payload);
        } else if let Some(rest) = topic.strip_prefix(SW_REQUEST_PREFIX) {
            self.firmware_request("sw", rest, qos, pkid, &payload);
        } else if !topic.contains("/p/") && !topic.ends_with("/p") && topic.starts_with("v2/") {
            self.v2_publish(topic, qos, pkid, payload);
        } else {
            // spec 2.9: unknown topic → PUBACK (0x90 on MQTT 5), nothing else.
            self.log(format_args!(
                "publish to unsupported topic {topic:?} acknowledged and dropped"
            ));
            self.puback(pkid, qos, 0x90);
        }
    }

    /// spec 12: JSON v2 short topics (`/p` protobuf forms are not served). Responses go to
    /// the matching v2 topic; pushes still use the v1 topics.
    fn v2_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: Bytes) {
        if topic == "v2/t" || topic == "v2/t/j" {
            self.post_telemetry(qos, pkid, &payload);
        } else if topic == "v2/a" || topic == "v2/a/j" {
            self.post_attributes(qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix("v2/a/req/j/") {
            self.attribute_request(id, qos, pkid, &payload, "v2/a/res/j/");
        } else if let Some(id) = topic.strip_prefix("v2/a/req/") {
            self.attribute_request(id, qos, pkid, &payload, "v2/a/res/");
        } else if let Some(id) = topic
            .strip_prefix("v2/r/res/j/")
            .or_else(|| topic.strip_prefix("v2/r/res/"))
        {
            self.rpc_reply(id, qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix("v2/r/req/j/") {
            self.client_rpc(id, qos, pkid, &payload, "v2/r/res/j/", false);
        } else if let Some(id) = topic.strip_prefix("v2/r/req/") {
            self.client_rpc(id, qos, pkid, &payload, "v2/r/res/", false);
        } else {
            self.log(format_args!(
                "publish to unsupported topic {topic:?} acknowledged and dropped"
            ));
            self.puback(pkid, qos, 0x90);
        }
    }

    fn post_telemetry(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let entries = match telemetry::parse_upload(payload, self.shared.config.typing(), now_ms())
        {
            Ok(e) => e,
            Err(r) => return self.rejected(pkid, qos, r),
        };
        if entries.is_empty() {
            // spec 4: `[]` is never acknowledged.
            self.log(format_args!("telemetry [] (no entries): not acknowledged"));
            return;
        }
        let points = telemetry::point_count(&entries);
        if !self.rate_ok(Some(points)) {
            return;
        }
        if let super::Role::Device(name) = &self.role {
            telemetry::save(&self.shared, name, entries);
        }
        self.puback(pkid, qos, 0);
        self.log(format_args!(
            "telemetry ({points} values): {}",
            excerpt(payload)
        ));
    }

    fn post_attributes(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let values = match attributes::parse_upload(payload, self.shared.config.typing()) {
            Ok(v) => v,
            Err(r) => return self.rejected(pkid, qos, r),
        };
        if !self.rate_ok(Some(values.len())) {
            return;
        }
        let name = self.device_name();
        attributes::save_client(&self.shared, &name, values);
        self.puback(pkid, qos, 0);
        self.log(format_args!("client attributes: {}", excerpt(payload)));
    }

    fn attribute_request(
        &mut self,
        id: &str,
        qos: u8,
        pkid: u16,
        payload: &[u8],
        response_prefix: &str,
    ) {
        let Ok(id) = id.parse::<i32>() else {
            return self.invalid(pkid, qos, &format!("attribute request id {id:?}"));
        };
        let request = match attributes::parse_request(payload) {
            Ok(r) => r,
            Err(r) => return self.rejected(pkid, qos, r),
        };
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        if id < 0 {
            // spec 6: negative ids get no response.
            self.log(format_args!(
                "attribute request {id}: negative id, no response"
            ));
            return;
        }
        let name = self.device_name();
        let Some(response) = attributes::response(&self.shared, &name, &request) else {
            return;
        };
        self.log(format_args!(
            "attribute request {id}: {} -> {response}",
            excerpt(payload)
        ));
        self.publish(
            format!("{response_prefix}{id}"),
            Bytes::from(response),
            None,
        );
    }

    fn rpc_reply(&mut self, id: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let Ok(id) = id.parse::<i32>() else {
            return self.invalid(pkid, qos, &format!("RPC reply id {id:?}"));
        };
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let text = String::from_utf8_lossy(payload).into_owned();
        let name = self.device_name();
        if rpc::handle_reply(&self.shared, &name, id, &text) {
            self.log(format_args!("server RPC {id} reply: {}", excerpt(payload)));
        } else {
            self.log(format_args!(
                "server RPC {id} reply is stale (unknown, expired or answered): dropped"
            ));
        }
    }

    fn client_rpc(
        &mut self,
        id_text: &str,
        qos: u8,
        pkid: u16,
        payload: &[u8],
        response_prefix: &str,
        v1: bool,
    ) {
        let Ok(id) = id_text.parse::<i32>() else {
            return self.unchecked(&format!("client RPC id {id_text:?}"));
        };
        let (method, params) = match rpc::parse_client_request(payload) {
            Ok(mp) => mp,
            Err(r) => return self.rejected(pkid, qos, r),
        };
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let topic = format!("{response_prefix}{id}");
        if v1 && method == "getSessionLimits" {
            // spec 8: answered by the transport itself.
            let cfg = &self.shared.config;
            let mut out = format!(
                "{{\"maxPayloadSize\":{},\"maxInflightMessages\":{},\"rateLimits\":",
                cfg.max_payload_size, cfg.max_inflight_messages
            );
            limits_json(&mut out, &cfg.rate_limits);
            if self.gateway {
                out.push_str(",\"gatewayRateLimits\":");
                limits_json(&mut out, &cfg.gateway_rate_limits);
            }
            out.push('}');
            self.log(format_args!("client RPC {id} getSessionLimits -> {out}"));
            self.publish(topic, Bytes::from(out), None);
            return;
        }
        let name = self.device_name();
        let scripted = rpc::record_client(&self.shared, &name, id, &method, &params);
        self.log(format_args!("client RPC {id} {method}({params})"));
        if let Some(reply) = scripted {
            self.log(format_args!(
                "client RPC {id} reply: {}",
                excerpt(reply.as_bytes())
            ));
            self.publish(topic, Bytes::from(reply), None);
            return;
        }
        let request = ClientRpcRequest {
            device: name,
            id,
            method,
            params,
        };
        rpc::answer_client_later(
            self.shared.clone(),
            request,
            topic,
            self.conn_id,
            self.tx.clone(),
        );
    }

    fn claim(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let claim = match claiming::parse(payload, self.shared.config.claim_duration_ms) {
            Ok(c) => c,
            Err(r) => return self.rejected(pkid, qos, r),
        };
        if !self.rate_ok(None) {
            return;
        }
        self.log(format_args!(
            "claim request (secret key {:?}, {} ms)",
            claim.secret_key, claim.duration_ms
        ));
        let name = self.device_name();
        claiming::save(&self.shared, &name, claim);
        self.puback(pkid, qos, 0);
    }

    /// spec 11.2, 17.42-44: `v2/{fw,sw}/request/{reqId}/chunk/{index}`.
    ///
    /// Design: ThingsBoard *finds* its pattern `v2/fw/request/(\d+)/chunk/(\d+)` in the
    /// topic, so anything after the index digits is ignored, and parses the payload and the
    /// index with `Integer.parseInt`: no trimming, an optional sign, a value past `i32`
    /// throws and closes the session (2.9, "unchecked"). A size above 0 is remembered for
    /// the request id; 0, negative or empty reuse the remembered one (else 0 = whole image).
    fn firmware_request(&mut self, kind: &str, rest: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let parsed = rest.split_once("/chunk/").and_then(|(r, tail)| {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let ok = !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) && digits > 0;
            ok.then(|| (r, &tail[..digits]))
        });
        let Some((req_id, index)) = parsed else {
            self.log(format_args!(
                "unsupported firmware topic v2/{kind}/request/{rest}"
            ));
            return self.puback(pkid, qos, 0x90);
        };
        let text = String::from_utf8_lossy(payload);
        let requested = if text.is_empty() {
            0
        } else {
            match text.parse::<i32>() {
                Ok(s) => s,
                Err(_) => return self.unchecked(&format!("firmware chunk size {text:?}")),
            }
        };
        let Ok(index) = index.parse::<i32>() else {
            return self.unchecked(&format!("firmware chunk index {index:?}"));
        };
        let size = if requested > 0 {
            self.fw_sizes.insert(req_id.to_string(), requested);
            requested
        } else {
            self.fw_sizes.get(req_id).copied().unwrap_or(0)
        };
        let error = |s: &mut Self, code: &str| {
            s.log(format_args!(
                "{kind} chunk request {req_id}/{index}: {code}"
            ));
            s.publish(FW_ERROR_TOPIC.into(), Bytes::from(code.to_string()), None);
            s.close(code, 0x83);
        };
        let max = i64::try_from(self.shared.config.max_payload_size).unwrap_or(i64::MAX);
        if i64::from(size) > max {
            return error(self, "PAYLOAD_TOO_LARGE");
        }
        // spec 11.2: the package is looked up once per request id and kept for the life of
        // the connection, so a running download survives a reassignment.
        let image = match self.fw_images.get(req_id) {
            Some(image) => image.clone(),
            None => {
                let name = self.device_name();
                let found = firmware::image(&self.shared, &name).filter(|_| kind == "fw");
                let Some(image) = found else {
                    return error(self, "NOT_FOUND");
                };
                self.fw_images.insert(req_id.to_string(), image.clone());
                image
            }
        };
        self.puback(pkid, qos, 0);
        let Some(chunk) = firmware::chunk(&image, size, index) else {
            self.log(format_args!(
                "{kind} chunk {index} of request {req_id} (size {size}): offset wraps \
                 negative; nothing sent, as ThingsBoard"
            ));
            return;
        };
        self.log(format_args!(
            "{kind} chunk {index} of request {req_id}: {} bytes",
            chunk.len()
        ));
        self.publish(
            format!("v2/{kind}/response/{req_id}/chunk/{index}"),
            chunk,
            None,
        );
    }

    // ---- provisioning -------------------------------------------------------------------

    pub(super) fn provision_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
        if topic != PROVISION_REQUEST_TOPIC {
            // spec 10.1: PUBACK (0x90) then close.
            self.log(format_args!(
                "publish to {topic:?} in a provisioning session: closing"
            ));
            self.puback(pkid, qos, 0x90);
            return self.gone("publish outside /provision/request");
        }
        let request = if payload.is_empty() {
            // Not JSON; the protobuf retry reads an empty message: empty key and secret.
            Ok(provisioning::ProvisionRequest::default())
        } else {
            match parse_payload(payload) {
                Ok(obj @ JVal::Obj(_)) => provisioning::read_request(&obj),
                _ => {
                    return self.invalid(pkid, qos, "provision request (not a JSON object)");
                }
            }
        };
        let request = match request {
            Ok(r) => r,
            Err(why) => {
                // spec 10.2: PUBACK (0x83) and close, no response.
                self.log(format_args!("bad provision request ({why}): closing"));
                self.puback(pkid, qos, 0x83);
                return self.gone(&why);
            }
        };
        self.puback(pkid, qos, 0);
        let (response, record) = provisioning::handle(&self.shared, &request);
        self.log(format_args!(
            "provision request for {:?} (key {:?}): {}{}",
            request.device_name,
            request.key,
            response,
            record
                .map(|r| format!(" -> device \"{}\"", r.name))
                .unwrap_or_default()
        ));
        self.publish(PROVISION_RESPONSE_TOPIC.into(), Bytes::from(response), None);
        self.provision_close_at =
            Some(std::time::Instant::now() + self.shared.config.provision_close_delay);
    }
}
