//! `coffre policy set|show`: the retention policy saved (encrypted) in the
//! repository, applied by `forget` when no rule is given.

use anyhow::{bail, Result};
use snapshots_format::format::policy::Policy;
use snapshots_format::repo::lock::LockKind;

use crate::args::{Cli, PolicyAction, PolicyArgs, Rules};

/// The policy written on the command line.
pub fn from_rules(r: &Rules) -> Result<Policy> {
    Ok(Policy {
        keep_last: r.keep_last,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        keep_within: r
            .keep_within
            .as_deref()
            .map(Policy::parse_within)
            .transpose()?,
    })
}

/// Saves or shows the policy.
pub fn run(cli: &Cli, args: &PolicyArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    match &args.action {
        PolicyAction::Set(rules) => {
            let policy = from_rules(rules)?;
            if policy.is_empty() {
                bail!("a policy needs at least one rule (e.g. --keep-daily 7 --keep-weekly 5 --keep-monthly 12)");
            }
            let _lock = super::lock(cli, &repo, LockKind::Exclusive, "policy set")?;
            repo.save_policy(&policy)?;
            if cli.json {
                super::print_json(&serde_json::json!({ "policy": policy.to_string() }))?;
            } else {
                println!("Saved policy: {policy}. `coffre forget --prune` applies it.");
            }
        }
        PolicyAction::Show => match repo.load_policy()? {
            Some(policy) if cli.json => super::print_json(&serde_json::json!({ "policy": policy.to_string() }))?,
            Some(policy) => println!("{policy}"),
            None if cli.json => super::print_json(&serde_json::json!({ "policy": null }))?,
            None => println!("No policy saved. Save one with `coffre policy set --keep-daily 7 --keep-weekly 5 ...`."),
        },
    }
    Ok(0)
}
