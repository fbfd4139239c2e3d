//! One error type for the binding, and its single conversion into Python exceptions.

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;

pyo3::import_exception!(thingsboard_sdk.exceptions, QueueFullError);
pyo3::import_exception!(thingsboard_sdk.exceptions, MessageRefusedError);

/// Everything the binding can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// tb-core refused a command.
    #[error(transparent)]
    Core(#[from] tb_core::Error),
    /// A network-side failure.
    #[error("{0}")]
    Network(String),
    /// The durable queue could not store or open (disk full, folder not writable).
    #[error("{0}")]
    Storage(String),
    /// Already a Python exception.
    #[error(transparent)]
    Py(#[from] PyErr),
}

impl From<SdkError> for PyErr {
    fn from(e: SdkError) -> PyErr {
        match e {
            SdkError::Core(tb_core::Error::Usage(u)) => match u {
                tb_core::UsageError::WrongType(msg) => PyTypeError::new_err(msg),
                other @ (tb_core::UsageError::BadQos(_)
                | tb_core::UsageError::Payload(_)
                | tb_core::UsageError::BadId(_)
                | tb_core::UsageError::Invalid(_)) => PyValueError::new_err(other.to_string()),
            },
            SdkError::Core(tb_core::Error::Capacity(
                c @ tb_core::CapacityError::QueueFull { .. },
            )) => QueueFullError::new_err(c.to_string()),
            SdkError::Network(msg) | SdkError::Storage(msg) => PyOSError::new_err(msg),
            SdkError::Py(e) => e,
        }
    }
}
