//! Turning a [`Plan`] into a JSONPatch of explicit operations. Operations only add to or
//! replace fields of the containers they touch, so fields of the original request that this
//! build does not know about are never rewritten.

use std::collections::{BTreeMap, HashSet};

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, Pod, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;
use serde_json::Value;

use super::argv::ImageConfig;
use super::cost;
use super::denial::Denial;
use super::plan::{ArgvSource, ContainerKind, Plan, Target};
use super::{
    InjectSettings, ENV_BINARY, IMAGE_BINARY, INSTALL_CONTAINER, MOUNT_PATH, STATUS_ANNOTATION,
    STATUS_INJECTED, VOLUME_NAME,
};
use crate::registry::LookupError;

/// The result of a successful injection.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub patch: Patch,
    pub warnings: Vec<String>,
    /// The upper bound of the patch's JSON size, estimated before it was built.
    pub estimated_patch_bytes: usize,
}

/// Builds the patch for a planned pod. `images` holds the lookup of every image in
/// [`Plan::images_to_look_up`]; an image missing from it was not looked up, as when the
/// lookup is turned off.
pub fn mutate(
    pod: &Pod,
    plan: &Plan<'_>,
    settings: &InjectSettings,
    images: &BTreeMap<String, Result<ImageConfig, LookupError>>,
) -> Result<Mutation, Denial> {
    let spec = pod.spec.as_ref();
    super::identity::check_operator(&plan.config.identity, settings.allow_managed_identity)?;
    let settings_env = settings_env(plan, settings);
    let argvs = plan
        .targets
        .iter()
        .map(|target| original_argv(target, images))
        .collect::<Result<Vec<_>, _>>()?;
    let install = to_value(&install_container(settings));
    // Before building anything: the patch and the injected pod must fit in etcd.
    let env_pairs: Vec<(String, String)> = settings_env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let estimate = cost::estimate(
        plan.object_bytes,
        &plan.config,
        &plan.targets,
        &argvs,
        &env_pairs,
        install.to_string().len(),
    );
    cost::check(&estimate)?;

    let mut ops = Vec::new();
    for (target, argv) in plan.targets.iter().zip(argvs) {
        wrap_container(&mut ops, target, argv, plan, &settings_env);
    }

    let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
    append(
        &mut ops,
        &["spec", "volumes"],
        has_volumes,
        to_value(&volume()),
    );
    if receives_files(plan).next().is_some() {
        let volume = super::files::volume();
        append(&mut ops, &["spec", "volumes"], true, to_value(&volume));
    }
    // Inserted last: the operations above use the original init container indexes.
    match spec.and_then(|s| s.init_containers.as_ref()) {
        Some(_) => add(&mut ops, &["spec", "initContainers", "0"], install),
        None => add(
            &mut ops,
            &["spec", "initContainers"],
            Value::Array(vec![install]),
        ),
    }
    match &pod.metadata.annotations {
        Some(_) => add(
            &mut ops,
            &["metadata", "annotations", STATUS_ANNOTATION],
            STATUS_INJECTED.into(),
        ),
        None => add(
            &mut ops,
            &["metadata", "annotations"],
            serde_json::json!({ STATUS_ANNOTATION: STATUS_INJECTED }),
        ),
    }
    Ok(Mutation {
        patch: Patch(ops),
        warnings: plan.warnings.clone(),
        estimated_patch_bytes: estimate.patch_bytes,
    })
}

/// The operation that creates `metadata` in a pod object sent without one, so that the
/// operations on `/metadata/...` after it apply (RFC 6902 adds only to an existing parent).
pub fn add_metadata() -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(&["metadata"]),
        value: Value::Object(serde_json::Map::new()),
    })
}

fn original_argv(
    target: &Target<'_>,
    images: &BTreeMap<String, Result<ImageConfig, LookupError>>,
) -> Result<Vec<String>, Denial> {
    match &target.argv {
        ArgvSource::Explicit(argv) => Ok(argv.clone()),
        ArgvSource::Image { image, args } => {
            let container = || target.id.name.clone();
            if image.is_empty() {
                return Err(Denial::NoImage {
                    container: container(),
                });
            }
            let no_entrypoint = |reason: LookupError| Denial::NoEntrypoint {
                container: container(),
                image: image.clone(),
                reason,
            };
            let config = match images.get(image) {
                Some(Ok(config)) => config,
                Some(Err(reason)) => return Err(no_entrypoint(reason.clone())),
                None => return Err(no_entrypoint(LookupError::Disabled)),
            };
            config.argv(args).ok_or_else(|| Denial::EmptyImageArgv {
                container: container(),
                image: image.clone(),
            })
        }
    }
}

