//! `strata`: the host tool for Strata systems.
//!
//! - `strata check SYSTEM` validates a system description alone.
//! - `strata build SYSTEM --kernel K --search-path DIR -o IMAGE` builds the
//!   bootable image and writes a report of what each PD can reach.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tool::{image, report};

#[derive(Parser)]
#[command(name = "strata", about = "Build and check Strata systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description; prints `ok` or one line per error.
    Check { system: PathBuf },
    /// Build the bootable image.
    Build {
        system: PathBuf,
        /// The kernel ELF.
        #[arg(long)]
        kernel: PathBuf,
        /// Where to look for program images (repeatable).
        #[arg(long = "search-path")]
        search_path: Vec<PathBuf>,
        /// The image to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Where to write the report (default: IMAGE with .report.txt).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Let PDs read the performance counters (benchmarks).
        #[arg(long)]
        pmu_user: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { system } => match sdf::parse_file(&system) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(errors) => fail(&errors),
        },
        Command::Build { system, kernel, search_path, output, report, pmu_user } => {
            let sd = match sdf::parse_file(&system) {
                Ok(sd) => sd,
                Err(errors) => return fail(&errors),
            };
            let opts = image::Options { kernel, search_path, pmu_user };
            let built = match image::build(&sd, &opts) {
                Ok(b) => b,
                Err(errors) => return fail(&errors),
            };
            let report_path = report.unwrap_or_else(|| output.with_extension("report.txt"));
            if let Err(e) = std::fs::write(&output, &built.elf) {
                eprintln!("error: cannot write image '{}': {e}", output.display());
                return ExitCode::FAILURE;
            }
            if let Err(e) = std::fs::write(&report_path, report::report(&sd, &built)) {
                eprintln!("error: cannot write report '{}': {e}", report_path.display());
                return ExitCode::FAILURE;
            }
            println!("{}", output.display());
            ExitCode::SUCCESS
        }
    }
}

fn fail(errors: &[sdf::Error]) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    ExitCode::FAILURE
}
