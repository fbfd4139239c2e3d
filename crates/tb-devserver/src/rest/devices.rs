//! Devices over REST (spec 4): list, by name, by id, create/update (with firmware
//! assignment, spec 8.4), delete, credentials; `deviceInfos` for the web page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::{
    entity_id, int_param, ok_empty, ok_json, param, parse_id, query_pairs, Api, ApiError,
    ApiResult, ApiState, NULL_UUID, PROFILE_ID, TENANT_ID,
};
use crate::error::DevServerError;
use crate::events::Event;
use crate::features::{devices, firmware, provisioning};
use crate::shared::State as Locked;
use crate::store::{x509_body, x509_credentials_id, Credentials, Device, DeviceSpec};

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/tenant/devices", get(list_or_by_name))
        .route("/api/tenant/device", get(by_name))
        .route("/api/tenant/deviceInfos", get(list_infos))
        .route("/api/device", post(save))
        .route("/api/device/{id}", get(by_id).delete(delete))
        .route("/api/device/{id}/credentials", get(credentials))
        .route("/api/deviceProfileInfo/default", get(default_profile))
}

/// Device JSON (spec 4.1). `additionalInfo` carries `gateway` and, for a device a gateway
/// connected, `lastConnectedGateway` (the gateway's id, thingsboard-gateway.md A.3).
pub(crate) fn device_json(dev: &Device) -> Value {
    let id = dev.id.to_string();
    let firmware = dev
        .firmware
        .as_ref()
        .and_then(|f| f.package)
        .map(|p| entity_id("OTA_PACKAGE", &p.to_string()));
    json!({
        "id": entity_id("DEVICE", &id),
        "createdTime": dev.created_ms,
        "tenantId": entity_id("TENANT", TENANT_ID),
        "customerId": entity_id("CUSTOMER", NULL_UUID),
        "name": dev.name,
        "type": dev.device_type,
        "label": null,
        // Design: every type shares the one profile id. ThingsBoard makes a profile per type;
        // here OTA packages (rest/ota.rs) belong to the one profile, and a profile per type
        // would refuse a package uploaded from a typed device's page. The type's name still
        // shows as `type` and `deviceProfileName`.
        "deviceProfileId": entity_id("DEVICE_PROFILE", PROFILE_ID),
        "deviceData": {"configuration": {"type": "DEFAULT"}, "transportConfiguration": {"type": "DEFAULT"}},
        "firmwareId": firmware,
        "softwareId": null,
        "externalId": null,
        "version": 1,
        "additionalInfo": additional_info(dev),
    })
}

fn additional_info(dev: &Device) -> Value {
    let mut info = serde_json::Map::new();
    info.insert("gateway".into(), dev.gateway.into());
    if let Some(g) = dev.last_gateway {
        info.insert("lastConnectedGateway".into(), g.to_string().into());
    }
    Value::Object(info)
}

/// DeviceInfo JSON: the device plus `active` and, as an extra, `lastActivityTime`.
pub(crate) fn device_info_json(st: &Locked, dev: &Device) -> Value {
    let mut v = device_json(dev);
    if let Value::Object(m) = &mut v {
        m.insert("customerTitle".into(), Value::Null);
        m.insert("customerIsPublic".into(), Value::Bool(false));
        m.insert("deviceProfileName".into(), dev.device_type.clone().into());
        m.insert("active".into(), st.links.contains_key(&dev.name).into());
        m.insert("lastActivityTime".into(), dev.last_activity_ms.into());
    }
    v
}

/// The device named by a path id, under the lock: 400 for a bad UUID, `missing` otherwise.
pub(crate) fn name_by_id(
    api: &Api,
    id: &str,
    missing: impl FnOnce(&str) -> ApiError,
) -> Result<String, ApiError> {
    let uuid = parse_id(id)?;
    let st = api.shared.state.lock();
    st.store
        .name_of(&uuid)
        .map(str::to_string)
        .ok_or_else(|| missing(id))
}

fn not_found_by_id(id: &str) -> ApiError {
    ApiError::not_found(format!("Device with id [{id}] is not found"))
}

