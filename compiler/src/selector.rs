//! Prometheus series selectors — `name{label="value", other!="x"}` — as a rollback rule with
//! `metric = "scrape"` names the series to read from a text exposition. In: the selector text.
//! Out: a [`Selector`] that matches a sample's name and labels, or an error saying where the
//! text stops making sense. Only equality matchers (`=`, `!=`); regular expressions and
//! PromQL functions belong to `metric = "prometheus"`, which asks a Prometheus server.

use std::collections::BTreeMap;

/// One label matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// `true` for `=`, `false` for `!=`.
    pub equal: bool,
    /// The value compared with (unescaped).
    pub value: String,
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Metric name.
    pub name: String,
    /// Label matchers, all of which must hold.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses `name` or `name{label="value", …}`; the error says what is wrong and where
    /// (a character offset into `text`).
    pub fn parse(text: &str) -> Result<Selector, (usize, String)> {
        let mut p = Parser { text, pos: 0 };
        p.skip_space();
        let name = p.name(true).ok_or_else(|| (p.pos, "expected a metric name, e.g. `mlops_requests_total`".into()))?;
        p.skip_space();
        let mut matchers = Vec::new();
        if p.eat('{') {
            loop {
                p.skip_space();
                if p.eat('}') {
                    break;
                }
                let label = p.name(false).ok_or_else(|| (p.pos, "expected a label name".to_string()))?;
                p.skip_space();
                let equal = if p.eat('=') {
                    if p.peek() == Some('~') {
                        return Err((p.pos, "regular-expression matchers need `metric = \"prometheus\"`".into()));
                    }
                    true
                } else if p.eat('!') && p.eat('=') {
                    if p.peek() == Some('~') {
                        return Err((p.pos, "regular-expression matchers need `metric = \"prometheus\"`".into()));
                    }
                    false
                } else {
                    return Err((p.pos, format!("expected `=` or `!=` after label `{label}`")));
                };
                p.skip_space();
                let value = p.string()?;
                matchers.push(Matcher { label, equal, value });
                p.skip_space();
                if p.eat(',') {
                    continue;
                }
                if p.eat('}') {
                    break;
                }
                return Err((p.pos, "expected `,` or `}`".into()));
            }
            p.skip_space();
        }
        if p.pos < text.len() {
            return Err((
                p.pos,
                "unexpected text after the selector (functions and operators need `metric = \"prometheus\"`)".into(),
            ));
        }
        Ok(Selector { name, matchers })
    }

    /// Whether a sample named `name` with `labels` is selected.
    pub fn matches<'a>(&self, name: &str, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        name == self.name
            && self.matchers.iter().all(|m| {
                let v = labels(&m.label).unwrap_or("");
                (v == m.value) == m.equal
            })
    }

    /// The matchers as a map (for display).
    pub fn labels(&self) -> BTreeMap<&str, &str> {
        self.matchers.iter().filter(|m| m.equal).map(|m| (m.label.as_str(), m.value.as_str())).collect()
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label name.
    fn name(&mut self, colons: bool) -> Option<String> {
        let start = self.pos;
        let ok = |c: char, first: bool| {
            c == '_' || c.is_ascii_alphabetic() || (colons && c == ':') || (!first && c.is_ascii_digit())
        };
        while let Some(c) = self.peek() {
            if !ok(c, self.pos == start) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.text[start..self.pos].to_string())
    }

    /// A double-quoted string with `\"`, `\\` and `\n` escapes.
    fn string(&mut self) -> Result<String, (usize, String)> {
        let start = self.pos;
        if !self.eat('"') {
            return Err((self.pos, "expected a double-quoted label value".into()));
        }
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err((start, "this label value is not closed with `\"`".into())),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('n') => out.push('\n'),
                        Some(c @ ('"' | '\\')) => out.push(c),
                        _ => return Err((self.pos, "unknown escape: use \\\", \\\\ or \\n".into())),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_matchers() {
        let s = Selector::parse(r#" mlops_requests_total{endpoint="api", code!="200", note="a \"b\"\\"} "#).unwrap();
        assert_eq!(s.name, "mlops_requests_total");
        assert_eq!(s.matchers.len(), 3);
        assert_eq!(s.matchers[1], Matcher { label: "code".into(), equal: false, value: "200".into() });
        assert_eq!(s.matchers[2].value, "a \"b\"\\");
        assert_eq!(Selector::parse("up").unwrap().matchers, vec![]);
        assert_eq!(Selector::parse("job:rate5m{}").unwrap().name, "job:rate5m");
    }

    #[test]
    fn matches_on_name_and_every_matcher() {
        let s = Selector::parse(r#"x{a="1",b!="2"}"#).unwrap();
        let labels = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
        };
        assert!(s.matches("x", labels(&[("a", "1"), ("b", "3")])));
        assert!(s.matches("x", labels(&[("a", "1")])), "a missing label is empty, not \"2\"");
        assert!(!s.matches("x", labels(&[("a", "1"), ("b", "2")])));
        assert!(!s.matches("y", labels(&[("a", "1")])));
        assert!(!s.matches("x", labels(&[("a", "2")])));
    }

    #[test]
    fn errors_say_where() {
        for (text, at, words) in [
            ("", 0, "metric name"),
            ("9x", 0, "metric name"),
            ("x{a=1}", 4, "double-quoted"),
            ("x{a=\"1\"", 7, "`,` or `}`"),
            ("x{a=~\"1\"}", 4, "regular-expression"),
            ("rate(x[5m])", 4, "after the selector"),
            ("x{a=\"1}", 4, "not closed"),
            ("x{a>\"1\"}", 3, "`=` or `!=`"),
        ] {
            let (pos, msg) = Selector::parse(text).unwrap_err();
            assert_eq!(pos, at, "{text}: {msg}");
            assert!(msg.contains(words), "{text}: {msg}");
        }
    }
}
