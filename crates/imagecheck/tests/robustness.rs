//! Damaged input never panics: truncated and garbage images, random bit
//! flips anywhere, random descriptors in the page-table pool (cycles and
//! tables reached twice included), random edits of the spec's records
//! with a valid checksum, and damaged ELF files. Each must give findings.

mod support;

use bootspec::{ChannelDesc, Header, LendDesc, PdDesc, CHANNEL_PD};
use std::mem::{offset_of, size_of};
use support::*;

const SEED: u64 = 0x5eed_1234_abcd_0001;

fn check_all(f: &Fixture, image: &[u8], kernel: &[u8], programs: Vec<Vec<u8>>) -> Vec<imagecheck::Finding> {
    let inputs = imagecheck::Inputs { image, kernel_elf: kernel, programs };
    imagecheck::check(&f.sd, &inputs)
}

#[test]
fn truncated_images_give_findings() {
    let f = Fixture::load("default");
    let len = f.image.len();
    let mut cuts: Vec<usize> = vec![0, 1, 4, 16, 63, 64, 65, 119, 120, 200, 1000, 4096];
    cuts.extend((1..64).map(|i| len * i / 64));
    cuts.push(len - 1);
    for cut in cuts {
        let found = f.check_image(&f.image[..cut]);
        assert!(!found.is_empty(), "an image cut at {cut} bytes checked clean");
    }
}

#[test]
fn garbage_gives_findings() {
    let f = Fixture::load("default");
    let mut rng = Rng(SEED);
    for len in [0usize, 7, 64, 4096, 100_000] {
        let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(!f.check_image(&garbage).is_empty());
        if len > 0 {
            // An ELF header that is right, followed by garbage.
            let mut half = f.image.clone();
            for b in half.iter_mut().skip(64).take(len) {
                *b = rng.next() as u8;
            }
            assert!(!f.check_image(&half).is_empty());
        }
    }
}

#[test]
fn random_bit_flips_anywhere_never_panic() {
    let f = Fixture::load("default");
    let mut rng = Rng(SEED ^ 1);
    for _ in 0..200 {
        let mut image = f.image.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(image.len());
            image[at] ^= 1 << rng.below(8);
        }
        f.check_image(&image);
    }
}

#[test]
fn random_descriptors_in_the_page_table_pool_never_panic() {
    let f = Fixture::load("default");
    let base = Image::new(&f.image);
    let (pool, size) = base.pool();
    let mut rng = Rng(SEED ^ 2);
    for round in 0..200 {
        let mut image = Image::new(&base.bytes);
        for _ in 0..1 + rng.below(16) {
            let slot = pool + (rng.below((size / 8) as usize) as u64) * 8;
            let value = match rng.below(4) {
                // A table descriptor to a random table of the pool: cycles,
                // tables reached twice, tables shared between spaces.
                0 => (pool + (rng.below((size / PAGE) as usize) as u64) * PAGE) | 0b11,
                // A page or block to anywhere, with random attributes.
                1 => rng.next() | 1,
                // A table outside the pool.
                2 => (rng.next() & ADDR) | 0b11,
                _ => 0,
            };
            image.write_u64(slot, value);
        }
        let found = f.check_image(&image.bytes);
        let _ = (round, found);
    }
}

#[test]
fn random_spec_edits_with_a_valid_checksum_never_panic() {
    random_spec_edits("default", SEED ^ 3);
    // The devices spec has lends (and the header's lend fields are hit).
    random_spec_edits("devices", SEED ^ 5);
}

fn random_spec_edits(fixture: &str, seed: u64) {
    let f = Fixture::load(fixture);
    let base = Image::new(&f.image);
    let spec = base.spec_offset();
    let total = u32::from_le_bytes(base.bytes[spec + offset_of!(Header, total_size)..][..4].try_into().unwrap());
    let end = spec + total as usize;
    let mut rng = Rng(seed);
    for _ in 0..300 {
        let mut image = Image::new(&base.bytes);
        for _ in 0..1 + rng.below(8) {
            // Skip the magic, version and size so the spec still parses
            // often enough to reach the record checks.
            let at = spec + 16 + rng.below(end - spec - 16);
            image.bytes[at] = rng.next() as u8;
        }
        image.fix_checksum();
        f.check_image(&image.bytes);
    }
}

