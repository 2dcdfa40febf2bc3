//! Every system file of this repository, mutated thousands of ways (lines
//! dropped, doubled, swapped or cut short; attribute values and names
//! replaced; storage elements put where they may or may not belong): the
//! tool's check path (parse, expand, warnings, and on success the
//! verifier's analysis, report and drawing) never panics, and every error
//! is one line that says where: `error: ... at file:line:col` inside the
//! file (or `error: ... (in file)` about the file as a whole).
//!
//! Where `make` has built the kernel and the PDs (`make test` does, before
//! the tests run), one accepted mutant in [`BUILD_EVERY`] is also built
//! into an image with them, as `strata build` does, and the image checked
//! against it, as `strata verify --image` does: it must grant exactly what
//! the mutant declares.
//!
//! The filter programs are this repository's own, their manifests read from
//! their sources (`blk::filter_manifest!` in `filters/*/src/bin`), so the
//! params each takes and the links it needs are the real ones, and so are
//! the filters' param parsers the check runs (`tool::params`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tool::elf::ElfImage;
use tool::filters::Programs;

/// How many mutants of each file (a seeded generator: every run tries the
/// same ones). `MUTANTS=3000 cargo test -p tool --test mutated_systems`
/// tries more (about three minutes).
const MUTANTS_PER_FILE: usize = 160;

fn mutants() -> usize {
    std::env::var("MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(MUTANTS_PER_FILE)
}

/// One accepted mutant in this many is built and its image checked.
const BUILD_EVERY: usize = 8;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The system files: everything under `examples/`, `tests/systems/` and
/// `bench/`, and the default system.
fn corpus() -> Vec<(String, String)> {
    let root = root();
    let mut files = vec![root.join("system.xml")];
    for dir in ["examples", "tests/systems", "bench"] {
        let mut found: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "xml")).collect();
        found.sort();
        files.extend(found);
    }
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())).collect()
}

/// The fields of each `blk::filter_manifest!(...)` in `filters/*/src/bin`:
/// (program name, fields).
fn manifests() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for filter in std::fs::read_dir(root().join("filters")).unwrap() {
        let bin = filter.unwrap().path().join("src/bin");
        let Ok(entries) = std::fs::read_dir(&bin) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            let Some(start) = source.find("filter_manifest!(") else { continue };
            let args = &source[start..source[start..].find(')').map(|e| start + e).unwrap()];
            let fields = args.split('"').skip(1).step_by(2).map(str::to_string).collect();
            out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), fields));
        }
    }
    assert!(out.len() >= 9, "the manifests of the repository's filters: {out:?}");
    out
}

/// A directory of minimal ELF files, one per filter program, each with
/// its manifest section (the bytes `filter_manifest!` puts there).
fn programs() -> Programs {
    use object::write::Object;
    let dir = std::env::temp_dir().join(format!("strata-mutated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, fields) in manifests() {
        let bytes = manifest_bytes(&fields);
        let mut obj = Object::new(object::BinaryFormat::Elf, object::Architecture::Aarch64, object::Endianness::Little);
        let section = obj.add_section(Vec::new(), b".strata_filter".to_vec(), object::SectionKind::Metadata);
        obj.append_section_data(section, &bytes, 1);
        std::fs::write(dir.join(&name), obj.write().unwrap()).unwrap();
    }
    Programs { base: PathBuf::from("."), search_path: vec![dir] }
}

/// The manifest's bytes as `blk::filter::manifest_bytes` lays them out
/// (a const fn of a fixed size; here the size is known at run time only).
fn manifest_bytes(fields: &[String]) -> Vec<u8> {
    let mut text = String::from(blk::filter::Manifest::MAGIC);
    text.push('\0');
    for f in fields {
        text.push_str(f);
        text.push('\0');
    }
    text.into_bytes()
}

/// xorshift64*: small, seeded, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "0x",
    "0x1000",
    "18446744073709551616",
    "99999999999999999999999",
    "255",
    "256",
    "none",
    "read",
    "read-write",
    "write",
    "fail",
    "restart",
    "true",
    "false",
    "disk0",
    "disk1",
    "disk9",
    "crypt0",
    "cache0",
    "integrity0",
    "ro0",
    "filter_passthrough",
    "filter_crypt",
    "filter_overlay",
    "filter_mirror",
    "filter_faulty",
    "filter_cache",
    "blk_server",
    "virtio_blk",
    "fail read 0..10",
    "corrupt read 5..6 count=1",
    "fail write 0.. p=0.5",
    "x=y=z",
    "4k",
    "64M",
    "999999999999T",
    "ü€",
    "&amp;&lt;",
    " spaced value ",
    "a\tb",
];

