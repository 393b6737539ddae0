//! Deciding what to inject: which containers, which references, what must be looked up.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use akv_core::{HostPolicy, Reference, Template, VaultUrl};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::annotations::PodConfig;
use super::cost::{self, Warnings};
use super::denial::Denial;
use super::platform;
use super::{INSTALL_CONTAINER, MOUNT_PATH, VOLUME_NAME, WORKLOAD_IDENTITY_LABEL};

/// Init or app container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContainerKind {
    Init,
    App,
}

/// Where a container sits in the pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ContainerKind::Init => write!(f, "init container '{}'", self.name),
            ContainerKind::App => write!(f, "container '{}'", self.name),
        }
    }
}

/// How a target container's original argv is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgvSource {
    /// The spec has `command`: the argv is `command + args`.
    Explicit(Vec<String>),
    /// No `command`: the image's ENTRYPOINT/CMD decide, with the spec's `args`.
    Image { image: String, args: Vec<String> },
}

/// One container to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    pub id: ContainerId,
    /// The container itself, as the pod has it.
    pub container: &'a Container,
    pub argv: ArgvSource,
    /// Whether the `env.*` annotations are added to this container.
    pub gets_annotated_env: bool,
}

/// What to do to a pod; it borrows the pod's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub config: PodConfig,
    pub targets: Vec<Target<'a>>,
    pub warnings: Vec<String>,
    /// Upper bound of the pod's size as it was sent, for the size check before the patch
    /// is built.
    pub object_bytes: usize,
}

impl Plan<'_> {
    /// The images whose config must be read before [`super::mutate`], each once.
    pub fn images_to_look_up(&self) -> BTreeSet<&str> {
        self.targets
            .iter()
            .filter_map(|t| match &t.argv {
                ArgvSource::Image { image, .. } => Some(image.as_str()),
                ArgvSource::Explicit(_) => None,
            })
            .collect()
    }
}

/// A container of the pod with the references it holds.
struct Scanned<'a> {
    id: ContainerId,
    container: &'a Container,
    references: Vec<(String, Reference)>,
}

