//! `toolmend._core`: PyO3 bindings over `toolmend-core`. Argument conversion, error
//! mapping and result objects only; all parsing lives in the core crate.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use toolmend_core as core;

create_exception!(
    _core,
    ToolmendError,
    PyValueError,
    "Base class of toolmend's errors (a ValueError)."
);
create_exception!(
    _core,
    UnknownFormatError,
    ToolmendError,
    "The format name is not one toolmend supports."
);
create_exception!(
    _core,
    InvalidToolsError,
    ToolmendError,
    "The tools list is not a list of function tools."
);
create_exception!(
    _core,
    ParserFinishedError,
    ToolmendError,
    "The stream parser was already finished."
);

/// Inputs at least this long are parsed with the GIL released; for shorter ones releasing
/// and re-taking it costs more than the parse.
const RELEASE_GIL_ABOVE: usize = 16 * 1024;

/// Runs `f`, turning a Rust panic into a `ToolmendError` instead of unwinding into Python.
fn guarded<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ToolmendError::new_err(format!(
                "internal error in {what}: {msg} (please report this input)"
            )))
        }
    }
}

fn map_parse_error(e: core::ParseError) -> PyErr {
    match e {
        core::ParseError::UnknownFormat { .. } => UnknownFormatError::new_err(e.to_string()),
        core::ParseError::Finished => ParserFinishedError::new_err(e.to_string()),
    }
}

/// Converts a Python JSON-like object (dict, list, str, int, float, bool, None) to JSON.
fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 128 {
        return Err(InvalidToolsError::new_err("tools nest deeper than 128 levels"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.downcast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Value::from(v));
        }
        let f: f64 = i.extract()?;
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(f) = obj.downcast::<PyFloat>() {
        return Ok(serde_json::Number::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(d) = obj.downcast::<PyDict>() {
        let mut m = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k
                .extract()
                .map_err(|_| InvalidToolsError::new_err("tools: dict keys must be strings"))?;
            m.insert(key, to_json(&v, depth + 1)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    // Pydantic models and other objects with a dict form.
    if obj.hasattr("model_dump")? {
        return to_json(&obj.call_method0("model_dump")?, depth + 1);
    }
    Err(InvalidToolsError::new_err(format!(
        "tools: cannot convert {} to JSON",
        obj.get_type().name()?
    )))
}

/// A prepared tools list, reusable across parses: converted once, and every tool's JSON
/// Schema validator compiled when it is built (not when a stream's first call ends).
#[pyclass(module = "toolmend._core", frozen)]
struct Tools {
    inner: Arc<core::ToolSet>,
}

#[pymethods]
impl Tools {
    #[new]
    fn new(tools: &Bound<'_, PyAny>) -> PyResult<Self> {
        let v = to_json(tools, 0)?;
        let set = core::ToolSet::from_json(&v).map_err(|e| InvalidToolsError::new_err(e.to_string()))?;
        guarded("Tools()", || {
            set.compile_validators();
            Ok(())
        })?;
        Ok(Tools { inner: Arc::new(set) })
    }

    /// The declared tool names.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names().into_iter().map(str::to_string).collect()
    }

    fn __len__(&self) -> usize {
        self.inner.tools.len()
    }

    fn __repr__(&self) -> String {
        format!("Tools({:?})", self.inner.names())
    }
}

fn tools_arg(tools: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<core::ToolSet>>> {
    match tools {
        None => Ok(None),
        Some(t) if t.is_none() => Ok(None),
        Some(t) => {
            if let Ok(prepared) = t.downcast::<Tools>() {
                return Ok(Some(prepared.get().inner.clone()));
            }
            Ok(Some(Tools::new(t)?.inner))
        }
    }
}

/// A streaming event: the core's event as it stands (making one moves it into the
/// object, nothing else; short text fragments are held inline).
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq)]
struct Event(core::Event);

#[pymethods]
impl Event {
    /// Text of content, reasoning and argument events; `None` otherwise.
    #[getter]
    fn text<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.0.text().map(|t| PyString::new(py, t))
    }

    /// `content`, `reasoning`, `tool_call_start`, `tool_call_args` or `tool_call_end`.
    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        // Interned: reading the kind of every event allocates nothing.
        match self.0 {
            core::Event::Content(_) => intern!(py, "content"),
            core::Event::Reasoning(_) => intern!(py, "reasoning"),
            core::Event::ToolCallStart { .. } => intern!(py, "tool_call_start"),
            core::Event::ToolCallArgs { .. } => intern!(py, "tool_call_args"),
            core::Event::ToolCallEnd { .. } => intern!(py, "tool_call_end"),
        }
        .clone()
    }

    /// The call index of tool-call events; `None` otherwise.
    #[getter]
    fn index(&self) -> Option<usize> {
        self.0.index()
    }

    /// The call id (start events); `None` otherwise.
    #[getter]
    fn id(&self) -> Option<&str> {
        match &self.0 {
            core::Event::ToolCallStart { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The tool name (start events); `None` otherwise.
    #[getter]
    fn name(&self) -> Option<&str> {
        match &self.0 {
            core::Event::ToolCallStart { name, .. } => Some(name),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        let text = opt_repr(self.0.text());
        match &self.0 {
            core::Event::ToolCallStart { index, id, name } => format!(
                "Event(kind='tool_call_start', index={index}, id={}, name={})",
                opt_repr(Some(id)),
                opt_repr(Some(name))
            ),
            core::Event::ToolCallEnd { index } => format!("Event(kind='tool_call_end', index={index})"),
            core::Event::ToolCallArgs { index, .. } => {
                format!("Event(kind='tool_call_args', index={index}, text={text})")
            }
            e => format!("Event(kind='{}', text={text})", e.kind()),
        }
    }
}

/// A string as Python shows one (`None` when absent): quoted, with escapes.
fn opt_repr(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_string(), |s| format!("{s:?}"))
}

/// A parsed tool call; `arguments` is compact JSON object text.
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq, Clone)]
struct ToolCall {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    arguments: String,
}

#[pymethods]
impl ToolCall {
    #[new]
    fn new(id: String, name: String, arguments: String) -> Self {
        ToolCall { id, name, arguments }
    }

    fn __repr__(&self) -> String {
        format!(
            "ToolCall(id={:?}, name={:?}, arguments={:?})",
            self.id, self.name, self.arguments
        )
    }
}

/// What was noticed or mended, with the byte span of the model output concerned.
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq, Clone)]
struct Diagnostic {
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    message: String,
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
}

