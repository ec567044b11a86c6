//! The `aisle` binary: parses the command line and hands over to [`aisle::cli::run`].
//!
//! Not for: any logic of its own (commands live in `aisle::cli`, everything else in the library).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = aisle::cli::Cli::parse();
    match aisle::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aisle: {e}");
            ExitCode::from(1)
        }
    }
}
