//! `weir filter`: try SQL92 subscriptions offline, as the broker will run them.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use serde::{Deserialize, Serialize};
use weir_sql92::{EvalError, Filter, ParseError, Truth, WithTag};

use crate::cmd::parse_property;

/// Subscription tools.
#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Parse, compile and evaluate a SQL92 subscription against one message
    /// (`--sql`), or against a batch of cases read from stdin (`--batch`).
    ///
    /// A parse error prints the position and what was expected, and exits 2
    /// (`--sql` only; `--batch` reports each case on its own line and exits 0).
    Check(CheckArgs),
}

/// Arguments of `weir filter check`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["sql", "batch"])))]
pub struct CheckArgs {
    /// The subscription expression.
    #[arg(long, value_name = "EXPR")]
    sql: Option<String>,
    /// The message's tag, visible to the expression as `TAGS` (wins over a
    /// `--prop TAGS=...`).
    #[arg(long, requires = "sql")]
    tag: Option<String>,
    /// A user property of the message; repeat for more.
    #[arg(long = "prop", value_name = "NAME=VALUE", value_parser = parse_property, requires = "sql")]
    props: Vec<(String, String)>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Read JSON lines `{"sql": "...", "tag": "...", "props": {"k": "v"}}`
    /// (`tag` and `props` optional) from stdin; write one JSON result line per
    /// input line, in order.
    #[arg(long)]
    batch: bool,
}

/// Runs a subscription tool.
pub fn run(command: FilterCommand) -> anyhow::Result<ExitCode> {
    match command {
        FilterCommand::Check(args) => match args.sql {
            Some(sql) => check_one(&sql, args.tag.as_deref(), &args.props, args.json),
            None => check_batch(),
        },
    }
}

/// One result line. The field names are part of the command's interface.
#[derive(Debug, Serialize)]
#[serde(tag = "parse", rename_all = "snake_case")]
enum Outcome {
    Ok { value: &'static str, deliver: bool },
    Error { message: String, line: usize, column: usize },
    InvalidInput { message: String },
}

/// One batch case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    sql: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    props: BTreeMap<String, String>,
}

fn check_one(sql: &str, tag: Option<&str>, props: &[(String, String)], json: bool) -> anyhow::Result<ExitCode> {
    let filter = match Filter::parse(sql) {
        Ok(filter) => filter,
        Err(error) => {
            if json {
                println!("{}", serde_json::to_string(&refused(&error))?);
            } else {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let result = filter.evaluate(&WithTag { tag, properties: props });
    if json {
        println!("{}", serde_json::to_string(&evaluated(result))?);
    } else {
        match result {
            Ok(truth) => println!("result: {truth}"),
            Err(error) => println!("result: ERROR ({error})"),
        }
        let delivered = if result == Ok(Truth::True) { "yes" } else { "no" };
        println!("delivered: {delivered}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_batch() -> anyhow::Result<ExitCode> {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).context("cannot read stdin")? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let outcome = match serde_json::from_slice::<Case>(text) {
            Ok(case) => check_case(&case),
            Err(error) => Outcome::InvalidInput { message: error.to_string() },
        };
        serde_json::to_writer(&mut output, &outcome)?;
        output.write_all(b"\n")?;
    }
    output.flush().context("cannot write stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn check_case(case: &Case) -> Outcome {
    match Filter::parse(&case.sql) {
        Ok(filter) => evaluated(filter.evaluate(&WithTag { tag: case.tag.as_deref(), properties: &case.props })),
        Err(error) => refused(&error),
    }
}

fn refused(error: &ParseError) -> Outcome {
    Outcome::Error { message: error.message(), line: error.line(), column: error.column() }
}

fn evaluated(result: Result<Truth, EvalError>) -> Outcome {
    let value = match result {
        Ok(Truth::True) => "true",
        Ok(Truth::False) => "false",
        Ok(Truth::Null) => "null",
        Err(_) => "error",
    };
    Outcome::Ok { value, deliver: result == Ok(Truth::True) }
}
