//! Image references as Kubernetes and Docker read them: `nginx`, `nginx:1.27`,
//! `library/nginx`, `host:port/ns/img:tag`, `img@sha256:…`, and tag plus digest. Docker Hub
//! names are normalised to `docker.io/library/…`, and are fetched from `index.docker.io`.
//!
//! The grammar is the distribution project's (`reference := name [":" tag] ["@" digest]`):
//! the first path component is a registry host when it has a `.` or a `:`, is `localhost`
//! or has an upper-case letter (as containerd and Docker split names; oci-client 0.18
//! reads `Team/app` as a Docker Hub repository instead, which no registry serves); path components are lower-case letters and digits joined by `.`, `_`,
//! `__` or runs of `-`; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is
//! `ALGORITHM:HEX`, with 64 hex digits for sha256 and 128 for sha512. Our own, small
//! parser: the webhook needs nothing else of an OCI client crate, whose dependencies
//! (regex, chrono, derive macros) were a sizeable part of the first build. The tests hold it
//! to `oci_client::Reference` (a dev-dependency) on the same inputs.

/// The registry that names without a host belong to.
const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub is contacted.
const DOCKER_HUB_HOST: &str = "index.docker.io";
/// The longest `registry/repository`, as the distribution grammar allows.
const MAX_NAME: usize = 255;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses an image as written in a container spec.
    pub fn parse(image: &str) -> Result<Self, String> {
        let image = image.trim();
        if image.is_empty() {
            return Err("the container has no image".to_string());
        }
        parse_reference(image)
            .map_err(|why| format!("'{image}' is not a valid image reference: {why}"))
    }

    /// The registry as named (`docker.io` for Docker Hub), used to match pull secrets.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) that is contacted (`index.docker.io` for Docker Hub).
    pub fn host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_HOST
        } else {
            &self.registry
        }
    }

    /// The repository, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the image names neither a tag nor a digest. `None` when it
    /// names only a digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the image names one. With a tag and a digest, the digest wins (as in
    /// the container runtime).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository` in normalised form, e.g. `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }
}

