//! OTA packages over REST (spec 8): create the record, upload the file (multipart), read,
//! list, download, delete. Assignment is a device save with `firmwareId` (devices.rs).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{
    entity_id, int_param, ok_empty, ok_json, param, parse_id, query_pairs, Api, ApiError,
    ApiResult, ApiState, PROFILE_ID, TENANT_ID,
};
use crate::checksum::ChecksumAlgorithm;
use crate::store::{now_ms, OtaPackage};

pub(super) fn routes(max_upload: usize) -> Router<Arc<Api>> {
    Router::new()
        .route("/api/otaPackage", post(create))
        .route(
            "/api/otaPackage/{id}",
            get(read_with_data)
                .delete(delete)
                .post(upload)
                .layer(DefaultBodyLimit::max(max_upload)),
        )
        .route("/api/otaPackage/info/{id}", get(read_info))
        .route("/api/otaPackage/{id}/download", get(download))
        .route("/api/otaPackages", get(list))
        .route("/api/otaPackages/{profile}/{kind}", get(list_for_profile))
}

/// OtaPackageInfo JSON (spec 8.1).
fn info_json(p: &OtaPackage) -> Value {
    let additional: Value = serde_json::from_str(&p.additional_info).unwrap_or(Value::Null);
    json!({
        "id": entity_id("OTA_PACKAGE", &p.id.to_string()),
        "createdTime": p.created_ms,
        "tenantId": entity_id("TENANT", TENANT_ID),
        "deviceProfileId": entity_id("DEVICE_PROFILE", PROFILE_ID),
        "type": p.kind,
        "title": p.title,
        "version": p.version,
        "tag": p.tag,
        "url": p.url,
        "hasData": p.data.is_some(),
        "fileName": p.file_name,
        "contentType": p.content_type,
        "checksumAlgorithm": p.checksum_algorithm.map(ChecksumAlgorithm::name),
        "checksum": p.checksum,
        "dataSize": p.data.as_ref().map(|d| d.len()),
        "externalId": null,
        "additionalInfo": additional,
        "name": format!("{} ({})", p.title, p.version),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("OtaPackage with id [{id}] is not found"))
}

fn get_package(api: &Api, id: &str) -> Result<OtaPackage, ApiError> {
    let uuid = parse_id(id)?;
    let st = api.shared.state.lock();
    st.store
        .ota
        .get(&uuid)
        .cloned()
        .ok_or_else(|| not_found(id))
}

/// `POST /api/otaPackage` (spec 8.1).
async fn create(State(api): ApiState, body: Bytes) -> ApiResult {
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid request body"))?;
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let title = field("title")
        .ok_or_else(|| ApiError::bad_request("OtaPackage title should be specified!"))?;
    let version = field("version")
        .ok_or_else(|| ApiError::bad_request("OtaPackage version should be specified!"))?;
    let kind = field("type").ok_or_else(|| ApiError::bad_request("Type should be specified!"))?;
    if kind != "FIRMWARE" && kind != "SOFTWARE" {
        return Err(ApiError::bad_request(format!(
            "Invalid OTA package type: {kind}"
        )));
    }
    if let Some(profile) = v.get("deviceProfileId").filter(|p| !p.is_null()) {
        if profile.get("id").and_then(Value::as_str) != Some(PROFILE_ID) {
            return Err(ApiError::bad_request(
                "OtaPackage is referencing to non-existent device profile!",
            ));
        }
    }
    let uses_url = v.get("usesUrl").and_then(Value::as_bool).unwrap_or(false);
    let package = OtaPackage {
        id: uuid::Uuid::new_v4(),
        created_ms: now_ms(),
        title,
        version,
        kind,
        tag: field("tag"),
        url: if uses_url { field("url") } else { None },
        file_name: None,
        content_type: None,
        checksum_algorithm: None,
        checksum: None,
        data: None,
        additional_info: v.get("additionalInfo").unwrap_or(&Value::Null).to_string(),
    };
    let info = info_json(&package);
    api.shared.update(|st| {
        let taken = st
            .store
            .ota
            .values()
            .any(|p| p.title == package.title && p.version == package.version);
        if taken {
            return Err(ApiError::bad_request(
                "OtaPackage with such title and version already exists!",
            ));
        }
        st.store.save_ota(package);
        Ok(())
    })?;
    ok_json(info)
}

/// `POST /api/otaPackage/{id}?checksumAlgorithm=..[&checksum=..]`, multipart part `file`
/// (spec 8.2); the two parameters may also come as form fields.
async fn upload(
    State(api): ApiState,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    mut form: Multipart,
) -> ApiResult {
    let mut package = get_package(&api, &id)?;
    let q = query_pairs(raw.as_deref());
    let mut algorithm = param(&q, "checksumAlgorithm").map(str::to_string);
    let mut checksum = param(&q, "checksum").map(str::to_string);
    let mut file: Option<(Bytes, Option<String>, Option<String>)> = None;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid multipart request: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid multipart request: {e}")))?;
        match name.as_str() {
            "file" => file = Some((data, file_name, content_type)),
            "checksumAlgorithm" => {
                algorithm = Some(String::from_utf8_lossy(&data).into_owned());
            }
            "checksum" => checksum = Some(String::from_utf8_lossy(&data).into_owned()),
            _ => {}
        }
    }
    let algorithm = algorithm.ok_or_else(|| {
        ApiError::bad_request(
            "Required request parameter 'checksumAlgorithm' for method parameter type String is not present",
        )
    })?;
    let algorithm = ChecksumAlgorithm::from_name(algorithm.trim())
        .ok_or_else(|| ApiError::bad_request(format!("Unknown checksum algorithm: {algorithm}")))?;
    let (data, file_name, content_type) =
        file.ok_or_else(|| ApiError::bad_request("Required request part 'file' is not present"))?;
    let checksum = checksum
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty() && c != "None")
        .unwrap_or_else(|| algorithm.checksum(&data));
    package.file_name = file_name;
    package.content_type = content_type.or_else(|| Some("application/octet-stream".into()));
    package.checksum_algorithm = Some(algorithm);
    package.checksum = Some(checksum);
    api.shared.logs.emit(format!(
        "OTA package {} ({}) uploaded: {} bytes",
        package.title,
        package.version,
        data.len()
    ));
    package.data = Some(data);
    let info = info_json(&package);
    api.shared.update(|st| st.store.save_ota(package));
    ok_json(info)
}

