//! Device provisioning: the request the device sends and the response it reads.
//!
//! spec: thingsboard-mqtt.md, section 10.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::error::{PeerError, UsageError};
use crate::payload::{encode, kind};

/// Validates a provisioning request object and encodes it.
///
/// Fields whose value is `null` are dropped: the server closes the session, without any
/// response, on a `null` field (spec 10.2). `provisionDeviceKey` and `provisionDeviceSecret`
/// must be present and be strings.
pub fn request_payload(request: &Value) -> Result<Vec<u8>, UsageError> {
    let Value::Object(m) = request else {
        return Err(UsageError::WrongType(format!(
            "provision_request must be a dict (see get_provision_request), got {}",
            kind(request)
        )));
    };
    for field in ["provisionDeviceKey", "provisionDeviceSecret"] {
        match m.get(field) {
            Some(Value::String(_)) => {}
            Some(Value::Null) | None => {
                return Err(UsageError::Payload(format!(
                    "provision_request has no {field:?}; build it with get_provision_request"
                )))
            }
            Some(other) => {
                return Err(UsageError::WrongType(format!(
                    "provision_request {field:?} must be a str, got {}",
                    kind(other)
                )))
            }
        }
    }
    let mut clean = Map::new();
    for (k, v) in m {
        match v {
            Value::Null => {}
            Value::Object(_) | Value::Array(_) => {
                return Err(UsageError::WrongType(format!(
                    "provision_request field {k:?} must be a str, number or bool, got {}",
                    kind(v)
                )))
            }
            _ => {
                clean.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(encode(&Value::Object(clean)))
}

/// What the server answered on `/provision/response`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionOutcome {
    /// `"status": "SUCCESS"`; the whole response (it holds `credentialsType` and
    /// `credentialsValue`).
    Success(Map<String, Value>),
    /// Any other status, with ThingsBoard's `status` and `errorMsg` (empty when absent).
    Failure {
        /// ThingsBoard's `status`, e.g. `NOT_FOUND` or `FAILURE`.
        status: String,
        /// ThingsBoard's `errorMsg`.
        error_msg: String,
        /// The whole response.
        response: Map<String, Value>,
    },
}

/// Reads a provisioning response (spec 10.4).
pub fn parse_response(payload: &[u8]) -> Result<ProvisionOutcome, PeerError> {
    let m = crate::payload::parse_object(payload)?;
    let text = |key: &str| match m.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        // `encode`, not `to_string`: the same compact JSON, without linking a second serialiser
        // (Value's Display) into the firmware.
        Some(other) => String::from_utf8(encode(other)).unwrap_or_default(),
    };
    let status = text("status");
    if status == "SUCCESS" {
        return Ok(ProvisionOutcome::Success(m));
    }
    let error_msg = text("errorMsg");
    Ok(ProvisionOutcome::Failure {
        status,
        error_msg,
        response: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_drops_null_fields_and_keeps_order() {
        let r = json!({"provisionDeviceKey": "k", "provisionDeviceSecret": "s",
                       "username": null, "password": "p", "clientId": null,
                       "credentialsType": "MQTT_BASIC"});
        assert_eq!(
            request_payload(&r).unwrap(),
            br#"{"provisionDeviceKey":"k","provisionDeviceSecret":"s","password":"p","credentialsType":"MQTT_BASIC"}"#
        );
    }

    #[test]
    fn request_needs_key_and_secret() {
        assert!(request_payload(&json!({"provisionDeviceKey": "k"})).is_err());
        assert!(request_payload(
            &json!({"provisionDeviceKey": "k", "provisionDeviceSecret": null})
        )
        .is_err());
        assert!(request_payload(&json!(["k"])).is_err());
    }

    #[test]
    fn response_success_and_failure() {
        let ok =
            br#"{"credentialsValue":"tok","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#;
        assert!(matches!(
            parse_response(ok),
            Ok(ProvisionOutcome::Success(_))
        ));
        let nf = br#"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#;
        match parse_response(nf) {
            Ok(ProvisionOutcome::Failure {
                status, error_msg, ..
            }) => {
                assert_eq!(status, "NOT_FOUND");
                assert_eq!(error_msg, "Provision data was not found!");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_response(b"nope").is_err());
        assert_eq!(parse_response(b"[1]"), Err(PeerError::NotAnObject("list")));
    }

    #[test]
    fn a_status_or_message_that_is_no_string_is_read_as_its_json() {
        let odd = br#"{"status":404,"errorMsg":{"why":["no", 1.5]}}"#;
        match parse_response(odd) {
            Ok(ProvisionOutcome::Failure {
                status, error_msg, ..
            }) => {
                assert_eq!(status, "404");
                assert_eq!(error_msg, r#"{"why":["no",1.5]}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
