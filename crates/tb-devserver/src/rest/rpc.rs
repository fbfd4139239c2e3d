//! Server-side RPC over REST (spec 7): one-way and two-way, on the v1 (`/api/plugins/rpc`)
//! and v2 (`/api/rpc`) paths, with ThingsBoard's statuses on expiry.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use super::devices::name_by_id;
use super::{ok_empty, Api, ApiError, ApiResult};
use crate::features::rpc::{self, RpcCall};
use crate::store::{now_ms, RpcOutcome, RpcStatus};

/// ThingsBoard's defaults (`min_timeout`, `default_timeout`), ms.
const MIN_TIMEOUT_MS: i64 = 5000;
const DEFAULT_TIMEOUT_MS: i64 = 10_000;

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/plugins/rpc/{kind}/{id}", post(v1))
        .route("/api/rpc/{kind}/{id}", post(v2))
}

async fn v1(state: State<Arc<Api>>, path: Path<(String, String)>, body: Bytes) -> ApiResult {
    handle(state, path, body, false).await
}

async fn v2(state: State<Arc<Api>>, path: Path<(String, String)>, body: Bytes) -> ApiResult {
    handle(state, path, body, true).await
}

/// A parsed RPC request body (spec 7.1).
struct Request {
    method: String,
    params: String,
    expiry: Duration,
}

fn parse(body: &[u8]) -> Result<Request, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid request body"))?;
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("RPC method is missing"))?
        .to_string();
    if v.get("persistent").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "Persistent RPC is not supported by the dev server",
        ));
    }
    let params = v.get("params").unwrap_or(&Value::Null).to_string();
    let expiry_ms = match v.get("expirationTime").and_then(Value::as_i64) {
        Some(at) => at - now_ms(),
        None => v
            .get("timeout")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .max(MIN_TIMEOUT_MS),
    };
    let expiry = Duration::from_millis(u64::try_from(expiry_ms.max(0)).unwrap_or(0));
    Ok(Request {
        method,
        params,
        expiry,
    })
}

async fn handle(
    State(api): State<Arc<Api>>,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
    v2: bool,
) -> ApiResult {
    let oneway = match kind.as_str() {
        "oneway" => true,
        "twoway" => false,
        _ => return Err(ApiError::not_found("Requested item wasn't found!")),
    };
    let req = parse(&body)?;
    let name = name_by_id(&api, &id, |_| ApiError::device_text_404())?;
    let call = rpc::start(
        &api.shared,
        &name,
        &req.method,
        &req.params,
        req.expiry,
        oneway,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let shared = api.shared.clone();
    // Waiting blocks (a condition variable): off the IO workers.
    let outcome = tokio::task::spawn_blocking(move || wait(&shared, &name, &call, oneway))
        .await
        .map_err(|_| ApiError::Empty(StatusCode::INTERNAL_SERVER_ERROR))?;
    match outcome {
        Waited::Delivered => ok_empty(),
        Waited::Reply(text) if text.is_empty() => ok_empty(),
        Waited::Reply(text) => {
            if serde_json::from_str::<Value>(&text).is_err() {
                return Err(ApiError::Empty(StatusCode::NOT_ACCEPTABLE));
            }
            Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
        }
        // spec 7.4: v2 answers 504 either way; v1 409 if never delivered, else 408.
        Waited::Expired { sent } => Err(ApiError::Empty(match (v2, sent) {
            (true, _) => StatusCode::GATEWAY_TIMEOUT,
            (false, false) => StatusCode::CONFLICT,
            (false, true) => StatusCode::REQUEST_TIMEOUT,
        })),
    }
}

enum Waited {
    /// A one-way RPC went out.
    Delivered,
    Reply(String),
    Expired {
        sent: bool,
    },
}

/// Waits for a two-way reply, or for a one-way RPC to be published, until expiry.
fn wait(shared: &crate::shared::Shared, device: &str, call: &RpcCall, oneway: bool) -> Waited {
    let sent = || rpc::state(shared, device, call.id()).is_some_and(|(s, _)| s);
    if oneway {
        // Published at once when a subscribed session exists; else when one subscribes.
        let slice = Duration::from_millis(20);
        loop {
            match rpc::state(shared, device, call.id()) {
                Some((true, _)) => return Waited::Delivered,
                Some((false, RpcStatus::Queued)) => {}
                _ => return Waited::Expired { sent: false },
            }
            if call.wait(slice).is_some() {
                // One-way RPCs take no reply: only expiry ends the wait here.
                return Waited::Expired { sent: sent() };
            }
        }
    }
    loop {
        match call.wait(Duration::from_secs(3600)) {
            Some(RpcOutcome::Reply(r)) => return Waited::Reply(r),
            Some(RpcOutcome::Expired) => return Waited::Expired { sent: sent() },
            None => {}
        }
    }
}
