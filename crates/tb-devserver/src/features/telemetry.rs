//! Time series: uploads typed as ThingsBoard types them (spec 4, 2.12), stored per device;
//! reads of the latest value per key and of ranges.

use crate::events::Event;
use crate::features::Rejection;
use crate::json::JVal;
use crate::shared::{Shared, State};
use crate::store::{now_ms, TelemetryPoint};
use crate::value::{parse_payload, type_object_owned, TbValue, TypingOptions};

/// Typed entries of one upload: (ts, key/values), in payload order.
pub(crate) type Entries = Vec<(i64, Vec<(String, TbValue)>)>;

/// Parses a telemetry payload (`{k:v}`, `{"ts":..,"values":{..}}` or an array of those);
/// entries without `ts` get `now`. An empty result (`[]`) is for the caller to judge.
pub(crate) fn parse_upload(
    payload: &[u8],
    typing: TypingOptions,
    now: i64,
) -> Result<Entries, Rejection> {
    let json = parse_payload(payload).map_err(|e| Rejection::payload("telemetry JSON", &e))?;
    typed_upload(json, typing, now)
}

/// [`parse_upload`] of a payload already parsed (a gateway message's value for one device):
/// its keys and strings are moved into the entries, not copied.
pub(crate) fn typed_upload(
    json: JVal,
    typing: TypingOptions,
    now: i64,
) -> Result<Entries, Rejection> {
    match json {
        JVal::Obj(members) => Ok(vec![typed_entry(members, typing, now)?]),
        JVal::Arr(items) => {
            let mut entries = Vec::with_capacity(items.len());
            for item in items {
                let JVal::Obj(members) = item else {
                    return Err(Rejection::Invalid(
                        "telemetry array element (not an object)".into(),
                    ));
                };
                entries.push(typed_entry(members, typing, now)?);
            }
            Ok(entries)
        }
        _ => Err(Rejection::Invalid(
            "telemetry (not an object or array)".into(),
        )),
    }
}

/// One telemetry object: `{"ts":..,"values":{..}}`, or key/values at `now`.
fn typed_entry(
    mut members: Vec<(String, JVal)>,
    typing: TypingOptions,
    now: i64,
) -> Result<(i64, Vec<(String, TbValue)>), Rejection> {
    // Object keys are unique (the parser merges repeats), so `position` finds the one.
    let ts = members.iter().position(|(k, _)| k == "ts");
    let values = members.iter().position(|(k, _)| k == "values");
    let result = match (ts, values) {
        (Some(ts), Some(values)) => {
            let Some(ts) = members[ts].1.as_gson_long() else {
                return Err(Rejection::Unchecked("telemetry ts (not a number)".into()));
            };
            let JVal::Obj(vm) = members.swap_remove(values).1 else {
                return Err(Rejection::Invalid(
                    "telemetry values (not an object)".into(),
                ));
            };
            type_object_owned(vm, typing).map(|kv| (ts, kv))
        }
        _ => type_object_owned(members, typing).map(|kv| (now, kv)),
    };
    result.map_err(|e| Rejection::payload("telemetry value", &e))
}

/// Number of key/value points in `entries`.
pub(crate) fn point_count(entries: &Entries) -> usize {
    entries.iter().map(|(_, kv)| kv.len()).sum()
}

/// Stores `entries` for `device` (nothing if it is gone).
pub(crate) fn save(shared: &Shared, device: &str, entries: Entries) {
    if shared.events.watching(device) {
        for (ts, values) in &entries {
            shared.events.send(Event::Telemetry {
                device: device.into(),
                ts: *ts,
                values: values.clone(),
            });
        }
    }
    let points: Vec<TelemetryPoint> = entries
        .into_iter()
        .flat_map(|(ts, kvs)| {
            kvs.into_iter()
                .map(move |(key, value)| TelemetryPoint { ts, key, value })
        })
        .collect();
    let cap = shared.config.max_telemetry_per_device;
    shared.update(|st| {
        if st.store.append_telemetry(device, points, cap) {
            if let Some(dev) = st.store.devices.get_mut(device) {
                dev.last_activity_ms = now_ms();
            }
        }
    });
}

