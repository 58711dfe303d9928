//! Where an S3 repository is: `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`.
//!
//! The address names the endpoint, the bucket and a prefix inside it; it
//! never carries credentials (an address is shown in messages, logs and
//! systemd units, a secret must not be).

use std::fmt;

use url::Url;

/// The scheme that marks an S3 repository address.
pub const SCHEME: &str = "s3:";

/// A parsed S3 repository address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `http://host:port` or `https://host`, without path.
    pub endpoint: Url,
    /// The bucket's name.
    pub bucket: String,
    /// The prefix of every object, without leading or trailing slash; empty
    /// for a bucket of its own.
    pub prefix: String,
}

/// Why an address is not a usable S3 repository address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address}: {reason} (expected s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX])")]
pub struct BadLocation {
    /// The address as given.
    pub address: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl S3Location {
    /// Whether `address` is meant as an S3 address (and not a local path).
    pub fn is_s3(address: &str) -> bool {
        address.starts_with(SCHEME)
    }

    /// Parses `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`.
    ///
    /// # Errors
    /// [`BadLocation`] saying what is missing or not allowed.
    pub fn parse(address: &str) -> Result<Self, BadLocation> {
        let bad = |reason| BadLocation {
            address: address.to_owned(),
            reason,
        };
        let rest = address
            .strip_prefix(SCHEME)
            .ok_or(bad("not an s3: address"))?;
        // Checked before parsing: the URL parser would resolve `..` away.
        if rest.split('/').skip(3).any(|p| p == "." || p == "..") {
            return Err(bad("the prefix has a '.' or '..' part"));
        }
        let url = Url::parse(rest).map_err(|_| bad("not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the endpoint must start with http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the address; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("no query or fragment allowed"));
        }
        let path = url.path().trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if !valid_bucket(bucket) {
            return Err(bad(
                "a bucket name has 3 to 63 lowercase letters, digits, dots and hyphens",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|p| p.is_empty() || !p.bytes().all(plain))
        {
            return Err(bad(
                "the prefix has an empty part or characters other than letters, digits, '.', '-', '_'",
            ));
        }
        let mut endpoint = url.clone();
        endpoint.set_path("");
        Ok(Self {
            endpoint,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The object key for `rel` (a path below the repository root).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `host:port`, for messages about reaching the store.
    pub fn authority(&self) -> String {
        let host = self.endpoint.host_str().unwrap_or("?");
        match self.endpoint.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.endpoint.as_str().trim_end_matches('/');
        write!(f, "{SCHEME}{base}/{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_bucket_and_prefix() {
        let l = S3Location::parse("s3:http://127.0.0.1:3900/coffre/officine-42/").unwrap();
        assert_eq!(l.endpoint.as_str(), "http://127.0.0.1:3900/");
        assert_eq!(l.bucket, "coffre");
        assert_eq!(l.prefix, "officine-42");
        assert_eq!(l.key("data/ab/cd"), "officine-42/data/ab/cd");
        assert_eq!(l.authority(), "127.0.0.1:3900");
        assert_eq!(l.to_string(), "s3:http://127.0.0.1:3900/coffre/officine-42");

        let l = S3Location::parse("s3:https://s3.groupement.fr/officine-42").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("officine-42", ""));
        assert_eq!(l.key("config"), "config");
        assert_eq!(l.authority(), "s3.groupement.fr:443");
        assert_eq!(l.to_string(), "s3:https://s3.groupement.fr/officine-42");

        let l = S3Location::parse("s3:http://h:9000/b-1/a/b/c").unwrap();
        assert_eq!(l.prefix, "a/b/c");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "/media/lundi",
            "s3:ftp://h/b",
            "s3:http://h",
            "s3:http://h/",
            "s3:http://key:secret@h/bucket",
            "s3:http://h/Bucket",
            "s3:http://h/b",
            "s3:http://h/bucket/../x",
            "s3:http://h/bucket/a//b",
            "s3:http://h/bucket?x=1",
            "s3:http://h/bucket/a%2Fb",
            "s3:http://h/bucket/a b",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
        assert!(S3Location::is_s3("s3:http://h/b"));
        assert!(!S3Location::is_s3("./s3:x"));
    }
}
