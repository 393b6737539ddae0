//! The application's environment and argv (pure), and the `execve` that starts it.
//! Resolved values are secrets: no error built here holds one, only the variable's name
//! or the argument's index.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use akv_core::settings::ENV_PREFIX;
use akv_core::VaultUrl;

use crate::error::Site;
use crate::plan::Plan;
use crate::resolve::Values;
use crate::Error;

/// What the application is started with.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// The command itself came from a reference: it is a secret, never shown.
    pub command_is_secret: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("argv", &self.argv.len())
            .field("env", &self.env.len())
            .field("command_is_secret", &self.command_is_secret)
            .finish()
    }
}

impl App {
    /// The application's argv and environment: references replaced by their values, and
    /// akv-env's own `AKV_INJECTOR_*` variables removed. Order is kept.
    pub fn build(
        env: &[(OsString, OsString)],
        argv: &[OsString],
        plan: &Plan,
        values: &Values,
        default_vault: Option<&VaultUrl>,
    ) -> Result<App, Error> {
        Ok(App {
            argv: build_argv(argv, plan, values, default_vault)?,
            env: build_env(env, plan, values, default_vault)?,
            command_is_secret: plan.args.iter().any(|(i, _)| *i == 0),
        })
    }

    /// Replaces this process with the application (same PID). Returns only on failure.
    pub fn exec(&self) -> Error {
        exec(&self.argv, &self.env, self.command_is_secret)
    }
}

/// A rendered value, refused when it holds NUL (which neither an environment variable
/// nor an argument can carry).
fn checked(value: String, site: impl FnOnce() -> Site) -> Result<OsString, Error> {
    if value.contains('\0') {
        return Err(Error::NulInValue { site: site() });
    }
    Ok(OsString::from(value))
}

/// A template's text; a value that is not UTF-8 (binary `#base64`) is refused, naming
/// the site.
fn render_text(
    template: &akv_core::Template,
    values: &Values,
    default_vault: Option<&VaultUrl>,
    site: impl FnOnce() -> Site,
) -> Result<String, Error> {
    template
        .try_render(|r| values.text(r, default_vault))
        .map_err(|e| Error::NotText {
            site: site(),
            reference: e.reference,
        })
}

/// The environment the application gets: references replaced by their values, and
/// akv-env's own `AKV_INJECTOR_*` variables removed. Order is kept.
pub fn build_env(
    current: &[(OsString, OsString)],
    plan: &Plan,
    values: &Values,
    default_vault: Option<&VaultUrl>,
) -> Result<Vec<(OsString, OsString)>, Error> {
    let mut out: Vec<(OsString, OsString)> = current.to_vec();
    for (i, template) in &plan.env {
        let name = &out[*i].0;
        let site = || Site::Env(name.to_string_lossy().into_owned());
        let value = render_text(template, values, default_vault, site)?;
        let value = checked(value, site)?;
        out[*i].1 = value;
    }
    out.retain(|(k, _)| !k.as_bytes().starts_with(ENV_PREFIX.as_bytes()));
    Ok(out)
}

/// The application's argv with references replaced.
pub fn build_argv(
    argv: &[OsString],
    plan: &Plan,
    values: &Values,
    default_vault: Option<&VaultUrl>,
) -> Result<Vec<OsString>, Error> {
    let mut out = argv.to_vec();
    for (i, template) in &plan.args {
        let value = render_text(template, values, default_vault, || Site::Arg(*i))?;
        out[*i] = checked(value, || Site::Arg(*i))?;
    }
    Ok(out)
}

/// Replaces this process with the application (same PID). A program without '/' is
/// looked up on the application's `PATH`, as execvp does. Returns only on failure; the
/// program is named in the error unless it is a secret.
pub fn exec(argv: &[OsString], env: &[(OsString, OsString)], command_is_secret: bool) -> Error {
    let Some((program, args)) = argv.split_first() else {
        return Error::Usage("no command to run after '--'".into());
    };
    let source = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .exec();
    Error::Exec {
        program: (!command_is_secret).then(|| program.to_string_lossy().into_owned()),
        searched_path: !program.as_bytes().contains(&b'/'),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akv_core::{HostPolicy, Part};

    use crate::plan::object_of;

    #[test]
    fn replaces_references_and_strips_own_vars() {
        let env: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin"),
            ("AKV_INJECTOR_VAULT", "https://kv1.vault.azure.net"),
            ("DB_URL", "postgres://app:${akv:db}@db/app"),
            ("AKV_INJECTOR_TIMEOUT", "60s"),
            ("PASSWORD", "akv:db"),
            ("NOTE", "jdbc:akv:db"),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let argv: Vec<OsString> = ["/app", "--token=${akv:db}", "plain"]
            .iter()
            .map(OsString::from)
            .collect();
        let vault = VaultUrl::parse_spec("kv1").expect("valid");
        let plan = Plan::build(&env, &argv, Some(&vault), &HostPolicy::default()).expect("valid");
        let mut values = Values::default();
        let r = "akv:db".parse().expect("valid");
        values.insert(
            object_of(&r, Some(&vault)).expect("vault"),
            Part::Value,
            b"p@ss w0rd$".to_vec(),
        );

        let got: Vec<(String, String)> = build_env(&env, &plan, &values, Some(&vault))
            .expect("no NUL")
            .into_iter()
            .map(|(k, v)| {
                (
                    k.into_string().expect("utf-8"),
                    v.into_string().expect("utf-8"),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("PATH", "/usr/bin"),
            ("DB_URL", "postgres://app:p@ss w0rd$@db/app"),
            ("PASSWORD", "p@ss w0rd$"),
            ("NOTE", "jdbc:akv:db"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            build_argv(&argv, &plan, &values, Some(&vault)).expect("no NUL"),
            vec![
                OsString::from("/app"),
                "--token=p@ss w0rd$".into(),
                "plain".into()
            ]
        );
    }

    #[test]
    fn exec_failure_is_reported() {
        let err = exec(&[OsString::from("/nonexistent/akv-env-test")], &[], false);
        assert!(
            err.to_string().starts_with(
                "cannot execute \"/nonexistent/akv-env-test\": No such file or directory"
            ),
            "{err}"
        );
        let err = exec(
            &[OsString::from("akv-env-no-such-program")],
            &[(OsString::from("PATH"), OsString::from("/nonexistent"))],
            false,
        );
        assert!(err.to_string().ends_with("(searched PATH)"), "{err}");
        assert_eq!(
            exec(&[], &[], false).to_string(),
            "no command to run after '--'"
        );
        let secret = exec(&[OsString::from("/nonexistent/MARKER-value")], &[], true);
        assert_eq!(
            secret.to_string(),
            "cannot execute the command (it comes from a Key Vault reference, so it is not shown): No such file or directory (os error 2)"
        );
    }
}
