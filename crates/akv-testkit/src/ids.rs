//! Random names and ids, so that tests sharing a test bed never collide.

use std::hash::{BuildHasher, Hasher};

/// `n` random hexadecimal digits, for secret values and ids that must not repeat.
pub fn random_hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}

/// A random GUID-shaped id (`8-4-4-4-12` hex digits), as Entra client ids look.
pub fn guid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A unique object name for one test: `PREFIX-` and 8 hex digits.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_shape_and_differ() {
        assert_eq!(random_hex(40).len(), 40);
        assert!(random_hex(40).chars().all(|c| c.is_ascii_hexdigit()));
        let g = guid();
        let lens: Vec<usize> = g.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12], "{g}");
        assert_ne!(unique("x"), unique("x"));
    }
}
