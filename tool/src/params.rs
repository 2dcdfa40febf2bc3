//! The param values of this repository's filters, checked with the
//! filters' own parsers (the ones their PDs run at start), so a bad value
//! is an error at its `<param>` with its file:line:col instead of a
//! filter that cannot start at boot. Programs of other names are not
//! checked here: a filter of one's own says at boot what it cannot take.

use filter_faulty::{Faulty, Misbehave};

/// What is wrong with the values of `params` (key, value) for `program`,
/// a filter that may write the requests' data if `writes`: the key of the
/// param at fault, and why.
pub fn check(program: &str, params: &[(&str, &str)], writes: bool) -> Vec<(String, &'static str)> {
    let get = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut wrong = Vec::new();
    let mut at = |key: &str, result: Result<(), &'static str>| {
        if let Err(why) = result {
            wrong.push((key.to_string(), why));
        }
    };
    match program {
        "filter_readonly" => {
            if let Some(blocks) = get("blocks") {
                at("blocks", filter_readonly::ReadOnly::new(Some(blocks)).map(drop));
            }
        }
        "filter_faulty" => {
            let rules = Faulty::new(get("rules").unwrap_or(""), None, NoHarm, None);
            let corrupts = rules.as_ref().is_ok_and(|f| f.rules.iter().any(|r| r.action == filter_faulty::Action::Corrupt));
            let needs_write = corrupts && !writes;
            at("rules", rules.map(drop));
            if needs_write {
                at("rules", Err("a corrupt rule changes what a read returns: give the filter data=\"read-write\""));
            }
            if let Some(seed) = get("seed") {
                at("seed", Faulty::new("", Some(seed), NoHarm, None).map(drop));
            }
        }
        "filter_cache" => {
            // Pointed at `size` when it is given (both given: at `size`).
            let key = if get("size").is_some() { "size" } else { "blocks" };
            at(key, filter_cache::parse_blocks(get("blocks"), get("size"), filter_cache::MAX_BLOCKS).map(drop));
        }
        "filter_integrity" => {
            if let Some(key) = get("key") {
                at("key", filter_integrity::Integrity::new(Some(key), None, |_| {}).map(drop));
            }
        }
        _ => {}
    }
    wrong
}

/// A faulty filter's misbehaviour, never run here.
struct NoHarm;

impl Misbehave for NoHarm {
    fn fault(&mut self) {}
    fn spin(&mut self) {}
}
