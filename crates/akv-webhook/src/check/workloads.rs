//! The pod templates in a Kubernetes object: a Pod itself, the `spec.template` of the
//! workload kinds, a CronJob's job template, and the items of a `List`. Pure.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// How deep `List`s may nest (a `List` of `List`s is legal, if odd).
const MAX_LIST_DEPTH: usize = 4;

/// One pod template, with the object it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// The object's name (or `generateName*`, or `?` when it has neither).
    pub name: String,
    /// The pod the template would make: its metadata and spec.
    pub pod: Pod,
}

/// The pod templates of one document. Objects of other kinds have none (`Ok(vec![])`);
/// a workload whose template does not read as a pod is an error naming it.
pub fn pod_templates(document: &Value) -> Result<Vec<Workload>, String> {
    let mut out = Vec::new();
    collect(document, 0, &mut out)?;
    Ok(out)
}

fn collect(object: &Value, depth: usize, out: &mut Vec<Workload>) -> Result<(), String> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let template = match kind {
        "List" if depth < MAX_LIST_DEPTH => {
            for item in object
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect(item, depth + 1, out)?;
            }
            return Ok(());
        }
        "List" => return Err(format!("Lists nested more than {MAX_LIST_DEPTH} deep")),
        "Pod" => Some(object.clone()),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            object.pointer("/spec/template").cloned()
        }
        "CronJob" => object.pointer("/spec/jobTemplate/spec/template").cloned(),
        _ => return Ok(()),
    };
    let name = name_of(object);
    let Some(template) = template else {
        return Err(format!("{kind}/{name} has no pod template"));
    };
    let pod = as_pod(template, object)
        .map_err(|e| format!("{kind}/{name}: its pod template is not a valid pod: {e}"))?;
    out.push(Workload {
        kind: kind.to_string(),
        name,
        pod,
    });
    Ok(())
}

/// The template as a Pod: its metadata and spec; the namespace is the object's unless
/// the template names one.
fn as_pod(template: Value, object: &Value) -> Result<Pod, serde_json::Error> {
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or(Value::Object(Default::default())),
        "spec": template.get("spec").cloned().unwrap_or(Value::Null),
    });
    let namespace = object.pointer("/metadata/namespace").cloned();
    if let (Some(namespace), Some(metadata)) = (namespace, pod["metadata"].as_object_mut()) {
        metadata.entry("namespace").or_insert(namespace);
    }
    serde_json::from_value(pod)
}

fn name_of(object: &Value) -> String {
    let metadata = object.get("metadata");
    let field = |f: &str| metadata.and_then(|m| m.get(f)).and_then(Value::as_str);
    match (field("name"), field("generateName")) {
        (Some(name), _) => name.to_string(),
        (None, Some(prefix)) => format!("{prefix}*"),
        (None, None) => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    fn found(document: Value) -> Vec<(String, String, String)> {
        pod_templates(&document)
            .expect("templates")
            .into_iter()
            .map(|w| {
                let spec = w.pod.spec.expect("spec");
                let image = spec.containers[0].image.clone().unwrap_or_default();
                (w.kind, w.name, image)
            })
            .collect()
    }

    fn t(kind: &str, name: &str, image: &str) -> (String, String, String) {
        (kind.to_string(), name.to_string(), image.to_string())
    }

    #[test]
    fn every_workload_kind_gives_its_template() {
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
        ] {
            let doc = json!({"kind": kind, "metadata": {"name": "w"}, "spec": {"template": template("i")}});
            assert_eq!(found(doc), vec![t(kind, "w", "i")], "{kind}");
        }
        let cron = json!({"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": template("j")}}}});
        assert_eq!(found(cron), vec![t("CronJob", "c", "j")]);
        let pod = json!({"kind": "Pod", "metadata": {"generateName": "p-"},
            "spec": {"containers": [{"name": "app", "image": "p"}]}});
        assert_eq!(found(pod), vec![t("Pod", "p-*", "p")]);
    }

    #[test]
    fn lists_are_read_and_other_kinds_ignored() {
        let list = json!({"kind": "List", "items": [
            {"kind": "Service", "metadata": {"name": "s"}},
            {"kind": "Deployment", "metadata": {"name": "a"}, "spec": {"template": template("1")}},
            {"kind": "List", "items": [{"kind": "Job", "metadata": {"name": "b"}, "spec": {"template": template("2")}}]},
        ]});
        assert_eq!(
            found(list),
            vec![t("Deployment", "a", "1"), t("Job", "b", "2")]
        );
        assert!(found(json!({"kind": "ConfigMap"})).is_empty());
        assert!(found(json!("just a string")).is_empty());
    }

    #[test]
    fn the_namespace_of_the_object_reaches_the_pod() {
        let doc = json!({"kind": "Deployment", "metadata": {"name": "w", "namespace": "team-a"},
            "spec": {"template": template("i")}});
        let pods = pod_templates(&doc).expect("templates");
        assert_eq!(pods[0].pod.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            pods[0]
                .pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn broken_templates_are_errors_naming_the_object() {
        let cases = [
            (
                json!({"kind": "Deployment", "metadata": {"name": "w"}, "spec": {}}),
                "Deployment/w has no pod template",
            ),
            (
                json!({"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": "nope"}}}}),
                "Job/j: its pod template is not a valid pod",
            ),
        ];
        for (doc, want) in cases {
            let err = pod_templates(&doc).expect_err("an error");
            assert!(err.starts_with(want), "{err}");
        }
        let mut deep = json!({"kind": "Pod"});
        for _ in 0..6 {
            deep = json!({"kind": "List", "items": [deep]});
        }
        assert!(pod_templates(&deep).is_err());
    }
}
