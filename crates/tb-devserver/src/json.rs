//! Lenient JSON as ThingsBoard reads it (Gson `JsonParser` in lenient mode) and compact JSON as
//! Gson writes it.
//!
//! spec: thingsboard-mqtt.md, 2.12. Numbers keep their source text ([`JVal::Num`]) because the
//! typing rules look at it (`42.0` is a double, `42` a long, 17 fractional digits a string).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Gson's default nesting limit; deeper input is a syntax error (and cannot blow our stack).
const MAX_DEPTH: usize = 255;

/// A parsed JSON value. Object members keep source order; a repeated key replaces the earlier
/// value in place (Gson's `LinkedTreeMap`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JVal {
    Null,
    Bool(bool),
    /// A number literal, as written.
    Num(NumText),
    Str(String),
    Arr(Vec<JVal>),
    Obj(Vec<(String, JVal)>),
}

/// The text of a number literal. Design: kept inline up to [`NumText::INLINE`] bytes (every
/// long, and the doubles devices send), so parsing a number allocates nothing; telemetry is
/// mostly numbers.
#[derive(Clone)]
pub(crate) struct NumText(NumRepr);

#[derive(Clone)]
enum NumRepr {
    Inline { len: u8, buf: [u8; NumText::INLINE] },
    Heap(Box<str>),
}

impl NumText {
    /// Longest text kept inline (keeps [`JVal`] at 32 bytes).
    const INLINE: usize = 22;

    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // Only ever filled from a `&str` (`From`), whole, so it is UTF-8.
            NumRepr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or("")
            }
            NumRepr::Heap(s) => s,
        }
    }
}

