//! The dev server's live event stream (not ThingsBoard's API; contract with the web page in
//! docs/devserver.md): `GET /api/devserver/events?token=JWT[&deviceId=ID]`, server-sent
//! events, one JSON object per `data:` line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::devices::{device_info_json, name_by_id};
use super::telemetry::value_json;
use super::{param, query_pairs, ApiError, ApiState};
use crate::events::{Event, Subscription, LOG_PAYLOAD_MAX};
use crate::shared::Shared;
use crate::store::RpcStatus;
use crate::value::TbValue;

/// Sends one `device` event per active device per second while someone listens (the
/// coalescing of activity-only changes).
pub(crate) async fn tick_activity(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                for name in shared.events.take_active() {
                    shared.events.send(Event::Device { name });
                }
            }
        }
    }
}

fn values_json(values: &[(String, TbValue)]) -> Value {
    let mut m = Map::new();
    for (k, v) in values {
        m.insert(k.clone(), value_json(v, true));
    }
    Value::Object(m)
}

fn status_name(s: RpcStatus) -> &'static str {
    match s {
        RpcStatus::Queued => "QUEUED",
        RpcStatus::Sent => "SENT",
        RpcStatus::Delivered => "DELIVERED",
        RpcStatus::Successful => "SUCCESSFUL",
        RpcStatus::Timeout => "TIMEOUT",
        RpcStatus::Expired => "EXPIRED",
    }
}

/// The JSON of an event for a stream watching `watched` (`None`: the list), or `None` when
/// the stream does not carry it.
fn event_json(shared: &Shared, event: &Event, watched: Option<&(String, String)>) -> Option<Value> {
    if let Some(device) = event.device() {
        let (name, id) = watched?;
        if name != device {
            return None;
        }
        return Some(match event {
            Event::Telemetry { ts, values, .. } => {
                json!({"type": "telemetry", "deviceId": id, "ts": ts, "values": values_json(values)})
            }
            Event::Attributes {
                scope,
                values,
                deleted,
                ..
            } => json!({
                "type": "attributes", "deviceId": id, "scope": scope.name(),
                "values": values_json(values), "deleted": deleted,
            }),
            Event::Log {
                ts,
                up,
                topic,
                payload,
                ..
            } => {
                let mut text = payload.clone();
                if text.len() > LOG_PAYLOAD_MAX {
                    let mut cut = LOG_PAYLOAD_MAX;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                json!({
                    "type": "log", "deviceId": id, "ts": ts,
                    "dir": if *up { "up" } else { "down" }, "topic": topic, "payload": text,
                })
            }
            Event::Rpc {
                id: rpc_id,
                method,
                params,
                status,
                response,
                ..
            } => json!({
                "type": "rpc", "deviceId": id, "id": rpc_id, "method": method,
                "params": serde_json::from_str::<Value>(params).unwrap_or(Value::Null),
                "status": status_name(*status),
                "response": response.as_ref().map(|r| serde_json::from_str::<Value>(r)
                    .unwrap_or_else(|_| Value::String(r.clone()))),
            }),
            Event::Device { .. } | Event::DeviceDeleted { .. } => return None,
        });
    }
    match event {
        Event::Device { name } => {
            let st = shared.state.lock();
            let dev = st.store.devices.get(name)?;
            Some(json!({"type": "device", "device": device_info_json(&st, dev)}))
        }
        Event::DeviceDeleted { id } => Some(json!({"type": "deviceDeleted", "id": id.to_string()})),
        _ => None,
    }
}

struct StreamState {
    shared: Arc<Shared>,
    sub: Subscription,
    watched: Option<(String, String)>,
    shutdown: watch::Receiver<bool>,
}

fn events_stream(state: StreamState) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(state, |mut s| async move {
        loop {
            let received = tokio::select! {
                r = s.sub.rx.recv() => r,
                _ = s.shutdown.changed() => return None,
            };
            match received {
                Ok(event) => {
                    if let Some(v) = event_json(&s.shared, &event, s.watched.as_ref()) {
                        return Some((Ok(SseEvent::default().data(v.to_string())), s));
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// `GET /api/devserver/events` (the token was checked by the middleware).
pub(crate) async fn events(State(api): ApiState, RawQuery(raw): RawQuery) -> Response {
    let q = query_pairs(raw.as_deref());
    let watched = match param(&q, "deviceId").filter(|d| !d.is_empty()) {
        Some(id) => match name_by_id(&api, id, |_| ApiError::device_text_404()) {
            Ok(name) => Some((name, id.to_string())),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let sub = api
        .shared
        .events
        .subscribe(watched.as_ref().map(|(n, _)| n.clone()));
    let state = StreamState {
        shared: api.shared.clone(),
        sub,
        watched,
        shutdown: api.shared.shutdown.subscribe(),
    };
    Sse::new(events_stream(state))
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("ping"),
        )
        .into_response()
}
