//! Telling someone: a mail through the configuration's sendmail-compatible
//! command, and a webhook ping in the healthchecks.io style (the URL itself
//! when all is well, the URL followed by `/fail` when not), both from
//! `[notify]`. A notification that cannot be sent is a warning on stderr:
//! it never changes what the command itself reports.
//!
//! `http://` webhooks are sent directly (5 s to connect, 5 s to answer);
//! `https://` ones through `curl`, which must then be installed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::NotifyConfig;

/// Connect, write and read timeout of a webhook.
const WEB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the mail command may take before it is killed.
const MAIL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which webhook address: the success ping or the failure one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// The URL as configured: all is well.
    Success,
    /// The URL followed by `/fail`.
    Fail,
}

/// One notification.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The mail's subject (one line).
    pub subject: String,
    /// The mail's text.
    pub body: String,
    /// Whether to send the mail (when `mail_to` is set).
    pub mail: bool,
    /// The webhook ping to send (when `webhook` is set), with `json` as
    /// its body.
    pub ping: Option<Ping>,
    /// The webhook's JSON body.
    pub json: serde_json::Value,
}

/// Whether `[notify]` names anyone to tell.
pub fn configured(cfg: &NotifyConfig) -> bool {
    cfg.mail_command().is_some() || cfg.webhook.is_some()
}

/// Sends `notice` by every configured way and says on stderr what was
/// sent, and what could not be (as warnings). Returns whether everything
/// asked went out.
pub fn send(cfg: &NotifyConfig, notice: &Notice) -> bool {
    let mut sent = Vec::new();
    let mut all = true;
    if let (true, Some(command), Some(to)) = (notice.mail, cfg.mail_command(), &cfg.mail_to) {
        match mail(command, to, &notice.subject, &notice.body) {
            Ok(()) => sent.push(format!("mail to {to}")),
            Err(e) => {
                all = false;
                eprintln!("warning: could not send the mail to {to}: {e:#}");
            }
        }
    }
    if let (Some(ping), Some(url)) = (notice.ping, &cfg.webhook) {
        let url = ping_url(&url.0, ping);
        match webhook(&url, &notice.json.to_string()) {
            Ok(()) => sent.push(format!("webhook {url}")),
            Err(e) => {
                all = false;
                eprintln!("warning: could not call the webhook {url}: {e:#}");
            }
        }
    }
    if !sent.is_empty() {
        eprintln!("Notified: {}.", sent.join(", "));
    }
    all
}

/// This machine's name, for subjects and messages.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "this computer".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// ---- Mail.

/// Runs the sendmail-compatible `command` (through `sh -c`) with the
/// message on stdin; its environment also holds `COFFRE_MAIL_TO` and
/// `COFFRE_MAIL_SUBJECT`, for commands that want them as arguments.
///
/// # Errors
/// When the command cannot start, fails, or takes over a minute.
pub fn mail(command: &str, to: &str, subject: &str, body: &str) -> Result<()> {
    let date = crate::commands::now()
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t.sec, 0))
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
        .to_rfc2822();
    let text = message(to, subject, body, &date);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("COFFRE_MAIL_TO", to)
        .env("COFFRE_MAIL_SUBJECT", subject)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the mail command {command:?}"))?;
    let stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut said);
        }
        let _ = tx.send(said);
    });
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > MAIL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the mail command {command:?} did not finish within a minute; stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    let said = said.trim();
    if !status.success() {
        bail!(
            "the mail command {command:?} failed ({status}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        );
    }
    if let Some(Err(e)) = written {
        bail!("the mail command {command:?} did not read the message: {e}");
    }
    Ok(())
}

/// The message as sendmail reads it: RFC 5322 headers, a blank line, the
/// text (UTF-8, 8 bit, Unix line ends as local submission expects).
pub fn message(to: &str, subject: &str, body: &str, date: &str) -> String {
    let mut body = body.replace("\r\n", "\n");
    if !body.ends_with('\n') {
        body.push('\n');
    }
    format!(
        "To: {to}\nSubject: {}\nDate: {date}\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\
         Auto-Submitted: auto-generated\nX-Mailer: coffre {}\n\n{body}",
        header_text(subject),
        env!("CARGO_PKG_VERSION"),
    )
}

/// A header value: as is when it is plain ASCII, else RFC 2047 encoded
/// words (`=?utf-8?Q?...?=`), folded so that no line grows too long.
fn header_text(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.is_ascii() {
        return s;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        let mut enc = String::new();
        if c.is_ascii_alphanumeric() || "!*+-/".contains(c) {
            enc.push(c);
        } else if c == ' ' {
            enc.push('_');
        } else {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                enc.push_str(&format!("={byte:02X}"));
            }
        }
        // 75 characters an encoded word, "=?utf-8?Q?" and "?=" included.
        if word.len() + enc.len() > 63 {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&enc);
    }
    words.push(word);
    words
        .iter()
        .map(|w| format!("=?utf-8?Q?{w}?="))
        .collect::<Vec<_>>()
        .join("\n ")
}

