//! Device claiming: `v1/devices/me/claim` requests are recorded (spec 9).

use crate::features::Rejection;
use crate::json::{parse_lenient, JVal};
use crate::shared::Shared;
use crate::store::{now_ms, Claim};

/// Parses a claim request; an empty payload is allowed (empty key, default duration). A
/// missing or non-positive `durationMs` takes `default_ms`.
pub(crate) fn parse(payload: &[u8], default_ms: i64) -> Result<Claim, Rejection> {
    let text = String::from_utf8_lossy(payload);
    let (mut secret, mut duration) = (String::new(), 0i64);
    if !text.is_empty() {
        let json = match parse_lenient(&text) {
            Ok(j @ JVal::Obj(_)) => j,
            _ => {
                return Err(Rejection::Invalid(
                    "claim request (not a JSON object)".into(),
                ))
            }
        };
        if let Some(v) = json.get("secretKey") {
            match v.as_gson_string() {
                Some(s) => secret = s,
                None => return Err(Rejection::Invalid("claim secretKey".into())),
            }
        }
        if let Some(v) = json.get("durationMs") {
            match v.as_gson_long() {
                Some(d) => duration = d,
                None => return Err(Rejection::Invalid("claim durationMs".into())),
            }
        }
    }
    if duration <= 0 {
        duration = default_ms;
    }
    Ok(Claim {
        ts: now_ms(),
        secret_key: secret,
        duration_ms: duration,
    })
}

/// Records a claim of `device`.
pub(crate) fn save(shared: &Shared, device: &str, claim: Claim) {
    shared.update(|st| st.store.add_claim(device, claim));
}
