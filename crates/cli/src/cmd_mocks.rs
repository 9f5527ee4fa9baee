//! `l2f mocks ...` — owned by the mock-apps work (issue 4).
use clap::Args;

/// Serve the mock enterprise apps on loopback.
#[derive(Debug, Args)]
pub struct MocksArgs {}

/// Runs the mocks until SIGINT/SIGTERM; the returned value is the process exit code.
pub async fn run(_args: MocksArgs) -> anyhow::Result<i32> {
    Ok(0)
}
