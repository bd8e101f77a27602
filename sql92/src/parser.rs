//! Text to [`Expr`]: the pest grammar in `sql92.pest` plus the checks RocketMQ
//! makes while building its expression tree, each reported with a position.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::{CompareOp, Expr, Literal, TextMatchKind};
use crate::error::{ParseError, ParseErrorKind};
use crate::value::{Value, java_compare};

#[derive(pest_derive::Parser)]
#[grammar = "sql92.pest"]
struct Grammar;

/// How deeply an expression may nest: parentheses, and the levels of its tree
/// (each operator, `NOT`, unary minus, and each operand of an `AND`/`OR` chain
/// counts one). Parsing, compiling and evaluating recurse once per level (the
/// grammar takes about 22 KiB of stack per parenthesis unoptimised, 5 KiB at
/// opt-level 1), so the limit keeps them within a 2 MiB thread stack even in an
/// unoptimised build. Real subscriptions nest a few levels, and a long list of
/// alternatives is an `IN`.
pub const MAX_DEPTH: usize = 64;

/// Parses a subscription expression, applying every compile-time check.
/// An expression nested deeper than [`MAX_DEPTH`] is refused
/// ([`ParseErrorKind::TooDeep`]).
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    check_parentheses(source)?;
    let mut pairs = Grammar::parse(Rule::selector, source).map_err(|error| syntax_error(source, &error))?;
    let selector = pairs.next().expect("the selector rule always yields one pair");
    let or_expr = selector.into_inner().next().expect("a selector starts with an expression");
    let builder = Builder { source };
    let root = builder.or_expr(or_expr)?;
    builder.require_boolean(&root)?;
    Ok(root.expr)
}

/// A built subtree with the source range it came from.
struct Node {
    expr: Expr,
    start: usize,
    end: usize,
    /// Levels of `expr`'s tree (a leaf is 1).
    depth: usize,
    /// Offset of a `NOT` that reaches this node without parentheses.
    bare_not: Option<usize>,
}

impl Node {
    fn leaf(expr: Expr, start: usize, end: usize) -> Node {
        Node { expr, start, end, depth: 1, bare_not: None }
    }
}

