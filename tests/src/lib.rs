//! Helpers for end-to-end tests: build an image from a system description
//! with the tool, boot it in QEMU (through `scripts/qemu.sh`, as `make run`
//! does), collect the console lines, and stop QEMU on a timeout.
//!
//! The aarch64 parts (kernel, components) must be built first; `make test`
//! does that before it runs the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

pub mod host_tool;

/// A command running the host tool `name` (from the Debian package
/// `package`, which the setup script installs), wherever it is.
pub fn host_command(name: &str, package: &str) -> Command {
    Command::new(host_tool::find_tool(name, package))
}

/// Run `c` with `stdin` as its input; it must succeed (its stderr in the
/// message if not).
pub fn run_host(mut c: Command, stdin: &[u8]) {
    use std::io::Write;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `make` in the project root, as a user types it (not under the make
/// that may be running these tests: its jobserver is not ours), given 10
/// minutes at most.
pub fn make(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("600")
        .arg("make")
        .args(args)
        .current_dir(root())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("run make")
}

/// Build the image of `system` (a path relative to the project root) and
/// return its path. `pmu_user` lets PDs read the performance counters.
/// Each image is built once per test process, so tests running in parallel
/// never write the same file.
pub fn build_image(system: &str, pmu_user: bool) -> PathBuf {
    static BUILT: Mutex<Vec<(String, bool, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, path)) = built.iter().find(|(s, p, _)| s == system && *p == pmu_user) {
        return path.clone();
    }
    let path = build_image_uncached(system, pmu_user);
    built.push((system.to_string(), pmu_user, path.clone()));
    path
}

fn build_image_uncached(system: &str, pmu_user: bool) -> PathBuf {
    let root = root();
    let kernel = root.join("target/aarch64-unknown-none-softfloat/system/kernel");
    let pd_dir = root.join("target/aarch64-unknown-none/system");
    assert!(kernel.is_file(), "{} is missing: run `make test`, which builds the aarch64 parts first", kernel.display());
    let programs = |sd: &sdf::SystemDescription| tool::filters::Programs::for_system(sd, std::slice::from_ref(&pd_dir));
    let sd = sdf::parse_file(&root.join(system))
        .and_then(|sd| tool::storage::expand_validated_with(&sd, &programs(&sd)))
        .unwrap_or_else(|errors| panic!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")));
    let opts = tool::image::Options { kernel, search_path: vec![pd_dir], pmu_user };
    let built = tool::image::build(&sd, &opts).unwrap_or_else(|errors| {
        panic!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    });
    let out = root.join("build/e2e");
    std::fs::create_dir_all(&out).unwrap();
    let name = Path::new(system).file_stem().unwrap().to_string_lossy().to_string();
    let image = out.join(format!("{name}{}.elf", if pmu_user { "-pmu" } else { "" }));
    std::fs::write(&image, &built.elf).unwrap();
    image
}

/// What a boot printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub lines: Vec<String>,
    /// QEMU's exit status, `None` if it was stopped.
    pub status: Option<i32>,
    pub timed_out: bool,
}

impl Run {
    /// The console, for failure messages.
    pub fn transcript(&self) -> String {
        self.lines.join("\n")
    }

    /// Index of the first line equal to `line`; panics with the transcript
    /// if there is none.
    pub fn expect_line(&self, line: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("missing line {line:?}\n--- console ---\n{}", self.transcript()))
    }

    /// Index of the first line starting with `prefix`.
    pub fn expect_prefix(&self, prefix: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?}\n--- console ---\n{}", self.transcript()))
    }

    /// The lines a PD printed: those starting `<pd>: `, without the prefix.
    pub fn lines_of(&self, pd: &str) -> Vec<&str> {
        let prefix = format!("{pd}: ");
        self.lines.iter().filter_map(|l| l.strip_prefix(&prefix)).collect()
    }

    /// Assert the lines appear in this order (not necessarily adjacent).
    pub fn expect_in_order(&self, lines: &[&str]) {
        let mut from = 0;
        for line in lines {
            match self.lines[from..].iter().position(|l| l == line) {
                Some(i) => from += i + 1,
                None => panic!("missing {line:?} (in order)\n--- console ---\n{}", self.transcript()),
            }
        }
    }
}

/// The disk image files a boot attaches (disk0 in virtio-mmio slot 31,
/// disk1 in slot 30, disk2 in slot 29), made fresh by `scripts/mkdisk.sh`:
/// 64 MiB, an MBR with partition 1 at sector 2048 and partition 2 at
/// sector 65536. Each test gets its own, since QEMU locks an image it has
/// open.
pub struct Disks {
    pub dir: PathBuf,
    pub paths: Vec<PathBuf>,
    /// What QEMU puts between each disk's device and its image (each
    /// setter below replaces what an earlier one set for that disk).
    between: Vec<Between>,
}