#[pymethods]
impl Diagnostic {
    /// The byte span `(start, end)`.
    #[getter]
    fn span(&self) -> (usize, usize) {
        (self.start, self.end)
    }

    /// For a `schema_violation`: the JSON pointer of the offending value in the call's
    /// arguments (`""` for the arguments object itself); `None` for other diagnostics.
    #[getter]
    fn path(&self) -> Option<String> {
        core::validate::violation_path(self.kind, &self.message)
    }

    fn __repr__(&self) -> String {
        format!(
            "Diagnostic(kind={:?}, message={:?}, span=({}, {}))",
            self.kind, self.message, self.start, self.end
        )
    }
}

impl From<core::Diagnostic> for Diagnostic {
    fn from(d: core::Diagnostic) -> Self {
        Diagnostic {
            kind: d.kind,
            message: d.message,
            start: d.start,
            end: d.end,
        }
    }
}

/// The result of a parse: content, reasoning, tool calls, format and diagnostics.
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq)]
struct ParseResult {
    #[pyo3(get)]
    content: Option<String>,
    #[pyo3(get)]
    reasoning: Option<String>,
    tool_calls: Vec<ToolCall>,
    #[pyo3(get)]
    format: Option<&'static str>,
    diagnostics: Vec<Diagnostic>,
}

#[pymethods]
impl ParseResult {
    #[getter]
    fn tool_calls(&self) -> Vec<ToolCall> {
        self.tool_calls.clone()
    }

    #[getter]
    fn diagnostics(&self) -> Vec<Diagnostic> {
        self.diagnostics.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "ParseResult(content={}, reasoning={}, tool_calls=[{}], format={}, diagnostics={})",
            opt_repr(self.content.as_deref()),
            opt_repr(self.reasoning.as_deref()),
            self.tool_calls
                .iter()
                .map(ToolCall::__repr__)
                .collect::<Vec<_>>()
                .join(", "),
            opt_repr(self.format),
            self.diagnostics.len()
        )
    }
}

