//! S3 credentials and region from the usual places, first found wins:
//! what the caller passes (Coffre's configuration), the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` / `AWS_DEFAULT_REGION`), then the shared profile files
//! (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, `AWS_CONFIG_FILE`
//! or `~/.aws/config`, profile `AWS_PROFILE` or `default`).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The region when nothing sets one: what most stores accept.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key and its secret.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id (not secret; shown in messages).
    pub key_id: String,
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// A session token, for temporary credentials.
    pub token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where the credentials were found, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Passed by the caller (Coffre's configuration).
    Given,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A profile of the shared credentials file.
    Profile {
        /// The file.
        file: PathBuf,
        /// The profile's name.
        profile: String,
    },
}

/// Looks the credentials up; `None` when no place has any.
pub fn find(given: Option<S3Credentials>) -> Option<(S3Credentials, Source)> {
    if let Some(c) = given {
        return Some((c, Source::Given));
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let creds = S3Credentials {
            key_id,
            secret: Zeroizing::new(secret),
            token: var("AWS_SESSION_TOKEN").map(Zeroizing::new),
        };
        return Some((creds, Source::Environment));
    }
    let file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home_file("credentials"))?;
    let profile = profile_name();
    let text = Zeroizing::new(std::fs::read_to_string(&file).ok()?);
    let section = ini_section(&text, &profile)?;
    let get = |k: &str| section.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let creds = S3Credentials {
        key_id: get("aws_access_key_id")?,
        secret: Zeroizing::new(get("aws_secret_access_key")?),
        token: get("aws_session_token").map(Zeroizing::new),
    };
    Some((creds, Source::Profile { file, profile }))
}

/// The region: `given`, the environment, the profile, else
/// [`DEFAULT_REGION`].
pub fn region(given: Option<&str>) -> String {
    if let Some(r) = given.filter(|r| !r.is_empty()) {
        return r.to_owned();
    }
    for k in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Ok(r) = std::env::var(k) {
            if !r.is_empty() {
                return r;
            }
        }
    }
    let profile = profile_name();
    let from = |file: Option<PathBuf>, section: &str| -> Option<String> {
        let text = std::fs::read_to_string(file?).ok()?;
        let entries = ini_section(&text, section)?;
        entries
            .into_iter()
            .find(|(k, _)| k == "region")
            .map(|(_, v)| v)
    };
    let config = std::env::var("AWS_CONFIG_FILE")
        .ok()
        .map(PathBuf::from)
        .or_else(|| home_file("config"));
    let section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    from(config, &section)
        .or_else(|| {
            let creds = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
                .ok()
                .map(PathBuf::from)
                .or_else(|| home_file("credentials"));
            from(creds, &profile)
        })
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

fn profile_name() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

fn home_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".aws").join(name))
}

/// The `key = value` lines of `[section]` in an INI text, keys lowercased.
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            found |= inside;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_section() {
        let text = "[default]\naws_access_key_id = AK1\n\n# comment\n[other]\nAWS_ACCESS_KEY_ID=AK2\naws_secret_access_key = s2\nregion = garage\n";
        let other = ini_section(text, "other").unwrap();
        assert_eq!(
            other,
            vec![
                ("aws_access_key_id".into(), "AK2".into()),
                ("aws_secret_access_key".into(), "s2".into()),
                ("region".into(), "garage".into()),
            ]
        );
        assert_eq!(ini_section(text, "default").unwrap().len(), 1);
        assert!(ini_section(text, "missing").is_none());
    }

    #[test]
    fn given_credentials_come_first() {
        let given = S3Credentials {
            key_id: "GK1".into(),
            secret: Zeroizing::new("topsecret".into()),
            token: None,
        };
        let (c, source) = find(Some(given)).unwrap();
        assert_eq!((c.key_id.as_str(), source), ("GK1", Source::Given));
        assert_eq!(region(Some("garage")), "garage");
        assert!(
            !format!("{c:?}").contains("topsecret"),
            "the secret is never printed"
        );
    }
}