/// QEMU block filters between a disk's device and its image.
enum Between {
    Nothing,
    /// Error injection: a blkdebug rules file.
    Faults(PathBuf),
    /// Attached read-only: the device tells the driver so.
    ReadOnly,
    /// A throttle (`limit`: a throttle group's property, such as
    /// `x-iops-read=200`) and, above it, error injection if `rules` says.
    Throttle { limit: String, rules: Option<PathBuf> },
    /// Not attached at all: the disk's virtio-mmio slot stays empty.
    Detached,
}

impl Disks {
    /// Two disks.
    pub fn fresh() -> Disks {
        Disks::fresh_n(2)
    }

    /// `count` disks.
    pub fn fresh_n(count: usize) -> Disks {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = root().join(format!("build/e2e/disks/{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<PathBuf> = (0..count).map(|d| dir.join(format!("disk{d}.img"))).collect();
        for p in &paths {
            let ok = Command::new(root().join("scripts/mkdisk.sh")).arg(p).status().is_ok_and(|s| s.success());
            assert!(ok, "scripts/mkdisk.sh {} failed", p.display());
        }
        let between = (0..count).map(|_| Between::Nothing).collect();
        Disks { dir, paths, between }
    }

    /// Have QEMU fail what `rules` says on `disk` (blkdebug's rules file
    /// format: an `[inject-error]` section with `event`, `errno`, `once`).
    pub fn inject(&mut self, disk: usize, rules: &str) {
        self.between[disk] = Between::Faults(self.rules_file(disk, rules));
    }

    /// [`inject`](Self::inject) above a throttle that lets `disk`'s reads
    /// through at `reads_per_second` (a burst of a tenth of that at once):
    /// a request the rules fail is answered at once, while reads the device
    /// took before it still wait.
    pub fn inject_over_slow_reads(&mut self, disk: usize, rules: &str, reads_per_second: u32) {
        let rules = Some(self.rules_file(disk, rules));
        self.between[disk] = Between::Throttle { limit: format!("x-iops-read={reads_per_second}"), rules };
    }

    /// Have QEMU let `disk`'s writes through at `writes_per_second` (a
    /// burst of a tenth of that at once), so writing takes a known time at
    /// least. (Unless QEMU merges adjacent requests into one, which the
    /// QEMU argument `-global virtio-blk-device.request-merging=off` stops.)
    pub fn slow_writes(&mut self, disk: usize, writes_per_second: u32) {
        self.between[disk] = Between::Throttle { limit: format!("x-iops-write={writes_per_second}"), rules: None };
    }

    /// Have QEMU attach `disk` read-only: its device offers the read-only
    /// feature and fails writes.
    pub fn read_only(&mut self, disk: usize) {
        self.between[disk] = Between::ReadOnly;
    }

    fn rules_file(&self, disk: usize, rules: &str) -> PathBuf {
        let path = self.dir.join(format!("disk{disk}.blkdebug"));
        std::fs::write(&path, rules).unwrap();
        path
    }

    /// `$DISKS` for `scripts/qemu.sh`.
    fn qemu_list(&self) -> String {
        let entry = |(d, (path, between)): (usize, (&PathBuf, &Between))| match between {
            Between::Nothing => path.display().to_string(),
            Between::Faults(rules) => format!("blkdebug:{}:{}", rules.display(), path.display()),
            Between::ReadOnly | Between::Throttle { .. } => format!("blockdev:disk{d}"),
            Between::Detached => String::new(),
        };
        let entries = self.paths.iter().zip(&self.between).enumerate().map(entry).filter(|e| !e.is_empty());
        entries.collect::<Vec<_>>().join(" ")
    }

    /// QEMU arguments that build the block nodes `blockdev:` entries of
    /// [`qemu_list`](Self::qemu_list) name: image file, throttle (in a
    /// throttle group of its own), blkdebug if asked, raw format, from the
    /// bottom up; or image file and raw format, both read-only.
    fn qemu_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (d, (path, between)) in self.paths.iter().zip(&self.between).enumerate() {
            // A comma in a QEMU option value is written twice.
            let value = |p: &Path| p.display().to_string().replace(',', ",,");
            let file = format!("driver=file,filename={},node-name=disk{d}-file", value(path));
            let nodes = match between {
                Between::Nothing | Between::Faults(_) | Between::Detached => continue,
                Between::ReadOnly => {
                    vec![format!("{file},read-only=on"), format!("driver=raw,file=disk{d}-file,node-name=disk{d},read-only=on")]
                }
                Between::Throttle { limit, rules } => {
                    args.extend(["-object".to_string(), format!("throttle-group,id=disk{d}-limit,{limit}")]);
                    let mut nodes =
                        vec![file, format!("driver=throttle,throttle-group=disk{d}-limit,file=disk{d}-file,node-name=disk{d}-slow")];
                    let mut top = format!("disk{d}-slow");
                    if let Some(rules) = rules {
                        nodes.push(format!("driver=blkdebug,config={},image={top},node-name=disk{d}-faulty", value(rules)));
                        top = format!("disk{d}-faulty");
                    }
                    nodes.push(format!("driver=raw,file={top},node-name=disk{d}"));
                    nodes
                }
            };
            for node in nodes {
                args.extend(["-blockdev".to_string(), node]);
            }
        }
        args
    }

    /// Give QEMU no device for disk1 (disks are attached in order, so only
    /// the last can be left out): its slot stays empty, as when `make run`
    /// is given fewer images than the system declares disks.
    pub fn detach_disk1(&mut self) {
        self.between[1] = Between::Detached;
    }

    /// Make `disk`'s image blank: `bytes` bytes of zeros, a sparse file,
    /// no partition table (what `scripts/qemu.sh` makes of a missing image
    /// other than the default ones, at a size of the test's choosing).
    pub fn blank(&self, disk: usize, bytes: u64) {
        let file = std::fs::File::create(&self.paths[disk]).unwrap();
        file.set_len(bytes).unwrap();
    }

    /// The bytes of one disk image.
    pub fn read(&self, disk: usize) -> Vec<u8> {
        std::fs::read(&self.paths[disk]).unwrap()
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Boot `image` on fresh disks and wait until QEMU exits, `until` appears on
/// the console, or `timeout` passes; QEMU is killed in the last two cases.
pub fn boot(image: &Path, qemu_args: &[&str], until: Option<&str>, timeout: Duration) -> Run {
    boot_on(image, &Disks::fresh(), qemu_args, until, timeout)
}

/// [`boot`] on the given disks, which keep what the system wrote.
pub fn boot_on(image: &Path, disks: &Disks, qemu_args: &[&str], until: Option<&str>, timeout: Duration) -> Run {
    let mut child = Command::new(root().join("scripts/qemu.sh"))
        .env("DISKS", disks.qemu_list())
        .arg(image)
        .args(disks.qemu_args())
        .args(qemu_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start QEMU (scripts/qemu.sh)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l.trim_end_matches('\r').to_string()).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let mut timed_out = false;
    let mut stopped = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                let done = until.is_some_and(|u| line == u);
                lines.push(line);
                if done {
                    stopped = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    timed_out = true;
                    break;
                }
            }
        }
    }
    if timed_out || stopped {
        let _ = child.kill();
    }
    let status = child.wait().ok().and_then(|s| s.code());
    // Lines still buffered after exit.
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    Run { lines, status: if timed_out || stopped { None } else { status }, timed_out }
}

