//! A kubelet stand-in: runs a STORED pod's containers on this machine as the kubelet
//! would — init containers in order, then the app containers — with the container's
//! `command`/`args`/`env` from the API server, `$(VAR)` expanded by the kubelet's rules,
//! and the pod's volumes made real: `emptyDir` as a directory, `projected` service-account
//! tokens written from `kubectl create token` (audience, expiry and path from the volume
//! source, bound to the pod like the kubelet's), `configMap` and `downwardAPI` namespace
//! items.
//!
//! What differs from a node, and why: there are no containers, so an image's filesystem is
//! this machine's, except for files named in [`Kubelet::image_file`] (e.g. the akv-injector
//! image's `/usr/local/bin/akv-env` is the freshly built binary); a path under a volume's
//! `mountPath` in `command`, `args` or an env value is rewritten to the volume's directory
//! here (nothing can be mounted at `/akv-injector` without root-owned host changes). The
//! image's environment is `PATH`, plus what [`Kubelet::image_env`] adds (the test CA as
//! `SSL_CERT_FILE`: the node image's trust store).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::kubectl::Kubectl;

/// What one container run did.
#[derive(Debug)]
pub struct ContainerRun {
    pub name: String,
    pub init: bool,
    pub argv: Vec<String>,
    pub output: Output,
}

impl ContainerRun {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

pub struct Kubelet {
    kubectl: Kubectl,
    root: PathBuf,
    image_files: BTreeMap<(String, String), PathBuf>,
    image_env: Vec<(String, String)>,
}

impl Kubelet {
    /// Volumes of each pod go under `root/POD/`.
    pub fn new(kubectl: Kubectl, root: &Path) -> Kubelet {
        Kubelet {
            kubectl,
            root: root.to_path_buf(),
            image_files: BTreeMap::new(),
            image_env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
        }
    }

    /// In image `image`, file `path` is `host` here.
    pub fn image_file(mut self, image: &str, path: &str, host: &Path) -> Self {
        self.image_files
            .insert((image.to_string(), path.to_string()), host.to_path_buf());
        self
    }

    /// An env var every image sets (the kubelet puts the container's own env after it).
    pub fn image_env(mut self, name: &str, value: &str) -> Self {
        self.image_env.push((name.to_string(), value.to_string()));
        self
    }

    /// The directory standing in for volume `name` of `pod`.
    pub fn volume_dir(&self, pod: &Value, name: &str) -> PathBuf {
        self.root
            .join(pod["metadata"]["name"].as_str().expect("pod name"))
            .join("volumes")
            .join(name)
    }

    /// Runs the pod: every init container in order (stopping at the first failure, where
    /// the kubelet would retry), then every app container, each to completion.
    pub fn run_pod(&self, pod: &Value) -> Vec<ContainerRun> {
        self.prepare_volumes(pod);
        let mut runs = Vec::new();
        for c in pod["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let run = self.run_container(pod, c, true);
            let failed = !run.output.status.success();
            runs.push(run);
            if failed {
                return runs;
            }
        }
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            runs.push(self.run_container(pod, c, false));
        }
        runs
    }

