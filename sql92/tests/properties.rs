//! Property tests: the parser and evaluator never panic, printing a tree and
//! parsing it back gives the same tree, and the necessary condition never
//! excludes a message that evaluates to TRUE.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir_sql92::{CompareOp, Expr, Filter, Literal, Properties, Term, TextMatchKind, Truth, parse};

const NAMES: [&str; 4] = ["a", "b", "c", "TAGS"];
const VALUES: [&str; 12] = ["1", "2", "10", "-0", "1.5", "3000000000", "x", "SH", "true", "", " 3", "NaN"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(&NAMES[..]).prop_map(str::to_owned)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(&VALUES[..]).prop_map(str::to_owned), "[a-z' ]{0,3}"]
}

fn number() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (-5i32..20).prop_map(Literal::Int),
        prop::sample::select(vec![3_000_000_000i64, -3_000_000_000, i64::MAX]).prop_map(Literal::Long),
        prop::sample::select(vec![0.0, -0.0, 1.5, -2.5, 1e10, 2.0]).prop_map(Literal::Double),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![number(), text().prop_map(Literal::String), any::<bool>().prop_map(Literal::Bool), Just(Literal::Null),]
}

fn property() -> impl Strategy<Value = Expr> {
    name().prop_map(Expr::Property)
}

/// An operand of `<`-family comparisons and BETWEEN, as the parser accepts.
fn orderable() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => property(),
        2 => number().prop_map(Expr::Literal),
        1 => property().prop_map(|p| Expr::Negate(Box::new(p))),
    ]
}

/// An operand of `=`/`<>`: anything but NULL and booleans.
fn equatable() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => property(),
        1 => number().prop_map(Expr::Literal),
        2 => text().prop_map(|t| Expr::Literal(Literal::String(t))),
    ]
}

fn compare(op: CompareOp, left: Expr, right: Expr) -> Expr {
    Expr::Compare { op, left: Box::new(left), right: Box::new(right) }
}

fn order_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![CompareOp::Less, CompareOp::LessOrEqual, CompareOp::Greater, CompareOp::GreaterOrEqual])
}

fn text_kind() -> impl Strategy<Value = TextMatchKind> {
    prop::sample::select(vec![TextMatchKind::Contains, TextMatchKind::StartsWith, TextMatchKind::EndsWith])
}

/// Conditions the parser accepts (almost always: reversed constant BETWEEN
/// bounds are the exception).
fn condition() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (prop::bool::ANY, equatable(), equatable())
            .prop_map(|(equal, l, r)| { compare(if equal { CompareOp::Equal } else { CompareOp::NotEqual }, l, r) }),
        (order_op(), orderable(), orderable()).prop_map(|(op, l, r)| compare(op, l, r)),
        (equatable(), any::<bool>())
            .prop_map(|(operand, negated)| Expr::IsNull { operand: Box::new(operand), negated }),
        (orderable(), orderable(), orderable(), any::<bool>()).prop_map(|(operand, low, high, negated)| {
            Expr::Between { operand: Box::new(operand), low: Box::new(low), high: Box::new(high), negated }
        }),
        (name(), prop::collection::vec(text(), 1..5), any::<bool>()).prop_map(|(property, values, negated)| Expr::In {
            property,
            values,
            negated
        }),
        (equatable(), text_kind(), text(), any::<bool>()).prop_map(|(operand, kind, needle, negated)| {
            Expr::TextMatch { operand: Box::new(operand), kind, needle, negated }
        }),
        prop_oneof![Just(Literal::Bool(true)), Just(Literal::Bool(false)), Just(Literal::Null)].prop_map(Expr::Literal),
        property(),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| compare(CompareOp::Equal, l, r)),
        ]
    })
}

/// Any tree at all, including ones the parser refuses: compiling and
/// evaluating must still be total.
fn any_tree() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![literal().prop_map(Expr::Literal), property()];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let boxed = inner.clone().prop_map(Box::new);
        prop_oneof![
            boxed.clone().prop_map(Expr::Negate),
            boxed.clone().prop_map(Expr::Not),
            (boxed.clone(), boxed.clone()).prop_map(|(l, r)| Expr::And(l, r)),
            (boxed.clone(), boxed.clone()).prop_map(|(l, r)| Expr::Or(l, r)),
            (
                prop::sample::select(vec![CompareOp::Equal, CompareOp::NotEqual, CompareOp::Less]),
                boxed.clone(),
                boxed.clone()
            )
                .prop_map(|(op, left, right)| Expr::Compare { op, left, right }),
            (boxed.clone(), any::<bool>()).prop_map(|(operand, negated)| Expr::IsNull { operand, negated }),
            (boxed.clone(), boxed.clone(), boxed.clone(), any::<bool>())
                .prop_map(|(operand, low, high, negated)| Expr::Between { operand, low, high, negated }),
            (boxed, text_kind(), text(), any::<bool>()).prop_map(|(operand, kind, needle, negated)| Expr::TextMatch {
                operand,
                kind,
                needle,
                negated
            }),
        ]
    })
}

