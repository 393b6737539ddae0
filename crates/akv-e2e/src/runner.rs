//! The runner of the end-to-end steps (the `harness = false` test target `e2e`): the
//! steps share one test bed, which takes seconds to start, so they run in one process,
//! in their order, each named like a test. A filter picks steps as libtest's does
//! (`cargo test -p akv-e2e -- NAME` runs the steps whose name contains NAME; `--exact`,
//! `--skip NAME`, `--list`), and a picked step brings along the earlier steps it builds
//! on. The shared bed is set up only when a step is to run. Each step's name and result is
//! printed; a failing step does not stop the others, and the run fails at the end naming
//! every failed step.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

/// One named step over the shared bed `B`.
pub struct Step<B> {
    /// `theme::what`, as filters match it.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// Earlier steps whose state (objects, registrations) this one builds on.
    pub needs: &'static [&'static str],
    pub run: fn(&mut B),
}

/// What the shared bed does between and after steps.
pub trait Bed {
    /// After a step failed, before the next: put back what later steps need.
    fn recover(&mut self);
    /// Printed once at the end when any step failed (logs of the processes).
    fn failure_report(&self) -> String;
    /// After the last step: stop everything and check that nothing is left behind; an
    /// error fails the run like a failed step (named `teardown`).
    fn teardown(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The command line, as libtest reads it (the options that make sense here).
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    patterns: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    /// `--list`: print the names, run nothing.
    pub list: bool,
    /// `--ignored`: no step is ignored, so none runs.
    ignored_only: bool,
}

/// libtest options taken and ignored here: a step's output is never captured and the
/// steps never run in parallel.
const IGNORED_FLAGS: &[&str] = &[
    "--nocapture",
    "--show-output",
    "--include-ignored",
    "--quiet",
    "-q",
    "--test",
    "--bench",
];
const IGNORED_WITH_VALUE: &[&str] = &["--test-threads", "--color", "--format", "-Z"];

impl Filter {
    /// Reads the arguments after the program name; an unknown option is an error that
    /// lists those understood.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Filter, String> {
        let mut filter = Filter::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{what} needs a value"))
            };
            match flag.as_str() {
                "--exact" => filter.exact = true,
                "--list" => filter.list = true,
                "--ignored" => filter.ignored_only = true,
                "--skip" => filter.skip.push(value("--skip")?),
                f if IGNORED_FLAGS.contains(&f) => {}
                f if IGNORED_WITH_VALUE.contains(&f) => {
                    value(f)?;
                }
                f if f.starts_with('-') => {
                    return Err(format!(
                        "unknown option {f}: the e2e runner takes step name filters, --exact, \
                         --skip NAME, --list, and ignores {} and {} VALUE",
                        IGNORED_FLAGS.join(", "),
                        IGNORED_WITH_VALUE.join(", ")
                    ))
                }
                _ => filter.patterns.push(arg),
            }
        }
        Ok(filter)
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    /// Whether the command line picks the step called `name` (before what it needs).
    pub fn picks(&self, name: &str) -> bool {
        !self.ignored_only
            && (self.patterns.is_empty() || self.patterns.iter().any(|p| self.matches(p, name)))
            && !self.skip.iter().any(|p| self.matches(p, name))
    }
}

/// The steps to run, in their order: each with the step that brought it in when it was not
/// picked itself. Errors when a step needs one that is not before it in the list.
pub fn plan<B>(
    steps: &[Step<B>],
    filter: &Filter,
) -> Result<Vec<(usize, Option<&'static str>)>, String> {
    let mut why: Vec<Option<Option<&'static str>>> = steps
        .iter()
        .map(|s| filter.picks(s.name).then_some(None))
        .collect();
    // Later steps first, so that a need of a need is found as well.
    for i in (0..steps.len()).rev() {
        if why[i].is_none() {
            continue;
        }
        for need in steps[i].needs {
            let j = steps[..i]
                .iter()
                .position(|s| s.name == *need)
                .ok_or_else(|| {
                    format!(
                        "step {} needs {need}, which is not an earlier step",
                        steps[i].name
                    )
                })?;
            if why[j].is_none() {
                why[j] = Some(Some(steps[i].name));
            }
        }
    }
    Ok(why
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| w.map(|w| (i, w)))
        .collect())
}

