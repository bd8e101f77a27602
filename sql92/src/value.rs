//! Runtime values and RocketMQ's (that is, Java's) rules for comparing them.
//!
//! RocketMQ compares with `Comparable.compareTo` after converting mismatched
//! types "up": numbers widen (int → long → double), and a string meeting a
//! number or a boolean is parsed as that type with Java's `valueOf`.

use std::cmp::Ordering;

use crate::ast::Literal;
use crate::compile::Number;
use crate::error::{EvalError, NumberType};

/// A value during evaluation; strings borrow from the message or the filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

impl<'a> From<&'a Literal> for Value<'a> {
    fn from(literal: &'a Literal) -> Self {
        match literal {
            Literal::String(text) => Value::Str(text),
            Literal::Int(value) => Value::Int(*value),
            Literal::Long(value) => Value::Long(*value),
            Literal::Double(value) => Value::Double(*value),
            Literal::Bool(value) => Value::Bool(*value),
            Literal::Null => Value::Null,
        }
    }
}

/// Java `equals`, then `compareTo(..) == 0` across types (RocketMQ's `=` once
/// neither side is NULL).
pub(crate) fn java_equals(left: Value<'_>, right: Value<'_>) -> Result<bool, EvalError> {
    Ok(match (left, right) {
        (Value::Str(l), Value::Str(r)) => l == r,
        (Value::Bool(l), Value::Bool(r)) => l == r,
        _ => java_compare(left, right)?.is_eq(),
    })
}

/// RocketMQ's `__compare` with string conversion enabled (as its parser sets
/// it). Types it cannot reconcile (a boolean against a number) compare as
/// `Less`, exactly as RocketMQ returns -1.
pub(crate) fn java_compare(left: Value<'_>, right: Value<'_>) -> Result<Ordering, EvalError> {
    use Value::{Bool, Double, Int, Long, Str};
    Ok(match (left, right) {
        (Int(l), Int(r)) => l.cmp(&r),
        (Int(l), Long(r)) => i64::from(l).cmp(&r),
        (Long(l), Int(r)) => l.cmp(&i64::from(r)),
        (Long(l), Long(r)) => l.cmp(&r),
        (Int(l), Double(r)) => java_double_compare(f64::from(l), r),
        (Long(l), Double(r)) => java_double_compare(l as f64, r),
        (Double(l), Int(r)) => java_double_compare(l, f64::from(r)),
        (Double(l), Long(r)) => java_double_compare(l, r as f64),
        (Double(l), Double(r)) => java_double_compare(l, r),
        (Bool(l), Bool(r)) => l.cmp(&r),
        // Java's String.compareTo orders UTF-16 code units.
        (Str(l), Str(r)) => l.encode_utf16().cmp(r.encode_utf16()),
        (Int(l), Str(r)) => compare_text(r, Number::Int(l))?.reverse(),
        (Long(l), Str(r)) => compare_text(r, Number::Long(l))?.reverse(),
        (Double(l), Str(r)) => compare_text(r, Number::Double(l))?.reverse(),
        (Str(l), Int(r)) => compare_text(l, Number::Int(r))?,
        (Str(l), Long(r)) => compare_text(l, Number::Long(r))?,
        (Str(l), Double(r)) => compare_text(l, Number::Double(r))?,
        (Str(l), Bool(r)) => l.eq_ignore_ascii_case("true").cmp(&r),
        (Bool(_), Str(_)) => return Err(EvalError::BooleanBeforeString),
        _ => Ordering::Less,
    })
}

/// A string compared with a number: the string is parsed as the number's
/// type (Java `valueOf`), then compared.
pub(crate) fn compare_text(text: &str, number: Number) -> Result<Ordering, EvalError> {
    Ok(match number {
        Number::Int(value) => parse_int(text)?.cmp(&value),
        Number::Long(value) => parse_long(text)?.cmp(&value),
        Number::Double(value) => java_double_compare(parse_double(text)?, value),
    })
}

