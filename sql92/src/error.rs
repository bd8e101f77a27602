//! Errors: a positioned [`ParseError`] at subscribe time and a cheap
//! [`EvalError`] per message.

use std::fmt;

use thiserror::Error;

/// Why an expression was refused. Each variant's text says what was expected
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The text does not follow the grammar.
    #[error("syntax error: expected {expected}")]
    Syntax {
        /// What the grammar allowed at this position.
        expected: String,
    },
    /// A complete expression is followed by more text. RocketMQ silently ignores
    /// such text; Weir refuses it.
    #[error("unexpected text after a complete expression: expected {expected}")]
    TrailingInput {
        /// What could have continued the expression.
        expected: String,
    },
    /// `NOT` used directly as an operand of a comparison: RocketMQ reads
    /// `NOT a = 1` as `(NOT a) = 1`, so Weir asks which one was meant.
    #[error(
        "NOT directly before a comparison is ambiguous (RocketMQ reads `NOT a = 1` as `(NOT a) = 1`): \
         expected parentheses, either `NOT (a = 1)` or `(NOT a) = 1`"
    )]
    AmbiguousNot,
    /// An integer literal beyond 64 bits.
    #[error("integer literal out of range: expected at most 9223372036854775807")]
    IntegerOutOfRange,
    /// A decimal literal beyond the range of a double.
    #[error("decimal literal out of range: expected a finite double")]
    DoubleOutOfRange,
    /// `NULL` compared with `=` or `<>`.
    #[error("NULL cannot be compared with = or <>: expected IS NULL or IS NOT NULL")]
    NullComparison,
    /// A string or boolean constant (or a boolean expression) used with
    /// `<`, `<=`, `>`, `>=` or `BETWEEN`.
    #[error("value cannot be ordered: expected a property or a numeric value")]
    NotOrderable,
    /// `IN` applied to something other than a property.
    #[error("IN applies to a property: expected a property name")]
    InNeedsProperty,
    /// `BETWEEN` with constant bounds in the wrong order.
    #[error("BETWEEN bounds are reversed: expected the low bound first")]
    ReversedBounds,
    /// A boolean constant compared with a non-boolean constant.
    #[error("boolean constant compared with a non-boolean constant: expected TRUE or FALSE on both sides")]
    BooleanMismatch,
    /// An operand of AND, OR, NOT or the whole expression gives no boolean.
    #[error("expression does not give a boolean: expected a condition or a property")]
    NotBoolean,
    /// Parentheses or the expression's tree nest deeper than the limit
    /// ([`MAX_DEPTH`](crate::MAX_DEPTH)).
    #[error(
        "expression nests deeper than {limit} levels: expected fewer parentheses, NOTs or chained \
         AND/OR operands (a long list of alternatives is an IN)"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

/// A refused expression, with where and why.
///
/// `Display` renders the message, the offending line and a `^` under the
/// position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ParseError {
    kind: ParseErrorKind,
    line: usize,
    column: usize,
    found: String,
    source_line: String,
}

impl ParseError {
    /// Builds an error at byte offset `offset` of `source`; `found` is the
    /// offending text (empty at the end of input).
    pub(crate) fn new(kind: ParseErrorKind, source: &str, offset: usize, found: &str) -> Self {
        let offset = offset.min(source.len());
        let before = &source[..offset];
        let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let line_end = source[offset..].find(['\n', '\r']).map_or(source.len(), |i| offset + i);
        let line = 1 + before.matches('\n').count() + before.matches('\r').count() - before.matches("\r\n").count();
        ParseError {
            kind,
            line,
            column: 1 + before[line_start..].chars().count(),
            found: found.to_owned(),
            source_line: source[line_start..line_end].to_owned(),
        }
    }

    /// Why the expression was refused.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// 1-based line of the offending text.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) of the offending text.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The offending text; empty when the input ended too early.
    pub fn found(&self) -> &str {
        &self.found
    }

    /// One line: position, offending text and what was expected.
    pub fn message(&self) -> String {
        let found = if self.found.is_empty() { "end of input".to_owned() } else { format!("`{}`", self.found) };
        format!("line {}, column {}, at {found}: {}", self.line, self.column, self.kind)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message())?;
        writeln!(f, "  {}", self.source_line)?;
        // Keep tabs so the caret lines up under the offending character.
        let pad: String =
            self.source_line.chars().take(self.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        write!(f, "  {pad}^")
    }
}

/// Why one message could not be evaluated. The message is not delivered and the
/// broker counts it, as RocketMQ does when evaluation throws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A property compared with a numeric value does not parse as that type
    /// (Java `Integer.valueOf`, `Long.valueOf`, `Double.valueOf`).
    #[error("property value is not a valid {expected}")]
    NotANumber {
        /// `int`, `long` or `double`.
        expected: NumberType,
    },
    /// A boolean on the left of `=` and a string on the right: RocketMQ throws
    /// a `ClassCastException` here (the reverse order converts the string).
    #[error("a boolean cannot be compared with a string on its right")]
    BooleanBeforeString,
}

/// The numeric types of the language (Java's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// 64-bit IEEE float.
    Double,
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberType::Int => "int",
            NumberType::Long => "long",
            NumberType::Double => "double",
        })
    }
}