async fn read_info(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    ok_json(info_json(&get_package(&api, &id)?))
}

async fn read_with_data(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let p = get_package(&api, &id)?;
    let mut v = info_json(&p);
    if let Value::Object(m) = &mut v {
        let data = p
            .data
            .as_ref()
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d));
        m.insert("data".into(), data.into());
    }
    ok_json(v)
}

async fn download(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let p = get_package(&api, &id)?;
    let data = p.data.ok_or_else(|| not_found(&id))?;
    let name = p.file_name.unwrap_or_else(|| "firmware.bin".into());
    let ctype = p
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment;filename={name}"),
            ),
            (header::HeaderName::from_static("x-filename"), name),
        ],
        data,
    )
        .into_response())
}

async fn delete(State(api): ApiState, Path(id): Path<String>) -> ApiResult {
    let uuid = parse_id(&id)?;
    api.shared.update(|st| {
        let used = st
            .store
            .devices
            .values()
            .any(|d| d.firmware.as_ref().is_some_and(|f| f.package == Some(uuid)));
        if used {
            return Err(ApiError::bad_request(
                "The otaPackage referenced by the devices cannot be deleted!",
            ));
        }
        st.store
            .remove_ota(&uuid)
            .map(|_| ())
            .ok_or_else(|| not_found(&id))
    })?;
    ok_empty()
}

fn page(api: &Api, raw: Option<&str>, filter: impl Fn(&OtaPackage) -> bool) -> ApiResult {
    let q = query_pairs(raw);
    let size = int_param(&q, "pageSize")?.max(1);
    let page = int_param(&q, "page")?.max(0);
    let search = param(&q, "textSearch").map(str::to_lowercase);
    let st = api.shared.state.lock();
    let mut all: Vec<&OtaPackage> = st
        .store
        .ota
        .values()
        .filter(|p| filter(p))
        .filter(|p| {
            search
                .as_ref()
                .map_or(true, |s| p.title.to_lowercase().contains(s.as_str()))
        })
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.created_ms));
    let total = all.len() as i64;
    let start = usize::try_from(page.saturating_mul(size)).unwrap_or(usize::MAX);
    let data: Vec<Value> = all
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(info_json)
        .collect();
    let pages = (total + size - 1) / size;
    ok_json(json!({
        "data": data, "totalPages": pages, "totalElements": total, "hasNext": page + 1 < pages,
    }))
}

/// `GET /api/otaPackages?pageSize=&page=` (spec 8.3).
async fn list(State(api): ApiState, RawQuery(raw): RawQuery) -> ApiResult {
    page(&api, raw.as_deref(), |_| true)
}

/// `GET /api/otaPackages/{deviceProfileId}/{type}`: packages of that type with data.
async fn list_for_profile(
    State(api): ApiState,
    Path((profile, kind)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    if profile != PROFILE_ID {
        return ok_json(json!({"data": [], "totalPages": 0, "totalElements": 0, "hasNext": false}));
    }
    page(&api, raw.as_deref(), |p| p.kind == kind && p.data.is_some())
}
