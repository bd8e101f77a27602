//! Lowering an [`Expr`] into the evaluated form: boolean [`Predicate`]s over
//! [`Operand`]s, with RocketMQ's implicit conversions made explicit and
//! constant subtrees folded.
//!
//! Everything a message does not influence is decided here: literals are
//! typed, `<>` and `BETWEEN` become their RocketMQ definitions, and any node
//! whose inputs are all constant is evaluated once.

use crate::ast::{CompareOp, Expr, Literal, TextMatchKind};
use crate::filter::Truth;

/// A node giving TRUE, FALSE or NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Predicate {
    Const(Truth),
    /// A value used as a condition: TRUE only for a real boolean TRUE, NULL for
    /// NULL, FALSE for anything else (every property is a string).
    Cast(Operand),
    Not(Box<Predicate>),
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    /// RocketMQ's `=`: both NULL is TRUE, left NULL is NULL, right NULL is FALSE.
    Equal(Operand, Operand),
    /// `<`, `<=`, `>`, `>=`: NULL if either side is NULL; two strings compare
    /// as doubles.
    Order {
        op: Order,
        left: Operand,
        right: Operand,
    },
    IsNull {
        operand: Operand,
        negated: bool,
    },
    /// `BETWEEN` is `v >= low AND v <= high`; `NOT BETWEEN` is
    /// `v < low OR v > high`. The tested value is evaluated once.
    Between {
        operand: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    In {
        property: Box<str>,
        values: Box<[Box<str>]>,
        negated: bool,
    },
    /// `Equal` of a property and a string constant, the commonest test:
    /// exact text equality, or `when_missing` without the property (NULL with
    /// the property on the left, FALSE with it on the right).
    PropertyIs {
        property: Box<str>,
        value: Box<str>,
        when_missing: Truth,
    },
    /// `Order` of a property and a numeric constant, normalised to the property
    /// on the left: NULL without the property, else the value parsed as the
    /// constant's type.
    PropertyOrder {
        property: Box<str>,
        op: Order,
        bound: Number,
    },
    /// The needle is never empty: an empty needle folds to FALSE.
    TextMatch {
        operand: Operand,
        kind: TextMatchKind,
        needle: Box<str>,
        negated: bool,
    },
}

/// A node giving a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Const(Literal),
    Property(Box<str>),
    /// A condition used as a value (`(a = 1) = TRUE`).
    Predicate(Box<Predicate>),
    /// Unary minus of a non-constant: always NULL at run time (only numbers
    /// negate and every non-constant value is a string or a boolean), but
    /// evaluated for the errors its operand may raise.
    Negate(Box<Operand>),
}

/// A numeric constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i32),
    Long(i64),
    Double(f64),
}

impl Number {
    fn of(literal: &Literal) -> Option<Number> {
        match literal {
            Literal::Int(value) => Some(Number::Int(*value)),
            Literal::Long(value) => Some(Number::Long(*value)),
            Literal::Double(value) => Some(Number::Double(*value)),
            _ => None,
        }
    }
}

/// The ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Order {
    /// The operator with its operands swapped: `1 < a` is `a > 1`.
    fn mirrored(self) -> Order {
        match self {
            Order::Less => Order::Greater,
            Order::LessOrEqual => Order::GreaterOrEqual,
            Order::Greater => Order::Less,
            Order::GreaterOrEqual => Order::LessOrEqual,
        }
    }

    /// Whether `ordering` (left compared with right) satisfies the operator.
    pub(crate) fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        match self {
            Order::Less => ordering.is_lt(),
            Order::LessOrEqual => ordering.is_le(),
            Order::Greater => ordering.is_gt(),
            Order::GreaterOrEqual => ordering.is_ge(),
        }
    }
}

