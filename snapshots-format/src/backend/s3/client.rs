//! HTTP exchanges with an S3 store: signing, timeouts, retries with
//! backoff, the bandwidth limits, and turning failures into errors that
//! say what to do. Blocking, one request per calling thread: the engine
//! runs threads, not async tasks.

use std::io::Read;
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Credentials, UrlStyle};
use url::Url;

use super::credentials::{self, S3Credentials};
use super::location::S3Location;
use super::throttle::{Throttle, Throttled};
use crate::error::{Error, Result, StoreProblem};

/// How long a signed request stays valid: long enough for a 64 MiB pack
/// on a slow line, short enough to be useless if a log leaks it.
const SIGN_FOR: Duration = Duration::from_secs(3600);

/// A difference between the clocks beyond which signatures fail: S3 allows
/// 15 minutes.
const SKEW_LIMIT_SECS: i64 = 15 * 60;

/// First wait before a retry; doubled each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How a backend talks to its store; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Credentials from Coffre's configuration; else the environment or
    /// the profile files ([`credentials::find`]).
    pub credentials: Option<S3Credentials>,
    /// The region; else `AWS_REGION` or the profile, else `us-east-1`.
    pub region: Option<String>,
    /// Upload limit in bytes per second.
    pub limit_upload: Option<u64>,
    /// Download limit in bytes per second.
    pub limit_download: Option<u64>,
    /// How long a failing request is retried before giving up: a store
    /// restarting or a line dropping for a minute does not fail a backup.
    pub retry_for: Duration,
    /// Connection and per-read/write timeout.
    pub timeout: Duration,
    /// `bucket.host/key` addresses (virtual-hosted) instead of
    /// `host/bucket/key` paths; most self-hosted stores want paths.
    pub virtual_host: bool,
    /// A local folder keeping whole packs read from the store, and its size
    /// bound ([`super::pack_cache`]); `None` reads every blob remotely.
    pub pack_cache: Option<(std::path::PathBuf, u64)>,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            credentials: None,
            region: None,
            limit_upload: None,
            limit_download: None,
            retry_for: Duration::from_secs(120),
            timeout: Duration::from_secs(60),
            virtual_host: false,
            pack_cache: None,
        }
    }
}

/// What a request sends.
pub(super) enum Verb<'a> {
    Get,
    Head,
    Delete,
    /// A PUT with its body.
    Put(&'a [u8]),
}

/// A store's answer, body read whole.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    /// `Content-Length`, when the store sent one.
    pub len: Option<u64>,
    pub body: Vec<u8>,
    /// Local minus store time, from the `Date` header.
    pub skew: Option<i64>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A connection to one bucket.
