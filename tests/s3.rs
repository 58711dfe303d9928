//! The S3 backend against a real Garage on loopback: the conformance suite
//! every backend passes, then the failures a store on a network has (a
//! wrong key, a missing bucket, the store stopped mid-command).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coffre_tests::garage::{Garage, BUCKET, KEY_ID, SECRET};
use snapshots_format::backend::s3::{S3Credentials, S3Location, S3Options};
use snapshots_format::backend::{conformance, Backend, FileKind, ObjectName, S3Backend};
use snapshots_format::error::{Error, StoreProblem};

fn options(key_id: &str, secret: &str) -> S3Options {
    S3Options {
        credentials: Some(S3Credentials {
            key_id: key_id.into(),
            secret: secret.to_owned().into(),
            token: None,
        }),
        region: Some("garage".into()),
        retry_for: Duration::from_secs(2),
        ..S3Options::default()
    }
}

fn backend(garage: &Garage, address: &str, key_id: &str, secret: &str) -> S3Backend {
    let _ = garage;
    let location = S3Location::parse(address).expect("address");
    S3Backend::open(location, options(key_id, secret)).expect("backend")
}

#[test]
fn s3_backend_passes_the_conformance_suite_on_garage() {
    let garage = Garage::single();
    let n = AtomicU32::new(0);
    conformance::run(&|| {
        let prefix = format!("conformance-{}", n.fetch_add(1, Ordering::Relaxed));
        Box::new(backend(&garage, &garage.repo(0, &prefix), KEY_ID, SECRET))
    });
}

fn problem(e: Error) -> StoreProblem {
    match e {
        Error::Store { problem, .. } => problem,
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn store_failures_say_what_to_do() {
    let mut garage = Garage::single();
    let config = ObjectName::single();

    let wrong_secret = backend(&garage, &garage.repo(0, "p"), KEY_ID, &"0".repeat(64));
    let e = wrong_secret.read(FileKind::Config, &config).unwrap_err();
    assert!(matches!(problem(e), StoreProblem::Credentials { .. }));

    let unknown_key = backend(
        &garage,
        &garage.repo(0, "p"),
        "GK000000000000000000000000",
        SECRET,
    );
    let e = unknown_key.read(FileKind::Config, &config).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(problem(e), StoreProblem::Credentials { .. }),
        "{text}"
    );

    let no_bucket = format!("s3:{}/no-such-bucket/p", garage.endpoint(0));
    let e = backend(&garage, &no_bucket, KEY_ID, SECRET)
        .read(FileKind::Config, &config)
        .unwrap_err();
    let text = e.to_string();
    match problem(e) {
        // Garage answers 403 for a bucket the key may not see: the same
        // advice (check the bucket and the key's rights) holds.
        StoreProblem::NoBucket(b) => assert_eq!(b, "no-such-bucket"),
        StoreProblem::Denied { .. } => {}
        other => panic!("{other:?}: {text}"),
    }

    // The store stops: a clear error after the retry period, nothing
    // half-written; started again, the same request succeeds.
    let good = backend(&garage, &garage.repo(0, "p"), KEY_ID, SECRET);
    good.create().expect("create");
    good.write(FileKind::Policy, &config, b"kept", true)
        .expect("write");
    garage.stop(0);
    let e = good
        .write(FileKind::Snapshot, &ObjectName::id(&[7; 32]), b"x", false)
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("cannot reach the store"), "{e}");
    garage.start_node(0);
    assert_eq!(
        good.read(FileKind::Policy, &config).expect("read"),
        Some(b"kept".to_vec())
    );
    assert!(good
        .write(FileKind::Snapshot, &ObjectName::id(&[7; 32]), b"x", false)
        .expect("write"));
    assert_eq!(
        good.location(),
        format!("s3:{}/{BUCKET}/p", garage.endpoint(0))
    );
}
