//! The device's side of firmware updates (spec 11, Firmware / software OTA): the commands a
//! host calls, and the glue that feeds the download machine of [`crate::firmware`] and queues
//! what it asks for (state telemetry, chunk requests) through the device's queue.
//!
//! Design: an `impl Device` block, as in `gateway.rs`, `pacing.rs` and `queue.rs`; moved out of
//! `device.rs` unchanged. The download's own rules stay in `firmware.rs`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::device::{Device, MessageId, Millis, Mode, QoS, RequestId};
use crate::error::Error;
use crate::firmware;
use crate::topics;

impl Device {
    /// Queues an attribute request for the firmware keys (the reference's
    /// `REQUIRED_SHARED_KEYS`); its answer starts an update when it names new firmware, as a
    /// push does. Useful after connecting, since ThingsBoard pushes an assignment only once.
    pub fn request_firmware_info(
        &mut self,
        now: Millis,
        timeout_ms: Millis,
    ) -> Result<RequestId, Error> {
        self.request_attributes(now, &[], &firmware::FW_SHARED_KEYS, timeout_ms)
    }

    /// The host installed the image `title`/`version` (after
    /// [`FirmwareEvent::Verified`](crate::FirmwareEvent::Verified), or at boot into a new
    /// image): it becomes the current firmware, and
    /// `{"current_fw_title", "current_fw_version", "fw_state": "UPDATED"}` is queued as
    /// telemetry (spec 11.3). The reference does the same before its reset.
    pub fn firmware_installed(&mut self, title: &str, version: &str) -> Result<MessageId, Error> {
        let telemetry = self.fw.installed(title, version);
        self.send_telemetry(&telemetry)
    }

    /// The host could not go on with the download or the verified image (a title that is not
    /// a safe file name, a write error, a failed install): the download stops, FAILED with
    /// `fw_error` is queued and [`FirmwareEvent::Failed`](crate::FirmwareEvent::Failed)
    /// follows. Returns whether an update was in progress.
    pub fn fail_firmware(&mut self, error: &str) -> bool {
        let mut out = Vec::new();
        let failed = self.fw.fail(error.into(), &mut out);
        self.drop_queued_chunk_requests();
        self.apply_firmware(out);
        failed
    }

    /// Sets the current firmware without reporting anything (e.g. what the host restored at
    /// start); updates compare offers against it.
    pub fn set_current_firmware(&mut self, title: &str, version: &str) {
        self.fw.set_current(title, version);
    }

    /// Title and version of the current firmware (initially those of
    /// [`FirmwareConfig`](crate::FirmwareConfig); the reference's `current_firmware_info`).
    pub fn current_firmware(&self) -> (&str, &str) {
        self.fw.current()
    }

    /// Whether a firmware download is in progress.
    pub fn is_firmware_downloading(&self) -> bool {
        self.fw.is_downloading()
    }

    pub(crate) fn firmware_offer(&mut self, data: &Map<String, Value>, from_push: bool) {
        if !self.fw.enabled() {
            return;
        }
        let mut out = Vec::new();
        let was_downloading = self.fw.is_downloading();
        self.fw.offer(data, from_push, &mut out);
        if was_downloading && !out.is_empty() {
            // A new assignment replaced the download: its unsent request is useless.
            self.drop_queued_chunk_requests();
        }
        self.apply_firmware(out);
    }

    pub(crate) fn handle_firmware_publish(&mut self, topic: &str, payload: &[u8]) {
        let mut out = Vec::new();
        let result = if topic == topics::FW_ERROR {
            self.fw.handle_error(payload, &mut out)
        } else {
            self.fw.handle_chunk(topic, payload, &mut out)
        };
        if !self.fw.is_downloading() {
            self.drop_queued_chunk_requests();
        }
        self.apply_firmware(out);
        if let Err(reason) = result {
            self.drop_msg(topic, reason);
        }
    }

    /// Queues what the firmware machine produced. A chunk request that cannot be queued ends
    /// the download (FAILED); state telemetry that cannot be queued is lost, as any telemetry
    /// is when the queue is full.
    pub(crate) fn apply_firmware(&mut self, out: Vec<firmware::Out>) {
        let mut out = VecDeque::from(out);
        while let Some(o) = out.pop_front() {
            match o {
                firmware::Out::Telemetry(v) => {
                    let _ = self.send_telemetry(&v);
                }
                firmware::Out::Request { topic, payload } => {
                    // spec 11.2: QoS 1 recommended for chunk requests.
                    if let Err(e) = self.enqueue(topic.into(), payload, QoS::AtLeastOnce) {
                        let mut more = Vec::new();
                        self.fw
                            .fail(alloc::format!("cannot request a chunk: {e}"), &mut more);
                        out.extend(more);
                    }
                }
            }
        }
    }

    /// Removes chunk requests not yet sent (after a reconnect they are replaced; after the
    /// download ended they are useless).
    pub(crate) fn drop_queued_chunk_requests(&mut self) {
        if self.cfg.mode == Mode::Provisioning {
            return;
        }
        self.remove_queued(|p| p.topic.starts_with(topics::FW_REQUEST_PREFIX));
    }
}