impl From<core::ParseResult> for ParseResult {
    fn from(r: core::ParseResult) -> Self {
        ParseResult {
            content: r.content,
            reasoning: r.reasoning,
            tool_calls: r
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            format: r.format,
            diagnostics: r.diagnostics.into_iter().map(Diagnostic::from).collect(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn options(
    tools: Option<&Bound<'_, PyAny>>,
    format: Option<String>,
    model: Option<String>,
    repair: bool,
    in_reasoning: bool,
    id_seed: Option<u64>,
    coerce: bool,
    validate: bool,
) -> PyResult<core::Options> {
    Ok(core::Options {
        format,
        model,
        tools: tools_arg(tools)?,
        repair,
        in_reasoning,
        id_seed,
        coerce,
        validate,
    })
}

fn events(r: Result<Vec<core::Event>, core::ParseError>) -> PyResult<Vec<Event>> {
    Ok(r.map_err(map_parse_error)?.into_iter().map(Event).collect())
}

/// Runs a per-delta core call that appends its events to `buf`, then empties `buf` into a
/// new Python list (no other allocation per delta).
fn fill_list<'py>(
    py: Python<'py>,
    what: &str,
    buf: &mut Vec<core::Event>,
    call: impl FnOnce(&mut Vec<core::Event>) -> Result<(), core::ParseError>,
) -> PyResult<Bound<'py, PyList>> {
    if let Err(e) = guarded(what, || call(buf).map_err(map_parse_error)) {
        buf.clear();
        return Err(e);
    }
    event_list(py, buf)
}

/// The `Event` type object, looked up once per process (PyO3 looks it up per object).
static EVENT_TYPE: pyo3::sync::GILOnceCell<Py<pyo3::types::PyType>> = pyo3::sync::GILOnceCell::new();

fn event_type(py: Python<'_>) -> &Py<pyo3::types::PyType> {
    EVENT_TYPE.get_or_init(py, || py.get_type::<Event>().unbind())
}

/// Empties `buf` into a new list of `Event` objects.
fn event_list<'py>(py: Python<'py>, buf: &mut Vec<core::Event>) -> PyResult<Bound<'py, PyList>> {
    use pyo3::impl_::pyclass_init::PyObjectInit;
    let ty = event_type(py).as_ptr();
    let n = buf.len();
    // SAFETY: PyList_New returns a new reference (or NULL with an exception set).
    let list = unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyList_New(n as pyo3::ffi::Py_ssize_t))? }
        .downcast_into::<PyList>()?;
    for (i, e) in buf.drain(..).enumerate() {
        let init = pyo3::PyClassInitializer::from(Event(e));
        // SAFETY: `ty` is `Event`'s type object; the new reference it returns is moved into
        // the list, which steals it, at an index below the list's length.
        unsafe {
            let obj = init.into_new_object(py, ty.cast::<pyo3::ffi::PyTypeObject>())?;
            pyo3::ffi::PyList_SetItem(list.as_ptr(), i as pyo3::ffi::Py_ssize_t, obj);
        }
    }
    Ok(list)
}

/// The UTF-8 text of a Python `str`, borrowed from the string object where the interpreter
/// allows it. Under abi3 for Python 3.9, PyO3 copies every `&str` argument through a
/// temporary `bytes` object; `PyUnicode_AsUTF8AndSize` (stable ABI since 3.10, exported by
/// CPython since 3.3) returns the string's cached UTF-8 instead. Windows' `python3.dll` of
/// 3.9 does not export it, so there the copy stays.
fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    #[cfg(not(windows))]
    {
        extern "C" {
            fn PyUnicode_AsUTF8AndSize(
                unicode: *mut pyo3::ffi::PyObject,
                size: *mut pyo3::ffi::Py_ssize_t,
            ) -> *const std::os::raw::c_char;
        }
        let mut size: pyo3::ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a live str; the returned buffer is owned by it, stays valid and
        // unchanged while it lives (str is immutable), and is valid UTF-8 when not NULL.
        let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
        if data.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        let len = usize::try_from(size).unwrap_or(0);
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        Ok(Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) }))
    }
    #[cfg(windows)]
    {
        s.to_cow()
    }
}

/// Incremental parser: `feed(delta)` any chunking, then `finish()`; `result()` equals
/// `parse()` of the whole text.
#[pyclass(module = "toolmend._core")]
struct StreamParser {
    inner: core::StreamParser,
    /// Reused event buffer of the per-delta calls.
    buf: Vec<core::Event>,
}

