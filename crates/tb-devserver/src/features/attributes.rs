//! Attributes: client attributes uploaded by the device, shared attributes written by users
//! and pushed to the device, server attributes kept for users only; attribute requests
//! answered as ThingsBoard does (spec 5, 6, 17.26).

use bytes::Bytes;

use crate::error::DevServerError;
use crate::events::Event;
use crate::features::Rejection;
use crate::json::{write_json_string, JVal};
use crate::shared::{Shared, State};
use crate::store::{now_ms, AttributeScope};
use crate::topics::ATTRIBUTES_TOPIC;
use crate::value::{parse_payload, type_object_owned, TbValue, TypingOptions};

/// Parses a client attribute upload: a JSON object, typed (spec 2.12).
pub(crate) fn parse_upload(
    payload: &[u8],
    typing: TypingOptions,
) -> Result<Vec<(String, TbValue)>, Rejection> {
    let json = parse_payload(payload).map_err(|e| Rejection::payload("attributes JSON", &e))?;
    typed_upload(json, typing)
}

/// [`parse_upload`] of a payload already parsed (a gateway message's value for one device).
pub(crate) fn typed_upload(
    json: JVal,
    typing: TypingOptions,
) -> Result<Vec<(String, TbValue)>, Rejection> {
    let JVal::Obj(members) = json else {
        return Err(Rejection::Invalid("attributes (not an object)".into()));
    };
    type_object_owned(members, typing).map_err(|e| Rejection::payload("attribute value", &e))
}

/// Stores client attributes a device uploaded.
pub(crate) fn save_client(shared: &Shared, device: &str, values: Vec<(String, TbValue)>) {
    event(shared, device, AttributeScope::Client, &values, &[]);
    let ts = now_ms();
    shared.update(|st| {
        st.store
            .set_attributes(device, AttributeScope::Client, values, ts)
    });
}

/// The keys an attribute request names per section: `None` = the section is not asked for.
#[derive(Debug, Default)]
pub(crate) struct AttributeRequest {
    pub(crate) client_keys: Option<Vec<String>>,
    pub(crate) shared_keys: Option<Vec<String>>,
}

/// Parses an attribute request payload `{"clientKeys":"a,b","sharedKeys":"c"}` (spec 5).
pub(crate) fn parse_request(payload: &[u8]) -> Result<AttributeRequest, Rejection> {
    let json = match parse_payload(payload) {
        Ok(j @ JVal::Obj(_)) => j,
        Ok(_) => {
            return Err(Rejection::Invalid(
                "attribute request (not an object)".into(),
            ))
        }
        Err(e) => return Err(Rejection::payload("attribute request JSON", &e)),
    };
    let mut keys = [None, None];
    for (i, field) in ["clientKeys", "sharedKeys"].iter().enumerate() {
        if let Some(v) = json.get(field) {
            match v.as_gson_string() {
                Some(s) => keys[i] = Some(java_split(&s)).filter(|k| !k.is_empty()),
                None => return Err(Rejection::Invalid(format!("attribute request {field}"))),
            }
        }
    }
    let [client_keys, shared_keys] = keys;
    Ok(AttributeRequest {
        client_keys,
        shared_keys,
    })
}

/// The response to an attribute request: `{"client":{..},"shared":{..}}` with empty sections
/// left out; no keys at all = every client and shared attribute. `None` if the device is
/// gone.
pub(crate) fn response(shared: &Shared, device: &str, req: &AttributeRequest) -> Option<String> {
    let st = shared.state.lock();
    let dev = st.store.devices.get(device)?;
    let all = req.client_keys.is_none() && req.shared_keys.is_none();
    let mut out = String::from("{");
    for (section, attrs, wanted) in [
        ("client", &dev.client_attrs, &req.client_keys),
        ("shared", &dev.shared_attrs, &req.shared_keys),
    ] {
        let mut body = String::new();
        let mut n = 0;
        let mut add = |k: &str, v: &TbValue| {
            body.push(if n == 0 { '{' } else { ',' });
            write_json_string(&mut body, k);
            body.push(':');
            v.write_json(&mut body);
            n += 1;
        };
        match wanted {
            None if all => attrs.iter().for_each(|(k, v)| add(k, &v.value)),
            None => {}
            Some(list) => {
                let mut seen: Vec<&str> = Vec::new();
                for k in list {
                    if !seen.contains(&k.as_str()) {
                        seen.push(k);
                        if let Some(v) = attrs.get(k) {
                            add(k, &v.value);
                        }
                    }
                }
            }
        }
        if n > 0 {
            body.push('}');
            if out.len() > 1 {
                out.push(',');
            }
            write_json_string(&mut out, section);
            out.push(':');
            out.push_str(&body);
        }
    }
    out.push('}');
    Some(out)
}

