//! Fixture tests: every `tests/data/NAME.review.json` is a real-looking AdmissionReview;
//! `NAME.expect.json` says what the answer must be, and `NAME.patch.json` is the golden
//! JSONPatch for allowed-and-patched reviews. The patch is applied to the original pod with
//! an RFC 6902 implementation and the result must still be a Pod that keeps everything the
//! original had.
//!
//! `UPDATE_GOLDEN=1 cargo test -p akv-webhook --test fixtures` rewrites the golden patches;
//! review the diff before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use akv_core::HostPolicy;
use akv_webhook::admission::{Admission, InjectSettings, Outcome};
use akv_webhook::inject::ImageConfig;
use akv_webhook::registry::{ImageConfigSource, LookupError};
use async_trait::async_trait;
use base64::Engine;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde::Deserialize;
use serde_json::Value;

const ENV_IMAGE: &str = "registry.example/platform/akv-injector:0.1.0";
const MIN_FIXTURES: usize = 25;

/// Image configs the fixtures may ask for, as a registry would answer.
struct FixtureImages;

#[async_trait]
impl ImageConfigSource for FixtureImages {
    async fn image_config(
        &self,
        image: &str,
        _pod: &Pod,
        _namespace: &str,
    ) -> Result<ImageConfig, LookupError> {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match image {
            "registry.example/team-a/web:1.4.2" => Ok(ImageConfig {
                entrypoint: strings(&["/app/web"]),
                cmd: strings(&["--serve"]),
            }),
            "registry.example/team-a/exporter:2" => Ok(ImageConfig {
                entrypoint: vec![],
                cmd: strings(&["/exporter", "--listen=:9100"]),
            }),
            "registry.example/team-a/scratch-data:1" => Ok(ImageConfig::default()),
            other => Err(LookupError::Failed(format!("manifest unknown: {other}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Expect {
    allowed: bool,
    patched: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

fn admission() -> Admission {
    let settings = InjectSettings {
        env_image: ENV_IMAGE.to_string(),
        allow_vault_hosts: HostPolicy::default(),
        allow_managed_identity: false,
    };
    Admission::new(settings, Arc::new(FixtureImages))
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Where fixtures live: the hand-written ones, and the fuzz findings kept as fixtures.
fn fixture_dirs() -> [PathBuf; 2] {
    [data_dir(), data_dir().join("fuzz")]
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".review.json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn containers(pod: &Pod) -> Vec<&Container> {
    let spec = pod.spec.as_ref().expect("pod has a spec");
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect()
}

/// Everything the original pod had must still be there after the patch.
fn assert_keeps_original(name: &str, original: &Pod, patched: &Pod) {
    let after: BTreeMap<&str, &Container> = containers(patched)
        .into_iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    for before in containers(original) {
        let Some(now) = after.get(before.name.as_str()) else {
            panic!("{name}: container {} is gone", before.name);
        };
        for var in before.env.iter().flatten() {
            assert!(
                now.env.iter().flatten().any(|v| v == var),
                "{name}: env {} of container {} changed or is gone",
                var.name,
                before.name
            );
        }
        for mount in before.volume_mounts.iter().flatten() {
            assert!(
                now.volume_mounts.iter().flatten().any(|m| m == mount),
                "{name}: mount {} is gone",
                mount.name
            );
        }
        assert_eq!(
            now.image, before.image,
            "{name}: image of {} changed",
            before.name
        );
        assert_eq!(
            now.env_from, before.env_from,
            "{name}: envFrom of {} changed",
            before.name
        );
    }
    let volumes = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
    };
    let after_volumes = volumes(patched);
    for volume in volumes(original) {
        assert!(
            after_volumes.contains(&volume),
            "{name}: volume {} is gone",
            volume.name
        );
    }
    for (key, value) in original.metadata.annotations.iter().flatten() {
        assert_eq!(
            patched
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key)),
            Some(value),
            "{name}: annotation {key}"
        );
    }
    assert_eq!(
        patched.metadata.labels, original.metadata.labels,
        "{name}: labels changed"
    );
}

/// The contract's shape of an injected pod.
fn assert_injected_shape(name: &str, patched: &Pod) {
    let spec = patched.spec.as_ref().expect("spec");
    let init = spec.init_containers.as_ref().expect("init containers");
    let install = &init[0];
    assert_eq!(install.name, "akv-injector-install", "{name}");
    assert_eq!(install.image.as_deref(), Some(ENV_IMAGE), "{name}");
    assert_eq!(
        install.command.as_deref(),
        Some(
            &[
                "/usr/local/bin/akv-env".to_string(),
                "install".into(),
                "/akv-injector".into()
            ][..]
        ),
        "{name}"
    );
    let sc = install
        .security_context
        .as_ref()
        .expect("install security context");
    assert_eq!(sc.run_as_non_root, Some(true), "{name}");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "akv-injector")
        .expect("akv-injector volume");
    let empty_dir = volume.empty_dir.as_ref().expect("emptyDir");
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"), "{name}");
    let status = patched
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("akv-injector.io/status"));
    assert_eq!(status.map(String::as_str), Some("injected"), "{name}");

    let wrapped: Vec<&Container> = containers(patched)
        .into_iter()
        .filter(|c| c.command.as_deref() == Some(&["/akv-injector/akv-env".to_string()][..]))
        .collect();
    assert!(!wrapped.is_empty(), "{name}: no container is wrapped");
    for c in wrapped {
        let args = c.args.as_deref().unwrap_or_default();
        assert_eq!(
            args.first().map(String::as_str),
            Some("--"),
            "{name}: {}",
            c.name
        );
        assert!(
            args.len() > 1,
            "{name}: {} has an empty original argv",
            c.name
        );
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "akv-injector")
            .unwrap_or_else(|| panic!("{name}: {} does not mount akv-injector", c.name));
        assert_eq!(mount.mount_path, "/akv-injector");
        assert_eq!(
            mount.read_only,
            Some(true),
            "{name}: {} mount is writable",
            c.name
        );
    }
}

fn review_of(pod: &Value) -> Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "userInfo": {},
            "object": pod,
        }
    })
}

