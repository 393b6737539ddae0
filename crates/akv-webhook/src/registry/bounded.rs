//! Lists in registry JSON with a bound on their length, so that parsing a capped body
//! cannot turn a few MiB into many (a 4 MiB index of one-letter entries is ~300,000
//! allocations; a 4 MiB `Cmd` of empty strings, ~800,000).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::Deserialize;

struct AtMost<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for AtMost<T, N> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of at most {N} items, or null")
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            if out.len() == N {
                return Err(A::Error::custom(format!("more than {N} items")));
            }
            out.push(item);
        }
        Ok(Some(out))
    }
}

/// `#[serde(default, deserialize_with = "at_most::<_, _, N>")]` on an `Option<Vec<T>>`.
pub fn at_most<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    d.deserialize_option(AtMost::<T, N>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "at_most::<_, _, 3>")]
        items: Option<Vec<String>>,
    }

    #[test]
    fn bounds() {
        let parse = |s: &str| serde_json::from_str::<Holder>(s).map(|h| h.items);
        assert_eq!(parse(r#"{}"#).expect("absent"), None);
        assert_eq!(parse(r#"{"items":null}"#).expect("null"), None);
        assert_eq!(
            parse(r#"{"items":["a","b","c"]}"#).expect("three"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        let err = parse(r#"{"items":["a","b","c","d"]}"#).expect_err("four");
        assert!(err.to_string().contains("more than 3 items"), "{err}");
        assert!(parse(r#"{"items":"a"}"#).is_err());
    }
}
