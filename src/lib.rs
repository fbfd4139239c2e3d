//! `thingsboard_sdk._engine`: the Rust engine behind the `thingsboard_sdk` Python package.
//!
//! tb-core holds the ThingsBoard protocol; this crate runs it over rumqttc on a shared tokio
//! runtime (`runtime`), one IO task per client (`client`), and exposes it to Python (`py`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod convert;
mod devserver;
mod errors;
mod firmware;
mod py;
mod runtime;
mod tls;

use pyo3::prelude::*;

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust log records go to Python's `logging`, under `thingsboard_sdk.*` (the targets).
    // Design: records are capped at INFO before they reach Python. rumqttc logs every publish
    // at DEBUG, and each record that reaches pyo3-log takes the GIL from the IO thread: that
    // cost a thread-state mmap, munmap and GIL hand-off per message (seen with strace -c -k).
    if let Ok(logger) = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers) {
        let _ = logger
            .filter(log::LevelFilter::Info)
            .filter_target("rumqttc".to_owned(), log::LevelFilter::Warn)
            .install();
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<py::Client>()?;
    m.add_class::<py::Handle>()?;
    m.add_class::<devserver::DevServer>()?;
    m.add_class::<py::HubHandle>()?;
    Ok(())
}
