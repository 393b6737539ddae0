//! AdmissionReview builders for the webhook's tests.

use serde_json::{json, Value};

/// An AdmissionReview (admission.k8s.io/v1) of a Pod CREATE in `namespace`, as JSON bytes.
pub fn pod_review(uid: &str, namespace: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": object,
        }
    }))
    .expect("a JSON value serializes")
}
