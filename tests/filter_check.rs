//! `weir filter check` end to end: the real binary, one message and batch mode.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn weir(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("stdin written");
    child.wait_with_output().expect("weir finishes")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout").lines().map(str::to_owned).collect()
}

#[test]
fn one_message_as_json() {
    let cases = [
        (vec!["--prop", "region=SH", "--prop", "amount=150"], r#"{"parse":"ok","value":"true","deliver":true}"#),
        (vec!["--prop", "region=BJ", "--prop", "amount=150"], r#"{"parse":"ok","value":"false","deliver":false}"#),
        (vec!["--prop", "amount=150"], r#"{"parse":"ok","value":"null","deliver":false}"#),
        (vec!["--prop", "region=SH", "--prop", "amount=lots"], r#"{"parse":"ok","value":"error","deliver":false}"#),
    ];
    for (props, expected) in cases {
        let mut args = vec!["filter", "check", "--sql", "region = 'SH' AND amount > 100", "--json"];
        args.extend(props);
        let output = weir(&args, "");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout_lines(&output), [expected], "{args:?}");
    }
}

#[test]
fn the_tag_is_visible_as_tags() {
    let output = weir(&["filter", "check", "--sql", "TAGS IN ('A', 'B')", "--tag", "B", "--json"], "");
    assert_eq!(stdout_lines(&output), [r#"{"parse":"ok","value":"true","deliver":true}"#]);
}

#[test]
fn one_message_as_text() {
    let output = weir(&["filter", "check", "--sql", "a = 1", "--prop", "a=1"], "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout_lines(&output), ["result: TRUE", "delivered: yes"]);
    let output = weir(&["filter", "check", "--sql", "a = 1", "--prop", "a=x"], "");
    assert_eq!(stdout_lines(&output), ["result: ERROR (property value is not a valid int)", "delivered: no"]);
}

#[test]
fn a_parse_error_is_positioned_and_exits_2() {
    let output = weir(&["filter", "check", "--sql", "a = 1\nAND b LIKE 'x'"], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    assert!(stderr.starts_with("line 2, column 7, at `LIKE`:"), "{stderr}");
    assert!(stderr.contains("  AND b LIKE 'x'\n        ^"), "{stderr}");

    let output = weir(&["filter", "check", "--sql", "NOT a = 1", "--json"], "");
    assert_eq!(output.status.code(), Some(2));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(r#"{"parse":"error","message":"line 1, column 1, at `NOT`: NOT directly"#),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(r#","line":1,"column":1}"#), "{}", lines[0]);
}

#[test]
fn batch_answers_every_line_in_order() {
    let input = [
        r#"{"sql": "TAGS = 'A' AND n > 1", "tag": "A", "props": {"n": "2"}}"#,
        r#"{"sql": "n BETWEEN 1 AND 3", "props": {"n": "7"}}"#,
        "this is not json",
        r#"{"sql": "a >"}"#,
        r#"{"sql": "a IS NULL"}"#,
        r#"{"sql": "a = 1", "props": {"a": 1}}"#,
        r#"{"sql": "a = 1", "props": {"a": "one"}}"#,
    ]
    .join("\n");
    let output = weir(&["filter", "check", "--batch"], &input);
    assert_eq!(output.status.code(), Some(0));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0], r#"{"parse":"ok","value":"true","deliver":true}"#);
    assert_eq!(lines[1], r#"{"parse":"ok","value":"false","deliver":false}"#);
    assert!(lines[2].starts_with(r#"{"parse":"invalid_input","message":""#), "{}", lines[2]);
    assert!(lines[3].starts_with(r#"{"parse":"error","message":"line 1, column 4, at end of input"#), "{}", lines[3]);
    assert!(lines[3].ends_with(r#""line":1,"column":4}"#), "{}", lines[3]);
    assert_eq!(lines[4], r#"{"parse":"ok","value":"true","deliver":true}"#);
    assert!(lines[5].starts_with(r#"{"parse":"invalid_input","message":""#), "{}", lines[5]);
    assert_eq!(lines[6], r#"{"parse":"ok","value":"error","deliver":false}"#);
}