/// The `AKV_INJECTOR_*` variables carrying the pod's settings, through the codec that
/// akv-env reads them back with. The allowlist is always among them (see `PodSettings`).
fn settings_env(plan: &Plan<'_>, settings: &InjectSettings) -> Vec<EnvVar> {
    let pod = akv_core::PodSettings {
        allow_vault_hosts: settings.allow_vault_hosts.clone(),
        ..plan.config.settings.clone()
    };
    // The identity's variables after the settings: none for a pod without its annotations.
    let identity = plan.config.identity.settings.to_env();
    pod.to_env()
        .into_iter()
        .chain(identity)
        .map(|(name, value)| env_var(name, value))
        .collect()
}

fn wrap_container(
    ops: &mut Vec<PatchOperation>,
    target: &Target<'_>,
    argv: Vec<String>,
    plan: &Plan<'_>,
    settings_env: &[EnvVar],
) {
    let container = target.container;
    let list = match target.id.kind {
        ContainerKind::Init => "initContainers",
        ContainerKind::App => "containers",
    };
    let index = target.id.index.to_string();
    let base = ["spec", list, index.as_str()];
    let field = |name: &'static str| -> Vec<&str> { base.iter().copied().chain([name]).collect() };

    let command = Value::from(vec![ENV_BINARY]);
    set(ops, &field("command"), container.command.is_some(), command);
    let args: Vec<String> = std::iter::once("--".to_string()).chain(argv).collect();
    set(ops, &field("args"), container.args.is_some(), args.into());

    let mount = VolumeMount {
        name: VOLUME_NAME.to_string(),
        mount_path: MOUNT_PATH.to_string(),
        read_only: Some(true),
        ..Default::default()
    };
    append(
        ops,
        &field("volumeMounts"),
        container.volume_mounts.is_some(),
        to_value(&mount),
    );

    let existing: HashSet<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    let annotated = plan
        .config
        .env
        .iter()
        .filter(|_| target.gets_annotated_env)
        .filter(|e| !existing.contains(&e.name.as_str()))
        .map(|e| env_var(&e.name, e.value.clone()));
    let files = &plan.config.files;
    let receives_files = target.gets_annotated_env && !files.is_empty();
    let file_env = files
        .env()
        .into_iter()
        .filter(|_| receives_files)
        .map(|(name, value)| env_var(&name, value));
    let mut has_env = container.env.is_some();
    for var in annotated
        .chain(file_env)
        .chain(settings_env.iter().cloned())
    {
        append(ops, &field("env"), has_env, to_value(&var));
        has_env = true;
    }
    if receives_files {
        let mount = files.mount(&target.id.name);
        append(ops, &field("volumeMounts"), true, to_value(&mount));
    }
}

/// The targets that receive the pod's files.
fn receives_files<'p>(plan: &'p Plan<'_>) -> impl Iterator<Item = &'p Target<'p>> {
    plan.targets
        .iter()
        .filter(|t| t.gets_annotated_env && !plan.config.files.is_empty())
}

fn volume() -> Volume {
    Volume {
        name: VOLUME_NAME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_string()),
            size_limit: Some(Quantity("16Mi".to_string())),
        }),
        ..Default::default()
    }
}

