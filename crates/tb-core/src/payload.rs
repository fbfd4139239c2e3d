//! Payload rules: what ThingsBoard accepts on each uplink topic, and the JSON the device
//! builds for requests.
//!
//! The server closes an MQTT 3.x connection on a payload it cannot validate (spec 2.9), so the
//! device checks shapes before anything is queued.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};

/// A compact JSON object written field by field, in call order.
///
/// Design: the requests the device builds (attribute requests, RPC, claims, the gateway's
/// messages) have fixed keys, so they are written straight into the payload instead of built
/// as a `Map` and serialised: no key `String`s, no map nodes, no `Value` clones, and the same
/// bytes with or without serde_json's `preserve_order` (a `Map` without it sorts its keys).
/// On the Cortex-M3 example this is about a kilobyte less flash than the maps it replaces.
pub(crate) struct Object(Vec<u8>);

impl Object {
    pub(crate) fn new() -> Object {
        Object(alloc::vec![b'{'])
    }

    fn key(mut self, key: &str) -> Object {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        write_str(&mut self.0, key);
        self.0.push(b':');
        self
    }

    /// Adds `"key":"value"`.
    pub(crate) fn str(self, key: &str, value: &str) -> Object {
        let mut o = self.key(key);
        write_str(&mut o.0, value);
        o
    }

    /// Adds `"key":value` for any JSON value.
    pub(crate) fn value(self, key: &str, value: &Value) -> Object {
        let mut o = self.key(key);
        o.0.extend_from_slice(&encode(value));
        o
    }

    /// Adds `"key":` followed by `json`, already-encoded JSON.
    pub(crate) fn raw(self, key: &str, json: &[u8]) -> Object {
        let mut o = self.key(key);
        o.0.extend_from_slice(json);
        o
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

/// Appends `s` as a JSON string (quoted and escaped).
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Design: `to_vec`, as `encode` does: `to_writer` needs std. A `str` always serialises.
    out.extend_from_slice(&serde_json::to_vec(s).unwrap_or_default());
}

use crate::error::{PeerError, UsageError};

/// A short name of a JSON value's kind, in Python's words (the API's users write Python).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Checks one telemetry object: flat, or `{"ts": ms, "values": {...}}`.
///
/// spec 4: an object is timestamped only when it has both `ts` and `values`; then `values`
/// must be an object and `ts` an integer, or the server closes the connection.
fn check_telemetry_object(m: &Map<String, Value>) -> Result<(), UsageError> {
    // Design: "values" is looked up only when "ts" is there (a flat dict costs one lookup).
    if let Some((ts, values)) = m.get("ts").and_then(|ts| Some((ts, m.get("values")?))) {
        if !(ts.is_u64() || ts.is_i64()) {
            return Err(UsageError::WrongType(format!(
                "telemetry \"ts\" must be an integer timestamp in milliseconds, got {}",
                kind(ts)
            )));
        }
        if !values.is_object() {
            return Err(UsageError::WrongType(format!(
                "telemetry \"values\" must be a dict, got {}",
                kind(values)
            )));
        }
    }
    Ok(())
}

/// Checks a telemetry payload: a dict, a `{"ts", "values"}` dict, or a non-empty list of those.
///
/// An empty list is refused: ThingsBoard never acknowledges `[]` (spec 4), so a QoS 1 `[]`
/// would wait for a PUBACK forever.
pub fn check_telemetry(v: &Value) -> Result<(), UsageError> {
    match v {
        Value::Object(m) => check_telemetry_object(m),
        Value::Array(items) if items.is_empty() => Err(UsageError::Payload(
            "telemetry list is empty: ThingsBoard never acknowledges an empty list".into(),
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(m) => check_telemetry_object(m)?,
                    other => {
                        return Err(UsageError::WrongType(format!(
                            "telemetry list items must be dicts, item {i} is {}",
                            kind(other)
                        )))
                    }
                }
            }
            Ok(())
        }
        other => Err(UsageError::WrongType(format!(
            "telemetry must be a dict or a list of dicts, got {}",
            kind(other)
        ))),
    }
}

/// Checks a client-attributes payload: one flat object (spec 5).
pub fn check_attributes(v: &Value) -> Result<(), UsageError> {
    match v {
        Value::Object(_) => Ok(()),
        other => Err(UsageError::WrongType(format!(
            "attributes must be a dict, got {}",
            kind(other)
        ))),
    }
}

/// Parses an incoming payload as JSON; bad JSON is the peer's fault.
// Design: one function for every incoming topic (not inlined), so the parse and its error
// mapping are in flash once.
#[inline(never)]
pub(crate) fn parse(payload: &[u8]) -> Result<Value, PeerError> {
    serde_json::from_slice(payload)
        .map_err(|e| PeerError::InvalidJson(alloc::string::ToString::to_string(&e)))
}

/// Parses an incoming payload that must be a JSON object.
#[inline(never)]
pub(crate) fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, PeerError> {
    match parse(payload)? {
        Value::Object(m) => Ok(m),
        other => Err(PeerError::NotAnObject(kind(&other))),
    }
}

