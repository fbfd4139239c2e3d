//! ThingsBoard's key/value typing of JSON payloads. spec: thingsboard-mqtt.md, 2.12.

use std::borrow::Cow;

use crate::json::{java_double, parse_lenient, utf8_lossy, write_json_string, JVal};

/// A stored telemetry or attribute value, typed as ThingsBoard types it.
#[derive(Debug, Clone, PartialEq)]
pub enum TbValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integral number that fits in 64 bits (`42`, `1e3`, `"007"`).
    Long(i64),
    /// A number written with a `.` (`42.0`, `"1.50"`) or a non-integral one (`1e-3`).
    Double(f64),
    /// Text, including numbers too large or too precise to keep as numbers.
    String(String),
    /// A nested object or array, as compact JSON text.
    Json(String),
}

impl TbValue {
    /// The value as ThingsBoard writes it back to a device (Gson: `42.0`, `1.0E10`, strings
    /// quoted, JSON values inline).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            TbValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            TbValue::Long(v) => out.push_str(&v.to_string()),
            TbValue::Double(d) => out.push_str(&java_double(*d)),
            TbValue::String(s) => write_json_string(out, s),
            TbValue::Json(j) => out.push_str(j),
        }
    }

    /// ThingsBoard's name for the type: `BOOLEAN`, `LONG`, `DOUBLE`, `STRING` or `JSON`.
    pub fn type_name(&self) -> &'static str {
        match self {
            TbValue::Bool(_) => "BOOLEAN",
            TbValue::Long(_) => "LONG",
            TbValue::Double(_) => "DOUBLE",
            TbValue::String(_) => "STRING",
            TbValue::Json(_) => "JSON",
        }
    }
}

/// Options of the typing rules (`transport.json.*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypingOptions {
    pub(crate) type_cast: bool,
    pub(crate) max_string_len: usize,
}

/// How a payload failed: the two classes of 2.9 differ on MQTT 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// `JsonSyntaxException` / `IllegalStateException`: a validation failure.
    Validation(String),
    /// Any other runtime exception (e.g. non-numeric `ts`).
    Unchecked(String),
}

impl PayloadError {
    pub(crate) fn message(&self) -> &str {
        match self {
            PayloadError::Validation(m) | PayloadError::Unchecked(m) => m,
        }
    }
}

/// Parses a payload as lenient JSON; bytes that are not UTF-8 are replaced, as Java does.
pub(crate) fn parse_payload(payload: &[u8]) -> Result<JVal, PayloadError> {
    let text = utf8_lossy(payload);
    parse_lenient(&text).map_err(|e| PayloadError::Validation(e.0))
}

/// Types the members of a JSON object (`JsonConverter.parseProtoValues`): `null` members are
/// dropped, nested objects/arrays become [`TbValue::Json`].
pub(crate) fn type_object(
    members: &[(String, JVal)],
    opts: TypingOptions,
) -> Result<Vec<(String, TbValue)>, PayloadError> {
    let mut out = Vec::with_capacity(members.len());
    for (key, value) in members {
        if let Some(typed) = type_value(key, Cow::Borrowed(value), opts)? {
            out.push((key.clone(), typed));
        }
    }
    Ok(out)
}

/// [`type_object`] of members the caller owns: keys and strings are moved, not copied (the
/// telemetry ingest path, one allocation fewer per key and per string value).
pub(crate) fn type_object_owned(
    members: Vec<(String, JVal)>,
    opts: TypingOptions,
) -> Result<Vec<(String, TbValue)>, PayloadError> {
    let mut out = Vec::with_capacity(members.len());
    for (key, value) in members {
        if let Some(typed) = type_value(&key, Cow::Owned(value), opts)? {
            out.push((key, typed));
        }
    }
    Ok(out)
}

