//! Every MQTT topic and subscription filter the dev server knows, once. spec:
//! thingsboard-mqtt.md, 2.11 and the per-feature sections.

/// Shared attribute pushes (S→D) and client attribute uploads (D→S).
pub(crate) const ATTRIBUTES_TOPIC: &str = "v1/devices/me/attributes";
pub(crate) const TELEMETRY_TOPIC: &str = "v1/devices/me/telemetry";
pub(crate) const ATTR_REQUEST_PREFIX: &str = "v1/devices/me/attributes/request/";
pub(crate) const ATTR_RESPONSE_PREFIX: &str = "v1/devices/me/attributes/response/";
pub(crate) const RPC_REQUEST_PREFIX: &str = "v1/devices/me/rpc/request/";
pub(crate) const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";
pub(crate) const RPC_SUBSCRIBE_FILTER: &str = "v1/devices/me/rpc/request/+";
pub(crate) const CLAIM_TOPIC: &str = "v1/devices/me/claim";
pub(crate) const GATEWAY_PREFIX: &str = "v1/gateway";
/// Gateway API topics (thingsboard-gateway.md A.2).
pub(crate) const GW_CONNECT: &str = "v1/gateway/connect";
pub(crate) const GW_DISCONNECT: &str = "v1/gateway/disconnect";
pub(crate) const GW_TELEMETRY: &str = "v1/gateway/telemetry";
pub(crate) const GW_ATTRIBUTES: &str = "v1/gateway/attributes";
pub(crate) const GW_ATTR_REQUEST: &str = "v1/gateway/attributes/request";
pub(crate) const GW_ATTR_RESPONSE: &str = "v1/gateway/attributes/response";
pub(crate) const GW_RPC: &str = "v1/gateway/rpc";
pub(crate) const GW_CLAIM: &str = "v1/gateway/claim";
pub(crate) const FW_REQUEST_PREFIX: &str = "v2/fw/request/";
pub(crate) const SW_REQUEST_PREFIX: &str = "v2/sw/request/";
pub(crate) const FW_ERROR_TOPIC: &str = "v2/fw/error";
pub(crate) const PROVISION_REQUEST_TOPIC: &str = "/provision/request";
pub(crate) const PROVISION_RESPONSE_TOPIC: &str = "/provision/response";
/// CONNECT user name or client id of a provisioning session.
pub(crate) const PROVISION: &str = "provision";

/// spec 2.11: the only filters a device session accepts.
pub(crate) const ACCEPTED_FILTERS: &[&str] = &[
    "v1/devices/me/attributes",
    "v2/a",
    "v2/a/j",
    "v2/a/p",
    "v1/devices/me/rpc/request/+",
    "v2/r/req/+",
    "v2/r/req/j/+",
    "v2/r/req/p/+",
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/response/+",
    "v2/a/res/+",
    "v2/a/res/j/+",
    "v2/a/res/p/+",
    "v2/r/res/+",
    "v2/r/res/j/+",
    "v2/r/res/p/+",
    "v2/fw/response/+/chunk/+",
    "v2/fw/error",
    "v2/sw/response/+/chunk/+",
    "v2/sw/error",
    "v1/gateway/attributes",
    "v1/gateway/rpc",
    "v1/gateway/attributes/response",
];

/// MQTT topic filter match (`+` one level, `#` the rest).
pub(crate) fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The topic of server-side RPC request `id` (spec 7.2).
pub(crate) fn rpc_request_topic(id: u32) -> String {
    format!("{RPC_REQUEST_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_plus_levels() {
        assert!(filter_matches(
            "v1/devices/me/rpc/request/+",
            "v1/devices/me/rpc/request/0"
        ));
        assert!(!filter_matches(
            "v1/devices/me/rpc/request/+",
            "v1/devices/me/rpc/request"
        ));
        assert!(filter_matches(
            "v2/fw/response/+/chunk/+",
            "v2/fw/response/1/chunk/0"
        ));
        assert!(!filter_matches(
            "v1/devices/me/attributes",
            "v1/devices/me/attributes/response/1"
        ));
    }
}
