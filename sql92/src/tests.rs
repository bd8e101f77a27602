//! Behaviour tests: one data-driven `check` per rule, then a table of
//! RocketMQ's own behaviours (from its `ExpressionTest`, `ParserTest` and
//! documentation).

use crate::{Filter, Properties, Term, Truth, WithTag, parse};

/// Parses `source`, evaluates it against `props` and compares with `expected`:
/// `TRUE`, `FALSE`, `NULL`, `ERROR`, or `refused:<ParseErrorKind variant>`.
///
/// Every accepted expression is also printed and re-parsed (same tree), and a
/// TRUE result must satisfy the necessary condition.
fn check(source: &str, props: &[(&str, &str)], expected: &str) {
    let expr = match parse(source) {
        Ok(expr) => expr,
        Err(error) => {
            let kind = format!("refused:{:?}", error.kind());
            assert!(kind.starts_with(expected), "{source:?}: got {kind}, want {expected}\n{error}");
            return;
        }
    };
    let printed = expr.to_string();
    assert_eq!(parse(&printed).as_ref(), Ok(&expr), "{source:?} printed as {printed:?}");
    let filter = Filter::compile(&expr);
    let got = match filter.evaluate(props) {
        Ok(truth) => truth.to_string(),
        Err(_) => "ERROR".to_owned(),
    };
    assert_eq!(got, expected, "{source:?} with {props:?}");
    if got == "TRUE" {
        assert!(
            filter.necessary_condition().may_match(&|term| holds(term, props)),
            "{source:?}: necessary condition {:?} excludes {props:?}",
            filter.necessary_condition()
        );
    }
}

/// A table row: expression, message properties, expected result.
type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

fn holds(term: &Term, props: &[(&str, &str)]) -> bool {
    match term {
        Term::Has(name) => props.property(name).is_some(),
        Term::Equals { name, value } => props.property(name) == Some(&**value),
    }
}

#[test]
fn keywords_are_case_insensitive_identifiers_are_not() {
    check("a is NoT nUlL", &[("a", "1")], "TRUE");
    check("a = 1 and b = 2 Or c = 3", &[("c", "3")], "TRUE");
    check("A = 1", &[("a", "1")], "NULL");
    check("$x_1 = 'v'", &[("$x_1", "v")], "TRUE");
    check("ANDROID = 1", &[("ANDROID", "1")], "TRUE");
    check("and = 1", &[], "refused:Syntax");
    check("between = 1", &[], "refused:Syntax");
    check("é = 1", &[], "refused:Syntax");
}

#[test]
fn the_tag_is_the_property_tags() {
    check("TAGS = 'TagA'", &[("TAGS", "TagA")], "TRUE");
    let filter = Filter::parse("TAGS IN ('TagA', 'TagB') AND a = 1").unwrap();
    let props = [("a", "1")];
    let tagged = WithTag { tag: Some("TagB"), properties: &props[..] };
    assert_eq!(filter.evaluate(&tagged), Ok(Truth::True));
    let untagged = WithTag { tag: None, properties: &props[..] };
    assert_eq!(filter.evaluate(&untagged), Ok(Truth::Null));
}

