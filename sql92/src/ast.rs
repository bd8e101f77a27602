//! The syntax tree of a subscription expression.
//!
//! The parser produces only trees that RocketMQ would accept (plus Weir's own
//! refusals, see the crate docs); a tree built by hand may be anything, and
//! compiling and evaluating it still never panics.
//!
//! `Display` prints a fully parenthesised expression that parses back to the
//! same tree.

use std::fmt;

/// A subscription expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Literal(Literal),
    /// A message property by name; the tag is the property `TAGS`.
    Property(String),
    /// Unary minus. The parser folds `-` directly before a numeric literal into
    /// the literal, so this only appears around other operands.
    Negate(Box<Expr>),
    /// Logical NOT.
    Not(Box<Expr>),
    /// Logical AND (Kleene, short-circuit left to right).
    And(Box<Expr>, Box<Expr>),
    /// Logical OR (Kleene, short-circuit left to right).
    Or(Box<Expr>, Box<Expr>),
    /// A binary comparison.
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `operand IS NULL`, or `IS NOT NULL` when `negated`.
    IsNull {
        /// The tested value.
        operand: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `operand BETWEEN low AND high`, or `NOT BETWEEN` when `negated`.
    Between {
        /// The tested value.
        operand: Box<Expr>,
        /// Inclusive lower bound.
        low: Box<Expr>,
        /// Inclusive upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `property IN ('a', ...)`, or `NOT IN` when `negated`.
    In {
        /// The tested property.
        property: String,
        /// The string literals of the list (never empty when parsed).
        values: Vec<String>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `operand CONTAINS|STARTSWITH|ENDSWITH 'needle'`, or the `NOT` form.
    TextMatch {
        /// The tested value.
        operand: Box<Expr>,
        /// Which test.
        kind: TextMatchKind,
        /// The string literal searched for.
        needle: String,
        /// `NOT CONTAINS` and friends.
        negated: bool,
    },
}

/// A constant value written in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`.
    String(String),
    /// An integer literal that fits 32 bits (Java `int`).
    Int(i32),
    /// An integer literal that needs 64 bits (Java `long`).
    Long(i64),
    /// A decimal or exponent literal (Java `double`).
    Double(f64),
    /// `TRUE` or `FALSE`.
    Bool(bool),
    /// `NULL`.
    Null,
}

/// Binary comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `<>`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

/// The string predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatchKind {
    /// `CONTAINS`
    Contains,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
}

impl CompareOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Equal => "=",
            CompareOp::NotEqual => "<>",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
        }
    }
}

impl TextMatchKind {
    /// The keyword as written.
    pub fn keyword(self) -> &'static str {
        match self {
            TextMatchKind::Contains => "CONTAINS",
            TextMatchKind::StartsWith => "STARTSWITH",
            TextMatchKind::EndsWith => "ENDSWITH",
        }
    }
}

/// Writes `text` as a string literal, doubling quotes.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("'")?;
    for (i, part) in text.split('\'').enumerate() {
        if i > 0 {
            f.write_str("''")?;
        }
        f.write_str(part)?;
    }
    f.write_str("'")
}

fn not_prefix(negated: bool) -> &'static str {
    if negated { "NOT " } else { "" }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(text) => write_quoted(f, text),
            Literal::Int(value) => write!(f, "{value}"),
            Literal::Long(value) => write!(f, "{value}L"),
            // `{:?}` is the shortest text that reads back to the same bits and
            // always has a `.` or an exponent, so it lexes as a double.
            Literal::Double(value) => write!(f, "{value:?}"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Null => f.write_str("NULL"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(literal) => write!(f, "{literal}"),
            Expr::Property(name) => f.write_str(name),
            Expr::Negate(operand) => write!(f, "-({operand})"),
            Expr::Not(operand) => write!(f, "(NOT {operand})"),
            Expr::And(left, right) => write!(f, "({left} AND {right})"),
            Expr::Or(left, right) => write!(f, "({left} OR {right})"),
            Expr::Compare { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::IsNull { operand, negated } => {
                write!(f, "({operand} IS {}NULL)", not_prefix(*negated))
            }
            Expr::Between { operand, low, high, negated } => {
                write!(f, "({operand} {}BETWEEN {low} AND {high})", not_prefix(*negated))
            }
            Expr::In { property, values, negated } => {
                write!(f, "({property} {}IN (", not_prefix(*negated))?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(f, value)?;
                }
                f.write_str("))")
            }
            Expr::TextMatch { operand, kind, needle, negated } => {
                write!(f, "({operand} {}{} ", not_prefix(*negated), kind.keyword())?;
                write_quoted(f, needle)?;
                f.write_str(")")
            }
        }
    }
}
