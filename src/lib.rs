//! `thingsboard_sdk._engine`: the Rust engine behind the `thingsboard_sdk` Python package.
//!
//! tb-core holds the ThingsBoard protocol and `session` the MQTT session, both sans-IO; `client`
//! joins them behind one lock, `conn` runs one IO task per client on a shared tokio runtime
//! (`runtime`), moving bytes with rumqttc's codec, and `py` exposes it all to Python.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod conn;
mod convert;
mod devserver;
mod errors;
mod firmware;
mod py;
mod runtime;
mod session;
mod tls;
mod waker;

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// False once the interpreter begins to exit: from then on no log record may reach Python.
static PYTHON_ALIVE: AtomicBool = AtomicBool::new(true);

/// pyo3-log, but silent once Python is exiting. Design: IO tasks and the dev server run on
/// Rust threads that outlive the interpreter when a script exits with clients or a server still
/// running; a record logged then would make pyo3-log attach to a finalized interpreter, which
/// panics on that thread ("interpreter is not initialized"), once per record.
struct Logger(pyo3_log::Logger);

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        PYTHON_ALIVE.load(Ordering::Acquire) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if PYTHON_ALIVE.load(Ordering::Acquire) {
            self.0.log(record);
        }
    }

    fn flush(&self) {}
}

/// Registered with `atexit`: stops log records from reaching Python.
#[pyfunction]
fn _python_exiting() {
    // Still alive here: atexit runs before the interpreter tears down `logging`.
    client::warn_unacknowledged_at_exit();
    PYTHON_ALIVE.store(false, Ordering::Release);
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust log records go to Python's `logging`, under `thingsboard_sdk.*` (the targets).
    // Design: records are capped at INFO before they reach Python. rumqttc logs every publish
    // at DEBUG, and each record that reaches pyo3-log takes the GIL from the IO thread: that
    // cost a thread-state mmap, munmap and GIL hand-off per message (seen with strace -c -k).
    if let Ok(logger) = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers) {
        let logger = logger
            .filter(log::LevelFilter::Info)
            .filter_target("rumqttc".to_owned(), log::LevelFilter::Warn);
        if log::set_boxed_logger(Box::new(Logger(logger))).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    }
    let exiting = wrap_pyfunction!(_python_exiting, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (exiting,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<py::Client>()?;
    m.add_class::<py::Handle>()?;
    m.add_class::<devserver::DevServer>()?;
    m.add_class::<py::HubHandle>()?;
    m.add_class::<waker::Waker>()?;
    Ok(())
}
