//! Which registry hosts and addresses the webhook contacts.
//!
//! A pod author names the registry host, so a lookup must not become a way to probe
//! what the webhook can reach: by default no loopback, link-local (the node's metadata
//! endpoint lives at 169.254.169.254), unspecified, broadcast or multicast address is
//! contacted, whether the image names it literally or a name resolves to it, nor any
//! network the operator denies (`--registry-deny-cidr`, e.g. the cluster's service CIDR).
//! `--registry-allow-host` exempts a private registry that lives there.
//!
//! Names are checked where they are resolved ([`GuardedResolver`], reqwest's DNS hook), so
//! the address that is connected to is the one that was checked (no DNS rebinding between
//! a check and the connect). Literal addresses never reach a resolver: they are checked
//! before any request, for the image's host, redirect targets and token realms alike.
//!
//! Redirects and token realms stay on the registry's own host or go to a host the
//! operator allows (`--registry-redirect-host`), plus the blob stores and token services
//! of well-known public registries ([`BUILT_IN_REDIRECT_HOSTS`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest13::dns::{Addrs, Name, Resolve, Resolving};
use reqwest13::Url;

/// Hosts that public registries redirect blob downloads to or name as their token
/// service. A leading dot means every host under it.
pub const BUILT_IN_REDIRECT_HOSTS: &[&str] = &[
    // Docker Hub: token service and blob stores.
    "auth.docker.io",
    "production.cloudflare.docker.com",
    ".r2.cloudflarestorage.com",
    // GitHub Container Registry.
    "pkg-containers.githubusercontent.com",
    // Azure Container Registry and Microsoft Artifact Registry (mcr.microsoft.com).
    ".blob.core.windows.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
    ".data.mcr.microsoft.com",
    // Amazon ECR, registry.k8s.io and quay.io blob stores.
    ".amazonaws.com",
    ".quay.io",
    // Google Artifact Registry / gcr.io, registry.k8s.io.
    "storage.googleapis.com",
    ".pkg.dev",
];

/// A host name or address as the operator writes it: `registry.corp`, `.corp` (every
/// host under it), `10.0.0.5`, `fd00::5`. Ports are not part of it: it matches every port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
    Ip(IpAddr),
}

impl HostPattern {
    /// Parses one `--registry-allow-host`/`--registry-redirect-host` entry.
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim().to_ascii_lowercase();
        let bad = |why: &str| Err(format!("'{}' is not a host: {why}", value.trim()));
        if v.is_empty() {
            return bad("it is empty");
        }
        if v.contains("://") || v.contains('/') {
            return bad("give the host alone, without a scheme or path");
        }
        let unbracketed = v.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(HostPattern::Ip(canonical(ip)));
        }
        if v.contains(':') {
            return bad("give the host without a port (it matches every port)");
        }
        let (suffix, name) = match v.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, v.as_str()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return bad("it is not a DNS name or an IP address");
        }
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    /// Whether `host` (a name or an address, without port, any case) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
        match self {
            HostPattern::Exact(name) => *name == host,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Ip(ip) => unbracketed
                .parse::<IpAddr>()
                .is_ok_and(|h| canonical(h) == *ip),
        }
    }
}

/// Parses one `--registry-deny-cidr` entry (`10.96.0.0/12`, `fd00::/8`; an address alone
/// is one host).
pub fn parse_cidr(value: &str) -> Result<IpNet, String> {
    let v = value.trim();
    if let Ok(net) = v.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    v.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{v}' is not a CIDR (e.g. 10.96.0.0/12) or an IP address"))
}

/// The operator's host rules.
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    /// `--registry-allow-host`: contacted whatever their addresses.
    pub allow: Vec<HostPattern>,
    /// `--registry-deny-cidr`: networks never contacted (unless allowed by name).
    pub deny: Vec<IpNet>,
    /// `--registry-redirect-host`: where registries may redirect to or send us for tokens,
    /// besides their own host and [`BUILT_IN_REDIRECT_HOSTS`].
    pub redirect: Vec<HostPattern>,
}

