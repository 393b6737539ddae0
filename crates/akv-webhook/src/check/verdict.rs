//! What admission would say about one pod, without a network: the same planning and
//! mutation as the webhook, with the registry lookups left out. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::inject::{self, ArgvSource, ImageConfig, InjectSettings};

/// One thing to tell the user about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Admission would refuse the pod.
    Denied(String),
    /// Admission would let the pod in with this warning.
    Warning(String),
    /// Something only the cluster can decide, e.g. an image's ENTRYPOINT.
    Note(String),
}

/// An ENTRYPOINT standing in for an image's, so that the rest of the mutation (its
/// size check, its warnings) runs as it would at admission.
const STAND_IN_ENTRYPOINT: &str = "/entrypoint-read-at-admission";

/// What admission would answer for `pod`, as findings (none: injected or left alone
/// without a word).
pub fn verdict(pod: &Pod, settings: &InjectSettings) -> Vec<Finding> {
    if inject::is_left_alone(pod) {
        return Vec::new();
    }
    // The pod's JSON bounds its review's size from below; admission uses the review's.
    let object_bytes = serde_json::to_vec(pod).map_or(0, |v| v.len());
    let plan = match inject::plan(pod, &settings.allow_vault_hosts, object_bytes) {
        Ok(Some(plan)) => plan,
        Ok(None) => return Vec::new(),
        Err(denial) => return vec![Finding::Denied(denial.to_string())],
    };
    let mut findings: Vec<Finding> = plan
        .warnings
        .iter()
        .cloned()
        .map(Finding::Warning)
        .collect();
    if plan.targets.is_empty() {
        return findings;
    }
    for target in &plan.targets {
        if let ArgvSource::Image { image, .. } = &target.argv {
            findings.push(Finding::Note(format!(
                "{} has no command: the ENTRYPOINT/CMD of image '{image}' needs a registry lookup at admission",
                target.id
            )));
        }
    }
    let images: BTreeMap<_, _> = plan
        .images_to_look_up()
        .into_iter()
        .map(|image| {
            let config = ImageConfig {
                entrypoint: vec![STAND_IN_ENTRYPOINT.to_string()],
                cmd: Vec::new(),
            };
            (image.to_string(), Ok(config))
        })
        .collect();
    // The mutation's warnings are the plan's, already in `findings`.
    if let Err(denial) = inject::mutate(pod, &plan, settings, &images) {
        findings.push(Finding::Denied(denial.to_string()));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use akv_core::HostPolicy;
    use serde_json::json;

    fn settings() -> InjectSettings {
        InjectSettings {
            env_image: "akv-injector:test".to_string(),
            allow_vault_hosts: HostPolicy::default(),
            allow_managed_identity: false,
        }
    }

    fn pod(labels: serde_json::Value, container: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": labels},
            "spec": {"containers": [container]},
        }))
        .expect("a pod")
    }

    const WI: &str = "azure.workload.identity/use";

    #[test]
    fn findings_follow_admission() {
        let good = json!({"name": "app", "image": "i", "command": ["/app"],
            "env": [{"name": "DB", "value": "akv://kv1/db"}]});
        let cases: Vec<(Pod, Vec<&str>)> = vec![
            // Nothing to inject, nothing to say.
            (pod(json!({}), json!({"name": "app", "image": "i"})), vec![]),
            (pod(json!({WI: "true"}), good.clone()), vec![]),
            // Opted out: left alone, even with a bad reference.
            (
                pod(json!({"akv-injector.io/inject": "false"}), json!({"name": "app", "image": "i",
                    "command": ["/app"], "env": [{"name": "DB", "value": "akv://"}]})),
                vec![],
            ),
            (
                pod(json!({WI: "true"}), json!({"name": "app", "image": "i", "command": ["/app"],
                    "env": [{"name": "DB", "value": "akv://"}]})),
                vec!["denied: container 'app', env DB:"],
            ),
            (pod(json!({}), good.clone()), vec!["warning: pod has no label azure.workload.identity/use"]),
            (
                pod(json!({WI: "true"}), json!({"name": "app", "image": "nginx:1.27",
                    "env": [{"name": "DB", "value": "akv://kv1/db"}]})),
                vec!["note: container 'app' has no command: the ENTRYPOINT/CMD of image 'nginx:1.27' needs a registry lookup at admission"],
            ),
        ];
        for (pod, want) in cases {
            let got: Vec<String> = verdict(&pod, &settings())
                .into_iter()
                .map(|f| match f {
                    Finding::Denied(m) => format!("denied: {m}"),
                    Finding::Warning(m) => format!("warning: {m}"),
                    Finding::Note(m) => format!("note: {m}"),
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (got, want) in got.iter().zip(&want) {
                assert!(got.starts_with(want), "{got} does not start with {want}");
            }
        }
    }
}