const NAMES: &[&str] = &[
    "name", "program", "data", "priority", "budget", "on_fault", "key", "value", "disk", "at", "virtio_slot", "size", "partition", "capacity", "direct", "pages", "page_size", "phys_addr", "path",
];

const ELEMENTS: &[&str] = &[
    r#"<filter name="f9" program="filter_passthrough" data="none" />"#,
    r#"<filter name="ro9" program="filter_readonly" data="none"><param key="blocks" value="0-9" /></filter>"#,
    r#"<filter name="ov9" program="filter_overlay" data="read-write"><link disk="disk0" /></filter>"#,
    r#"<filter name="mi9" program="filter_mirror" data="none"><link disk="disk1" /></filter>"#,
    r#"<filter name="cr9" program="filter_crypt" data="read-write"><param key="passphrase" value="p" /></filter>"#,
    r#"<filter name="ca9" program="filter_cache" data="read-write"><param key="size" value="1M" /></filter>"#,
    r#"<filter name="fa9" program="filter_faulty" data="read-write"><param key="rules" value="fail read 0..3" /></filter>"#,
    r#"<link disk="disk0" />"#,
    r#"<link disk="disk1" />"#,
    r#"<param key="rules" value="fail write 0.." />"#,
    r#"<param key="nope" value="1" />"#,
    r#"<block_client disk="disk0" />"#,
    r#"<block_client disk="disk0" at="ro9" />"#,
    r#"<block_client disk="disk1" at="crypt0" />"#,
    r#"<disk name="disk7" virtio_slot="27" />"#,
    r#"<disk name="disk0" virtio_slot="31" />"#,
    "</disk>",
    "</filter>",
    "<filter>",
    "<!--",
];

/// One mutant of `text`: one to three edits.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(9) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Cut the file short, mid-line.
                lines.truncate(i + 1);
                let cut = rng.below(lines[i].len() + 1);
                let cut = (0..=cut).rev().find(|&c| lines[i].is_char_boundary(c)).unwrap_or(0);
                lines[i].truncate(cut);
            }
            4 | 5 => {
                // An attribute value replaced.
                let quotes: Vec<usize> = lines[i].match_indices('"').map(|(k, _)| k).collect();
                if quotes.len() >= 2 {
                    let q = rng.below(quotes.len() / 2) * 2;
                    let value = rng.pick(VALUES).replace('"', "&quot;");
                    lines[i].replace_range(quotes[q] + 1..quotes[q + 1], &value);
                }
            }
            6 => {
                // An attribute name replaced.
                if let Some(eq) = lines[i].match_indices("=\"").map(|(k, _)| k).nth(0) {
                    let start = lines[i][..eq].rfind(' ').map_or(eq, |s| s + 1);
                    let name = rng.pick(NAMES);
                    lines[i].replace_range(start..eq, name);
                }
            }
            _ => {
                let element = rng.pick(ELEMENTS);
                lines.insert(i, (*element).to_string());
            }
        }
    }
    lines.join("\n")
}

/// Whether `message` is one of the tool's error lines about `file` of
/// `lines` lines.
fn well_formed(message: &str, file: &str, lines: usize) -> bool {
    if message.contains('\n') || !message.starts_with("error: ") {
        return false;
    }
    if message.ends_with(&format!(" (in {file})")) {
        return true;
    }
    let Some(at) = message.rfind(&format!(" at {file}:")) else { return false };
    let place: Vec<&str> = message[at + file.len() + 5..].split(':').collect();
    match place[..] {
        [line, col] => line.parse::<usize>().is_ok_and(|l| (1..=lines + 1).contains(&l)) && col.parse::<usize>().is_ok_and(|c| c >= 1),
        _ => false,
    }
}

/// The kernel and the PDs as `make` built them, read once each.
struct Built {
    kernel: ElfImage,
    kernel_bytes: Vec<u8>,
    search_path: Vec<PathBuf>,
    programs: RefCell<HashMap<PathBuf, (Vec<u8>, ElfImage)>>,
}

impl Built {
    /// `None` if the kernel has not been built.
    fn load() -> Option<Built> {
        let target = root().join("target");
        let kernel_bytes = std::fs::read(target.join("aarch64-unknown-none-softfloat/system/kernel")).ok()?;
        let search_path = vec![target.join("aarch64-unknown-none/system")];
        search_path[0].join("blk_server").is_file().then_some(())?;
        Some(Built { kernel: ElfImage::parse(&kernel_bytes).unwrap(), kernel_bytes, search_path, programs: RefCell::default() })
    }

