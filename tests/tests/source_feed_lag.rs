//! A source's feed lag on a real broker: `SourceStats::feed_lag` (`l2f_source_feed_lag_seconds`)
//! rises while the source drains a backlog page by page and while its polls fail, and falls
//! back to about the poll interval once it has read the feed to its end; `behind`
//! (`l2f_source_feed_behind`) is what the app says it still holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::record::OutRecord;
use l2f_bus::source::{Polled, Source, SourceLoop, SourceSettings};
use l2f_bus::{CancellationToken, HandlerError};
use l2f_e2e::{client, create_topic, require_kafka, unique, wait_until};
use serde_json::{json, Value};

/// A feed with `backlog` pages waiting, each poll taking 150 ms; `failing` makes polls fail.
struct Backlog {
    topic: String,
    backlog: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    read: u64,
}

impl Source for Backlog {
    async fn poll(&mut self, _cursor: Option<&Value>) -> Result<Polled, HandlerError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(HandlerError::transient("the app answered 503"));
        }
        let left = self.backlog.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(Polled {
                records: vec![],
                cursor: json!(self.read),
                more: false,
            });
        }
        self.backlog.store(left - 1, Ordering::SeqCst);
        self.read += 1;
        Ok(Polled {
            records: vec![OutRecord::new(
                &self.topic,
                format!("k-{}", self.read),
                "change",
            )],
            cursor: json!(self.read),
            more: true,
        })
    }

    fn behind(&self) -> Option<u64> {
        Some(self.backlog.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_lag_rises_while_a_source_drains_a_backlog_or_fails_and_falls_once_caught_up() {
    let b = require_kafka!();
    let (topic, offsets) = (unique("lag-out"), unique("lag-offsets"));
    create_topic(&b, &topic, 1).await;
    create_topic(&b, &offsets, 1).await;
    let backlog = Arc::new(AtomicU64::new(14));
    let failing = Arc::new(AtomicBool::new(false));
    let mut settings = SourceSettings::new(unique("lag-source"), &offsets);
    settings.poll_interval = Duration::from_millis(200);
    settings.session_timeout = Duration::from_secs(6);
    settings.retry.initial = Duration::from_millis(100);
    settings.retry.max = Duration::from_millis(200);
    let source = Backlog {
        topic: topic.clone(),
        backlog: backlog.clone(),
        failing: failing.clone(),
        read: 0,
    };
    let lp = SourceLoop::new(&client(&b), settings, source);
    let stats = lp.stats();
    let stop = CancellationToken::new();
    let run = tokio::spawn(lp.run(stop.clone()));
    let lag = || stats.feed_lag().map_or(0.0, |d| d.as_secs_f64());

    assert!(
        wait_until(Duration::from_secs(30), || stats.active()).await,
        "the source takes its lease"
    );
    // Draining page by page (each poll says there is more): never caught up, so lag grows.
    assert!(
        wait_until(Duration::from_secs(20), || lag() >= 1.0).await,
        "lag rises while the backlog drains: {:.2} s, {} pages left",
        lag(),
        backlog.load(Ordering::SeqCst)
    );
    assert!(
        stats.behind().unwrap_or(0) > 0,
        "the app still holds changes: {:?}",
        stats.behind()
    );
    // Read to the end: back to about the poll interval, nothing held.
    assert!(
        wait_until(Duration::from_secs(30), || stats.behind() == Some(0)
            && lag() < 0.6)
        .await,
        "caught up: lag {:.2} s, behind {:?}",
        lag(),
        stats.behind()
    );
    // The app fails every poll: the source is stalled and its lag rises again.
    failing.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(20), || lag() >= 1.5).await,
        "lag rises while the polls fail: {:.2} s",
        lag()
    );
    failing.store(false, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(20), || lag() < 0.6).await,
        "falls once a poll reads the feed again: {:.2} s",
        lag()
    );
    assert_eq!(stats.records(), 14, "every page committed once");
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(stats.feed_lag(), None, "no lag once it no longer polls");
}