#[pymethods]
impl StreamParser {
    #[allow(clippy::too_many_arguments)] // mirrors the Python signature
    #[new]
    #[pyo3(signature = (tools=None, format="auto".to_string(), model=None, *, repair=true, in_reasoning=false, id_seed=None, coerce=true, validate=true))]
    fn new(
        tools: Option<&Bound<'_, PyAny>>,
        format: Option<String>,
        model: Option<String>,
        repair: bool,
        in_reasoning: bool,
        id_seed: Option<u64>,
        coerce: bool,
        validate: bool,
    ) -> PyResult<Self> {
        let opts = options(tools, format, model, repair, in_reasoning, id_seed, coerce, validate)?;
        guarded("StreamParser()", || {
            Ok(StreamParser {
                inner: core::StreamParser::new(opts).map_err(map_parse_error)?,
                buf: Vec::new(),
            })
        })
    }

    /// Feeds a delta; returns the events it completes.
    fn feed<'py>(&mut self, delta: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let text = utf8(delta)?;
        let inner = &mut self.inner;
        fill_list(delta.py(), "feed", &mut self.buf, |buf| inner.feed_into(&text, buf))
    }

    /// Ends the output: flushes held-back text and closes an open call.
    fn finish(&mut self) -> PyResult<Vec<Event>> {
        guarded("finish", || events(self.inner.finish()))
    }

    /// Starts a call the backend already structured (a native `tool_calls` entry), ending
    /// any open one; its arguments are mended like a text call's.
    #[pyo3(signature = (name, id=None))]
    fn call_start(&mut self, name: &str, id: Option<&str>) -> PyResult<Vec<Event>> {
        guarded("call_start", || events(self.inner.call_start(name, id)))
    }

    /// Feeds a fragment of the open structured call's arguments.
    fn call_args<'py>(&mut self, fragment: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let text = utf8(fragment)?;
        let inner = &mut self.inner;
        fill_list(fragment.py(), "call_args", &mut self.buf, |buf| {
            inner.call_args_into(&text, buf)
        })
    }

    /// Ends the open structured call.
    fn call_end(&mut self) -> PyResult<Vec<Event>> {
        guarded("call_end", || events(self.inner.call_end()))
    }

    /// The result so far (complete after `finish()`).
    fn result(&mut self) -> PyResult<ParseResult> {
        guarded("result", || {
            self.inner.validate_ended();
            Ok(self.inner.result().into())
        })
    }
}

/// Parses a whole model output.
#[allow(clippy::too_many_arguments)] // mirrors the Python signature
#[pyfunction]
#[pyo3(signature = (text, tools=None, format="auto".to_string(), model=None, *, repair=true, in_reasoning=false, id_seed=None, coerce=true, validate=true))]
fn parse(
    py: Python<'_>,
    text: &Bound<'_, PyString>,
    tools: Option<&Bound<'_, PyAny>>,
    format: Option<String>,
    model: Option<String>,
    repair: bool,
    in_reasoning: bool,
    id_seed: Option<u64>,
    coerce: bool,
    validate: bool,
) -> PyResult<ParseResult> {
    let opts = options(tools, format, model, repair, in_reasoning, id_seed, coerce, validate)?;
    let text = utf8(text)?;
    let text: &str = &text;
    let run = || guarded("parse", || core::parse(text, opts).map_err(map_parse_error));
    let r = if text.len() >= RELEASE_GIL_ABOVE {
        py.allow_threads(run)
    } else {
        run()
    };
    Ok(r?.into())
}

/// A repaired JSON text: `json` is strict, compact RFC 8259 JSON; `diagnostics` say what
/// was mended.
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq)]
struct RepairResult {
    #[pyo3(get)]
    json: String,
    diagnostics: Vec<Diagnostic>,
}

#[pymethods]
impl RepairResult {
    #[getter]
    fn diagnostics(&self) -> Vec<Diagnostic> {
        self.diagnostics.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "RepairResult(json={:?}, diagnostics={})",
            self.json,
            self.diagnostics.len()
        )
    }
}

