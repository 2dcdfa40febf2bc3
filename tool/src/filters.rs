//! Filters as the storage expansion sees them: each `<filter>` of a disk's
//! chain with what its program declares about itself (its manifest, see
//! `blk::filter::Manifest`), read from the program image.
//!
//! The manifest says which hooks and operations the filter wants (the
//! server calls it for nothing else), the `<param>`s it takes (any other is
//! an error at the param) and the size of its bounce buffer. It is read
//! from the `.strata_filter` section of the program, found as `build`
//! finds programs: as written, next to the system file, or in the search
//! path. Without the program (a system checked before its components are
//! built) the expansion assumes every hook and operation, no bounce buffer,
//! and does not check params; `build` then needs the program anyway. Where
//! the components are built, a filter program missing is warned of (a
//! misspelt name: `storage::warnings`).

use std::path::{Path, PathBuf};

use blk::filter::{Hook, Manifest};
use object::{Object, ObjectSection};
use sdf::{DataAccess, Disk, Filter, SystemDescription};

use crate::image::find_program;

/// Where program images are looked for.
#[derive(Clone, Debug, Default)]
pub struct Programs {
    /// The system file's directory.
    pub base: PathBuf,
    pub search_path: Vec<PathBuf>,
}

/// The build directory of the components, relative to the project root:
/// the default search path when none is given.
pub const DEFAULT_SEARCH_PATH: &str = "target/aarch64-unknown-none/system";

impl Programs {
    /// The programs of `sd`: next to its file, then in `search_path`, or,
    /// if that is empty, in the nearest [`DEFAULT_SEARCH_PATH`] above the
    /// system file or the working directory (the project's build output,
    /// wherever in the project the file is).
    pub fn for_system(sd: &SystemDescription, search_path: &[PathBuf]) -> Programs {
        let base = Path::new(&sd.file).parent().unwrap_or(Path::new(".")).to_path_buf();
        let search_path = if search_path.is_empty() { default_search_path(&base) } else { search_path.to_vec() };
        Programs { base, search_path }
    }

    /// The manifest of program `name`: `Ok(None)` if the program is not
    /// found, an error if it is found and has no readable manifest.
    pub fn manifest(&self, name: &str) -> Result<Option<Declared>, String> {
        let Some(path) = find_program(name, &self.base, &self.search_path) else { return Ok(None) };
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        let file = object::File::parse(&*bytes).map_err(|e| format!("'{}' is not an ELF file: {e}", path.display()))?;
        let section = file.section_by_name(".strata_filter").ok_or_else(|| {
            format!("'{}' declares no filter manifest (section .strata_filter): is it a filter program?", path.display())
        })?;
        let data = section.data().map_err(|e| format!("'{}': {e}", path.display()))?;
        let m = Manifest::parse(data).map_err(|e| format!("'{}': the filter manifest is malformed: {e}", path.display()))?;
        Ok(Some(Declared {
            hooks: m.hooks,
            ops: m.ops,
            params: Some(m.params.iter().map(|p| p.to_string()).collect()),
            bounce: m.bounce,
            caches: m.caches,
            pre_ops: m.pre_ops,
            post_ops: m.post_ops,
            needs: m.needs.iter().map(|p| p.to_string()).collect(),
            links: m.links,
            restart: m.restart,
            budget: m.budget,
            block_us: m.block_us,
            min_budget: m.min_budget,
            keeps: m.keeps.map(str::to_string),
            linked: match m.linked {
                0 => None,
                r if r & blk::filter::DATA_WRITE == 0 => Some(DataAccess::Read),
                _ => Some(DataAccess::ReadWrite),
            },
            data: match m.data {
                0 => DataAccess::None,
                r if r & blk::filter::DATA_WRITE == 0 => DataAccess::Read,
                _ => DataAccess::ReadWrite,
            },
        }))
    }
}

/// [`DEFAULT_SEARCH_PATH`] in the nearest directory above `base` (then
/// above the working directory) that has it.
fn default_search_path(base: &Path) -> Vec<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let starts = [std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf()), cwd];
    starts
        .iter()
        .flat_map(|start| start.ancestors().map(|dir| dir.join(DEFAULT_SEARCH_PATH)))
        .find(|dir| dir.is_dir())
        .into_iter()
        .collect()
}

/// What a filter's program declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    pub hooks: u8,
    pub ops: u8,
    /// The params it takes; `None`: unknown (program not found).
    pub params: Option<Vec<String>>,
    pub bounce: u64,
    /// It keeps copies of blocks from below (see `Manifest::caches`).
    pub caches: bool,
    /// The operations its pre-op and post-op are for (`Manifest::pre_ops`).
    pub pre_ops: u8,
    pub post_ops: u8,
    /// The params it cannot start without, and the least data rights it
    /// works with (`Manifest::needs`, `Manifest::data`).
    pub needs: Vec<String>,
    pub data: DataAccess,
    /// How many `<link>`s it works with, if it says (`Manifest::links`).
    pub links: Option<u8>,
    /// Whether a restart keeps its promises (`Manifest::restart`).
    pub restart: bool,
    /// Its upcalls' budget unless declared (`Manifest::budget`).
    pub budget: Option<u64>,
    /// What a block of request data costs it in an upcall, and the least
    /// budget it works with (`Manifest::block_us`, `Manifest::min_budget`).
    pub block_us: u64,
    pub min_budget: Option<u64>,
    /// What it keeps on the disk below it, and what it does to its linked
    /// disks, if it says (`Manifest::keeps`, `Manifest::linked`).
    pub keeps: Option<String>,
    pub linked: Option<DataAccess>,
}