    /// Build `sd` (expanded) into an image and check the image against
    /// it: what the check found (`None`: a program the mutant names was
    /// never built), or the build's errors.
    fn build_and_check(&self, sd: &sdf::SystemDescription) -> Result<Option<Vec<String>>, Vec<String>> {
        let mut programs = Vec::new();
        let mut cache = self.programs.borrow_mut();
        for pd in &sd.protection_domains {
            let Some(path) = tool::image::find_program(&pd.program_image, Path::new("."), &self.search_path) else { return Ok(None) };
            let (bytes, elf) = cache.entry(path.clone()).or_insert_with(|| {
                let bytes = std::fs::read(&path).unwrap();
                let elf = ElfImage::parse(&bytes).unwrap();
                (bytes, elf)
            });
            programs.push((path, elf.clone(), bytes.clone()));
        }
        let elfs: Vec<_> = programs.iter().map(|(path, elf, _)| (path.clone(), elf.clone())).collect();
        let built = tool::image::build_from(sd, &self.kernel, &elfs, false).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let inputs = imagecheck::Inputs { image: &built.elf, kernel_elf: &self.kernel_bytes, programs: programs.into_iter().map(|(_, _, bytes)| bytes).collect() };
        Ok(Some(imagecheck::check(sd, &inputs).iter().map(ToString::to_string).collect()))
    }
}

/// What checking `text` as `file` says: Ok (with the image's findings
/// if it was built: `build` is given and has every program), or the error
/// lines.
fn check(file: &str, text: &str, programs: &Programs, build: Option<&Built>) -> Result<Option<Vec<String>>, Vec<String>> {
    let sd = sdf::parse(file, text).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let _ = tool::storage::warnings(&sd, programs);
    let expanded = tool::storage::expand_validated_with(&sd, programs).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let analysis = verify::analyse(&expanded, None);
    let _ = analysis.report();
    let _ = analysis.violations();
    let _ = verify::dot(&expanded);
    let _ = sdf::to_xml(&expanded);
    match build {
        Some(built) => built.build_and_check(&expanded),
        None => Ok(None),
    }
}

#[test]
fn mutated_system_files_get_error_lines_that_say_where_and_never_a_panic() {
    let programs = programs();
    let built = Built::load();
    if built.is_none() {
        eprintln!("(no kernel and PDs built in target/: images not built or checked; `make test` builds them first)");
    }
    let corpus = corpus();
    assert!(corpus.len() >= 30, "the repository's system files");
    // Every file as it is checks without a panic too (some are meant to
    // fail: tests/systems/storage-bad.xml, cache-bad.xml).
    let (mut accepted, mut refused, mut images, mut bad) = (0, 0, 0, Vec::new());
    for (n, (file, text)) in corpus.iter().enumerate() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1) * 0x1000_0001);
        for m in 0..=mutants() {
            let mutant = if m == 0 { text.clone() } else { mutate(text, &mut rng) };
            let lines = mutant.lines().count();
            // (The cache of programs is only read from, or filled whole.)
            let build = built.as_ref().filter(|_| accepted % BUILD_EVERY == 0);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(file, &mutant, &programs, build))) {
                Ok(Ok(findings)) => {
                    accepted += 1;
                    images += usize::from(findings.is_some());
                    if let Some(findings) = findings.filter(|f| !f.is_empty()) {
                        bad.push(format!("{file} mutant {m}: its image differs from it: {}\n{mutant}", findings.join("; ")));
                    }
                }
                Ok(Err(errors)) => {
                    refused += 1;
                    assert!(!errors.is_empty());
                    for e in errors.iter().filter(|e| !well_formed(e, file, lines)) {
                        bad.push(format!("{file} mutant {m}: {e}"));
                    }
                }
                Err(_) => bad.push(format!("{file} mutant {m}: PANIC\n{mutant}")),
            }
        }
    }
    assert!(bad.is_empty(), "{} of {} checks went wrong; the first:\n{}", bad.len(), accepted + refused, bad[..bad.len().min(5)].join("\n"));
    // The mutants must test both sides: many still valid, many refused.
    let total = accepted + refused;
    eprintln!("accepted {accepted} (of them built and checked: {images}), refused {refused}");
    assert!(accepted > total / 10 && refused > total / 3, "accepted {accepted}, refused {refused}");
    assert!(built.is_none() || images > accepted / BUILD_EVERY / 2, "images built and checked: {images}");
}
