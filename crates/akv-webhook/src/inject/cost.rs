//! Bounds on what one review may cost: the injected pod must still be an object that
//! Kubernetes stores, so the size of the patch is estimated (from above) before it is
//! built, and a pod whose injection would not fit is denied; warnings are capped.
//!
//! The limit is etcd's: the API server accepts request bodies up to 3 MiB, but etcd
//! refuses to store a value larger than its `--max-request-bytes`, 1.5 MiB by default,
//! so no pod larger than that can be created whatever its webhooks return.

use super::annotations::PodConfig;
use super::plan::{ArgvSource, ContainerKind, Target};
use super::Denial;

/// etcd's default `--max-request-bytes`: the largest object Kubernetes can store.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;
/// At most this many admission warnings are returned, then one that counts the rest.
pub const MAX_WARNINGS: usize = 10;
/// Longer warnings are shortened (the API server truncates at 256 characters too).
const MAX_WARNING_CHARS: usize = 256;

/// Upper bounds, in bytes of JSON, of the fixed parts of the patch. Tests check that the
/// estimate is never below the patch actually built.
mod bound {
    /// `{"op":"replace","path":"","value":}` and the comma after it: an operation
    /// without its path and value.
    pub const OP: usize = 36;
    /// The same for `add` (env vars and the mount are always added).
    pub const OP_ADD: usize = 32;
    /// The value of the `command` operation: `["/akv-injector/akv-env"]`.
    pub const COMMAND: usize = 25;
    /// The value of the `volumeMounts` operation (the read-only mount of akv-injector).
    pub const MOUNT: usize = 67;
    /// `{"name":,"value":}`: an env var without its name and value.
    pub const ENV_VAR: usize = 18;
    /// The pod-level operations without the init container: the volume (120), the
    /// init container's operation (54), the status annotation (90), `metadata` when it
    /// is missing (43), and the brackets of the list.
    pub const POD: usize = 320;
    /// `{"name":"akv-injector-files","mountPath":,"subPath":}`: the files mount without
    /// its path and the container's name.
    pub const FILES_MOUNT: usize = 56;
    /// The `akv-injector-files` volume and its operation.
    pub const FILES_VOLUME: usize = 150;
}

/// What the patch of a planned pod would add, estimated from above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Size of the pod as it was sent (an upper bound, e.g. the review's length).
    pub object_bytes: usize,
    /// Upper bound of the patch's JSON size.
    pub patch_bytes: usize,
    /// Containers injected.
    pub containers: usize,
    /// `env.*` annotations added to each container that gets them.
    pub env: usize,
}

impl Estimate {
    /// Upper bound of the injected pod's size: the patch's values are what it adds.
    pub fn mutated_bytes(&self) -> usize {
        self.object_bytes.saturating_add(self.patch_bytes)
    }
}

