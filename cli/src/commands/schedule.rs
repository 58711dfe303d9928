//! `coffre schedule install|show|remove`: a systemd timer that runs
//! `coffre --config FILE snapshot` every evening, so that the backup
//! happens without anyone thinking of it.
//!
//! The units are written from the configuration (sources and repositories
//! to wait for, retention, verification) and carry no secret: the
//! passphrase stays in the configuration's `password_file`. The same
//! generator writes packaging/systemd/ (a test keeps them equal).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::args::Cli;
use crate::config::{ClockTime, Verify, Weekdays};

/// The service's file name.
pub const SERVICE: &str = "coffre-snapshot.service";
/// The timer's file name.
pub const TIMER: &str = "coffre-snapshot.timer";
/// Where units are installed by default.
/// The daily "is the data safe?" check that tells `[notify]` (also when
/// the evening snapshot never ran: a machine off, a timer lost).
pub const STATUS_SERVICE: &str = "coffre-status.service";
/// Its timer.
pub const STATUS_TIMER: &str = "coffre-status.timer";
/// The weekly restore test's service.
pub const VERIFY_SERVICE: &str = "coffre-verify.service";
/// Its timer.
pub const VERIFY_TIMER: &str = "coffre-verify.timer";
/// When it runs by default: in the afternoon, so that a drive left at home
/// can still be brought before the evening's backup.
const STATUS_AT: ClockTime = ClockTime {
    hour: 17,
    minute: 0,
};
const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// Folders systemd reads units from: only there may `systemctl` be asked
/// to enable ours (and a test's temporary folder never reaches it).
const SYSTEM_UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// `coffre schedule`.
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// `coffre schedule install|show|remove`.
#[derive(Subcommand, Debug)]
pub enum ScheduleAction {
    /// Write the systemd service and timer that take the snapshot every evening, and start the timer.
    Install(InstallArgs),
    /// Show the installed schedule (and the next run, when systemd runs).
    Show(UnitDir),
    /// Stop the timer and delete both units (does nothing if none is installed).
    Remove(UnitDir),
}

/// Where the units go.
#[derive(Args, Debug)]
pub struct UnitDir {
    /// Folder of the unit files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_UNIT_DIR)]
    pub unit_dir: PathBuf,
}

/// `coffre schedule install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Time of day, 24-hour (e.g. 20:30). Default: [schedule] at in the configuration.
    #[arg(long, value_name = "HH:MM")]
    pub at: Option<String>,
    /// Days (e.g. mon-fri, mon-sat, "mon,wed,fri"). Default: [schedule] weekdays, else every day.
    #[arg(long, value_name = "DAYS")]
    pub weekdays: Option<String>,
    /// Run the snapshot as this user (default: root, who can read every file).
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub dir: UnitDir,
    /// Write the units but do not enable or start the timer.
    #[arg(long)]
    pub no_enable: bool,
    /// Time of the daily status check that tells [notify] (default 17:00
    /// when the configuration has a [notify]; none otherwise).
    #[arg(long, value_name = "HH:MM")]
    pub status_at: Option<String>,
    /// A restore test (`coffre verify --sample 2%`, and the
    /// [schedule] restore_test_include paths) every week: `weekly` or
    /// `off`. Default: [schedule] restore_test, else off.
    #[arg(long, value_name = "weekly|off")]
    pub restore_test: Option<String>,
}

/// What the units say.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The coffre binary.
    pub coffre: PathBuf,
    /// The configuration file (absolute).
    pub config: PathBuf,
    /// `User=`, when not root.
    pub user: Option<String>,
    /// `RequiresMountsFor=`: folders that must be mounted first.
    pub mounts: Vec<PathBuf>,
    /// Several drives rotate under fixed paths: say why none is required.
    pub rotating: bool,
    /// Apply the configuration's [retention] after the snapshot.
    pub forget: bool,
    /// Check the repository after the snapshot.
    pub verify: Verify,
    /// Time of day.
    pub at: ClockTime,
    /// Days.
    pub weekdays: Weekdays,
    /// First comment line of each unit.
    pub origin: String,
}

