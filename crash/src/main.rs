//! zpmfs-crash: the crash-consistency suite.
//!
//!   zpmfs-crash [--quick|--standard|--full] [--pairs N|all] [--random N --len L] [--seed S]
//!               [--k K] [--recovery-every N]
//!
//! Runs every single operation over the seeded tree, then pairs of operations (all of them, or
//! N chosen by the seed), then N random sequences of L operations. Prints the crash images
//! checked per kind of operation in flight, then `crash images checked: N, violations: V`,
//! and ends with "N passed, M failed" (one case per workload).

use std::process::ExitCode;

use zpmfs_crash::check::{run_case, seeded_image, Bounds};
use zpmfs_crash::workload::{single_ops, Op};

struct Args {
    pairs: Option<usize>,
    random: usize,
    len: usize,
    seed: u64,
    bounds: Bounds,
}

fn parse() -> Result<Args, String> {
    let mut a =
        Args { pairs: Some(40), random: 10, len: 5, seed: 1, bounds: Bounds { k: 2, recovery_every: 25 } };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |s: String, name: &str| s.parse::<u64>().map_err(|_| format!("{name}: not a number: {s}"));
        match arg.as_str() {
            "--quick" => {
                a.pairs = Some(40);
                a.random = 10;
            }
            "--standard" => {
                a.pairs = None;
                a.random = 50;
                a.len = 6;
                a.bounds = Bounds { k: 1, recovery_every: 25 };
            }
            "--full" => {
                a.pairs = None;
                a.random = 200;
                a.len = 8;
                a.bounds = Bounds { k: 2, recovery_every: 5 };
            }
            "--pairs" => {
                let v = val("--pairs")?;
                a.pairs = if v == "all" { None } else { Some(num(v, "--pairs")? as usize) };
            }
            "--random" => a.random = num(val("--random")?, "--random")? as usize,
            "--len" => a.len = num(val("--len")?, "--len")? as usize,
            "--seed" => a.seed = num(val("--seed")?, "--seed")?,
            "--k" => a.bounds.k = num(val("--k")?, "--k")?.min(2) as usize,
            "--recovery-every" => {
                a.bounds.recovery_every = num(val("--recovery-every")?, "--recovery-every")? as usize
            }
            "-h" | "--help" => {
                println!("usage: zpmfs-crash [--quick] [--pairs N|all] [--random N] [--len L] [--seed S] [--k 0|1|2] [--recovery-every N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// A small deterministic generator (xorshift64*), so a seed names a run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zpmfs-crash: {e}");
            return ExitCode::from(2);
        }
    };
    let base = match seeded_image() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("zpmfs-crash: cannot build the seed image: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ops = single_ops();
    let mut cases: Vec<Vec<Op>> = ops.iter().map(|o| vec![o.clone()]).collect();
    let mut rng = Rng(args.seed.max(1));
    let all_pairs: Vec<Vec<Op>> =
        ops.iter().flat_map(|a| ops.iter().map(move |b| vec![a.clone(), b.clone()])).collect();
    match args.pairs {
        None => cases.extend(all_pairs),
        Some(n) => {
            for _ in 0..n {
                cases.push(all_pairs[rng.below(all_pairs.len())].clone());
            }
        }
    }
    for _ in 0..args.random {
        cases.push((0..args.len).map(|_| ops[rng.below(ops.len())].clone()).collect());
    }
    let (mut passed, mut failed, mut images, mut violations) = (0, 0, 0, 0);
    let mut per_kind = std::collections::BTreeMap::new();
    let start = std::time::Instant::now();
    for case in &cases {
        match run_case(&base, case, args.bounds) {
            Ok(r) => {
                images += r.images;
                violations += r.failures.len();
                for (k, n) in &r.per_kind {
                    *per_kind.entry(*k).or_insert(0usize) += n;
                }
                if r.failures.is_empty() {
                    passed += 1;
                } else {
                    failed += 1;
                    println!("FAIL {case:?}: {} of {} crash images", r.failures.len(), r.images);
                    for f in r.failures.iter().take(3) {
                        println!("    {f}");
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {case:?}: could not run: {e}");
            }
        }
    }
    println!("crash images checked, by the operation in flight:");
    for (k, n) in &per_kind {
        println!("  {k:<20} {n:>8}");
    }
    println!(
        "zpmfs-crash: {} workloads, {images} crash images checked in {:.1} s (k={}, seed={})",
        cases.len(),
        start.elapsed().as_secs_f64(),
        args.bounds.k,
        args.seed
    );
    println!("crash images checked: {images}, violations: {violations}");
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