/// Mends model-written JSON into strict JSON (raises `ToolmendError` when the text holds no
/// JSON value at all).
#[pyfunction]
fn repair_json(py: Python<'_>, text: &Bound<'_, PyString>) -> PyResult<RepairResult> {
    let text = utf8(text)?;
    let text: &str = &text;
    let run = || {
        guarded("repair_json", || {
            core::repair_json(text).map_err(|e| ToolmendError::new_err(e.to_string()))
        })
    };
    let r = if text.len() >= RELEASE_GIL_ABOVE {
        py.allow_threads(run)
    } else {
        run()
    }?;
    Ok(RepairResult {
        json: r.json,
        diagnostics: r.diagnostics.into_iter().map(Diagnostic::from).collect(),
    })
}

/// Arguments coerced to a tool's schema: `arguments` is compact JSON text.
#[pyclass(module = "toolmend._core", frozen, eq)]
#[derive(PartialEq)]
struct CoerceResult {
    #[pyo3(get)]
    arguments: String,
    diagnostics: Vec<Diagnostic>,
}

#[pymethods]
impl CoerceResult {
    #[getter]
    fn diagnostics(&self) -> Vec<Diagnostic> {
        self.diagnostics.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "CoerceResult(arguments={:?}, diagnostics={})",
            self.arguments,
            self.diagnostics.len()
        )
    }
}

/// Coerces arguments (a JSON object text or a dict) to a JSON Schema (a dict): `"42"` to 42
/// where an integer is wanted, and so on; never against the schema.
#[pyfunction]
fn coerce(arguments: &Bound<'_, PyAny>, schema: &Bound<'_, PyAny>) -> PyResult<CoerceResult> {
    let value: Value = if let Ok(text) = arguments.extract::<String>() {
        serde_json::from_str(&text).map_err(|e| ToolmendError::new_err(format!("arguments are not valid JSON: {e}")))?
    } else {
        to_json(arguments, 0).map_err(|e| ToolmendError::new_err(format!("arguments: {e}")))?
    };
    let schema = to_json(schema, 0).map_err(|e| ToolmendError::new_err(format!("schema: {e}")))?;
    guarded("coerce", || {
        let (v, repairs) = core::schema::coerce(&value, &schema);
        Ok(CoerceResult {
            arguments: v.to_string(),
            diagnostics: repairs.into_iter().map(Diagnostic::from).collect(),
        })
    })
}

/// The supported formats as `(name, model families)` pairs.
#[pyfunction]
fn formats() -> Vec<(&'static str, &'static str)> {
    core::formats::FORMATS.iter().map(|f| (f.name, f.models)).collect()
}

/// The format a model id suggests, if the model table knows it.
#[pyfunction]
fn format_for_model(model: &str) -> Option<&'static str> {
    core::formats::for_model(model).map(|f| f.name)
}

/// `METH_FASTCALL | METH_KEYWORDS`: arguments as a C array, no tuple per call. Part of the
/// stable ABI since Python 3.10 (the values are those of every CPython since 3.7).
const METH_FASTCALL_KEYWORDS: std::os::raw::c_int = 0x0080 | 0x0002;

/// The C signature of a `METH_FASTCALL | METH_KEYWORDS` function.
type FastCall = unsafe extern "C" fn(
    *mut pyo3::ffi::PyObject,
    *const *mut pyo3::ffi::PyObject,
    pyo3::ffi::Py_ssize_t,
    *mut pyo3::ffi::PyObject,
) -> *mut pyo3::ffi::PyObject;

/// The PyO3-generated methods replaced by [`install_fastcall`], called for anything but the
/// common shape (one `str`, positional or by its name), so that error messages stay PyO3's.
static PYO3_FEED: pyo3::sync::GILOnceCell<Py<PyAny>> = pyo3::sync::GILOnceCell::new();
static PYO3_CALL_ARGS: pyo3::sync::GILOnceCell<Py<PyAny>> = pyo3::sync::GILOnceCell::new();

/// Per-delta methods without PyO3's argument tuple. The wheel is built for the stable ABI
/// of Python 3.9, where PyO3 must declare every method `METH_VARARGS` (a tuple per call,
/// ~30 ns of a ~250 ns delta); on 3.10 and later, where `METH_FASTCALL` is in the stable
/// ABI, the module swaps `StreamParser.feed` and `.call_args` for `METH_FASTCALL` methods
/// that take one `str` (positional or by its name) directly and hand every other call to
/// PyO3's method.
fn install_fastcall(py: Python<'_>) -> PyResult<()> {
    if py.version_info() < (3, 10) {
        return Ok(());
    }
    let ty = py.get_type::<StreamParser>();
    install_method(&ty, "feed", feed_fastcall, &PYO3_FEED)?;
    install_method(&ty, "call_args", call_args_fastcall, &PYO3_CALL_ARGS)
}

