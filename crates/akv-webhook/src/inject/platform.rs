//! Which operating system a pod will run on, as far as its spec says.
//!
//! akv-env is a static Linux binary: a Windows container cannot run it, and injecting
//! one would leave the pod failing at start with an error from the container runtime
//! that names neither akv-injector nor the reason. So a pod that can only land on a
//! Windows node is refused at admission instead. A pod that says nothing about its OS is
//! taken to be Linux (the Kubernetes default).

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PodSpec};

/// The node label that carries a node's OS (and its pre-1.14 name, still set by some
/// node images).
const OS_LABELS: [&str; 2] = ["kubernetes.io/os", "beta.kubernetes.io/os"];
const WINDOWS: &str = "windows";

/// Where the spec says the pod runs on Windows, e.g. `spec.os.name`, or `None` when it
/// can run on Linux.
pub fn windows_only(spec: &PodSpec) -> Option<&'static str> {
    if spec.os.as_ref().is_some_and(|os| os.name == WINDOWS) {
        return Some("spec.os.name is windows");
    }
    let selector = spec.node_selector.as_ref();
    if OS_LABELS
        .iter()
        .any(|label| selector.and_then(|s| s.get(*label)).map(String::as_str) == Some(WINDOWS))
    {
        return Some("its nodeSelector asks for kubernetes.io/os: windows");
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    // Terms are alternatives: the pod is Windows-only when every one of them is.
    if !terms.is_empty() && terms.iter().all(term_requires_windows) {
        return Some("its required node affinity allows only kubernetes.io/os: windows");
    }
    None
}

/// A term that matches only Windows nodes: `kubernetes.io/os In [windows]`.
fn term_requires_windows(term: &NodeSelectorTerm) -> bool {
    term.match_expressions.iter().flatten().any(|e| {
        OS_LABELS.contains(&e.key.as_str())
            && e.operator == "In"
            && e.values
                .as_ref()
                .is_some_and(|v| !v.is_empty() && v.iter().all(|v| v == WINDOWS))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        let mut base = json!({"containers": [{"name": "app"}]});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), value.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).expect("a valid PodSpec")
    }

    fn os_term(operator: &str, values: &[&str]) -> serde_json::Value {
        json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": operator, "values": values}]})
    }

    fn affinity(terms: Vec<serde_json::Value>) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn windows_pods_are_found_and_others_are_not() {
        let cases = [
            (json!({}), false),
            (json!({"os": {"name": "linux"}}), false),
            (json!({"os": {"name": "windows"}}), true),
            (
                json!({"nodeSelector": {"kubernetes.io/os": "linux"}}),
                false,
            ),
            (
                json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
                true,
            ),
            (
                json!({"nodeSelector": {"beta.kubernetes.io/os": "windows"}}),
                true,
            ),
            (json!({"nodeSelector": {"disk": "windows"}}), false),
            (affinity(vec![os_term("In", &["windows"])]), true),
            (affinity(vec![os_term("In", &["windows", "linux"])]), false),
            (affinity(vec![os_term("NotIn", &["windows"])]), false),
            (affinity(vec![os_term("In", &[])]), false),
            // One alternative allows Linux: the scheduler may pick it.
            (
                affinity(vec![os_term("In", &["windows"]), os_term("In", &["linux"])]),
                false,
            ),
            (
                affinity(vec![
                    os_term("In", &["windows"]),
                    os_term("In", &["windows"]),
                ]),
                true,
            ),
            (affinity(vec![]), false),
        ];
        for (extra, windows) in cases {
            let found = windows_only(&spec(extra.clone()));
            assert_eq!(found.is_some(), windows, "{extra}: {found:?}");
        }
    }
}
