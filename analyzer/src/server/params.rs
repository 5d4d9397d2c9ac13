//! Query-string parameters: repeated keys (`label=k=v&label=k2=v2`),
//! durations (`60s`, `5m`), and the selection every query shares.

use crate::store::Selection;
use crate::{Error, Result};

/// The parameters of one request, in order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub fn parse(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Parameters from `(key, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `key`, required.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::bad(format!("missing parameter `{key}`")))
    }

    /// An integer parameter.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::bad(format!("`{key}={v}` is not an integer")))
            })
            .transpose()
    }

    /// A duration parameter in ms (`250ms`, `10s`, `5m`, `1h`, `1d`; a bare number is seconds).
    pub fn duration_ms(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                parse_duration_ms(v)
                    .ok_or_else(|| Error::bad(format!("`{key}={v}` is not a duration such as 60s, 5m or 1h")))
            })
            .transpose()
    }

    /// Every parameter as a map (first value wins), for the log.
    pub fn into_map(self) -> std::collections::BTreeMap<String, String> {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in self.0 {
            map.entry(k).or_insert(v);
        }
        map
    }

    /// The selection: `service` (required), `deploy` (repeatable),
    /// `from`/`until` (ms since the epoch), `endpoint`, `label=k=v` (repeatable).
    pub fn selection(&self) -> Result<Selection> {
        let mut labels = Vec::new();
        for label in self.all("label") {
            let (k, v) = label
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Error::bad(format!("`label={label}` must be key=value")))?;
            labels.push((k.to_owned(), v.to_owned()));
        }
        Ok(Selection {
            service: self.required("service")?.to_owned(),
            deploys: self.all("deploy").into_iter().map(str::to_owned).collect(),
            from_ms: self.int("from")?,
            until_ms: self.int("until")?,
            endpoint: self.get("endpoint").map(str::to_owned),
            labels,
        })
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `14d` (a bare number is seconds).
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let per = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(per).filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("60s"), Some(60_000));
        assert_eq!(parse_duration_ms("14d"), Some(14 * 86_400_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("5"), Some(5_000));
        assert_eq!(parse_duration_ms("0s"), None);
        assert_eq!(parse_duration_ms("5 weeks"), None);
    }

    #[test]
    fn selection_with_repeated_labels() {
        let p = Params::parse(Some(
            "service=shop&deploy=v1&deploy=v2&label=region%3Deu&label=tier=gold&endpoint=GET%20%2Fx",
        ));
        let sel = p.selection().unwrap();
        assert_eq!(sel.deploys, ["v1", "v2"]);
        assert_eq!(
            sel.labels,
            [("region".into(), "eu".into()), ("tier".into(), "gold".into())]
        );
        assert_eq!(sel.endpoint.as_deref(), Some("GET /x"));
        assert!(Params::parse(Some("deploy=v1")).selection().is_err());
        assert!(Params::parse(Some("service=s&label=novalue"))
            .selection()
            .is_err());
    }
}
