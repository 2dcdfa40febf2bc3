//! An expanded storage system built into an image with synthetic program
//! images: the records land in each PD's memory, and the regions sit at
//! the physical addresses the records give.

mod common;

use common::{kernel, program_with};
use blk::config::{ClientConfig, DriverConfig, ServerConfig};
use bootspec::Spec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tool::elf::{ElfImage, Segment, Symbol};
use tool::image::{build_from, Built};
use zerocopy::FromBytes;

const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31" />
    <disk name="disk1" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="prog" />
        <block_client disk="disk0" partition="2" />
    </protection_domain>
    <protection_domain name="bench" priority="102">
        <program_image path="prog" />
        <block_client disk="disk1" direct="true" />
    </protection_domain>
</system>
"#;

const DRIVER_CONFIG: u64 = 0x20_1100;
const SERVER_CONFIG: u64 = 0x20_1400;
const CLIENT_CONFIG: u64 = 0x20_2000;

/// One program for every PD, with all three record symbols in its bss.
fn program() -> ElfImage {
    let mut symbols = BTreeMap::new();
    let size = |n: usize| n as u64;
    symbols.insert("blk_driver_config".to_string(), Symbol { vaddr: DRIVER_CONFIG, size: size(size_of::<DriverConfig>()) });
    symbols.insert("blk_server_config".to_string(), Symbol { vaddr: SERVER_CONFIG, size: size(size_of::<ServerConfig>()) });
    symbols.insert("blk_client_config".to_string(), Symbol { vaddr: CLIENT_CONFIG, size: size(size_of::<ClientConfig>()) });
    program_with(vec![0; 0x10], symbols)
}

struct Image {
    sd: sdf::SystemDescription,
    built: Built,
    segments: Vec<Segment>,
    spec: Vec<u8>,
}

impl Image {
    fn new() -> Image {
        let sd = sdf::parse("storage.xml", SYSTEM).unwrap();
        let sd = tool::storage::expand_validated(&sd).unwrap_or_else(|e| panic!("{e:#?}"));
        let programs: Vec<_> = sd.protection_domains.iter().map(|_| (PathBuf::from("prog"), program())).collect();
        let built = build_from(&sd, &kernel(), &programs, false).unwrap_or_else(|e| panic!("{e:#?}"));
        let segments = ElfImage::parse(&built.elf).unwrap().segments;
        let mut image = Image { sd, built, segments, spec: Vec::new() };
        let header = image.bytes(image.built.spec_paddr, 128);
        let total = u32::from_le_bytes(header[12..16].try_into().unwrap()) as usize;
        image.spec = image.bytes(image.built.spec_paddr, total);
        image
    }

    fn bytes(&self, paddr: u64, len: usize) -> Vec<u8> {
        let s = self.segments.iter().find(|s| s.paddr <= paddr && paddr + len as u64 <= s.paddr + s.memsz).expect("in the image");
        let off = (paddr - s.paddr) as usize;
        (off..off + len).map(|i| s.data.get(i).copied().unwrap_or(0)).collect()
    }

    /// Walk the PD's 4-level tables: the physical address of `va`.
    fn translate(&self, pd: &str, va: u64) -> Option<u64> {
        let index = self.sd.pd(pd).unwrap().0;
        let mut table = Spec::parse(&self.spec).unwrap().pds[index].ttbr0;
        for level in 0..4 {
            let e = u64::from_le_bytes(self.bytes(table + ((va >> (39 - 9 * level)) & 0x1ff) * 8, 8).try_into().unwrap());
            if e & 1 == 0 {
                return None;
            }
            if level == 3 || e & 2 == 0 {
                let size = 1u64 << (39 - 9 * level);
                return Some((e & 0x0000_ffff_ffff_f000 & !(size - 1)) | (va & (size - 1)));
            }
            table = e & 0x0000_ffff_ffff_f000;
        }
        None
    }

    fn record<T: FromBytes>(&self, pd: &str, vaddr: u64) -> T {
        let pa = self.translate(pd, vaddr).expect("record mapped");
        T::read_from_bytes(&self.bytes(pa, size_of::<T>())).unwrap()
    }
}

fn patched(sd: &sdf::SystemDescription, pd: &str, symbol: &str) -> Vec<u8> {
    let setvar = sd.pd(pd).unwrap().1.setvars.iter().find(|s| s.symbol == symbol).unwrap();
    match &setvar.value {
        sdf::SetVarValue::Bytes(bytes) => bytes.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_storage_pd_finds_its_record_in_memory() {
    let image = Image::new();
    let driver: DriverConfig = image.record("blk_driver", DRIVER_CONFIG);
    assert_eq!(zerocopy::IntoBytes::as_bytes(&driver), patched(&image.sd, "blk_driver", "blk_driver_config"));
    assert_eq!(driver.disks().map(<[_]>::len), Some(2));
    let server: ServerConfig = image.record("blk_server", SERVER_CONFIG);
    assert!(server.is_set());
    assert_eq!(server.clients()[0].partition, 2);
    for client in ["app", "bench"] {
        let record: ClientConfig = image.record(client, CLIENT_CONFIG);
        assert_eq!(zerocopy::IntoBytes::as_bytes(&record), patched(&image.sd, client, "blk_client_config"));
    }
    let untouched: ServerConfig = image.record("app", SERVER_CONFIG);
    assert!(!untouched.is_set(), "a client gets no server record");
}

#[test]
fn records_give_the_addresses_the_image_maps() {
    let image = Image::new();
    let driver: DriverConfig = image.record("blk_driver", DRIVER_CONFIG);
    let disk0 = driver.disks[0];
    assert_eq!(image.translate("blk_driver", disk0.mmio_vaddr), Some(0x0a00_3e00), "slot 31's registers");
    assert_eq!(image.translate("blk_driver", driver.disks[1].mmio_vaddr), Some(0x0a00_3c00), "slot 30's registers");
    assert_eq!(image.translate("blk_driver", disk0.dma.vaddr), Some(disk0.dma.paddr));
    // The driver and the server share the driver queue; the server sees the
    // probe block where the device writes it.
    let server: ServerConfig = image.record("blk_server", SERVER_CONFIG);
    let queue = image.translate("blk_driver", disk0.queue.vaddr).unwrap();
    assert_eq!(image.translate("blk_server", server.disks[0].queue.vaddr), Some(queue));
    assert_eq!(image.translate("blk_server", server.disks[0].probe.vaddr), Some(server.disks[0].probe.paddr));
    // A client's data region is at the physical address the server and
    // the driver are told, and mapped nowhere else.
    let app: ClientConfig = image.record("app", CLIENT_CONFIG);
    assert_eq!(image.translate("app", app.data.vaddr), Some(app.data.paddr));
    assert_eq!(server.clients()[0].data.paddr, app.data.paddr);
    let app_queue = image.translate("app", app.queue.vaddr).unwrap();
    assert_eq!(image.translate("blk_server", server.clients()[0].queue.vaddr), Some(app_queue));
    let bench: ClientConfig = image.record("bench", CLIENT_CONFIG);
    let bench_queue = image.translate("bench", bench.queue.vaddr).unwrap();
    assert_eq!(image.translate("blk_driver", driver.disks[1].queue.vaddr), Some(bench_queue));
    for pd in ["blk_driver", "blk_server", "bench"] {
        let mapping_app_data =
            image.built.pds[image.sd.pd(pd).unwrap().0].mappings.iter().any(|m| m.paddr <= app.data.paddr && app.data.paddr < m.paddr + m.size);
        assert!(!mapping_app_data, "{pd} maps app's data");
    }
}