    fn prepare_volumes(&self, pod: &Value) {
        let ns = pod["metadata"]["namespace"].as_str().expect("namespace");
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().expect("volume name");
            let dir = self.volume_dir(pod, name);
            std::fs::create_dir_all(&dir).expect("volume dir");
            if v.get("emptyDir").is_some() {
                continue;
            }
            let sources = v["projected"]["sources"].as_array().unwrap_or_else(|| {
                panic!("kubelet stand-in: volume {name} is neither emptyDir nor projected: {v}")
            });
            for s in sources {
                if let Some(t) = s.get("serviceAccountToken") {
                    let sa = pod["spec"]["serviceAccountName"]
                        .as_str()
                        .unwrap_or("default");
                    let secs = t["expirationSeconds"].as_u64().unwrap_or(3600);
                    let duration = format!("{secs}s");
                    let mut args = vec![
                        "-n",
                        ns,
                        "create",
                        "token",
                        sa,
                        "--duration",
                        &duration,
                        "--bound-object-kind",
                        "Pod",
                        "--bound-object-name",
                        pod["metadata"]["name"].as_str().expect("name"),
                        "--bound-object-uid",
                        pod["metadata"]["uid"].as_str().expect("uid"),
                    ];
                    if let Some(aud) = t["audience"].as_str() {
                        args.extend(["--audience", aud]);
                    }
                    let token = self.kubectl.ok(&args);
                    // the kubelet writes the bare token, no trailing newline
                    write_file(&dir, t["path"].as_str().expect("path"), token.trim_end());
                } else if let Some(cm) = s.get("configMap") {
                    let data = self.kubectl.json(&[
                        "-n",
                        ns,
                        "get",
                        "configmap",
                        cm["name"].as_str().expect("configMap name"),
                    ]);
                    for item in cm["items"].as_array().into_iter().flatten() {
                        let key = item["key"].as_str().expect("key");
                        let value = data["data"][key].as_str().unwrap_or_default();
                        write_file(&dir, item["path"].as_str().expect("path"), value);
                    }
                } else if let Some(d) = s.get("downwardAPI") {
                    for item in d["items"].as_array().into_iter().flatten() {
                        let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
                        assert_eq!(
                            field, "metadata.namespace",
                            "kubelet stand-in: unsupported downwardAPI item {item}"
                        );
                        write_file(&dir, item["path"].as_str().expect("path"), ns);
                    }
                } else {
                    panic!("kubelet stand-in: unsupported projected source {s}");
                }
            }
        }
    }

    fn run_container(&self, pod: &Value, c: &Value, init: bool) -> ContainerRun {
        let name = c["name"].as_str().expect("container name").to_string();
        let image = c["image"].as_str().unwrap_or_default();
        // mountPath -> directory here, longest first
        let mut mounts: Vec<(String, PathBuf)> = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let mut dir = self.volume_dir(pod, m["name"].as_str().expect("mount name"));
                if let Some(sub) = m["subPath"].as_str() {
                    dir = dir.join(sub);
                }
                (
                    m["mountPath"]
                        .as_str()
                        .expect("mountPath")
                        .trim_end_matches('/')
                        .to_string(),
                    dir,
                )
            })
            .collect();
        mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let map = |s: String| -> String {
            if let Some(host) = self.image_files.get(&(image.to_string(), s.clone())) {
                return host.display().to_string();
            }
            for (mp, dir) in &mounts {
                if s == *mp {
                    return dir.display().to_string();
                }
                if let Some(rest) = s.strip_prefix(&format!("{mp}/")) {
                    return dir.join(rest).display().to_string();
                }
            }
            s
        };

        // The container's env, in order; $(VAR) may name an earlier one.
        let mut env: Vec<(String, String)> = self.image_env.clone();
        env.push((
            "HOSTNAME".into(),
            pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        ));
        let mut defined: BTreeMap<String, String> = BTreeMap::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let key = e["name"].as_str().expect("env name").to_string();
            assert!(
                e.get("valueFrom").is_none(),
                "kubelet stand-in: env {key} uses valueFrom, not supported here"
            );
            let value = expand(e["value"].as_str().unwrap_or_default(), &defined);
            defined.insert(key.clone(), value.clone());
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        let strings = |key: &str| -> Vec<String> {
            c[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| expand(a.as_str().expect("string"), &defined))
                .collect()
        };
        let command = strings("command");
        assert!(
            !command.is_empty(),
            "kubelet stand-in: container {name} has no command (the image's ENTRYPOINT is not known here)"
        );
        let argv: Vec<String> = command
            .into_iter()
            .chain(strings("args"))
            .map(map)
            .collect();
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, map(v))).collect();
        let workdir = self.root.join("workdir");
        std::fs::create_dir_all(&workdir).expect("workdir");
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("kubelet stand-in: cannot start container {name} ({argv:?}): {e}")
            });
        ContainerRun {
            name,
            init,
            argv,
            output,
        }
    }
}

fn write_file(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("dir");
    }
    std::fs::write(&path, content).expect("write volume file");
}

/// The kubelet's `$(VAR)` expansion: `$(NAME)` of a defined NAME becomes its value, `$$`
/// becomes `$`, anything else (an undefined name too) stays as written.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) if vars.contains_key(&inner[..end]) => {
                    out.push_str(&vars[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                Some(end) => {
                    out.push_str(&rest[i..i + 2 + end + 1]);
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::collections::BTreeMap;

    #[test]
    fn kubelet_expansion() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "akv:x".to_string())]
            .into_iter()
            .collect();
        assert_eq!(expand("$(A)", &vars), "akv:x");
        assert_eq!(expand("--p=$(A)!", &vars), "--p=akv:x!");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("${akv:y} $x $(A", &vars), "${akv:y} $x $(A");
    }
}
