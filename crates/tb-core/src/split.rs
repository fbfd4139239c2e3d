//! Payload splitting: telemetry and attributes too big for one packet (or carrying more data
//! points than a rate-limit window admits) become several messages that each fit.
//!
//! Cuts fall between keys and between `ts` entries, never inside a value; a timestamped entry
//! cut in two keeps its `ts` (and any other field, such as a gateway's `metadata`) in both
//! parts. A single key/value that cannot fit alone is the caller's error, naming the key.
//! spec: thingsboard-gateway.md B.4 (what the reference does); thingsboard-mqtt.md 2.5 (the
//! limit counts the MQTT remaining length).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::error::UsageError;
use crate::payload::encode;

/// How an upload is shaped on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape<'a> {
    /// `v1/devices/me/telemetry`: an object or a list of objects.
    Telemetry,
    /// `v1/devices/me/attributes`: one flat object.
    Attributes,
    /// `v1/gateway/telemetry`: `{device: [entries]}`.
    GatewayTelemetry(&'a str),
    /// `v1/gateway/attributes`: `{device: {...}}`.
    GatewayAttributes(&'a str),
}

/// One telemetry entry: a `ts` head (with any fields besides `values`) or flat.
struct Entry<'a> {
    head: Option<Vec<(&'a String, &'a Value)>>,
    values: &'a Map<String, Value>,
}

/// The key/values of one entry and whether it is timestamped (`{"ts", "values"}`).
fn entry_values<'a>(shape: Shape<'_>, m: &'a Map<String, Value>) -> (&'a Map<String, Value>, bool) {
    if matches!(shape, Shape::Telemetry | Shape::GatewayTelemetry(_)) && m.contains_key("ts") {
        if let Some(Value::Object(values)) = m.get("values") {
            return (values, true);
        }
    }
    (m, false)
}

/// Calls `f` with the key/values of every entry, in order (what [`entries`] lists, without
/// building the list: the hot path of a message that fits needs no more).
fn each_entry<'a>(shape: Shape<'_>, data: &'a Value, mut f: impl FnMut(&'a Map<String, Value>)) {
    match data {
        Value::Array(items) => {
            for m in items.iter().filter_map(Value::as_object) {
                f(entry_values(shape, m).0);
            }
        }
        Value::Object(m) => f(entry_values(shape, m).0),
        _ => {}
    }
}

