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
mod durable;
mod errors;
mod firmware;
mod gateway;
mod py;
mod runtime;
mod session;
mod tls;
mod wait;
mod waker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// False once the interpreter begins to exit: from then on no log record may reach Python.
static PYTHON_ALIVE: AtomicBool = AtomicBool::new(true);

/// Log calls on their way into Python right now (see [`InFlight`]).
static LOGGING: AtomicUsize = AtomicUsize::new(0);

/// One log call counted while it may touch Python. Design: a thread that saw Python alive and
/// then waits for the GIL must get it before finalization starts, or it aborts the process
/// ("PyGILState_Release: thread state must be current"); exit waits for the count to drop.
struct InFlight;

impl InFlight {
    fn enter() -> Option<InFlight> {
        LOGGING.fetch_add(1, Ordering::SeqCst);
        if PYTHON_ALIVE.load(Ordering::SeqCst) {
            Some(InFlight)
        } else {
            LOGGING.fetch_sub(1, Ordering::SeqCst);
            None
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        LOGGING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// pyo3-log, but silent once Python is exiting. Design: IO tasks and the dev server run on
/// Rust threads that outlive the interpreter when a script exits with clients or a server still
/// running; a record logged then would make pyo3-log attach to a finalized interpreter, which
/// panics on that thread ("interpreter is not initialized"), once per record.
struct Logger(pyo3_log::Logger);

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        InFlight::enter().is_some_and(|_g| self.0.enabled(metadata))
    }

    fn log(&self, record: &log::Record) {
        if let Some(_g) = InFlight::enter() {
            self.0.log(record);
        }
    }

    fn flush(&self) {}
}

/// `py.detach(f)` for the waits of user threads (`wait_for_msg`, `flush`, RPC waits, ...).
///
/// Design: a daemon thread still waiting when the interpreter exits must not take the GIL
/// again. CPython before 3.14 ends such a thread with `pthread_exit`, whose forced unwind
/// through pyo3's frames aborts the whole process ("FATAL: exception not rethrown", exit code
/// 134). Once the atexit hook has run (`PYTHON_ALIVE` false) the waiting thread parks instead,
/// holding no lock; the process exit ends it.
pub(crate) fn detach_wait<T, F>(py: Python<'_>, f: F) -> T
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    py.detach(|| {
        let out = f();
        if !PYTHON_ALIVE.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        out
    })
}

/// Registered with `atexit`: warns about unacknowledged messages, then stops log records from
/// reaching Python and lets the ones under way finish (GIL released, at most a second).
#[pyfunction]
fn _python_exiting(py: Python<'_>) {
    // Still alive here: atexit runs before the interpreter tears down `logging`.
    client::warn_unacknowledged_at_exit();
    PYTHON_ALIVE.store(false, Ordering::SeqCst);
    py.detach(|| {
        let until = Instant::now() + Duration::from_secs(1);
        while LOGGING.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
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
    m.add_class::<gateway::Gateway>()?;
    m.add_class::<devserver::DevServer>()?;
    m.add_function(wrap_pyfunction!(devserver::write_self_signed, m)?)?;
    m.add_class::<py::HubHandle>()?;
    m.add_class::<waker::Waker>()?;
    Ok(())
}