/// One page of devices (spec 4.2), each made by `f`.
fn page(api: &Api, raw: Option<&str>, info: bool) -> ApiResult {
    let q = query_pairs(raw);
    let size = int_param(&q, "pageSize")?;
    let page = int_param(&q, "page")?;
    if size < 1 || page < 0 {
        return Err(ApiError::bad_request(
            "Page size must be positive and page must not be negative",
        ));
    }
    let search = param(&q, "textSearch").map(str::to_lowercase);
    let sort = param(&q, "sortProperty").unwrap_or("createdTime");
    let desc = param(&q, "sortOrder").is_some_and(|o| o.eq_ignore_ascii_case("DESC"));
    let device_type = param(&q, "type").filter(|t| !t.is_empty());
    let active = param(&q, "active").map(|a| a.eq_ignore_ascii_case("true"));
    let st = api.shared.state.lock();
    let mut devs: Vec<&Device> = st
        .store
        .devices
        .values()
        .filter(|d| device_type.map_or(true, |t| d.device_type == t))
        .filter(|d| {
            search
                .as_ref()
                .map_or(true, |s| d.name.to_lowercase().contains(s.as_str()))
        })
        .filter(|d| active.map_or(true, |a| st.links.contains_key(&d.name) == a))
        .collect();
    match sort {
        "name" | "label" => devs.sort_by(|a, b| a.name.cmp(&b.name)),
        _ => devs.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name))),
    }
    if desc {
        devs.reverse();
    }
    let total = devs.len() as i64;
    let start = usize::try_from(page.saturating_mul(size)).unwrap_or(usize::MAX);
    let data: Vec<Value> = devs
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|d| {
            if info {
                device_info_json(&st, d)
            } else {
                device_json(d)
            }
        })
        .collect();
    let pages = (total + size - 1) / size;
    ok_json(json!({
        "data": data,
        "totalPages": pages,
        "totalElements": total,
        "hasNext": page + 1 < pages,
    }))
}

fn device_by_name(api: &Api, raw: Option<&str>) -> ApiResult {
    let q = query_pairs(raw);
    let name = param(&q, "deviceName").ok_or_else(|| {
        ApiError::bad_request(
            "Required request parameter 'deviceName' for method parameter type String is not present",
        )
    })?;
    let st = api.shared.state.lock();
    match st.store.devices.get(name) {
        Some(d) => ok_json(device_json(d)),
        None => Err(ApiError::not_found("Requested item wasn't found!")),
    }
}

/// `GET /api/tenant/devices`: a page, or one device when `deviceName` is given (4.2.1).
async fn list_or_by_name(State(api): ApiState, RawQuery(raw): RawQuery) -> ApiResult {
    let has_name = query_pairs(raw.as_deref())
        .iter()
        .any(|(k, _)| k == "deviceName");
    if has_name {
        device_by_name(&api, raw.as_deref())
    } else {
        page(&api, raw.as_deref(), false)
    }
}

/// `GET /api/tenant/device?deviceName=` (4.4).
async fn by_name(State(api): ApiState, RawQuery(raw): RawQuery) -> ApiResult {
    device_by_name(&api, raw.as_deref())
}

/// `GET /api/tenant/deviceInfos` (the web page's list).
async fn list_infos(State(api): ApiState, RawQuery(raw): RawQuery) -> ApiResult {
    page(&api, raw.as_deref(), true)
}

/// `GET /api/device/{id}` (spec 4.4).
async fn by_id(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let name = name_by_id(&api, &id, not_found_by_id)?;
    let st = api.shared.state.lock();
    let dev = st
        .store
        .devices
        .get(&name)
        .ok_or_else(|| not_found_by_id(&id))?;
    ok_json(device_json(dev))
}

/// `DELETE /api/device/{id}` (spec 4.7).
async fn delete(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let name = name_by_id(&api, &id, not_found_by_id)?;
    devices::remove(&api.shared, &name).map_err(|_| not_found_by_id(&id))?;
    ok_empty()
}

/// `GET /api/device/{id}/credentials` (spec 4.6).
async fn credentials(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let name = name_by_id(&api, &id, not_found_by_id)?;
    let st = api.shared.state.lock();
    let dev = st
        .store
        .devices
        .get(&name)
        .ok_or_else(|| not_found_by_id(&id))?;
    let (cid, value) = match &dev.credentials {
        Credentials::AccessToken(t) => (t.clone(), Value::Null),
        Credentials::MqttBasic {
            client_id,
            username,
            password,
        } => (
            client_id
                .clone()
                .or_else(|| username.clone())
                .unwrap_or_default(),
            json!({"clientId": client_id, "userName": username, "password": password})
                .to_string()
                .into(),
        ),
        // ThingsBoard shows the hash as the id and the trimmed body as the value.
        Credentials::X509(cert) => (x509_credentials_id(cert), x509_body(cert).into()),
    };
    let cred_id = uuid::Uuid::from_u128(dev.id.as_u128() ^ 1).to_string();
    ok_json(json!({
        "id": {"id": cred_id},
        "createdTime": dev.created_ms,
        "deviceId": entity_id("DEVICE", &dev.id.to_string()),
        "credentialsType": dev.credentials.type_name(),
        "credentialsId": cid,
        "credentialsValue": value,
        "version": 1,
    }))
}

