//! Bridge for the cross-implementation checks (`tools/xlang/run.sh`).
//!
//! `xlang write DIR`: writes the golden example of every event, framed by the Rust codec
//! (single-object encoding), as `DIR/<Event>.bin`.
//! `xlang read DIR`: decodes every `DIR/<Event>.bin` (written by Java or Python) with the Rust
//! codec and compares it with the golden example. Prints `PASS ...`/`FAIL ...` lines; exits 1
//! on any failure.

use std::path::Path;
use std::process::ExitCode;

use l2f_contracts::events::EVENT_NAMES;
use l2f_contracts::examples::{decodes_to_golden, encode_all};
use l2f_contracts::Codec;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: xlang write|read DIR");
        return ExitCode::from(2);
    };
    let dir = Path::new(dir);
    let codec = Codec::new();
    let mut failed = 0;
    match cmd.as_str() {
        "write" => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("{}: {e}", dir.display());
                return ExitCode::from(2);
            }
            match encode_all(&codec) {
                Ok(all) => {
                    for (name, bytes) in all {
                        if let Err(e) = std::fs::write(dir.join(format!("{name}.bin")), bytes) {
                            println!("FAIL rust write {name}: {e}");
                            failed += 1;
                        }
                    }
                }
                Err(e) => {
                    println!("FAIL rust encode: {e}");
                    failed += 1;
                }
            }
        }
        "read" => {
            let who = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for name in EVENT_NAMES {
                let path = dir.join(format!("{name}.bin"));
                let verdict = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| decodes_to_golden(&codec, name, &b).map_err(|e| e.to_string()));
                match verdict {
                    Ok(true) => println!("PASS rust reads {who} {name}"),
                    Ok(false) => {
                        println!("FAIL rust reads {who} {name}: decoded value differs from the golden example");
                        failed += 1;
                    }
                    Err(e) => {
                        println!("FAIL rust reads {who} {name}: {e}");
                        failed += 1;
                    }
                }
            }
        }
        other => {
            eprintln!("unknown command {other}");
            return ExitCode::from(2);
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