/// Why an address is not contacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    LinkLocal,
    Unspecified,
    Broadcast,
    Multicast,
    Denied(IpNet),
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressClass::Loopback => f.write_str("a loopback address"),
            AddressClass::LinkLocal => f.write_str("a link-local address"),
            AddressClass::Unspecified => f.write_str("an unspecified address"),
            AddressClass::Broadcast => f.write_str("a broadcast address"),
            AddressClass::Multicast => f.write_str("a multicast address"),
            AddressClass::Denied(net) => write!(f, "in {net}, denied by --registry-deny-cidr"),
        }
    }
}

/// A host the webhook does not contact, and why. Its text is ours alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry host {host} is {class} ({ip}); the webhook does not contact such addresses unless the operator allows the host with --registry-allow-host")]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub class: AddressClass,
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn class_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if ip.is_link_local() {
        Some(AddressClass::LinkLocal)
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8: "this network"; Linux connects 0.0.0.0 to the local host.
        Some(AddressClass::Unspecified)
    } else if ip.is_broadcast() {
        Some(AddressClass::Broadcast)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast)
    } else {
        None
    }
}

fn class_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if ip.is_unspecified() {
        Some(AddressClass::Unspecified)
    } else if (ip.segments()[0] & 0xffc0) == 0xfe80 {
        Some(AddressClass::LinkLocal)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast)
    } else {
        None
    }
}

impl HostRules {
    /// Whether the operator allows `host` (no port) by name or address.
    pub fn allowed(&self, host: &str) -> bool {
        self.allow.iter().any(|p| p.matches(host))
    }

    /// Why `ip` is not contacted, or `None` when it may be.
    pub fn classify(&self, ip: IpAddr) -> Option<AddressClass> {
        let ip = canonical(ip);
        let class = match ip {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => class_v6(v6),
        };
        class.or_else(|| {
            self.deny
                .iter()
                .find(|net| net.contains(&ip))
                .map(|net| AddressClass::Denied(*net))
        })
    }

    /// Checks a host as an image or URL names it (`name`, `name:port`, `1.2.3.4:5`,
    /// `[::1]:5`): a literal address that is refused fails here, before any connection;
    /// names are checked when they are resolved ([`GuardedResolver`]).
    pub fn check_host(&self, host_port: &str) -> Result<(), Refused> {
        let host = split_host(host_port);
        if self.allowed(host) {
            return Ok(());
        }
        let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            if let Some(class) = self.classify(ip) {
                return Err(Refused {
                    host: host_port.to_string(),
                    ip,
                    class,
                });
            }
        }
        Ok(())
    }

    /// Checks an address that was connected to (a second look after the resolver's).
    pub fn check_connected(&self, host: &str, addr: SocketAddr) -> Result<(), Refused> {
        if self.allowed(split_host(host)) {
            return Ok(());
        }
        match self.classify(addr.ip()) {
            Some(class) => Err(Refused {
                host: host.to_string(),
                ip: addr.ip(),
                class,
            }),
            None => Ok(()),
        }
    }

    /// Whether a registry at `origin` may send the webhook to `next` (a redirect, or a
    /// token realm): https only; the same host and port, a host the operator allows
    /// (`--registry-redirect-host`, `--registry-allow-host`) or a built-in one; and not a
    /// refused literal address. `what` names it in the message ("redirect", "token realm").
    pub fn check_hop(&self, origin: &Url, next: &Url, what: &str) -> Result<(), String> {
        let next_host = next.host_str().unwrap_or_default();
        if next.scheme() != "https" {
            return Err(format!(
                "the registry's {what} leads to a {} URL on {next_host}; only https is followed",
                next.scheme()
            ));
        }
        let same = origin.host_str() == Some(next_host)
            && origin.port_or_known_default() == next.port_or_known_default();
        let listed = BUILT_IN_REDIRECT_HOSTS
            .iter()
            .filter_map(|p| HostPattern::parse(p).ok())
            .chain(self.redirect.iter().cloned())
            .any(|p| p.matches(next_host));
        if !(same || listed || self.allowed(next_host)) {
            return Err(format!(
                "the registry's {what} leads to another host, {next_host}, which the operator has not allowed (--registry-redirect-host)"
            ));
        }
        let port = next.port_or_known_default().unwrap_or(443);
        self.check_host(&format!("{next_host}:{port}"))
            .map_err(|e| format!("the registry's {what} leads to {e}"))
    }
}

