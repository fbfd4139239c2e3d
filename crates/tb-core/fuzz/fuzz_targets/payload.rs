//! JSON handling of uplinks: the payload checks, the compact encoder and the RPC id check.
//!
//! Input: any bytes. If they parse as JSON, `check_telemetry`/`check_attributes` must not
//! panic, and whatever they accept must encode to JSON that parses back to the same value.
//! The bytes as text also go through `check_rpc_reply_id` and `attribute_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tb_core::payload;

/// Equal, with floats compared to the last bit they can carry through text.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => {
                p == q || (p - q).abs() <= p.abs().max(q.abs()) * 4.0 * f64::EPSILON
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let telemetry = payload::check_telemetry(&v).is_ok();
        let attributes = payload::check_attributes(&v).is_ok();
        if attributes {
            assert!(v.is_object(), "attributes accepted a {}", payload::kind(&v));
        }
        if telemetry || attributes {
            let bytes = payload::encode(&v);
            let back: Value = serde_json::from_slice(&bytes).expect("encoded JSON parses");
            assert!(same(&v, &back), "round trip changed {v} into {back}");
            assert!(!bytes.contains(&b'\n'), "not compact");
        }
        let _ = payload::rpc_request("m", &v);
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if payload::check_rpc_reply_id(text).is_ok() {
            assert!(!text.contains(['+', '#', '/']) && !text.is_empty());
        }
        let keys: Vec<&str> = text.split(',').collect();
        if let Ok(body) = payload::attribute_request(&keys, &keys) {
            serde_json::from_slice::<Value>(&body).expect("attribute request is JSON");
        }
        let _ = payload::claim(Some(text), Some(data.len() as u64));
    }
});
