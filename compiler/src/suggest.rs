//! "Did you mean" suggestions: the closest known name to a misspelt one, if it is close enough
//! to be a plausible typo.

/// The candidate closest to `name` by Jaro–Winkler similarity, if it is a likely typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let score = strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase());
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("soruce", ["source", "entity"]), Some("source"));
        assert_eq!(did_you_mean("max_dpeth", ["max_depth", "eta"]), Some("max_depth"));
        assert_eq!(did_you_mean("zzz", ["source", "entity"]), None);
        assert_eq!(did_you_mean("source", ["source"]), None);
    }
}
