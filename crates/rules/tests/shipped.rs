//! The shipped tables of `deploy/rules` load, and the loader refuses a broken directory as a
//! whole, naming the file.

use std::path::{Path, PathBuf};

use l2f_contracts::events::{BillingBatch, SalesChannel, ZuoraEntity};
use l2f_contracts::CountryCode;
use l2f_rules::batch::Invoice;
use l2f_rules::{Error, PartyKind, Rules, FILES};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rules")
}

/// A copy of the shipped tables in a temporary directory, to break one at a time.
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in FILES {
        std::fs::copy(shipped().join(f), dir.path().join(f)).expect("copy table");
    }
    dir
}

/// Every shipped table loads and validates, and the contracts crate's example order (an
/// authorized reseller billed to Germany) gets the entity and batch its
/// `SubscriptionCreated` example carries: GitLab GmbH, Batch4.
#[test]
fn shipped_tables_load() {
    let rules = Rules::load(shipped()).unwrap_or_else(|e| panic!("{e}"));
    let order = l2f_contracts::examples::order_placed();
    let created = l2f_contracts::examples::subscription_created();
    let party = PartyKind::of_order(order.sales_channel, order.reseller.as_ref());
    assert_eq!(
        rules.entity.entity(party, order.bill_to_country),
        ZuoraEntity::GitlabGmbh
    );
    assert_eq!(created.zuora_entity, ZuoraEntity::GitlabGmbh);
    let invoice = Invoice {
        channel: order.sales_channel,
        auto_renewal: false,
        edu_oss: false,
    };
    assert_eq!(rules.batch.batch(invoice), BillingBatch::Batch4);
    assert_eq!(created.billing_batch, BillingBatch::Batch4);
    assert_eq!(order.sales_channel, SalesChannel::Reseller);
    assert_eq!(
        rules.skus.check_order(&order.lines, order.term_start),
        Ok(())
    );
    assert_eq!(rules.skus.min_announce_days(), 30);
    let nl = CountryCode::from_code("NL").expect("ISO");
    assert_eq!(
        rules.entity.entity(PartyKind::SalesAssisted, nl),
        ZuoraEntity::GitlabBv
    );
}

/// A missing table fails the load, naming the file.
#[test]
fn a_missing_table_is_refused() {
    let dir = copy();
    std::fs::remove_file(dir.path().join("sku.toml")).expect("remove");
    let e = Rules::load(dir.path()).unwrap_err();
    assert!(
        matches!(e, Error::Read { ref path, .. } if path.ends_with("sku.toml")),
        "{e}"
    );
}

/// A typo'd file name would leave the real table unchanged without a word: refused.
#[test]
fn a_stray_toml_file_is_refused() {
    let dir = copy();
    std::fs::write(dir.path().join("entitiy.toml"), "").expect("write");
    let e = Rules::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("entitiy.toml: not a rule table"), "{e}");
}

/// An unknown key in any table is a parse error naming the file and the key.
#[test]
fn an_unknown_key_is_refused() {
    let dir = copy();
    let path = dir.path().join("communication.toml");
    let text = std::fs::read_to_string(&path).expect("read") + "\nnew_acount = \"SILENT\"\n";
    std::fs::write(&path, text).expect("write");
    let e = Rules::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.starts_with("communication.toml: ") && e.contains("new_acount"),
        "{e}"
    );
}
