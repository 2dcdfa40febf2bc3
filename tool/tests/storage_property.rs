//! Random storage declarations: the expansion never panics, even on a
//! system that only reading accepted; what it produces reads back from its
//! XML unchanged; and when the input and the result are valid, the result
//! keeps device ownership and its records describe what it maps.

use blk::config::{ClientConfig, DriverConfig, MAGIC};
use proptest::prelude::*;
use sdf::{SetVarValue, SystemDescription};
use tool::storage::{expand, DMA_WINDOW};
use zerocopy::FromBytes;

#[derive(Clone, Debug)]
struct Client {
    disk: usize,
    partition: Option<u8>,
    pages: u64,
    capacity_log2: u32,
    direct: bool,
}

#[derive(Clone, Debug)]
struct Spec {
    /// The slot of each disk (named `d0`, `d1`, ...); 32 is out of range.
    disks: Vec<u32>,
    /// Per PD: its client declaration, and how many channels it already
    /// has to the next PD.
    pds: Vec<(Option<Client>, u8)>,
    /// A user region with a fixed address in the DMA window.
    fixed_in_window: Option<u64>,
    /// A user map at the client queue's vaddr in PD 0.
    map_in_the_way: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    let client = (0..8usize, proptest::option::of(1..=4u8), 1..0x2000u64, 0..=6u32, proptest::bool::weighted(0.2))
        .prop_map(|(disk, partition, pages, capacity_log2, direct)| Client { disk, partition, pages, capacity_log2, direct });
    (
        proptest::collection::vec(prop_oneof![4 => 24..32u32, 1 => 0..33u32], 0..6),
        proptest::collection::vec((proptest::option::of(client), 0..3u8), 1..20),
        proptest::option::of(0..0x1_0000u64),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(disks, pds, fixed, map_in_the_way)| Spec {
            disks,
            pds,
            fixed_in_window: fixed.map(|page| DMA_WINDOW.start + page * 0x1000),
            map_in_the_way,
        })
}

fn xml(spec: &Spec) -> String {
    let mut out = String::from("<system>\n<memory_region name=\"mine\" size=\"0x1000\" />\n");
    if let Some(paddr) = spec.fixed_in_window {
        out += &format!("<memory_region name=\"fixed\" size=\"0x4000\" phys_addr=\"{paddr:#x}\" />\n");
    }
    for (name, slot) in spec.disks.iter().enumerate() {
        out += &format!("<disk name=\"d{name}\" virtio_slot=\"{slot}\" />\n");
    }
    let count = spec.pds.len();
    for (i, (client, _)) in spec.pds.iter().enumerate() {
        out += &format!("<protection_domain name=\"p{i}\" priority=\"{}\">\n<program_image path=\"p\" />\n", i % 200);
        if i == 0 && spec.map_in_the_way {
            out += "<map mr=\"mine\" vaddr=\"0x50_0000_0000\" />\n";
        }
        if let (Some(c), false) = (client, spec.disks.is_empty()) {
            out += &format!("<block_client disk=\"d{}\"", c.disk % spec.disks.len());
            if let Some(p) = c.partition {
                out += &format!(" partition=\"{p}\"");
            }
            out += &format!(
                " data_size=\"{:#x}\" queue_capacity=\"{}\" direct=\"{}\" />\n",
                c.pages * 0x1000,
                1u32 << c.capacity_log2,
                c.direct
            );
        }
        out += "</protection_domain>\n";
    }
    for (i, &(_, channels)) in spec.pds.iter().enumerate() {
        for k in 0..channels {
            let next = (i + 1) % count;
            if next != i {
                out += &format!("<channel><end pd=\"p{i}\" id=\"{}\" /><end pd=\"p{next}\" id=\"{}\" /></channel>\n", 20 + k, 30 + k);
            }
        }
    }
    out + "</system>\n"
}

fn bytes<'a>(sd: &'a SystemDescription, pd: &str, symbol: &str) -> Option<&'a [u8]> {
    let setvar = sd.pd(pd)?.1.setvars.iter().find(|s| s.symbol == symbol)?;
    match &setvar.value {
        SetVarValue::Bytes(bytes) => Some(bytes),
        SetVarValue::RegionPaddr(_) => None,
    }
}

/// What must hold of a valid expansion of a valid system.
fn check_valid_expansion(input: &SystemDescription, sd: &SystemDescription) -> Result<(), TestCaseError> {
    let analysis = verify::analyse(sd, None);
    prop_assert!(analysis.ok(), "{:?}", analysis.violations());
    for mr in sd.memory_regions.iter().filter(|mr| mr.name.starts_with("blk_")) {
        if let Some(r) = mr.phys_range() {
            prop_assert!(DMA_WINDOW.start <= r.start && r.end <= DMA_WINDOW.end, "{} at {r:x?}", mr.name);
        }
    }
    let driver = DriverConfig::read_from_bytes(bytes(sd, "blk_driver", "blk_driver_config").unwrap()).unwrap();
    prop_assert_eq!(driver.disks().map(<[_]>::len), Some(input.disks.len()));
    for (_, pd, _) in input.block_clients() {
        let record = ClientConfig::read_from_bytes(bytes(sd, &pd.name, "blk_client_config").unwrap()).unwrap();
        prop_assert_eq!(record.magic, MAGIC);
        let data = sd.memory_region(&format!("blk_{}_data", pd.name)).unwrap();
        prop_assert_eq!((record.data.paddr, record.data.size), (data.phys_addr.unwrap(), data.size));
        // The client's channel id is one it did not use before.
        let (index, _) = input.pd(&pd.name).unwrap();
        let used_before = input.channels_of(index).any(|(me, _)| u32::from(me.id) == record.queue.channel);
        prop_assert!(!used_before);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn expansion_never_panics_and_reads_back(spec in spec()) {
        let text = xml(&spec);
        let Ok(read) = sdf::read("random.xml", &text) else { return Ok(()) };
        // Reading alone lets through what validation refuses; the
        // expansion must cope (as `strata verify` relies on).
        if let Ok(expanded) = expand(&read) {
            let written = sdf::to_xml(&expanded);
            let again = sdf::read("random.xml", &written);
            prop_assert!(again.is_ok(), "{:?}\n{written}", again.err());
            prop_assert_eq!(again.unwrap().without_positions(), expanded.without_positions());
            let _ = verify::analyse(&expanded, None).report();
        }
        let Ok(valid) = sdf::parse("random.xml", &text) else { return Ok(()) };
        let Ok(expanded) = tool::storage::expand_validated(&valid) else { return Ok(()) };
        if !valid.disks.is_empty() {
            check_valid_expansion(&valid, &expanded)?;
        }
        let written = sdf::to_xml(&expanded);
        let again = sdf::parse("random.xml", &written);
        prop_assert!(again.is_ok(), "{:?}", again.err());
    }
}

#[test]
fn random_systems_include_valid_expansions() {
    // The generator is not so hostile that nothing valid comes out.
    let spec = Spec {
        disks: vec![31, 30],
        pds: vec![
            (Some(Client { disk: 0, partition: Some(1), pages: 1, capacity_log2: 3, direct: false }), 2),
            (Some(Client { disk: 1, partition: None, pages: 16, capacity_log2: 6, direct: true }), 0),
        ],
        fixed_in_window: Some(DMA_WINDOW.start),
        map_in_the_way: false,
    };
    let valid = sdf::parse("random.xml", &xml(&spec)).unwrap();
    let expanded = tool::storage::expand_validated(&valid).unwrap();
    check_valid_expansion(&valid, &expanded).unwrap();
}
