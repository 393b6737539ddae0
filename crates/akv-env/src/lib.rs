//! akv-env: resolves Azure Key Vault references in its environment and arguments with the
//! pod's workload identity, then `execve`s the application (same PID, nothing left behind).
// `deny`, not `forbid`: restart on change forks, and that one call is allowed where it is
// made (supervise/process.rs, with why it is sound).
#![deny(unsafe_code)]

pub mod config;
pub mod envexec;
pub mod error;
pub mod files;
pub mod hints;
pub mod identities;
pub mod install;
pub mod keyvault;
pub mod parts;
pub mod plan;
pub mod resolve;
pub mod supervise;

use std::ffi::OsString;
use std::path::PathBuf;

pub use error::Error;

pub const USAGE: &str = "\
akv-env: resolves Azure Key Vault references, then runs the application in its place.

Usage:
  akv-env -- CMD [ARG...]   resolve akv: references in the environment and ARGs, remove
                            AKV_INJECTOR_* variables, then execve CMD (looked up on PATH)
  akv-env install DIR       copy this executable to DIR/akv-env (mode 0555)
  akv-env --version | --help

References: akv:NAME[/VERSION][#PART], akv://VAULT/NAME[/VERSION][#PART], or ${akv:...}
inside a longer value; PART is value (default), cert, key, chain, pubkey, pfx, base64
or json:FIELD[.FIELD...].
Identity (AKV_INJECTOR_AUTH): workload-identity (default): AZURE_CLIENT_ID,
AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST; service-principal:
AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH
(PEM with key, or PKCS#12 with AZURE_CLIENT_CERTIFICATE_PASSWORD), removed before exec
unless AKV_INJECTOR_KEEP_CREDENTIALS=true; managed-identity: IMDS, AKV_INJECTOR_CLIENT_ID
picks a user-assigned identity.
Settings (set by akv-webhook): AKV_INJECTOR_VAULT, AKV_INJECTOR_CLIENT_ID,
AKV_INJECTOR_TENANT_ID, AKV_INJECTOR_IGNORE_MISSING, AKV_INJECTOR_TIMEOUT,
AKV_INJECTOR_ALLOW_VAULT_HOSTS, AKV_INJECTOR_AUTH, AKV_INJECTOR_VAULT_CLIENT_IDS,
AKV_INJECTOR_KEEP_CREDENTIALS, AKV_INJECTOR_FILES_PATH and AKV_INJECTOR_FILE_<FILENAME>
(files written, mode 0400, before CMD starts), AKV_INJECTOR_REFRESH (restart on change:
stay as the application's parent and check every interval, 1s-24h, for new versions),
AKV_INJECTOR_GRACE (SIGTERM-to-SIGKILL wait of such a restart).
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    Run(Vec<OsString>),
    Install(PathBuf),
    Version,
    Help,
}

impl Cli {
    /// Parses the arguments after the program name.
    pub fn parse(args: Vec<OsString>) -> Result<Cli, Error> {
        let mut it = args.into_iter();
        let first = it.next();
        match first.as_ref().and_then(|a| a.to_str()) {
            Some("--") => {
                let rest: Vec<OsString> = it.collect();
                if rest.is_empty() {
                    return Err(Error::Usage(
                        "no command after '--': write akv-env -- CMD [ARG...]".into(),
                    ));
                }
                Ok(Cli::Run(rest))
            }
            Some("install") => match (it.next(), it.next()) {
                (Some(dir), None) => Ok(Cli::Install(PathBuf::from(dir))),
                _ => Err(Error::Usage("write akv-env install DIR".into())),
            },
            Some("--version" | "-V") => Ok(Cli::Version),
            Some("--help" | "-h") => Ok(Cli::Help),
            None => Err(Error::Usage(
                "nothing to do: write akv-env -- CMD [ARG...] (see akv-env --help)".into(),
            )),
            Some(_) => Err(Error::Usage(format!(
                "unexpected argument {:?}: write akv-env -- CMD [ARG...] (see akv-env --help)",
                first.unwrap_or_default()
            ))),
        }
    }
}

/// `akv-env -- CMD...`: resolve, then exec. Returns only on failure.
pub fn run(argv: Vec<OsString>) -> Error {
    // Restart on change only when asked for; then akv-env forks before reading any value.
    // A setting that does not parse is reported by `prepare` below.
    let env: config::Env = std::env::vars_os().collect();
    let refresh = config::EnvConfig::from_env(&env)
        .ok()
        .and_then(|cfg| cfg.refresh.map(|interval| (cfg, interval)));
    drop(env);
    if let Some((cfg, interval)) = refresh {
        return supervise::run(argv, &cfg, interval);
    }
    match prepare(argv) {
        Ok(app) => app.exec(),
        Err(e) => e,
    }
}

/// Everything up to the exec: the application's argv and environment.
pub fn prepare(argv: Vec<OsString>) -> Result<envexec::App, Error> {
    prepare_watched(argv).map(|(app, _)| app)
}

/// [`prepare`], plus the id and version of every object read at "latest" (what restart on
/// change watches; no value).
pub fn prepare_watched(
    argv: Vec<OsString>,
) -> Result<(envexec::App, Vec<keyvault::current::Watched>), Error> {
    let env: config::Env = std::env::vars_os().collect();
    let cfg = config::EnvConfig::from_env(&env)?;
    let default_vault = cfg.default_vault.as_ref();
    let mut plan = plan::Plan::build(&env, &argv, default_vault, &cfg.hosts)?;
    let files = files::FilePlan::from_env(&env)?;
    if let Some(files) = &files {
        files.add_to(&mut plan, default_vault, &cfg.hosts)?;
    }
    let mut watched = Vec::new();
    let resolved = if plan.is_empty() {
        resolve::Resolved::default()
    } else {
        let identities = identities::Identities::of_process(&cfg, &env)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let resolved = runtime.block_on(async {
            let source = keyvault::AzureSource::for_identities(&identities, &plan, cfg.timeout)?;
            let resolved = resolve::resolve(&plan, &source, cfg.ignore_missing, &identities)
                .await
                .map_err(Error::Fetch);
            watched = source.versions_seen();
            resolved
        });
        runtime.shutdown_background();
        resolved?
    };
    for warning in &resolved.warnings {
        eprintln!("akv-env: warning: {warning}");
    }
    let mut app = envexec::App::build(&env, &argv, &plan, &resolved.values, default_vault)?;
    // A service principal's variables go the way of AKV_INJECTOR_* unless the pod keeps them.
    let remove = cfg.auth.credential_vars_to_remove();
    app.env.retain(|(k, _)| !remove.iter().any(|r| k == r));
    if let Some(files) = &files {
        files.write(&resolved.values, default_vault)?;
    }
    Ok((app, watched))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn command_line() {
        assert_eq!(
            Cli::parse(args(&["--", "app", "--", "-x"])).expect("ok"),
            Cli::Run(args(&["app", "--", "-x"]))
        );
        assert_eq!(
            Cli::parse(args(&["install", "/akv-injector"])).expect("ok"),
            Cli::Install("/akv-injector".into())
        );
        assert_eq!(Cli::parse(args(&["--version"])).expect("ok"), Cli::Version);
        assert_eq!(Cli::parse(args(&["-h"])).expect("ok"), Cli::Help);
        for (bad, want) in [
            (&["--"][..], "no command after '--'"),
            (&[][..], "nothing to do"),
            (&["install"][..], "write akv-env install DIR"),
            (&["install", "a", "b"][..], "write akv-env install DIR"),
            (&["app"][..], "unexpected argument \"app\""),
        ] {
            let err = Cli::parse(args(bad)).expect_err(want).to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }
}