/// Runs `coffre schedule`.
pub fn run(cli: &Cli, args: &ScheduleArgs) -> Result<u8> {
    match &args.action {
        ScheduleAction::Install(a) => install(cli, a),
        ScheduleAction::Show(d) => show(cli, &d.unit_dir),
        ScheduleAction::Remove(d) => remove(cli, &d.unit_dir),
    }
}

/// A word of an `ExecStart=` line (or a path of `RequiresMountsFor=`), as
/// systemd reads it back: `%` and `$` doubled, quoted when it has spaces.
fn unit_word(s: &Path) -> Result<String> {
    let Some(s) = s.to_str().filter(|s| !s.contains(['\n', '\r'])) else {
        bail!(
            "{} cannot be written in a systemd unit (not UTF-8, or a line break): move it to a plain path",
            s.display()
        );
    };
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.contains(|c: char| c.is_whitespace() || "\"'\\;".contains(c)) {
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(s)
    }
}

/// `OnCalendar=` for the days and time.
pub fn on_calendar(weekdays: Weekdays, at: ClockTime) -> String {
    let days = weekdays.systemd().map(|d| d + " ").unwrap_or_default();
    format!("{days}*-*-* {at}:00")
}

/// The service unit's text.
pub fn service_unit(spec: &UnitSpec) -> Result<String> {
    let coffre = format!(
        "{} --config {}",
        unit_word(&spec.coffre)?,
        unit_word(&spec.config)?
    );
    let mut u = format!(
        "# {}\n[Unit]\nDescription=Coffre snapshot of the pharmacy's data\n",
        spec.origin
    );
    if spec.rotating {
        u += "# Several drives rotate under fixed folders: none is required here\n\
              # (that would need all of them); coffre uses whichever is there.\n";
    }
    for m in &spec.mounts {
        u += &format!("RequiresMountsFor={}\n", unit_word(m)?.replace("$$", "$"));
    }
    u += "\n[Service]\nType=oneshot\n";
    u += &format!("ExecStart={coffre} snapshot\n");
    if spec.forget {
        u += "# The configuration's [retention], then free the space.\n";
        u += &format!("ExecStartPost={coffre} forget --prune\n");
    }
    match spec.verify {
        Verify::None => {}
        Verify::Check => u += &format!("ExecStartPost={coffre} check\n"),
        Verify::ReadData => u += &format!("ExecStartPost={coffre} check --read-data\n"),
    }
    u += "# 3: snapshot recorded, but some files could not be read (the log lists\n\
          # them): worth a look, not a failure.\n\
          SuccessExitStatus=3\n\
          # An evening job: leave the processor and the disks to anyone still working.\n\
          Nice=10\n\
          IOSchedulingClass=idle\n";
    if let Some(user) = &spec.user {
        u += &format!("User={user}\n");
    }
    u += "# No secret here: the passphrase is read from the configuration's password_file.\n";
    Ok(u)
}

/// The status check's service: tells `[notify]` when the data is not safe
/// (and pings the webhook when it is).
pub fn status_service_unit(spec: &UnitSpec) -> Result<String> {
    let mut u = format!(
        "# {}\n[Unit]\nDescription=Coffre: is the pharmacy's data safe? (tells [notify] when not)\n\n\
         [Service]\nType=oneshot\nExecStart={} --config {} status --notify\n\
         # 1 and 2 (warning, critical) are sent to [notify]: not a failure of this unit.\n\
         SuccessExitStatus=1 2\nNice=10\n",
        spec.origin,
        unit_word(&spec.coffre)?,
        unit_word(&spec.config)?
    );
    if let Some(user) = &spec.user {
        u += &format!("User={user}\n");
    }
    Ok(u)
}

