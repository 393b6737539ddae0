//! What a container would run: Docker's and Kubernetes' rules for combining the spec's
//! `command`/`args` with the image's ENTRYPOINT/CMD.

/// The part of an image's config that decides what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `ENTRYPOINT` (empty when the image has none).
    pub entrypoint: Vec<String>,
    /// `CMD` (empty when the image has none).
    pub cmd: Vec<String>,
}

impl ImageConfig {
    /// The argv a container runs when its spec has no `command`: ENTRYPOINT followed by the
    /// spec's `args`, or by the image's CMD when `args` is empty. `None` when that is empty.
    ///
    /// The result goes into the spec's `args`, where the kubelet expands `$(VAR)`; it never
    /// does that to the image's own ENTRYPOINT and CMD, so their `$` are escaped as `$$`.
    pub fn argv(&self, args: &[String]) -> Option<Vec<String>> {
        let escape = |s: &String| s.replace('$', "$$");
        let entrypoint = self.entrypoint.iter().map(escape);
        let argv: Vec<String> = if args.is_empty() {
            entrypoint.chain(self.cmd.iter().map(escape)).collect()
        } else {
            entrypoint.chain(args.iter().cloned()).collect()
        };
        (!argv.is_empty()).then_some(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// ENTRYPOINT, CMD, the spec's args, and the argv they make.
    type Case<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        Option<&'a [&'a str]>,
    );

    #[test]
    fn docker_rules() {
        let cases: &[Case] = &[
            // entrypoint, cmd, spec args => argv
            (
                &["/bin/app"],
                &["--serve"],
                &[],
                Some(&["/bin/app", "--serve"]),
            ),
            (
                &["/bin/app"],
                &["--serve"],
                &["--debug"],
                Some(&["/bin/app", "--debug"]),
            ),
            (&["/bin/app"], &[], &[], Some(&["/bin/app"])),
            (
                &[],
                &["nginx", "-g", "daemon off;"],
                &[],
                Some(&["nginx", "-g", "daemon off;"]),
            ),
            (
                &[],
                &["nginx"],
                &["sh", "-c", "x"],
                Some(&["sh", "-c", "x"]),
            ),
            (&[], &[], &["/bin/app"], Some(&["/bin/app"])),
            (&[], &[], &[], None),
            // The kubelet expands $(VAR) in the spec's args but not in the image's argv.
            (
                &["/bin/sh", "-c"],
                &["echo $(date) $HOME"],
                &[],
                Some(&["/bin/sh", "-c", "echo $$(date) $$HOME"]),
            ),
            (
                &["/run-$(X)"],
                &[],
                &["$(PORT)"],
                Some(&["/run-$$(X)", "$(PORT)"]),
            ),
        ];
        for (entrypoint, cmd, args, want) in cases {
            let image = ImageConfig {
                entrypoint: v(entrypoint),
                cmd: v(cmd),
            };
            assert_eq!(
                image.argv(&v(args)),
                want.map(v),
                "{entrypoint:?} {cmd:?} {args:?}"
            );
        }
    }
}
