//! [`Filter`]: a subscription compiled once and evaluated per message, and its
//! three-valued result [`Truth`].

use std::fmt;
use std::ops::{BitAnd, BitOr, Not};

use crate::ast::{Expr, Literal};
use crate::compile::{self, Predicate};
use crate::condition::{self, Condition};
use crate::error::{EvalError, ParseError};
use crate::parser;
use crate::properties::Properties;

/// The result of evaluating an expression: SQL's three-valued logic. A message
/// is delivered only on `True`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Truth {
    /// TRUE: deliver.
    True,
    /// FALSE.
    False,
    /// NULL (unknown, e.g. a missing property was compared).
    Null,
}

impl From<bool> for Truth {
    fn from(value: bool) -> Self {
        if value { Truth::True } else { Truth::False }
    }
}

impl From<Truth> for Literal {
    fn from(truth: Truth) -> Self {
        match truth {
            Truth::True => Literal::Bool(true),
            Truth::False => Literal::Bool(false),
            Truth::Null => Literal::Null,
        }
    }
}

impl Not for Truth {
    type Output = Truth;

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Null => Truth::Null,
        }
    }
}

/// Kleene AND.
impl BitAnd for Truth {
    type Output = Truth;

    fn bitand(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Null, _) | (_, Truth::Null) => Truth::Null,
            _ => Truth::True,
        }
    }
}

/// Kleene OR.
impl BitOr for Truth {
    type Output = Truth;

    fn bitor(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::Null, _) | (_, Truth::Null) => Truth::Null,
            _ => Truth::False,
        }
    }
}

impl fmt::Display for Truth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Truth::True => "TRUE",
            Truth::False => "FALSE",
            Truth::Null => "NULL",
        })
    }
}

/// A compiled subscription expression.
///
/// Compile once per subscription; [`Filter::evaluate`] then runs per message
/// without allocating.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Predicate,
    condition: Condition,
}

impl Filter {
    /// Parses and compiles `source`; refused expressions get a positioned error.
    pub fn parse(source: &str) -> Result<Filter, ParseError> {
        Ok(Filter::compile(&parser::parse(source)?))
    }

    /// Compiles a syntax tree. Any tree compiles, including hand-built ones the
    /// parser would refuse; those evaluate by the same rules. Compiling and
    /// evaluating recurse once per level of the tree: one far deeper than
    /// [`MAX_DEPTH`](crate::MAX_DEPTH), which [`Filter::parse`] never builds,
    /// can exhaust the thread's stack.
    pub fn compile(expr: &Expr) -> Filter {
        let root = compile::predicate(expr);
        let condition = condition::when_true(&root);
        Filter { root, condition }
    }

    /// Evaluates against one message's properties (the tag being `TAGS`).
    /// `Err` means the message could not be evaluated (RocketMQ throws there):
    /// it is not delivered.
    pub fn evaluate<P: Properties + ?Sized>(&self, message: &P) -> Result<Truth, EvalError> {
        self.root.evaluate(message)
    }

    /// A condition that every message evaluating to TRUE satisfies, for
    /// pre-filtering with a bloom filter.
    pub fn necessary_condition(&self) -> &Condition {
        &self.condition
    }
}