/// The weekly restore test's service.
pub fn verify_service_unit(spec: &UnitSpec, include: &[String]) -> Result<String> {
    let mut exec = format!(
        "{} --config {} verify --sample 2%",
        unit_word(&spec.coffre)?,
        unit_word(&spec.config)?
    );
    for p in include {
        exec += &format!(" --include {}", unit_word(Path::new(p))?);
    }
    let mut u = format!(
        "# {}\n[Unit]\nDescription=Coffre weekly restore test (recorded in the repository's journal)\n\n\
         [Service]\nType=oneshot\nExecStart={exec}\nNice=10\nIOSchedulingClass=idle\n",
        spec.origin
    );
    if let Some(user) = &spec.user {
        u += &format!("User={user}\n");
    }
    Ok(u)
}

/// The weekly restore test's timer: the first backup day of the week, an
/// hour before the snapshot (a missed one runs at the next start).
pub fn verify_timer_unit(spec: &UnitSpec) -> String {
    let day = spec
        .weekdays
        .first_systemd()
        .unwrap_or_else(|| "Mon".into());
    let at = spec.at.minus_minutes(60);
    format!(
        "# {origin}\n[Unit]\nDescription=Coffre restore test, weekly ({day} at {at})\n\n[Timer]\n\
         OnCalendar={day} *-*-* {at}:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
        origin = spec.origin,
    )
}

/// The status check's timer: the backup days at `at`.
pub fn status_timer_unit(spec: &UnitSpec, at: ClockTime) -> String {
    format!(
        "# {origin}\n[Unit]\nDescription=Coffre status, {days} at {at}\n\n[Timer]\n\
         OnCalendar={cal}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
        origin = spec.origin,
        days = spec.weekdays,
        cal = on_calendar(spec.weekdays, at),
    )
}

