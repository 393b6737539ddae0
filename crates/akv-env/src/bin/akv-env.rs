//! akv-env: see `akv-env --help`. Errors go to stderr; the exit code is non-zero and the
//! application never starts.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use akv_env::{install, run, Cli, Error, USAGE};

fn main() -> ExitCode {
    let error = match Cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(Cli::Run(argv)) => run(argv),
        Ok(Cli::Install(dir)) => {
            match std::env::current_exe().and_then(|exe| install::install(&exe, &dir)) {
                Ok(path) => {
                    eprintln!("akv-env: installed {}", path.display());
                    return ExitCode::SUCCESS;
                }
                Err(e) => Error::Install(format!("cannot copy akv-env to {}: {e}", dir.display())),
            }
        }
        Ok(Cli::Version) => {
            println!("akv-env {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => e,
    };
    eprintln!("akv-env: {error}");
    ExitCode::from(if matches!(error, Error::Usage(_)) {
        2
    } else {
        1
    })
}