pub(super) struct Client {
    agent: ureq::Agent,
    bucket: Bucket,
    creds: Credentials,
    key_id: String,
    pub location: S3Location,
    retry_for: Duration,
    upload: Option<Throttle>,
    download: Option<Throttle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("location", &self.location.to_string())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(location: S3Location, options: S3Options) -> Result<Self> {
        let (found, _) =
            credentials::find(options.credentials.clone()).ok_or_else(|| Error::Store {
                location: location.to_string(),
                problem: StoreProblem::NoCredentials,
            })?;
        let creds = match &found.token {
            Some(t) => Credentials::new_with_token(
                found.key_id.clone(),
                found.secret.to_string(),
                t.to_string(),
            ),
            None => Credentials::new(found.key_id.clone(), found.secret.to_string()),
        };
        let region = credentials::region(options.region.as_deref());
        let style = if options.virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            location.endpoint.clone(),
            style,
            location.bucket.clone(),
            region,
        )
        .map_err(|e| Error::Store {
            location: location.to_string(),
            problem: StoreProblem::Other {
                status: 0,
                code: "BadAddress".into(),
                doing: "opening the bucket".into(),
                detail: e.to_string(),
            },
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.timeout.min(Duration::from_secs(15))))
            .timeout_recv_response(Some(options.timeout))
            .timeout_recv_body(None)
            .timeout_per_read(Some(options.timeout))
            .timeout_per_write(Some(options.timeout))
            .max_redirects(0)
            .user_agent(concat!("coffre/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            bucket,
            creds,
            key_id: found.key_id,
            location,
            retry_for: options.retry_for,
            upload: options.limit_upload.map(Throttle::new),
            download: options.limit_download.map(Throttle::new),
        })
    }

    pub fn sign_for() -> Duration {
        SIGN_FOR
    }

    /// Sends a request, signed afresh by `sign` for each attempt, retrying
    /// connection failures, timeouts, `5xx` and `429` with backoff for up
    /// to the retry period. Any other answer is returned for the caller to
    /// judge; a body longer than `max_body` is refused as tampering.
    pub fn exchange(
        &self,
        doing: &str,
        verb: &Verb<'_>,
        headers: &[(&str, &str)],
        max_body: u64,
        sign: &dyn Fn(&Bucket, &Credentials) -> Url,
    ) -> Result<Reply> {
        let start = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let failure =
                match self.attempt(verb, headers, max_body, &sign(&self.bucket, &self.creds)) {
                    Ok(reply) if reply.status >= 500 || reply.status == 429 => {
                        let (code, message) = s3_error(&reply.body);
                        format!("{} {code} {message}", reply.status)
                    }
                    Ok(reply) => return Ok(reply),
                    Err(Attempt::Fatal(e)) => return Err(e),
                    Err(Attempt::Transient(why)) => why,
                };
            // A little jitter, so threads retrying together spread out.
            let jitter = Duration::from_millis(u64::from(start.elapsed().subsec_nanos() % 100));
            if start.elapsed() + backoff > self.retry_for {
                return Err(self.error(StoreProblem::Unreachable {
                    authority: self.location.authority(),
                    doing: doing.to_owned(),
                    detail: failure,
                }));
            }
            std::thread::sleep(backoff + jitter);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn attempt(
        &self,
        verb: &Verb<'_>,
        headers: &[(&str, &str)],
        max_body: u64,
        url: &Url,
    ) -> std::result::Result<Reply, Attempt> {
        let url = url.as_str();
        let response = match verb {
            Verb::Put(body) => {
                let mut req = self.agent.put(url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                match &self.upload {
                    None => req.send(*body),
                    Some(t) => {
                        let mut reader = Throttled::new(*body, Some(t));
                        req.header("content-length", body.len().to_string())
                            .send(ureq::SendBody::from_reader(&mut reader))
                    }
                }
            }
            Verb::Get | Verb::Head | Verb::Delete => {
                let mut req = match verb {
                    Verb::Get => self.agent.get(url),
                    Verb::Head => self.agent.head(url),
                    _ => self.agent.delete(url),
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
        };
        let response = response.map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let len = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let skew = header("date")
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
            .map(|d| chrono::Utc::now().timestamp() - d.timestamp());
        let is_head = matches!(verb, Verb::Head);
        // Error bodies are small XML documents whatever we asked for.
        let limit = if (200..300).contains(&status) {
            max_body
        } else {
            64 << 10
        };
        if !is_head && (200..300).contains(&status) && len.is_some_and(|l| l > limit) {
            return Err(Attempt::Fatal(self.tampered(len.unwrap_or(0), limit)));
        }
        let mut body = Vec::new();
        if !is_head {
            let reader = response
                .into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader();
            let mut reader = Throttled::new(reader, self.download.as_ref()).take(limit + 1);
            reader
                .read_to_end(&mut body)
                .map_err(|e| Attempt::Transient(format!("reading the answer: {e}")))?;
            if body.len() as u64 > limit {
                return Err(Attempt::Fatal(self.tampered(body.len() as u64, limit)));
            }
            if let Some(l) = len {
                if (200..300).contains(&status) && body.len() as u64 != l {
                    return Err(Attempt::Transient(format!(
                        "answer cut short ({} of {l} bytes)",
                        body.len()
                    )));
                }
            }
        }
        Ok(Reply {
            status,
            len,
            body,
            skew,
        })
    }

    fn classify(&self, e: ureq::Error) -> Attempt {
        use ureq::Error as E;
        match e {
            E::Io(_)
            | E::Timeout(_)
            | E::ConnectionFailed
            | E::HostNotFound
            | E::Protocol(_)
            | E::BodyStalled => Attempt::Transient(e.to_string()),
            other => Attempt::Fatal(self.error(StoreProblem::Unreachable {
                authority: self.location.authority(),
                doing: "connecting".into(),
                detail: other.to_string(),
            })),
        }
    }

    fn tampered(&self, len: u64, limit: u64) -> Error {
        Error::Tampered {
            path: self.location.to_string(),
            reason: format!("the store sent {len} bytes where at most {limit} were expected"),
        }
    }

    /// An error about this store.
    pub fn error(&self, problem: StoreProblem) -> Error {
        Error::Store {
            location: self.location.to_string(),
            problem,
        }
    }

    /// The error for an answer that is not a success the caller expects.
    pub fn refused(&self, doing: &str, reply: &Reply) -> Error {
        let (code, message) = s3_error(&reply.body);
        let lower = message.to_ascii_lowercase();
        let detail = if message.is_empty() {
            code.clone()
        } else {
            message.clone()
        };
        if code == "RequestTimeTooSkewed"
            || reply.skew.is_some_and(|s| s.abs() > SKEW_LIMIT_SECS) && reply.status == 403
        {
            return self.error(StoreProblem::ClockSkew {
                seconds: reply.skew.unwrap_or(0),
            });
        }
        let problem = match (reply.status, code.as_str()) {
            (404, "NoSuchBucket") => StoreProblem::NoBucket(self.location.bucket.clone()),
            (_, "AuthorizationHeaderMalformed") | (_, "InvalidRegion") => {
                StoreProblem::Region(detail)
            }
            (400 | 403, _) if lower.contains("region") => StoreProblem::Region(detail),
            (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch")
            | (400 | 403, "InvalidSignature") => StoreProblem::Credentials {
                key_id: self.key_id.clone(),
                detail,
            },
            (403, _) if lower.contains("no such key") || lower.contains("signature") => {
                StoreProblem::Credentials {
                    key_id: self.key_id.clone(),
                    detail,
                }
            }
            (403, _) => StoreProblem::Denied {
                doing: doing.to_owned(),
                detail,
            },
            (status, _) => StoreProblem::Other {
                status,
                code,
                doing: doing.to_owned(),
                detail: message,
            },
        };
        self.error(problem)
    }
}

/// How one attempt failed.
enum Attempt {
    /// Worth trying again: the connection, a timeout, a busy server.
    Transient(String),
    /// Trying again would fail the same way.
    Fatal(Error),
}

/// `Code` and `Message` of an S3 error document (empty when absent).
fn s3_error(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        text.find(&open)
            .and_then(|i| {
                let rest = &text[i + open.len()..];
                rest.find(&close).map(|j| rest[..j].trim().to_owned())
            })
            .unwrap_or_default()
    };
    (field("Code"), field("Message"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusty_s3::S3Action as _;

    #[test]
    fn reads_error_documents() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>Bucket not found: x</Message></Error>";
        assert_eq!(
            s3_error(body),
            ("NoSuchBucket".into(), "Bucket not found: x".into())
        );
        assert_eq!(s3_error(b"garbage"), (String::new(), String::new()));
    }

    fn client() -> Client {
        let location = S3Location::parse("s3:http://127.0.0.1:1/bucket/p").unwrap();
        let options = S3Options {
            credentials: Some(S3Credentials {
                key_id: "GK1".into(),
                secret: zeroize::Zeroizing::new("s".into()),
                token: None,
            }),
            region: Some("garage".into()),
            retry_for: Duration::from_millis(300),
            ..S3Options::default()
        };
        Client::new(location, options).unwrap()
    }

    fn reply(status: u16, code: &str, message: &str, skew: Option<i64>) -> Reply {
        Reply {
            status,
            len: None,
            body: format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")
                .into_bytes(),
            skew,
        }
    }

    #[test]
    fn answers_become_problems_that_say_what_to_do() {
        let c = client();
        let problem = |r: Reply| match c.refused("reading", &r) {
            Error::Store { problem, .. } => problem,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            problem(reply(404, "NoSuchBucket", "", None)),
            StoreProblem::NoBucket(b) if b == "bucket"
        ));
        assert!(matches!(
            problem(reply(
                403,
                "AccessDenied",
                "Forbidden: No such key: GK1",
                None
            )),
            StoreProblem::Credentials { .. }
        ));
        assert!(matches!(
            problem(reply(403, "InvalidAccessKeyId", "", None)),
            StoreProblem::Credentials { .. }
        ));
        assert!(matches!(
            problem(reply(403, "AccessDenied", "Operation is not allowed", None)),
            StoreProblem::Denied { .. }
        ));
        assert!(matches!(
            problem(reply(
                403,
                "AccessDenied",
                "Request has expired",
                Some(-7200)
            )),
            StoreProblem::ClockSkew { seconds: -7200 }
        ));
        assert!(matches!(
            problem(reply(
                400,
                "AuthorizationHeaderMalformed",
                "unexpected region",
                None
            )),
            StoreProblem::Region(_)
        ));
    }

    #[test]
    fn an_unreachable_store_fails_after_the_retry_period() {
        let c = client();
        let e = c
            .exchange("reading the config", &Verb::Get, &[], 100, &|b, cr| {
                b.get_object(Some(cr), "p/config").sign(SIGN_FOR)
            })
            .unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("cannot reach the store at 127.0.0.1:1"),
            "{text}"
        );
        assert!(text.contains("reading the config"), "{text}");
    }
}
