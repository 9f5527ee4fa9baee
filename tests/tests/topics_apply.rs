//! `topics apply` against a real broker: idempotent, and honest about drift.

use std::time::Duration;

use l2f_bus::topics::{apply, ApplyOptions, Catalog, Drift, Outcome};
use l2f_e2e::{client, require_kafka, unique};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_twice_changes_nothing_and_reports_introduced_drift() {
    let b = require_kafka!();
    let t1 = unique("cat-leads");
    let t2 = unique("cat-orders");
    let catalog = Catalog::parse(
        &format!(
            "[defaults]\npartitions = 3\nreplication_factor = 3\n\
             [[topic]]\nname = \"{t1}\"\nretention = \"7d\"\ncleanup_policy = \"delete\"\n\
             [[topic]]\nname = \"{t2}\"\npartitions = 2\nretention = \"forever\"\n"
        ),
        "test",
    )
    .unwrap();
    let c = client(&b);
    let opts = ApplyOptions {
        replication_factor: Some(1),
        ..ApplyOptions::default()
    };
    let first = apply(&c, &catalog, &opts).await.unwrap();
    assert!(
        matches!(&first[0], Outcome::Created { partitions: 3, .. }),
        "{first:?}"
    );
    assert!(
        matches!(&first[1], Outcome::Created { partitions: 2, .. }),
        "{first:?}"
    );

    let second = apply(&c, &catalog, &opts).await.unwrap();
    assert_eq!(
        second,
        vec![
            Outcome::InSync { topic: t1.clone() },
            Outcome::InSync { topic: t2.clone() }
        ],
        "a second apply changes nothing"
    );

    // Someone adds a partition to one topic and shortens the other's retention by hand.
    let admin: AdminClient<DefaultClientContext> = c.create().unwrap();
    let o = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    admin
        .create_partitions(&[NewPartitions::new(&t1, 4)], &o)
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&t2)).set("retention.ms", "3600000")],
            &o,
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    // Metadata and configs propagate asynchronously; give them a moment.
    let mut third = Vec::new();
    for _ in 0..50 {
        third = apply(&c, &catalog, &opts).await.unwrap();
        if third.iter().all(|o| matches!(o, Outcome::Drifted { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        third,
        vec![
            Outcome::Drifted {
                topic: t1.clone(),
                drift: vec![Drift::Partitions {
                    actual: 4,
                    wanted: 3
                }]
            },
            Outcome::Drifted {
                topic: t2.clone(),
                drift: vec![Drift::Config {
                    key: "retention.ms".into(),
                    actual: Some("3600000".into()),
                    wanted: "-1".into()
                }]
            },
        ]
    );
    // Apply never undoes an operator's change.
    let fourth = apply(&c, &catalog, &opts).await.unwrap();
    assert_eq!(fourth, third);
}