/// The estimate that is known before the registry lookups: argvs read from images, the
/// operator's settings and the init container count as empty, so it is below
/// [`estimate`]'s and a pod it denies is denied by [`estimate`] too.
pub fn estimate_before_lookups(
    object_bytes: usize,
    config: &PodConfig,
    targets: &[Target<'_>],
) -> Estimate {
    let argvs = targets.iter().map(|t| match &t.argv {
        ArgvSource::Explicit(argv) => argv_bytes(argv),
        ArgvSource::Image { .. } => 0,
    });
    estimate_with(object_bytes, config, targets, argvs, &[], 0)
}

/// The estimate with every argv known (`argvs[i]` is the original argv of `targets[i]`),
/// the settings env vars every target gets, and the init container's JSON size.
pub fn estimate(
    object_bytes: usize,
    config: &PodConfig,
    targets: &[Target<'_>],
    argvs: &[Vec<String>],
    settings_env: &[(String, String)],
    install_container_bytes: usize,
) -> Estimate {
    let argvs = argvs.iter().map(|a| argv_bytes(a));
    estimate_with(
        object_bytes,
        config,
        targets,
        argvs,
        settings_env,
        install_container_bytes,
    )
}

fn estimate_with(
    object_bytes: usize,
    config: &PodConfig,
    targets: &[Target<'_>],
    argvs: impl Iterator<Item = usize>,
    settings_env: &[(String, String)],
    install_container_bytes: usize,
) -> Estimate {
    let sum = |sizes: &mut dyn Iterator<Item = usize>| sizes.fold(0, usize::saturating_add);
    // Each variable costs the same in every container that gets it, so the products are
    // computed, not the pairs.
    let file_env = config.files.env();
    let annotated = sum(&mut config
        .env
        .iter()
        .map(|e| env_bytes(&e.name, &e.value))
        .chain(file_env.iter().map(|(n, v)| env_bytes(n, v))));
    let annotated_count = config.env.len() + file_env.len();
    let files_path = json_string_bytes(config.files.path());
    let settings = sum(&mut settings_env.iter().map(|(n, v)| env_bytes(n, v)));
    let mut patch = bound::POD.saturating_add(install_container_bytes);
    let mut files_volume_counted = false;
    for (target, argv) in targets.iter().zip(argvs.chain(std::iter::repeat(0))) {
        let (env_count, env_bytes) = match target.gets_annotated_env {
            true => (annotated_count, annotated),
            false => (0, 0),
        };
        let files_mount = match target.gets_annotated_env && !config.files.is_empty() {
            true => sum(&mut [
                bound::FILES_MOUNT,
                files_path,
                json_string_bytes(&target.id.name),
                bound::OP_ADD
                    + list_len(target)
                    + digits(target.id.index)
                    + "/volumeMounts/-".len(),
            ]
            .into_iter()),
            false => 0,
        };
        if files_mount > 0 && !files_volume_counted {
            patch = patch.saturating_add(bound::FILES_VOLUME);
            files_volume_counted = true;
        }
        // command, args, the mount, then one operation per env var, each with its path.
        let list = match target.id.kind {
            ContainerKind::Init => "/spec/initContainers/",
            ContainerKind::App => "/spec/containers/",
        };
        let path = |field: &str| list.len() + digits(target.id.index) + field.len();
        let env_ops = env_count.saturating_add(settings_env.len());
        let container = sum(&mut [
            bound::OP + path("/command"),
            bound::OP + path("/args"),
            bound::OP_ADD + path("/volumeMounts/-"),
            env_ops.saturating_mul(bound::OP_ADD + path("/env/-")),
            bound::COMMAND,
            bound::MOUNT,
            argv,
            env_bytes,
            settings,
            files_mount,
        ]
        .into_iter());
        patch = patch.saturating_add(container);
    }
    Estimate {
        object_bytes,
        patch_bytes: patch,
        containers: targets.len(),
        env: config.env.len(),
    }
}

fn list_len(target: &Target<'_>) -> usize {
    match target.id.kind {
        ContainerKind::Init => "/spec/initContainers/".len(),
        ContainerKind::App => "/spec/containers/".len(),
    }
}

/// Denies a pod whose injection would not fit in one Kubernetes object.
pub fn check(estimate: &Estimate) -> Result<(), Denial> {
    if estimate.mutated_bytes() > MAX_OBJECT_BYTES {
        return Err(Denial::TooLarge {
            object_bytes: estimate.object_bytes,
            patch_bytes: estimate.patch_bytes,
            containers: estimate.containers,
            env: estimate.env,
        });
    }
    Ok(())
}

/// JSON size of the `args` value: `["--", argv...]`.
fn argv_bytes(argv: &[String]) -> usize {
    argv.iter()
        .map(|a| json_string_bytes(a) + 1)
        .fold(6, usize::saturating_add)
}

/// JSON size of one env var appended to a container, without the operation around it.
fn env_bytes(name: &str, value: &str) -> usize {
    bound::ENV_VAR + json_string_bytes(name) + json_string_bytes(value)
}

/// Bytes of `s` as a JSON string, quotes included, escaped the way serde_json escapes.
fn json_string_bytes(s: &str) -> usize {
    let escaped: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum();
    escaped + 2
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Admission warnings, at most [`MAX_WARNINGS`] of them, each shortened to the length the
/// API server shows; the rest are counted and reported in one last warning. Pushing is
/// cheap once the cap is reached: the message is not even formatted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warnings {
    shown: Vec<String>,
    more: usize,
}

impl Warnings {
    /// Adds the warning `make` returns, if there is room for it.
    pub fn push_with(&mut self, make: impl FnOnce() -> String) {
        if self.shown.len() < MAX_WARNINGS {
            let text = make();
            self.shown
                .push(match text.char_indices().nth(MAX_WARNING_CHARS - 1) {
                    Some((end, _)) => format!("{}…", &text[..end]),
                    None => text,
                });
        } else {
            self.more += 1;
        }
    }

    /// The warnings to return, with `... and N more` when some were left out.
    pub fn into_vec(self) -> Vec<String> {
        let Warnings { mut shown, more } = self;
        if more > 0 {
            shown.push(format!(
                "and {more} more warning{} like these (akv-injector returns the first {MAX_WARNINGS})",
                if more == 1 { "" } else { "s" }
            ));
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_sizes_match_serde_json() {
        for s in [
            "",
            "a",
            "\"",
            "\\",
            "\n\t",
            "\u{1}\u{1f}",
            "ä€😀",
            "/akv-injector/akv-env",
        ] {
            let exact = serde_json::to_string(s).expect("json").len();
            assert_eq!(json_string_bytes(s), exact, "{s:?}");
        }
        for (n, d) in [(0, 1), (9, 1), (10, 2), (199, 3), (usize::MAX, 20)] {
            assert_eq!(digits(n), d, "{n}");
        }
    }

    #[test]
    fn warnings_are_capped_and_counted() {
        let mut w = Warnings::default();
        let mut formatted = 0;
        for i in 0..20_000 {
            w.push_with(|| {
                formatted += 1;
                format!("warning {i}")
            });
        }
        let out = w.into_vec();
        assert_eq!(out.len(), MAX_WARNINGS + 1);
        assert_eq!(
            formatted, MAX_WARNINGS,
            "messages past the cap are not formatted"
        );
        assert_eq!(out[0], "warning 0");
        assert_eq!(
            out[MAX_WARNINGS],
            "and 19990 more warnings like these (akv-injector returns the first 10)"
        );

        let mut one = Warnings::default();
        one.push_with(|| "é".repeat(1000));
        let shown = one.into_vec();
        assert_eq!(shown[0].chars().count(), MAX_WARNING_CHARS);
        assert!(shown[0].ends_with('…'));
    }

    #[test]
    fn the_limit_is_etcds() {
        let fits = Estimate {
            object_bytes: MAX_OBJECT_BYTES - 1000,
            patch_bytes: 1000,
            containers: 1,
            env: 0,
        };
        assert!(check(&fits).is_ok());
        let over = Estimate {
            patch_bytes: 1001,
            ..fits
        };
        let err = check(&over).expect_err("over the limit").to_string();
        assert!(err.contains("1572864"), "{err}");
    }
}
