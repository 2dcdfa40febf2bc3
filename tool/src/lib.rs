//! The host side of Strata: from a system description to a bootable image.
//!
//! `storage` expands the storage declarations into plain SDF (every other
//! step works on the expanded system), `image` places memory and builds the
//! image, `pagetable` the translation tables, `elf` reads program images
//! and writes the image file, `layout` allocates physical memory, `report`
//! describes the result.

pub mod elf;
pub mod filters;
pub mod image;
pub mod layout;
pub mod pagetable;
pub mod params;
pub mod report;
pub mod storage;
