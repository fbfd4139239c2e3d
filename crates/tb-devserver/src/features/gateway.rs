//! Gateways: sub-devices created on first use, their sessions opened through the gateway's
//! connection, and attribute requests answered in the gateway's shape
//! (thingsboard-gateway.md A.3-A.10).
//!
//! A sub-device session is an ordinary [`SessionLink`] whose channel is the gateway's
//! connection; the link rewrites pushes and RPCs into the gateway's topics, so the attribute
//! and RPC features reach sub-devices without knowing about gateways.

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::events::Event;
use crate::features::provisioning::random_alnum;
use crate::features::rpc;
use crate::json::write_json_string;
use crate::shared::{SessionCmd, SessionLink, Shared, State};
use crate::store::{now_ms, Credentials, DeviceSpec};
use crate::topics::rpc_request_topic;

/// The gateway connection a sub-device session belongs to.
#[derive(Clone)]
pub(crate) struct Via<'a> {
    pub(crate) conn_id: u64,
    pub(crate) tx: UnboundedSender<SessionCmd>,
    /// The gateway device's name.
    pub(crate) gateway: &'a str,
}

/// What [`open`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// The sub-device's session was open already.
    Already,
    /// The device existed; its session is now open through the gateway.
    Reopened,
    /// The device was created (type `default` unless a connect named one) and opened.
    Created,
}

/// Get-or-open (A.3): the device named `device` is created if missing (with random
/// access-token credentials, type `device_type` or `default`, and the gateway recorded as its
/// creator: the `Created` relation), and its session opened through the gateway with
/// attribute and RPC delivery on; RPCs waiting for it are delivered. An existing device keeps
/// its type. Either way the gateway becomes its `lastConnectedGateway`. A direct session of
/// the device is closed (the newest session wins, A.10).
pub(crate) fn open(shared: &Shared, device: &str, device_type: Option<&str>, via: &Via) -> Opened {
    let (outcome, pending) = shared.update(|st| {
        if st
            .links
            .get(device)
            .is_some_and(|l| l.conn_id == via.conn_id && l.via_gateway.is_some())
        {
            return (Opened::Already, Vec::new());
        }
        let created = !st.store.devices.contains_key(device);
        if created {
            let mut token = random_alnum(20);
            while st
                .store
                .credentials_taken(&Credentials::AccessToken(token.clone()))
            {
                token = random_alnum(20);
            }
            st.store
                .insert_device(DeviceSpec::access_token(device, token));
        }
        let gateway_id = st.store.devices.get(via.gateway).map(|g| g.id);
        if let Some(dev) = st.store.devices.get_mut(device) {
            dev.last_activity_ms = now_ms();
            dev.last_gateway = gateway_id.or(dev.last_gateway);
            if created {
                dev.created_by = gateway_id;
                if let Some(t) = device_type {
                    dev.device_type = t.to_string();
                }
            }
        }
        st.store.record_device(device);
        let link = SessionLink {
            conn_id: via.conn_id,
            tx: via.tx.clone(),
            attr_sub: true,
            rpc_sub: true,
            via_gateway: Some(device.to_string()),
        };
        if let Some(old) = st.links.insert(device.to_string(), link) {
            old.close("session taken over by a gateway", 0x8e);
        }
        let pending = rpc::take_queued(shared, st, device);
        let outcome = if created {
            Opened::Created
        } else {
            Opened::Reopened
        };
        (outcome, pending)
    });
    if let Some(link) = shared.state.lock().links.get(device) {
        for (id, payload) in pending {
            link.publish(rpc_request_topic(id), Bytes::from(payload), Some(id));
        }
    }
    shared.events.send(Event::Device {
        name: device.to_string(),
    });
    outcome
}

/// Whether `device` has a session open through gateway connection `conn_id`.
pub(crate) fn is_open(shared: &Shared, device: &str, conn_id: u64) -> bool {
    shared
        .state
        .lock()
        .links
        .get(device)
        .is_some_and(|l| l.conn_id == conn_id && l.via_gateway.is_some())
}

/// Closes a sub-device session of gateway connection `conn_id` (A.5); no effect otherwise.
pub(crate) fn close(shared: &Shared, device: &str, conn_id: u64) -> bool {
    let closed = shared.update(|st| close_in(st, device, conn_id));
    if closed {
        shared.events.send(Event::Device {
            name: device.to_string(),
        });
    }
    closed
}

fn close_in(st: &mut State, device: &str, conn_id: u64) -> bool {
    let ours = st
        .links
        .get(device)
        .is_some_and(|l| l.conn_id == conn_id && l.via_gateway.is_some());
    if ours {
        st.links.remove(device);
        if let Some(dev) = st.store.devices.get_mut(device) {
            dev.last_activity_ms = now_ms();
        }
        st.store.record_device(device);
    }
    ours
}

/// Closes every sub-device session of gateway connection `conn_id` (its connection ended).
pub(crate) fn close_all(st: &mut State, conn_id: u64) -> Vec<String> {
    let names: Vec<String> = st
        .links
        .iter()
        .filter(|(_, l)| l.conn_id == conn_id && l.via_gateway.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    for n in &names {
        close_in(st, n, conn_id);
    }
    names
}

/// The answer to a gateway attribute request (A.8): `value` when one key was asked and
/// found, `values` when more keys were asked (even if one was found), neither when nothing
/// was found. `keys` empty = every client and shared attribute, merged. `None` if the device
/// is gone.
pub(crate) fn attribute_response(
    shared: &Shared,
    device: &str,
    id: i64,
    client: bool,
    keys: &[String],
) -> Option<String> {
    let st = shared.state.lock();
    let dev = st.store.devices.get(device)?;
    let mut found: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &crate::value::TbValue| {
        if !found.iter().any(|(f, _)| f == k) {
            found.push((k.to_string(), v.to_json()));
        }
    };
    if keys.is_empty() {
        for (k, v) in dev.client_attrs.iter() {
            add(k, &v.value);
        }
        for (k, v) in dev.shared_attrs.iter() {
            add(k, &v.value);
        }
    } else {
        let attrs = if client {
            &dev.client_attrs
        } else {
            &dev.shared_attrs
        };
        for k in keys {
            if let Some(v) = attrs.get(k) {
                add(k, &v.value);
            }
        }
    }
    let mut out = format!("{{\"id\":{id},\"device\":");
    write_json_string(&mut out, device);
    let single = keys.len() == 1 || (keys.is_empty() && found.len() == 1);
    if single && found.len() == 1 {
        out.push_str(",\"value\":");
        out.push_str(&found[0].1);
    } else if !found.is_empty() {
        out.push_str(",\"values\":{");
        for (i, (k, v)) in found.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
    }
    out.push('}');
    Some(out)
}