/// Reads a pod and decides what to inject. `Ok(None)`: nothing to do, no patch.
///
/// `object_bytes` bounds the size of the pod's JSON as it was sent (e.g. the review's
/// length). A pod whose injection would make an object larger than Kubernetes stores is
/// denied here, before any registry lookup, and its work is linear in its size.
pub fn plan<'a>(
    pod: &'a Pod,
    policy: &HostPolicy,
    object_bytes: usize,
) -> Result<Option<Plan<'a>>, Denial> {
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut config = PodConfig::parse(annotations)?;
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let scanned = scan_containers(spec)?;
    let any_reference = scanned.iter().any(|s| !s.references.is_empty());
    if !any_reference && !config.has_env() {
        return Ok(None);
    }
    if let Some(reason) = platform::windows_only(spec) {
        return Err(Denial::Windows(reason));
    }

    let selected = select(&scanned, &config)?;
    let mut warnings = Warnings::default();
    for key in &config.unknown {
        warnings.push_with(|| {
            format!(
                "annotation {key} is not one akv-injector knows and is ignored; check its spelling"
            )
        });
    }
    let mut is_selected = vec![false; scanned.len()];
    for (position, _) in &selected {
        is_selected[*position] = true;
    }
    for (s, selected) in scanned.iter().zip(&is_selected) {
        if !s.references.is_empty() && !selected {
            warnings.push_with(|| format!(
                "{} holds Key Vault references but is not listed in akv-injector.io/containers, so they stay unresolved",
                s.id
            ));
        }
    }
    if selected.is_empty() {
        return Ok(Some(Plan {
            config,
            targets: Vec::new(),
            warnings: warnings.into_vec(),
            object_bytes,
        }));
    }

    if let Some(vault) = &config.settings.vault {
        policy
            .check(vault)
            .map_err(Denial::DefaultVaultNotAllowed)?;
    }
    check_names_free(spec)?;
    let mut targets = Vec::new();
    let mut vaults = BTreeSet::new();
    for (position, listed) in selected {
        let s = &scanned[position];
        let id = s.id.clone();
        for (place, reference) in &s.references {
            vaults.insert(check_vault(
                &format!("{id}, {place}"),
                reference,
                &config,
                policy,
            )?);
        }
        check_container_free(&id, s.container)?;
        let gets_annotated_env = id.kind == ContainerKind::App || listed;
        if gets_annotated_env {
            config.files.check_container(&id, s.container)?;
        }
        targets.push(Target {
            container: s.container,
            argv: argv_source(s.container),
            gets_annotated_env,
            id,
        });
    }
    super::refresh::apply(&mut config, spec, &targets, &mut warnings)?;
    // Before any per-container, per-annotation work: what the patch would add must fit.
    cost::check(&cost::estimate_before_lookups(
        object_bytes,
        &config,
        &targets,
    ))?;
    let shadowed = |t: &&Target<'_>| t.gets_annotated_env && !config.env.is_empty();
    for target in targets.iter().filter(shadowed) {
        let defined: HashSet<&str> = target
            .container
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        for env in config
            .env
            .iter()
            .filter(|e| defined.contains(e.name.as_str()))
        {
            warnings.push_with(|| {
                format!(
                    "{} already sets {}; annotation akv-injector.io/env.{} is not applied to it",
                    target.id, env.name, env.name
                )
            });
        }
    }
    for env in &config.env {
        let place = format!("annotation akv-injector.io/env.{}", env.name);
        for reference in env.template.references() {
            vaults.insert(check_vault(&place, reference, &config, policy)?);
        }
    }
    for file in &config.files.files {
        let place = super::files::FilesConfig::place(file);
        for reference in file.template.references() {
            vaults.insert(check_vault(&place, reference, &config, policy)?);
        }
    }
    super::identity::check(
        &config.identity,
        config.settings.client_id.is_some(),
        config.settings.tenant_id.is_some(),
        targets.iter().map(|t| (t.id.to_string(), t.container)),
        &vaults,
        &mut warnings,
    )?;
    let labels = pod.metadata.labels.as_ref();
    let identity = labels.and_then(|l| l.get(WORKLOAD_IDENTITY_LABEL));
    let workload_identity = config.identity.kind() == akv_core::AuthKind::WorkloadIdentity;
    if workload_identity && identity.map(String::as_str) != Some("true") {
        warnings.push_with(|| format!(
            "pod has no label {WORKLOAD_IDENTITY_LABEL}: \"true\", so Azure Workload Identity gives it no token and akv-env will fail at start"
        ));
    }
    Ok(Some(Plan {
        config,
        targets,
        warnings: warnings.into_vec(),
        object_bytes,
    }))
}

/// Every init and app container, with the references in its env values, command and args.
/// A value that starts with `akv:` or holds `${akv:` and does not parse is a denial.
fn scan_containers(spec: &PodSpec) -> Result<Vec<Scanned<'_>>, Denial> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (ContainerKind::Init, c));
    let app = spec.containers.iter().map(|c| (ContainerKind::App, c));
    let mut counters = [0usize; 2];
    let mut out = Vec::new();
    for (kind, container) in init.chain(app) {
        let index = &mut counters[kind as usize];
        let id = ContainerId {
            kind,
            index: *index,
            name: container.name.clone(),
        };
        *index += 1;
        let mut references = Vec::new();
        let env = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value.as_deref().map(|v| (format!("env {}", e.name), v)));
        let command = indexed("command", &container.command);
        let args = indexed("args", &container.args);
        for (place, value) in env.chain(command).chain(args) {
            let template = Template::scan(value).map_err(|source| Denial::BadReference {
                place: format!("{id}, {place}"),
                source,
            })?;
            if let Some(template) = template {
                references.extend(template.references().map(|r| (place.clone(), r.clone())));
            }
        }
        out.push(Scanned {
            id,
            container,
            references,
        });
    }
    Ok(out)
}