/// Byte ranges of a PD record the kernel acts on, for the PD at `index`.
fn meaningful_bytes(f: &Fixture, image: &Image, index: usize) -> Vec<(String, usize)> {
    let pd = &f.sd.protection_domains[index];
    let mut fields: Vec<(String, std::ops::Range<usize>)> = vec![
        ("name".into(), 0..pd.name.len() + 1),
        ("ttbr0".into(), offset_of!(PdDesc, ttbr0)..offset_of!(PdDesc, ttbr0) + 8),
        ("entry".into(), offset_of!(PdDesc, entry)..offset_of!(PdDesc, entry) + 8),
        ("stack_top".into(), offset_of!(PdDesc, stack_top)..offset_of!(PdDesc, stack_top) + 8),
        ("ipc_buffer_paddr".into(), offset_of!(PdDesc, ipc_buffer_paddr)..offset_of!(PdDesc, ipc_buffer_paddr) + 8),
        ("priority".into(), offset_of!(PdDesc, priority)..offset_of!(PdDesc, priority) + 1),
        ("flags".into(), offset_of!(PdDesc, flags)..offset_of!(PdDesc, flags) + 1),
        ("parent".into(), offset_of!(PdDesc, parent)..offset_of!(PdDesc, parent) + 1),
        ("call_budget_us".into(), offset_of!(PdDesc, call_budget_us)..offset_of!(PdDesc, call_budget_us) + 4),
    ];
    // Empty child and channel slots are all alike: each PD tests every
    // fourth one, the PDs between them all of them.
    let sampled = |slot: usize| slot % 4 == index % 4;
    let children = offset_of!(PdDesc, children);
    for id in 0..64 {
        if sampled(id) || image.bytes[image.pd_offset(index) + children + id] != bootspec::NO_PD {
            fields.push((format!("child {id}"), children + id..children + id + 1));
        }
    }
    if pd.parent.is_some() {
        let id = offset_of!(PdDesc, id_in_parent);
        fields.push(("id_in_parent".into(), id..id + 1));
        let count = offset_of!(PdDesc, restore_count);
        fields.push(("restore_count".into(), count..count + 4));
    }
    let channels = offset_of!(PdDesc, channels);
    for id in 0..bootspec::MAX_CHANNELS {
        let slot = channels + id * size_of::<ChannelDesc>();
        let kind = image.bytes[image.pd_offset(index) + slot];
        if kind != bootspec::CHANNEL_NONE || sampled(id) {
            fields.push((format!("channel {id} kind"), slot..slot + 1));
        }
        if kind == CHANNEL_PD {
            // rights, peer, peer_channel
            fields.push((format!("channel {id}"), slot + 1..slot + 4));
            // The lend slice: its count always, its start where it lends.
            let count = slot + offset_of!(ChannelDesc, lend_count);
            fields.push((format!("channel {id} lend_count"), count..count + 2));
            let first = slot + offset_of!(ChannelDesc, lend_first);
            let lends = &image.bytes[image.pd_offset(index) + count..][..2];
            if lends != [0, 0] {
                fields.push((format!("channel {id} lend_first"), first..first + 2));
            }
        }
    }
    fields.into_iter().flat_map(|(name, r)| r.map(move |b| (name.clone(), b))).collect()
}

/// Byte ranges of the lend array the kernel acts on, as offsets from the
/// array's start. The address of a lend of a region that has no
/// `phys_addr` and that no PD maps is left out: the description does not
/// say where such a region lies, so a lend that moves it to free RAM is
/// as good as the builder's (a move onto anything else is caught, as
/// `check.rs` shows).
fn meaningful_lend_bytes(f: &Fixture, image: &Image) -> Vec<(String, usize)> {
    let mapped: Vec<&str> = f.sd.protection_domains.iter().flat_map(|pd| pd.maps.iter().map(|m| m.mr.as_str())).collect();
    let mut fields = Vec::new();
    let mut index = 0;
    for ch in &f.sd.channels {
        for lend in &ch.lends {
            let at = image.lend_offset(index) - image.lend_offset(0);
            let region = f.sd.memory_region(&lend.mr).expect("declared");
            if region.phys_addr.is_some() || mapped.contains(&lend.mr.as_str()) {
                let paddr = at + offset_of!(LendDesc, paddr);
                fields.push((format!("lend {index} paddr"), paddr..paddr + 8));
            }
            let size = at + offset_of!(LendDesc, size);
            fields.push((format!("lend {index} size"), size..size + 8));
            let rights = at + offset_of!(LendDesc, rights);
            fields.push((format!("lend {index} rights"), rights..rights + 1));
            index += 1;
        }
    }
    fields.into_iter().flat_map(|(name, r)| r.map(move |b| (name.clone(), b))).collect()
}

