//! Fuzzing zpmfs images (issue 8): the harness shared by the targets in `fuzz_targets/`.
//!
//! # What a fuzz input is
//!
//! An input is not a whole image but a short list of byte edits applied to one of a few seed
//! images ([`seed`]), which the real code builds at start-up (mkfs's format, filesystem
//! operations, a clean unmount or a crash). Edits are addressed relative to the image's
//! metadata regions ([`regions`]: superblocks, state block, journals, inode tables, inodes,
//! log pages), and the harness can recompute the checksums of what was edited ([`input`]).
//!
//! Why not whole images: even the smallest seed is 55 blocks (220 KiB), mostly file data,
//! free blocks and zeros. libFuzzer mutating a 220 KiB input spends its time copying and
//! hashing it, most of its mutations land in bytes nothing parses, and its insert/erase
//! mutations shift every structure after the edit. A 20-byte edit list keeps every mutation
//! meaningful, lets libFuzzer's cross-over combine edits from different inputs, and costs
//! one copy of the seed per run (the mount and the walk dominate). Checksums are the other reason: with whole images almost every mutation only
//! exercises "checksum mismatch"; with the fix-up flag an edit reaches the code that gives
//! the decoded fields their meaning (lengths, block numbers, counts, cookies).
//!
//! The cost: a crash input is only meaningful with the seed images, which are rebuilt at
//! each start. Their layout is deterministic (one CPU, a fixed UUID, the same operations),
//! their timestamps are not, so an input that needs a stale checksum to stay stale can lose
//! its effect; every crash found so far reproduced from its artifact.

pub mod input;
pub mod regions;
pub mod scratch;
pub mod seed;
pub mod walk;

use std::sync::OnceLock;

use input::Input;
use regions::{Region, RegionKind};
use scratch::Scratch;
use seed::SeedImage;

/// What every target shares: the seed images and a scratch file to mount them from.
pub struct Harness {
    pub seeds: Vec<SeedImage>,
    pub scratch: Scratch,
}

/// One fuzz input applied to its seed image.
pub struct Mutated<'a> {
    pub input: Input<'a>,
    pub image: Vec<u8>,
    /// The regions the edits changed.
    pub touched: Vec<Region>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// `ZPMFS_FUZZ_EXPLAIN=1`: print each input as the edits it makes (to read a crash input);
/// with `ZPMFS_FUZZ_SAVE=file` too, also write the edited image there.
fn explain() -> bool {
    static EXPLAIN: OnceLock<bool> = OnceLock::new();
    *EXPLAIN.get_or_init(|| std::env::var_os("ZPMFS_FUZZ_EXPLAIN").is_some())
}

/// Build the seed images once per process (libFuzzer's initialize hook). With
/// `ZPMFS_FUZZ_SEEDS_OUT=dir` set, write this target's seed inputs into `dir` and exit: that
/// is how fuzz/run.sh makes a corpus from real images without committing any.
pub fn init(target: &str, wanted: fn(RegionKind) -> bool) {
    let h = harness();
    let sizes: Vec<String> = h
        .seeds
        .iter()
        .map(|s| format!("{} {} KiB, {} regions", s.name, s.bytes.len() >> 10, s.regions.len()))
        .collect();
    eprintln!("{target}: seed images: {}", sizes.join("; "));
    if let Some(dir) = std::env::var_os("ZPMFS_FUZZ_SEEDS_OUT") {
        let n = seed::write_seed_inputs(h, std::path::Path::new(&dir), wanted)
            .unwrap_or_else(|e| panic!("{target}: cannot write seed inputs: {e}"));
        eprintln!("{target}: wrote {n} seed inputs built from {} real images", h.seeds.len());
        std::process::exit(0);
    }
}

pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| Harness {
        seeds: seed::build_all().unwrap_or_else(|e| panic!("building the seed images failed: {e}")),
        scratch: Scratch::new("run"),
    })
}

impl Harness {
    /// Decode `data` and apply its edits (to regions `wanted` accepts) to a copy of its seed
    /// image.
    pub fn mutate<'a>(&self, data: &'a [u8], wanted: fn(RegionKind) -> bool) -> Mutated<'a> {
        let input = Input::parse(data, self.seeds.len());
        let seed = &self.seeds[input.seed];
        let regions: Vec<&Region> = seed.regions.iter().filter(|r| wanted(r.kind)).collect();
        let mut image = seed.bytes.clone();
        let touched = input.apply(&mut image, &regions);
        if explain() {
            eprintln!("{}", input.explain(seed.name, &regions));
            if let Some(path) = std::env::var_os("ZPMFS_FUZZ_SAVE") {
                std::fs::write(&path, &image).expect("write the edited image");
            }
        }
        Mutated { input, image, touched }
    }
}
