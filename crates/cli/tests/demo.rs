//! `l2f demo` end to end: the embedded broker, the six mock apps in-process, every connector,
//! a simulated year of customers; every record accounted for, no drift, and the same seed
//! prints the same summary.

mod common;

use common::{l2f_command, run};

/// Runs `l2f demo --customers N --seed S --faults F [--outage D]`; returns (exit code,
/// stdout, stderr).
fn demo(customers: usize, seed: u64, faults: u64, outage: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let r = run(l2f_command("off")
        .args([
            "demo",
            "--customers",
            &customers.to_string(),
            "--seed",
            &seed.to_string(),
            "--faults",
            &faults.to_string(),
            "--log-file",
        ])
        .arg(&log)
        .args(outage.map(|d| ["--outage", d]).into_iter().flatten()));
    (r.code, r.stdout, r.stderr)
}

/// The summary: everything from the customers' account on, less the lines that hold
/// wall-clock figures.
fn summary(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("what the customers did"))
        .filter(|l| !l.contains(" took ") && !l.contains("wall time"))
        .collect()
}

#[test]
fn a_year_of_customers_is_accounted_for_with_no_drift_and_the_same_seed_prints_the_same_summary() {
    let (code, out, err) = demo(40, 7, 0, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("summary: 40 customers, 0 unaccounted, reconciliation no drift"),
        "{out}"
    );
    // Progress: one line per step of the simulated year, on to February 2027.
    for date in ["2026-01-01", "2026-06-15", "2027-01-15", "2027-02-01"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(date) && l.contains("records through the hub")),
            "no progress line for {date}: {out}"
        );
    }
    // Every effects line and every dead-letter line balances; each bad input is named.
    let s = summary(&out);
    let table: Vec<&&str> = s
        .iter()
        .skip_while(|l| !l.starts_with("effects per app"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 12, "{out}");
    assert!(table.iter().all(|l| l.ends_with(" ok")), "{out}");
    for reason in [
        "(value: \"Untied Kingdom\")",
        "missing required field(s) LeadCaptured.company",
        "SKU \"enterprise-saas-1y\" is not in the catalog",
        "Party__c = \"Distributor\" is not one of",
        "Reseller_Name__c = null is required",
    ] {
        assert!(out.contains(reason), "{reason}: {out}");
    }
    assert!(!out.contains("UNEXPECTED"), "{out}");
    assert!(
        out.contains("PaymentDeclined 1"),
        "the declined card: {out}"
    );
    assert!(out.contains("LicenseHeld 1"), "the Silent profile: {out}");
    assert!(
        out.contains("renewal deal after a move (entity change)"),
        "{out}"
    );
    // Logs went to the file, not over the display.
    assert!(!err.contains(" INFO "), "{err}");

    // The same year again, with every app failing one call in ten, prints the same summary:
    // nothing lost (every Zuora notification one event), nothing doubled, no drift.
    let (code2, out2, err2) = demo(40, 7, 10, None);
    assert_eq!(code2, 0, "{out2}\n{err2}");
    assert!(out2.contains("faults injected by the apps"), "{out2}");
    assert_eq!(
        summary(&out),
        summary(&out2),
        "same seed, same summary, faults or not"
    );
}