/// The timer unit's text.
pub fn timer_unit(spec: &UnitSpec) -> String {
    format!(
        "# {origin}\n[Unit]\nDescription=Coffre snapshot, {days} at {at}\n\n[Timer]\n\
         OnCalendar={cal}\n\
         # An evening missed (machine off) runs at the next start.\n\
         Persistent=true\n\
         RandomizedDelaySec=2min\n\n[Install]\nWantedBy=timers.target\n",
        origin = spec.origin,
        days = spec.weekdays,
        at = spec.at,
        cal = on_calendar(spec.weekdays, spec.at),
    )
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether systemctl can act on units in `dir`.
fn systemd_reads(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    systemd_running() && SYSTEM_UNIT_DIRS.iter().any(|d| dir == Path::new(d))
}

fn systemctl(args: &[&str]) -> Result<String> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .with_context(|| format!("running systemctl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn user_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a valid C string; the returned record is only tested for null
    // (no other thread calls getpw* meanwhile).
    !unsafe { libc::getpwnam(c.as_ptr()) }.is_null()
}

/// Writes `text` to `path` whole or not at all (a unit half-written by a
/// full disk would break the next boot's timers).
fn write_unit(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("coffre-tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            ": run as root (sudo coffre schedule install ...)"
        } else {
            ""
        };
        bail!("cannot write {}: {e}{hint}", path.display());
    }
    Ok(())
}

fn install(cli: &Cli, args: &InstallArgs) -> Result<u8> {
    let Some(loaded) = crate::config::load(cli)? else {
        bail!(
            "the timer runs `coffre --config FILE snapshot`, so it needs a configuration file: write {} (start from packaging/coffre.toml) or give --config",
            crate::config::default_path().display()
        );
    };
    let c = &loaded.config;
    let at = match (&args.at, &c.schedule) {
        (Some(a), _) => ClockTime::parse(a).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        (None, Some(s)) => s.at,
        (None, None) => bail!(
            "when? Give --at HH:MM (e.g. --at 20:30), or set at in [schedule] of {}",
            loaded.path.display()
        ),
    };
    let weekdays = match (&args.weekdays, &c.schedule) {
        (Some(w), _) => Weekdays::parse(w).map_err(|e| anyhow::anyhow!("--weekdays: {e}"))?,
        (None, Some(s)) => s.weekdays,
        (None, None) => Weekdays::default(),
    };
    if c.snapshot.sources.is_empty() {
        bail!(
            "[snapshot] in {} lists no sources: the evening snapshot would have nothing to back up. Add sources = [\"/srv/officine\"]",
            loaded.path.display()
        );
    }
    if let Some(u) = &args.user {
        if !user_exists(u) {
            bail!("--user {u}: no such user on this machine");
        }
    }
    if c.password_file.is_none() {
        eprintln!(
            "warning: {} has no password_file: the evening run has no terminal to ask the passphrase on, and will fail",
            loaded.path.display()
        );
    }
    let coffre = std::env::current_exe().context("finding the path of this coffre program")?;
    // Fixed folders are waited for (mounted first); with several, they
    // rotate and requiring all would stop every run.
    let fixed: Vec<&crate::config::RepositoryConfig> = c
        .repositories
        .iter()
        .filter(|r| r.fs_label.is_none() && r.fs_uuid.is_none())
        .collect();
    let mut mounts: Vec<PathBuf> = Vec::new();
    let single = match fixed.as_slice() {
        [only] => Some(&only.path),
        _ => None,
    };
    for p in c.snapshot.sources.iter().chain(single) {
        if !mounts.contains(p) {
            mounts.push(p.clone());
        }
    }
    let spec = UnitSpec {
        coffre,
        config: loaded.path.clone(),
        user: args.user.clone(),
        mounts,
        rotating: fixed.len() > 1,
        forget: c.retention.policy().is_some(),
        verify: c.schedule.as_ref().map(|s| s.verify).unwrap_or_default(),
        at,
        weekdays,
        origin: format!(
            "Written by `coffre schedule install`: change {} and run it again rather than editing this file.",
            loaded.path.display()
        ),
    };
    let dir = &args.dir.unit_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (service, timer) = (dir.join(SERVICE), dir.join(TIMER));
    write_unit(&service, &service_unit(&spec)?)?;
    write_unit(&timer, &timer_unit(&spec))?;
    // Someone to tell: the daily check, so that a backup that never ran
    // (machine off, drive left at home) is told too, not only a failed one.
    let status_at = match &args.status_at {
        Some(a) => Some(ClockTime::parse(a).map_err(|e| anyhow::anyhow!("--status-at: {e}"))?),
        None => (!c.notify.is_empty()).then_some(STATUS_AT),
    };
    let restore_test = match args.restore_test.as_deref() {
        Some("weekly") => true,
        Some("off") => false,
        Some(other) => bail!("--restore-test {other}: give weekly or off"),
        None => c
            .schedule
            .as_ref()
            .is_some_and(|s| s.restore_test == crate::config::RestoreTest::Weekly),
    };
    if restore_test {
        let include = c
            .schedule
            .as_ref()
            .map(|s| s.restore_test_include.clone())
            .unwrap_or_default();
        write_unit(
            &dir.join(VERIFY_SERVICE),
            &verify_service_unit(&spec, &include)?,
        )?;
        write_unit(&dir.join(VERIFY_TIMER), &verify_timer_unit(&spec))?;
    } else {
        for name in [VERIFY_TIMER, VERIFY_SERVICE] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    if let Some(status_at) = status_at {
        write_unit(&dir.join(STATUS_SERVICE), &status_service_unit(&spec)?)?;
        write_unit(
            &dir.join(STATUS_TIMER),
            &status_timer_unit(&spec, status_at),
        )?;
    }
    let cal = on_calendar(weekdays, at);
    let enable_cmd = if status_at.is_some() {
        "systemctl daemon-reload && systemctl enable --now coffre-snapshot.timer coffre-status.timer"
    } else {
        "systemctl daemon-reload && systemctl enable --now coffre-snapshot.timer"
    };
    let enabled = if args.no_enable {
        None
    } else if !systemd_running() {
        Some("systemd is not running here: once it is, enable the timer with")
    } else if !systemd_reads(dir) {
        Some("systemd does not read units from this folder: link them with `systemctl link` (both files), then")
    } else {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", TIMER])?;
        if status_at.is_some() {
            systemctl(&["enable", "--now", STATUS_TIMER])?;
        }
        if restore_test {
            systemctl(&["enable", "--now", VERIFY_TIMER])?;
        }
        Some("")
    };
    if cli.json {
        super::print_json(&serde_json::json!({
            "service": service, "timer": timer, "on_calendar": cal,
            "status_on_calendar": status_at.map(|a| on_calendar(weekdays, a)),
            "enabled": enabled == Some(""),
        }))?;
        return Ok(0);
    }
    println!("Wrote {} and {}.", service.display(), timer.display());
    println!(
        "Snapshot {weekdays} at {at} (OnCalendar={cal}); a missed evening runs at the next start."
    );
    if restore_test {
        println!(
            "Restore test weekly ({} and {}): each run is recorded in the repository's journal.",
            dir.join(VERIFY_SERVICE).display(),
            dir.join(VERIFY_TIMER).display()
        );
    }
    match status_at {
        Some(s) => println!(
            "Status check {weekdays} at {s} ({} and {}): [notify] is told when the data is not safe.",
            dir.join(STATUS_SERVICE).display(),
            dir.join(STATUS_TIMER).display()
        ),
        None => println!(
            "No daily status check: the configuration has no [notify] (see docs/CONFIG.md), so nobody would be told."
        ),
    }
    match enabled {
        Some("") => {
            println!("Timer enabled and started. See the next run with `coffre schedule show`, each run's log with `journalctl -u coffre-snapshot`.");
        }
        Some(why) => println!("{why}:\n  {enable_cmd}"),
        None => println!("Not enabled (--no-enable). To enable it:\n  {enable_cmd}"),
    }
    Ok(0)
}

/// The values of `key=` lines in a unit's text.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn show(cli: &Cli, dir: &Path) -> Result<u8> {
    let read = |name: &str| -> Result<Option<String>> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(name).display())),
        }
    };
    let (service, timer) = (read(SERVICE)?, read(TIMER)?);
    let status_timer = read(STATUS_TIMER)?;
    let next = if timer.is_some() && systemd_reads(dir) {
        systemctl(&["list-timers", "--all", "--no-pager", TIMER]).ok()
    } else {
        None
    };
    if cli.json {
        super::print_json(&serde_json::json!({
            "unit_dir": dir,
            "installed": service.is_some() && timer.is_some(),
            "on_calendar": timer.as_deref().map(|t| values(t, "OnCalendar")),
            "exec": service.as_deref().map(|s| [values(s, "ExecStart"), values(s, "ExecStartPost")].concat()),
            "user": service.as_deref().and_then(|s| values(s, "User").first().copied()),
            "status_on_calendar": status_timer.as_deref().map(|t| values(t, "OnCalendar")),
            "systemctl_list_timers": next,
        }))?;
        return Ok(0);
    }
    if service.is_none() && timer.is_none() {
        println!(
            "No Coffre schedule in {}. Install one with `coffre schedule install --at 20:30`.",
            dir.display()
        );
        return Ok(0);
    }
    for (name, text, keys, missing) in [
        (
            TIMER,
            &timer,
            &["Description", "OnCalendar", "Persistent"][..],
            "nothing starts the snapshot",
        ),
        (
            SERVICE,
            &service,
            &["ExecStart", "ExecStartPost", "User", "RequiresMountsFor"][..],
            "the timer has nothing to run",
        ),
    ] {
        let path = dir.join(name);
        let Some(text) = text else {
            println!(
                "{} is missing: {missing}. Run `coffre schedule install` again.",
                path.display()
            );
            continue;
        };
        println!("{}", path.display());
        for key in keys {
            for v in values(text, key) {
                println!("  {key}={v}");
            }
        }
    }
    if let Some(t) = read(VERIFY_TIMER)? {
        println!(
            "{}\n  OnCalendar={}",
            dir.join(VERIFY_TIMER).display(),
            values(&t, "OnCalendar").join(" ")
        );
    }
    match &status_timer {
        Some(t) => println!(
            "{}\n  OnCalendar={}",
            dir.join(STATUS_TIMER).display(),
            values(t, "OnCalendar").join(" ")
        ),
        None => println!("(no daily status check installed)"),
    }
    match next {
        Some(n) => print!("\n{n}"),
        None if !systemd_running() => {
            println!("(systemd is not running here: no next run to show)")
        }
        None => {}
    }
    Ok(0)
}

