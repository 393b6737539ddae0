//! What the node's test app (`testbed/node/print-digests`) prints: a sha256 of each
//! argument (`argN sha256=HEX`) and of each variable named in `DIGEST_VARS`
//! (`NAME sha256=HEX`, or `NAME unset`), of each file in `DIGEST_FILES`
//! (`file:PATH sha256=HEX` or `file:PATH missing`, then `stat:PATH MODE UID`), the names in
//! each directory of `DIGEST_DIRS` (`dir:PATH NAME...`), never a value, then `pid=N uid=N`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The sha256 the test app prints for `value`.
pub fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The lines the test app printed: `NAME sha256=HEX` / `argN sha256=HEX` as a map (files
/// under `file:PATH`, `missing` when absent), each file's `MODE UID`, each directory's
/// sorted names, and the `pid=` line.
#[derive(Debug, Default)]
pub struct Printed {
    pub digests: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub stats: BTreeMap<String, String>,
    pub dirs: BTreeMap<String, Vec<String>>,
    pub pid_line: Option<String>,
}

/// Reads the test app's log.
pub fn parse_printed(log: &str) -> Printed {
    let mut p = Printed::default();
    for line in log.lines() {
        if line.starts_with("pid=") {
            p.pid_line = Some(line.to_string());
        } else if let Some((path, mode_uid)) =
            line.strip_prefix("stat:").and_then(|l| l.split_once(' '))
        {
            p.stats.insert(path.to_string(), mode_uid.to_string());
        } else if let Some(rest) = line.strip_prefix("dir:") {
            let mut words = rest.split_whitespace();
            let dir = words.next().unwrap_or_default().to_string();
            let mut names: Vec<String> = words.map(str::to_string).collect();
            names.sort();
            p.dirs.insert(dir, names);
        } else if let Some(file) = line.strip_suffix(" missing") {
            p.digests.insert(file.to_string(), "missing".into());
        } else if let Some((name, hex)) = line.split_once(" sha256=") {
            if name.starts_with("arg") && name[3..].parse::<usize>().is_ok() {
                p.args.push(hex.to_string());
            } else {
                p.digests.insert(name.to_string(), hex.to_string());
            }
        } else if let Some(name) = line.strip_suffix(" unset") {
            p.digests.insert(name.to_string(), "unset".into());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_lines_are_parsed() {
        let p = parse_printed(
            "arg0 sha256=aa\narg1 sha256=bb\nDB_PASSWORD sha256=cc\nAKV_INJECTOR_VAULT unset\npid=1 uid=65532\n",
        );
        assert_eq!(p.args, ["aa", "bb"]);
        assert_eq!(p.digests["DB_PASSWORD"], "cc");
        assert_eq!(p.digests["AKV_INJECTOR_VAULT"], "unset");
        assert_eq!(p.pid_line.as_deref(), Some("pid=1 uid=65532"));
        let p = parse_printed(
            "file:/etc/tls/tls.crt sha256=dd\nstat:/etc/tls/tls.crt 400 65532\nfile:/etc/tls/x missing\ndir:/etc/tls tls.key tls.crt \n",
        );
        assert_eq!(p.digests["file:/etc/tls/tls.crt"], "dd");
        assert_eq!(p.digests["file:/etc/tls/x"], "missing");
        assert_eq!(p.stats["/etc/tls/tls.crt"], "400 65532");
        assert_eq!(p.dirs["/etc/tls"], ["tls.crt", "tls.key"]);
        assert!(p.args.is_empty());
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