/// Runs the steps the command line picks (`std::env::args`) over the bed `setup` makes;
/// the exit code says whether all passed.
pub fn run_main<B: Bed>(steps: &[Step<B>], setup: impl FnOnce() -> B) -> ExitCode {
    let filter = match Filter::from_args(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    if filter.list {
        for step in steps {
            println!("{}: test", step.name);
        }
        return ExitCode::SUCCESS;
    }
    let plan = match plan(steps, &filter) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\nrunning {} steps", plan.len());
    if plan.is_empty() {
        println!(
            "\ntest result: ok. 0 passed; 0 failed; {} filtered out",
            steps.len()
        );
        return ExitCode::SUCCESS;
    }
    let t0 = Instant::now();
    let mut bed = setup();
    let setup_secs = t0.elapsed().as_secs_f64();
    eprintln!("e2e: set up in {setup_secs:.1}s");
    let mut failed = Vec::new();
    let mut times = vec![("set-up", setup_secs)];
    for (i, needed_by) in &plan {
        let step = &steps[*i];
        let why = needed_by
            .map(|n| format!(" (needed by {n})"))
            .unwrap_or_default();
        eprintln!("e2e: --- {}{why}: {}", step.name, step.about);
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| (step.run)(&mut bed)));
        let secs = t.elapsed().as_secs_f64();
        times.push((step.name, secs));
        match result {
            Ok(()) => eprintln!("e2e: ok   {} ({secs:.1}s)", step.name),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("e2e: FAIL {} ({secs:.1}s): {msg}", step.name);
                failed.push(step.name);
                bed.recover();
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("{}", bed.failure_report());
    }
    let t = Instant::now();
    let torn_down = bed.teardown();
    let secs = t.elapsed().as_secs_f64();
    times.push(("teardown", secs));
    match torn_down {
        Ok(()) => eprintln!("e2e: ok   teardown ({secs:.1}s)"),
        Err(e) => {
            eprintln!("e2e: FAIL teardown ({secs:.1}s): {e}");
            failed.push("teardown");
        }
    }
    eprintln!("e2e: times:");
    for (name, secs) in &times {
        eprintln!("e2e:   {secs:7.1}s  {name}");
    }
    eprintln!(
        "e2e: {} steps, {} failed, {:.1}s",
        plan.len(),
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    let filtered = steps.len() - plan.len();
    let passed = plan.len() - failed.iter().filter(|f| **f != "teardown").count();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed; {filtered} filtered out");
        ExitCode::SUCCESS
    } else {
        println!("\nfailed steps:\n    {}", failed.join("\n    "));
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed; {filtered} filtered out",
            failed.len()
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &mut ()) {}

    const STEPS: &[Step<()>] = &[
        Step {
            name: "setup::register",
            about: "",
            needs: &[],
            run: noop,
        },
        Step {
            name: "pods::create",
            about: "",
            needs: &["setup::register"],
            run: noop,
        },
        Step {
            name: "pods::reuse",
            about: "",
            needs: &["pods::create"],
            run: noop,
        },
        Step {
            name: "other::alone",
            about: "",
            needs: &[],
            run: noop,
        },
    ];

    fn args(a: &[&str]) -> Filter {
        Filter::from_args(a.iter().map(|s| s.to_string())).expect("arguments")
    }

    fn names(filter: &Filter) -> Vec<(&'static str, Option<&'static str>)> {
        plan(STEPS, filter)
            .expect("plan")
            .into_iter()
            .map(|(i, why)| (STEPS[i].name, why))
            .collect()
    }

    #[test]
    fn no_filter_runs_every_step_in_order() {
        let all: Vec<_> = STEPS.iter().map(|s| (s.name, None)).collect();
        assert_eq!(names(&args(&["--nocapture", "--test-threads", "1"])), all);
    }

    #[test]
    fn a_picked_step_brings_what_it_builds_on() {
        assert_eq!(
            names(&args(&["reuse"])),
            [
                ("setup::register", Some("pods::create")),
                ("pods::create", Some("pods::reuse")),
                ("pods::reuse", None),
            ]
        );
        assert_eq!(names(&args(&["alone"])), [("other::alone", None)]);
    }

    #[test]
    fn exact_skip_and_ignored_select_as_libtest_does() {
        assert_eq!(names(&args(&["--exact", "pods"])), []);
        assert_eq!(
            names(&args(&["--exact", "setup::register"])),
            [("setup::register", None)]
        );
        assert_eq!(
            names(&args(&["--skip=pods", "--skip", "setup"])),
            [("other::alone", None)]
        );
        assert_eq!(names(&args(&["--ignored"])), []);
        assert_eq!(names(&args(&["a_unit_test_elsewhere"])), []);
    }

    #[test]
    fn bad_command_lines_and_needs_are_errors() {
        let err = Filter::from_args(["--bogus".to_string()]).expect_err("unknown option");
        assert!(err.contains("unknown option --bogus"), "{err}");
        assert!(Filter::from_args(["--skip".to_string()]).is_err());
        let bad = [Step::<()> {
            name: "a",
            about: "",
            needs: &["b"],
            run: noop,
        }];
        let err = plan(&bad, &Filter::default()).expect_err("unknown need");
        assert!(err.contains("step a needs b"), "{err}");
    }
}
