//! End to end on a real Kubernetes API server (issue 4): one test bed per run
//! (`scripts/kube-up`: etcd, kube-apiserver, kube-controller-manager and the real Azure
//! Workload Identity webhook), our `akv-webhook` registered beside it, akv-env's Key Vault
//! harness behind a token endpoint that trusts the API server's service-account issuer,
//! and a node (a real kubelet and containerd, `AKV_TESTBED_NODE=1`) that runs injected
//! pods with the real `akv-env` from the akv-injector image (issue 12). For
//! containers without `command` (issue 5), a real image registry (Debian's
//! `docker-registry`, TLS + htpasswd) holds test images; our webhook reads their
//! ENTRYPOINT/CMD with the pull secrets it reads from the API server as the service
//! account of `manifests/base`, with only the RBAC given there.
//!
//! A `harness = false` test: [`STEPS`] run in order over one shared bed (it takes seconds
//! to start, and some steps build on earlier ones: `needs`), each named and reported like
//! a test by `akv_e2e::runner`; a failing step does not stop the others, the run fails at
//! the end naming every failed step. Every process started here is stopped by a guard on
//! drop, on failure too.
//!
//! Run it with `scripts/e2e` (builds the binaries, then `cargo test -p akv-e2e`); one step
//! and what it needs: `scripts/e2e registry::sa_secret`; the names: `scripts/e2e --list`.

mod admission;
mod bed;
mod checks;
mod node;
mod node_files;
mod node_identities;
mod node_pods;
mod node_refresh;
mod objects;
mod operations;
mod registration;
mod registry;

use std::process::ExitCode;

use akv_e2e::runner::{run_main, Step};

use crate::bed::Ctx;

