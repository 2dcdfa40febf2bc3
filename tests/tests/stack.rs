//! Three data filters on one disk, checked with tools nobody here wrote:
//! vault's chain is cache0, crypt0 (LUKS1) and integrity0, nearest the
//! device last. A LUKS1 volume that `cryptsetup` made is copied into
//! integrity0's data area through the filter (blk_dump); then blk_verify
//! writes, flushes and reads back 256 blocks through all three with no
//! mismatch. On the host, `qemu-img`'s `luks` driver decrypts the data
//! area and finds every stamp, the image holds none in the clear, and
//! every block's MAC in integrity0's table is the HMAC-SHA256 the `hmac`
//! crate computes. `make verify`'s analysis proves that verify0 reaches
//! vault's DMA region only through crypt0.
//!
//! Systems: `tests/systems/stack-load.xml`, `stack.xml`.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, host_command, run_host, Disks};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

const PASSPHRASE: &str = "correct horse battery staple";
const KEY: &[u8] = b"stack test key";
const MIB: u64 = 1 << 20;
/// vault (64 MiB): the header and its backup, 127 blocks of MACs, 16,255
/// of data.
const TABLE: usize = 127;
const DATA: usize = 16_255;
/// The LUKS1 volume: 32 MiB.
const VOLUME: usize = 8192;
const STAMPED: usize = 256;
const TIMEOUT: Duration = Duration::from_secs(240);

fn mac(tag: &[u8], block: u64, data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    m.update(tag);
    m.update(&block.to_le_bytes());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[test]
fn cache_crypt_and_integrity_on_one_disk_keep_every_block_and_check_out_on_the_host() {
    let disks = Disks::fresh();
    disks.blank(0, VOLUME as u64 * BLOCK as u64);
    let mut c = host_command("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256"]);
    c.args(["--pbkdf-force-iterations", "1000", "--key-file=-"]).arg(&disks.paths[0]);
    run_host(c, PASSPHRASE.as_bytes());
    disks.blank(1, 64 * MIB);

    let run1 = boot_to_completion_on(&build_image("tests/systems/stack-load.xml", false), &disks, &[], TIMEOUT);
    run1.expect_prefix(&format!("blk_dump: copied {VOLUME} blocks"));
    let run2 = boot_to_completion_on(&build_image("tests/systems/stack.xml", false), &disks, &[], TIMEOUT);
    run2.expect_line(&format!("integrity0: disk vault: {DATA} blocks, checked against {TABLE} blocks of MACs"));
    run2.expect_line(&format!("verify0: verified {STAMPED} blocks, 0 mismatches"));
    assert!(!run2.lines.iter().any(|l| l.contains("does not match")), "{}", run2.transcript());

    let image = disks.read(1);
    let data = &image[(2 + TABLE) * BLOCK..(2 + TABLE + DATA) * BLOCK];
    // Every block's MAC: of its data, or, never written, of "none".
    let mut wrong = Vec::new();
    for b in 0..DATA {
        let entry = &image[2 * BLOCK + b * 32..2 * BLOCK + b * 32 + 32];
        let block = &data[b * BLOCK..(b + 1) * BLOCK];
        let ok = if b < VOLUME { entry == mac(b"data", b as u64, block) } else { entry == mac(b"none", b as u64, &[]) };
        if !ok {
            wrong.push(b);
        }
    }
    assert!(wrong.is_empty(), "{} MACs wrong, the first {:?}", wrong.len(), &wrong[..wrong.len().min(8)]);

    // QEMU decrypts the volume in the data area: the stamps are there.
    let volume = disks.dir.join("volume.img");
    std::fs::write(&volume, &data[..VOLUME * BLOCK]).unwrap();
    let plain = disks.dir.join("volume.plain");
    let mut c = host_command("qemu-img", "qemu-utils");
    c.args(["convert", "--object", &format!("secret,id=sec0,data={PASSPHRASE}"), "--image-opts"]);
    c.arg(format!("driver=luks,key-secret=sec0,file.filename={}", volume.display())).args(["-O", "raw"]).arg(&plain);
    run_host(c, b"");
    let plain = std::fs::read(plain).unwrap();
    let mut heads = std::collections::HashSet::new();
    for b in 0..STAMPED {
        let block: &[u8; BLOCK] = plain[b * BLOCK..(b + 1) * BLOCK].try_into().unwrap();
        assert_eq!(stamp::check("vault", b as u64, 1, block), Ok(()), "payload block {b}, decrypted by QEMU");
        heads.insert(&block[..64]);
    }
    // (Any plaintext on the image would start at a sector.)
    assert!(!image.chunks(512).any(|sector| heads.contains(&sector[..64])), "plaintext on the image");

    let sd = sdf::read_file(&e2e::root().join("tests/systems/stack.xml")).expect("readable");
    let analysis = verify::analyse(&tool::storage::expand(&sd).expect("expands"), None);
    let report = analysis.report();
    assert!(report.lines().any(|l| l == "  policy 'vault-is-reached-only-through-crypt0' (mediated via 'crypt0'): holds"), "{report}");
    assert!(analysis.ok(), "{report}");
}