fn install_method(
    ty: &Bound<'_, pyo3::types::PyType>,
    name: &'static str,
    call: FastCall,
    pyo3_method: &'static pyo3::sync::GILOnceCell<Py<PyAny>>,
) -> PyResult<()> {
    let py = ty.py();
    let original = ty.getattr(name)?;
    // The same `__doc__` and `__text_signature__` as PyO3's method (inspect.signature reads
    // the signature line the interpreter parses out of `ml_doc`).
    let signature: Option<String> = original.getattr("__text_signature__")?.extract()?;
    let doc: Option<String> = original.getattr("__doc__")?.extract()?;
    let ml_doc = match signature {
        Some(sig) => format!("{name}{sig}\n--\n\n{}", doc.unwrap_or_default()),
        None => doc.unwrap_or_default(),
    };
    let ml_name = std::ffi::CString::new(name).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let ml_doc = std::ffi::CString::new(ml_doc).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let _ = pyo3_method.set(py, original.unbind());
    // The definition must outlive the type: it is made once per process and never freed.
    let def = Box::leak(Box::new(pyo3::ffi::PyMethodDef {
        ml_name: ml_name.into_raw(),
        // SAFETY: CPython calls `ml_meth` with the signature its `ml_flags` declare;
        // METH_FASTCALL | METH_KEYWORDS is `FastCall`'s (C code casts the same way).
        ml_meth: pyo3::ffi::PyMethodDefPointer {
            PyCFunction: unsafe { std::mem::transmute::<FastCall, pyo3::ffi::PyCFunction>(call) },
        },
        ml_flags: METH_FASTCALL_KEYWORDS,
        ml_doc: ml_doc.into_raw(),
    }));
    // SAFETY: `ty` is a live type object and `def` lives for the rest of the process.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyDescr_NewMethod(ty.as_ptr().cast::<pyo3::ffi::PyTypeObject>(), def),
        )?
    };
    ty.setattr(name, descr)
}

/// Calls PyO3's own method with the fastcall arguments (keywords, wrong types, wrong counts).
///
/// # Safety
/// `args` holds `nargs` positional arguments followed by one value per name in `kwnames`
/// (a tuple or NULL), as CPython passes them to a `METH_FASTCALL | METH_KEYWORDS` function.
unsafe fn call_pyo3_method(
    py: Python<'_>,
    method: &pyo3::sync::GILOnceCell<Py<PyAny>>,
    slf: *mut pyo3::ffi::PyObject,
    args: *const *mut pyo3::ffi::PyObject,
    nargs: pyo3::ffi::Py_ssize_t,
    kwnames: *mut pyo3::ffi::PyObject,
) -> PyResult<*mut pyo3::ffi::PyObject> {
    let method = method
        .get(py)
        .ok_or_else(|| PyValueError::new_err("toolmend: method table not initialised"))?;
    let nargs = usize::try_from(nargs).unwrap_or(0);
    let names = if kwnames.is_null() {
        None
    } else {
        Some(Bound::from_borrowed_ptr(py, kwnames).downcast_into::<PyTuple>()?)
    };
    let arg = |i: usize| Bound::from_borrowed_ptr(py, *args.add(i));
    let mut positional = vec![Bound::from_borrowed_ptr(py, slf)];
    positional.extend((0..nargs).map(arg));
    let kwargs = match names {
        Some(names) if !names.is_empty() => {
            let kwargs = PyDict::new(py);
            for (k, name) in names.iter().enumerate() {
                kwargs.set_item(name, arg(nargs + k))?;
            }
            Some(kwargs)
        }
        _ => None,
    };
    Ok(method
        .bind(py)
        .call(PyTuple::new(py, positional)?, kwargs.as_ref())?
        .into_ptr())
}

/// The `StreamParser` type object, looked up once per process.
static STREAM_PARSER_TYPE: pyo3::sync::GILOnceCell<Py<pyo3::types::PyType>> = pyo3::sync::GILOnceCell::new();

fn stream_parser_type(py: Python<'_>) -> &Py<pyo3::types::PyType> {
    STREAM_PARSER_TYPE.get_or_init(py, || py.get_type::<StreamParser>().unbind())
}

