//! `strata`: the host tool for Strata systems.
//!
//! - `strata check SYSTEM` validates a system description alone.
//! - `strata build SYSTEM --kernel K --search-path DIR -o IMAGE` builds the
//!   bootable image and writes a report of what each PD can reach.
//! - `strata verify SYSTEM [--search-path DIR]` proves the isolation
//!   properties of a system: prints what each PD can reach, the invariants
//!   and the declared policies; exits non-zero on any violation.
//! - `strata graph SYSTEM` prints the system as Graphviz DOT.

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
    /// Verify the isolation properties of a system description.
    Verify {
        system: PathBuf,
        /// Where to find program images, to check maps against them.
        #[arg(long = "search-path")]
        search_path: Vec<PathBuf>,
    },
    /// Print the system as Graphviz DOT.
    Graph { system: PathBuf },
}

/// The loadable extents of every PD's program image, if all are found.
fn program_extents(sd: &sdf::SystemDescription, search_path: &[PathBuf]) -> Option<Vec<Vec<verify::ProgramExtent>>> {
    let base = std::path::Path::new(&sd.file).parent().unwrap_or(std::path::Path::new("."));
    sd.protection_domains
        .iter()
        .map(|pd| {
            let path = image::find_program(&pd.program_image, base, search_path)?;
            let elf = tool::elf::ElfImage::read(&path).ok()?;
            Some(elf.segments.iter().map(|s| verify::ProgramExtent { vaddr: s.vaddr, size: s.memsz }).collect())
        })
        .collect()
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Verify { system, search_path } => {
            let sd = match sdf::read_file(&system) {
                Ok(sd) => sd,
                Err(errors) => return fail(&errors),
            };
            let extents = program_extents(&sd, &search_path);
            let analysis = verify::analyse(&sd, extents.as_deref());
            print!("{}", analysis.report());
            if analysis.ok() {
                ExitCode::SUCCESS
            } else {
                for v in analysis.violations() {
                    eprintln!("violation: {v}");
                }
                ExitCode::FAILURE
            }
        }
        Command::Graph { system } => match sdf::read_file(&system) {
            Ok(sd) => {
                print!("{}", verify::dot(&sd));
                ExitCode::SUCCESS
            }
            Err(errors) => fail(&errors),
        },
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
