//! The settings the webhook writes (`AKV_INJECTOR_*`, through `akv_core::PodSettings`) are
//! the settings akv-env runs with: a domain tenant from `akv-injector.io/tenant-id` is
//! used for the token exchange. (That a repeated allowlist is refused is a unit test of
//! `config.rs`: `std::process::Command` cannot hand a child a variable twice.)

mod common;

use common::*;

#[test]
fn a_domain_tenant_from_the_annotation_gets_a_token() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let domain = tb.control("/info", serde_json::json!({}))["tenantDomain"]
        .as_str()
        .expect("the harness names its tenant's domain")
        .to_string();
    let name = unique("tenant");
    tb.secret("a", &name, "through-a-domain");
    let reference = format!("akv:{name}");
    let (out, seen, _) = pod.run_app(
        tb,
        &[
            // What the webhook writes for `akv-injector.io/tenant-id: Contoso.OnMicrosoft.com`.
            ("AKV_INJECTOR_TENANT_ID", &domain.to_uppercase()),
            ("VALUE", &reference),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = seen.expect("the app ran");
    assert_eq!(seen["env"]["VALUE"], "through-a-domain");
    assert_eq!(
        tb.tokens(&pod.client_id).0,
        1,
        "one token, for the domain tenant"
    );
}