fn parse_reference(image: &str) -> Result<ImageRef, String> {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(check_digest(digest)?)),
        None => (image, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&rest[..at], Some(check_tag(&rest[at + 1..])?))
        }
        None => (rest, None),
    };
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if is_host(first) => {
            check_host(first)?;
            (first.to_string(), path)
        }
        _ => (DOCKER_HUB.to_string(), name),
    };
    for component in path.split('/') {
        check_component(component)?;
    }
    let registry = if registry == DOCKER_HUB_HOST {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag.map(str::to_string),
    };
    Ok(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Whether the first of several path components names a registry host: it has a `.` or a
/// `:`, is `localhost`, or has an upper-case letter (which a repository cannot), as the
/// container runtimes split names (so the webhook reads the image the node pulls).
fn is_host(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn check_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "path component '{c}' must be lower-case letters and digits, joined by '.', '_', '__' or '-'"
        ))
    };
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// A registry host: DNS labels of letters, digits and '-' joined by '.', or an IPv4
/// address, with an optional port.
fn check_host(h: &str) -> Result<(), String> {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err(format!("'{h}' is not a registry host"));
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|x| x.is_ascii_digit()) {
            return Err(format!("'{h}' has a port that is not a number"));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(t: &str) -> Result<&str, String> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(t)
    } else {
        Err(format!(
            "tag '{t}' must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ))
    }
}

/// `ALGORITHM:HEX`: sha256 with 64 hex digits, sha512 with 128, another algorithm with at
/// least 32.
fn check_digest(d: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("digest '{d}' {why}"));
    let Some((algorithm, hex)) = d.split_once(':') else {
        return bad("must be ALGORITHM:HEX");
    };
    let alg_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"+._-".contains(&x));
    if !alg_ok {
        return bad("has a malformed algorithm");
    }
    let want = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    let hex_ok = hex
        .bytes()
        .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x));
    match want {
        Some(n) if hex.len() != n || !hex_ok => {
            bad(&format!("must have {n} lower-case hex digits"))
        }
        None if hex.len() < 32
            || !hex
                .bytes()
                .all(|x| x.is_ascii_alphanumeric() || b"=_-".contains(&x)) =>
        {
            bad("has a malformed value")
        }
        _ => Ok(d.to_string()),
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

    /// The same inputs through `oci_client::Reference`, which the webhook used before: the
    /// same parts for every reference both accept, and ours never accepts what it refuses.
    #[test]
    fn agrees_with_oci_client() {
        let long = format!("a/{}", "b".repeat(260));
        let tag128 = format!("app:{}", "t".repeat(128));
        let tag129 = format!("app:{}", "t".repeat(129));
        let inputs = [
            "nginx",
            "nginx:1.27",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx",
            "index.docker.io/nginx",
            "index.docker.io/team/app:1",
            "bitnami/redis:7",
            "registry.example:5000/team/app:v1",
            "127.0.0.1:5000/a/b/c:t",
            "localhost/app",
            "localhost:5000/app:dev",
            "myacr.azurecr.io/app:1",
            "ghcr.io/org/app:1.2",
            "a__b/c-d/e.f_g:T_1.2-x",
            "a---b/c",
            "my-registry.local/x",
            "Nginx",
            "nginx:bad tag",
            "nginx:",
            ":tag",
            "/nginx",
            "nginx/",
            "a//b",
            "a/.b",
            "a/b.",
            "a/-b",
            "a/b-",
            "a..b",
            "a/b___c",
            "UPPER.io/app",
            "host:port/app",
            "host:/app",
            "-host.io/app",
            "nginx@sha256:abc",
            "nginx:.tag",
            "nginx:-tag",
            "app@sha512:00",
            "app@md5:",
            &long,
            &tag128,
            &tag129,
        ];
        let d256 = format!("nginx@{D}");
        let both = format!("ghcr.io/org/app:1.2@{D}");
        let d512 = format!("app@sha512:{}", "0".repeat(128));
        let (mut accepted, mut refused) = (0, 0);
        for image in inputs
            .iter()
            .copied()
            .chain([d256.as_str(), both.as_str(), d512.as_str()])
        {
            let ours = ImageRef::parse(image);
            let theirs = oci_client::Reference::try_from(image);
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => {
                    assert_eq!(o.registry(), t.registry(), "{image}");
                    assert_eq!(o.host(), t.resolve_registry(), "{image}");
                    assert_eq!(o.repository(), t.repository(), "{image}");
                    assert_eq!(o.tag(), t.tag(), "{image}");
                    assert_eq!(o.digest(), t.digest(), "{image}");
                    accepted += 1;
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!("{image}: ours {ours:?}, oci-client {theirs:?}"),
            }
        }
        assert!(
            accepted >= 20 && refused >= 15,
            "accepted {accepted}, refused {refused}"
        );
    }

    proptest::proptest! {
        /// Random strings of the characters references are made of: whatever we accept,
        /// oci-client accepts with the same parts (the first component in lower case: an
        /// upper-case one is where we knowingly differ, see the module's comment).
        #[test]
        fn agrees_with_oci_client_on_random_input(
            image in "[a-z0-9:@._-]{1,15}(/[a-zA-Z0-9:@._-]{1,15}){0,2}",
        ) {
            let ours = ImageRef::parse(&image);
            let theirs = oci_client::Reference::try_from(image.as_str());
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => {
                    proptest::prop_assert_eq!(o.registry(), t.registry());
                    proptest::prop_assert_eq!(o.repository(), t.repository());
                    proptest::prop_assert_eq!(o.tag(), t.tag());
                    proptest::prop_assert_eq!(o.digest(), t.digest());
                }
                // stricter than oci-client only where it is lenient beyond the grammar
                // (e.g. `_` in a host name, which no runtime pulls)
                (Err(_), _) => {}
                (Ok(_), Err(_)) => proptest::prop_assert!(false, "{}: ours {:?}, oci-client {:?}", image, ours, theirs),
            }
        }
    }
}
