//! Image references as Kubernetes and Docker read them: `nginx`, `nginx:1.27`,
//! `library/nginx`, `host:port/ns/img:tag`, `img@sha256:…`, and tag plus digest. Docker Hub
//! names are normalised to `docker.io/library/…`, and are fetched from `index.docker.io`.

use oci_client::Reference;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    inner: Reference,
}

impl ImageRef {
    /// Parses an image as written in a container spec.
    pub fn parse(image: &str) -> Result<Self, String> {
        let image = image.trim();
        if image.is_empty() {
            return Err("the container has no image".to_string());
        }
        let inner = Reference::try_from(image)
            .map_err(|e| format!("'{image}' is not a valid image reference: {e}"))?;
        Ok(ImageRef { inner })
    }

    /// The registry as named (`docker.io` for Docker Hub), used to match pull secrets.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The host (and port) that is contacted (`index.docker.io` for Docker Hub).
    pub fn host(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// The repository, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag; `latest` when the image names neither a tag nor a digest. `None` when it
    /// names only a digest.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, if the image names one. With a tag and a digest, the digest wins (as in
    /// the container runtime).
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// `registry/repository` in normalised form, e.g. `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn forms() {
        let with_digest = format!("nginx@{D}");
        let tag_and_digest = format!("ghcr.io/org/app:1.2@{D}");
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            // image, registry, host, repository, tag, digest
            (
                "nginx",
                "docker.io",
                "index.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "nginx:1.27",
                "docker.io",
                "index.docker.io",
                "library/nginx",
                Some("1.27"),
                None,
            ),
            (
                "library/nginx",
                "docker.io",
                "index.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "docker.io/nginx",
                "docker.io",
                "index.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "bitnami/redis:7",
                "docker.io",
                "index.docker.io",
                "bitnami/redis",
                Some("7"),
                None,
            ),
            (
                "registry.example:5000/team/app:v1",
                "registry.example:5000",
                "registry.example:5000",
                "team/app",
                Some("v1"),
                None,
            ),
            (
                "127.0.0.1:5000/a/b/c:t",
                "127.0.0.1:5000",
                "127.0.0.1:5000",
                "a/b/c",
                Some("t"),
                None,
            ),
            (
                "localhost/app",
                "localhost",
                "localhost",
                "app",
                Some("latest"),
                None,
            ),
            (
                "myacr.azurecr.io/app:1",
                "myacr.azurecr.io",
                "myacr.azurecr.io",
                "app",
                Some("1"),
                None,
            ),
            (
                &with_digest,
                "docker.io",
                "index.docker.io",
                "library/nginx",
                None,
                Some(D),
            ),
            (
                &tag_and_digest,
                "ghcr.io",
                "ghcr.io",
                "org/app",
                Some("1.2"),
                Some(D),
            ),
        ];
        for (image, registry, host, repository, tag, digest) in cases {
            let r = ImageRef::parse(image).expect(image);
            assert_eq!(r.registry(), registry, "{image}");
            assert_eq!(r.host(), host, "{image}");
            assert_eq!(r.repository(), repository, "{image}");
            assert_eq!(r.tag(), tag, "{image}");
            assert_eq!(r.digest(), digest, "{image}");
        }
        assert_eq!(
            ImageRef::parse("nginx").expect("ok").name(),
            "docker.io/library/nginx"
        );
    }

    #[test]
    fn bad_references() {
        for (image, want) in [
            ("", "the container has no image"),
            ("Nginx", "is not a valid image reference"),
            ("nginx@sha256:abc", "is not a valid image reference"),
            ("nginx:bad tag", "is not a valid image reference"),
        ] {
            let err = ImageRef::parse(image).expect_err(image);
            assert!(err.contains(want), "{image}: {err}");
        }
    }
}
