//! `akv-webhook check`: what admission would say about the pods of some manifests, before
//! they reach a cluster. The same planning and mutation code as admission; no network, no
//! cluster. Each denial, warning and note is a line `FILE:KIND/NAME: message`; the exit
//! code is 0 when nothing is refused, 1 when something is, 2 when an input is unreadable.

mod input;
mod verdict;
mod workloads;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::inject::InjectSettings;
pub use verdict::{verdict, Finding};
pub use workloads::{pod_templates, Workload};

/// Flags of `akv-webhook check`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CheckArgs {
    /// Manifests to check: YAML (several documents per file) or JSON files, directories
    /// (their .yaml, .yml and .json files), or - for standard input.
    #[arg(value_name = "FILE|DIR|-", required_unless_present = "filename")]
    pub paths: Vec<PathBuf>,

    /// A manifest to check, as `kubectl apply -f` takes it. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub filename: Vec<PathBuf>,
}

/// How a check ended, most serious last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Nothing would be refused.
    Clean,
    /// Admission would refuse at least one pod.
    Refused,
    /// An input could not be read; what could be read was checked.
    Unreadable,
}

impl From<Outcome> for ExitCode {
    fn from(result: Outcome) -> ExitCode {
        ExitCode::from(match result {
            Outcome::Clean => 0,
            Outcome::Refused => 1,
            Outcome::Unreadable => 2,
        })
    }
}

/// Checks every pod template of `args`' inputs, printing findings to `out` and read
/// errors to `err`.
pub fn run(
    args: &CheckArgs,
    settings: &InjectSettings,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Outcome {
    let inputs: Vec<PathBuf> = args.filename.iter().chain(&args.paths).cloned().collect();
    let mut result = Outcome::Clean;
    let unreadable = |message: String, err: &mut dyn Write| {
        // A closed stderr leaves nothing to tell.
        let _ = writeln!(err, "akv-webhook check: {message}");
        Outcome::Unreadable
    };
    let files = match input::files(&inputs) {
        Ok(files) => files,
        Err(message) => return unreadable(message, err),
    };
    let mut pods = 0usize;
    for file in files {
        let documents = match input::documents(&file) {
            Ok(documents) => documents,
            Err(message) => {
                result = result.max(unreadable(message, err));
                continue;
            }
        };
        for document in documents {
            let workloads = match pod_templates(&document.value) {
                Ok(workloads) => workloads,
                Err(message) => {
                    let message = format!("{}: {message}", document.source);
                    result = result.max(unreadable(message, err));
                    continue;
                }
            };
            for workload in workloads {
                pods += 1;
                let place = format!("{}:{}/{}", document.source, workload.kind, workload.name);
                for finding in verdict(&workload.pod, settings) {
                    let line = match &finding {
                        Finding::Denied(message) => {
                            result = result.max(Outcome::Refused);
                            format!("{place}: {message}")
                        }
                        Finding::Warning(message) => format!("{place}: warning: {message}"),
                        Finding::Note(message) => format!("{place}: note: {message}"),
                    };
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }
    let _ = writeln!(
        err,
        "akv-webhook check: {pods} pod template(s) checked{}",
        match result {
            Outcome::Clean => ", none refused",
            Outcome::Refused => ", some refused",
            Outcome::Unreadable => ", some inputs unreadable",
        }
    );
    result
}
