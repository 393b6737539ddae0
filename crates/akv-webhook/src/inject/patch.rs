//! Turning a [`Plan`] into a JSONPatch of explicit operations. Operations only add to or
//! replace fields of the containers they touch, so fields of the original request that this
//! build does not know about are never rewritten.

use std::collections::BTreeMap;

use akv_core::settings;
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
use super::denial::Denial;
use super::plan::{ArgvSource, ContainerKind, Plan, Target};
use super::{
    InjectSettings, ENV_BINARY, IMAGE_BINARY, INSTALL_CONTAINER, MOUNT_PATH, STATUS_ANNOTATION,
    STATUS_INJECTED, VOLUME_NAME,
};

/// The result of a successful injection.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub patch: Patch,
    pub warnings: Vec<String>,
}

/// Builds the patch for a planned pod. `images` holds the config of every image in
/// [`Plan::images_to_look_up`]; a missing one is the lookup error given for it.
pub fn mutate(
    pod: &Pod,
    plan: &Plan,
    settings: &InjectSettings,
    images: &BTreeMap<String, Result<ImageConfig, String>>,
) -> Result<Mutation, Denial> {
    let mut ops = Vec::new();
    let spec = pod.spec.as_ref();
    let settings_env = settings_env(plan, settings);
    for target in &plan.targets {
        let list = match target.id.kind {
            ContainerKind::Init => spec.and_then(|s| s.init_containers.as_ref()),
            ContainerKind::App => spec.map(|s| &s.containers),
        };
        let Some(container) = list.and_then(|l| l.get(target.id.index)) else {
            continue;
        };
        let argv = original_argv(target, images)?;
        wrap_container(&mut ops, target, container, argv, plan, &settings_env);
    }

    let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
    append(
        &mut ops,
        &["spec", "volumes"],
        has_volumes,
        to_value(&volume()),
    );
    // Inserted last: the operations above use the original init container indexes.
    match spec.and_then(|s| s.init_containers.as_ref()) {
        Some(_) => add(
            &mut ops,
            &["spec", "initContainers", "0"],
            to_value(&install_container(settings)),
        ),
        None => add(
            &mut ops,
            &["spec", "initContainers"],
            Value::Array(vec![to_value(&install_container(settings))]),
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
    })
}

fn original_argv(
    target: &Target,
    images: &BTreeMap<String, Result<ImageConfig, String>>,
) -> Result<Vec<String>, Denial> {
    match &target.argv {
        ArgvSource::Explicit(argv) => Ok(argv.clone()),
        ArgvSource::Image { image, args } => {
            let no_entrypoint = |reason: &str| Denial::NoEntrypoint {
                container: target.id.name.clone(),
                image: image.clone(),
                reason: reason.to_string(),
            };
            if image.is_empty() {
                return Err(no_entrypoint("the container has no image"));
            }
            let config = match images.get(image) {
                Some(Ok(config)) => config,
                Some(Err(reason)) => return Err(no_entrypoint(reason)),
                None => return Err(no_entrypoint("the registry lookup is turned off")),
            };
            config.argv(args).ok_or_else(|| Denial::EmptyImageArgv {
                container: target.id.name.clone(),
                image: image.clone(),
            })
        }
    }
}

/// The `AKV_INJECTOR_*` variables carrying the pod's settings, in a fixed order.
fn settings_env(plan: &Plan, settings: &InjectSettings) -> Vec<EnvVar> {
    let config = &plan.config;
    let pairs = [
        (settings::ENV_VAULT, config.vault.as_ref().map(|v| v.url())),
        (settings::ENV_CLIENT_ID, config.client_id.clone()),
        (settings::ENV_TENANT_ID, config.tenant_id.clone()),
        (
            settings::ENV_IGNORE_MISSING,
            config.ignore_missing.map(|b| b.to_string()),
        ),
        (
            settings::ENV_TIMEOUT,
            config.timeout.map(settings::format_duration),
        ),
        (
            settings::ENV_ALLOW_VAULT_HOSTS,
            (!settings.allow_vault_hosts.is_default())
                .then(|| settings.allow_vault_hosts.to_list()),
        ),
    ];
    pairs
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| env_var(name, v)))
        .collect()
}

fn wrap_container(
    ops: &mut Vec<PatchOperation>,
    target: &Target,
    container: &Container,
    argv: Vec<String>,
    plan: &Plan,
    settings_env: &[EnvVar],
) {
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

    let existing: Vec<&str> = container
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
    let mut has_env = container.env.is_some();
    for var in annotated.chain(settings_env.iter().cloned()) {
        append(ops, &field("env"), has_env, to_value(&var));
        has_env = true;
    }
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
