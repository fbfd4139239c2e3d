//! Firmware over MQTT: what assigning a package to a device writes (the `fw_*` shared
//! attributes and `fw_state`, spec 11.1, 17.41), the image a download reads, and chunk
//! slicing as ThingsBoard's OTA cache does it (spec 11.2, 17.42).

use bytes::Bytes;

use crate::error::DevServerError;
use crate::events::Event;
use crate::features::attributes::{self, deleted_json, push, typed_json};
use crate::features::telemetry::{self, save_server_point};
use crate::shared::Shared;
use crate::store::{now_ms, AssignedFirmware, AttributeScope, FirmwarePackage, OtaPackage};
use crate::value::TbValue;

/// Every `fw_*` shared attribute, in ThingsBoard's order (`OtaPackageKey`); removing an
/// assignment deletes them all in one push. spec: 11.1.
pub(crate) const ALL_FW_ATTRIBUTE_KEYS: [&str; 9] = [
    "fw_title",
    "fw_version",
    "fw_ts",
    "fw_state",
    "fw_size",
    "fw_checksum",
    "fw_checksum_algorithm",
    "fw_url",
    "fw_tag",
];

/// What an assignment writes: the shared attributes in ThingsBoard's order (title, version,
/// size, checksum algorithm, checksum, then the tag if any) and the keys it deletes
/// (`fw_tag` without a tag, and `fw_url` since the image is stored here). spec: 11.1, 17.41.
pub(crate) fn assignment_attributes(
    package: &FirmwarePackage,
    checksum: &str,
) -> (Vec<(String, TbValue)>, Vec<&'static str>) {
    let size = i64::try_from(package.data.len()).unwrap_or(i64::MAX);
    let mut attrs = vec![
        (
            "fw_title".to_string(),
            TbValue::String(package.title.clone()),
        ),
        (
            "fw_version".to_string(),
            TbValue::String(package.version.clone()),
        ),
        ("fw_size".to_string(), TbValue::Long(size)),
        (
            "fw_checksum_algorithm".to_string(),
            TbValue::String(package.checksum_algorithm.name().into()),
        ),
        ("fw_checksum".to_string(), TbValue::String(checksum.into())),
    ];
    let deleted = match &package.tag {
        Some(tag) => {
            attrs.push(("fw_tag".to_string(), TbValue::String(tag.clone())));
            vec!["fw_url"]
        }
        None => vec!["fw_tag", "fw_url"],
    };
    (attrs, deleted)
}

/// The bytes ThingsBoard's OTA cache returns for chunk `index` of `size` bytes
/// (`CaffeineOtaPackageCache.get(key, chunkSize, chunk)`): the whole image when `size < 1`,
/// else `[index*size, index*size+size)` clipped to the image, empty past the end. `None`
/// when ThingsBoard would fail to slice and send nothing: its `int` product wraps, and a
/// negative start makes `System.arraycopy` throw, which the transport logs and drops (the
/// PUBACK has gone out already). spec: 11.2, 17.42.
pub(crate) fn chunk(data: &Bytes, size: i32, index: i32) -> Option<Bytes> {
    if size < 1 {
        return Some(data.clone());
    }
    let len = i32::try_from(data.len()).unwrap_or(i32::MAX);
    if len == 0 {
        return Some(Bytes::new());
    }
    let start = size.wrapping_mul(index);
    let n = len.wrapping_sub(start).min(size);
    if start >= len || n <= 0 {
        return Some(Bytes::new());
    }
    let (Ok(start), Ok(n)) = (usize::try_from(start), usize::try_from(n)) else {
        return None;
    };
    Some(data.slice(start..start + n))
}