/// Refuses parentheses nested deeper than [`MAX_DEPTH`] before the grammar,
/// which recurses once per level, sees them. String literals and comments are
/// skipped as the grammar skips them (a `''` inside a string ends one string
/// and starts the next, which skips the same text).
fn check_parentheses(source: &str) -> Result<(), ParseError> {
    let bytes = source.as_bytes();
    let find = |from: usize, what: &[u8]| {
        bytes.get(from..).and_then(|rest| rest.windows(what.len()).position(|w| w == what)).map(|p| from + p)
    };
    let (mut depth, mut at) = (0usize, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'\'' => at = find(at + 1, b"'").unwrap_or(bytes.len()),
            b'/' if bytes.get(at + 1) == Some(&b'*') => at = find(at + 2, b"*/").map_or(bytes.len(), |end| end + 1),
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = bytes[at..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(bytes.len(), |p| at + p);
            }
            b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let kind = ParseErrorKind::TooDeep { limit: MAX_DEPTH };
                    return Err(ParseError::new(kind, source, at, "("));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

struct Builder<'s> {
    source: &'s str,
}

impl Builder<'_> {
    fn error(&self, kind: ParseErrorKind, start: usize, end: usize) -> ParseError {
        ParseError::new(kind, self.source, start, &self.source[start..end])
    }

    fn node_error(&self, kind: ParseErrorKind, node: &Node) -> ParseError {
        self.error(kind, node.start, node.end)
    }

    /// A node over `children`, one level deeper than the deepest of them;
    /// refused past [`MAX_DEPTH`], pointing at `at` (where the level was added).
    fn branch(&self, expr: Expr, start: usize, end: usize, children: &[usize], at: usize) -> Result<Node, ParseError> {
        let depth = 1 + children.iter().copied().max().unwrap_or(0);
        if depth > MAX_DEPTH {
            let found = token_at(self.source, at);
            return Err(ParseError::new(ParseErrorKind::TooDeep { limit: MAX_DEPTH }, self.source, at, found));
        }
        Ok(Node { expr, start, end, depth, bare_not: None })
    }

    fn or_expr(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        self.logic_chain(pair, Rule::and_expr, Expr::Or)
    }

    /// `operand (keyword operand)*`, left-associative, each operand boolean.
    fn logic_chain(
        &self,
        pair: Pair<'_, Rule>,
        operand_rule: Rule,
        combine: fn(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Node, ParseError> {
        let mut left: Option<Node> = None;
        for inner in pair.into_inner().filter(|p| p.as_rule() == operand_rule) {
            let right = match operand_rule {
                Rule::and_expr => self.logic_chain(inner, Rule::equality, Expr::And)?,
                _ => self.equality(inner)?,
            };
            left = Some(match left {
                None => right,
                Some(left) => {
                    self.require_boolean(&left)?;
                    self.require_boolean(&right)?;
                    let (start, end, depths) = (left.start, right.end, [left.depth, right.depth]);
                    self.branch(combine(Box::new(left.expr), Box::new(right.expr)), start, end, &depths, right.start)?
                }
            });
        }
        Ok(left.expect("the grammar requires at least one operand"))
    }

    fn equality(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut inner = pair.into_inner();
        let mut left = self.comparison(inner.next().expect("equality starts with a comparison"))?;
        let mut pending_op = None;
        for part in inner {
            match part.as_rule() {
                Rule::equal_op => {
                    pending_op = Some(if part.as_str() == "=" { CompareOp::Equal } else { CompareOp::NotEqual });
                }
                Rule::comparison => {
                    let op = pending_op.take().expect("an operand follows = or <>");
                    let right = self.comparison(part)?;
                    self.check_equality_operands(&left, &right)?;
                    let (start, end, depths) = (left.start, right.end, [left.depth, right.depth]);
                    let expr = Expr::Compare { op, left: Box::new(left.expr), right: Box::new(right.expr) };
                    left = self.branch(expr, start, end, &depths, right.start)?;
                }
                _ => {
                    self.reject_bare_not(&left)?;
                    let (at, end) = (part.as_span().start(), part.as_span().end());
                    let negated = part.into_inner().any(|p| p.as_rule() == Rule::kw_not);
                    let (start, depth) = (left.start, left.depth);
                    let expr = Expr::IsNull { operand: Box::new(left.expr), negated };
                    left = self.branch(expr, start, end, &[depth], at)?;
                }
            }
        }
        Ok(left)
    }

    fn comparison(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut inner = pair.into_inner();
        let mut left = self.unary(inner.next().expect("comparison starts with an operand"))?;
        let mut pending_op = None;
        for part in inner {
            if part.as_rule() == Rule::order_op {
                pending_op = Some(match part.as_str() {
                    "<" => CompareOp::Less,
                    "<=" => CompareOp::LessOrEqual,
                    ">" => CompareOp::Greater,
                    _ => CompareOp::GreaterOrEqual,
                });
                continue;
            }
            left = match (part.as_rule(), pending_op.take()) {
                (Rule::unary, Some(op)) => {
                    let right = self.unary(part)?;
                    self.check_orderable(&left)?;
                    self.check_orderable(&right)?;
                    let (start, end, depths) = (left.start, right.end, [left.depth, right.depth]);
                    let expr = Expr::Compare { op, left: Box::new(left.expr), right: Box::new(right.expr) };
                    self.branch(expr, start, end, &depths, right.start)?
                }
                (Rule::between, _) => self.between(left, part)?,
                (Rule::in_list, _) => self.in_list(left, part)?,
                _ => self.text_match(left, part)?,
            };
        }
        Ok(left)
    }

    fn between(&self, operand: Node, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let (at, end) = (pair.as_span().start(), pair.as_span().end());
        let mut negated = false;
        let mut bounds = Vec::with_capacity(2);
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::kw_not => negated = true,
                Rule::unary => bounds.push(self.unary(part)?),
                _ => {}
            }
        }
        let high = bounds.pop().expect("BETWEEN has a high bound");
        let low = bounds.pop().expect("BETWEEN has a low bound");
        for node in [&operand, &low, &high] {
            self.check_orderable(node)?;
        }
        // RocketMQ checks constant bounds for BETWEEN only, not NOT BETWEEN.
        if !negated
            && let (Expr::Literal(low_value), Expr::Literal(high_value)) = (&low.expr, &high.expr)
            && java_compare(Value::from(high_value), Value::from(low_value)).is_ok_and(|o| o.is_lt())
        {
            return Err(self.error(ParseErrorKind::ReversedBounds, low.start, high.end));
        }
        let (start, depths) = (operand.start, [operand.depth, low.depth, high.depth]);
        let expr = Expr::Between {
            operand: Box::new(operand.expr),
            low: Box::new(low.expr),
            high: Box::new(high.expr),
            negated,
        };
        self.branch(expr, start, end, &depths, at)
    }

    fn in_list(&self, operand: Node, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let (at, end) = (pair.as_span().start(), pair.as_span().end());
        self.reject_bare_not(&operand)?;
        let Expr::Property(property) = operand.expr else {
            return Err(self.node_error(ParseErrorKind::InNeedsProperty, &operand));
        };
        let mut negated = false;
        let mut values = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::kw_not => negated = true,
                Rule::string => values.push(unquote(part)),
                _ => {}
            }
        }
        let expr = Expr::In { property, values, negated };
        self.branch(expr, operand.start, end, &[operand.depth], at)
    }

    fn text_match(&self, operand: Node, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let (at, end) = (pair.as_span().start(), pair.as_span().end());
        self.reject_bare_not(&operand)?;
        let mut negated = false;
        let mut kind = TextMatchKind::Contains;
        let mut needle = String::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::kw_not => negated = true,
                Rule::text_op => {
                    let keyword = part.into_inner().next().expect("text_op wraps a keyword");
                    kind = match keyword.as_rule() {
                        Rule::kw_contains => TextMatchKind::Contains,
                        Rule::kw_startswith => TextMatchKind::StartsWith,
                        _ => TextMatchKind::EndsWith,
                    };
                }
                Rule::string => needle = unquote(part),
                _ => {}
            }
        }
        let (start, depth) = (operand.start, operand.depth);
        let expr = Expr::TextMatch { operand: Box::new(operand.expr), kind, needle, negated };
        self.branch(expr, start, end, &[depth], at)
    }

    /// `prefix* primary`: the prefixes apply from the innermost (last) outwards.
    fn unary(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut prefixes = Vec::new();
        let mut primary = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::prefix => prefixes.push(part),
                _ => primary = Some(part),
            }
        }
        let primary = primary.expect("unary ends with a primary");
        // A minus directly before a bare number is part of the literal.
        let mut operand = match (prefixes.last(), direct_number(&primary)) {
            (Some(prefix), Some(number)) if prefix_rule(prefix) == Rule::minus => {
                let start = prefix.as_span().start();
                let end = primary.as_span().end();
                let literal = self.number(number, true)?;
                prefixes.pop();
                Node::leaf(Expr::Literal(literal), start, end)
            }
            _ => self.primary(primary)?,
        };
        for prefix in prefixes.iter().rev() {
            let start = prefix.as_span().start();
            operand = match prefix_rule(prefix) {
                Rule::minus => {
                    let (end, depth, bare_not) = (operand.end, operand.depth, operand.bare_not);
                    let node = self.branch(Expr::Negate(Box::new(operand.expr)), start, end, &[depth], start)?;
                    Node { bare_not, ..node }
                }
                Rule::plus => Node { start, ..operand },
                _ => {
                    self.require_boolean(&operand)?;
                    let (end, depth) = (operand.end, operand.depth);
                    let node = self.branch(Expr::Not(Box::new(operand.expr)), start, end, &[depth], start)?;
                    Node { bare_not: Some(start), ..node }
                }
            };
        }
        Ok(operand)
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = pair.as_span();
        let (start, end) = (span.start(), span.end());
        let inner = pair.into_inner().next().expect("primary has content");
        let expr = match inner.as_rule() {
            Rule::identifier => Expr::Property(inner.as_str().to_owned()),
            Rule::group => {
                let or_expr = inner.into_inner().next().expect("a group holds an expression");
                let node = self.or_expr(or_expr)?;
                // Parentheses settle any NOT inside them.
                return Ok(Node { start, end, bare_not: None, ..node });
            }
            _ => Expr::Literal(self.literal(inner)?),
        };
        Ok(Node::leaf(expr, start, end))
    }

    fn literal(&self, pair: Pair<'_, Rule>) -> Result<Literal, ParseError> {
        let token = pair.into_inner().next().expect("literal wraps a token");
        Ok(match token.as_rule() {
            Rule::string => Literal::String(unquote(token)),
            Rule::kw_true => Literal::Bool(true),
            Rule::kw_false => Literal::Bool(false),
            Rule::kw_null => Literal::Null,
            _ => self.number(token, false)?,
        })
    }

    /// An `integer` or `double` token, negated when `negative`. An integer's
    /// type follows its magnitude, as RocketMQ negates after typing.
    fn number(&self, token: Pair<'_, Rule>, negative: bool) -> Result<Literal, ParseError> {
        let span = token.as_span();
        let text = token.as_str();
        if token.as_rule() == Rule::double {
            let value: f64 = text.parse().unwrap_or(f64::INFINITY);
            if !value.is_finite() {
                return Err(self.error(ParseErrorKind::DoubleOutOfRange, span.start(), span.end()));
            }
            return Ok(Literal::Double(if negative { -value } else { value }));
        }
        let digits = text.trim_end_matches(['l', 'L']);
        let magnitude: i64 =
            digits.parse().map_err(|_| self.error(ParseErrorKind::IntegerOutOfRange, span.start(), span.end()))?;
        let value = if negative { -magnitude } else { magnitude };
        Ok(match i32::try_from(magnitude) {
            Ok(_) => Literal::Int(value as i32),
            Err(_) => Literal::Long(value),
        })
    }

    fn require_boolean(&self, node: &Node) -> Result<(), ParseError> {
        let boolean = match &node.expr {
            Expr::Literal(literal) => matches!(literal, Literal::Bool(_) | Literal::Null),
            Expr::Negate(_) => false,
            _ => true,
        };
        if boolean { Ok(()) } else { Err(self.node_error(ParseErrorKind::NotBoolean, node)) }
    }

    fn reject_bare_not(&self, node: &Node) -> Result<(), ParseError> {
        match node.bare_not {
            Some(at) => Err(self.error(ParseErrorKind::AmbiguousNot, at, at + 3)),
            None => Ok(()),
        }
    }

    fn check_equality_operands(&self, left: &Node, right: &Node) -> Result<(), ParseError> {
        for node in [left, right] {
            self.reject_bare_not(node)?;
            if node.expr == Expr::Literal(Literal::Null) {
                return Err(self.node_error(ParseErrorKind::NullComparison, node));
            }
        }
        // RocketMQ only refuses a boolean constant on the left; Weir refuses
        // both orders (the other one is always FALSE there).
        if let (Expr::Literal(l), Expr::Literal(r)) = (&left.expr, &right.expr)
            && matches!(l, Literal::Bool(_)) != matches!(r, Literal::Bool(_))
        {
            return Err(self.error(ParseErrorKind::BooleanMismatch, left.start, right.end));
        }
        Ok(())
    }

    fn check_orderable(&self, node: &Node) -> Result<(), ParseError> {
        self.reject_bare_not(node)?;
        let orderable = match &node.expr {
            Expr::Literal(literal) => {
                matches!(literal, Literal::Int(_) | Literal::Long(_) | Literal::Double(_))
            }
            Expr::Property(_) | Expr::Negate(_) => true,
            _ => false,
        };
        if orderable { Ok(()) } else { Err(self.node_error(ParseErrorKind::NotOrderable, node)) }
    }
}