fn entries<'a>(shape: Shape<'_>, data: &'a Value) -> Vec<Entry<'a>> {
    let one = |v: &'a Value| -> Option<Entry<'a>> {
        let m = v.as_object()?;
        Some(match entry_values(shape, m) {
            (values, true) => Entry {
                head: Some(m.iter().filter(|(k, _)| *k != "values").collect()),
                values,
            },
            (values, false) => Entry { head: None, values },
        })
    };
    match data {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

fn enc_str(k: &str) -> Vec<u8> {
    encode(&Value::String(k.into()))
}

/// The bytes of the wrapper before and after the entries of one part.
fn wrapper(shape: Shape<'_>) -> (Vec<u8>, &'static [u8]) {
    match shape {
        Shape::Telemetry => (b"[".to_vec(), b"]"),
        Shape::Attributes => (Vec::new(), b""),
        Shape::GatewayTelemetry(d) => {
            let mut pre = alloc::vec![b'{'];
            pre.extend(enc_str(d));
            pre.extend(b":[");
            (pre, b"]}")
        }
        Shape::GatewayAttributes(d) => {
            let mut pre = alloc::vec![b'{'];
            pre.extend(enc_str(d));
            pre.push(b':');
            (pre, b"}")
        }
    }
}

/// `"key":value`, encoded.
fn pair(k: &str, v: &Value) -> Vec<u8> {
    let mut out = enc_str(k);
    out.push(b':');
    out.extend(encode(v));
    out
}

/// An entry's bytes around its key/values: `{` and `}` when flat;
/// `{"ts":1,"values":{` and `},"other":...}` when timestamped.
fn entry_frame(e: &Entry<'_>) -> (Vec<u8>, Vec<u8>) {
    match &e.head {
        None => (b"{".to_vec(), b"}".to_vec()),
        Some(head) => {
            let mut pre = b"{".to_vec();
            let mut post = b"}".to_vec();
            for (k, v) in head {
                if *k == "ts" {
                    pre.extend(pair(k, v));
                    pre.push(b',');
                } else {
                    post.push(b',');
                    post.extend(pair(k, v));
                }
            }
            pre.extend(b"\"values\":{");
            post.push(b'}');
            (pre, post)
        }
    }
}

/// Encodes `data` as one payload, or as several when it exceeds `budget` bytes or
/// `max_points` data points. Returns each payload with its data points, in order.
///
/// `what` names the upload in errors ("telemetry", "attributes"), `packet_limit` the
/// server's packet size bound that `budget` derives from.
pub(crate) fn split(
    shape: Shape<'_>,
    data: &Value,
    budget: usize,
    max_points: u32,
    (what, packet_limit): (&str, usize),
) -> Result<Vec<(Vec<u8>, u32)>, UsageError> {
    let max_points = max_points.max(1);
    let too_big = |k: &str, value_len: usize| {
        UsageError::Payload(format!(
            "{what} key {k:?} does not fit one message: its value is {value_len} bytes \
             encoded; ThingsBoard accepts at most {packet_limit} bytes per packet (topic and \
             framing included), so a single value cannot be split further"
        ))
    };
    // A string longer than the budget cannot fit however it is cut: say so before encoding
    // megabytes twice. The same pass counts the data points (A.11: keys over all entries).
    let mut points = 0usize;
    let mut too_long = None;
    each_entry(shape, data, |values| {
        points += values.len();
        for (k, v) in values {
            if let Value::String(text) = v {
                if text.len() + 2 > budget && too_long.is_none() {
                    too_long = Some((k, text.len() + 2));
                }
            }
        }
    });
    if let Some((k, len)) = too_long {
        return Err(too_big(k, len));
    }
    let points = u32::try_from(points).unwrap_or(u32::MAX);
    let whole = match shape {
        Shape::Telemetry | Shape::Attributes => encode(data),
        Shape::GatewayTelemetry(d) | Shape::GatewayAttributes(d) => {
            let body = encode(data);
            let name = serde_json::to_vec(d).unwrap_or_default();
            let mut w = Vec::with_capacity(body.len() + name.len() + 5);
            w.push(b'{');
            w.extend_from_slice(&name);
            w.push(b':');
            let list = matches!(shape, Shape::GatewayTelemetry(_)) && !data.is_array();
            if list {
                w.push(b'[');
            }
            w.extend_from_slice(&body);
            if list {
                w.push(b']');
            }
            w.push(b'}');
            w
        }
    };
    if whole.len() <= budget && points <= max_points {
        return Ok(alloc::vec![(whole, points)]);
    }
    let (pre, post) = wrapper(shape);
    let one_entry_per_part = matches!(shape, Shape::Attributes | Shape::GatewayAttributes(_));
    let base = pre.len() + post.len();
    let mut out = Vec::new();
    // The part being built, its entry open (index) and its data points.
    let mut cur = pre.clone();
    let mut open: Option<(usize, Vec<u8>)> = None;
    let mut pts = 0u32;
    let mut entries_in_part = 0usize;
    let close_part = |cur: &mut Vec<u8>, open: &mut Option<(usize, Vec<u8>)>| {
        if let Some((_, post_e)) = open.take() {
            cur.extend(post_e);
        }
        cur.extend_from_slice(post);
    };
    for (i, e) in entries(shape, data).iter().enumerate() {
        let (e_pre, e_post) = entry_frame(e);
        for (k, v) in e.values {
            let kv = pair(k, v);
            if base + e_pre.len() + e_post.len() + kv.len() > budget {
                return Err(too_big(k, kv.len() - enc_str(k).len() - 1));
            }
            let is_open = open.as_ref().is_some_and(|(j, _)| *j == i);
            let open_post = open.as_ref().map_or(0, |(_, p)| p.len());
            let add = if is_open {
                1 + kv.len()
            } else {
                usize::from(entries_in_part > 0) + e_pre.len() + e_post.len() + kv.len()
            };
            let full = cur.len() + open_post + post.len() + add > budget
                || pts + 1 > max_points
                || (one_entry_per_part && !is_open && entries_in_part > 0);
            if full && entries_in_part > 0 {
                close_part(&mut cur, &mut open);
                out.push((core::mem::replace(&mut cur, pre.clone()), pts));
                pts = 0;
                entries_in_part = 0;
            }
            if open.as_ref().is_some_and(|(j, _)| *j == i) {
                cur.push(b',');
            } else {
                if let Some((_, p)) = open.take() {
                    cur.extend(p);
                }
                if entries_in_part > 0 {
                    cur.push(b',');
                }
                cur.extend_from_slice(&e_pre);
                open = Some((i, e_post.clone()));
                entries_in_part += 1;
            }
            cur.extend(kv);
            pts += 1;
        }
    }
    if entries_in_part > 0 {
        close_part(&mut cur, &mut open);
        out.push((cur, pts));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(parts: &[(Vec<u8>, u32)]) -> Vec<String> {
        parts
            .iter()
            .map(|(b, _)| String::from_utf8(b.clone()).unwrap())
            .collect()
    }

    #[test]
    fn small_payloads_go_out_whole_and_unchanged() {
        let v = json!({"a": 1, "b": 2});
        let parts = split(Shape::Telemetry, &v, 100, u32::MAX, ("telemetry", 65536)).unwrap();
        assert_eq!(texts(&parts), [r#"{"a":1,"b":2}"#]);
        assert_eq!(parts[0].1, 2);
    }

    #[test]
    fn telemetry_splits_along_keys_into_lists_that_fit() {
        let v = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        // {"a":1,"b":2,"c":3,"d":4} is 25 bytes; [{"a":1,"b":2}] is 15.
        let parts = split(Shape::Telemetry, &v, 15, u32::MAX, ("telemetry", 65536)).unwrap();
        assert_eq!(texts(&parts), [r#"[{"a":1,"b":2}]"#, r#"[{"c":3,"d":4}]"#]);
        assert!(parts.iter().all(|(b, n)| b.len() <= 15 && *n == 2));
    }

    #[test]
    fn data_point_bound_splits_like_the_reference() {
        // spec B.4 example: D = 3.
        let v = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let parts = split(Shape::Telemetry, &v, 1000, 3, ("telemetry", 65536)).unwrap();
        assert_eq!(texts(&parts), [r#"[{"a":1,"b":2,"c":3}]"#, r#"[{"d":4}]"#]);
    }

    #[test]
    fn timestamped_entries_keep_their_ts_in_every_part() {
        let v = json!([{"ts": 1, "values": {"a": 1, "b": 2}}, {"ts": 2, "values": {"c": 3}}]);
        let parts = split(Shape::Telemetry, &v, 30, u32::MAX, ("telemetry", 65536)).unwrap();
        assert_eq!(
            texts(&parts),
            [
                r#"[{"ts":1,"values":{"a":1}}]"#,
                r#"[{"ts":1,"values":{"b":2}}]"#,
                r#"[{"ts":2,"values":{"c":3}}]"#,
            ]
        );
    }

    #[test]
    fn attributes_split_into_flat_objects() {
        let v = json!({"a": "xxxx", "b": "yyyy", "c": "zzzz"});
        let parts = split(Shape::Attributes, &v, 23, u32::MAX, ("attributes", 65536)).unwrap();
        assert_eq!(
            texts(&parts),
            [r#"{"a":"xxxx","b":"yyyy"}"#, r#"{"c":"zzzz"}"#]
        );
    }

    #[test]
    fn gateway_shapes_wrap_each_part_with_the_device() {
        let v = json!({"a": 1, "b": 2});
        let whole = split(
            Shape::GatewayTelemetry("D 1"),
            &v,
            100,
            u32::MAX,
            ("telemetry", 65536),
        )
        .unwrap();
        assert_eq!(texts(&whole), [r#"{"D 1":[{"a":1,"b":2}]}"#]);
        let parts = split(
            Shape::GatewayTelemetry("D 1"),
            &v,
            18,
            u32::MAX,
            ("telemetry", 65536),
        )
        .unwrap();
        assert_eq!(
            texts(&parts),
            [r#"{"D 1":[{"a":1}]}"#, r#"{"D 1":[{"b":2}]}"#]
        );
        let attrs = split(
            Shape::GatewayAttributes("D"),
            &v,
            13,
            u32::MAX,
            ("attributes", 65536),
        )
        .unwrap();
        assert_eq!(texts(&attrs), [r#"{"D":{"a":1}}"#, r#"{"D":{"b":2}}"#]);
    }

    #[test]
    fn a_value_too_big_for_any_message_names_its_key() {
        let v = json!({"small": 1, "blob": "x".repeat(100)});
        let e = split(Shape::Telemetry, &v, 50, u32::MAX, ("telemetry", 65536)).unwrap_err();
        assert!(e.to_string().contains("telemetry key \"blob\""), "{e}");
    }

    #[test]
    fn every_part_fits_and_nothing_is_lost() {
        let mut m = Map::new();
        for i in 0..500 {
            m.insert(
                format!("key{i}"),
                json!(format!("value-{i}-{}", "v".repeat(i % 37))),
            );
        }
        let v = Value::Object(m.clone());
        for budget in [100, 200, 1000, 4096] {
            let parts =
                split(Shape::GatewayTelemetry("dev"), &v, budget, 40, ("t", 65536)).unwrap();
            let mut seen = Map::new();
            for (bytes, n) in &parts {
                assert!(bytes.len() <= budget && *n <= 40);
                let p: Value = serde_json::from_slice(bytes).unwrap();
                let entries = p["dev"].as_array().unwrap();
                let count: usize = entries.iter().map(|e| e.as_object().unwrap().len()).sum();
                assert_eq!(count as u32, *n);
                for e in entries {
                    for (k, v) in e.as_object().unwrap() {
                        assert!(seen.insert(k.clone(), v.clone()).is_none());
                    }
                }
            }
            assert_eq!(seen, m);
        }
    }
}
