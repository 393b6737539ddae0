//! No resolved value ever appears in akv-env's output: every error path that could hold
//! one (exec failure of a command that is a reference, NUL in an env var or an argument)
//! names the variable or the argument index instead. Each case stores a marker as the
//! secret's value and checks that the marker is nowhere on stdout or stderr.

mod common;

use common::*;

/// Runs akv-env with the given variables and argv and returns (exit code, stdout+stderr).
fn run(pod: &Pod, tb: &Testbed, vars: &[(&str, &str)], argv: &[&str]) -> (Option<i32>, String) {
    let out = pod.command(tb, vars, argv).output().expect("run akv-env");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn marker() -> String {
    format!("MARKER{}", random_hex(12))
}

#[test]
fn a_command_that_is_a_reference_is_not_shown_when_it_cannot_run() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let m = marker();
    let whole = unique("cmd");
    tb.secret("a", &whole, &format!("/nonexistent/{m}"));
    let part = unique("dir");
    tb.secret("a", &part, &m);

    for argv in [
        vec![format!("akv:{whole}"), "arg".to_string()],
        vec![format!("/opt/${{akv:{part}}}/app")],
    ] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (code, text) = run(&pod, tb, &[], &argv);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("cannot execute the command (it comes from a Key Vault reference, so it is not shown)"),
            "{text}"
        );
        assert!(!text.contains(&m), "the value leaked: {text}");
    }
}

#[test]
fn a_value_with_nul_names_the_variable_or_argument_only() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let m = marker();
    let name = unique("nul");
    tb.secret("a", &name, &format!("{m}\u{0}tail"));
    let reference = format!("akv:{name}");
    let inside = format!("x=${{akv:{name}}}");

    let (code, text) = run(&pod, tb, &[("BLOB", &reference)], &["/bin/true"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("env var BLOB would hold a NUL byte"),
        "{text}"
    );
    assert!(!text.contains(&m), "the value leaked: {text}");

    let (code, text) = run(&pod, tb, &[], &["/bin/true", "plain", &inside]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("argument 2 would hold a NUL byte"), "{text}");
    assert!(!text.contains(&m), "the value leaked: {text}");
}

#[test]
fn a_command_written_in_the_spec_is_still_named() {
    let tb = testbed();
    let pod = Pod::new(tb);
    let (code, text) = run(&pod, tb, &[], &["/nonexistent/plain-app"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cannot execute \"/nonexistent/plain-app\""),
        "{text}"
    );
}
