//! The kubernetes target's `object_store` URL: `s3://BUCKET[/PREFIX]`, the bucket prefix every
//! pod mirrors its data directory to and from. S3-compatible stores (MinIO, Ceph, R2, GCS in
//! interoperability mode) are reached through the same scheme plus `AWS_ENDPOINT_URL`, so no
//! other scheme is accepted. Checked at compile time (`check::kubernetes`); [`parse`] is public
//! so that whoever reads the URL back from the spec splits it the same way.

use std::fmt;

/// The Secret whose keys become every runtime container's environment when `object_store` is
/// set (`envFrom`, optional): the AWS_* credentials and endpoint. mlops never writes it.
pub fn secret_name(system_prefix: &str) -> String {
    format!("{system_prefix}-object-store")
}

/// A parsed `s3://BUCKET[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

/// Why a URL is not an `s3://BUCKET[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreError {
    /// Another scheme (`gs`, `https` …), or none.
    Scheme(Option<String>),
    /// The bucket name breaks S3's naming rules; the string says how.
    Bucket(String),
    /// The prefix is not a clean key prefix; the string says how.
    Prefix(String),
}

impl fmt::Display for ObjectStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectStoreError::Scheme(Some(s)) => write!(f, "has the scheme `{s}://`, not `s3://`"),
            ObjectStoreError::Scheme(None) => write!(f, "is not a URL: it does not start with `s3://`"),
            ObjectStoreError::Bucket(why) => write!(f, "has an invalid bucket name: {why}"),
            ObjectStoreError::Prefix(why) => write!(f, "has an invalid prefix: {why}"),
        }
    }
}

/// Splits and checks `s3://BUCKET[/PREFIX]`. The bucket follows S3's rules for new buckets
/// (3–63 lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, no
/// `..`, not an IP address); the prefix is `/`-separated non-empty segments other than `.` and
/// `..`, without whitespace, control characters, `\`, `?` or `#`, and without a trailing `/`.
pub fn parse(url: &str) -> Result<S3Location, ObjectStoreError> {
    let Some(rest) = url.strip_prefix("s3://") else {
        let scheme = url.split_once("://").map(|(s, _)| s.to_string()).filter(|s| !s.is_empty());
        return Err(ObjectStoreError::Scheme(scheme));
    };
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (rest, None),
    };
    check_bucket(bucket).map_err(ObjectStoreError::Bucket)?;
    let prefix = match prefix {
        None => String::new(),
        Some(p) => {
            check_prefix(p).map_err(ObjectStoreError::Prefix)?;
            p.to_string()
        }
    };
    Ok(S3Location { bucket: bucket.to_string(), prefix })
}

fn check_bucket(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = b.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')) {
        let what = if c.is_ascii_uppercase() {
            format!("upper-case letter `{c}`")
        } else if c.is_whitespace() || c.is_control() {
            format!("{c:?}")
        } else {
            format!("`{c}`")
        };
        return Err(format!("{b:?} contains {what}"));
    }
    let n = b.len();
    if !(3..=63).contains(&n) {
        return Err(format!("{b:?} is {n} characters long, not 3 to 63"));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(b.chars().next()) || !alnum(b.chars().last()) {
        return Err(format!("{b:?} does not start and end with a letter or digit"));
    }
    if b.contains("..") {
        return Err(format!("{b:?} has two adjacent periods"));
    }
    if b.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("{b:?} is an IP address"));
    }
    Ok(())
}

fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("the URL ends with `/` after the bucket".into());
    }
    if let Some(c) = p.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{p:?} contains {c:?}"));
    }
    if let Some(c) = p.chars().find(|c| matches!(c, '?' | '#' | '\\')) {
        let why = match c {
            '?' => "a query (`?`)",
            '#' => "a fragment (`#`)",
            _ => "`\\`",
        };
        return Err(format!("{p:?} contains {why}"));
    }
    if p.ends_with('/') {
        return Err(format!("{p:?} ends with `/`"));
    }
    for segment in p.split('/') {
        match segment {
            "" => return Err(format!("{p:?} has an empty segment (`//`)")),
            "." | ".." => return Err(format!("{p:?} has a `{segment}` segment")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, String) {
        let l = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (l.bucket, l.prefix)
    }

    #[test]
    fn valid_urls() {
        assert_eq!(ok("s3://acme-models/churn"), ("acme-models".into(), "churn".into()));
        assert_eq!(ok("s3://acme-models"), ("acme-models".into(), String::new()));
        assert_eq!(ok("s3://a.b-c/x/y_z/v1.2"), ("a.b-c".into(), "x/y_z/v1.2".into()));
        assert_eq!(ok("s3://abc/.hidden/..x"), ("abc".into(), ".hidden/..x".into()));
    }

    #[test]
    fn schemes() {
        assert_eq!(parse("gs://bucket/x"), Err(ObjectStoreError::Scheme(Some("gs".into()))));
        assert_eq!(parse("https://minio:9000/b"), Err(ObjectStoreError::Scheme(Some("https".into()))));
        assert_eq!(parse("S3://bucket"), Err(ObjectStoreError::Scheme(Some("S3".into()))));
        assert_eq!(parse("bucket/prefix"), Err(ObjectStoreError::Scheme(None)));
        assert_eq!(parse(""), Err(ObjectStoreError::Scheme(None)));
    }

    #[test]
    fn bad_buckets() {
        for url in [
            "s3://",
            "s3:///x",
            "s3://ab",
            "s3://Acme",
            "s3://acme_models",
            "s3://-acme",
            "s3://acme.",
            "s3://a..b",
            "s3://192.168.1.1",
            "s3://acme models",
            "s3://user@acme",
            "s3://acme:9000",
            "s3://acme?x=1",
        ] {
            assert!(matches!(parse(url), Err(ObjectStoreError::Bucket(_))), "{url}: {:?}", parse(url));
        }
        assert!(parse(&format!("s3://{}", "a".repeat(63))).is_ok());
        assert!(parse(&format!("s3://{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn bad_prefixes() {
        for url in [
            "s3://acme/",
            "s3://acme/churn/",
            "s3://acme//churn",
            "s3://acme/a//b",
            "s3://acme/./x",
            "s3://acme/x/..",
            "s3://acme/x y",
            "s3://acme/x?versionId=1",
            "s3://acme/x#frag",
            "s3://acme/x\\y",
            "s3://acme/x\ny",
        ] {
            assert!(matches!(parse(url), Err(ObjectStoreError::Prefix(_))), "{url}: {:?}", parse(url));
        }
    }
}
