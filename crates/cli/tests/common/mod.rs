//! How the tests start the `l2f` binary: from the repository root (where `deploy/` is), with
//! no configuration inherited from the environment and logs at the level the test wants.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// The `l2f` binary, ready for arguments.
pub fn l2f_command(rust_log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l2f"));
    cmd.env_remove("L2F_CONFIG")
        .env("RUST_LOG", rust_log)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd
}

/// What a finished run printed and how it ended.
pub struct Ran {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Ran {
    let start = Instant::now();
    let out = cmd.output().expect("run l2f");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}
