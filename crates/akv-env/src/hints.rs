//! What to do when the token could not be had: Entra ID's error code (`AADSTS…`) or
//! IMDS's answer, read from the token error's message, mapped to the next step for the
//! identity kind in use (pure, table-tested).
//!
//! Codes and texts: Entra ID's error code reference
//! (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>):
//! AADSTS7000215 "Invalid client secret provided", AADSTS7000222 "The provided client
//! secret keys are expired", AADSTS700027 "Client assertion failed signature validation"
//! (certificate not registered), AADSTS700016 "UnauthorizedClient_DoesNotMatchRequest"
//! (application not found in the directory), AADSTS70021 / AADSTS700213 "No matching
//! federated identity record found"; IMDS's "Identity not found" for a user-assigned
//! identity that is not assigned to the VM
//! (<https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#error-handling>).

use akv_core::{AuthKind, VaultUrl};

/// The identity an object was read with, as errors show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub auth: AuthKind,
    /// Empty for a managed identity chosen by the node (system-assigned).
    pub client_id: String,
    /// The client id came from `akv-injector.io/client-id.<VAULT>` for this vault.
    pub per_vault: bool,
}

impl Who {
    /// A workload identity with the pod's one client id.
    pub fn workload(client_id: &str) -> Who {
        Who {
            auth: AuthKind::WorkloadIdentity,
            client_id: client_id.to_string(),
            per_vault: false,
        }
    }

    /// "client id X" (workload identity, as before), "service principal client id X",
    /// "managed identity client id X" or "the node's managed identity".
    pub fn label(&self) -> String {
        match (self.auth, self.client_id.is_empty()) {
            (AuthKind::ManagedIdentity, true) => {
                "the node's managed identity (no client id given)".to_string()
            }
            (AuthKind::WorkloadIdentity, _) => format!("client id {}", self.client_id),
            (kind, _) => format!("{} client id {}", kind.words(), self.client_id),
        }
    }
}

/// Which identity reads a vault: a client id alone (workload identity, one per pod), or
/// the pod's identities with their per-vault client ids.
pub trait Identifies {
    fn who(&self, vault: &VaultUrl) -> Who;
}

impl Identifies for str {
    fn who(&self, _: &VaultUrl) -> Who {
        Who::workload(self)
    }
}

impl Identifies for String {
    fn who(&self, _: &VaultUrl) -> Who {
        Who::workload(self)
    }
}