/// Boot on fresh disks and require a clean power-off with status 0 within
/// `timeout`.
pub fn boot_to_completion(image: &Path, qemu_args: &[&str], timeout: Duration) -> Run {
    boot_to_completion_on(image, &Disks::fresh(), qemu_args, timeout)
}

/// [`boot_to_completion`] on the given disks.
pub fn boot_to_completion_on(image: &Path, disks: &Disks, qemu_args: &[&str], timeout: Duration) -> Run {
    let run = boot_on(image, disks, qemu_args, None, timeout);
    assert!(!run.timed_out, "QEMU did not finish within {timeout:?}\n--- console ---\n{}", run.transcript());
    assert_eq!(run.status, Some(0), "QEMU exit status\n--- console ---\n{}", run.transcript());
    run
}

/// What a QEMU trace says a virtio-blk device did with one request
/// (`request`: the address QEMU gave it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlkEvent {
    /// It took a read of 512-byte sector `sector`.
    TookRead { request: String, sector: u64 },
    TookWrite { request: String },
    /// It answered one (a flush too, which has no event when taken).
    Answered { request: String },
}

/// QEMU arguments that log to `log` what each virtio-blk device takes and
/// answers (QEMU must have the `log` trace backend, as Debian's has); read
/// it with [`blk_trace`].
pub fn blk_trace_args(log: &Path) -> Vec<String> {
    let mut args = vec!["-D".to_string(), log.display().to_string()];
    for event in ["virtio_blk_handle_read", "virtio_blk_handle_write", "virtio_blk_req_complete"] {
        args.extend(["-trace".to_string(), event.to_string()]);
    }
    args
}

/// What the log [`blk_trace_args`] asked for says, per device (its address
/// in the trace), in order.
pub fn blk_trace(log: &Path) -> std::collections::HashMap<String, Vec<BlkEvent>> {
    let trace = std::fs::read_to_string(log).expect("QEMU's trace log (QEMU built with the `log` trace backend, as Debian's is)");
    let mut devices: std::collections::HashMap<String, Vec<BlkEvent>> = std::collections::HashMap::new();
    for line in trace.lines() {
        // `EVENT vdev DEVICE req REQUEST [sector N ...]`, maybe after a
        // prefix.
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| w.contains("virtio_blk_")) else { continue };
        let (Some(device), Some(request)) = (words.get(at + 2), words.get(at + 4)) else { continue };
        let request = request.to_string();
        let event = match words[at].rsplit(':').next().unwrap_or_default() {
            "virtio_blk_handle_read" => {
                let Some(sector) = words.get(at + 6).and_then(|s| s.parse().ok()) else { continue };
                BlkEvent::TookRead { request, sector }
            }
            "virtio_blk_handle_write" => BlkEvent::TookWrite { request },
            "virtio_blk_req_complete" => BlkEvent::Answered { request },
            _ => continue,
        };
        devices.entry(device.to_string()).or_default().push(event);
    }
    devices
}
