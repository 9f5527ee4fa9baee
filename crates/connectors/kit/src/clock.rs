//! The hub's one clock, as `[clock]` configures it: the wall clock, or a simulated clock
//! followed from a mock process's `GET /__admin/clock` (DESIGN "Time"), so every scheduler of
//! the hub and the mocks' term ends and bill runs read one time and a year runs in seconds.
//!
//! A followed clock is a [`ManualClock`] set from each answer; it only moves forward and lags
//! the mocks' by at most one `poll_interval` (plus one request).

use std::time::Duration;

use l2f_bus::clock::{time_of_clock_view, wall, ManualClock, SharedClock};
use l2f_bus::config::{ClockConfig, ClockSource};
use l2f_bus::CancellationToken;
use tracing::{info, warn};

use crate::KitError;

/// How long start-up waits for the followed clock to answer.
const FIRST_READ: Duration = Duration::from_secs(15);

/// The clock `cfg` asks for. A followed clock is read once before this returns (so no
/// scheduler starts on a wrong time) and then every `poll_interval` until `shutdown`.
pub async fn from_config(
    cfg: &ClockConfig,
    shutdown: &CancellationToken,
) -> Result<SharedClock, KitError> {
    let url = match (cfg.source, &cfg.url) {
        (ClockSource::Wall, _) => return Ok(wall()),
        (ClockSource::Follow, Some(url)) => url.trim_end_matches('/').to_string(),
        (ClockSource::Follow, None) => {
            return Err(KitError::Config {
                key: "clock.url".into(),
                message: "missing: clock.source = \"follow\" needs a mock app's base URL".into(),
            })
        }
    };
    let (clock, url) = follow(&url, cfg.poll_interval, FIRST_READ, shutdown).await?;
    info!(%url, now = %clock.now(), "following the mocks' clock");
    Ok(clock)
}

/// Follows the clock at `base`'s `/__admin/clock`: the first read within `first_read` or an
/// error naming `clock.url`, then a poller task reading it every `every` until `shutdown`.
/// Answers the clock and the URL it follows.
pub async fn follow(
    base: &str,
    every: Duration,
    first_read: Duration,
    shutdown: &CancellationToken,
) -> Result<(SharedClock, String), KitError> {
    let url = format!("{}/__admin/clock", base.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| KitError::Config {
            key: "clock.url".into(),
            message: format!("no HTTP client: {e}"),
        })?;
    let deadline = tokio::time::Instant::now() + first_read;
    let first = loop {
        match read(&http, &url).await {
            Ok(t) => break t,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(KitError::Config {
                    key: "clock.url".into(),
                    message: format!("cannot read the clock to follow at {url}: {e}"),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let clock = ManualClock::at(first);
    let (c, u, stop) = (clock.clone(), url.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match read(&http, &u).await {
                Ok(t) => {
                    if failing {
                        info!(url = %u, "the followed clock answers again");
                        failing = false;
                    }
                    c.set(t);
                }
                Err(e) if !failing => {
                    warn!(url = %u, error = %e, "cannot read the followed clock; it stands still until it answers");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
    Ok((clock, url))
}

async fn read(http: &reqwest::Client, url: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    time_of_clock_view(&body)
}
