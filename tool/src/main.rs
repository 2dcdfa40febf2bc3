//! `strata`: the host tool for Strata systems.
//!
//! Every command first expands the storage declarations (`<disk>`,
//! `<block_client>`) into plain SDF and works on the expanded system.
//!
//! - `strata check SYSTEM` validates a system description alone: the file,
//!   then the expanded system.
//! - `strata expand SYSTEM` prints the expanded system as SDF XML.
//! - `strata build SYSTEM --kernel K --search-path DIR -o IMAGE` builds the
//!   bootable image and writes a report of what each PD can reach.
//! - `strata verify SYSTEM [--search-path DIR]` proves the isolation
//!   properties of a system: prints what each PD can reach, the invariants
//!   and the declared policies; exits non-zero on any violation. With
//!   `--image IMAGE --kernel K` it also reads the built image back (with
//!   `imagecheck`, written apart from the builder) and checks that the
//!   tables the kernel will install grant exactly what the system declares.
//! - `strata graph SYSTEM` prints the system as Graphviz DOT.
//! - `strata appdisk DIR IMAGE` builds an application disk (the store of
//!   the dynamic content disk, `crates/fatdisk`) from a folder.
//!
//! Every command validates the system first, as `check` does: a system
//! that `check` rejects, every command rejects with the same errors (one
//! line each, with a `file:line:col`) and a non-zero status, before it
//! prints anything else. (The `verify` library still analyses a system
//! that breaks a rule, for callers that want the witnesses.)
//!
//! Printing never panics. When the reader of standard output or standard
//! error goes away (`strata expand system.xml | head -1`), the tool stops
//! at once and silently, with status 141: what a shell reports for a Unix
//! tool that `SIGPIPE` ended. Any other failure to write (a full disk) is
//! reported on standard error, if it still works, with status 1. A closed
//! descriptor (`>&-`) swallows what is written to it, as Rust's standard
//! streams do.

mod appdisk;

use clap::{Parser, Subcommand};
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tool::filters::Programs;
use tool::{image, report, storage};

#[derive(Parser)]
#[command(name = "strata", about = "Build and check Strata systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description; prints `ok` or one line per error.
    Check {
        system: PathBuf,
        /// Where to find filter programs, to read what they declare
        /// (default: target/aarch64-unknown-none/system).
        #[arg(long = "search-path")]
        search_path: Vec<PathBuf>,
    },
    /// Print the system with its storage declarations expanded, as SDF XML.
    Expand {
        system: PathBuf,
        /// Where to find filter programs (as for `check`).
        #[arg(long = "search-path")]
        search_path: Vec<PathBuf>,
    },
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
        /// A built image of this system to check against it.
        #[arg(long, requires = "kernel")]
        image: Option<PathBuf>,
        /// The kernel ELF the image was built with.
        #[arg(long, requires = "image")]
        kernel: Option<PathBuf>,
        /// Accept an image built with --pmu-user (benchmarks).
        #[arg(long, requires = "image")]
        allow_pmu_user: bool,
    },
    /// Print the system as Graphviz DOT.
    Graph {
        system: PathBuf,
        /// Where to find filter programs (as for `check`).
        #[arg(long = "search-path")]
        search_path: Vec<PathBuf>,
    },
    /// Build an application disk image from a folder (its files and
    /// subfolders; links and special files are refused).
    Appdisk { dir: PathBuf, image: PathBuf },
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

/// The status for a reader that went away: 128 + `SIGPIPE` (13), as a
/// shell reports a tool that the signal ended.
const BROKEN_PIPE: i32 = 141;

/// Where [`write_or_exit`] writes.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Write `text` to `stream` and flush it; never panics. If the reader is
/// gone, exit at once with [`BROKEN_PIPE`] and no message; on any other
/// error, say so on standard error (if that works) and exit with 1.
fn write_or_exit(stream: Stream, text: fmt::Arguments) {
    let written = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_fmt(text).and_then(|()| out.flush())
        }
        Stream::Stderr => {
            let mut err = io::stderr().lock();
            err.write_fmt(text).and_then(|()| err.flush())
        }
    };
    if let Err(e) = written {
        exit_on_write_error(stream, &e);
    }
}

fn exit_on_write_error(stream: Stream, e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE);
    }
    let name = match stream {
        Stream::Stdout => "standard output",
        Stream::Stderr => "standard error",
    };
    let _ = writeln!(io::stderr(), "error: cannot write to {name}: {e}");
    std::process::exit(1);
}

/// `print!` that never panics (see [`write_or_exit`]).
macro_rules! out {
    ($($arg:tt)*) => { write_or_exit(Stream::Stdout, format_args!($($arg)*)) };
}

/// `println!` that never panics (see [`write_or_exit`]).
macro_rules! outln {
    () => { out!("\n") };
    ($($arg:tt)*) => { out!("{}\n", format_args!($($arg)*)) };
}

/// `eprintln!` that never panics (see [`write_or_exit`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        write_or_exit(Stream::Stderr, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// The command line; clap's help and usage errors are printed as
/// everything else is, so a closed pipe ends them quietly too.
fn command_line() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Err(io) = e.print() {
                let stream = if e.use_stderr() { Stream::Stderr } else { Stream::Stdout };
                exit_on_write_error(stream, &io);
            }
            std::process::exit(e.exit_code());
        }
    }
}

