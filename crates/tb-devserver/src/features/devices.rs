//! Devices: registration with ThingsBoard's credential rules (spec 3.2), removal, and the
//! link between a device and its live MQTT session (one session per device, spec 2.8).

use crate::error::DevServerError;
use crate::events::Event;
use crate::shared::{SessionLink, Shared};
use crate::store::{now_ms, Credentials, DeviceInfo, DeviceSpec};

/// Registers a device; returns its entity id.
///
/// # Errors
/// `DuplicateDevice` if the name exists; `InvalidCredentials` if the credentials are taken or
/// break the basic-credential rules (spec 3.2).
pub(crate) fn add(shared: &Shared, spec: DeviceSpec) -> Result<uuid::Uuid, DevServerError> {
    if let Credentials::MqttBasic {
        client_id,
        username,
        password,
    } = &spec.credentials
    {
        let has = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
        if !has(client_id) && !has(username) {
            return Err(DevServerError::InvalidCredentials(
                "MQTT basic credentials need a client id or a username".into(),
            ));
        }
        if has(password) && !has(username) {
            return Err(DevServerError::InvalidCredentials(
                "an MQTT basic password needs a username".into(),
            ));
        }
    }
    if let Credentials::X509(cert) = &spec.credentials {
        if crate::store::x509_body(cert).is_empty() {
            return Err(DevServerError::InvalidCredentials(
                "an X.509 certificate must not be empty".into(),
            ));
        }
    }
    let name = spec.name.clone();
    shared
        .update(|st| {
            if st.store.devices.contains_key(&spec.name) {
                return Err(DevServerError::DuplicateDevice(spec.name.clone()));
            }
            if st.store.credentials_taken(&spec.credentials) {
                return Err(DevServerError::InvalidCredentials(format!(
                    "credentials of {:?} are used by another device",
                    spec.name
                )));
            }
            Ok(st.store.insert_device(spec))
        })
        .inspect(|_| shared.events.send(Event::Device { name }))
}

/// Removes a device and closes its session (ThingsBoard does; its token is refused after).
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn remove(shared: &Shared, name: &str) -> Result<(), DevServerError> {
    let id = shared.update(|st| {
        let dev = st
            .store
            .remove_device(name)
            .ok_or_else(|| DevServerError::UnknownDevice(name.into()))?;
        if let Some(link) = st.links.remove(name) {
            link.close("device deleted", 0x98);
        }
        Ok::<uuid::Uuid, DevServerError>(dev.id)
    })?;
    shared.events.send(Event::DeviceDeleted { id });
    shared.logs.emit(format!("device \"{name}\" deleted"));
    Ok(())
}

/// Names of all devices, sorted.
pub(crate) fn names(shared: &Shared) -> Vec<String> {
    let st = shared.state.lock();
    let mut names: Vec<String> = st.store.devices.keys().cloned().collect();
    names.sort();
    names
}

/// A device's type and gateways.
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn info(shared: &Shared, name: &str) -> Result<DeviceInfo, DevServerError> {
    let st = shared.state.lock();
    let dev = st
        .store
        .devices
        .get(name)
        .ok_or_else(|| DevServerError::UnknownDevice(name.into()))?;
    let gateway_name =
        |id: Option<uuid::Uuid>| id.and_then(|id| st.store.name_of(&id)).map(str::to_string);
    Ok(DeviceInfo {
        name: dev.name.clone(),
        id: dev.id,
        device_type: dev.device_type.clone(),
        gateway: dev.gateway,
        last_connected_gateway: gateway_name(dev.last_gateway),
        created_by: gateway_name(dev.created_by),
    })
}

/// Makes `link` the device's session; an older one is told to close (spec 2.8: the newest
/// wins). Returns whether the device is a gateway, `None` if it is gone.
pub(crate) fn attach_session(shared: &Shared, name: &str, link: SessionLink) -> Option<bool> {
    let gateway = shared.update(|st| {
        let dev = st.store.devices.get_mut(name)?;
        dev.last_activity_ms = now_ms();
        let gateway = dev.gateway;
        st.store.record_device(name);
        if let Some(old) = st.links.insert(name.to_string(), link) {
            old.close("session taken over by a new connection", 0x8e);
        }
        Some(gateway)
    });
    shared.events.send(Event::Device {
        name: name.to_string(),
    });
    gateway
}

/// Forgets session `conn_id` of a device if it is still the device's session.
pub(crate) fn detach_session(st: &mut crate::shared::State, name: &str, conn_id: u64) {
    if st.links.get(name).is_some_and(|l| l.conn_id == conn_id) {
        st.links.remove(name);
        if let Some(dev) = st.store.devices.get_mut(name) {
            dev.last_activity_ms = now_ms();
            st.store.record_device(name);
        }
    }
}

/// Whether a device has a live session.
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn is_connected(shared: &Shared, name: &str) -> Result<bool, DevServerError> {
    let st = shared.state.lock();
    if !st.store.devices.contains_key(name) {
        return Err(DevServerError::UnknownDevice(name.into()));
    }
    Ok(st.links.contains_key(name))
}

/// Closes a device's session, as an administrator would (MQTT 5: DISCONNECT 0x98).
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn disconnect(shared: &Shared, name: &str) -> Result<bool, DevServerError> {
    let st = shared.state.lock();
    if !st.store.devices.contains_key(name) {
        return Err(DevServerError::UnknownDevice(name.into()));
    }
    Ok(st
        .links
        .get(name)
        .is_some_and(|l| l.close("closed by the server", 0x98)))
}