/// The `AADSTS` number in a message, if any.
pub fn aadsts_code(message: &str) -> Option<u32> {
    let at = message.find("AADSTS")? + "AADSTS".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The next step after a failed token request by `who`, whose error said `message`.
pub fn token_hint(who: &Who, message: &str) -> String {
    let id = &who.client_id;
    let code = aadsts_code(message);
    match (who.auth, code) {
        (AuthKind::ServicePrincipal, Some(7_000_222)) => format!(
            "the client secret of service principal {id} has expired: create a new one (az ad app credential reset --id {id} --append), put it in the Secret that AZURE_CLIENT_SECRET is mapped from, and restart the pod"
        ),
        (AuthKind::ServicePrincipal, Some(7_000_215)) => format!(
            "AZURE_CLIENT_SECRET is not a secret of service principal {id}: map the secret's value (not its Secret ID) from the app registration's Certificates & secrets, and check AZURE_CLIENT_ID"
        ),
        (AuthKind::ServicePrincipal, Some(700_027)) => format!(
            "the certificate in AZURE_CLIENT_CERTIFICATE_PATH is not registered on service principal {id}: upload its public part (az ad app credential reset --id {id} --cert @cert.pem --append), or mount the certificate that is registered"
        ),
        (_, Some(700_016)) => format!(
            "no application with client id {id} exists in the tenant: check the client id (AZURE_CLIENT_ID or akv-injector.io/client-id) and the tenant id (AZURE_TENANT_ID or akv-injector.io/tenant-id)"
        ),
        (AuthKind::WorkloadIdentity, Some(70_021 | 700_213)) if who.per_vault => format!(
            "client id {id} is the one for this vault (annotation akv-injector.io/client-id.<VAULT>), and it has no federated identity credential for the pod's service account: add one to that app registration too (issuer = the cluster's OIDC issuer, subject = system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT, audience = api://AzureADTokenExchange); each client id needs its own"
        ),
        (AuthKind::WorkloadIdentity, _) => format!(
            "check the federated identity credential of client id {id} in Entra ID (issuer = the cluster's OIDC issuer, subject = system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT, audience = api://AzureADTokenExchange), the tenant id, and that the pod's token file (AZURE_FEDERATED_TOKEN_FILE) is the one projected for its service account"
        ),
        (AuthKind::ServicePrincipal, _) => format!(
            "check the service principal's variables in the container (AZURE_CLIENT_ID {id}, AZURE_TENANT_ID, and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH) against its app registration"
        ),
        (AuthKind::ManagedIdentity, _) => managed_identity_hint(who, message),
    }
}

fn managed_identity_hint(who: &Who, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("identity not found") || lower.contains("no managed identity") {
        return if who.client_id.is_empty() {
            "the node has no managed identity, or several: assign one to the node pool's VM scale set, or name the user-assigned one with the pod annotation akv-injector.io/client-id".to_string()
        } else {
            format!(
                "the user-assigned managed identity with client id {} is not assigned to this node: assign it to the node pool's VM scale set (az vmss identity assign --identities RESOURCE_ID ...), or use the client id of one that is (on AKS, the kubelet identity)",
                who.client_id
            )
        };
    }
    if lower.contains("169.254.169.254") || lower.contains("connect") {
        return "the instance metadata service (IMDS, 169.254.169.254) did not answer: check that the pod runs on an Azure VM and that no NetworkPolicy or node setting blocks it".to_string();
    }
    "check that the node's managed identity exists and is the one you meant (pod annotation akv-injector.io/client-id picks a user-assigned one)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(auth: AuthKind, id: &str, per_vault: bool) -> Who {
        Who {
            auth,
            client_id: id.to_string(),
            per_vault,
        }
    }

    #[test]
    fn codes() {
        let cases = [
            (
                "AADSTS7000222: The provided client secret keys for app 'x' are expired.",
                Some(7_000_222),
            ),
            (
                "invalid_client: AADSTS7000215: Invalid client secret provided.",
                Some(7_000_215),
            ),
            ("AADSTS700027", Some(700_027)),
            ("AADSTS: nothing", None),
            ("Identity not found", None),
        ];
        for (message, want) in cases {
            assert_eq!(aadsts_code(message), want, "{message}");
        }
    }

    #[test]
    fn hints_name_the_kind_and_the_next_step() {
        use AuthKind::*;
        let cases: &[(Who, &str, &str)] = &[
            (who(ServicePrincipal, "c1", false), "AADSTS7000222: expired", "the client secret of service principal c1 has expired"),
            (who(ServicePrincipal, "c1", false), "AADSTS7000215: Invalid client secret", "AZURE_CLIENT_SECRET is not a secret of service principal c1"),
            (who(ServicePrincipal, "c1", false), "AADSTS700027: not registered", "the certificate in AZURE_CLIENT_CERTIFICATE_PATH is not registered on service principal c1"),
            (who(ServicePrincipal, "c1", false), "AADSTS90002: tenant", "check the service principal's variables"),
            (who(WorkloadIdentity, "c2", true), "AADSTS700213: No matching federated identity record", "client id c2 is the one for this vault (annotation akv-injector.io/client-id.<VAULT>)"),
            (who(WorkloadIdentity, "c2", false), "AADSTS700213: No matching federated identity record", "check the federated identity credential of client id c2"),
            (who(WorkloadIdentity, "c2", true), "AADSTS700016: not found", "no application with client id c2 exists in the tenant"),
            (who(ManagedIdentity, "c3", false), "400: Identity not found", "the user-assigned managed identity with client id c3 is not assigned to this node"),
            (who(ManagedIdentity, "", false), "Identity not found", "the node has no managed identity, or several"),
            (who(ManagedIdentity, "", false), "error sending request for url (http://169.254.169.254/metadata/identity/oauth2/token)", "the instance metadata service (IMDS, 169.254.169.254) did not answer"),
        ];
        for (who, message, want) in cases {
            let hint = token_hint(who, message);
            assert!(hint.starts_with(want), "{who:?} {message}: {hint}");
        }
    }

    #[test]
    fn labels() {
        use AuthKind::*;
        assert_eq!(Who::workload("c").label(), "client id c");
        assert_eq!(
            who(ServicePrincipal, "c", false).label(),
            "service principal client id c"
        );
        assert_eq!(
            who(ManagedIdentity, "c", false).label(),
            "managed identity client id c"
        );
        assert_eq!(
            who(ManagedIdentity, "", false).label(),
            "the node's managed identity (no client id given)"
        );
    }
}
