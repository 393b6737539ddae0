//! Finding references in a value: the whole value (`akv:...`) or any number of
//! `${akv:...}` parts inside a longer value. Anything else is left alone.

use crate::reference::{Reference, ReferenceError, PREFIX};

const OPEN: &str = "${akv:";

/// A value that holds at least one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Ref(Reference),
}

impl Template {
    /// Scans a value. `Ok(None)`: the value holds no reference and is left as it is.
    ///
    /// A value that starts with `akv:` is a whole reference and must parse; otherwise every
    /// `${akv:` must be closed by `}` and hold a valid reference.
    pub fn scan(value: &str) -> Result<Option<Template>, ReferenceError> {
        if value.starts_with(PREFIX) {
            let reference = value.parse()?;
            return Ok(Some(Template {
                segments: vec![Segment::Ref(reference)],
            }));
        }
        if !value.contains(OPEN) {
            return Ok(None);
        }
        let mut segments = Vec::new();
        let mut rest = value;
        let mut offset = 0;
        while let Some(start) = rest.find(OPEN) {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_string()));
            }
            let inner_start = start + 2; // skip "${", keep "akv:"
            let close = rest[inner_start..]
                .find('}')
                .ok_or(ReferenceError::Unclosed(offset + start))?;
            let inner = &rest[inner_start..inner_start + close];
            segments.push(Segment::Ref(inner.parse()?));
            let consumed = inner_start + close + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Some(Template { segments }))
    }

    /// The references, in order of appearance (possibly repeated).
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Text(_) => None,
        })
    }

    /// The pieces of the value.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Builds the final value, asking `resolve` for each reference's value.
    pub fn render<'a, F>(&'a self, mut resolve: F) -> String
    where
        F: FnMut(&'a Reference) -> &'a str,
    {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Ref(r) => out.push_str(resolve(r)),
            }
        }
        out
    }

    /// Builds the final value from text that `resolve` may refuse to give (a value that
    /// is not text, for an env var).
    pub fn try_render<'a, F, T, E>(&'a self, mut resolve: F) -> Result<String, E>
    where
        F: FnMut(&'a Reference) -> Result<T, E>,
        T: AsRef<str>,
    {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Ref(r) => out.push_str(resolve(r)?.as_ref()),
            }
        }
        Ok(out)
    }

    /// Builds the final bytes (a file's content), asking `resolve` for each reference's bytes.
    pub fn render_bytes<'a, F>(&'a self, mut resolve: F) -> Vec<u8>
    where
        F: FnMut(&'a Reference) -> &'a [u8],
    {
        let mut out = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.extend_from_slice(t.as_bytes()),
                Segment::Ref(r) => out.extend_from_slice(resolve(r)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &str) -> Vec<String> {
        Template::scan(value)
            .expect(value)
            .map(|t| t.references().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn finds_references() {
        let cases: &[(&str, &[&str])] = &[
            ("plain", &[]),
            ("", &[]),
            ("jdbc:akv:db", &[]),
            ("see akv:db for details", &[]),
            ("${HOME}/x", &[]),
            ("$(VAR)", &[]),
            ("${akv", &[]),
            ("akv:db", &["akv:db"]),
            ("akv://kv1/db#value", &["akv://kv1/db"]),
            ("${akv:db}", &["akv:db"]),
            (
                "postgres://app:${akv:db-password}@db:5432/app",
                &["akv:db-password"],
            ),
            ("${akv:user}:${akv:pass}", &["akv:user", "akv:pass"]),
            (
                "a${akv://kv1/a}b${akv:b#cert}c${akv:a}",
                &["akv://kv1/a", "akv:b#cert", "akv:a"],
            ),
            ("$${akv:x}", &["akv:x"]),
            ("akv:cfg#json:db.password", &["akv:cfg#json:db.password"]),
            (
                "u=${akv:cfg#json:user}&p=${akv:cfg#json:db.0.pass}",
                &["akv:cfg#json:user", "akv:cfg#json:db.0.pass"],
            ),
            (
                "k=${akv:blob#base64};${akv:tls#pfx}",
                &["akv:blob#base64", "akv:tls#pfx"],
            ),
        ];
        for (value, want) in cases {
            assert_eq!(refs(value), *want, "{value:?}");
        }
    }

    #[test]
    fn rejects_bad_references_in_values() {
        let cases = [
            ("akv:", "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"),
            ("akv:db password", "the reference contains a space; references have no spaces or control characters"),
            ("x${akv:db", "'${akv:' at byte 1 is not closed: write ${akv:NAME}"),
            ("${akv:a}-${akv:b", "'${akv:' at byte 9 is not closed: write ${akv:NAME}"),
            ("${akv:}", "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"),
            ("${akv:a_b}", "object name 'a_b' contains '_'; Key Vault object names use only letters, digits and '-'"),
            ("akv:a${akv:b}", "object name 'a${akv:b}' contains '$'; Key Vault object names use only letters, digits and '-'"),
            ("x=${akv:cfg#json:}", "#json needs a path: write #json:FIELD or #json:FIELD.FIELD, e.g. akv:db-config#json:password"),
            ("x=${akv:cfg#json:a..b}", "JSON path 'a..b' has an empty field: separate fields with single dots, e.g. #json:db.password"),
            ("x=${akv:cfg#base64x}", "unknown part '#base64x': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
        ];
        for (value, want) in cases {
            let err = Template::scan(value).expect_err(value);
            assert_eq!(err.to_string(), want, "{value:?}");
        }
    }

    #[test]
    fn renders_in_place() {
        let t = Template::scan("u=${akv:user};p=${akv:pass};u=${akv:user}")
            .expect("valid")
            .expect("has references");
        let out = t.render(|r| {
            if r.name() == "user" {
                "alice"
            } else {
                "s3cr3t"
            }
        });
        assert_eq!(out, "u=alice;p=s3cr3t;u=alice");

        let whole = Template::scan("akv:x")
            .expect("valid")
            .expect("has references");
        assert_eq!(whole.render(|_| "v"), "v");
        assert_eq!(whole.render_bytes(|_| b"\0\xff"), b"\0\xff");
        assert_eq!(
            t.try_render(|r| if r.name() == "user" {
                Ok("a")
            } else {
                Err(r.name())
            }),
            Err("pass")
        );
        let ok: Result<String, ()> = whole.try_render(|_| Ok("v"));
        assert_eq!(ok, Ok("v".to_string()));
    }
}