/// Lowers `expr` used as a condition.
pub(crate) fn predicate(expr: &Expr) -> Predicate {
    let lowered = match expr {
        Expr::Literal(Literal::Bool(value)) => return Predicate::Const(Truth::from(*value)),
        Expr::Literal(Literal::Null) => return Predicate::Const(Truth::Null),
        Expr::Literal(_) | Expr::Property(_) | Expr::Negate(_) => Predicate::Cast(operand(expr)),
        Expr::Not(inner) => Predicate::Not(Box::new(predicate(inner))),
        Expr::And(left, right) => return and(predicate(left), predicate(right)),
        Expr::Or(left, right) => return or(predicate(left), predicate(right)),
        Expr::Compare { op, left, right } => {
            let (left, right) = (operand(left), operand(right));
            match op {
                CompareOp::Equal => specialize_equal(left, right),
                CompareOp::NotEqual => Predicate::Not(Box::new(fold(specialize_equal(left, right)))),
                CompareOp::Less => specialize_order(Order::Less, left, right),
                CompareOp::LessOrEqual => specialize_order(Order::LessOrEqual, left, right),
                CompareOp::Greater => specialize_order(Order::Greater, left, right),
                CompareOp::GreaterOrEqual => specialize_order(Order::GreaterOrEqual, left, right),
            }
        }
        Expr::IsNull { operand: inner, negated } => Predicate::IsNull { operand: operand(inner), negated: *negated },
        Expr::Between { operand: inner, low, high, negated } => {
            Predicate::Between { operand: operand(inner), low: operand(low), high: operand(high), negated: *negated }
        }
        Expr::In { property, values, negated } => Predicate::In {
            property: property.as_str().into(),
            values: values.iter().map(|value| value.as_str().into()).collect(),
            negated: *negated,
        },
        Expr::TextMatch { needle, .. } if needle.is_empty() => {
            return Predicate::Const(Truth::False);
        }
        Expr::TextMatch { operand: inner, kind, needle, negated } => Predicate::TextMatch {
            operand: operand(inner),
            kind: *kind,
            needle: needle.as_str().into(),
            negated: *negated,
        },
    };
    fold(lowered)
}

/// `left = right`, as [`Predicate::PropertyIs`] when it is a property against
/// a string constant.
fn specialize_equal(left: Operand, right: Operand) -> Predicate {
    match (left, right) {
        (Operand::Property(property), Operand::Const(Literal::String(value))) => {
            Predicate::PropertyIs { property, value: value.into(), when_missing: Truth::Null }
        }
        (Operand::Const(Literal::String(value)), Operand::Property(property)) => {
            Predicate::PropertyIs { property, value: value.into(), when_missing: Truth::False }
        }
        (left, right) => Predicate::Equal(left, right),
    }
}

/// `left op right`, as [`Predicate::PropertyOrder`] when it is a property
/// against a numeric constant (either way round: the comparison is a total
/// order, so mirroring is exact, errors included).
fn specialize_order(op: Order, left: Operand, right: Operand) -> Predicate {
    match (&left, &right) {
        (Operand::Property(property), Operand::Const(literal)) if let Some(bound) = Number::of(literal) => {
            Predicate::PropertyOrder { property: property.clone(), op, bound }
        }
        (Operand::Const(literal), Operand::Property(property)) if let Some(bound) = Number::of(literal) => {
            Predicate::PropertyOrder { property: property.clone(), op: op.mirrored(), bound }
        }
        _ => Predicate::Order { op, left, right },
    }
}

/// Lowers `expr` used as a value.
fn operand(expr: &Expr) -> Operand {
    match expr {
        Expr::Literal(literal) => Operand::Const(literal.clone()),
        Expr::Property(name) => Operand::Property(name.as_str().into()),
        Expr::Negate(inner) => match operand(inner) {
            Operand::Const(value) => Operand::Const(negate(&value)),
            // A property value is a string, and a string negates to NULL.
            Operand::Property(_) => Operand::Const(Literal::Null),
            other => Operand::Negate(Box::new(other)),
        },
        _ => match predicate(expr) {
            Predicate::Const(truth) => Operand::Const(truth.into()),
            other => Operand::Predicate(Box::new(other)),
        },
    }
}

/// Java's unary minus (wrapping at the minimum, as Java does); a non-number
/// negates to NULL.
pub(crate) fn negate(value: &Literal) -> Literal {
    match value {
        Literal::Int(v) => Literal::Int(v.wrapping_neg()),
        Literal::Long(v) => Literal::Long(v.wrapping_neg()),
        Literal::Double(v) => Literal::Double(-v),
        Literal::String(_) | Literal::Bool(_) | Literal::Null => Literal::Null,
    }
}