fn remove(cli: &Cli, dir: &Path) -> Result<u8> {
    let paths = [
        dir.join(TIMER),
        dir.join(SERVICE),
        dir.join(STATUS_TIMER),
        dir.join(STATUS_SERVICE),
        dir.join(VERIFY_TIMER),
        dir.join(VERIFY_SERVICE),
    ];
    let present: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if present.is_empty() {
        if cli.json {
            super::print_json(&serde_json::json!({ "removed": [] }))?;
        } else {
            println!("Nothing to remove: no Coffre units in {}.", dir.display());
        }
        return Ok(0);
    }
    let systemd = systemd_reads(dir);
    for timer in [TIMER, STATUS_TIMER, VERIFY_TIMER] {
        if systemd && dir.join(timer).exists() {
            // Not enabled or not loaded: nothing to stop, the files still go.
            if let Err(e) = systemctl(&["disable", "--now", timer]) {
                eprintln!("warning: {e:#}");
            }
        }
    }
    for p in &present {
        std::fs::remove_file(p).with_context(|| format!("deleting {}", p.display()))?;
    }
    if systemd {
        systemctl(&["daemon-reload"])?;
    }
    if cli.json {
        super::print_json(&serde_json::json!({ "removed": present }))?;
    } else {
        for p in &present {
            println!("Removed {}.", p.display());
        }
        if systemd {
            println!("The timer is stopped and disabled.");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The units shipped for the .deb: /usr/bin/coffre and what
    /// packaging/coffre.toml says ([retention], verify = "check", Monday to
    /// Saturday at 20:30); no folder to wait for (the sources are the
    /// pharmacy's own).
    fn packaged() -> UnitSpec {
        UnitSpec {
            coffre: PathBuf::from("/usr/bin/coffre"),
            config: PathBuf::from(crate::config::DEFAULT_PATH),
            user: None,
            mounts: Vec::new(),
            rotating: false,
            forget: true,
            verify: Verify::Check,
            at: ClockTime { hour: 20, minute: 30 },
            weekdays: Weekdays::parse("mon-sat").expect("days"),
            origin: "An example shipped in /usr/share/doc/coffre/examples/systemd; `coffre schedule install` writes the real units, from the configuration, in /etc/systemd/system.".to_string(),
        }
    }

    #[test]
    fn packaged_units_are_what_the_generator_writes() {
        let spec = packaged();
        assert_eq!(
            include_str!("../../../packaging/systemd/coffre-snapshot.service"),
            service_unit(&spec).expect("unit")
        );
        assert_eq!(
            include_str!("../../../packaging/systemd/coffre-snapshot.timer"),
            timer_unit(&spec)
        );
    }

    #[test]
    fn words_are_quoted_as_systemd_reads_them() {
        assert_eq!(
            unit_word(Path::new("/usr/bin/coffre")).expect("w"),
            "/usr/bin/coffre"
        );
        assert_eq!(
            unit_word(Path::new("/opt/ma clé/100%$x")).expect("w"),
            "\"/opt/ma clé/100%%$$x\""
        );
        assert!(unit_word(Path::new("/a\nb")).is_err());
    }

    #[test]
    fn calendar() {
        let at = ClockTime { hour: 7, minute: 5 };
        assert_eq!(on_calendar(Weekdays::default(), at), "*-*-* 07:05:00");
        assert_eq!(
            on_calendar(Weekdays::parse("mon,tue,thu-sat").expect("d"), at),
            "Mon,Tue,Thu..Sat *-*-* 07:05:00"
        );
    }
}
