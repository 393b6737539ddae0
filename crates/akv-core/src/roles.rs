//! Which Azure built-in role lets an identity read a part, the least-privileged one, so
//! that the README, akv-env's 403 hints and the troubleshooting table give one answer.
//!
//! From the built-in role definitions (Azure RBAC for Key Vault,
//! <https://learn.microsoft.com/azure/key-vault/general/rbac-guide>, and
//! <https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security>):
//! - Key Vault Secrets User (4633458b-17de-408a-b874-0445c86b69e6):
//!   `secrets/getSecret/action`, `secrets/readMetadata/action` — a secret's value.
//! - Key Vault Reader (21090545-7ca7-4776-b22c-e363652d74d2): `vaults/*/read` and
//!   `secrets/readMetadata/action` — includes `certificates/read` (the public `cer`) and
//!   `keys/read` ("properties and public material of a key"), never a secret's value.
//! - Key Vault Certificate User (db79e9a7-68ee-4b58-9aeb-b90e7c24fcba):
//!   `certificates/read`, `secrets/getSecret/action`, `secrets/readMetadata/action`,
//!   `keys/read` — the certificate and its backing secret (private key and chain).
//!
//! Key Vault Crypto User would also serve `#pubkey`, but it may sign and decrypt with the
//! key as well: more than reading a public key needs.

use crate::Part;

/// The least-privileged built-in role that reads this part.
pub fn least_privileged_role(part: &Part) -> &'static str {
    match part {
        Part::Value | Part::Base64 | Part::Json(_) => "Key Vault Secrets User",
        Part::Cert | Part::Pubkey => "Key Vault Reader",
        Part::Key | Part::Chain | Part::Pfx => "Key Vault Certificate User",
    }
}

/// The one role that reads every part asked of one object.
pub fn role_for_parts(parts: &[Part]) -> &'static str {
    let rank = |part: &Part| match part {
        Part::Cert | Part::Pubkey => 0,
        Part::Value | Part::Base64 | Part::Json(_) => 1,
        Part::Key | Part::Chain | Part::Pfx => 2,
    };
    parts
        .iter()
        .max_by_key(|p| rank(p))
        .map_or(least_privileged_role(&Part::Value), least_privileged_role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_part_and_per_object() {
        let cases: &[(&[Part], &str)] = &[
            (&[Part::Value], "Key Vault Secrets User"),
            (&[Part::Cert], "Key Vault Reader"),
            (&[Part::Pubkey], "Key Vault Reader"),
            (&[Part::Key], "Key Vault Certificate User"),
            (&[Part::Cert, Part::Chain], "Key Vault Certificate User"),
            (&[Part::Chain, Part::Cert], "Key Vault Certificate User"),
            (&[Part::Cert, Part::Pfx], "Key Vault Certificate User"),
            (&[Part::Base64], "Key Vault Secrets User"),
            (&[], "Key Vault Secrets User"),
        ];
        for (parts, want) in cases {
            assert_eq!(role_for_parts(parts), *want, "{parts:?}");
        }
    }
}
