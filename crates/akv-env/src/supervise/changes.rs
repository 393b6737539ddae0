//! What counts as a change (pure): an object whose current version differs from the one
//! read at start. A failed check is no change: it restarts nothing.

use crate::keyvault::current::{Current, Watched};

/// One object that has a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub object: Watched,
    pub new_version: String,
}

impl std::fmt::Display for Change {
    /// The one stderr line of a restart: vault, object, old → new version; never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has a new version ({} → {}): restarting the application",
            self.object, self.object.version, self.new_version
        )
    }
}

/// The outcome of one check round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub changes: Vec<Change>,
    /// Objects whose check failed, with why.
    pub failures: Vec<(Watched, String)>,
}

/// Compares what was read at start with what a check found (`current[i]` for `watched[i]`).
pub fn compare(watched: &[Watched], current: &[Current]) -> Round {
    let mut round = Round::default();
    for (object, now) in watched.iter().zip(current) {
        match now {
            Current::Version(v) if !v.eq_ignore_ascii_case(&object.version) => {
                round.changes.push(Change {
                    object: object.clone(),
                    new_version: v.clone(),
                })
            }
            Current::Version(_) => {}
            Current::Failed(why) => round.failures.push((object.clone(), why.clone())),
        }
    }
    round
}

#[cfg(test)]
mod tests {
    use super::*;
    use akv_core::{ObjectKind, VaultUrl};

    fn w(name: &str, version: &str) -> Watched {
        Watched {
            vault: VaultUrl::parse_spec("kv1").expect("valid"),
            kind: ObjectKind::Secret,
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn changes_and_failures() {
        let watched = [w("a", "v1"), w("b", "v2"), w("c", "v3")];
        let cases: Vec<(Vec<Current>, Vec<&str>, Vec<&str>)> = vec![
            (
                vec![
                    Current::Version("v1".into()),
                    Current::Version("V2".into()),
                    Current::Version("v3".into()),
                ],
                vec![],
                vec![],
            ),
            (
                vec![
                    Current::Version("v1".into()),
                    Current::Version("v9".into()),
                    Current::Failed("HTTP 503".into()),
                ],
                vec!["b"],
                vec!["c"],
            ),
            (
                vec![
                    Current::Failed("403".into()),
                    Current::Failed("503".into()),
                    Current::Failed("reset".into()),
                ],
                vec![],
                vec!["a", "b", "c"],
            ),
        ];
        for (current, changed, failed) in cases {
            let round = compare(&watched, &current);
            let names =
                |v: Vec<&Watched>| v.into_iter().map(|w| w.name.clone()).collect::<Vec<_>>();
            assert_eq!(
                names(round.changes.iter().map(|c| &c.object).collect()),
                changed
            );
            assert_eq!(
                names(round.failures.iter().map(|(w, _)| w).collect()),
                failed
            );
        }
        let line = compare(&watched[..1], &[Current::Version("v2".into())]).changes[0].to_string();
        assert_eq!(
            line,
            "vault https://kv1.vault.azure.net, secret a has a new version (v1 → v2): restarting the application"
        );
    }
}