#[test]
fn string_literals() {
    check("a = 'it''s'", &[("a", "it's")], "TRUE");
    check(r"a = 'x\'", &[("a", r"x\")], "TRUE");
    check("a = ''''", &[("a", "'")], "TRUE");
    check("a = '多字节'", &[("a", "多字节")], "TRUE");
    check("a = \"x\"", &[], "refused:Syntax");
    check("a = 'open", &[], "refused:Syntax");
}

#[test]
fn integer_literals_are_int_or_long() {
    check("a = 2147483647", &[("a", "2147483647")], "TRUE");
    check("a = 2147483647", &[("a", "2147483648")], "ERROR");
    check("a = 2147483648", &[("a", "2147483648")], "TRUE");
    check("a > 1", &[("a", "3000000000")], "ERROR");
    check("a > -2147483648", &[("a", "3000000000")], "TRUE");
    check("a = 5L", &[("a", "5")], "TRUE");
    check("a = 5l", &[("a", "+5")], "TRUE");
    check("a = 1", &[("a", "1.0")], "ERROR");
    check("a = 1", &[("a", " 1")], "ERROR");
    check("a = 9223372036854775807", &[("a", "9223372036854775807")], "TRUE");
    check("a = 9223372036854775808", &[], "refused:IntegerOutOfRange");
    check("a > 100000000000000000000000", &[], "refused:IntegerOutOfRange");
}

#[test]
fn decimal_literals_are_doubles() {
    check("a = .5", &[("a", "0.5")], "TRUE");
    check("a = 5.", &[("a", "5")], "TRUE");
    check("a = 1.5E3", &[("a", "1500")], "TRUE");
    check("a = 15e-1", &[("a", "1.5")], "TRUE");
    check("a > 0.0", &[("a", " 1 ")], "TRUE");
    check("a = 1.5", &[("a", "1.5d")], "TRUE");
    check("a = 1.5", &[("a", "abc")], "ERROR");
    check("a = 1.5", &[("a", "0x1.8p0")], "ERROR");
    check("a = 1e400", &[], "refused:DoubleOutOfRange");
}

#[test]
fn java_double_semantics() {
    check("a = 0.0", &[("a", "-0.0")], "FALSE");
    check("a < 0.0", &[("a", "-0")], "TRUE");
    check("a > 1.0", &[("a", "NaN")], "TRUE");
    check("a > 1.0", &[("a", "Infinity")], "TRUE");
    check("a > 1.0", &[("a", "inf")], "ERROR");
}

#[test]
fn boolean_and_null_literals() {
    check("TRUE", &[], "TRUE");
    check("FALSE", &[], "FALSE");
    check("NULL", &[], "NULL");
    check("a = TRUE", &[("a", "TrUe")], "TRUE");
    check("a = TRUE", &[("a", "yes")], "FALSE");
    check("a <> FALSE", &[("a", "false")], "FALSE");
    // RocketMQ throws ClassCastException converting in this order.
    check("TRUE = a", &[("a", "true")], "ERROR");
    check("TRUE = a", &[], "FALSE");
}

#[test]
fn comments() {
    check("a = 1 /* comment */ AND b = 2", &[("a", "1"), ("b", "2")], "TRUE");
    check("-- leading\na = 1", &[("a", "1")], "TRUE");
    check("a = 1 -- trailing, no newline", &[("a", "1")], "TRUE");
    check("a = /* unterminated", &[], "refused:Syntax");
}

#[test]
fn precedence() {
    check("a = 1 OR b = 1 AND c = 1", &[("a", "1")], "TRUE");
    check("a = 1 OR b = 1 AND c = 1", &[("b", "1"), ("c", "2"), ("a", "2")], "FALSE");
    check("(a = 1 OR b = 1) AND c = 1", &[("a", "1"), ("c", "2")], "FALSE");
    check("a > 1 = TRUE", &[("a", "2")], "TRUE");
    check("a IN ('x') = FALSE", &[("a", "y")], "TRUE");
    check("a IS NULL = TRUE", &[], "TRUE");
    check("a = 1 = TRUE", &[("a", "1")], "TRUE");
    check("NOT NOT a = 1", &[], "refused:AmbiguousNot");
    check("NOT (NOT (a = 1))", &[("a", "1")], "TRUE");
    check("a = +1", &[("a", "1")], "TRUE");
    check("a = - -1", &[("a", "1")], "TRUE");
    check("a = -(1)", &[("a", "-1")], "TRUE");
}

#[test]
fn no_c_style_operators() {
    check("a != 1", &[], "refused:TrailingInput");
    check("a == 1", &[], "refused:Syntax");
}

#[test]
fn property_compared_with_property() {
    check("a < b", &[("a", "2"), ("b", "10")], "TRUE");
    check("a >= b", &[("a", "1e1"), ("b", "10")], "TRUE");
    check("a < b", &[("a", "x"), ("b", "10")], "ERROR");
    check("a = b", &[("a", "1.0"), ("b", "1")], "FALSE");
    check("a = b", &[("a", "x"), ("b", "x")], "TRUE");
}

#[test]
fn three_valued_logic() {
    check("a > 1", &[], "NULL");
    check("1 < a", &[], "NULL");
    check("a BETWEEN 1 AND 2", &[], "NULL");
    check("a NOT BETWEEN 1 AND 2", &[], "NULL");
    check("a IN ('x')", &[], "NULL");
    check("a NOT IN ('x')", &[], "NULL");
    check("NOT (a > 1)", &[], "NULL");
    check("a > 1 AND b = 1", &[("b", "2")], "FALSE");
    check("a > 1 AND b = 1", &[("b", "1")], "NULL");
    check("a > 1 OR b = 1", &[("b", "1")], "TRUE");
    check("a > 1 OR b = 1", &[("b", "2")], "NULL");
}

#[test]
fn rocketmq_equality_with_null() {
    check("a = b", &[], "TRUE");
    check("a = b", &[("b", "1")], "NULL");
    check("a = b", &[("a", "1")], "FALSE");
    check("a = 'x'", &[], "NULL");
    check("'x' = a", &[], "FALSE");
    check("a <> 'x'", &[], "NULL");
    check("'x' <> a", &[], "TRUE");
    check("a <> b", &[], "FALSE");
    check("a IS NULL", &[], "TRUE");
    check("a IS NOT NULL", &[], "FALSE");
}

#[test]
fn text_predicates() {
    check("a CONTAINS 'b'", &[("a", "abc")], "TRUE");
    check("a CONTAINS 'z'", &[("a", "abc")], "FALSE");
    check("a CONTAINS 'b'", &[], "FALSE");
    check("a NOT CONTAINS 'b'", &[], "FALSE");
    check("a NOT CONTAINS 'z'", &[("a", "abc")], "TRUE");
    check("a STARTSWITH 'ab'", &[("a", "abc")], "TRUE");
    check("a NOT STARTSWITH 'bc'", &[("a", "abc")], "TRUE");
    check("a ENDSWITH 'bc'", &[("a", "abc")], "TRUE");
    check("a NOT ENDSWITH 'bc'", &[("a", "abc")], "FALSE");
    check("a NOT ENDSWITH 'x'", &[], "FALSE");
    check("a CONTAINS ''", &[("a", "abc")], "FALSE");
    check("a NOT CONTAINS ''", &[("a", "abc")], "FALSE");
    check("'abc' CONTAINS 'b'", &[], "TRUE");
    check("5 CONTAINS '5'", &[], "FALSE");
    check("a CONTAINS b", &[], "refused:Syntax");
}

#[test]
fn logic_short_circuits_left_to_right() {
    check("a = 'q' AND b > 1", &[("a", "z"), ("b", "x")], "FALSE");
    check("b > 1 AND a = 'q'", &[("a", "z"), ("b", "x")], "ERROR");
    check("a > 1 AND b > 1", &[("b", "x")], "ERROR");
    check("a = 'q' OR b > 1", &[("a", "q"), ("b", "x")], "TRUE");
    check("b > 1 OR a = 'q'", &[("a", "q"), ("b", "x")], "ERROR");
    check("a BETWEEN 5 AND b", &[("a", "1"), ("b", "x")], "FALSE");
    check("a BETWEEN 0 AND b", &[("a", "1"), ("b", "x")], "ERROR");
}

#[test]
fn bare_property_is_never_true() {
    check("a", &[("a", "true")], "FALSE");
    check("a", &[], "NULL");
    check("NOT a", &[("a", "x")], "TRUE");
    check("a AND TRUE", &[("a", "TRUE")], "FALSE");
    check("a OR b = 1", &[("b", "1")], "TRUE");
}

#[test]
fn negation_of_non_numbers_is_null() {
    check("-a > 1", &[("a", "5")], "NULL");
    check("a = -b", &[("a", "1"), ("b", "1")], "FALSE");
    check("-'x' = a", &[("a", "1")], "NULL");
    check("-(b > 1) = a", &[("a", "1"), ("b", "x")], "ERROR");
}

#[test]
fn compile_time_rejections() {
    check("a = NULL", &[], "refused:NullComparison");
    check("NULL <> a", &[], "refused:NullComparison");
    check("a = (NULL)", &[], "refused:NullComparison");
    check("'x' < a", &[], "refused:NotOrderable");
    check("a > TRUE", &[], "refused:NotOrderable");
    check("a > (b = 1)", &[], "refused:NotOrderable");
    check("a > 1 > 2", &[], "refused:NotOrderable");
    check("a BETWEEN 'a' AND 'b'", &[], "refused:NotOrderable");
    check("1 IN ('a')", &[], "refused:InNeedsProperty");
    check("(a = 1) IN ('a')", &[], "refused:InNeedsProperty");
    check("a BETWEEN 5 AND 1", &[], "refused:ReversedBounds");
    check("a BETWEEN 2 AND 1.5", &[], "refused:ReversedBounds");
    check("a BETWEEN -1 AND -5", &[], "refused:ReversedBounds");
    check("TRUE = 1", &[], "refused:BooleanMismatch");
    check("1 = FALSE", &[], "refused:BooleanMismatch");
    check("5", &[], "refused:NotBoolean");
    check("'x'", &[], "refused:NotBoolean");
    check("1.5", &[], "refused:NotBoolean");
    check("-a", &[], "refused:NotBoolean");
    check("a = 1 AND 5", &[], "refused:NotBoolean");
    check("NOT 'x'", &[], "refused:NotBoolean");
    check("", &[], "refused:Syntax");
}

#[test]
fn weir_refuses_rocketmq_traps() {
    // RocketMQ ignores everything after the first complete expression.
    check("a LIKE 'x'", &[], "refused:TrailingInput");
    check("a = 0x10", &[], "refused:TrailingInput");
    check("a = 007", &[], "refused:TrailingInput");
    check("a = 1 b = 2", &[], "refused:TrailingInput");
    // RocketMQ binds NOT tighter than comparisons.
    check("NOT a = 1", &[], "refused:AmbiguousNot");
    check("NOT a IS NULL", &[], "refused:AmbiguousNot");
    check("NOT a CONTAINS 'x'", &[], "refused:AmbiguousNot");
    check("TRUE = NOT a", &[], "refused:AmbiguousNot");
    check("(NOT a) = FALSE", &[("a", "x")], "FALSE");
    // RocketMQ rejects zero float literals.
    check("a = 0.0", &[("a", "0")], "TRUE");
    check("a > 0.", &[("a", "1")], "TRUE");
}

#[test]
fn constant_subtrees_fold_but_keep_their_errors() {
    check("1 = 1", &[], "TRUE");
    check("'10' = 10", &[], "TRUE");
    check("1 < 2.5 AND a = 1", &[("a", "1")], "TRUE");
    check("'x' = 1", &[], "ERROR");
    check("a NOT BETWEEN 10 AND 1", &[("a", "5")], "TRUE");
}

/// RocketMQ's own expectations (filter module tests and user documentation).
#[test]
fn rocketmq_behaviour_table() {
    let and = "a=3 and b<>4 And c>5 AND d<=4";
    let or = "a=3 or b<>4 Or c>5 OR d<=4";
    let table: &[Row<'_>] = &[
        (and, &[("a", "3"), ("b", "5"), ("c", "6"), ("d", "1")], "TRUE"),
        (and, &[("a", "4"), ("b", "5"), ("c", "6"), ("d", "1")], "FALSE"),
        (or, &[("a", "3")], "TRUE"),
        (or, &[("a", "4"), ("b", "5")], "TRUE"),
        (or, &[("a", "4"), ("b", "4"), ("c", "6")], "TRUE"),
        (or, &[("a", "4"), ("b", "4"), ("c", "3"), ("d", "2")], "TRUE"),
        (or, &[("a", "4"), ("b", "4"), ("c", "3"), ("d", "10")], "FALSE"),
        ("a in ('3', '4', '5')", &[("a", "4")], "TRUE"),
        ("a in ('3', '4', '5')", &[("a", "8")], "FALSE"),
        ("a not in ('3', '4', '5')", &[("a", "8")], "TRUE"),
        ("a not in ('3', '4', '5')", &[("a", "5")], "FALSE"),
        ("a between 2 and 10", &[("a", "2")], "TRUE"),
        ("a between 2 and 10", &[("a", "10")], "TRUE"),
        ("a between 2 and 10", &[("a", "11")], "FALSE"),
        ("a not between 2 and 10", &[("a", "1")], "TRUE"),
        ("a not between 2 and 10", &[("a", "3")], "FALSE"),
        ("a is null", &[("abc", "2")], "TRUE"),
        ("a is null", &[("a", "2")], "FALSE"),
        ("a is not null", &[("a", "2")], "TRUE"),
        ("a is not null and a='hello'", &[("a", "hello")], "TRUE"),
        ("a is not null and a='hello'", &[], "FALSE"),
        ("a=TRUE OR b=FALSE", &[("a", "true"), ("b", "false")], "TRUE"),
        ("a=TRUE OR b=FALSE", &[("a", "false"), ("b", "true")], "FALSE"),
        ("a is null OR a='hello'", &[], "TRUE"),
        ("a is null OR a='hello'", &[("a", "abc")], "FALSE"),
        ("TAGS is not null and TAGS='''''tag'''''", &[("TAGS", "''tag''")], "TRUE"),
        ("a > 3.1E10", &[("a", "3.1415E10")], "TRUE"),
        ("a > 3.14", &[("a", "3.1415")], "TRUE"),
        ("a > b", &[("a", "10"), ("b", "20")], "FALSE"),
        ("a > b", &[("a", "20"), ("b", "10")], "TRUE"),
        ("a between up and low", &[("a", "3.14")], "NULL"),
        ("a between up and low", &[("a", "3.14"), ("up", "up"), ("low", "low")], "ERROR"),
        ("key is not null and key between 0 and 100", &[("key", "con")], "ERROR"),
        ("a=b", &[("a", "3.14"), ("b", "3.14")], "TRUE"),
        ("a<>b", &[("a", "3.14"), ("b", "3.141")], "TRUE"),
        ("a <= now", &[("a", "1"), ("now", "2")], "TRUE"),
        ("(a > 10 AND b < 20) OR c IS NOT NULL", &[("c", "")], "TRUE"),
        ("a between 0 and 3 and b='name2'", &[("a", "3"), ("b", "name2")], "TRUE"),
        ("a and between 2 and 10", &[], "refused:Syntax"),
        (" a between 10 and 0", &[], "refused:ReversedBounds"),
    ];
    for (source, props, expected) in table {
        check(source, props, expected);
    }
}

#[test]
fn necessary_conditions() {
    let cases = [
        (
            "region = 'SH' AND amount > 100",
            "All([Term(Equals { name: \"region\", value: \"SH\" }), Term(Has(\"amount\"))])",
        ),
        ("a = 'x' OR b IS NOT NULL", "Any([Term(Equals { name: \"a\", value: \"x\" }), Term(Has(\"b\"))])"),
        ("a IS NULL", "Always"),
        ("NOT (a = 1)", "Always"),
        ("a = b", "Always"),
        ("a = 1 AND FALSE", "Never"),
        ("a", "Never"),
        (
            "TAGS IN ('A', 'B')",
            "Any([Term(Equals { name: \"TAGS\", value: \"A\" }), Term(Equals { name: \"TAGS\", value: \"B\" })])",
        ),
    ];
    for (source, expected) in cases {
        let filter = Filter::parse(source).unwrap();
        let got = format!("{:?}", filter.necessary_condition());
        assert_eq!(got, expected, "{source}");
    }
}

#[test]
fn errors_point_at_the_offending_text() {
    let error = parse("a = 1\n  AND b LIKE 'x'").unwrap_err();
    assert_eq!((error.line(), error.column(), error.found()), (2, 9, "LIKE"));
    let rendered = error.to_string();
    assert!(rendered.starts_with("line 2, column 9, at `LIKE`: unexpected text"), "{rendered}");
    assert!(rendered.ends_with("    AND b LIKE 'x'\n          ^"), "{rendered}");
    let error = parse("a >").unwrap_err();
    assert_eq!((error.line(), error.column(), error.found()), (1, 4, ""));
    assert!(error.message().contains("at end of input"), "{}", error.message());
    let error = parse("a > 'x'").unwrap_err();
    assert_eq!((error.column(), error.found()), (5, "'x'"));
}

/// Empty, huge and deeply nested inputs are answered (a value or a typed
/// refusal), never with a panic or a stack overflow; the nesting limit is
/// exact, and text inside strings and comments does not count towards it.
#[test]
fn edge_inputs_are_answered_not_panicked_on() {
    use crate::MAX_DEPTH;

    for blank in ["", " \n\t", "/* only a comment */", "-- only a comment", "()", "(", ")"] {
        check(blank, &[], "refused:Syntax");
    }
    let parens = |n: usize| format!("{}a = '1'{}", "(".repeat(n), ")".repeat(n));
    check(&parens(MAX_DEPTH), &[("a", "1")], "TRUE");
    check(&parens(MAX_DEPTH + 1), &[], "refused:TooDeep");
    check(&"(".repeat(1 << 20), &[], "refused:TooDeep");
    // A leaf is one level, each NOT one more: MAX_DEPTH - 1 of them fit.
    let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
    check(&nots(MAX_DEPTH - 1), &[("a", "x")], "TRUE");
    check(&nots(MAX_DEPTH), &[], "refused:TooDeep");
    check(&nots(1 << 18), &[], "refused:TooDeep");
    // `- 1` is the literal -1; each further minus negates it once more (99: -1).
    let minuses = |n: usize| format!("a > {}1", "- ".repeat(n));
    check(&minuses(MAX_DEPTH - 1), &[("a", "0")], "TRUE");
    check(&minuses(MAX_DEPTH), &[], "refused:TooDeep");
    check(&minuses(1 << 18), &[], "refused:TooDeep");
    // `a = '1'` is two levels, each further AND operand one more.
    let chain = |n: usize, op: &str| vec!["a = '1'"; n].join(op);
    check(&chain(MAX_DEPTH - 1, " AND "), &[("a", "1")], "TRUE");
    check(&chain(MAX_DEPTH, " OR "), &[], "refused:TooDeep");
    check(&chain(100_000, " OR "), &[], "refused:TooDeep");
    let error = parse(&chain(MAX_DEPTH, " AND ")).unwrap_err();
    assert_eq!(error.column(), 1 + (MAX_DEPTH - 1) * "a = '1' AND ".len(), "points at the operand too many: {error}");
    // Parentheses in strings and comments are text, not nesting.
    let deep_text = "(".repeat(10 * MAX_DEPTH);
    check(&format!("a = '{deep_text}'"), &[("a", &deep_text)], "TRUE");
    check(&format!("a = '1' /* {deep_text} */"), &[("a", "1")], "TRUE");
    check(&format!("a = '1' -- {deep_text}"), &[("a", "1")], "TRUE");
    check(&format!("a = 'it''s {deep_text}'"), &[("a", &format!("it's {deep_text}"))], "TRUE");
    // Long literals, names and lists.
    let long = "x".repeat(1 << 20);
    check(&format!("{long} = '{long}'"), &[(long.as_str(), long.as_str())], "TRUE");
    let values: Vec<String> = (0..20_000).map(|i| format!("'{i}'")).collect();
    check(&format!("a IN ({})", values.join(", ")), &[("a", "19999")], "TRUE");
    check(&format!("a = {}", "9".repeat(10_000)), &[], "refused:IntegerOutOfRange");
    check(&format!("a = 0.{}1", "0".repeat(10_000)), &[("a", "0")], "TRUE"); // underflows to 0.0
    // NaN and infinities: as literals refused, as property values Java's.
    check("a > 1e309", &[], "refused:DoubleOutOfRange");
    check("a > 1.5", &[("a", "NaN")], "TRUE");
    check("a < 1.5", &[("a", "-Infinity")], "TRUE");
    check("a = 1.5", &[("a", "Infinity")], "FALSE");
    check("a BETWEEN -9223372036854775807 AND 9223372036854775807", &[("a", "-9223372036854775808")], "FALSE");
    check("a > -2147483648", &[("a", "-2147483648")], "FALSE");
}
