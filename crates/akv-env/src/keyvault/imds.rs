//! The node's managed identity through the instance metadata service (IMDS): akv-env's
//! own credential, `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
//! [&client_id=C]` with `Metadata: true`, over the capped HTTP client.
//!
//! Why not azure_identity's `ManagedIdentityCredential`: it picks its endpoint from the
//! process environment (`IDENTITY_ENDPOINT`, `IMDS_ENDPOINT`, `MSI_ENDPOINT`), so the
//! pod's own variables could send the request elsewhere. Here the endpoint is fixed in
//! the shipped binary; only a build with the `test-endpoints` cargo feature (akv-env's own
//! integration tests, through its self dev-dependency) reads [`TEST_ENDPOINT_VAR`], so
//! tests talk to a loopback IMDS and never to 169.254.169.254.
//!
//! Answer shape (IMDS docs, "How to use managed identities for Azure resources on an Azure
//! VM to acquire an access token"): `{"access_token":..., "expires_in":"86399",
//! "expires_on":"1700000000", "resource":..., "token_type":"Bearer", "client_id":...}`
//! (numbers as strings); errors `{"error":"invalid_request","error_description":"Identity
//! not found"}` with 400.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::http::{HttpClient, Method, Request, StatusCode, Url};
use azure_core::time::{Duration as SdkDuration, OffsetDateTime};

/// Where IMDS answers on every Azure VM.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The API version the Azure SDKs send.
pub const API_VERSION: &str = "2018-02-01";
/// Read only by a build with the `test-endpoints` feature: a loopback IMDS for tests.
pub const TEST_ENDPOINT_VAR: &str = "AKV_ENV_TEST_IMDS_ENDPOINT";

/// The endpoint this build uses: [`IMDS_ENDPOINT`], or with the `test-endpoints` feature
/// the value of [`TEST_ENDPOINT_VAR`] when `lookup` finds one.
pub fn endpoint(lookup: impl Fn(&str) -> Option<String>) -> String {
    #[cfg(feature = "test-endpoints")]
    if let Some(test) = lookup(TEST_ENDPOINT_VAR).filter(|v| !v.is_empty()) {
        return test;
    }
    let _ = &lookup;
    IMDS_ENDPOINT.to_string()
}

/// A token credential for one managed identity: the node's own (`client_id` `None`), or a
/// user-assigned one.
#[derive(Debug)]
pub struct ImdsCredential {
    endpoint: Url,
    client_id: Option<String>,
    http: Arc<dyn HttpClient>,
}

impl ImdsCredential {
    pub fn new(
        endpoint: &str,
        client_id: Option<String>,
        http: Arc<dyn HttpClient>,
    ) -> Result<Self, String> {
        let endpoint = Url::parse(endpoint)
            .map_err(|e| format!("cannot use the IMDS endpoint {endpoint}: {e}"))?;
        Ok(ImdsCredential {
            endpoint,
            client_id,
            http,
        })
    }

    /// The request URL for `scope` (`RESOURCE/.default`).
    pub fn url(&self, scope: &str) -> Url {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", API_VERSION);
            q.append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                q.append_pair("client_id", id);
            }
        }
        url
    }

    async fn request(&self, scope: &str) -> azure_core::Result<AccessToken> {
        let mut request = Request::new(self.url(scope), Method::Get);
        request.insert_header("metadata", "true");
        request.insert_header("user-agent", concat!("akv-env/", env!("CARGO_PKG_VERSION")));
        let response = self.http.execute_request(&request).await?;
        let (status, headers, body) = response.deconstruct();
        let body = body.collect().await?;
        if status != StatusCode::Ok {
            let description = error_description(&body);
            let raw = azure_core::http::RawResponse::from_bytes(status, headers, body);
            return Err(Error::new(
                ErrorKind::HttpResponse {
                    status,
                    error_code: None,
                    raw_response: Some(Box::new(raw)),
                },
                format!("IMDS answered {}: {description}", u16::from(status)),
            ));
        }
        parse_token(&body).map_err(|e| {
            Error::with_message(
                ErrorKind::DataConversion,
                format!("IMDS's token answer does not parse: {e}"),
            )
        })
    }
}

