//! Which platform of a multi-arch image a pod will run: from its `kubernetes.io/os` and
//! `kubernetes.io/arch` node selector or required node affinity, else a default.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

/// What is read of one entry of an image index (nothing else is kept in memory).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IndexEntry {
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<EntryPlatform>,
}

/// The platform of an [`IndexEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

const ARCH_LABELS: [&str; 2] = ["kubernetes.io/arch", "beta.kubernetes.io/arch"];
const OS_LABELS: [&str; 2] = ["kubernetes.io/os", "beta.kubernetes.io/os"];

/// An OS, architecture and optional variant, e.g. `linux/arm64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".to_string(),
            arch: "amd64".to_string(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;

    /// `OS/ARCH[/VARIANT]`, e.g. `linux/amd64`, `linux/arm64`, `linux/arm/v7`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "'{s}' is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            )),
        }
    }
}

impl Platform {
    /// The platform `pod` will run on: each of OS and architecture comes from the pod's
    /// node selector, else from its required node affinity (the default's value when it
    /// allows that one, else the first it allows), else from `default`.
    pub fn for_pod(pod: &Pod, default: &Platform) -> Platform {
        let os = constraint(pod, &OS_LABELS, &default.os);
        let arch = constraint(pod, &ARCH_LABELS, &default.arch);
        let variant = match &arch {
            Some(arch) if arch != &default.arch => None,
            _ => default.variant.clone(),
        };
        Platform {
            os: os.unwrap_or_else(|| default.os.clone()),
            arch: arch.unwrap_or_else(|| default.arch.clone()),
            variant,
        }
    }

    /// The digest of the entry of an image index that this platform runs, as the container
    /// runtime would pick it: same OS and architecture; the variant must match when one is
    /// asked for, and otherwise the usual one (`v8` for arm64, `v7` for arm) or none wins.
    pub fn pick<'a>(&self, entries: &'a [IndexEntry]) -> Option<&'a IndexEntry> {
        let same = entries.iter().filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == self.os && p.architecture == self.arch)
        });
        let variant_of = |e: &IndexEntry| e.platform.as_ref().and_then(|p| p.variant.clone());
        let wanted = self.variant.clone().or_else(|| match self.arch.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        });
        let candidates: Vec<&IndexEntry> = same.collect();
        if let Some(exact) = candidates.iter().find(|e| variant_of(e) == wanted) {
            return Some(exact);
        }
        if self.variant.is_some() {
            return None;
        }
        candidates
            .iter()
            .find(|e| variant_of(e).is_none())
            .or(candidates.first())
            .copied()
    }
}

/// The value the pod requires for a node label, if it constrains it.
fn constraint(pod: &Pod, labels: &[&str], default: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(selector) = &spec.node_selector {
        if let Some(value) = labels.iter().find_map(|l| selector.get(*l)) {
            return Some(value.clone());
        }
    }
    let terms = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter();
    let mut allowed: Vec<String> = Vec::new();
    for term in terms {
        for expr in term.match_expressions.iter().flatten() {
            if labels.contains(&expr.key.as_str()) && expr.operator == "In" {
                allowed.extend(expr.values.iter().flatten().cloned());
            }
        }
    }
    if allowed.iter().any(|v| v == default) {
        Some(default.to_string())
    } else {
        allowed.into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"spec": spec})).expect("pod")
    }

    fn affinity(key: &str, values: &[&str]) -> serde_json::Value {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": values}]}]
        }}})
    }

    #[test]
    fn parse_and_display() {
        for s in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "windows/amd64",
        ] {
            assert_eq!(s.parse::<Platform>().expect(s).to_string(), s);
        }
        for s in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(s.parse::<Platform>().is_err(), "{s}");
        }
    }

    #[test]
    fn from_pod() {
        let default = Platform::default();
        let arm: Platform = "linux/arm64".parse().expect("p");
        let cases = [
            (json!({"containers": []}), "linux/amd64"),
            (
                json!({"containers": [], "nodeSelector": {"kubernetes.io/arch": "arm64"}}),
                "linux/arm64",
            ),
            (
                json!({"containers": [], "nodeSelector": {"beta.kubernetes.io/arch": "arm64"}}),
                "linux/arm64",
            ),
            (
                json!({"containers": [], "nodeSelector": {"kubernetes.io/os": "windows"}}),
                "windows/amd64",
            ),
            (
                json!({"containers": [], "affinity": affinity("kubernetes.io/arch", &["arm64"])}),
                "linux/arm64",
            ),
            (
                json!({"containers": [], "affinity": affinity("kubernetes.io/arch", &["arm64", "amd64"])}),
                "linux/amd64",
            ),
            (
                json!({"containers": [], "affinity": affinity("kubernetes.io/hostname", &["n1"])}),
                "linux/amd64",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                Platform::for_pod(&pod(spec.clone()), &default).to_string(),
                want,
                "{spec}"
            );
        }
        assert_eq!(
            Platform::for_pod(&pod(json!({"containers": []})), &arm).to_string(),
            "linux/arm64"
        );
        let v7: Platform = "linux/arm/v7".parse().expect("p");
        let on_arm64 =
            pod(json!({"containers": [], "nodeSelector": {"kubernetes.io/arch": "arm64"}}));
        assert_eq!(Platform::for_pod(&on_arm64, &v7).to_string(), "linux/arm64");
    }

    #[test]
    fn picks_entries() {
        let entry = |digest: &str, os: &str, arch: &str, variant: Option<&str>| -> IndexEntry {
            serde_json::from_value(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": 1,
                "platform": {"os": os, "architecture": arch, "variant": variant}
            }))
            .expect("entry")
        };
        let entries = vec![
            entry("sha256:unknown", "unknown", "unknown", None),
            entry("sha256:amd64", "linux", "amd64", None),
            entry("sha256:armv6", "linux", "arm", Some("v6")),
            entry("sha256:armv7", "linux", "arm", Some("v7")),
            entry("sha256:arm64", "linux", "arm64", Some("v8")),
        ];
        let pick = |p: &str| {
            p.parse::<Platform>()
                .expect(p)
                .pick(&entries)
                .map(|e| e.digest.clone())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:amd64"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:arm64"));
        assert_eq!(pick("linux/arm").as_deref(), Some("sha256:armv7"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:armv6"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
    }
}