/// The host of `host[:port]`, `[v6]:port` kept in brackets.
pub fn split_host(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => host_port,
        };
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// reqwest's DNS resolver, keeping only addresses that [`HostRules`] allows: what the
/// connection is made to is what was checked.
pub struct GuardedResolver {
    rules: Arc<HostRules>,
}

impl GuardedResolver {
    pub fn new(rules: Arc<HostRules>) -> Self {
        GuardedResolver { rules }
    }
}

/// The allowed addresses among `addrs` of `host`, or why there is none.
pub fn filter_addrs(
    rules: &HostRules,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Refused> {
    if rules.allowed(host) {
        return Ok(addrs);
    }
    let mut first_refused = None;
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match rules.classify(a.ip()) {
            None => true,
            Some(class) => {
                first_refused.get_or_insert((a.ip(), class));
                false
            }
        })
        .collect();
    match (kept.is_empty(), first_refused) {
        (true, Some((ip, class))) => Err(Refused {
            host: host.to_string(),
            ip,
            class,
        }),
        _ => Ok(kept),
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = Arc::clone(&self.rules);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = filter_addrs(&rules, &host, addrs)?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules {
            allow: vec![HostPattern::parse("registry.corp").expect("host")],
            deny: vec![parse_cidr("10.96.0.0/12").expect("cidr")],
            redirect: vec![HostPattern::parse(".blobs.example").expect("host")],
        }
    }

    #[test]
    fn address_classes() {
        let r = rules();
        let cases: [(&str, Option<&str>); 16] = [
            ("127.0.0.1", Some("a loopback address")),
            ("127.10.0.1", Some("a loopback address")),
            ("::1", Some("a loopback address")),
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("169.254.169.254", Some("a link-local address")),
            ("::ffff:169.254.169.254", Some("a link-local address")),
            ("fe80::1", Some("a link-local address")),
            ("febf::1", Some("a link-local address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("::", Some("an unspecified address")),
            ("255.255.255.255", Some("a broadcast address")),
            ("224.0.0.1", Some("a multicast address")),
            (
                "10.100.0.1",
                Some("in 10.96.0.0/12, denied by --registry-deny-cidr"),
            ),
            ("10.0.0.1", None),
            ("192.168.1.10", None),
            ("2001:db8::1", None),
        ];
        for (ip, want) in cases {
            let got = r.classify(ip.parse().expect(ip)).map(|c| c.to_string());
            assert_eq!(got.as_deref(), want, "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_connecting() {
        let r = rules();
        for (host, refused) in [
            ("127.0.0.1:5000", true),
            ("169.254.169.254", true),
            ("169.254.169.254:80", true),
            ("[::1]:5000", true),
            ("[fe80::1]", true),
            ("10.97.1.1:443", true),
            ("10.0.0.1:5000", false),
            ("registry.example:5000", false),
            ("localhost:5000", false), // a name: checked when resolved
            ("registry.corp:5000", false),
        ] {
            assert_eq!(r.check_host(host).is_err(), refused, "{host}");
        }
        let err = r.check_host("169.254.169.254").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "registry host 169.254.169.254 is a link-local address (169.254.169.254); the webhook does not contact such addresses unless the operator allows the host with --registry-allow-host"
        );
        let allowed = HostRules {
            allow: vec![HostPattern::parse("127.0.0.1").expect("ip")],
            ..HostRules::default()
        };
        assert!(allowed.check_host("127.0.0.1:5000").is_ok());
        assert!(allowed.check_host("127.0.0.2:5000").is_err());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let r = rules();
        let a = |s: &str| -> SocketAddr { s.parse().expect(s) };
        // Only refused addresses: a refusal that names the first.
        let err = filter_addrs(
            &r,
            "evil.example",
            vec![a("169.254.169.254:0"), a("127.0.0.1:0")],
        )
        .expect_err("refused");
        assert_eq!(err.class, AddressClass::LinkLocal);
        assert!(
            err.to_string().starts_with(
                "registry host evil.example is a link-local address (169.254.169.254)"
            ),
            "{err}"
        );
        // Mixed: only the allowed ones are connected to.
        let kept = filter_addrs(
            &r,
            "mixed.example",
            vec![a("127.0.0.1:0"), a("192.0.2.1:0")],
        )
        .expect("kept");
        assert_eq!(kept, [a("192.0.2.1:0")]);
        // Allowed by name: everything.
        let kept = filter_addrs(&r, "REGISTRY.corp", vec![a("127.0.0.1:0")]).expect("allowed");
        assert_eq!(kept.len(), 1);
        assert!(r.check_connected("x:1", a("10.96.0.1:443")).is_err());
        assert!(r
            .check_connected("registry.corp:1", a("10.96.0.1:443"))
            .is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_loopback() {
        // `localhost` resolves from /etc/hosts, without any DNS traffic.
        let resolver = GuardedResolver::new(Arc::new(HostRules::default()));
        let err = resolver
            .resolve("localhost".parse().expect("name"))
            .await
            .err()
            .expect("refused");
        let refused = err.downcast_ref::<Refused>().expect("a Refused");
        assert_eq!(refused.class, AddressClass::Loopback);
    }

    #[test]
    fn patterns() {
        for (pattern, host, want) in [
            ("registry.corp", "registry.corp", true),
            ("registry.corp", "REGISTRY.CORP", true),
            ("registry.corp", "x.registry.corp", false),
            (".corp", "x.registry.corp", true),
            (".corp", "corp", false),
            ("10.0.0.5", "10.0.0.5", true),
            ("fd00::5", "[fd00::5]", true),
            ("[fd00::5]", "fd00::5", true),
        ] {
            let p = HostPattern::parse(pattern).expect(pattern);
            assert_eq!(p.matches(host), want, "{pattern} vs {host}");
        }
        for bad in ["", "https://x", "x/y", "x:5000", "a..b", "-a.b", "a_b"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("10.96.0.0/12").is_ok());
        assert!(parse_cidr("fd00::/8").is_ok());
        assert_eq!(
            parse_cidr("10.96.1.1/12").expect("cidr").to_string(),
            "10.96.0.0/12"
        );
        assert!(parse_cidr("10.96.0.0/33").is_err());
        assert!(parse_cidr("ten").is_err());
    }

    #[test]
    fn hops() {
        let r = rules();
        let u = |s: &str| Url::parse(s).expect(s);
        let origin = u("https://registry.example:5000/v2/a/blobs/x");
        let cases = [
            ("https://registry.example:5000/other", true),
            ("https://registry.example/other", false),
            ("http://registry.example:5000/other", false),
            ("https://store.blobs.example/x", true),
            ("https://auth.docker.io/token", true),
            ("https://x.blob.core.windows.net/x", true),
            ("https://internal.example/x", false),
            ("https://registry.corp/x", true),
            ("https://169.254.169.254/latest", false),
            ("https://127.0.0.1:5000/x", false),
        ];
        for (next, ok) in cases {
            assert_eq!(
                r.check_hop(&origin, &u(next), "redirect").is_ok(),
                ok,
                "{next}"
            );
        }
        let err = r
            .check_hop(&origin, &u("http://10.0.0.1:8080/"), "token realm")
            .expect_err("http");
        assert_eq!(
            err,
            "the registry's token realm leads to a http URL on 10.0.0.1; only https is followed"
        );
        // A literal loopback origin that the operator allowed may redirect to itself.
        let allowed = HostRules {
            allow: vec![HostPattern::parse("127.0.0.1").expect("ip")],
            ..HostRules::default()
        };
        let local = u("https://127.0.0.1:5000/v2/");
        assert!(allowed
            .check_hop(&local, &u("https://127.0.0.1:5000/x"), "redirect")
            .is_ok());
        assert!(HostRules::default()
            .check_hop(&local, &u("https://127.0.0.1:5000/x"), "redirect")
            .is_err());
    }
}