fn and(left: Predicate, right: Predicate) -> Predicate {
    match (left, right) {
        (Predicate::Const(Truth::False), _) => Predicate::Const(Truth::False),
        // TRUE AND x, and x AND TRUE, give exactly x (errors included).
        (Predicate::Const(Truth::True), other) | (other, Predicate::Const(Truth::True)) => other,
        (left, right) => fold(Predicate::And(Box::new(left), Box::new(right))),
    }
}

fn or(left: Predicate, right: Predicate) -> Predicate {
    match (left, right) {
        (Predicate::Const(Truth::True), _) => Predicate::Const(Truth::True),
        // FALSE OR x, and x OR FALSE, give exactly x (errors included).
        (Predicate::Const(Truth::False), other) | (other, Predicate::Const(Truth::False)) => other,
        (left, right) => fold(Predicate::Or(Box::new(left), Box::new(right))),
    }
}

/// Evaluates `node` once if no message can change its result. A constant
/// subtree that fails (`'x' = 1`) is kept, so every message reports the error
/// as RocketMQ does.
fn fold(node: Predicate) -> Predicate {
    if !node.is_constant() {
        return node;
    }
    let no_properties: [(&str, &str); 0] = [];
    match node.evaluate(&no_properties) {
        Ok(truth) => Predicate::Const(truth),
        Err(_) => node,
    }
}

impl Predicate {
    /// Whether no property is read anywhere below.
    fn is_constant(&self) -> bool {
        match self {
            Predicate::Const(_) => true,
            Predicate::Cast(operand) | Predicate::IsNull { operand, .. } => operand.is_constant(),
            Predicate::TextMatch { operand, .. } => operand.is_constant(),
            Predicate::Not(inner) => inner.is_constant(),
            Predicate::And(left, right) | Predicate::Or(left, right) => left.is_constant() && right.is_constant(),
            Predicate::Equal(left, right) | Predicate::Order { left, right, .. } => {
                left.is_constant() && right.is_constant()
            }
            Predicate::Between { operand, low, high, .. } => {
                operand.is_constant() && low.is_constant() && high.is_constant()
            }
            Predicate::In { .. } | Predicate::PropertyIs { .. } | Predicate::PropertyOrder { .. } => false,
        }
    }
}

impl Operand {
    fn is_constant(&self) -> bool {
        match self {
            Operand::Const(_) => true,
            Operand::Property(_) => false,
            Operand::Predicate(inner) => inner.is_constant(),
            Operand::Negate(inner) => inner.is_constant(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specialised nodes give exactly what the generic ones give.
    #[test]
    fn specialised_comparisons_match_the_generic_ones() {
        let values = [None, Some("10"), Some("+10"), Some("3000000000"), Some("1.5"), Some("x"), Some("-0"), Some("")];
        let constants = [
            Literal::Int(10),
            Literal::Long(3_000_000_000),
            Literal::Double(1.5),
            Literal::Double(-0.0),
            Literal::String("10".into()),
        ];
        let property = || Operand::Property("p".into());
        for value in values {
            let message: Vec<(&str, &str)> = value.map(|v| ("p", v)).into_iter().collect();
            for constant in &constants {
                let constant = || Operand::Const(constant.clone());
                let pairs = [(property(), constant()), (constant(), property())];
                for (left, right) in pairs {
                    let generic = Predicate::Equal(left.clone(), right.clone());
                    let special = specialize_equal(left.clone(), right.clone());
                    assert_eq!(special.evaluate(&message[..]), generic.evaluate(&message[..]), "{special:?}");
                    for op in [Order::Less, Order::LessOrEqual, Order::Greater, Order::GreaterOrEqual] {
                        let generic = Predicate::Order { op, left: left.clone(), right: right.clone() };
                        let special = specialize_order(op, left.clone(), right.clone());
                        assert_eq!(special.evaluate(&message[..]), generic.evaluate(&message[..]), "{special:?}");
                    }
                }
            }
        }
    }
}
