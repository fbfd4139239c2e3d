//! Provisioning: the response parser (`/provision/response` from the server) and the request
//! builder (from a user's dict).
//!
//! Checked: no panic; `Success` only for `"status": "SUCCESS"`; a built request is JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tb_core::{provision, ProvisionOutcome};

fuzz_target!(|data: &[u8]| {
    match provision::parse_response(data) {
        Ok(ProvisionOutcome::Success(m)) => {
            assert_eq!(m.get("status"), Some(&Value::String("SUCCESS".into())));
        }
        Ok(ProvisionOutcome::Failure { status, .. }) => assert_ne!(status, "SUCCESS"),
        Err(_) => {}
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        if let Ok(body) = provision::request_payload(&v) {
            serde_json::from_slice::<Value>(&body).expect("provision request is JSON");
        }
    }
});
