//! Reading callgrind's output format (valgrind's docs, "Callgrind Format Specification"): the
//! self cost of every function added up, glibc's allocator internals apart.

use std::collections::HashMap;

/// glibc's allocator internals (malloc/malloc.c), below `malloc` and `free`'s thread-cache fast
/// paths: how much of them a call runs depends on what other threads (librdkafka's) freed
/// meanwhile, that is on thread timing, so they are counted apart.
const ARENA_WORK: [&str; 17] = [
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "_int_memalign",
    "_int_free_merge_chunk",
    "_int_free_create_chunk",
    "_int_free_maybe_consolidate",
    "malloc_consolidate",
    "unlink_chunk",
    "alloc_perturb",
    "sysmalloc",
    "systrim",
    "heap_trim",
    "grow_heap",
    "shrink_heap",
    "munmap_chunk",
    "tcache_init",
];

/// What one callgrind run counted (its first event, `Ir`): in all, and in [`ARENA_WORK`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every instruction counted.
    pub total: u64,
    /// Those in glibc's allocator internals.
    pub arena: u64,
}

impl Counts {
    /// The instructions outside glibc's allocator internals: the repeatable part.
    pub fn own(self) -> u64 {
        self.total - self.arena
    }
}

/// Reads a callgrind output file of one part: every function's self cost added up, those of
/// [`ARENA_WORK`] apart, and the sum checked against the file's `totals:` (or `summary:`) line.
pub fn parse(output: &str) -> Result<Counts, String> {
    let mut names = HashMap::new();
    let (mut positions, mut in_arena, mut call_cost) = (1, false, false);
    let (mut counts, mut stated) = (Counts::default(), None);
    for line in output.lines() {
        if let Some(spec) = line.strip_prefix("positions:") {
            positions = spec.split_whitespace().count();
        } else if let Some(spec) = line.strip_prefix("fn=") {
            let name = function_name(spec, &mut names);
            in_arena = ARENA_WORK
                .iter()
                .any(|f| name.split(['.', '\'']).next() == Some(*f));
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            function_name(spec, &mut names);
        } else if line.starts_with("calls=") {
            // The next cost line is the call's inclusive cost, already counted in the callee.
            call_cost = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut call_cost) {
                continue;
            }
            let cost = line
                .split_whitespace()
                .nth(positions)
                .map_or(Ok(0), str::parse::<u64>);
            let cost = cost.map_err(|e| format!("cost line {line:?}: {e}"))?;
            counts.total += cost;
            counts.arena += if in_arena { cost } else { 0 };
        } else if let Some(rest) = line.strip_prefix("totals:") {
            stated = rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
        } else if let Some(rest) = line.strip_prefix("summary:") {
            // Written first: a `totals:` line after the costs, when there is one, is the word.
            stated = rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
        }
    }
    match stated {
        Some(total) if total == counts.total => Ok(counts),
        Some(total) => Err(format!(
            "its functions add up to {} but it states {total}",
            counts.total
        )),
        None => Err("it has no totals line".to_owned()),
    }
}

/// The name a `fn=` or `cfn=` line gives, remembering compressed names: `(id) name` defines
/// `id`, `(id)` refers to it.
fn function_name<'a>(spec: &'a str, names: &mut HashMap<&'a str, &'a str>) -> &'a str {
    match spec.strip_prefix('(').and_then(|s| s.split_once(')')) {
        Some((id, rest)) if rest.trim().is_empty() => names.get(id).copied().unwrap_or(""),
        Some((id, rest)) => names.entry(id).or_insert(rest.trim()),
        None => spec.trim(),
    }
}

/// The largest relative difference between `counts` and the first of them, in percent.
pub fn spread(counts: &[u64]) -> f64 {
    let first = counts.first().copied().unwrap_or(0).max(1) as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - first).abs() / first * 100.0)
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A callgrind file as 3.19 writes it, names compressed: `main` costs 10 + 5 itself and
    /// calls `malloc` (inclusive 8: not counted again), which costs 3 and calls `_int_malloc`
    /// (5, arena work); `free` (2) is named by its id a second time.
    const FILE: &str = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 7\ncmd: x\n\
        part: 1\n\npositions: line\nevents: Ir\nsummary: 25\n\nob=(1) /bin/x\nfl=(1) ???\n\
        fn=(1) main\n0 10\n+2 5\ncfn=(2) malloc\ncalls=1 0\n0 8\n\n\
        fl=(2) ./malloc/./malloc/malloc.c\nfn=(2)\n0 3\ncfn=(3) _int_malloc\ncalls=1 0\n0 5\n\n\
        fn=(3)\n0 5\n\nfn=(4) free\n0 1\nfn=(5) main'2\n0 0\nfn=(4)\n*\n+1 1\n\ntotals: 25\n";

    #[test]
    fn self_costs_add_up_to_the_total_and_the_arena_work_is_counted_apart() {
        assert_eq!(parse(FILE), Ok(Counts { total: 25, arena: 5 }));
        assert_eq!(Counts { total: 25, arena: 5 }.own(), 20);
    }

    #[test]
    fn a_file_whose_costs_disagree_with_its_total_or_lack_one_is_refused() {
        assert!(parse(&FILE.replace("totals: 25", "totals: 26")).is_err());
        assert!(parse(&FILE.replace("totals: 25", "").replace("summary: 25", "")).is_err());
        assert!(parse("events: Ir\nfn=(1) main\n0 many\ntotals: 1\n").is_err());
    }

    #[test]
    fn more_positions_move_the_cost_column_and_suffixes_keep_arena_names() {
        let file = "positions: instr line\nevents: Ir\nfn=(1) unlink_chunk.constprop.0\n0x10 3 4\n\
                    fn=(2) f\n+1 * 6\ntotals: 10\n";
        assert_eq!(parse(file), Ok(Counts { total: 10, arena: 4 }));
    }

    #[test]
    fn the_spread_is_the_largest_difference_from_the_first_run() {
        assert_eq!(spread(&[1000, 1000]), 0.0);
        assert!((spread(&[1000, 1010]) - 1.0).abs() < 1e-9);
        assert!((spread(&[1000, 990, 1005]) - 1.0).abs() < 1e-9);
        assert_eq!(spread(&[]), 0.0);
    }
}
