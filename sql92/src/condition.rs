//! The necessary condition of a filter: a formula over cheap per-message facts
//! (a property is present, a property has a given value) that every message
//! evaluating to TRUE satisfies.
//!
//! The broker tests it against a per-message bloom filter of those facts and
//! skips messages that cannot match without reading them. It is derived from
//! the compiled form, so constant folding has already removed dead branches.
//!
//! **Invariant:** if a message evaluates to TRUE, the condition holds for it
//! with the exact facts of that message; a bloom filter only adds false
//! positives, so a skip is always safe.

use crate::ast::Literal;
use crate::compile::{Operand, Predicate};
use crate::filter::Truth;

/// A fact about one message. The tag is the property `TAGS`: a bloom filter
/// built for a message with tag `T` must contain `Has("TAGS")` and
/// `Equals("TAGS", "T")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    /// The message has this property (any value).
    Has(Box<str>),
    /// The message's property `name` is exactly `value`.
    Equals {
        /// Property name.
        name: Box<str>,
        /// Exact property value.
        value: Box<str>,
    },
}

/// A monotone boolean formula over [`Term`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Every message may match.
    Always,
    /// No message can match.
    Never,
    /// The message must have this fact.
    Term(Term),
    /// Every part must hold (never empty, never holding `Always` or `Never`).
    All(Vec<Condition>),
    /// Some part must hold (never empty, never holding `Always` or `Never`).
    Any(Vec<Condition>),
}

impl Condition {
    /// Whether a message may match, given `may_contain` that answers for each
    /// term whether the message may have it (a bloom filter lookup, or exact
    /// facts). `false` means the message certainly evaluates to FALSE, NULL or
    /// an error.
    pub fn may_match(&self, may_contain: &impl Fn(&Term) -> bool) -> bool {
        match self {
            Condition::Always => true,
            Condition::Never => false,
            Condition::Term(term) => may_contain(term),
            Condition::All(parts) => parts.iter().all(|part| part.may_match(may_contain)),
            Condition::Any(parts) => parts.iter().any(|part| part.may_match(may_contain)),
        }
    }

    fn has(name: &str) -> Condition {
        Condition::Term(Term::Has(name.into()))
    }

    fn equals(name: &str, value: &str) -> Condition {
        Condition::Term(Term::Equals { name: name.into(), value: value.into() })
    }

    /// Conjunction, flattened and simplified.
    fn all(parts: impl IntoIterator<Item = Condition>) -> Condition {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                Condition::Always => {}
                Condition::Never => return Condition::Never,
                Condition::All(inner) => kept.extend(inner),
                other => kept.push(other),
            }
        }
        match kept.len() {
            0 => Condition::Always,
            1 => kept.pop().expect("one part"),
            _ => Condition::All(kept),
        }
    }

    /// Disjunction, flattened and simplified.
    fn any(parts: impl IntoIterator<Item = Condition>) -> Condition {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                Condition::Never => {}
                Condition::Always => return Condition::Always,
                Condition::Any(inner) => kept.extend(inner),
                other => kept.push(other),
            }
        }
        match kept.len() {
            0 => Condition::Never,
            1 => kept.pop().expect("one part"),
            _ => Condition::Any(kept),
        }
    }
}

/// What must hold for `node` to be TRUE.
pub(crate) fn when_true(node: &Predicate) -> Condition {
    match node {
        Predicate::Const(Truth::True) => Condition::Always,
        Predicate::Const(_) => Condition::Never,
        Predicate::Cast(operand) => operand_true(operand),
        // NOT x is TRUE when x is FALSE, which needs nothing in particular.
        Predicate::Not(_) => Condition::Always,
        Predicate::And(left, right) => Condition::all([when_true(left), when_true(right)]),
        Predicate::Or(left, right) => Condition::any([when_true(left), when_true(right)]),
        Predicate::Equal(left, right) => {
            // TRUE when both sides are NULL, or both are present and equal.
            if may_be_null(left) && may_be_null(right) {
                return Condition::Always;
            }
            match (left, right) {
                (Operand::Property(name), Operand::Const(Literal::String(value)))
                | (Operand::Const(Literal::String(value)), Operand::Property(name)) => Condition::equals(name, value),
                _ => Condition::all([when_present(left), when_present(right)]),
            }
        }
        Predicate::Order { left, right, .. } => Condition::all([when_present(left), when_present(right)]),
        Predicate::IsNull { negated: false, .. } => Condition::Always,
        Predicate::IsNull { operand, negated: true } => when_present(operand),
        Predicate::Between { operand, low, high, negated: false } => {
            Condition::all([when_present(operand), when_present(low), when_present(high)])
        }
        Predicate::Between { operand, low, high, negated: true } => {
            Condition::all([when_present(operand), Condition::any([when_present(low), when_present(high)])])
        }
        Predicate::In { property, values, negated: false } => {
            Condition::any(values.iter().map(|value| Condition::equals(property, value)))
        }
        Predicate::In { property, negated: true, .. } => Condition::has(property),
        Predicate::PropertyIs { property, value, .. } => Condition::equals(property, value),
        Predicate::PropertyOrder { property, .. } => Condition::has(property),
        Predicate::TextMatch { operand, .. } => when_present(operand),
    }
}

/// What must hold for `operand`, used as a condition, to be a boolean TRUE.
fn operand_true(operand: &Operand) -> Condition {
    match operand {
        Operand::Const(Literal::Bool(true)) => Condition::Always,
        Operand::Predicate(inner) => when_true(inner),
        // Properties are strings and negations are NULL: never a boolean TRUE.
        _ => Condition::Never,
    }
}

/// What must hold for `operand` not to be NULL.
fn when_present(operand: &Operand) -> Condition {
    match operand {
        Operand::Const(Literal::Null) => Condition::Never,
        Operand::Const(_) | Operand::Predicate(_) => Condition::Always,
        Operand::Property(name) => Condition::has(name),
        // Only numbers negate, and no run-time value is a number.
        Operand::Negate(_) => Condition::Never,
    }
}

fn may_be_null(operand: &Operand) -> bool {
    !matches!(operand, Operand::Const(literal) if *literal != Literal::Null)
}