/// The operator of a `prefix` pair.
fn prefix_rule(prefix: &Pair<'_, Rule>) -> Rule {
    prefix.clone().into_inner().next().expect("prefix wraps an operator").as_rule()
}

/// The numeric token when `primary` is a bare number (no parentheses).
fn direct_number<'i>(primary: &Pair<'i, Rule>) -> Option<Pair<'i, Rule>> {
    let literal = primary.clone().into_inner().next()?;
    if literal.as_rule() != Rule::literal {
        return None;
    }
    let token = literal.into_inner().next()?;
    matches!(token.as_rule(), Rule::integer | Rule::double).then_some(token)
}

/// The text of a `string` pair with `''` turned back into `'`.
fn unquote(pair: Pair<'_, Rule>) -> String {
    let body = pair.into_inner().next().map_or("", |p| p.as_str());
    body.replace("''", "'")
}

fn syntax_error(source: &str, error: &pest::error::Error<Rule>) -> ParseError {
    let offset = match error.location {
        pest::error::InputLocation::Pos(pos) => pos,
        pest::error::InputLocation::Span((start, _)) => start,
    };
    let (expected, trailing) = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            (describe_expected(positives), positives.contains(&Rule::EOI))
        }
        pest::error::ErrorVariant::CustomError { message } => (message.clone(), false),
    };
    let kind = if trailing && offset < source.len() {
        ParseErrorKind::TrailingInput { expected }
    } else {
        ParseErrorKind::Syntax { expected }
    };
    ParseError::new(kind, source, offset, token_at(source, offset))
}

