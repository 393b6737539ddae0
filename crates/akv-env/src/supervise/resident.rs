//! The parent's resident memory. Most of it is akv-env's own code and constants, mapped
//! from the binary (in the pod's `akv-injector` emptyDir): the pages that start-up touched
//! stay mapped, and on each page fault the kernel maps up to 16 neighbouring pages of a
//! file at once ("fault-around"; `MADV_RANDOM` does not stop it on the kernels seen here),
//! so a process that runs a little code from all over a 3 MiB binary ends up with most of
//! it in its RSS. The parent only waits between check rounds, so once the application runs,
//! and again after each round, it unmaps (`MADV_DONTNEED`) the binary's read-only mappings
//! that hold no private copy of a page (`Anonymous: 0 kB` in `/proc/self/smaps`): their
//! pages come back from the file, as they were, when the next round needs them (a few
//! hundred minor faults per interval, from the page cache). A mapping with private copies
//! (e.g. the relocated read-only data of a static PIE) is left as it is: dropping those
//! would bring back the file's unrelocated bytes.
//!
//! A hint only: a failure changes nothing but the figure, and is not reported.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::MmapAdvise;

/// One read-only mapping of the binary: its address range `[start, end)`, and whether it
/// holds private (anonymous) pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub anonymous: bool,
}

/// The read-only mappings (code, constants) of the file `exe` in a `/proc/PID/smaps`
/// text; writable ones (data, copied on write anyway) and other files are left out. A
/// mapping whose `Anonymous:` line is missing or does not parse counts as anonymous (it is
/// never unmapped). Lines that do not parse are skipped.
pub fn read_only_mappings_of(smaps: &str, exe: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(m) = mapping_header(line, exe) {
            found.extend(current.take());
            current = m;
        } else if let (Some(m), Some(kb)) = (current.as_mut(), line.strip_prefix("Anonymous:")) {
            m.anonymous = kb.trim() != "0 kB";
        }
    }
    found.extend(current);
    found
}

/// For a mapping's first line (`START-END PERMS OFFSET DEV INODE [PATH]`): `Some(None)`
/// for a mapping that is not one of ours, `Some(Some(..))` for ours; `None` for any other
/// line (a field of the current mapping).
fn mapping_header(line: &str, exe: &str) -> Option<Option<Mapping>> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let (start, end) = (
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    );
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let path = fields.nth(3);
    let ours = path == Some(exe) && perms.as_bytes()[1] == b'-' && end > start;
    Some(ours.then_some(Mapping {
        start,
        end,
        anonymous: true,
    }))
}

/// Unmaps this process's read-only mappings of its own binary that hold no private page.
pub fn shed_own_code() {
    let (Ok(smaps), Ok(exe)) = (
        std::fs::read_to_string("/proc/self/smaps"),
        std::fs::read_link("/proc/self/exe"),
    ) else {
        return;
    };
    let Some(exe) = exe.to_str() else {
        return;
    };
    for m in read_only_mappings_of(&smaps, exe) {
        if !m.anonymous {
            dont_need(&m);
        }
    }
}

#[allow(unsafe_code)]
fn dont_need(m: &Mapping) {
    let (Some(addr), Some(len)) = (
        NonNull::new(m.start as *mut c_void),
        NonZeroUsize::new(m.end - m.start),
    ) else {
        return;
    };
    // SAFETY: `addr..addr+len` is a whole read-only mapping of this process's binary, as the
    // kernel lists it, with no private page: every page of it is the file's, unchanged,
    // and is read back from the file with the same bytes on the next access, so no memory
    // that Rust code refers to changes.
    let _ = unsafe { nix::sys::mman::madvise(addr, len.get(), MmapAdvise::MADV_DONTNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/akv-injector/akv-env";
    const SMAPS: &str = "\
55d0a0000000-55d0a0040000 r--p 00000000 00:2a 1234 /akv-injector/akv-env
Size:                256 kB
Rss:                  64 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55d0a0040000-55d0a0300000 r-xp 00040000 00:2a 1234 /akv-injector/akv-env
Rss:                1400 kB
Anonymous:             0 kB
55d0a0300000-55d0a0350000 r--p 00300000 00:2a 1234 /akv-injector/akv-env
Rss:                 280 kB
Anonymous:            96 kB
55d0a0350000-55d0a0360000 rw-p 00350000 00:2a 1234 /akv-injector/akv-env
Anonymous:            64 kB
55d0a0360000-55d0a0370000 r--p 00360000 00:2a 1234 /akv-injector/akv-env
Rss:                   4 kB
55d0a1000000-55d0a1021000 rw-p 00000000 00:00 0 [heap]
Anonymous:           132 kB
7ffd1000000-7ffd1021000 r-xp 00000000 00:00 0 [vdso]
7f0000000000-7f0000001000 r--p 00000000 08:01 99 /akv-injector/akv-env.old
Anonymous:             0 kB
zz-10 r--p 0 0 0 /akv-injector/akv-env
";

    #[test]
    fn the_binarys_read_only_mappings_and_which_hold_private_pages() {
        let m = |start, end, anonymous| Mapping {
            start,
            end,
            anonymous,
        };
        assert_eq!(
            read_only_mappings_of(SMAPS, EXE),
            [
                m(0x55d0a0000000, 0x55d0a0040000, false),
                m(0x55d0a0040000, 0x55d0a0300000, false),
                m(0x55d0a0300000, 0x55d0a0350000, true),
                // no Anonymous line: never unmapped
                m(0x55d0a0360000, 0x55d0a0370000, true),
            ]
        );
        assert!(read_only_mappings_of(SMAPS, "/bin/other").is_empty());
        assert!(read_only_mappings_of("", EXE).is_empty());
    }

    #[test]
    fn this_process_runs_on_after_shedding_its_code() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        let got = read_only_mappings_of(&smaps, exe.to_str().expect("utf-8"));
        assert!(got.iter().any(|m| !m.anonymous), "no code mapping: {got:?}");
        shed_own_code();
        // code and constants read back from the file work as before
        let table: Vec<String> = (0..64).map(|i| format!("{i:x}")).collect();
        assert_eq!(table[42], "2a");
    }
}