fn main() -> ExitCode {
    match command_line().command {
        Command::Appdisk { dir, image } => match appdisk::build(&dir, &image) {
            Ok(s) => {
                let mib = s.blocks as f64 * 4096.0 / (1 << 20) as f64;
                outln!("{}: {} files in {} folders, {} blocks ({mib:.1} MiB)", image.display(), s.files, s.folders, s.blocks);
                if let Some(first) = s.wide_names.first() {
                    let more = match s.wide_names.len() {
                        1 => String::new(),
                        n => format!(" and {} more", n - 1),
                    };
                    errln!(
                        "note: '{first}'{more} has characters outside Unicode's Basic Multilingual Plane (an emoji, say): the content disk stores them as FAT does (UTF-16 pairs) and Linux shows them, but mtools 4.0 extracts them as '_'"
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                errln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Verify { system, search_path, image, kernel, allow_pmu_user } => {
            let sd = match parse_expanded(&system, &search_path) {
                Ok(sd) => sd,
                Err(errors) => return fail(&errors),
            };
            let extents = program_extents(&sd, &search_path);
            let analysis = verify::analyse(&sd, extents.as_deref());
            out!("{}", analysis.report());
            let mut ok = analysis.ok();
            for v in analysis.violations() {
                errln!("violation: {v}");
            }
            if let (Some(image), Some(kernel)) = (image, kernel) {
                ok &= check_image(&sd, &image, &kernel, &search_path, allow_pmu_user);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Graph { system, search_path } => match parse_expanded(&system, &search_path) {
            Ok(sd) => {
                out!("{}", verify::dot(&sd));
                ExitCode::SUCCESS
            }
            Err(errors) => fail(&errors),
        },
        Command::Check { system, search_path } => match parse_expanded(&system, &search_path) {
            Ok(_) => {
                outln!("ok");
                ExitCode::SUCCESS
            }
            Err(errors) => fail(&errors),
        },
        Command::Expand { system, search_path } => match parse_expanded(&system, &search_path) {
            Ok(sd) => {
                out!("{}", sdf::to_xml(&sd));
                ExitCode::SUCCESS
            }
            Err(errors) => fail(&errors),
        },
        Command::Build { system, kernel, search_path, output, report, pmu_user } => {
            let sd = match parse_expanded(&system, &search_path) {
                Ok(sd) => sd,
                Err(errors) => return fail(&errors),
            };
            let opts = image::Options { kernel, search_path, pmu_user };
            let built = match image::build(&sd, &opts) {
                Ok(b) => b,
                Err(errors) => return fail(&errors),
            };
            let report_path = report.unwrap_or_else(|| output.with_extension("report.txt"));
            if let Err(e) = write_whole(&output, &built.elf) {
                errln!("error: cannot write image '{}': {e}", output.display());
                return ExitCode::FAILURE;
            }
            if let Err(e) = write_whole(&report_path, report::report(&sd, &built).as_bytes()) {
                errln!("error: cannot write report '{}': {e}", report_path.display());
                return ExitCode::FAILURE;
            }
            outln!("{}", output.display());
            ExitCode::SUCCESS
        }
    }
}

/// Write `bytes` to `path` whole: into a file of its own beside it, then
/// renamed over it, so a QEMU already loading the old image (another
/// `make run` of the same system) never reads a half-written one.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Read `image` back and compare what it grants with `sd`; prints the
/// outcome, returns whether the image matches.
fn check_image(sd: &sdf::SystemDescription, image: &std::path::Path, kernel: &std::path::Path, search_path: &[PathBuf], allow_pmu_user: bool) -> bool {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("error: cannot read '{}': {e}", p.display()));
    let base = std::path::Path::new(&sd.file).parent().unwrap_or(std::path::Path::new("."));
    let inputs = (|| {
        let mut programs = Vec::new();
        for pd in &sd.protection_domains {
            let path = image::find_program(&pd.program_image, base, search_path)
                .ok_or_else(|| format!("error: program image '{}' of pd '{}' not found (give --search-path)", pd.program_image, pd.name))?;
            programs.push(read(&path)?);
        }
        Ok::<_, String>((read(image)?, read(kernel)?, programs))
    })();
    let (image_bytes, kernel_elf, programs) = match inputs {
        Ok(i) => i,
        Err(e) => {
            errln!("{e}");
            return false;
        }
    };
    let inputs = imagecheck::Inputs { image: &image_bytes, kernel_elf: &kernel_elf, programs };
    let findings = imagecheck::check_with(sd, &inputs, &imagecheck::Options { allow_pmu_user });
    outln!();
    if findings.is_empty() {
        outln!("image {}: grants exactly what the system declares ({} PDs)", image.display(), sd.protection_domains.len());
        return true;
    }
    outln!("image {}: {} differences from the system", image.display(), findings.len());
    for f in &findings {
        errln!("image: {f}");
    }
    false
}

/// Parse and validate the file, expand its storage declarations (reading
/// filter programs from `search_path`) and validate the result.
fn parse_expanded(path: &std::path::Path, search_path: &[PathBuf]) -> Result<sdf::SystemDescription, Vec<sdf::Error>> {
    let sd = sdf::parse_file(path)?;
    let programs = Programs::for_system(&sd, search_path);
    let expanded = storage::expand_validated_with(&sd, &programs)?;
    for w in storage::warnings(&sd, &programs) {
        errln!("warning: {} at {}:{}:{}", w.message, w.file, w.line, w.col);
    }
    Ok(expanded)
}

fn fail(errors: &[sdf::Error]) -> ExitCode {
    for e in errors {
        errln!("{e}");
    }
    ExitCode::FAILURE
}
