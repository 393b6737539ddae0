//! Authentication after a 401: the `WWW-Authenticate` challenge ([`parse_challenge`]),
//! Basic, or a bearer token from a realm that must pass [`HostRules::check_hop`], and
//! the cache of the authorizations so obtained.
//!
//! [`HostRules::check_hop`]: crate::registry::hosts::HostRules::check_hop

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest13::header::HeaderValue;
use reqwest13::Url;
use serde::Deserialize;

use super::body::{read_body, status_error, Limit, MAX_SMALL_BYTES};
use super::{Credentials, HttpError, RegistryHttp};

/// Longest bearer token accepted.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest a token or Basic authorization is reused.
pub(super) const AUTH_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(super) struct AuthKey {
    pub(super) host: String,
    pub(super) repository: String,
    pub(super) credentials: [u8; 32],
}

#[derive(Clone)]
pub(super) struct CachedAuth {
    pub(super) header: HeaderValue,
    pub(super) until: Instant,
}

/// The parts of a `WWW-Authenticate` challenge that are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The challenge of a 401: Bearer when offered, else Basic.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut basic = false;
    for challenge in http_auth::ChallengeParser::new(value).flatten() {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Some(Challenge::Bearer {
                    realm,
                    service: param("service"),
                });
            }
        } else if challenge.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

impl RegistryHttp {
    /// The `Authorization` for a challenge, and how long it may be reused.
    pub(super) async fn authorize(
        &self,
        origin: &Url,
        repository: &str,
        credentials: &Credentials,
        challenge: Option<Challenge>,
    ) -> Result<(HeaderValue, Duration), HttpError> {
        let unauthorized = HttpError::Unauthorized {
            status: 401,
            code: None,
        };
        match (challenge, credentials) {
            (None, _) | (Some(Challenge::Basic), Credentials::Anonymous) => Err(unauthorized),
            (Some(Challenge::Basic), Credentials::Basic { username, password }) => {
                let raw = BASE64.encode(format!("{username}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {raw}")).map_err(|_| {
                    HttpError::Invalid("the pull secret's credentials cannot be sent".to_string())
                })?;
                value.set_sensitive(true);
                Ok((value, AUTH_TTL))
            }
            (Some(Challenge::Bearer { realm, service }), credentials) => {
                self.token(origin, repository, credentials, &realm, service.as_deref())
                    .await
            }
        }
    }

    async fn token(
        &self,
        origin: &Url,
        repository: &str,
        credentials: &Credentials,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(HeaderValue, Duration), HttpError> {
        let mut url = Url::parse(realm)
            .map_err(|_| HttpError::Hop("the registry's token realm is not a URL".to_string()))?;
        self.rules
            .check_hop(origin, &url, "token realm")
            .map_err(HttpError::Hop)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{repository}:pull"));
        }
        let basic = match credentials {
            Credentials::Basic { username, password } => {
                Some((username.as_str(), password.as_str()))
            }
            Credentials::Anonymous => None,
        };
        let response = self.send(&url, "application/json", None, basic).await?;
        if !response.status().is_success() {
            return Err(status_error(response, &self.budget).await);
        }
        let limit = Limit {
            what: "token answer",
            declared: None,
            cap: MAX_SMALL_BYTES,
        };
        let body = read_body(response, limit, &self.budget).await?;
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let unusable =
            || HttpError::Invalid("the registry's token service sent no usable token".to_string());
        let answer: Token = serde_json::from_slice(&body).map_err(|_| unusable())?;
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES)
            .ok_or_else(unusable)?;
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| unusable())?;
        value.set_sensitive(true);
        // Registries default to 60 s; reuse for at most 90 % of the lifetime, ≤ 5 min.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 300));
        Ok((value, lifetime.mul_f32(0.9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases = [
            (r#"Basic realm="test""#, Some(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                }),
            ),
            (
                r#"Basic realm="x", Bearer realm="https://r.example/token""#,
                Some(Challenge::Bearer {
                    realm: "https://r.example/token".into(),
                    service: None,
                }),
            ),
            (r#"Bearer service="no-realm""#, None),
            ("Negotiate", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_challenge(header), want, "{header}");
        }
    }
}
