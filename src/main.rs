//! The `aisle` binary: parses the command line and hands over to [`aisle::cli::run`].

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