/// One member's value typed; `None` for `null` (dropped).
fn type_value(
    key: &str,
    value: Cow<'_, JVal>,
    opts: TypingOptions,
) -> Result<Option<TbValue>, PayloadError> {
    let typed = match &*value {
        JVal::Null => return Ok(None),
        JVal::Bool(b) => TbValue::Bool(*b),
        JVal::Num(n) => numeric(n, opts.type_cast).map_err(PayloadError::Unchecked)?,
        JVal::Str(s) => {
            if opts.max_string_len > 0 && s.chars().count() > opts.max_string_len {
                return Err(PayloadError::Validation(format!(
                    "string value of '{key}' is longer than {}",
                    opts.max_string_len
                )));
            }
            if opts.type_cast && is_parsable(s) {
                if let Ok(v) = numeric(s, true) {
                    return Ok(Some(v));
                }
            }
            match value {
                Cow::Owned(JVal::Str(s)) => TbValue::String(s),
                _ => TbValue::String(s.clone()),
            }
        }
        JVal::Arr(_) | JVal::Obj(_) => TbValue::Json(value.to_json()),
    };
    Ok(Some(typed))
}

/// commons-lang3 `NumberUtils.isParsable`: optional leading `-`, ASCII digits, at most one
/// `.`, not ending in `.`.
pub(crate) fn is_parsable(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    if body.is_empty() || s.ends_with('.') {
        return false;
    }
    let mut points = 0;
    for c in body.chars() {
        if c == '.' {
            points += 1;
            if points > 1 {
                return false;
            }
        } else if !c.is_ascii_digit() {
            return false;
        }
    }
    true
}

/// A decimal as `java.math.BigDecimal` holds it: sign, unscaled digits, scale.
struct Decimal {
    negative: bool,
    /// Unscaled digits without leading zeros; empty for zero.
    digits: String,
    scale: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        // BigDecimal keeps the exponent in an int.
        if exp.unsigned_abs() > i32::MAX as u64 {
            return None;
        }
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let all = format!("{int_part}{frac_part}");
        let digits = all.trim_start_matches('0').to_string();
        Some(Decimal {
            negative,
            digits,
            scale: frac_part.len() as i64 - exp,
        })
    }

    fn stripped_scale(&self) -> i64 {
        if self.digits.is_empty() {
            return 0;
        }
        let trailing = self.digits.len() - self.digits.trim_end_matches('0').len();
        self.scale - trailing as i64
    }

    fn long_exact(&self) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        let trailing = self.digits.len() - self.digits.trim_end_matches('0').len();
        let significant = &self.digits[..self.digits.len() - trailing];
        let zeros = -(self.scale - trailing as i64);
        if zeros < 0 || significant.len() as i64 + zeros > 20 {
            return None;
        }
        let mut v: i128 = significant.parse().ok()?;
        for _ in 0..zeros {
            v = v.checked_mul(10)?;
        }
        if self.negative {
            v = -v;
        }
        i64::try_from(v).ok()
    }

    /// `BigDecimal.toPlainString()`, or `None` when it would be longer than
    /// [`MAX_PLAIN_LEN`]: `1e2000000000` is 20 bytes on the wire and 2 GB written out.
    fn to_plain_string(&self) -> Option<String> {
        let len = if self.scale <= 0 {
            (self.digits.len() as u64).saturating_add(self.scale.unsigned_abs())
        } else {
            (self.digits.len() as u64).max(self.scale as u64 + 1) + 1
        };
        if len > MAX_PLAIN_LEN {
            return None;
        }
        let mut out = String::new();
        if self.digits.is_empty() {
            out.push('0');
            if self.scale > 0 {
                out.push('.');
                out.push_str(&"0".repeat(self.scale as usize));
            }
            return Some(out);
        }
        if self.negative {
            out.push('-');
        }
        if self.scale <= 0 {
            out.push_str(&self.digits);
            out.push_str(&"0".repeat((-self.scale) as usize));
        } else {
            let scale = self.scale as usize;
            let padded = if self.digits.len() <= scale {
                format!(
                    "{}{}",
                    "0".repeat(scale + 1 - self.digits.len()),
                    self.digits
                )
            } else {
                self.digits.clone()
            };
            let split = padded.len() - scale;
            out.push_str(&padded[..split]);
            out.push('.');
            out.push_str(&padded[split..]);
        }
        Some(out)
    }
}