// ---- Webhook.

/// The address to call: `url` for [`Ping::Success`], `url/fail` for
/// [`Ping::Fail`] (before any `?query`), as healthchecks.io reads them.
pub fn ping_url(url: &str, ping: Ping) -> String {
    if ping == Ping::Success {
        return url.to_string();
    }
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    format!("{}/fail{query}", base.trim_end_matches('/'))
}

/// POSTs `json` to `url`.
///
/// # Errors
/// When the server cannot be reached in time or answers other than 2xx.
pub fn webhook(url: &str, json: &str) -> Result<()> {
    if url.starts_with("https://") {
        return curl_post(url, json);
    }
    let target = HttpUrl::parse(url)?;
    let addrs = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot find the address of {}", target.host))?;
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, WEB_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        match last_error {
            Some(e) => bail!("cannot connect to {}:{}: {e}", target.host, target.port),
            None => bail!("no address found for {}", target.host),
        }
    };
    stream.set_read_timeout(Some(WEB_TIMEOUT))?;
    stream.set_write_timeout(Some(WEB_TIMEOUT))?;
    let host = if target.port == 80 {
        target.host_header.clone()
    } else {
        format!("{}:{}", target.host_header, target.port)
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: coffre/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        target.path,
        env!("CARGO_PKG_VERSION"),
        json.len(),
    );
    stream
        .write_all(request.as_bytes())
        .context("sending the request")?;
    // The status line is enough; read until it is complete.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.contains(&b'\n') && answer.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e).context("waiting for the answer"),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.lines().next().unwrap_or("").trim();
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(_) => bail!("the server answered {line:?}"),
        None => bail!("no HTTP answer (got {line:?})"),
    }
}

/// An `http://` URL, split for a request.
#[derive(Debug, PartialEq, Eq)]
struct HttpUrl {
    /// Host name or address (IPv6 without brackets).
    host: String,
    /// As the `Host:` header writes it (IPv6 in brackets).
    host_header: String,
    port: u16,
    /// Path and query, from `/`.
    path: String,
}

impl HttpUrl {
    fn parse(url: &str) -> Result<HttpUrl> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url:?} is not an http:// address");
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path.strip_prefix('?') {
            Some(q) => format!("/?{q}"),
            None if path.is_empty() => "/".to_string(),
            None => path.to_string(),
        };
        if authority.contains('@') {
            bail!("{url:?}: a user name or password in the address is not supported; use a secret path or https:// (sent through curl)");
        }
        let (host_header, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .with_context(|| format!("{url:?}: invalid port {p:?}"))?;
                (h.to_string(), port)
            }
            _ => (authority.to_string(), 80),
        };
        let host = host_header
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            bail!("{url:?} has no host name");
        }
        Ok(HttpUrl {
            host,
            host_header,
            port,
            path,
        })
    }
}

/// `https://`: through curl, which knows TLS and the system's certificates.
fn curl_post(url: &str, json: &str) -> Result<()> {
    let Some(curl) = find_in_path("curl") else {
        bail!("an https:// webhook is sent with curl, which is not installed: install it (apt install curl), or use an http:// address");
    };
    let mut child = Command::new(curl)
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--connect-timeout",
            "5",
            "--max-time",
            "10",
            "--retry",
            "2",
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "--output",
            "/dev/null",
            "--",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run curl")?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(json.as_bytes());
    }
    let out = child.wait_with_output().context("waiting for curl")?;
    if !out.status.success() {
        bail!(
            "curl failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A program of the PATH.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8000/ping/abc?x=1").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8000, "/ping/abc?x=1")
        );
        let u = HttpUrl::parse("http://example.org").expect("url");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = HttpUrl::parse("http://[::1]:81/p").expect("url");
        assert_eq!((u.host.as_str(), u.host_header.as_str()), ("::1", "[::1]"));
        assert_eq!(u.port, 81);
        assert!(HttpUrl::parse("http://user:pw@example.org/").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
        assert_eq!(
            ping_url("https://hc-ping.com/abc/", Ping::Fail),
            "https://hc-ping.com/abc/fail"
        );
        assert_eq!(
            ping_url("http://h/p?k=v", Ping::Fail),
            "http://h/p/fail?k=v"
        );
        assert_eq!(ping_url("http://h/p", Ping::Success), "http://h/p");
    }

    #[test]
    fn mail_headers() {
        let m = message(
            "a@b.fr",
            "Sauvegarde échouée",
            "ligne\r\n",
            "Mon, 1 Jan 2024",
        );
        assert!(m.starts_with("To: a@b.fr\nSubject: =?utf-8?Q?Sauvegarde_=C3=A9chou=C3=A9e?=\n"));
        assert!(m.ends_with("\n\nligne\n"), "{m}");
        assert_eq!(header_text("plain\nsubject"), "plain subject");
        let long = header_text(&"é".repeat(40));
        assert!(long.lines().all(|l| l.len() <= 76), "{long}");
    }
}
