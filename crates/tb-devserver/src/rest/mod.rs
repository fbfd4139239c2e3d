//! The REST API, ThingsBoard's own shapes (spec thingsboard-rest.md): login with JWTs,
//! devices, time series, attributes, RPC, OTA packages; plus the dev server's event stream
//! and its web page. The HTTP side of the protocol layer, beside the MQTT session: it parses
//! requests, calls the feature modules and writes ThingsBoard's answers and errors.
//!
//! Every path but login, refresh, the page and its static files needs a valid token
//! (`X-Authorization: Bearer T`, or `Authorization: Bearer T`; the event stream also takes
//! `?token=T`, since a browser's `EventSource` cannot set headers).

mod auth;
mod devices;
mod ota;
mod rpc;
mod stream;
mod telemetry;
mod web;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::shared::Shared;
use crate::store::now_ms;

pub(crate) use auth::Jwt;
pub(crate) use stream::tick_activity;

/// The one tenant of the dev server (fixed ids, so that URLs survive a restart).
pub(crate) const TENANT_ID: &str = "4f2b7a30-7c0e-11ee-b962-0242ac120002";
/// The `default` device profile.
pub(crate) const PROFILE_ID: &str = "4f4e1b10-7c0e-11ee-b962-0242ac120002";
/// The tenant administrator.
pub(crate) const USER_ID: &str = "4f3a2c20-7c0e-11ee-b962-0242ac120002";
/// ThingsBoard's "no customer" id.
pub(crate) const NULL_UUID: &str = "13814000-1dd2-11b2-8080-808080808080";

/// What every handler gets.
pub(crate) struct Api {
    pub(crate) shared: Arc<Shared>,
    pub(crate) jwt: Jwt,
}

pub(crate) type ApiState = State<Arc<Api>>;

/// An error answer in one of ThingsBoard's three shapes (spec 3.2).
#[derive(Debug)]
pub(crate) enum ApiError {
    /// `{"status","message","errorCode","timestamp"}`.
    Object {
        status: StatusCode,
        message: String,
        code: u32,
    },
    /// A status and a bare text body.
    Text { status: StatusCode, body: String },
    /// A status and no body.
    Empty(StatusCode),
}

impl ApiError {
    pub(crate) fn object(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError::Object {
            status,
            message: message.into(),
            code,
        }
    }

    /// 400, errorCode 31 (bad request parameters).
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        Self::object(StatusCode::BAD_REQUEST, 31, message)
    }

    /// 400, errorCode 30 (invalid arguments).
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        Self::object(StatusCode::BAD_REQUEST, 30, message)
    }

    /// 404, errorCode 32.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        Self::object(StatusCode::NOT_FOUND, 32, message)
    }

    /// 401, errorCode 10.
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::object(StatusCode::UNAUTHORIZED, 10, message)
    }

    pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> ApiError {
        ApiError::Text {
            status,
            body: body.into(),
        }
    }

    /// The plain-text 404 of the telemetry, attribute and RPC paths (spec 5.1).
    pub(crate) fn device_text_404() -> ApiError {
        Self::text(
            StatusCode::NOT_FOUND,
            "Device with requested id wasn't found!",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Object {
                status,
                message,
                code,
            } => {
                let body = json!({
                    "status": status.as_u16(),
                    "message": message,
                    "errorCode": code,
                    "timestamp": now_ms(),
                });
                (status, axum::Json(body)).into_response()
            }
            ApiError::Text { status, body } => (
                status,
                [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
                body,
            )
                .into_response(),
            ApiError::Empty(status) => status.into_response(),
        }
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// `200` with a JSON body.
pub(crate) fn ok_json(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

/// `200` with an empty body.
pub(crate) fn ok_empty() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

/// The query string as (name, value) pairs, decoded, in order (repeated names kept).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The first value of `name`.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A required integer parameter (400/31 with Spring's wording when missing or bad).
pub(crate) fn int_param(pairs: &[(String, String)], name: &str) -> Result<i64, ApiError> {
    let v = param(pairs, name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Required request parameter '{name}' for method parameter type long is not present"
        ))
    })?;
    v.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to convert value of type 'java.lang.String' to required type 'long'; \
             For input string: \"{v}\""
        ))
    })
}

/// A boolean parameter (`true`/`True`, any case).
pub(crate) fn bool_param(pairs: &[(String, String)], name: &str) -> bool {
    param(pairs, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// An entity id from a path segment (400/31 when it is not a UUID).
pub(crate) fn parse_id(text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ApiError::bad_request(format!("Invalid UUID string: {text}")))
}

/// `{"entityType": kind, "id": id}`.
pub(crate) fn entity_id(kind: &str, id: &str) -> Value {
    json!({"entityType": kind, "id": id})
}

/// Builds the router: public routes, then the token-protected API.
pub(crate) fn router(api: Arc<Api>) -> Router {
    let cfg = &api.shared.config;
    let (max_body, max_upload) = (cfg.http_max_body, cfg.http_max_upload);
    let protected = Router::new()
        .route("/api/auth/user", get(auth::user))
        .route("/api/auth/logout", post(auth::logout))
        .merge(devices::routes())
        .merge(telemetry::routes())
        .merge(rpc::routes())
        .merge(ota::routes(max_upload))
        .route("/api/devserver/events", get(stream::events))
        .route_layer(middleware::from_fn_with_state(api.clone(), durable))
        .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .route(
            "/api/auth/login",
            post(auth::login).fallback(auth::login_wrong_method),
        )
        .route("/api/auth/token", post(auth::refresh))
        .merge(web::routes())
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(no_store))
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::not_found("Requested item wasn't found!")
}

/// API answers are not cached by browsers.
async fn no_store(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// With `Config::data`, answers a request that may have changed the store only once its
/// changes are committed, as the MQTT session does for PUBACKs (`Durability`): what a REST
/// client saw succeed survives the process being killed.
async fn durable(State(api): ApiState, req: Request, next: Next) -> Response {
    let writes = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let resp = next.run(req).await;
    if writes {
        if let Some(d) = api.shared.durability() {
            if let Some(seq) = d.pending() {
                d.wait(seq).await;
            }
        }
    }
    resp
}

/// Rejects requests without a valid access token (spec 3.4).
async fn require_token(State(api): ApiState, req: Request, next: Next) -> Response {
    let header_token = ["x-authorization", "authorization"]
        .iter()
        .find_map(|h| req.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string());
    let token = header_token.or_else(|| {
        // The event stream: EventSource cannot send headers.
        (req.uri().path() == "/api/devserver/events")
            .then(|| query_pairs(req.uri().query()))
            .and_then(|q| param(&q, "token").map(str::to_string))
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized("Authentication failed").into_response();
    };
    match api.jwt.verify_access(&token) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
