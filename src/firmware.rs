//! Firmware images on the host: tb-core streams the download; this writes it to a file.
//!
//! The image goes to `<folder>/.<title>.part` while it downloads and is renamed to
//! `<folder>/<title>` only after tb-core verified the checksum, so no partial file ever carries
//! the final name. A title that is not a plain file name (`../x`, `/etc/x`, `a/b`) ends the
//! update in FAILED before anything is written.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use tb_core::FirmwareEvent;

use crate::client::{self, Shared};

const LOG: &str = "thingsboard_sdk::firmware";

/// What Python hears about an update.
#[derive(Debug, Clone)]
pub enum Note {
    Started {
        title: String,
        version: String,
        size: u64,
    },
    Updated {
        path: String,
        title: String,
        version: String,
        size: u64,
    },
    Failed {
        title: String,
        version: String,
        error: String,
    },
    /// Bytes received so far; at most one note per percent (a progress bar's input).
    Progress { received: u64, total: u64 },
}

/// The download in progress.
#[derive(Default)]
pub struct Writer {
    file: Option<(File, PathBuf, PathBuf)>,
    /// The last percentage logged (every 10 %) and the last one noted to Python (every 1 %).
    last_percent: u64,
    last_noted: u64,
}

/// The final path for `title` in `dir`, or why the title is refused.
pub fn target_path(dir: &Path, title: &str) -> Result<PathBuf, String> {
    let plain = !title.is_empty()
        && title != "."
        && title != ".."
        && !title.contains(['/', '\\', '\0'])
        && Path::new(title).file_name().is_some_and(|n| n == title);
    if plain {
        Ok(dir.join(title))
    } else {
        Err(format!(
            "firmware title {title:?} is not a plain file name; refusing to write outside {}",
            dir.display()
        ))
    }
}

impl Writer {
    fn discard(&mut self) {
        if let Some((file, tmp, _)) = self.file.take() {
            drop(file);
            let _ = fs::remove_file(tmp);
        }
    }

    fn start(&mut self, dir: &Path, title: &str) -> Result<(), String> {
        self.discard();
        self.last_percent = 0;
        self.last_noted = 0;
        let target = target_path(dir, title)?;
        let tmp = dir.join(format!(".{title}.part"));
        let file =
            File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        self.file = Some((file, tmp, target));
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), String> {
        match self.file.as_mut() {
            Some((file, tmp, _)) => file
                .write_all(data)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display())),
            None => Err("no firmware file is open".into()),
        }
    }

    fn finish(&mut self) -> Result<PathBuf, String> {
        let Some((file, tmp, target)) = self.file.take() else {
            return Err("no firmware file is open".into());
        };
        let done = file
            .sync_all()
            .and_then(|()| fs::rename(&tmp, &target))
            .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), target.display()));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done.map(|()| target)
    }
}

/// Moves tb-core's firmware events to the host's queue, under the device lock and before
/// anything is pumped out: an offer whose title is not a plain file name is failed at once, so
/// its first chunk request is withdrawn before it is ever sent.
pub fn take_events(st: &mut client::State, dir: &Path) {
    while let Some(ev) = st.core.poll_firmware_event() {
        if let FirmwareEvent::Started { title, .. } = &ev {
            if let Err(why) = target_path(dir, title) {
                st.core.fail_firmware(&why);
                continue;
            }
        }
        st.firmware_events.push_back(ev);
    }
}

/// Does the file work for the vetted firmware events outside the device lock; what Python
/// must hear is queued as notes. Call after anything that may have produced firmware events,
/// from a Python thread or the blocking pool, never on an IO thread (writes, fsync, rename).
/// One caller at a time does the work (in order); a concurrent call returns at once and its
/// events are taken by the one at work.
pub fn process(shared: &Shared) {
    {
        let mut st = shared.state.lock();
        if st.firmware_busy {
            return;
        }
        st.firmware_busy = true;
    }
    loop {
        let events: Vec<FirmwareEvent> = {
            let mut st = shared.state.lock();
            take_events(&mut st, &shared.settings.firmware_dir);
            let events: Vec<FirmwareEvent> = st.firmware_events.drain(..).collect();
            if events.is_empty() {
                st.firmware_busy = false;
            }
            events
        };
        if events.is_empty() {
            return;
        }
        let mut writer = shared.firmware.lock();
        let dir = &shared.settings.firmware_dir;
        for ev in events {
            match ev {
                FirmwareEvent::Started {
                    title,
                    version,
                    size,
                    ..
                } => {
                    log::info!(target: LOG, "firmware {title} {version}: downloading {size} bytes");
                    if let Err(why) = writer.start(dir, &title) {
                        writer.discard();
                        fail(shared, &why);
                    } else {
                        note(
                            shared,
                            Note::Started {
                                title,
                                version,
                                size,
                            },
                        );
                    }
                }
                FirmwareEvent::Chunk { data, .. } => {
                    if let Err(why) = writer.write(&data) {
                        writer.discard();
                        fail(shared, &why);
                    }
                }
                FirmwareEvent::Progress { received, total } => {
                    let percent = received.saturating_mul(100) / total.max(1);
                    if percent >= writer.last_percent + 10 || received == total {
                        writer.last_percent = percent;
                        log::info!(target: LOG, "firmware download {percent}% ({received} of {total} bytes)");
                    }
                    if percent > writer.last_noted || received == total {
                        writer.last_noted = percent;
                        note(shared, Note::Progress { received, total });
                    }
                }
                FirmwareEvent::Verified {
                    title,
                    version,
                    size,
                } => match writer.finish() {
                    Ok(path) => {
                        log::info!(target: LOG, "firmware {title} {version} verified and saved to {}", path.display());
                        {
                            let mut st = shared.state.lock();
                            let _ = st.core.firmware_installed(&title, &version);
                            shared.send(&mut st);
                        }
                        let path = path.display().to_string();
                        note(
                            shared,
                            Note::Updated {
                                path,
                                title,
                                version,
                                size,
                            },
                        );
                    }
                    Err(why) => fail(shared, &why),
                },
                FirmwareEvent::Failed {
                    title,
                    version,
                    error,
                } => {
                    writer.discard();
                    log::warn!(target: LOG, "firmware {title} {version} failed: {error}");
                    note(
                        shared,
                        Note::Failed {
                            title,
                            version,
                            error,
                        },
                    );
                }
            }
        }
    }
}

fn fail(shared: &Shared, why: &str) {
    let mut st = shared.state.lock();
    st.core.fail_firmware(why);
    shared.send(&mut st);
}

fn note(shared: &Shared, n: Note) {
    let mut st = shared.state.lock();
    st.firmware_notes.push_back(n);
    shared.notify_events(&mut st);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_accepted() {
        let dir = Path::new("/tmp/fw");
        assert_eq!(target_path(dir, "lamp.bin"), Ok(dir.join("lamp.bin")));
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "x\0y"] {
            assert!(target_path(dir, bad).is_err(), "{bad:?}");
        }
    }
}
