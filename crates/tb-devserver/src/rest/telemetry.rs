//! Time series and attributes over REST (spec 5, 6): the `/api/plugins/telemetry/...` paths.
//!
//! Design: one catch-all route per method, dispatched here on the path segments, because
//! ThingsBoard's paths put a variable segment where others have a fixed word
//! (`{deviceId}/{scope}` beside `{entityType}/{entityId}/values/...`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::devices::name_by_id;
use super::{
    bool_param, int_param, ok_empty, ok_json, param, query_pairs, Api, ApiError, ApiResult,
    ApiState,
};
use crate::features::{attributes, telemetry};
use crate::json::{java_double, parse_lenient, JVal};
use crate::store::{now_ms, AttributeScope, TelemetryPoint};
use crate::value::{type_object, TbValue};

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new().route(
        "/api/plugins/telemetry/{*rest}",
        get(read).post(write).delete(remove),
    )
}

/// A stored value as ThingsBoard's REST API writes it: text unless `strict`.
pub(crate) fn value_json(v: &TbValue, strict: bool) -> Value {
    match (v, strict) {
        (TbValue::Bool(b), true) => Value::Bool(*b),
        (TbValue::Long(n), true) => Value::from(*n),
        (TbValue::Double(d), true) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(java_double(*d)), Value::Number),
        (TbValue::String(s), _) => Value::String(s.clone()),
        (TbValue::Json(j), true) => {
            serde_json::from_str(j).unwrap_or_else(|_| Value::String(j.clone()))
        }
        (TbValue::Bool(b), false) => Value::String(b.to_string()),
        (TbValue::Long(n), false) => Value::String(n.to_string()),
        (TbValue::Double(d), false) => Value::String(java_double(*d)),
        (TbValue::Json(j), false) => Value::String(j.clone()),
    }
}

/// The device of `{entityType}/{entityId}`; only `DEVICE` is served.
fn device_of(api: &Api, kind: &str, id: &str) -> Result<String, ApiError> {
    if kind != "DEVICE" {
        return Err(ApiError::bad_request(format!(
            "Entity type {kind} is not supported by the dev server"
        )));
    }
    name_by_id(api, id, |_| ApiError::device_text_404())
}