/// Java's `Double.compare`: a total order where `-0.0 < 0.0` and every NaN is
/// equal to every other and above `+∞`.
pub(crate) fn java_double_compare(left: f64, right: f64) -> Ordering {
    if left < right {
        return Ordering::Less;
    }
    if left > right {
        return Ordering::Greater;
    }
    let bits = |value: f64| {
        let value = if value.is_nan() { f64::NAN } else { value };
        value.to_bits() as i64
    };
    bits(left).cmp(&bits(right))
}

/// Java `Integer.valueOf` (ASCII digits only).
fn parse_int(text: &str) -> Result<i32, EvalError> {
    text.parse().map_err(|_| EvalError::NotANumber { expected: NumberType::Int })
}

/// Java `Long.valueOf` (ASCII digits only).
fn parse_long(text: &str) -> Result<i64, EvalError> {
    text.parse().map_err(|_| EvalError::NotANumber { expected: NumberType::Long })
}

/// Java `Double.valueOf`: surrounding characters up to U+0020 are trimmed, a
/// sign, `NaN`, `Infinity`, and a trailing `f`/`F`/`d`/`D` are accepted.
/// Hexadecimal floating-point text is not.
pub(crate) fn parse_double(text: &str) -> Result<f64, EvalError> {
    let error = EvalError::NotANumber { expected: NumberType::Double };
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let number = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            if !is_decimal(number.as_bytes()) {
                return Err(error);
            }
            number.parse().map_err(|_| error)?
        }
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit.
fn is_decimal(text: &[u8]) -> bool {
    let digits = |from: usize| text[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let integer = digits(0);
    let mut at = integer;
    let mut fraction = 0;
    if text.get(at) == Some(&b'.') {
        fraction = digits(at + 1);
        at += 1 + fraction;
    }
    if integer + fraction == 0 {
        return false;
    }
    if matches!(text.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(text.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exponent = digits(at);
        if exponent == 0 {
            return false;
        }
        at += exponent;
    }
    at == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_parse_like_java() {
        let ok = [
            ("1.5", 1.5),
            (" 2 ", 2.0),
            ("\t-3e2\n", -300.0),
            ("+.5", 0.5),
            ("5.", 5.0),
            ("1.e1", 10.0),
            ("7d", 7.0),
            ("7.25F", 7.25),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_double(text), Ok(expected), "{text:?}");
        }
        assert!(parse_double("NaN").is_ok_and(f64::is_nan));
        for bad in ["", ".", "e5", "1e", "inf", "nan", "infinity", "1.5x", "0x1p3", "1 2", "--1"] {
            assert!(parse_double(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn java_double_order() {
        assert_eq!(java_double_compare(-0.0, 0.0), Ordering::Less);
        assert_eq!(java_double_compare(f64::NAN, -f64::NAN), Ordering::Equal);
        assert_eq!(java_double_compare(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(java_double_compare(1.0, 1.0), Ordering::Equal);
    }

    #[test]
    fn mixed_types_convert_like_rocketmq() {
        use Value::{Bool, Double, Int, Long, Str};
        assert_eq!(java_compare(Str("10"), Int(9)), Ok(Ordering::Greater));
        assert_eq!(java_compare(Int(10), Str("+10")), Ok(Ordering::Equal));
        assert_eq!(java_compare(Long(1 << 40), Str("1")), Ok(Ordering::Greater));
        assert_eq!(java_compare(Str("1.0"), Int(1)), Err(EvalError::NotANumber { expected: NumberType::Int }));
        assert_eq!(java_compare(Int(2), Double(1.5)), Ok(Ordering::Greater));
        assert_eq!(java_compare(Str("TrUe"), Bool(true)), Ok(Ordering::Equal));
        assert_eq!(java_compare(Str("yes"), Bool(false)), Ok(Ordering::Equal));
        assert_eq!(java_compare(Bool(true), Str("true")), Err(EvalError::BooleanBeforeString));
        assert_eq!(java_compare(Bool(true), Int(1)), Ok(Ordering::Less));
        assert_eq!(java_compare(Int(1), Bool(true)), Ok(Ordering::Less));
        assert_eq!(java_equals(Double(0.0), Double(-0.0)), Ok(false));
        assert_eq!(java_equals(Str("a"), Str("a")), Ok(true));
    }
}