fn message() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(name(), prop::sample::select(&VALUES[..]).prop_map(str::to_owned), 0..4)
}

fn holds(term: &Term, message: &BTreeMap<String, String>) -> bool {
    match term {
        Term::Has(name) => message.property(name).is_some(),
        Term::Equals { name, value } => message.property(name) == Some(&**value),
    }
}

/// Evaluates `filter`; a TRUE result must satisfy the necessary condition.
fn check_condition(filter: &Filter, message: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    if filter.evaluate(message) == Ok(Truth::True) {
        let condition = filter.necessary_condition();
        prop_assert!(condition.may_match(&|term| holds(term, message)), "{condition:?} excludes {message:?}");
    }
    Ok(())
}

/// What the `sql92_parse` fuzz target does with its input.
fn parse_and_evaluate(source: &str) -> Result<(), TestCaseError> {
    if let Ok(expr) = parse(source) {
        let _ = Filter::compile(&expr).evaluate(&[("a", "1"), ("b", "x"), ("TAGS", "t")]);
        prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(source in ".{0,40}") {
        parse_and_evaluate(&source)?;
    }

    #[test]
    fn token_soup_never_panics_and_round_trips(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "a", "b", "TAGS", "=", "<>", "<", "<=", ">", ">=", "(", ")", ",", "AND", "OR", "NOT", "IS",
            "NULL", "TRUE", "FALSE", "BETWEEN", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH", "1", "-", "+",
            "2.5", "'x'", "''", "1e3", "9223372036854775807", "--", "/*", "*/", "\n",
        ]), 1..14)
    ) {
        parse_and_evaluate(&tokens.join(" "))?;
    }

    #[test]
    fn printing_then_parsing_gives_the_same_tree(expr in condition()) {
        let printed = expr.to_string();
        match parse(&printed) {
            Ok(parsed) => prop_assert_eq!(parsed, expr, "printed as {}", printed),
            Err(error) => {
                prop_assume!(matches!(error.kind(), weir_sql92::ParseErrorKind::ReversedBounds));
            }
        }
    }

    #[test]
    fn necessary_condition_never_excludes_a_true_message(expr in condition(), message in message()) {
        check_condition(&Filter::compile(&expr), &message)?;
    }

    #[test]
    fn any_tree_compiles_and_evaluates_without_panicking(expr in any_tree(), message in message()) {
        check_condition(&Filter::compile(&expr), &message)?;
    }
}

/// The levels of a tree (a leaf is 1).
fn depth(expr: &Expr) -> usize {
    1 + match expr {
        Expr::Literal(_) | Expr::Property(_) | Expr::In { .. } => 0,
        Expr::Negate(e) | Expr::Not(e) | Expr::IsNull { operand: e, .. } | Expr::TextMatch { operand: e, .. } => {
            depth(e)
        }
        Expr::And(l, r) | Expr::Or(l, r) | Expr::Compare { left: l, right: r, .. } => depth(l).max(depth(r)),
        Expr::Between { operand, low, high, .. } => depth(operand).max(depth(low)).max(depth(high)),
    }
}

/// One way of nesting `inner` one level deeper.
#[derive(Debug, Clone, Copy)]
enum Wrap {
    Parens,
    Not,
    AndRight,
    OrLeft,
    CompareTrue,
}

fn wrap(inner: String, how: Wrap) -> String {
    match how {
        Wrap::Parens => format!("({inner})"),
        Wrap::Not => format!("NOT ({inner})"),
        Wrap::AndRight => format!("b = 'x' AND ({inner})"),
        Wrap::OrLeft => format!("{inner} OR b = 'x'"),
        Wrap::CompareTrue => format!("({inner}) = TRUE"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// However an expression nests, parsing answers with a tree no deeper than
    /// `MAX_DEPTH` or refuses it as too deep; it never overflows the stack.
    /// Shallow nestings are always accepted.
    #[test]
    fn nesting_is_bounded_not_overflowed(
        wraps in prop::collection::vec(prop::sample::select(vec![
            Wrap::Parens, Wrap::Not, Wrap::AndRight, Wrap::OrLeft, Wrap::CompareTrue,
        ]), 0..400)
    ) {
        let source = wraps.iter().fold("a = '1'".to_owned(), |inner, how| wrap(inner, *how));
        match parse(&source) {
            Ok(expr) => {
                prop_assert!(depth(&expr) <= weir_sql92::MAX_DEPTH);
                let _ = Filter::compile(&expr).evaluate(&[("a", "1"), ("b", "x")]);
                prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
            }
            Err(error) => {
                // `a = '1'` is two levels; each wrap adds at most one level and one parenthesis.
                prop_assert!(wraps.len() + 2 > weir_sql92::MAX_DEPTH, "{wraps:?}: {error}");
                prop_assert!(matches!(error.kind(), weir_sql92::ParseErrorKind::TooDeep { .. }), "{error}");
            }
        }
    }
}