#[tokio::test]
async fn every_fixture_gets_its_expected_answer() {
    let count = fixtures_in(&data_dir()).len();
    assert!(count >= MIN_FIXTURES, "only {count} fixtures in tests/data");
    let fuzz = fixtures_in(&data_dir().join("fuzz")).len();
    assert!(fuzz >= 2, "only {fuzz} fuzz findings in tests/data/fuzz");
    for dir in fixture_dirs() {
        check_fixtures(&dir).await;
    }
}

async fn check_fixtures(dir: &Path) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let admission = admission();
    for name in &fixtures_in(dir) {
        let review = read_json(&dir.join(format!("{name}.review.json")));
        let expect: Expect =
            serde_json::from_value(read_json(&dir.join(format!("{name}.expect.json"))))
                .unwrap_or_else(|e| panic!("{name}.expect.json: {e}"));
        let body = serde_json::to_vec(&review).expect("encode");
        let reviewed = admission
            .review(&body)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let answer: Value = serde_json::from_slice(&reviewed.body).expect("answer is JSON");
        let response = &answer["response"];
        assert_eq!(answer["kind"], "AdmissionReview", "{name}");
        assert_eq!(
            response["uid"], review["request"]["uid"],
            "{name}: uid not copied"
        );
        assert_eq!(response["allowed"], expect.allowed, "{name}: {response}");
        if let Some(message) = &expect.message {
            assert_eq!(
                response["status"]["message"].as_str(),
                Some(message.as_str()),
                "{name}"
            );
        }
        let warnings: Vec<String> =
            serde_json::from_value(response["warnings"].clone()).unwrap_or_default();
        assert_eq!(warnings, expect.warnings, "{name}: warnings");

        let golden = dir.join(format!("{name}.patch.json"));
        let Some(patch_b64) = response["patch"].as_str() else {
            assert!(
                !expect.patched,
                "{name}: expected a patch, got none: {response}"
            );
            assert!(
                !golden.exists(),
                "{name}: golden patch exists but no patch was made"
            );
            assert_ne!(reviewed.outcome, Outcome::Patched, "{name}");
            continue;
        };
        assert!(expect.patched, "{name}: unexpected patch");
        assert_eq!(reviewed.outcome, Outcome::Patched, "{name}");
        assert_eq!(response["patchType"], "JSONPatch", "{name}");
        let patch_bytes = base64::engine::general_purpose::STANDARD
            .decode(patch_b64)
            .expect("patch is base64");
        assert_eq!(
            reviewed.patch_bytes,
            patch_bytes.len(),
            "{name}: patch size"
        );
        let patch_json: Value = serde_json::from_slice(&patch_bytes).expect("patch is JSON");
        if update {
            let text = serde_json::to_string_pretty(&patch_json).expect("encode") + "\n";
            std::fs::write(&golden, text).expect("write golden");
        }
        assert_eq!(
            patch_json,
            read_json(&golden),
            "{name}: patch differs from {}",
            golden.display()
        );

        let original_json = review["request"]["object"].clone();
        let mut patched_json = original_json.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch_json).expect("RFC 6902 patch");
        json_patch::patch(&mut patched_json, &patch)
            .unwrap_or_else(|e| panic!("{name}: patch does not apply: {e}"));
        let original: Pod = serde_json::from_value(original_json).expect("original is a Pod");
        let patched: Pod = serde_json::from_value(patched_json.clone())
            .unwrap_or_else(|e| panic!("{name}: patched object is not a Pod: {e}"));
        assert_keeps_original(name, &original, &patched);
        assert_injected_shape(name, &patched);

        // Reinvocation of the patched pod is a no-op.
        let again = admission
            .review(&serde_json::to_vec(&review_of(&patched_json)).expect("encode"))
            .await
            .expect("review of the patched pod");
        assert_eq!(
            again.outcome,
            Outcome::Skipped,
            "{name}: reinvocation patched again"
        );
    }
}

#[tokio::test]
async fn golden_patches_have_fixtures() {
    for dir in fixture_dirs() {
        let names = fixtures_in(&dir);
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let file = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8 name");
            if let Some(name) = file
                .strip_suffix(".patch.json")
                .or(file.strip_suffix(".expect.json"))
            {
                assert!(
                    names.iter().any(|n| n == name),
                    "{file} has no {name}.review.json"
                );
            }
        }
    }
}
