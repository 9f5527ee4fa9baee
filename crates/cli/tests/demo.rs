//! `l2f demo` end to end: the embedded broker, the Marketo mock over HTTP and the real
//! Marketo connector; every lead is accounted for, with exact counts.

mod common;

use std::time::Duration;

use common::{l2f_command, run};

/// Runs `l2f demo --leads N`; returns (exit code, stdout, stderr, elapsed).
fn demo(leads: usize) -> (i32, String, String, Duration) {
    let r = run(l2f_command("off").args(["demo", "--leads", &leads.to_string()]));
    (r.code, r.stdout, r.stderr, r.elapsed)
}

/// The number printed just before `marker` on the line that holds it.
fn number_before(stdout: &str, marker: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in {stdout}"));
    let head = &line[..line.find(marker).unwrap()];
    head.split_whitespace()
        .last()
        .and_then(|w| w.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no number before {marker:?} in {line}"))
}

#[test]
fn demo_pushes_complete_leads_dead_letters_incomplete_ones_and_rejects_unmappable_countries() {
    let (code, stdout, stderr, t) = demo(12);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(t < Duration::from_secs(60), "took {t:?}");
    // Leads 3 and 10 lack a company; lead 11's country cannot be mapped.
    assert!(
        stdout.contains(
            "summary: 12 leads: 1 rejected at the edge, 11 produced, 9 in Marketo, 2 dead-lettered, 0 unaccounted"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("pushed 9 leads to Marketo in "), "{stdout}");
    assert!(stdout.contains("Marketo holds 9 leads"), "{stdout}");
    assert!(
        stdout.contains("produced 11 LeadCaptured events"),
        "{stdout}"
    );
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("missing required field(s) LeadCaptured.company (1 attempt)"))
        .collect();
    assert_eq!(missing.len(), 2, "{stdout}");
    assert!(missing
        .iter()
        .any(|l| l.trim_start().starts_with("lead-3 from leads[")));
    assert!(missing
        .iter()
        .any(|l| l.trim_start().starts_with("lead-10 from leads[")));
    assert!(
        stdout.contains("lead-11: LeadCaptured.country: not a country this hub recognises")
            && stdout.contains("(value: \"Narnia\")"),
        "{stdout}"
    );
    assert!(stdout.contains("lead-0: country \"UK\" → GB"), "{stdout}");
    let rate_limited = number_before(&stdout, "pushes answered 606");
    assert!(rate_limited >= 1, "no 606 shown: {stdout}");
    assert!(
        number_before(&stdout, "retries in all") >= rate_limited,
        "{stdout}"
    );
}

#[test]
fn every_lead_is_accounted_for_at_another_size() {
    let (code, stdout, stderr, _) = demo(30);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Leads 3, 10, 17 and 24 lack a company; lead 11's country cannot be mapped.
    assert!(
        stdout.contains(
            "summary: 30 leads: 1 rejected at the edge, 29 produced, 25 in Marketo, 4 dead-lettered, 0 unaccounted"
        ),
        "{stdout}"
    );
}
