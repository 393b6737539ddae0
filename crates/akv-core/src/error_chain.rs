//! One way to show an error with its causes, shared by both binaries.

/// The error and its sources, `a: b: c`, each source left out when its text is already
/// shown (wrappers often repeat their cause's words).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(text: &'static str, source: Option<E>) -> E {
        E {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn joins_sources_without_repeats() {
        let cases = [
            (e("alone", None), "alone"),
            (e("a", Some(e("b", Some(e("c", None))))), "a: b: c"),
            (
                e("cannot connect: refused", Some(e("refused", None))),
                "cannot connect: refused",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(error_chain(&err), want);
        }
    }
}