/// `GET /api/deviceProfileInfo/default`: the one profile.
async fn default_profile() -> ApiResult {
    ok_json(json!({
        "id": entity_id("DEVICE_PROFILE", PROFILE_ID),
        "tenantId": entity_id("TENANT", TENANT_ID),
        "name": "default",
        "image": null,
        "defaultDashboardId": null,
        "type": "DEFAULT",
        "transportType": "DEFAULT",
    }))
}

/// The `firmwareId` of a saved device JSON: absent, null, or a package id.
enum FirmwareField {
    Absent,
    Null,
    Id(uuid::Uuid),
}

fn firmware_field(body: &Value) -> Result<FirmwareField, ApiError> {
    match body.get("firmwareId") {
        None => Ok(FirmwareField::Absent),
        Some(Value::Null) => Ok(FirmwareField::Null),
        Some(v) => {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("Can't assign non-existent firmware!"))?;
            Ok(FirmwareField::Id(parse_id(id)?))
        }
    }
}

/// `POST /api/device[?accessToken=]`: create, or update when `id` is given (spec 4.5).
async fn save(State(api): ApiState, RawQuery(raw): RawQuery, body: Bytes) -> ApiResult {
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid request body"))?;
    if !body.is_object() {
        return Err(ApiError::bad_request("Invalid request body"));
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request("Device name should be specified!"));
    }
    let fw = firmware_field(&body)?;
    let id = body
        .get("id")
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = match id {
        Some(id) => {
            let current = name_by_id(&api, &id, not_found_by_id)?;
            if current != name {
                return Err(ApiError::bad_request(
                    "Renaming a device is not supported by the dev server",
                ));
            }
            current
        }
        None => {
            let q = query_pairs(raw.as_deref());
            let token = param(&q, "accessToken")
                .filter(|t| !t.is_empty())
                .map_or_else(|| provisioning::random_alnum(20), str::to_string);
            let gateway = body
                .get("additionalInfo")
                .and_then(|a| a.get("gateway"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let spec = DeviceSpec::access_token(name.clone(), token).gateway(gateway);
            match devices::add(&api.shared, spec) {
                Ok(_) => {}
                Err(DevServerError::DuplicateDevice(_)) => {
                    return Err(ApiError::bad_request(
                        "Device with such name already exists!",
                    ))
                }
                Err(_) => {
                    return Err(ApiError::bad_request(
                        "Specified credentials are already registered!",
                    ))
                }
            }
            api.shared
                .logs
                .emit(format!("device \"{name}\" created over REST"));
            name
        }
    };
    // spec 4.5: `type` names the device's profile, on create and on update; absent or empty
    // keeps it (`default` for a new device).
    if let Some(t) = body.get("type").and_then(Value::as_str) {
        if !t.is_empty() {
            let changed = api.shared.update(|st| {
                let changed = st
                    .store
                    .devices
                    .get_mut(&name)
                    .filter(|d| d.device_type != t)
                    .map(|d| d.device_type = t.to_string())
                    .is_some();
                if changed {
                    st.store.record_device(&name);
                }
                changed
            });
            if changed {
                api.shared.events.send(Event::Device { name: name.clone() });
            }
        }
    }
    apply_firmware(&api, &name, fw)?;
    let st = api.shared.state.lock();
    let dev = st
        .store
        .devices
        .get(&name)
        .ok_or_else(|| ApiError::not_found("Requested item wasn't found!"))?;
    ok_json(device_json(dev))
}

/// Assigns or removes firmware when `firmwareId` changed (spec 8.4, 8.5).
fn apply_firmware(api: &Api, name: &str, fw: FirmwareField) -> Result<(), ApiError> {
    let current = {
        let st = api.shared.state.lock();
        st.store
            .devices
            .get(name)
            .and_then(|d| d.firmware.as_ref())
            .map(|f| f.package)
    };
    match fw {
        FirmwareField::Absent => Ok(()),
        FirmwareField::Null => {
            if current.is_some() {
                firmware::unassign(&api.shared, name)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
            }
            Ok(())
        }
        FirmwareField::Id(id) => {
            if current == Some(Some(id)) {
                return Ok(()); // unchanged: nothing is sent again (spec 8.4)
            }
            let package = {
                let st = api.shared.state.lock();
                let p = st
                    .store
                    .ota
                    .get(&id)
                    .filter(|p| p.kind == "FIRMWARE")
                    .ok_or_else(|| ApiError::bad_request("Can't assign non-existent firmware!"))?;
                firmware::package_of(p).ok_or_else(|| {
                    ApiError::bad_request("Can't assign firmware with empty data!")
                })?
            };
            firmware::assign(&api.shared, name, &package, Some(id))
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            Ok(())
        }
    }
}