/// `obj` as a `StreamParser` when it is one. The class cannot be subclassed, so comparing
/// the type pointer is the whole check (PyO3's downcast looks the type object up first).
fn as_stream_parser<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, StreamParser>> {
    let py = obj.py();
    let ty = stream_parser_type(py);
    // SAFETY: `obj` is a live object; its type is exactly StreamParser's type object.
    unsafe {
        (pyo3::ffi::Py_TYPE(obj.as_ptr()) == ty.as_ptr().cast::<pyo3::ffi::PyTypeObject>())
            .then(|| obj.downcast_unchecked::<StreamParser>())
    }
}

macro_rules! fastcall_method {
    ($c_fn:ident, $body:ident, $pyo3_method:ident, $method:ident, $param:literal) => {
        unsafe extern "C" fn $c_fn(
            slf: *mut pyo3::ffi::PyObject,
            args: *const *mut pyo3::ffi::PyObject,
            nargs: pyo3::ffi::Py_ssize_t,
            kwnames: *mut pyo3::ffi::PyObject,
        ) -> *mut pyo3::ffi::PyObject {
            // SAFETY: called by CPython with the GIL held and METH_FASTCALL arguments.
            unsafe { pyo3::impl_::trampoline::fastcall_with_keywords(slf, args, nargs, kwnames, $body) }
        }

        /// # Safety
        /// CPython's METH_FASTCALL | METH_KEYWORDS arguments, with the GIL held.
        unsafe fn $body(
            py: Python<'_>,
            slf: *mut pyo3::ffi::PyObject,
            args: *const *mut pyo3::ffi::PyObject,
            nargs: pyo3::ffi::Py_ssize_t,
            kwnames: *mut pyo3::ffi::PyObject,
        ) -> PyResult<*mut pyo3::ffi::PyObject> {
            // One argument, positional or named: `feed("…")` or `feed(delta="…")`.
            let one = if kwnames.is_null() {
                nargs == 1
            } else {
                nargs == 0
                    && Bound::from_borrowed_ptr(py, kwnames)
                        .downcast::<PyTuple>()
                        .is_ok_and(|names| {
                            names.len() == 1 && names.get_item(0).is_ok_and(|n| n.eq($param).unwrap_or(false))
                        })
            };
            if one {
                let this = Bound::from_borrowed_ptr(py, slf);
                let arg = Bound::from_borrowed_ptr(py, *args);
                if let (Some(parser), Ok(text)) = (as_stream_parser(&this), arg.downcast::<PyString>()) {
                    return parser.try_borrow_mut()?.$method(text).map(Bound::into_ptr);
                }
            }
            call_pyo3_method(py, &$pyo3_method, slf, args, nargs, kwnames)
        }
    };
}

fastcall_method!(feed_fastcall, feed_fastcall_body, PYO3_FEED, feed, "delta");
fastcall_method!(
    call_args_fastcall,
    call_args_fastcall_body,
    PYO3_CALL_ARGS,
    call_args,
    "fragment"
);

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Event>()?;
    m.add_class::<ToolCall>()?;
    m.add_class::<Diagnostic>()?;
    m.add_class::<ParseResult>()?;
    m.add_class::<StreamParser>()?;
    m.add_class::<Tools>()?;
    m.add_function(wrap_pyfunction!(parse, m)?)?;
    m.add_function(wrap_pyfunction!(formats, m)?)?;
    m.add_function(wrap_pyfunction!(repair_json, m)?)?;
    m.add_class::<RepairResult>()?;
    m.add_function(wrap_pyfunction!(coerce, m)?)?;
    m.add_class::<CoerceResult>()?;
    m.add_function(wrap_pyfunction!(format_for_model, m)?)?;
    m.add("ToolmendError", m.py().get_type::<ToolmendError>())?;
    m.add("UnknownFormatError", m.py().get_type::<UnknownFormatError>())?;
    m.add("InvalidToolsError", m.py().get_type::<InvalidToolsError>())?;
    m.add("ParserFinishedError", m.py().get_type::<ParserFinishedError>())?;
    // The per-delta type objects are looked up at import (a process forked after it then
    // has nothing to write for them).
    let py = m.py();
    event_type(py);
    stream_parser_type(py);
    install_fastcall(py)
}
