//! The application's environment and argv (pure), and the `execve` that starts it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use akv_core::settings::ENV_PREFIX;
use akv_core::VaultUrl;

use crate::plan::Plan;
use crate::resolve::Values;

/// The environment the application gets: references replaced by their values, and
/// akv-env's own `AKV_INJECTOR_*` variables removed. Order is kept.
pub fn build_env(
    current: &[(OsString, OsString)],
    plan: &Plan,
    values: &Values,
    default_vault: Option<&VaultUrl>,
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = current.to_vec();
    for (i, template) in &plan.env {
        out[*i].1 = OsString::from(template.render(|r| values.get(r, default_vault)));
    }
    out.retain(|(k, _)| !k.as_bytes().starts_with(ENV_PREFIX.as_bytes()));
    out
}

/// The application's argv with references replaced.
pub fn build_argv(
    argv: &[OsString],
    plan: &Plan,
    values: &Values,
    default_vault: Option<&VaultUrl>,
) -> Vec<OsString> {
    let mut out = argv.to_vec();
    for (i, template) in &plan.args {
        out[*i] = OsString::from(template.render(|r| values.get(r, default_vault)));
    }
    out
}

/// Replaces this process with the application (same PID). A program without '/' is
/// looked up on the application's `PATH`, as execvp does. Returns only on failure.
pub fn exec(argv: &[OsString], env: &[(OsString, OsString)]) -> crate::Error {
    let Some((program, args)) = argv.split_first() else {
        return crate::Error::Usage("no command to run after '--'".into());
    };
    let source = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .exec();
    crate::Error::Exec {
        program: program.to_string_lossy().into_owned(),
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
            "p@ss w0rd$".into(),
        );

        let got: Vec<(String, String)> = build_env(&env, &plan, &values, Some(&vault))
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
            build_argv(&argv, &plan, &values, Some(&vault)),
            vec![
                OsString::from("/app"),
                "--token=p@ss w0rd$".into(),
                "plain".into()
            ]
        );
    }

    #[test]
    fn exec_failure_is_reported() {
        let err = exec(&[OsString::from("/nonexistent/akv-env-test")], &[]);
        assert!(
            err.to_string().starts_with(
                "cannot execute \"/nonexistent/akv-env-test\": No such file or directory"
            ),
            "{err}"
        );
        let err = exec(
            &[OsString::from("akv-env-no-such-program")],
            &[(OsString::from("PATH"), OsString::from("/nonexistent"))],
        );
        assert!(err.to_string().ends_with("(searched PATH)"), "{err}");
        assert_eq!(exec(&[], &[]).to_string(), "no command to run after '--'");
    }
}