/// Requested keys: `keys=a,b` or repeated `key=a` (which wins).
fn keys_of(q: &[(String, String)]) -> Option<Vec<String>> {
    let repeated: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .collect();
    if !repeated.is_empty() {
        return Some(repeated);
    }
    param(q, "keys").map(|k| {
        k.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn segments(rest: &str) -> Vec<&str> {
    rest.split('/').filter(|s| !s.is_empty()).collect()
}

async fn read(
    State(api): ApiState,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query_pairs(raw.as_deref());
    match segments(&rest).as_slice() {
        [kind, id, "values", "timeseries"] => {
            let name = device_of(&api, kind, id)?;
            if param(&q, "startTs").is_some() && param(&q, "endTs").is_some() {
                history(&api, &name, &q)
            } else {
                latest(&api, &name, &q)
            }
        }
        [kind, id, "values", "timeseries", "history"] => {
            let name = device_of(&api, kind, id)?;
            history(&api, &name, &q)
        }
        [kind, id, "keys", "timeseries"] => {
            let name = device_of(&api, kind, id)?;
            let st = api.shared.state.lock();
            let keys: Vec<&String> = st
                .store
                .devices
                .get(&name)
                .map(|d| d.latest.keys().collect())
                .unwrap_or_default();
            ok_json(json!(keys))
        }
        [kind, id, "values", "attributes", rest @ ..] if rest.len() <= 1 => {
            let name = device_of(&api, kind, id)?;
            let scopes = scopes_of(rest.first().copied())?;
            attribute_values(&api, &name, &scopes, keys_of(&q))
        }
        [kind, id, "keys", "attributes", rest @ ..] if rest.len() <= 1 => {
            let name = device_of(&api, kind, id)?;
            let scopes = scopes_of(rest.first().copied())?;
            let st = api.shared.state.lock();
            let mut keys: Vec<String> = Vec::new();
            if let Some(dev) = st.store.devices.get(&name) {
                for s in scopes {
                    keys.extend(dev.attributes(s).keys().cloned());
                }
            }
            ok_json(json!(keys))
        }
        _ => Err(ApiError::not_found("Requested item wasn't found!")),
    }
}

/// No scope = all three, merged client, server, shared (spec 6.1).
fn scopes_of(scope: Option<&str>) -> Result<Vec<AttributeScope>, ApiError> {
    match scope {
        None => Ok(vec![
            AttributeScope::Client,
            AttributeScope::Server,
            AttributeScope::Shared,
        ]),
        Some(s) => AttributeScope::from_name(s)
            .map(|s| vec![s])
            .ok_or_else(|| ApiError::bad_request(format!("Invalid attribute scope: {s}"))),
    }
}

fn point_json(p: &TelemetryPoint, strict: bool) -> Value {
    json!({"ts": p.ts, "value": value_json(&p.value, strict)})
}

/// Latest value per key (spec 5.2); a requested key without a value gets `null` and now.
fn latest(api: &Api, name: &str, q: &[(String, String)]) -> ApiResult {
    let strict = bool_param(q, "useStrictDataTypes");
    let wanted = keys_of(q);
    let st = api.shared.state.lock();
    let Some(dev) = st.store.devices.get(name) else {
        return Err(ApiError::device_text_404());
    };
    let mut out = Map::new();
    match wanted {
        None => {
            for (k, p) in &dev.latest {
                out.insert(k.clone(), json!([point_json(p, strict)]));
            }
        }
        Some(keys) => {
            for k in keys {
                let v = match dev.latest.get(&k) {
                    Some(p) => point_json(p, strict),
                    None => json!({"ts": now_ms(), "value": null}),
                };
                out.insert(k, json!([v]));
            }
        }
    }
    ok_json(Value::Object(out))
}

/// The `agg` values ThingsBoard knows (its `Aggregation` enum; names are case-sensitive).
const AGGREGATIONS: [&str; 6] = ["MIN", "MAX", "AVG", "SUM", "COUNT", "NONE"];

/// Points in `[startTs, endTs)`, at most `limit` per key, newest first unless
/// `orderBy=ASC` (spec 5.3). Aggregation other than `NONE` is not served (400).
fn history(api: &Api, name: &str, q: &[(String, String)]) -> ApiResult {
    let start = int_param(q, "startTs")?;
    let end = int_param(q, "endTs")?;
    let limit = match param(q, "limit") {
        Some(_) => int_param(q, "limit")?.max(1),
        None => 100,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // ThingsBoard checks both before it looks at any data (Java's `Aggregation.valueOf`,
    // Spring's `Sort.Direction.fromString`); their exceptions become a plain-text 400
    // (AccessValidator.handleError, spec 3.2 shape 2).
    let order = param(q, "orderBy").unwrap_or("DESC");
    let asc = match order.to_ascii_uppercase().as_str() {
        "ASC" => true,
        "DESC" => false,
        _ => {
            return Err(ApiError::text(
                StatusCode::BAD_REQUEST,
                format!(
                    "Invalid value '{order}' for orders given; Has to be either 'desc' or \
                     'asc' (case insensitive)"
                ),
            ))
        }
    };
    let agg = param(q, "agg").unwrap_or("NONE");
    if !AGGREGATIONS.contains(&agg) {
        return Err(ApiError::text(
            StatusCode::BAD_REQUEST,
            format!("No enum constant org.thingsboard.server.common.data.kv.Aggregation.{agg}"),
        ));
    }
    if agg != "NONE" {
        let interval = param(q, "interval")
            .and_then(|i| i.parse::<i64>().ok())
            .unwrap_or(0);
        if interval != 0 {
            return Err(ApiError::bad_request(format!(
                "Aggregation {agg} is not supported by the dev server (use agg=NONE)"
            )));
        }
    }
    let strict = bool_param(q, "useStrictDataTypes");
    let keys = keys_of(q).unwrap_or_default();
    let st = api.shared.state.lock();
    let Some(dev) = st.store.devices.get(name) else {
        return Err(ApiError::device_text_404());
    };
    let mut per_key: BTreeMap<&str, Vec<&TelemetryPoint>> = BTreeMap::new();
    for p in &dev.telemetry {
        if p.ts >= start && p.ts < end && keys.contains(&p.key) {
            per_key.entry(p.key.as_str()).or_default().push(p);
        }
    }
    let mut out = Map::new();
    for k in &keys {
        let Some(mut points) = per_key.remove(k.as_str()) else {
            continue;
        };
        // Stable: equal timestamps keep arrival order.
        points.sort_by_key(|p| p.ts);
        if !asc {
            points.reverse();
        }
        let v: Vec<Value> = points
            .iter()
            .take(limit)
            .map(|p| point_json(p, strict))
            .collect();
        out.insert(k.clone(), Value::Array(v));
    }
    ok_json(Value::Object(out))
}

/// Attribute values of `scopes` (spec 6.1): native types, `lastUpdateTs`.
fn attribute_values(
    api: &Api,
    name: &str,
    scopes: &[AttributeScope],
    keys: Option<Vec<String>>,
) -> ApiResult {
    let st = api.shared.state.lock();
    let Some(dev) = st.store.devices.get(name) else {
        return Err(ApiError::device_text_404());
    };
    let mut out = Vec::new();
    for s in scopes {
        let attrs = dev.attributes(*s);
        let mut push = |k: &str, v: &crate::store::Stamped| {
            out.push(json!({"lastUpdateTs": v.ts, "key": k, "value": value_json(&v.value, true)}));
        };
        match &keys {
            None => attrs.iter().for_each(|(k, v)| push(k, v)),
            Some(list) => list
                .iter()
                .filter_map(|k| attrs.get(k).map(|v| (k, v)))
                .for_each(|(k, v)| push(k, v)),
        }
    }
    ok_json(Value::Array(out))
}

fn text400(body: &str) -> ApiError {
    ApiError::text(StatusCode::BAD_REQUEST, body)
}

async fn write(State(api): ApiState, Path(rest): Path<String>, body: Bytes) -> ApiResult {
    match segments(&rest).as_slice() {
        [id, scope] => save_attributes(&api, "DEVICE", id, scope, &body),
        [kind, id, "timeseries", _scope] => save_telemetry(&api, kind, id, &body),
        [kind, id, "attributes", scope] | [kind, id, scope] => {
            save_attributes(&api, kind, id, scope, &body)
        }
        _ => Err(ApiError::not_found("Requested item wasn't found!")),
    }
}

/// spec 6.3: the checks in ThingsBoard's order, each a plain-text 400.
fn save_attributes(api: &Api, kind: &str, id: &str, scope: &str, body: &[u8]) -> ApiResult {
    let scope = match AttributeScope::from_name(scope) {
        Some(AttributeScope::Client) | None => {
            return Err(text400(&format!("Invalid scope: {scope}")))
        }
        Some(s) => s,
    };
    let text = String::from_utf8_lossy(body);
    let members = match parse_lenient(&text) {
        Ok(JVal::Obj(m)) => m,
        Ok(_) => return Err(text400("Request is not a JSON object")),
        Err(_) => return Err(text400("Invalid JSON")),
    };
    let values =
        type_object(&members, api.shared.config.typing()).map_err(|_| text400("Invalid JSON"))?;
    if values.is_empty() {
        return Err(text400("No attributes data found in request body!"));
    }
    if values.iter().any(|(k, _)| k.trim().is_empty()) {
        return Err(text400("Key cannot be blank"));
    }
    let name = device_of(api, kind, id)?;
    attributes::save_user(&api.shared, &name, scope, values)
        .map_err(|_| ApiError::device_text_404())?;
    ok_empty()
}

/// spec 5.5: telemetry written by a user, stored as if the device had sent it.
fn save_telemetry(api: &Api, kind: &str, id: &str, body: &[u8]) -> ApiResult {
    let entries = telemetry::parse_upload(body, api.shared.config.typing(), now_ms())
        .map_err(|_| text400("Unable to parse time series payload: Invalid JSON body!"))?;
    if telemetry::point_count(&entries) == 0 {
        return Err(text400("No time series data found in request body!"));
    }
    let name = device_of(api, kind, id)?;
    telemetry::save(&api.shared, &name, entries);
    ok_empty()
}

async fn remove(
    State(api): ApiState,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query_pairs(raw.as_deref());
    let (kind, id, scope) = match segments(&rest).as_slice() {
        [id, scope] => ("DEVICE", id.to_string(), scope.to_string()),
        [kind, id, scope] => (*kind, id.to_string(), scope.to_string()),
        _ => return Err(ApiError::not_found("Requested item wasn't found!")),
    };
    let scope = AttributeScope::from_name(&scope)
        .ok_or_else(|| text400(&format!("Invalid scope: {scope}")))?;
    let keys = keys_of(&q).unwrap_or_default();
    if keys.is_empty() {
        return Err(text400("Empty keys: []"));
    }
    let name = device_of(&api, kind, &id)?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    attributes::delete(&api.shared, &name, scope, &refs)
        .map_err(|_| ApiError::device_text_404())?;
    ok_empty()
}