/// `error_description` (or `error`) of an IMDS error answer, else its first bytes.
pub fn error_description(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer {
            error_description: Some(d),
            ..
        }) => d,
        Ok(Answer { error: Some(e), .. }) => e,
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// An IMDS token answer: `access_token`, and `expires_in` (seconds, a string or a number).
pub fn parse_token(body: &[u8]) -> Result<AccessToken, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    let expires_in = match &v["expires_in"] {
        serde_json::Value::String(s) => {
            s.parse::<i64>().map_err(|_| "expires_in is not a number")?
        }
        serde_json::Value::Number(n) => n.as_i64().ok_or("expires_in is not a number")?,
        _ => return Err("no expires_in".into()),
    };
    Ok(AccessToken::new(
        Secret::new(token.to_string()),
        OffsetDateTime::now_utc() + SdkDuration::seconds(expires_in),
    ))
}

#[async_trait::async_trait]
impl TokenCredential for ImdsCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(Error::with_message(
                ErrorKind::Credential,
                "IMDS takes exactly one scope",
            ));
        };
        self.request(scope).await.map_err(|e| {
            let what = match &self.client_id {
                Some(id) => format!("managed identity client id {id}"),
                None => "the node's managed identity".to_string(),
            };
            Error::with_error(
                ErrorKind::Credential,
                e,
                format!(
                    "ManagedIdentity (IMDS at {}) authentication failed for {what}",
                    self.endpoint
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Never;

    #[async_trait::async_trait]
    impl HttpClient for Never {
        async fn execute_request(
            &self,
            _: &Request,
        ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
            Err(Error::with_message(
                ErrorKind::Io,
                "no network in unit tests",
            ))
        }
    }

    #[test]
    fn request_urls() {
        let system = ImdsCredential::new(IMDS_ENDPOINT, None, Arc::new(Never)).expect("url");
        assert_eq!(
            system.url("https://vault.azure.net/.default").as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
        );
        let user = ImdsCredential::new(
            "http://127.0.0.1:1/metadata/identity/oauth2/token",
            Some("c1".into()),
            Arc::new(Never),
        )
        .expect("url");
        assert_eq!(
            user.url("https://vault.azure.cn/.default").as_str(),
            "http://127.0.0.1:1/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.cn&client_id=c1"
        );
    }

    #[test]
    fn the_shipped_endpoint_is_imds_unless_built_for_tests() {
        let with_override =
            |name: &str| (name == TEST_ENDPOINT_VAR).then(|| "http://127.0.0.1:9/x".to_string());
        let got = endpoint(with_override);
        if cfg!(feature = "test-endpoints") {
            assert_eq!(got, "http://127.0.0.1:9/x");
        } else {
            assert_eq!(got, IMDS_ENDPOINT);
        }
        assert_eq!(endpoint(|_| None), IMDS_ENDPOINT);
    }

    #[test]
    fn answers() {
        let ok = br#"{"access_token":"eyJ","expires_in":"86399","expires_on":"1","resource":"https://vault.azure.net","token_type":"Bearer"}"#;
        assert_eq!(parse_token(ok).expect("token").token.secret(), "eyJ");
        assert!(parse_token(br#"{"access_token":"eyJ","expires_in":3599}"#).is_ok());
        for bad in [
            &br#"{"expires_in":"1"}"#[..],
            br#"{"access_token":"x"}"#,
            b"<html>",
        ] {
            assert!(parse_token(bad).is_err());
        }
        assert_eq!(
            error_description(
                br#"{"error":"invalid_request","error_description":"Identity not found"}"#
            ),
            "Identity not found"
        );
        assert_eq!(error_description(b"busy"), "busy");
    }
}