/// Every step, in the order they run.
const STEPS: &[Step<Ctx>] = &[
    Step {
        name: "registration::register",
        about: "0. our webhook registered as manifests/base says (clientConfig aside)",
        needs: &[],
        run: registration::register,
    },
    Step {
        name: "admission::injected_deployment",
        about: "1. Deployment in an opted-in namespace: injected pods, no secret stored",
        needs: &["registration::register"],
        run: admission::injected_deployment,
    },
    Step {
        name: "registration::both_orders",
        about: "1b. both orders with the Workload Identity webhook end in the same pod",
        needs: &["admission::injected_deployment"],
        run: registration::both_orders,
    },
    Step {
        name: "admission::not_sent",
        about: "2. unlabelled namespace, kube-system, akv-injector, opt-out label: untouched, webhook not called",
        needs: &["registration::register"],
        run: admission::not_sent,
    },
    Step {
        name: "admission::restricted",
        about: "3. a namespace enforcing the restricted Pod Security Standard admits injected pods",
        needs: &["registration::register"],
        run: admission::restricted,
    },
    Step {
        name: "admission::dry_run",
        about: "4. kubectl apply --dry-run=server: works, no side effects",
        needs: &["admission::injected_deployment"],
        run: admission::dry_run,
    },
    Step {
        name: "admission::denials",
        about: "5. bad reference / bad annotation: refused with our message",
        needs: &["admission::injected_deployment"],
        run: admission::denials,
    },
    Step {
        name: "registry::pod_secret",
        about: "5b. no `command`, Deployment with imagePullSecrets: ENTRYPOINT/CMD from the TLS + htpasswd registry",
        needs: &["registration::register"],
        run: registry::pod_secret,
    },
    Step {
        name: "registry::sa_secret",
        about: "5c. no `command`, pull secret on the service account: read from the API server with the manifests' RBAC",
        needs: &["registration::register"],
        run: registry::sa_secret,
    },
    Step {
        name: "registry::wrong_credentials",
        about: "5d. no `command`, wrong registry credentials: refused with our message",
        needs: &["registration::register"],
        run: registry::wrong_credentials,
    },
    Step {
        name: "registry::names_cannot_escape",
        about: "5e. pull secret names that escape: refused; the webhook reads only in the pod's namespace (audit log)",
        needs: &["registration::register"],
        run: registry::names_cannot_escape,
    },
    // On the node, while our webhook is registered (operations::manifests replaces it).
    Step {
        name: "node::init_container_installs_under_restricted",
        about: "7. a real kubelet runs an injected pod under restricted: akv-injector-install copied akv-env and exited 0, every container exited 0",
        needs: &["registration::register"],
        run: node::init_container_installs_under_restricted,
    },
    Step {
        name: "node::app_sees_the_values_with_its_pid",
        about: "7b. the app saw the values (digests), ${akv:...} in a value, an env.* annotation, no AKV_INJECTOR_* left, as PID 1",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::app_sees_the_values_with_its_pid,
    },
    Step {
        name: "node::args_expanded_by_kubelet_then_resolved",
        about: "7c. $(VAR) in args expanded by the kubelet, then resolved by akv-env; the rest of argv as written",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::args_expanded_by_kubelet_then_resolved,
    },
    Step {
        name: "node::value_from_and_env_from_resolved",
        about: "7d. references that come from a ConfigMap (valueFrom, envFrom) are resolved",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::value_from_and_env_from_resolved,
    },
    Step {
        name: "node::no_command_runs_the_image_entrypoint",
        about: "7e. a container without `command` ran the image's ENTRYPOINT/CMD (read by the webhook from the node's registry)",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::no_command_runs_the_image_entrypoint,
    },
    Step {
        name: "node::restarted_container_fetches_again",
        about: "7f. a container that exits is restarted and fetches again: a later start sees the value changed in the vault",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::restarted_container_fetches_again,
    },
    Step {
        name: "node::untrusted_identity_never_starts_the_app",
        about: "7g. an untrusted service account: CrashLoopBackOff, akv-env's message in the log, the app never ran",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::untrusted_identity_never_starts_the_app,
    },
    Step {
        name: "node::native_sidecar_and_job",
        about: "7h. a Job with a native sidecar (restartPolicy: Always init container): both injected, the Job completes",
        needs: &["node::init_container_installs_under_restricted"],
        run: node::native_sidecar_and_job,
    },
    Step {
        name: "node_files::certificate_and_json_fields_as_files",
        about: "7i. file.* annotations: a certificate and key and a file with #json: fields, written 0400 for the container's user before the app ran",
        needs: &["node::init_container_installs_under_restricted"],
        run: node_files::certificate_and_json_fields_as_files,
    },
    Step {
        name: "node_identities::service_principal_secret_and_certificate",
        about: "7j. auth: service-principal, a client secret (secretKeyRef) and a certificate (Secret volume): one token each, no credential reaches the app",
        needs: &["node::init_container_installs_under_restricted"],
        run: node_identities::service_principal_secret_and_certificate,
    },
    Step {
        name: "node_identities::one_client_id_per_vault",
        about: "7k. client-id.<VAULT>: two vaults that each trust only their own client id, one token exchange per client id",
        needs: &["node::init_container_installs_under_restricted"],
        run: node_identities::one_client_id_per_vault,
    },
    Step {
        name: "node_identities::managed_identity_refused_without_the_flag",
        about: "7l. auth: managed-identity on a webhook started without --allow-managed-identity: refused with our message",
        needs: &["node::init_container_installs_under_restricted"],
        run: node_identities::managed_identity_refused_without_the_flag,
    },
    Step {
        name: "node_refresh::rotated_secret_restarts_the_container",
        about: "7m. refresh: 1m: a secret rotated in the vault stops the app (akv-env exits 75), the kubelet restarts it, the new start sees the new value",
        needs: &["node::init_container_installs_under_restricted"],
        run: node_refresh::rotated_secret_restarts_the_container,
    },
    Step {
        name: "operations::webhook_down",
        about: "6. webhook down: opted-in namespaces fail (failurePolicy Fail), others work; back up: works",
        needs: &["admission::injected_deployment", "admission::not_sent"],
        run: operations::webhook_down,
    },
    Step {
        name: "operations::manifests",
        about: "8. the shipped manifests and the certs script's overlay apply to the API server",
        needs: &["registration::register"],
        run: operations::manifests,
    },
];

fn main() -> ExitCode {
    run_main(STEPS, bed::setup)
}