/// Stores one point the server itself writes (spec 11.1: `fw_state`), under the lock the
/// caller holds.
pub(crate) fn save_server_point(
    st: &mut State,
    cap: usize,
    device: &str,
    ts: i64,
    key: &str,
    value: TbValue,
) {
    let point = TelemetryPoint {
        ts,
        key: key.into(),
        value,
    };
    st.store.append_telemetry(device, vec![point], cap);
}

/// The live event of a point from [`save_server_point`], for a watching stream.
pub(crate) fn server_point_event(
    shared: &Shared,
    device: &str,
    ts: i64,
    key: &str,
    value: TbValue,
) {
    if shared.events.watching(device) {
        shared.events.send(Event::Telemetry {
            device: device.into(),
            ts,
            values: vec![(key.into(), value)],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_lenient;
    use crate::value::type_object;

    /// The typing as it was written before the owned path: borrowed tree, keys cloned.
    fn reference(payload: &[u8], typing: TypingOptions, now: i64) -> Result<Entries, Rejection> {
        let json = parse_payload(payload).map_err(|e| Rejection::payload("telemetry JSON", &e))?;
        let objects: Vec<&JVal> = match &json {
            JVal::Obj(_) => vec![&json],
            JVal::Arr(items) => items.iter().collect(),
            _ => {
                return Err(Rejection::Invalid(
                    "telemetry (not an object or array)".into(),
                ))
            }
        };
        let mut entries = Vec::new();
        for obj in objects {
            let JVal::Obj(members) = obj else {
                return Err(Rejection::Invalid(
                    "telemetry array element (not an object)".into(),
                ));
            };
            let result = match (obj.get("ts"), obj.get("values")) {
                (Some(ts), Some(values)) => {
                    let Some(ts) = ts.as_gson_long() else {
                        return Err(Rejection::Unchecked("telemetry ts (not a number)".into()));
                    };
                    let JVal::Obj(vm) = values else {
                        return Err(Rejection::Invalid(
                            "telemetry values (not an object)".into(),
                        ));
                    };
                    type_object(vm, typing).map(|kv| (ts, kv))
                }
                _ => type_object(members, typing).map(|kv| (now, kv)),
            };
            entries.push(result.map_err(|e| Rejection::payload("telemetry value", &e))?);
        }
        Ok(entries)
    }

    /// Typing a payload, and a gateway message's part from its parse tree, give what the
    /// borrowed typing gave (and what parsing the part's text again gave), errors included.
    #[test]
    fn typing_a_parsed_part_equals_parsing_its_text() {
        let parts = [
            r#"{"t":21.5,"h":40,"on":true,"s":"007","n":null,"j":{"a":[1,2.50]}}"#,
            r#"[{"ts":1700000000000,"values":{"k0":1,"k1":-2.25,"k2":"x"}},{"ts":"5","values":{}}]"#,
            r#"[{"ts":1,"values":{"a":1e20,"b":12345678901234567890,"c":0.12345678901234567}}]"#,
            r#"{"ts":1,"values":{"v":1},"other":2}"#,
            r#"{"ts":1}"#,
            r#"[{"ts":"x","values":{}}]"#,
            r#"[{"ts":1,"values":[1]}]"#,
            r#"[1]"#,
            r#""text""#,
            r#"{"big":1e1478690889}"#,
            r#"{"s":"a\"b\u00e9\\"}"#,
        ];
        for type_cast in [false, true] {
            let typing = TypingOptions {
                type_cast,
                max_string_len: 4,
            };
            for part in parts {
                let tree = parse_lenient(part).expect("JSON");
                let text = tree.to_json();
                let expected = reference(text.as_bytes(), typing, 7);
                assert_eq!(parse_upload(part.as_bytes(), typing, 7), expected, "{part}");
                assert_eq!(typed_upload(tree, typing, 7), expected, "{part}");
            }
        }
    }
}
