//! SQL92 subscription expressions (RocketMQ-compatible): parse, compile, evaluate.
//!
//! See `README.md` in this crate for the language, every deliberate difference
//! from RocketMQ, and measured costs.
//!
//! # Layout
//! - [`parser`](parse) (`parser.rs`, grammar in `sql92.pest`): text to [`Expr`],
//!   with RocketMQ's compile-time checks, errors as [`ParseError`].
//! - `ast.rs`: [`Expr`] and its `Display`, which parses back to the same tree.
//! - `compile.rs`: lowering to predicates over operands, constant folding.
//! - `eval.rs` and `value.rs`: per-message evaluation with Java's comparison
//!   and conversion rules; no allocation.
//! - `condition.rs`: the [`Condition`] the broker tests against bloom filters.
//! - `properties.rs`: the borrowed [`Properties`] view of a message.
//!
//! **Architecture Invariant:** this crate knows nothing of the broker, storage
//! or the wire: it sees a message only through [`Properties`].
//!
//! ```
//! use weir_sql92::{Filter, Truth};
//!
//! let filter = Filter::parse("region = 'SH' AND amount > 100").unwrap();
//! let message = [("region", "SH"), ("amount", "150")];
//! assert_eq!(filter.evaluate(&message), Ok(Truth::True));
//! ```

mod ast;
mod compile;
mod condition;
mod error;
mod eval;
mod filter;
mod parser;
mod properties;
mod value;

pub use ast::{CompareOp, Expr, Literal, TextMatchKind};
pub use condition::{Condition, Term};
pub use error::{EvalError, NumberType, ParseError, ParseErrorKind};
pub use filter::{Filter, Truth};
pub use parser::{MAX_DEPTH, parse};
pub use properties::{Properties, TAG_PROPERTY, WithTag};

#[cfg(test)]
mod tests;
