//! Service name patterns of an access file: a name, or a glob where `*`
//! stands for any run of characters (`a-*` covers `a-api` and `a-`).

/// One entry of a token's `services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePattern {
    text: String,
}

impl ServicePattern {
    /// A pattern; `None` when it is empty.
    pub fn new(text: &str) -> Option<ServicePattern> {
        (!text.is_empty()).then(|| ServicePattern {
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `service` matches the whole pattern.
    pub fn matches(&self, service: &str) -> bool {
        glob(self.text.as_bytes(), service.as_bytes())
    }
}

/// `*`-only glob matching, iterative with one backtrack point (linear in
/// practice, never exponential).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, service: &str) -> bool {
        ServicePattern::new(pattern).is_some_and(|p| p.matches(service))
    }

    #[test]
    fn names_and_globs_match_whole_names() {
        assert!(matches("a", "a"));
        assert!(!matches("a", "ab"));
        assert!(!matches("a", "ba"));
        assert!(matches("a-*", "a-api"));
        assert!(matches("a-*", "a-"));
        assert!(!matches("a-*", "a"));
        assert!(!matches("a-*", "b-api"));
        assert!(matches("*", "anything"));
        assert!(matches("*-db", "orders-db"));
        assert!(!matches("*-db", "orders-dbx"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("**", ""));
        assert!(ServicePattern::new("").is_none());
    }
}