/// Encodes a JSON value compactly.
pub fn encode(v: &Value) -> Vec<u8> {
    // Serialising a Value into a Vec cannot fail: keys are strings and numbers are finite.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Joins attribute keys with commas, as the server splits them (spec 6: split on `,`, not
/// trimmed). A key containing a comma would be split into two keys, so it is refused.
fn join_keys(which: &str, keys: &[&str]) -> Result<String, UsageError> {
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        if k.contains(',') {
            return Err(UsageError::Invalid(format!(
                "{which} key {k:?} contains a comma; ThingsBoard splits keys on commas"
            )));
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
    }
    Ok(out)
}

/// Builds an attribute request: `{"clientKeys":"a,b","sharedKeys":"c"}`, each field present only
/// when keys were given (an empty list counts as not given, as in the reference).
pub fn attribute_request(client: &[&str], shared: &[&str]) -> Result<Vec<u8>, UsageError> {
    let mut o = Object::new();
    if !client.is_empty() {
        o = o.str("clientKeys", &join_keys("client", client)?);
    }
    if !shared.is_empty() {
        o = o.str("sharedKeys", &join_keys("shared", shared)?);
    }
    Ok(o.finish())
}

/// Builds a client-side RPC request: `{"method":...,"params":...}` (spec 8).
pub fn rpc_request(method: &str, params: &Value) -> Vec<u8> {
    Object::new()
        .str("method", method)
        .value("params", params)
        .finish()
}

/// Builds a claim request: `{"secretKey":...,"durationMs":...}`, each key only when given
/// (spec 9; the reference omits an empty secret and a zero duration).
pub fn claim(secret_key: Option<&str>, duration_ms: Option<u64>) -> Vec<u8> {
    let mut o = Object::new();
    if let Some(s) = secret_key.filter(|s| !s.is_empty()) {
        o = o.str("secretKey", s);
    }
    if let Some(d) = duration_ms.filter(|d| *d != 0) {
        o = o.value("durationMs", &Value::from(d));
    }
    o.finish()
}

/// Checks a server-RPC request id before it is put into a reply topic.
///
/// ThingsBoard ids are decimal integers (spec 7.2); a wildcard or slash would make an invalid
/// topic, and a non-numeric id closes the connection (spec 2.9).
pub fn check_rpc_reply_id(id: &str) -> Result<(), UsageError> {
    if id.contains(['+', '#', '/']) {
        return Err(UsageError::BadId(format!(
            "RPC request id {id:?} contains an MQTT wildcard or '/'; use the id the handler received"
        )));
    }
    if id.is_empty() || id.len() > 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError::BadId(format!(
            "RPC request id must be a decimal integer (as received by the handler), got {id:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn telemetry_shapes() {
        assert!(check_telemetry(&json!({"temperature": 25.5})).is_ok());
        assert!(check_telemetry(&json!({"ts": 1451649600000u64, "values": {"t": 1}})).is_ok());
        assert!(check_telemetry(&json!([{"ts": 1, "values": {"a": 1}}, {"b": 2}])).is_ok());
        assert!(check_telemetry(&json!({"ts": 5, "temp": 1})).is_ok());
        assert!(check_telemetry(&json!([])).is_err());
        assert!(check_telemetry(&json!([1, 2])).is_err());
        assert!(check_telemetry(&json!("x")).is_err());
        assert!(check_telemetry(&json!({"ts": "now", "values": {}})).is_err());
        assert!(check_telemetry(&json!({"ts": 1, "values": [1]})).is_err());
    }

    #[test]
    fn attribute_request_joins_keys_with_commas() {
        assert_eq!(
            attribute_request(&["a", "b"], &["c"]).unwrap(),
            br#"{"clientKeys":"a,b","sharedKeys":"c"}"#
        );
        assert_eq!(
            attribute_request(&[], &["c"]).unwrap(),
            br#"{"sharedKeys":"c"}"#
        );
        assert_eq!(attribute_request(&[], &[]).unwrap(), b"{}");
        assert!(attribute_request(&["a,b"], &[]).is_err());
    }

    #[test]
    fn claim_omits_absent_fields() {
        assert_eq!(claim(Some("k"), None), br#"{"secretKey":"k"}"#);
        assert_eq!(
            claim(Some("k"), Some(60000)),
            br#"{"secretKey":"k","durationMs":60000}"#
        );
        assert_eq!(claim(None, None), b"{}");
    }

    #[test]
    fn objects_are_written_in_call_order_with_strings_escaped() {
        let o = Object::new()
            .str("z", "a\"b\\c\n\u{1}é")
            .value("a", &json!({"k": [1, 2.5, null]}))
            .raw("m", b"true")
            .finish();
        assert_eq!(
            String::from_utf8(o).unwrap(),
            r#"{"z":"a\"b\\c\n\u0001é","a":{"k":[1,2.5,null]},"m":true}"#
        );
        assert_eq!(Object::new().finish(), b"{}");
    }

    #[test]
    fn rpc_request_payload() {
        assert_eq!(
            rpc_request("getTime", &json!({})),
            br#"{"method":"getTime","params":{}}"#
        );
    }

    #[test]
    fn rpc_reply_ids() {
        assert!(check_rpc_reply_id("17").is_ok());
        assert!(check_rpc_reply_id("1+").is_err());
        assert!(check_rpc_reply_id("#").is_err());
        assert!(check_rpc_reply_id("1/2").is_err());
        assert!(check_rpc_reply_id("abc").is_err());
        assert!(check_rpc_reply_id("").is_err());
    }
}