/// The token starting at `offset`, for error messages.
fn token_at(source: &str, offset: usize) -> &str {
    let rest = &source[offset.min(source.len())..];
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.';
    match rest.chars().next() {
        None => "",
        Some(c) if is_word(c) => {
            let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            &rest[..end]
        }
        Some(c) => &rest[..c.len_utf8()],
    }
}

fn describe_expected(positives: &[Rule]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for rule in positives {
        let name = rule_name(*rule);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.as_slice() {
        [] => "a valid expression".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of input",
        Rule::kw_or => "OR",
        Rule::kw_and => "AND",
        Rule::kw_not => "NOT",
        Rule::kw_between => "BETWEEN",
        Rule::kw_in => "IN",
        Rule::kw_is => "IS",
        Rule::kw_null => "NULL",
        Rule::kw_true => "TRUE",
        Rule::kw_false => "FALSE",
        Rule::kw_contains | Rule::kw_startswith | Rule::kw_endswith | Rule::text_op => "CONTAINS, STARTSWITH, ENDSWITH",
        Rule::equal_op => "=, <>",
        Rule::is_null => "IS [NOT] NULL",
        Rule::between => "[NOT] BETWEEN",
        Rule::in_list => "[NOT] IN",
        Rule::text_match => "[NOT] CONTAINS, STARTSWITH, ENDSWITH",
        Rule::order_op => "<, <=, >, >=",
        Rule::string | Rule::string_body => "a string literal",
        Rule::integer | Rule::double | Rule::exponent => "a number",
        Rule::identifier => "a property name",
        _ => "a value (property, literal or parenthesised expression)",
    }
}
