//! Device provisioning decisions and responses. spec: thingsboard-mqtt.md, 10.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::json::{write_json_string, JVal};
use crate::shared::Shared;
use crate::store::{
    now_ms, Credentials, Device, DeviceSpec, ProvisionStrategy, ProvisionedDevice, Store,
};

/// A decoded `/provision/request`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProvisionRequest {
    pub(crate) key: String,
    pub(crate) secret: String,
    pub(crate) device_name: String,
    pub(crate) credentials_type: String,
    pub(crate) token: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) hash: String,
    pub(crate) gateway: bool,
}

/// Reads a request the way `JsonConverter.buildProvisionRequestMsg` does. `Err` = the
/// server PUBACKs and closes without a response (missing key/secret field, a `null` or
/// object field, unknown `credentialsType`).
pub(crate) fn read_request(obj: &JVal) -> Result<ProvisionRequest, String> {
    let field = |name: &str, required: bool| -> Result<String, String> {
        match obj.get(name) {
            None if required => Err(format!("missing field {name}")),
            None => Ok(String::new()),
            Some(v) => v
                .as_gson_string()
                .ok_or_else(|| format!("field {name} is not a string")),
        }
    };
    let credentials_type = match obj.get("credentialsType") {
        None => "ACCESS_TOKEN".to_string(),
        Some(_) => field("credentialsType", true)?,
    };
    if !matches!(
        credentials_type.as_str(),
        "ACCESS_TOKEN" | "MQTT_BASIC" | "X509_CERTIFICATE"
    ) {
        return Err(format!("unknown credentialsType {credentials_type:?}"));
    }
    let gateway = match obj.get("gateway") {
        None => false,
        Some(JVal::Bool(b)) => *b,
        Some(v) => v
            .as_gson_string()
            .map(|s| s.eq_ignore_ascii_case("true"))
            .ok_or_else(|| "field gateway is not a boolean".to_string())?,
    };
    Ok(ProvisionRequest {
        key: field("provisionDeviceKey", true)?,
        secret: field("provisionDeviceSecret", true)?,
        device_name: field("deviceName", false)?.trim().to_string(),
        credentials_type,
        token: field("token", false)?,
        client_id: field("clientId", false)?,
        username: field("username", false)?,
        password: field("password", false)?,
        hash: field("hash", false)?,
        gateway,
    })
}

pub(crate) const NOT_FOUND: &str =
    r#"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#;
pub(crate) const FAILURE: &str = r#"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#;

/// 20 random alphanumerics (`RandomStringUtils.randomAlphanumeric(20)`).
pub(crate) fn random_alnum(n: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(now_ms());
    let mut state = h.finish() | 1;
    (0..n)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ALPHABET[(r >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

/// Strips PEM armour and line breaks (`DeviceCredentialsServiceImpl.formatCertData`).
fn cert_body(hash: &str) -> String {
    crate::store::x509_body(hash)
}

fn success_json(creds: &Credentials) -> String {
    let mut out = String::from("{\"credentialsValue\":");
    match creds {
        Credentials::AccessToken(v) | Credentials::X509(v) => write_json_string(&mut out, v),
        Credentials::MqttBasic {
            client_id,
            username,
            password,
        } => {
            out.push_str("{\"clientId\":");
            write_json_string(&mut out, client_id.as_deref().unwrap_or(""));
            out.push_str(",\"userName\":");
            write_json_string(&mut out, username.as_deref().unwrap_or(""));
            out.push_str(",\"password\":");
            write_json_string(&mut out, password.as_deref().unwrap_or(""));
            out.push('}');
        }
    }
    out.push_str(",\"credentialsType\":\"");
    out.push_str(creds.type_name());
    out.push_str("\",\"status\":\"SUCCESS\"}");
    out
}

/// Decides a request (spec 10.3) and returns the response payload and, on success, the
/// provisioned device.
pub(crate) fn provision(
    st: &mut Store,
    req: &ProvisionRequest,
) -> (String, Option<ProvisionedDevice>) {
    let profile = match st.profiles.get(&req.key) {
        Some(p) if !req.key.is_empty() && !req.secret.is_empty() && p.secret == req.secret => {
            p.clone()
        }
        _ => return (NOT_FOUND.into(), None),
    };
    match profile.strategy {
        ProvisionStrategy::CheckPreProvisionedDevices => {
            let Some(dev) = st.devices.get_mut(&req.device_name) else {
                return (FAILURE.into(), None);
            };
            if dev.provisioned || dev.profile.as_deref() != Some(profile.key.as_str()) {
                return (FAILURE.into(), None);
            }
            dev.provisioned = true;
            let record = ProvisionedDevice {
                ts: now_ms(),
                name: dev.name.clone(),
                profile_key: profile.key.clone(),
                credentials: dev.credentials.clone(),
                gateway: dev.gateway,
            };
            let response = success_json(&dev.credentials);
            st.record_device(&req.device_name);
            (response, Some(record))
        }
        ProvisionStrategy::AllowCreateNewDevices => {
            let name = if req.device_name.is_empty() {
                random_alnum(20)
            } else {
                req.device_name.clone()
            };
            if st.devices.contains_key(&name) {
                return (FAILURE.into(), None);
            }
            let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
            let credentials = match req.credentials_type.as_str() {
                "MQTT_BASIC" => {
                    let (c, u, p) = (opt(&req.client_id), opt(&req.username), opt(&req.password));
                    if (c.is_none() && u.is_none()) || (p.is_some() && u.is_none()) {
                        return (FAILURE.into(), None);
                    }
                    Credentials::MqttBasic {
                        client_id: c,
                        username: u,
                        password: p,
                    }
                }
                "X509_CERTIFICATE" => {
                    let body = cert_body(&req.hash);
                    if body.is_empty() {
                        return (FAILURE.into(), None);
                    }
                    Credentials::X509(body)
                }
                _ => Credentials::AccessToken(if req.token.is_empty() {
                    random_alnum(20)
                } else {
                    req.token.clone()
                }),
            };
            if st.credentials_taken(&credentials) {
                return (FAILURE.into(), None);
            }
            st.insert_device(DeviceSpec {
                name: name.clone(),
                credentials: credentials.clone(),
                gateway: req.gateway,
                profile: Some(profile.key.clone()),
            });
            if let Some(d) = st.devices.get_mut(&name) {
                mark_provisioned(d);
                st.record_device(&name);
            }
            let record = ProvisionedDevice {
                ts: now_ms(),
                name,
                profile_key: profile.key.clone(),
                credentials: credentials.clone(),
                gateway: req.gateway,
            };
            (success_json(&credentials), Some(record))
        }
    }
}

/// Decides a request under the store lock and records a provisioned device: the response
/// payload and, on success, the record.
pub(crate) fn handle(
    shared: &Shared,
    req: &ProvisionRequest,
) -> (String, Option<ProvisionedDevice>) {
    shared.update(|st| {
        let (response, record) = provision(&mut st.store, req);
        if let Some(r) = &record {
            st.store.push_provisioned(r.clone());
        }
        (response, record)
    })
}

fn mark_provisioned(d: &mut Device) {
    d.provisioned = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_alphanumeric() {
        let t = random_alnum(20);
        assert_eq!(t.len(), 20);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, random_alnum(20));
    }

    #[test]
    fn pem_armour_is_stripped() {
        assert_eq!(
            cert_body("-----BEGIN CERTIFICATE-----\nMIIB\nabc=\n-----END CERTIFICATE-----\n"),
            "MIIBabc="
        );
    }
}