/// Assigns `package` to a device as ThingsBoard does when a package is set on it: records
/// telemetry `fw_state = "INITIATED"`, sets the `fw_*` shared attributes (checksum computed
/// here unless the package carries one), deletes `fw_tag` (without a tag) and `fw_url`, and
/// pushes the set values as one object, then the `deleted` list, to a subscribed device. A
/// running download keeps the image its request id started with (spec 11.2). Returns the
/// `fw_checksum` set.
///
/// # Errors
/// `UnknownDevice`; `InvalidFirmware` for an empty title or version.
pub(crate) fn assign(
    shared: &Shared,
    device: &str,
    package: &FirmwarePackage,
    package_id: Option<uuid::Uuid>,
) -> Result<String, DevServerError> {
    for (what, v) in [("title", &package.title), ("version", &package.version)] {
        if v.is_empty() {
            return Err(DevServerError::InvalidFirmware(format!(
                "the firmware {what} must not be empty"
            )));
        }
    }
    // Hash before taking the store lock: a large image takes a while.
    let checksum = package
        .checksum
        .clone()
        .unwrap_or_else(|| package.checksum_algorithm.checksum(&package.data));
    let (attrs, deleted) = assignment_attributes(package, &checksum);
    let set_payload = typed_json(&attrs);
    let deleted_payload = deleted_json(&deleted);
    let ts = now_ms();
    let cap = shared.config.max_telemetry_per_device;
    attributes::event(shared, device, AttributeScope::Shared, &attrs, &deleted);
    telemetry::server_point_event(
        shared,
        device,
        ts,
        "fw_state",
        TbValue::String("INITIATED".into()),
    );
    shared.update(|st| {
        let dev = st
            .store
            .devices
            .get_mut(device)
            .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
        dev.firmware = Some(AssignedFirmware {
            data: package.data.clone(),
            package: package_id,
        });
        st.store.record_firmware(device);
        save_server_point(
            st,
            cap,
            device,
            ts,
            "fw_state",
            TbValue::String("INITIATED".into()),
        );
        st.store
            .set_attributes(device, AttributeScope::Shared, attrs, ts);
        st.store
            .delete_attributes(device, AttributeScope::Shared, &deleted);
        push(st, device, set_payload.clone());
        push(st, device, deleted_payload.clone());
        Ok::<(), DevServerError>(())
    })?;
    shared.events.send(Event::Device {
        name: device.into(),
    });
    shared.logs.emit(format!(
        "\"{device}\" firmware assigned ({} bytes): {set_payload}",
        package.data.len()
    ));
    Ok(checksum)
}

/// Removes a device's assignment: deletes all nine `fw_*` keys with one `deleted` push.
/// Removing when nothing is assigned does nothing.
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn unassign(shared: &Shared, device: &str) -> Result<(), DevServerError> {
    let keys = ALL_FW_ATTRIBUTE_KEYS;
    let payload = deleted_json(&keys);
    let removed = shared.update(|st| {
        let dev = st
            .store
            .devices
            .get_mut(device)
            .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
        if dev.firmware.take().is_none() {
            return Ok(false);
        }
        st.store.record_firmware(device);
        st.store
            .delete_attributes(device, AttributeScope::Shared, &keys);
        push(st, device, payload.clone());
        Ok::<bool, DevServerError>(true)
    })?;
    if removed {
        attributes::event(shared, device, AttributeScope::Shared, &[], &keys);
        shared.events.send(Event::Device {
            name: device.into(),
        });
        shared
            .logs
            .emit(format!("\"{device}\" firmware unassigned: {payload}"));
    }
    Ok(())
}

/// The package to assign for an uploaded OTA package; `None` while it has no data.
pub(crate) fn package_of(p: &OtaPackage) -> Option<FirmwarePackage> {
    Some(FirmwarePackage {
        title: p.title.clone(),
        version: p.version.clone(),
        data: p.data.clone()?,
        checksum_algorithm: p.checksum_algorithm.unwrap_or_default(),
        checksum: p.checksum.clone(),
        tag: p.tag.clone(),
    })
}

/// The image assigned to `device`, for a download's first chunk request.
pub(crate) fn image(shared: &Shared, device: &str) -> Option<Bytes> {
    let st = shared.state.lock();
    st.store
        .devices
        .get(device)
        .and_then(|d| d.firmware.as_ref())
        .map(|f| f.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_slice_clip_and_wrap_as_thingsboard_does() {
        let data = Bytes::from_static(b"0123456789");
        let at = |size, index| chunk(&data, size, index).map(|b| b.to_vec());
        assert_eq!(at(0, 5), Some(b"0123456789".to_vec())); // size 0: whole image
        assert_eq!(at(-3, 0), Some(b"0123456789".to_vec()));
        assert_eq!(at(4, 0), Some(b"0123".to_vec()));
        assert_eq!(at(4, 2), Some(b"89".to_vec())); // short last chunk
        assert_eq!(at(4, 3), Some(Vec::new())); // past the end
        assert_eq!(at(i32::MAX, 1), Some(Vec::new()));
        // 65536 * 65536 wraps to 0 in Java's int: chunk 0 again.
        assert_eq!(chunk(&data, 65536, 65536).map(|b| b.len()), Some(10));
        // 65536 * 32768 wraps to i32::MIN; the length check then fails: empty.
        assert_eq!(at(65536, 32768), Some(Vec::new()));
        // 65536 * 65535 wraps to -65536: ThingsBoard's arraycopy throws, nothing is sent.
        assert_eq!(at(65536, 65535), None);
        assert_eq!(chunk(&Bytes::new(), 4, 0), Some(Bytes::new()));
    }
}
