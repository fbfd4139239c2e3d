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
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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

/// The thread that ran the atexit hook: it finalizes the interpreter and must never park.
static EXITING_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);

/// True on the thread that runs the interpreter's exit (it may still call into the engine
/// from later atexit hooks, `__del__` and garbage collection, and must never park).
fn is_exiting_thread() -> bool {
    *EXITING_THREAD.lock() == Some(std::thread::current().id())
}

/// A guard that lets an engine thread touch Python (attach, call a handler, log) while it
/// lives, or `None` once the interpreter is exiting. The exit waits for these guards.
pub(crate) fn python_scope() -> Option<impl Sized> {
    InFlight::enter()
}

/// `py.detach(f)`: every release of the GIL in the engine goes through here (clippy's
/// `disallowed-methods` rejects a bare `Python::detach`).
///
/// Design: a daemon thread that comes back for the GIL once finalization has begun is ended by
/// CPython before 3.14 with `pthread_exit`; its forced unwind through pyo3's `catch_unwind`
/// aborts the whole process ("FATAL: exception not rethrown", exit code 134). Checking a flag
/// before taking the GIL back is not enough: a thread that saw Python alive may still be
/// waiting for the GIL when finalization starts (seen: `DevServer.generation()` in a daemon
/// thread, about 1 exit in 25). So the way back is counted like a log call ([`InFlight`]): the
/// atexit hook turns `PYTHON_ALIVE` off and then, GIL released, waits until every thread
/// counted has the GIL again; a thread that finds Python exiting parks instead, holding no
/// lock, and the process exit ends it. The exiting thread itself never parks.
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    #[allow(clippy::disallowed_methods)]
    let (out, _back) = py.detach(|| {
        let out = f();
        match InFlight::enter() {
            Some(back) => (out, Some(back)),
            None if is_exiting_thread() => (out, None),
            None => loop {
                std::thread::park();
            },
        }
    });
    // `_back` drops here, with the GIL held again: the exit may go on.
    out
}

/// Registered with `atexit`: warns about unacknowledged messages, then stops log records from
/// reaching Python and lets the ones under way finish, and the threads on their way back to
/// the GIL take it (GIL released, at most a second).
#[pyfunction]
fn _python_exiting(py: Python<'_>) {
    // Still alive here: atexit runs before the interpreter tears down `logging`.
    client::warn_unacknowledged_at_exit();
    *EXITING_THREAD.lock() = Some(std::thread::current().id());
    PYTHON_ALIVE.store(false, Ordering::SeqCst);
    #[allow(clippy::disallowed_methods)]
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