impl From<&str> for NumText {
    fn from(s: &str) -> NumText {
        if s.len() <= NumText::INLINE {
            let mut buf = [0u8; NumText::INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            NumText(NumRepr::Inline {
                len: s.len() as u8,
                buf,
            })
        } else {
            NumText(NumRepr::Heap(s.into()))
        }
    }
}

impl std::ops::Deref for NumText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for NumText {
    fn eq(&self, other: &NumText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for NumText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl JVal {
    /// Member `key` of an object (`None` for absent keys and non-objects).
    pub(crate) fn get(&self, key: &str) -> Option<&JVal> {
        match self {
            JVal::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Gson `JsonElement.getAsString()`: primitives as text, a one-element array as its
    /// element, anything else fails.
    pub(crate) fn as_gson_string(&self) -> Option<String> {
        match self {
            JVal::Str(s) => Some(s.clone()),
            JVal::Num(s) => Some(s.to_string()),
            JVal::Bool(b) => Some(b.to_string()),
            JVal::Arr(items) if items.len() == 1 => items[0].as_gson_string(),
            _ => None,
        }
    }

    /// Gson `JsonElement.getAsLong()` (numbers truncate, strings must parse as a long).
    pub(crate) fn as_gson_long(&self) -> Option<i64> {
        match self {
            JVal::Num(s) => s.parse::<i64>().ok().or_else(|| {
                let d: f64 = s.parse().ok()?;
                if d.is_finite() {
                    Some(d as i64)
                } else {
                    None
                }
            }),
            JVal::Str(s) => s.parse::<i64>().ok(),
            JVal::Arr(items) if items.len() == 1 => items[0].as_gson_long(),
            _ => None,
        }
    }

    /// Compact JSON text, as Gson's `JsonElement.toString()` writes it.
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            JVal::Null => out.push_str("null"),
            JVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JVal::Num(n) => out.push_str(n),
            JVal::Str(s) => write_json_string(out, s),
            JVal::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            JVal::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, k);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string literal the way Gson does (no HTML escaping).
pub(crate) fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `bytes` as text, invalid UTF-8 replaced (as Java decodes). Design: checked with
/// `str::from_utf8` first, whose ASCII fast path is several times quicker than the lossy
/// decoder's on the valid payloads devices send.
pub(crate) fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Why a payload is not (lenient) JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError(pub(crate) String);

/// Parses `input` as Gson's lenient `JsonParser.parseString` does: an empty document is
/// `null`; data after the top-level value is an error.
pub(crate) fn parse_lenient(input: &str) -> Result<JVal, JsonError> {
    let mut p = Parser {
        s: input,
        b: input.as_bytes(),
        pos: 0,
    };
    p.skip_ws()?;
    if p.pos >= p.b.len() {
        return Ok(JVal::Null);
    }
    let value = p.value(0)?;
    if value != JVal::Null {
        p.skip_ws()?;
        if p.pos < p.b.len() {
            return Err(p.err("JSON document was not fully consumed"));
        }
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> JsonError {
        JsonError(format!("{msg} at offset {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Skips whitespace and the comments lenient Gson allows (`//`, `#`, `/* */`).
    fn skip_ws(&mut self) -> Result<(), JsonError> {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => self.skip_line(),
                b'/' => match self.b.get(self.pos + 1) {
                    Some(b'/') => self.skip_line(),
                    Some(b'*') => {
                        let rest = &self.s[self.pos + 2..];
                        match rest.find("*/") {
                            Some(i) => self.pos += 2 + i + 2,
                            None => return Err(self.err("Unterminated comment")),
                        }
                    }
                    _ => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\n' || c == b'\r' {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<JVal, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("Nesting limit exceeded"));
        }
        match self.peek() {
            None => Err(self.err("End of input")),
            Some(b'{') => {
                self.pos += 1;
                self.object(depth)
            }
            Some(b'[') => {
                self.pos += 1;
                self.array(depth)
            }
            Some(q @ (b'"' | b'\'')) => {
                self.pos += 1;
                Ok(JVal::Str(self.string(q)?))
            }
            Some(_) => {
                let lit = self.literal();
                if lit.is_empty() {
                    return Err(self.err("Expected value"));
                }
                Ok(classify_literal(lit))
            }
        }
    }

    /// An unquoted literal: runs up to a character Gson treats as a delimiter.
    fn literal(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                b'/' | b'\\' | b';' | b'#' | b'=' | b'{' | b'}' | b'[' | b']' | b':' | b','
                | b' ' | b'\t' | b'\x0c' | b'\r' | b'\n' => break,
                _ => self.pos += 1,
            }
        }
        &self.s[start..self.pos]
    }

    fn string(&mut self, quote: u8) -> Result<String, JsonError> {
        let mut out = String::new();
        loop {
            // Design: a byte scan; the quote and `\\` are ASCII, so they never occur inside
            // a multi-byte character and `i` is a character boundary.
            let Some(i) = self.b[self.pos..]
                .iter()
                .position(|&c| c == quote || c == b'\\')
            else {
                return Err(self.err("Unterminated string"));
            };
            out.push_str(&self.s[self.pos..self.pos + i]);
            self.pos += i;
            let c = self.b[self.pos];
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            // Backslash escape.
            let Some(e) = self.peek() else {
                return Err(self.err("Unterminated escape sequence"));
            };
            self.pos += 1;
            match e {
                b'u' => {
                    let unit = self.hex4()?;
                    if (0xD800..0xDC00).contains(&unit)
                        && self.b.get(self.pos) == Some(&b'\\')
                        && self.b.get(self.pos + 1) == Some(&b'u')
                    {
                        let save = self.pos;
                        self.pos += 2;
                        let low = self.hex4()?;
                        if (0xDC00..0xE000).contains(&low) {
                            let cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        } else {
                            out.push('\u{FFFD}');
                            self.pos = save;
                        }
                    } else {
                        out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
                    }
                }
                b't' => out.push('\t'),
                b'b' => out.push('\u{8}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b'f' => out.push('\u{c}'),
                b'\n' => out.push('\n'),
                b'\'' | b'"' | b'\\' | b'/' => out.push(e as char),
                _ => return Err(self.err("Invalid escape sequence")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(digits) = self.s.get(self.pos..self.pos + 4) else {
            return Err(self.err("Unterminated escape sequence"));
        };
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.err("Malformed \\u escape"))?;
        if digits.starts_with('+') || digits.starts_with('-') {
            return Err(self.err("Malformed \\u escape"));
        }
        self.pos += 4;
        Ok(v)
    }

    fn object(&mut self, depth: usize) -> Result<JVal, JsonError> {
        self.skip_ws()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(JVal::Obj(Vec::new()));
        }
        // Design: room for a typical telemetry object at once (one allocation, not three
        // growing to ten members).
        let mut members: Vec<(String, JVal)> = Vec::with_capacity(16);
        loop {
            self.skip_ws()?;
            let name = match self.peek() {
                Some(q @ (b'"' | b'\'')) => {
                    self.pos += 1;
                    self.string(q)?
                }
                Some(_) => {
                    let lit = self.literal();
                    if lit.is_empty() {
                        return Err(self.err("Expected name"));
                    }
                    lit.to_string()
                }
                None => return Err(self.err("End of input")),
            };
            self.skip_ws()?;
            match self.peek() {
                Some(b':') => self.pos += 1,
                Some(b'=') => {
                    self.pos += 1;
                    if self.peek() == Some(b'>') {
                        self.pos += 1;
                    }
                }
                _ => return Err(self.err("Expected ':'")),
            }
            self.skip_ws()?;
            let value = self.value(depth + 1)?;
            match members.iter_mut().find(|(k, _)| same_key(k, &name)) {
                Some(slot) => slot.1 = value,
                None => members.push((name, value)),
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b',' | b';') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(JVal::Obj(members));
                }
                _ => return Err(self.err("Unterminated object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<JVal, JsonError> {
        let mut items = Vec::new();
        let mut first = true;
        loop {
            self.skip_ws()?;
            match self.peek() {
                Some(b']') if first => {
                    self.pos += 1;
                    return Ok(JVal::Arr(items));
                }
                // Lenient Gson reads an omitted element as null: `[1,,2]`, `[1,]`.
                Some(b',' | b';' | b']') => items.push(JVal::Null),
                _ => items.push(self.value(depth + 1)?),
            }
            first = false;
            self.skip_ws()?;
            match self.peek() {
                Some(b',' | b';') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(JVal::Arr(items));
                }
                _ => return Err(self.err("Unterminated array")),
            }
        }
    }
}

/// `a == b`. Design: every member name is compared with each earlier one (repeats replace in
/// place), so names of one length (`k0`..`k9`) would cost a `memcmp` call per pair; the last
/// byte tells most of them apart first.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().last() == b.as_bytes().last() && a == b
}

fn classify_literal(lit: &str) -> JVal {
    if keyword(lit, "true") {
        JVal::Bool(true)
    } else if keyword(lit, "false") {
        JVal::Bool(false)
    } else if keyword(lit, "null") {
        JVal::Null
    } else if is_json_number(lit) {
        JVal::Num(lit.into())
    } else {
        JVal::Str(lit.to_string())
    }
}

/// Gson matches keywords per character in lower or upper case (`True`, `NULL`).
fn keyword(lit: &str, word: &str) -> bool {
    lit.len() == word.len()
        && lit
            .bytes()
            .zip(word.bytes())
            .all(|(a, b)| a == b || a == b.to_ascii_uppercase())
}

/// Strict JSON number grammar (no leading zeros), as Gson's `peekNumber` accepts it.
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == f {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// `Double.toString` as Java prints it (`42.0`, `1.0E10`, `1.0E-4`), which is how ThingsBoard
/// writes doubles back to devices.
pub(crate) fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Shortest round-trip digits, from Rust's formatter: "d.ddde[-]x".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if d < 0.0 {
        out.push('-');
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let e = exp as usize;
            if digits.len() > e + 1 {
                out.push_str(&digits[..=e]);
                out.push('.');
                out.push_str(&digits[e + 1..]);
            } else {
                out.push_str(&digits);
                out.push_str(&"0".repeat(e + 1 - digits.len()));
                out.push_str(".0");
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        let _ = write!(out, "E{exp}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> JVal {
        parse_lenient(s).unwrap()
    }

    #[test]
    fn numbers_keep_their_text_inline_or_not() {
        for text in [
            "0",
            "-12.5",
            "1234567890123456789012",
            "12345678901234567890123",
            "1e400",
        ] {
            assert_eq!(p(text), JVal::Num(text.into()));
            assert_eq!(p(text).to_json(), text);
        }
        assert_eq!(std::mem::size_of::<JVal>(), 32);
    }

    #[test]
    fn lenient_forms_parse() {
        assert_eq!(
            p("{temperature:25}"),
            JVal::Obj(vec![("temperature".into(), JVal::Num("25".into()))])
        );
        assert_eq!(
            p("{'a':'b' /* c */, # x\n c = hot}"),
            JVal::Obj(vec![
                ("a".into(), JVal::Str("b".into())),
                ("c".into(), JVal::Str("hot".into()))
            ])
        );
        assert_eq!(p(""), JVal::Null);
        assert_eq!(p("  "), JVal::Null);
        assert_eq!(
            p("[1,]"),
            JVal::Arr(vec![JVal::Num("1".into()), JVal::Null])
        );
        assert_eq!(p("007"), JVal::Str("007".into()));
        assert_eq!(p("True"), JVal::Bool(true));
    }

    #[test]
    fn trailing_data_and_garbage_fail() {
        assert!(parse_lenient("{} {}").is_err());
        assert!(parse_lenient("{\"a\":1,}").is_err());
        assert!(parse_lenient("{\"a\"").is_err());
        assert!(parse_lenient("\"abc").is_err());
        assert!(parse_lenient(&"[".repeat(100_000)).is_err());
        assert!(parse_lenient("{\"a\":}").is_err());
    }

    #[test]
    fn duplicate_key_replaces_in_place() {
        assert_eq!(p("{a:1,b:2,a:3}").to_json(), "{\"a\":3,\"b\":2}");
    }

    #[test]
    fn gson_string_escapes() {
        assert_eq!(
            JVal::Str("a\"b\\c\n\u{1}<".into()).to_json(),
            "\"a\\\"b\\\\c\\n\\u0001<\""
        );
        assert_eq!(p("\"\\ud83d\\ude00\"").to_json(), "\"😀\"");
    }

    #[test]
    fn java_double_format() {
        assert_eq!(java_double(42.0), "42.0");
        assert_eq!(java_double(1.5), "1.5");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(9999999.0), "9999999.0");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(-21.25), "-21.25");
        assert_eq!(java_double(123456.789), "123456.789");
        assert_eq!(java_double(1.2345e-5), "1.2345E-5");
        assert_eq!(java_double(100.0), "100.0");
    }
}
