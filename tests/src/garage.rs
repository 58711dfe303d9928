//! A real Garage S3 store on loopback for the tests: one node (sqlite
//! metadata) or a cluster of three with every object on each node. The
//! processes die with the [`Garage`] value, even when a test fails.
//!
//! The binary is found in `COFFRE_GARAGE`, on `PATH`, or where
//! `scripts/install-garage` builds it (`$COFFRE_CI_CACHE/garage/bin`, by
//! default `~/.cache/coffre-ci/garage/bin`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key every test store accepts (Garage's key id form).
pub const KEY_ID: &str = "GK0c0ffee0c0ffee0c0ffee000";
/// Its secret.
pub const SECRET: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";
/// The bucket every test store has.
pub const BUCKET: &str = "coffre";

/// Where the Garage binary is; panics with how to build it.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("COFFRE_GARAGE") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("garage");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/coffre-ci/garage/bin/garage");
    assert!(
        cached.is_file(),
        "no Garage binary: run scripts/install-garage (or set COFFRE_GARAGE)"
    );
    cached
}

struct Node {
    config: PathBuf,
    s3_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// A running Garage store; see the module documentation.
pub struct Garage {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

impl Garage {
    /// One node, replication factor 1.
    pub fn single() -> Self {
        Self::start(1)
    }

    /// Three nodes in three zones, replication factor 3: every object on
    /// every node, reads and writes answered by two of three.
    pub fn cluster() -> Self {
        Self::start(3)
    }

    fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&home).expect("node dir");
            let (rpc, s3) = (free_port(), free_port());
            let config = home.join("garage.toml");
            let text = format!(
                "metadata_dir = \"{h}/meta\"\ndata_dir = \"{h}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = {n}\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                h = home.display()
            );
            std::fs::write(&config, text).expect("garage.toml");
            nodes.push(Node {
                config,
                s3_port: s3,
                child: None,
                log: home.join("log"),
            });
        }
        let mut g = Self { dir, nodes };
        for i in 0..n {
            g.start_node(i);
        }
        let ids: Vec<String> = (0..n)
            .map(|i| g.admin_retry(i, &["node", "id", "-q"]).trim().to_owned())
            .collect();
        for full in &ids[1..] {
            g.admin_retry(0, &["node", "connect", full]);
        }
        for (i, full) in ids.iter().enumerate() {
            let short = &full[..16];
            let zone = format!("dc{}", i + 1);
            g.admin_retry(0, &["layout", "assign", "-z", &zone, "-c", "1G", short]);
        }
        g.admin_retry(0, &["layout", "apply", "--version", "1"]);
        g.admin_retry(0, &["bucket", "create", BUCKET]);
        g.admin_retry(
            0,
            &["key", "import", "--yes", "-n", "tests", KEY_ID, SECRET],
        );
        g.admin_retry(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "tests",
            ],
        );
        g
    }

    /// Starts node `i` (again, after [`Garage::stop`]).
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("garage log");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting garage");
        node.child = Some(child);
        wait_for_port(node.s3_port);
    }

    /// Kills node `i` at once (as a power cut would).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A `garage` admin command on node `i`, retried while the node is
    /// still starting; panics with the output if it keeps failing.
    pub fn admin_retry(&self, i: usize, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(garage_bin())
                .arg("-c")
                .arg(&self.nodes[i].config)
                .args(args)
                .output()
                .expect("running garage");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            if Instant::now() > deadline {
                panic!(
                    "garage {args:?} failed: {}{}\nlog: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The S3 endpoint of node `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// A repository address under `prefix`, through node `i`.
    pub fn repo(&self, i: usize, prefix: &str) -> String {
        format!("s3:{}/{BUCKET}/{prefix}", self.endpoint(i))
    }

    /// The environment a `coffre` command needs to reach the store.
    pub fn env(&self) -> [(&'static str, &'static str); 3] {
        [
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "garage"),
        ]
    }

    /// The folder the nodes keep their files in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "garage did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