/// The init container that copies akv-env into the shared volume. It passes the
/// `restricted` Pod Security Standard on its own.
fn install_container(settings: &InjectSettings) -> Container {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    Container {
        name: INSTALL_CONTAINER.to_string(),
        image: Some(settings.env_image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(vec![
            IMAGE_BINARY.to_string(),
            "install".to_string(),
            MOUNT_PATH.to_string(),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME_NAME.to_string(),
            mount_path: MOUNT_PATH.to_string(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("10m", "16Mi")),
            limits: Some(quantities("100m", "32Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    }
}

fn env_var(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serializing k8s-openapi types into a Value cannot fail: they hold no maps with
    // non-string keys and no non-finite floats.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn add(ops: &mut Vec<PatchOperation>, tokens: &[&str], value: Value) {
    ops.push(PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value,
    }));
}

/// Sets a field: `replace` when it exists, `add` when it does not.
fn set(ops: &mut Vec<PatchOperation>, tokens: &[&str], exists: bool, value: Value) {
    if exists {
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(tokens),
            value,
        }));
    } else {
        add(ops, tokens, value);
    }
}

/// Appends to an array field, creating it when it does not exist.
fn append(ops: &mut Vec<PatchOperation>, tokens: &[&str], exists: bool, item: Value) {
    if exists {
        let mut path: Vec<&str> = tokens.to_vec();
        path.push("-");
        add(ops, &path, item);
    } else {
        add(ops, tokens, Value::Array(vec![item]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::plan;
    use akv_core::HostPolicy;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::json;

    fn settings() -> InjectSettings {
        InjectSettings {
            env_image: "registry.example/platform/akv-injector:0.1.0".to_string(),
            allow_vault_hosts: HostPolicy::new([".example.com", "kv.internal"]).expect("valid"),
            allow_managed_identity: false,
        }
    }

    /// Text with the characters JSON escapes.
    const TEXT: &str = "[ -~\"\\\\\t\n\u{1}é]{0,24}";

    proptest! {
        /// The size estimated before the patch is built is an upper bound of its JSON
        /// size, and not a loose one.
        #[test]
        fn the_estimate_bounds_the_patch(
            env in vec(prop_oneof![Just("akv:db".to_string()), Just("a${akv:db}b".to_string()), TEXT.prop_map(String::from)], 0..5),
            annotated in vec(("[A-Z][A-Z0-9_]{0,8}", prop_oneof!["[a-z][a-z0-9-]{0,10}", "[ -~\"\\\\]{0,20}\\$\\{akv:db\\}"]), 0..40),
            apps in 1..8usize,
            inits in 0..3usize,
            command in any::<bool>(),
            args in vec(TEXT, 0..4),
            entrypoint in vec(TEXT, 1..3),
            existing in any::<bool>(),
            files in vec(("[a-z][a-z0-9._-]{0,12}", prop_oneof![Just("akv:tls#pfx".to_string()), "[ -~\"\\\\\n]{0,20}\\$\\{akv:db#json:a.0\\}"]), 0..6),
            files_path in prop_oneof![Just(None), Just(Some("/etc/tls\"x".to_string()))],
        ) {
            let env: Vec<Value> = env.iter().enumerate().map(|(i, v)| json!({"name": format!("E{i}"), "value": v})).collect();
            let container = |name: String| {
                let mut c = json!({"name": name, "image": "registry.example/app:1", "env": env, "args": args});
                if command {
                    c["command"] = json!(["/app", "--x=\"y\""]);
                }
                if existing {
                    c["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
                }
                c
            };
            let mut annotations = json!({"akv-injector.io/vault": "kv-1"});
            for (name, value) in &annotated {
                annotations[format!("akv-injector.io/env.{name}")] = json!(value);
            }
            for (name, value) in &files {
                annotations[format!("akv-injector.io/file.{name}")] = json!(value);
            }
            if let Some(path) = &files_path {
                annotations["akv-injector.io/files-path"] = json!(path);
            }
            let mut pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"annotations": annotations},
                "spec": {"containers": (0..apps).map(|i| container(format!("app{i}"))).collect::<Vec<_>>()},
            });
            if inits > 0 {
                pod["spec"]["initContainers"] = (0..inits).map(|i| container(format!("init{i}"))).collect();
                pod["metadata"]["annotations"]["akv-injector.io/containers"] = json!("init0,app0");
            }
            let pod: Pod = serde_json::from_value(pod).expect("a pod");
            let Ok(Some(plan)) = plan(&pod, &HostPolicy::default(), 0) else {
                return Ok(());
            };
            let images = BTreeMap::from([(
                "registry.example/app:1".to_string(),
                Ok(ImageConfig { entrypoint, cmd: vec!["--serve".into()] }),
            )]);
            let Ok(mutation) = mutate(&pod, &plan, &settings(), &images) else {
                return Ok(());
            };
            let actual = serde_json::to_vec(&mutation.patch).expect("json").len();
            prop_assert!(actual <= mutation.estimated_patch_bytes, "{} > {}", actual, mutation.estimated_patch_bytes);
            // Within an eighth, plus the fixed slack of the pod-level operations.
            prop_assert!(mutation.estimated_patch_bytes <= actual + actual / 8 + 600, "{} for {}", mutation.estimated_patch_bytes, actual);
        }
    }

    #[test]
    fn add_metadata_creates_the_parent() {
        let mut object = json!({"spec": {}});
        let patch = Patch(vec![
            add_metadata(),
            PatchOperation::Add(AddOperation {
                path: pointer(&["metadata", "annotations"]),
                value: json!({STATUS_ANNOTATION: STATUS_INJECTED}),
            }),
        ]);
        json_patch::patch(&mut object, &patch).expect("applies");
        assert_eq!(
            object["metadata"]["annotations"][STATUS_ANNOTATION],
            STATUS_INJECTED
        );
    }
}