#[test]
fn every_bit_flip_of_a_field_the_kernel_uses_is_caught() {
    every_bit_flip_is_caught("default");
    every_bit_flip_is_caught("devices");
}

fn every_bit_flip_is_caught(fixture: &str) {
    let f = Fixture::load(fixture);
    let base = Image::new(&f.image);
    // One thread per PD: each flip is a whole check.
    let missed: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..f.sd.protection_domains.len())
            .map(|index| {
                let (f, base) = (&f, &base);
                scope.spawn(move || {
                    let mut missed = Vec::new();
                    for (field, byte) in meaningful_bytes(f, base, index) {
                        // One bit per byte, a different one from byte to byte.
                        let bit = (byte + index) % 8;
                        let mut image = Image::new(&base.bytes);
                        let at = image.pd_offset(index) + byte;
                        image.bytes[at] ^= 1 << bit;
                        image.fix_checksum();
                        if f.check_image(&image.bytes).is_empty() {
                            missed.push(format!("pd {index} {field} byte {byte:#x} bit {bit}"));
                        }
                    }
                    missed
                })
            })
            .collect();
        let lends = scope.spawn(|| {
            let mut missed = Vec::new();
            for (field, byte) in meaningful_lend_bytes(&f, &base) {
                let bit = byte % 8;
                let mut image = Image::new(&base.bytes);
                let at = image.lend_offset(0) + byte;
                image.bytes[at] ^= 1 << bit;
                image.fix_checksum();
                if f.check_image(&image.bytes).is_empty() {
                    missed.push(format!("{field} byte {byte:#x} bit {bit}"));
                }
            }
            missed
        });
        workers.into_iter().chain([lends]).flat_map(|w| w.join().expect("no panic")).collect()
    });
    assert!(missed.is_empty(), "{fixture}: {} flips went unnoticed:\n{}", missed.len(), missed.join("\n"));
}

#[test]
fn damaged_kernel_and_program_elfs_never_panic() {
    let f = Fixture::load("default");
    let mut rng = Rng(SEED ^ 4);
    for _ in 0..60 {
        let mut kernel = f.kernel.clone();
        let mut programs = f.programs.clone();
        for _ in 0..1 + rng.below(4) {
            // Mostly the headers, where damage matters.
            let at = rng.below(512.min(kernel.len()));
            kernel[at] = rng.next() as u8;
            let p = rng.below(programs.len());
            let at = rng.below(512.min(programs[p].len()));
            programs[p][at] = rng.next() as u8;
        }
        check_all(&f, &f.image, &kernel, programs);
        check_all(&f, &f.image, &kernel[..rng.below(kernel.len())], Vec::new());
    }
}

#[test]
fn an_image_checked_against_an_unrelated_description_gives_findings() {
    let f = Fixture::load("default");
    let xml = r#"<system>
        <memory_region name="huge" size="0x40000000" page_size="0x200000" />
        <protection_domain name="only" priority="254" stack_size="0x1000000">
            <program_image path="x" />
            <map mr="huge" vaddr="0x7fffc0000000" perms="rx" />
            <irq irq="1019" id="61" />
        </protection_domain>
    </system>"#;
    let sd = sdf::parse("unrelated.xml", xml).expect("a valid description");
    let inputs = imagecheck::Inputs { image: &f.image, kernel_elf: &f.kernel, programs: vec![b"no elf".to_vec()] };
    let found = imagecheck::check(&sd, &inputs);
    assert!(found.iter().any(|x| x.to_string() == "boot spec: 8 protection domains, declared 1"), "{found:?}");
}