/// The items of a list field with their places, e.g. `args[0]`.
fn indexed<'a>(
    field: &'static str,
    items: &'a Option<Vec<String>>,
) -> impl Iterator<Item = (String, &'a str)> + 'a {
    items
        .iter()
        .flatten()
        .enumerate()
        .map(move |(i, v)| (format!("{field}[{i}]"), v.as_str()))
}

/// The containers to inject, as positions in `scanned`, each with whether the pod listed
/// it by name. Linear in the number of containers and names.
fn select(scanned: &[Scanned<'_>], config: &PodConfig) -> Result<Vec<(usize, bool)>, Denial> {
    match &config.containers {
        Some(names) => {
            let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(scanned.len());
            for (position, s) in scanned.iter().enumerate() {
                by_name.entry(s.id.name.as_str()).or_insert(position);
            }
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let Some(&position) = by_name.get(name.as_str()) else {
                    const SHOWN: usize = 20;
                    let mut available = scanned
                        .iter()
                        .take(SHOWN)
                        .map(|s| s.id.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    if scanned.len() > SHOWN {
                        available.push_str(&format!(" and {} more", scanned.len() - SHOWN));
                    }
                    return Err(Denial::UnknownContainer {
                        name: name.clone(),
                        available,
                    });
                };
                out.push((position, true));
            }
            // Keep the pod's order (init containers first, then app containers), once each.
            out.sort_unstable();
            out.dedup();
            Ok(out)
        }
        None => Ok(scanned
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !s.references.is_empty() || (s.id.kind == ContainerKind::App && config.has_env())
            })
            .map(|(position, _)| (position, false))
            .collect()),
    }
}

fn check_vault(
    place: &str,
    reference: &Reference,
    config: &PodConfig,
    policy: &HostPolicy,
) -> Result<VaultUrl, Denial> {
    let vault = match (reference.vault(), &config.settings.vault) {
        (Some(named), _) => VaultUrl::from_ref(named),
        (None, Some(default)) => default.clone(),
        (None, None) => {
            return Err(Denial::NoVault {
                place: place.to_string(),
                reference: reference.to_string(),
            })
        }
    };
    policy
        .check(&vault)
        .map_err(|source| Denial::VaultNotAllowed {
            place: place.to_string(),
            source,
        })?;
    Ok(vault)
}

fn check_names_free(spec: &PodSpec) -> Result<(), Denial> {
    for name in [VOLUME_NAME, akv_core::files::FILES_VOLUME] {
        if spec.volumes.iter().flatten().any(|v| v.name == name) {
            return Err(Denial::NameTaken {
                what: format!("a volume named '{name}'"),
            });
        }
    }
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    if all.clone().any(|c| c.name == INSTALL_CONTAINER) {
        return Err(Denial::NameTaken {
            what: format!("a container named '{INSTALL_CONTAINER}'"),
        });
    }
    Ok(())
}

fn check_container_free(id: &ContainerId, container: &Container) -> Result<(), Denial> {
    if let Some(env) = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name.starts_with(akv_core::settings::ENV_PREFIX))
    {
        return Err(Denial::ReservedEnv {
            container: id.name.clone(),
            var: env.name.clone(),
        });
    }
    let mounted = container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == MOUNT_PATH);
    if mounted {
        return Err(Denial::NameTaken {
            what: format!("a volume mount at {MOUNT_PATH} in {id}"),
        });
    }
    Ok(())
}

fn argv_source(container: &Container) -> ArgvSource {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    if command.is_empty() {
        ArgvSource::Image {
            image: container.image.clone().unwrap_or_default(),
            args,
        }
    } else {
        ArgvSource::Explicit(command.into_iter().chain(args).collect())
    }
}