// (The manifest's data rights are the kernel's grant rights.)
const _: () = assert!(blk::filter::DATA_READ == abi::GRANT_READ && blk::filter::DATA_WRITE == abi::GRANT_WRITE);

impl Declared {
    /// What is assumed of a program not found.
    pub fn unknown() -> Declared {
        Declared {
            hooks: Hook::Pre.bit() | Hook::Post.bit(),
            ops: 0xff,
            params: None,
            bounce: 0,
            caches: false,
            pre_ops: 0xff,
            post_ops: 0xff,
            needs: Vec::new(),
            data: DataAccess::None,
            links: None,
            restart: true,
            budget: None,
            block_us: 0,
            min_budget: None,
            keeps: None,
            linked: None,
        }
    }
}

/// One filter of one disk's chain, ready to expand.
#[derive(Clone, Debug)]
pub struct PlannedFilter {
    /// Its number among all filters (declaration order): the server's
    /// index, its channel and child id.
    pub index: usize,
    pub disk: usize,
    pub position: usize,
    pub decl: Filter,
    pub declared: Declared,
}

impl PlannedFilter {
    /// The grant rights its `data` gives.
    pub fn rights(&self) -> u8 {
        grant_rights(self.decl.data)
    }
}

/// The grant rights `data` stands for.
fn grant_rights(data: DataAccess) -> u8 {
    match data {
        DataAccess::None => 0,
        DataAccess::Read => abi::GRANT_READ,
        DataAccess::ReadWrite => abi::GRANT_READ | abi::GRANT_WRITE,
    }
}

/// Every filter of every disk, in declaration order, with its program's
/// manifest; errors with the position of the element at fault (`at`).
pub fn plan(disks: &[Disk], programs: &Programs, mut at: impl FnMut(sdf::Pos, String)) -> Vec<PlannedFilter> {
    let mut out = Vec::new();
    for (d, disk) in disks.iter().enumerate() {
        for (position, f) in disk.filters.iter().enumerate() {
            let declared = match programs.manifest(&f.program) {
                Ok(Some(m)) => m,
                Ok(None) => Declared::unknown(),
                Err(e) => {
                    at(f.pos, format!("filter '{}': program '{}': {e}", f.name, f.program));
                    Declared::unknown()
                }
            };
            if let Some(takes) = &declared.params {
                for p in f.params.iter().filter(|p| !takes.contains(&p.key)) {
                    let what = if takes.is_empty() { "it takes no params".to_string() } else { format!("it takes {}", takes.join(", ")) };
                    at(p.pos, format!("filter '{}' (program '{}') takes no param '{}': {what}", f.name, f.program, p.key));
                }
            }
            let given: Vec<(&str, &str)> = f.params.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
            let writes = grant_rights(f.data) & abi::GRANT_WRITE != 0;
            for (key, why) in crate::params::check(&f.program, &given, writes) {
                let pos = f.params.iter().find(|p| p.key == key).map_or(f.pos, |p| p.pos);
                at(pos, format!("filter '{}' (program '{}'): param '{key}': {why}", f.name, f.program));
            }
            for need in declared.needs.iter().filter(|n| !f.params.iter().any(|p| &p.key == *n)) {
                at(f.pos, format!("filter '{}' (program '{}') cannot start without its '{need}': add <param key=\"{need}\" value=\"...\"/>", f.name, f.program));
            }
            if grant_rights(declared.data) & !grant_rights(f.data) != 0 {
                at(f.pos, format!("filter '{}' (program '{}') needs data=\"{}\" (it has data=\"{}\"): declare it so", f.name, f.program, declared.data, f.data));
            }
            if !declared.restart && f.on_fault == sdf::OnFault::Restart {
                at(
                    f.pos,
                    format!(
                        "filter '{}' (program '{}') cannot be restarted: its memory holds what its disk does not yet \
                         (since the last flush), which a restart would lose while the clients go on; declare \
                         on_fault=\"fail\"",
                        f.name, f.program
                    ),
                );
            }
            if let (Some(least), Some(budget)) = (declared.min_budget, f.budget) {
                if budget < least {
                    at(
                        f.pos,
                        format!(
                            "filter '{}' (program '{}') needs a budget of at least {least} us (its setup's steps take up \
                             to that; it has {budget}): give it budget=\"{least}\" or more, or leave budget out",
                            f.name, f.program
                        ),
                    );
                }
            }
            // (A program that takes none: a warning, `storage::warnings`.)
            if let Some(n) = declared.links.filter(|&n| n > 0 && usize::from(n) != f.links.len()) {
                let (f_name, program, has) = (&f.name, &f.program, f.links.len());
                at(f.pos, match n {
                    n if has > usize::from(n) => format!("filter '{f_name}' (program '{program}') needs exactly {n} <link disk=\"...\"/> (it has {has}): remove the others"),
                    n => format!("filter '{f_name}' (program '{program}') needs exactly {n} <link disk=\"...\"/> (it has {has}): name the disk{} it links to", if n == 1 { "" } else { "s" }),
                });
            }
            out.push(PlannedFilter { index: out.len(), disk: d, position, decl: f.clone(), declared });
        }
    }
    out
}