/// Writes attributes of a user scope (shared or server) and, for shared ones, pushes the
/// written keys as one flat object to the device if it is subscribed to
/// `v1/devices/me/attributes` (spec 6, 17.26). Returns the pushed payload text.
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn save_user(
    shared: &Shared,
    device: &str,
    scope: AttributeScope,
    values: Vec<(String, TbValue)>,
) -> Result<String, DevServerError> {
    let payload = typed_json(&values);
    let ts = now_ms();
    event(shared, device, scope, &values, &[]);
    shared.update(|st| {
        if !st.store.set_attributes(device, scope, values, ts) {
            return Err(DevServerError::UnknownDevice(device.into()));
        }
        if scope == AttributeScope::Shared {
            push(st, device, payload.clone());
        }
        Ok(())
    })?;
    shared.logs.emit(format!(
        "\"{device}\" {} attributes set: {payload}",
        scope_word(scope)
    ));
    Ok(payload)
}

/// Deletes attributes of a scope; for shared ones pushes `{"deleted":[...]}` (even for keys
/// that did not exist, as ThingsBoard does).
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn delete(
    shared: &Shared,
    device: &str,
    scope: AttributeScope,
    keys: &[&str],
) -> Result<(), DevServerError> {
    let payload = deleted_json(keys);
    event(shared, device, scope, &[], keys);
    shared.update(|st| {
        if !st.store.delete_attributes(device, scope, keys) {
            return Err(DevServerError::UnknownDevice(device.into()));
        }
        if scope == AttributeScope::Shared {
            push(st, device, payload.clone());
        }
        Ok(())
    })?;
    shared.logs.emit(format!(
        "\"{device}\" {} attributes deleted: {payload}",
        scope_word(scope)
    ));
    Ok(())
}

/// The live event of an attribute change, for a stream watching the device.
pub(crate) fn event(
    shared: &Shared,
    device: &str,
    scope: AttributeScope,
    values: &[(String, TbValue)],
    deleted: &[&str],
) {
    if shared.events.watching(device) {
        shared.events.send(Event::Attributes {
            device: device.into(),
            scope,
            values: values.to_vec(),
            deleted: deleted.iter().map(|k| k.to_string()).collect(),
        });
    }
}

fn scope_word(scope: AttributeScope) -> &'static str {
    match scope {
        AttributeScope::Client => "client",
        AttributeScope::Shared => "shared",
        AttributeScope::Server => "server",
    }
}

/// Pushes an attribute notification if the device's session subscribed (spec 2.11, 17.26).
pub(crate) fn push(st: &State, device: &str, payload: String) {
    if let Some(link) = st.links.get(device).filter(|l| l.attr_sub) {
        link.publish(ATTRIBUTES_TOPIC.into(), Bytes::from(payload), None);
    }
}

/// `{"k":v,...}` with values as ThingsBoard writes them back.
pub(crate) fn typed_json(values: &[(String, TbValue)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, k);
        out.push(':');
        v.write_json(&mut out);
    }
    out.push('}');
    out
}

/// `{"deleted":[...]}`, the push for deleted shared attributes (spec 17.26).
pub(crate) fn deleted_json(keys: &[&str]) -> String {
    let arr = JVal::Arr(keys.iter().map(|k| JVal::Str((*k).into())).collect());
    format!("{{\"deleted\":{}}}", arr.to_json())
}

/// Java `String.split(",")`: trailing empty strings removed, `""` stays `[""]`.
fn java_split(s: &str) -> Vec<String> {
    let mut parts: Vec<String> = s.split(',').map(str::to_string).collect();
    if parts.len() > 1 {
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_drops_trailing_empties_only() {
        assert_eq!(java_split("a,b"), vec!["a", "b"]);
        assert_eq!(java_split("a, b"), vec!["a", " b"]);
        assert_eq!(java_split(""), vec![""]);
        assert_eq!(java_split("a,,"), vec!["a"]);
        assert!(java_split(",").is_empty());
        assert_eq!(java_split(",a"), vec!["", "a"]);
    }
}