/// Longest number the typing writes out as a string (the default `max_payload_size`); a
/// longer one is refused as an unchecked error instead of allocating its text (found by the
/// `json` fuzz target: `{"v":1e1478690889}` asked for 1.4 GB).
const MAX_PLAIN_LEN: u64 = 65_536;

/// `JsonConverter.buildNumericKeyValueProto`.
fn numeric(text: &str, type_cast: bool) -> Result<TbValue, String> {
    if let Some(v) = plain_numeric(text) {
        return Ok(v);
    }
    let bd = Decimal::parse(text).ok_or_else(|| format!("cannot parse number {text}"))?;
    let simple_double = text.contains('.') && !text.contains(['e', 'E']);
    if bd.stripped_scale() <= 0 && !simple_double {
        match bd.long_exact() {
            Some(v) => Ok(TbValue::Long(v)),
            None if type_cast => plain(&bd, text),
            None => Err("Big integer values are not supported!".into()),
        }
    } else if bd.scale <= 16 {
        let d: f64 = text
            .parse()
            .map_err(|_| format!("cannot parse number {text}"))?;
        Ok(TbValue::Double(d))
    } else if type_cast {
        plain(&bd, text)
    } else {
        Err("Big integer values are not supported!".into())
    }
}

/// [`numeric`] of the shapes devices send nearly always, without [`Decimal`]'s allocations:
/// `-?[0-9]{1,18}` is a long (18 digits always fit), `-?[0-9]+.[0-9]{1,16}` a double (a `.`
/// and no exponent, scale at most 16). `None` for anything else (the full rules decide).
fn plain_numeric(text: &str) -> Option<TbValue> {
    let b = text.as_bytes();
    let unsigned = b.strip_prefix(b"-").unwrap_or(b);
    let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    match unsigned.iter().position(|&c| c == b'.') {
        None if unsigned.len() <= 18 && digits(unsigned) => text.parse().ok().map(TbValue::Long),
        Some(i) if digits(&unsigned[..i]) && unsigned.len() - i - 1 <= 16 => {
            if digits(&unsigned[i + 1..]) {
                text.parse().ok().map(TbValue::Double)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A number kept as its plain text, unless that text is too long (see [`MAX_PLAIN_LEN`]).
fn plain(bd: &Decimal, text: &str) -> Result<TbValue, String> {
    bd.to_plain_string().map(TbValue::String).ok_or_else(|| {
        let shown: String = text.chars().take(40).collect();
        format!("number {shown} is too large to write out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(json: &str) -> Vec<(String, TbValue)> {
        let JVal::Obj(m) = parse_lenient(json).unwrap() else {
            panic!("not an object")
        };
        type_object(
            &m,
            TypingOptions {
                type_cast: true,
                max_string_len: 0,
            },
        )
        .unwrap()
    }

    fn one(json_value: &str) -> TbValue {
        typed(&format!("{{\"k\":{json_value}}}")).remove(0).1
    }

    #[test]
    fn numbers_are_typed_as_thingsboard_does() {
        assert_eq!(one("42"), TbValue::Long(42));
        assert_eq!(one("42.0"), TbValue::Double(42.0));
        assert_eq!(one("1e3"), TbValue::Long(1000));
        assert_eq!(one("1.5e2"), TbValue::Long(150));
        assert_eq!(one("1e-3"), TbValue::Double(0.001));
        assert_eq!(one("-7"), TbValue::Long(-7));
        assert_eq!(
            one("12345678901234567890"),
            TbValue::String("12345678901234567890".into())
        );
        assert_eq!(
            one("0.12345678901234567"),
            TbValue::String("0.12345678901234567".into())
        );
        assert_eq!(one("1e20"), TbValue::String("100000000000000000000".into()));
    }

    /// Regression (fuzz target `json`): a 20-byte number must not be written out as 1.4 GB.
    #[test]
    fn huge_exponents_are_refused_not_written_out() {
        for n in ["1e1478690889", "-9e2000000000", "1e-70000", "1e65537"] {
            let JVal::Obj(m) = parse_lenient(&format!("{{\"v\":{n}}}")).unwrap() else {
                panic!("not an object")
            };
            let opts = TypingOptions {
                type_cast: true,
                max_string_len: 0,
            };
            match type_object(&m, opts) {
                Err(PayloadError::Unchecked(msg)) => assert!(msg.contains("too large"), "{msg}"),
                other => panic!("{n}: {other:?}"),
            }
        }
        // Long but bounded numbers are still written out, as ThingsBoard does.
        let TbValue::String(s) = one("1e1000") else {
            panic!("not a string")
        };
        assert_eq!(s.len(), 1001);
    }

    /// The shortcut for plain numbers types exactly as the full rules do.
    #[test]
    fn plain_numbers_shortcut_agrees_with_the_full_rules() {
        let full = |text: &str| {
            let bd = Decimal::parse(text).expect("a number");
            let simple_double = text.contains('.') && !text.contains(['e', 'E']);
            if bd.stripped_scale() <= 0 && !simple_double {
                TbValue::Long(bd.long_exact().expect("fits"))
            } else {
                TbValue::Double(text.parse().expect("a double"))
            }
        };
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "7",
            "-7",
            "00",
            "007",
            "42",
            "999999999999999999",
            "-999999999999999999",
            "0.0",
            "-0.0",
            "42.0",
            "1.5",
            "-1.50",
            "0.1234567890123456",
            "123456789.25",
            "00.5",
            "9223372036854775.807",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let int = (x % 10u64.pow((x % 18) as u32 + 1)).to_string();
            let frac_len = (x >> 20) % 17;
            let frac = format!(
                "{:0w$}",
                (x >> 30) % 10u64.pow(frac_len as u32),
                w = frac_len as usize
            );
            let sign = if x & 1 == 1 { "-" } else { "" };
            cases.push(format!("{sign}{int}"));
            if frac_len > 0 {
                cases.push(format!("{sign}{int}.{frac}"));
            }
        }
        for c in &cases {
            let fast = plain_numeric(c).unwrap_or_else(|| panic!("{c}: not taken"));
            assert_eq!(fast, full(c), "{c}");
        }
        for other in [
            "1e3",
            "+1",
            "1.",
            ".5",
            "1.23456789012345678",
            "1234567890123456789",
            "-",
            "",
        ] {
            assert_eq!(plain_numeric(other), None, "{other}");
        }
    }

    #[test]
    fn numeric_strings_are_cast() {
        assert_eq!(one("\"007\""), TbValue::Long(7));
        assert_eq!(one("\"1.50\""), TbValue::Double(1.5));
        assert_eq!(one("\"-3\""), TbValue::Long(-3));
        assert_eq!(one("\"1.\""), TbValue::String("1.".into()));
        assert_eq!(one("\"1e3\""), TbValue::String("1e3".into()));
        assert_eq!(one("\"+1\""), TbValue::String("+1".into()));
        assert_eq!(one("\" 1\""), TbValue::String(" 1".into()));
        assert_eq!(one("\"1.2.3\""), TbValue::String("1.2.3".into()));
        assert_eq!(one("\"abc\""), TbValue::String("abc".into()));
    }

    #[test]
    fn other_values() {
        assert_eq!(one("true"), TbValue::Bool(true));
        assert_eq!(
            one("{\"a\": [1, 2.50]}"),
            TbValue::Json("{\"a\":[1,2.50]}".into())
        );
        assert!(typed("{\"k\":null}").is_empty());
    }

    #[test]
    fn values_serialise_as_gson() {
        assert_eq!(TbValue::Double(1.5).to_json(), "1.5");
        assert_eq!(TbValue::Double(42.0).to_json(), "42.0");
        assert_eq!(TbValue::Long(7).to_json(), "7");
        assert_eq!(TbValue::String("x".into()).to_json(), "\"x\"");
    }
}
