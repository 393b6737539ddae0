//! End to end on a real Kubernetes API server (issue 4): one test bed per run
//! (`scripts/kube-up`: etcd, kube-apiserver, kube-controller-manager and the real Azure
//! Workload Identity webhook), our `akv-webhook` registered beside it, akv-env's Key Vault
//! harness behind a token endpoint that trusts the API server's service-account issuer,
//! and a kubelet stand-in that runs the stored pods with the real `akv-env`. For
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
mod kubelet;
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
    Step {
        name: "operations::webhook_down",
        about: "6. webhook down: opted-in namespaces fail (failurePolicy Fail), others work; back up: works",
        needs: &["admission::injected_deployment", "admission::not_sent"],
        run: operations::webhook_down,
    },
    Step {
        name: "kubelet::app_sees_the_secrets",
        about: "7. kubelet stand-in: the application sees the secrets; an untrusted service account fails",
        needs: &["admission::injected_deployment"],
        run: kubelet::app_sees_the_secrets,
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
