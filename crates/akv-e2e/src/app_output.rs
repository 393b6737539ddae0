//! What the node's test app (`testbed/node/print-digests`) prints: a sha256 of each
//! argument (`argN sha256=HEX`) and of each variable named in `DIGEST_VARS`
//! (`NAME sha256=HEX`, or `NAME unset`), never a value, then `pid=N uid=N`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The sha256 the test app prints for `value`.
pub fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The lines the test app printed: `NAME sha256=HEX` / `argN sha256=HEX` as a map, and
/// the `pid=` line.
#[derive(Debug, Default)]
pub struct Printed {
    pub digests: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub pid_line: Option<String>,
}

/// Reads the test app's log.
pub fn parse_printed(log: &str) -> Printed {
    let mut p = Printed::default();
    for line in log.lines() {
        if line.starts_with("pid=") {
            p.pid_line = Some(line.to_string());
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
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
