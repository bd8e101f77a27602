//! Evaluating compiled nodes against one message. Nothing here allocates: values
//! borrow from the message's properties or from the compiled filter.

use crate::ast::TextMatchKind;
use crate::compile::{Operand, Order, Predicate};
use crate::error::EvalError;
use crate::filter::Truth;
use crate::properties::Properties;
use crate::value::compare_text;
use crate::value::{Value, java_compare, java_double_compare, java_equals, parse_double};

impl Predicate {
    /// RocketMQ's result for this node: Kleene logic, left-to-right
    /// short-circuit, and the first error raised ends the evaluation.
    pub(crate) fn evaluate<P: Properties + ?Sized>(&self, message: &P) -> Result<Truth, EvalError> {
        Ok(match self {
            Predicate::Const(truth) => *truth,
            Predicate::Cast(operand) => match operand.evaluate(message)? {
                Value::Null => Truth::Null,
                Value::Bool(value) => Truth::from(value),
                _ => Truth::False,
            },
            Predicate::Not(inner) => !inner.evaluate(message)?,
            Predicate::And(left, right) => {
                let left = left.evaluate(message)?;
                if left == Truth::False {
                    return Ok(Truth::False);
                }
                left & right.evaluate(message)?
            }
            Predicate::Or(left, right) => {
                let left = left.evaluate(message)?;
                if left == Truth::True {
                    return Ok(Truth::True);
                }
                left | right.evaluate(message)?
            }
            Predicate::Equal(left, right) => {
                let left = left.evaluate(message)?;
                let right = right.evaluate(message)?;
                match (left, right) {
                    (Value::Null, Value::Null) => Truth::True,
                    (Value::Null, _) => Truth::Null,
                    (_, Value::Null) => Truth::False,
                    _ => Truth::from(java_equals(left, right)?),
                }
            }
            Predicate::Order { op, left, right } => order(*op, left.evaluate(message)?, right, message)?,
            Predicate::IsNull { operand, negated } => {
                Truth::from((operand.evaluate(message)? == Value::Null) != *negated)
            }
            Predicate::Between { operand, low, high, negated: false } => {
                let value = operand.evaluate(message)?;
                let above_low = order(Order::GreaterOrEqual, value, low, message)?;
                if above_low == Truth::False {
                    return Ok(Truth::False);
                }
                above_low & order(Order::LessOrEqual, value, high, message)?
            }
            Predicate::Between { operand, low, high, negated: true } => {
                let value = operand.evaluate(message)?;
                let below_low = order(Order::Less, value, low, message)?;
                if below_low == Truth::True {
                    return Ok(Truth::True);
                }
                below_low | order(Order::Greater, value, high, message)?
            }
            Predicate::In { property, values, negated } => match message.property(property) {
                None => Truth::Null,
                Some(value) => Truth::from(values.iter().any(|candidate| **candidate == *value) != *negated),
            },
            Predicate::PropertyIs { property, value, when_missing } => match message.property(property) {
                None => *when_missing,
                Some(text) => Truth::from(text == &**value),
            },
            Predicate::PropertyOrder { property, op, bound } => match message.property(property) {
                None => Truth::Null,
                Some(text) => Truth::from(op.accepts(compare_text(text, *bound)?)),
            },
            Predicate::TextMatch { operand, kind, needle, negated } => {
                match operand.evaluate(message)? {
                    Value::Str(text) => {
                        let found = match kind {
                            TextMatchKind::Contains => text.contains(&**needle),
                            TextMatchKind::StartsWith => text.starts_with(&**needle),
                            TextMatchKind::EndsWith => text.ends_with(&**needle),
                        };
                        Truth::from(found != *negated)
                    }
                    // A missing or non-string value fails both the test and its NOT form.
                    _ => Truth::False,
                }
            }
        })
    }
}

impl Operand {
    fn evaluate<'a, P: Properties + ?Sized>(&'a self, message: &'a P) -> Result<Value<'a>, EvalError> {
        Ok(match self {
            Operand::Const(literal) => Value::from(literal),
            Operand::Property(name) => message.property(name).map_or(Value::Null, Value::Str),
            Operand::Predicate(inner) => match inner.evaluate(message)? {
                Truth::True => Value::Bool(true),
                Truth::False => Value::Bool(false),
                Truth::Null => Value::Null,
            },
            Operand::Negate(inner) => {
                inner.evaluate(message)?;
                Value::Null
            }
        })
    }
}

/// `left op right` for the ordering operators: the right side is evaluated only
/// when the left is not NULL, and two strings compare as doubles.
fn order<P: Properties + ?Sized>(op: Order, left: Value<'_>, right: &Operand, message: &P) -> Result<Truth, EvalError> {
    if left == Value::Null {
        return Ok(Truth::Null);
    }
    let right = right.evaluate(message)?;
    let ordering = match (left, right) {
        (_, Value::Null) => return Ok(Truth::Null),
        (Value::Str(l), Value::Str(r)) => java_double_compare(parse_double(l)?, parse_double(r)?),
        _ => java_compare(left, right)?,
    };
    Ok(Truth::from(op.accepts(ordering)))
}
