//! Python objects to JSON values and back, with the errors a user can act on.
//!
//! Design: conversion walks the Python object directly instead of calling `json.dumps`, so
//! that a set, bytes, NaN or a non-str key is refused with a message naming the value, and so
//! that the hot path (one small dict per telemetry message) costs no Python-level call.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted; deeper data is almost surely a mistake (or a cycle).
const MAX_DEPTH: usize = 100;

struct Walk {
    /// What is being converted, for messages: "telemetry", "attributes", ...
    what: &'static str,
    /// Addresses of the containers currently being walked, to detect cycles: the first
    /// [`INLINE`] in place (no allocation for the usual one or two levels), deeper ones in
    /// `deeper`.
    inline: [usize; INLINE],
    depth: usize,
    deeper: Vec<usize>,
}

/// Container levels tracked without allocating.
const INLINE: usize = 4;

fn repr_short(obj: &Bound<'_, PyAny>) -> String {
    let r = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".into());
    if r.chars().count() > 80 {
        let cut: String = r.chars().take(77).collect();
        format!("{cut}...")
    } else {
        r
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

impl Walk {
    fn enter(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let addr = obj.as_ptr() as usize;
        let open = &self.inline[..self.depth.min(INLINE)];
        if open.contains(&addr) || self.deeper.contains(&addr) {
            return Err(PyValueError::new_err(format!(
                "{} contains a circular reference: a container includes itself",
                self.what
            )));
        }
        if self.depth >= MAX_DEPTH {
            return Err(PyValueError::new_err(format!(
                "{} is nested more than {MAX_DEPTH} levels deep",
                self.what
            )));
        }
        match self.inline.get_mut(self.depth) {
            Some(slot) => *slot = addr,
            None => self.deeper.push(addr),
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
        if self.depth >= INLINE {
            self.deeper.pop();
        }
    }

    fn value(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(s) = obj.downcast::<PyString>() {
            // Design: to_cow, not to_str: the limited API (abi3 wheels) has no borrowed
            // UTF-8 view before Python 3.10; on a full-API build it borrows all the same.
            return match s.to_cow() {
                Ok(s) => Ok(Value::String(s.into_owned())),
                Err(_) => Err(PyValueError::new_err(format!(
                    "{} contains a str that is not valid Unicode (a lone surrogate?): {}",
                    self.what,
                    repr_short(obj)
                ))),
            };
        }
        if let Ok(b) = obj.downcast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if obj.downcast::<PyInt>().is_ok() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Value::Number(i.into()));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(Value::Number(u.into()));
            }
            return Err(PyValueError::new_err(format!(
                "{} contains an int that does not fit in 64 bits: {}",
                self.what,
                repr_short(obj)
            )));
        }
        if let Ok(f) = obj.downcast::<PyFloat>() {
            let v = f.value();
            return match Number::from_f64(v) {
                Some(n) => Ok(Value::Number(n)),
                None => Err(PyValueError::new_err(format!(
                    "{} contains {v}: JSON has no NaN or Infinity, and ThingsBoard rejects them",
                    self.what
                ))),
            };
        }
        if let Ok(d) = obj.downcast::<PyDict>() {
            self.enter(obj)?;
            // Sized at once: growing a preserve-order map rehashes and copies (a 10-key dict
            // grew four times).
            let mut m = Map::with_capacity(d.len());
            for (k, v) in d.iter() {
                let key = match k.downcast::<PyString>() {
                    Ok(s) => s.to_cow().map_err(|_| {
                        PyValueError::new_err(format!(
                            "{} has a key that is not valid Unicode: {}",
                            self.what,
                            repr_short(&k)
                        ))
                    })?,
                    Err(_) => {
                        return Err(PyTypeError::new_err(format!(
                            "{} keys must be str, got {} key {}",
                            self.what,
                            type_name(&k),
                            repr_short(&k)
                        )))
                    }
                };
                let val = self.value(&v)?;
                m.insert(key.into_owned(), val);
            }
            self.leave();
            return Ok(Value::Object(m));
        }
        if obj.downcast::<PyList>().is_ok() || obj.downcast::<PyTuple>().is_ok() {
            self.enter(obj)?;
            let mut items = Vec::with_capacity(obj.len().unwrap_or(0));
            for item in obj.try_iter()? {
                items.push(self.value(&item?)?);
            }
            self.leave();
            return Ok(Value::Array(items));
        }
        if obj.downcast::<PySet>().is_ok() || obj.downcast::<PyFrozenSet>().is_ok() {
            return Err(PyTypeError::new_err(format!(
                "{} contains a set, which JSON cannot encode: {}",
                self.what,
                repr_short(obj)
            )));
        }
        if obj.downcast::<PyBytes>().is_ok() || obj.downcast::<PyByteArray>().is_ok() {
            return Err(PyTypeError::new_err(format!(
                "{} contains bytes, which JSON cannot encode (decode them to str first): {}",
                self.what,
                repr_short(obj)
            )));
        }
        Err(PyTypeError::new_err(format!(
            "{} contains an object of type {} that JSON cannot encode: {}",
            self.what,
            type_name(obj),
            repr_short(obj)
        )))
    }
}

/// Converts any JSON-encodable Python value.
pub fn to_value(obj: &Bound<'_, PyAny>, what: &'static str) -> PyResult<Value> {
    Walk {
        what,
        inline: [0; INLINE],
        depth: 0,
        deeper: Vec::new(),
    }
    .value(obj)
}

/// Converts a payload whose top level must be a dict (or, with `allow_list`, a list).
///
/// A set at the top level gets its own message: the docs' `{"CPU", 12.0}` is a set literal
/// written by mistake for the dict `{"CPU": 12.0}`.
pub fn to_payload(obj: &Bound<'_, PyAny>, what: &'static str, allow_list: bool) -> PyResult<Value> {
    let expected = if allow_list {
        "a dict or a list of dicts"
    } else {
        "a dict"
    };
    if obj.downcast::<PySet>().is_ok() || obj.downcast::<PyFrozenSet>().is_ok() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be {expected}, but a set was passed: {}. A set literal separates items \
             with commas, a dict pairs keys and values with colons: write {{\"key\": value}}, \
             not {{\"key\", value}}",
            repr_short(obj)
        )));
    }
    let is_dict = obj.downcast::<PyDict>().is_ok();
    let is_list = obj.downcast::<PyList>().is_ok() || obj.downcast::<PyTuple>().is_ok();
    if !(is_dict || (allow_list && is_list)) {
        return Err(PyTypeError::new_err(format!(
            "{what} must be {expected}, got {} {}",
            type_name(obj),
            repr_short(obj)
        )));
    }
    to_value(obj, what)
}

/// Converts a JSON value into the equivalent Python object (dicts keep the order of arrival).
pub fn to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(m) => map_to_py(py, m)?,
    })
}

/// Converts a JSON object into a Python dict.
pub fn map_to_py(py: Python<'_>, m: &Map<String, Value>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, to_py(py, v)?)?;
    }
    Ok(d.into_any().unbind())
}

/// A response's outcome as the pair the Python side unpacks, `(value, timeout)`: the value and
/// `None` when it came, `None` and the seconds waited when it timed out. The device's and the
/// gateway's attribute responses (and the device's RPC responses) share this shape.
pub fn response_to_py(
    py: Python<'_>,
    result: Result<Value, tb_core::TimedOut>,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    Ok(match result {
        Ok(v) => (to_py(py, &v)?, py.None()),
        Err(t) => (
            py.None(),
            (t.after_ms as f64 / 1000.0)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        ),
    })
}
