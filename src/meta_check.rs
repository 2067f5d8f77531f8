//! Checks of `data.mdb` made with ordinary file reads before LMDB maps the file: its two meta
//! pages and its length. LMDB trusts both: a file shorter than its newest meta page says
//! (truncated, or cut off by a failed copy) faults with SIGBUS the first time a missing page
//! is read through the map, which kills the process. Reading with `pread` instead turns such
//! damage into `ERR_INVALID_DATABASE` naming what is wrong.
//!
//! The layout read here is LMDB's (liblmdb `mdb.c`, data format version 1, 64-bit builds):
//! a page starts with a 16-byte header (page number u64, pad u16, flags u16, lower/upper
//! u16s); pages 0 and 1 are meta pages whose body (`MDB_meta`) is the magic u32, the format
//! version u32, a fixed address, the map size u64, two 48-byte `MDB_db` records (free list,
//! main database; the free list's first u32 is the page size), the last page number u64 and
//! the transaction id u64. Integers are in the machine's byte order.
//!
//! A file may legitimately end before its last page: LMDB does not write pages that a
//! transaction allocated and freed again ("loose" pages), so the last pages may exist only in
//! the free list. When the file is short, the free list is walked (again with `pread`) and
//! every missing page must be in it.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use crate::error::{CacheError, CacheResult};

const MAGIC: u32 = 0xBEEF_C0DE;
const DATA_VERSION: u32 = 1;
pub(crate) const PAGE_HEADER: usize = 16;
const META_LEN: usize = 136;
pub(crate) const P_BRANCH: u16 = 0x01;
pub(crate) const P_LEAF: u16 = 0x02;
pub(crate) const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
pub(crate) const F_BIGDATA: u16 = 0x01;
pub(crate) const NO_PAGE: u64 = u64::MAX;
/// Deepest B-tree accepted (LMDB's own cursor stack holds 32 levels).
pub(crate) const MAX_DEPTH: usize = 32;

/// The fields of one meta page this check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) page_size: u64,
    pub(crate) free_root: u64,
    pub(crate) main_root: u64,
    pub(crate) last_page: u64,
    pub(crate) txn_id: u64,
}

/// Checks `dir/data.mdb` if it exists and is not empty (LMDB creates it otherwise).
pub fn check_data_file(dir: &Path) -> CacheResult<()> {
    if cfg!(not(target_pointer_width = "64")) {
        // The layout read here is that of 64-bit builds of LMDB.
        return Ok(());
    }
    let path = dir.join("data.mdb");
    let file = match File::open(&path) {
        Ok(f) => f,
        // Missing: LMDB creates it. Unreadable: LMDB's own open reports it as before.
        Err(_) => return Ok(()),
    };
    // A writer in another process may commit while this reads; a failure seen with a newer
    // transaction committed meanwhile is checked again on the new state.
    let mut last_failure = None;
    for _ in 0..4 {
        match check_file(&file) {
            Ok(()) => return Ok(()),
            Err(Damage { txn_id, detail }) => {
                let now = read_metas(&file).ok().map(|(_, m)| m.txn_id);
                last_failure = Some(detail);
                if now.is_none() || now == txn_id {
                    break;
                }
            }
        }
    }
    Err(CacheError::InvalidDatabase {
        path: dir.to_path_buf(),
        detail: last_failure.unwrap_or_default(),
    })
}

/// What is wrong, and with the meta pages of which transaction.
struct Damage {
    txn_id: Option<u64>,
    detail: String,
}

fn damage(txn_id: Option<u64>, detail: String) -> Damage {
    Damage { txn_id, detail }
}

fn check_file(file: &File) -> Result<(), Damage> {
    let len = file
        .metadata()
        .map_err(|e| damage(None, format!("cannot stat data.mdb: {e}")))?
        .len();
    if len == 0 {
        return Ok(());
    }
    let (metas, newest) = read_metas(file).map_err(|detail| damage(None, detail))?;
    let at = Some(newest.txn_id);
    let ps = newest.page_size;
    if metas[0].page_size != metas[1].page_size {
        return Err(damage(
            at,
            format!(
                "the meta pages disagree on the page size ({} and {})",
                metas[0].page_size, metas[1].page_size
            ),
        ));
    }
    let pages = newest
        .last_page
        .checked_add(1)
        .filter(|p| p.checked_mul(ps).is_some());
    let Some(pages) = pages else {
        return Err(damage(
            at,
            format!("meta page says the last page is {}", newest.last_page),
        ));
    };
    for (name, root) in [
        ("main database", newest.main_root),
        ("free list", newest.free_root),
    ] {
        if root != NO_PAGE && (root < 2 || root >= pages) {
            return Err(damage(
                at,
                format!(
                    "the {name}'s root page {root} is outside the database's pages 2 to {}",
                    newest.last_page
                ),
            ));
        }
    }
    let file_pages = len / ps;
    if file_pages >= pages {
        return Ok(());
    }
    // Short: every missing page must be free (see the module comment), and the roots there.
    let short = || {
        format!(
            "data.mdb is {len} bytes, but its newest meta page (transaction {}) says the \
             database has {pages} pages of {ps} bytes ({} bytes): the file was truncated",
            newest.txn_id,
            pages * ps
        )
    };
    for root in [newest.main_root, newest.free_root] {
        if root != NO_PAGE && root >= file_pages {
            return Err(damage(at, short()));
        }
    }
    // Far more missing pages than any one transaction frees: no need to walk the free list.
    if pages - file_pages > 1 << 20 {
        return Err(damage(at, short()));
    }
    let mut walk = FreeWalk {
        file,
        page_size: ps,
        file_pages,
        wanted_from: file_pages,
        found: HashSet::new(),
        visited: 0,
    };
    if newest.free_root != NO_PAGE {
        walk.tree(newest.free_root, 0)
            .map_err(|e| damage(at, format!("{}; {e}", short())))?;
    }
    if (file_pages..pages).all(|p| walk.found.contains(&p)) {
        Ok(())
    } else {
        Err(damage(at, short()))
    }
}

/// Reads both meta pages; returns them and the newest (the one LMDB opens).
pub(crate) fn read_metas(file: &File) -> Result<([Meta; 2], Meta), String> {
    let first = read_meta(file, 0)?;
    let second = read_meta(file, first.page_size)?;
    let newest = if second.txn_id > first.txn_id {
        second
    } else {
        first
    };
    Ok(([first, second], newest))
}

fn read_meta(file: &File, offset: u64) -> Result<Meta, String> {
    let number = if offset == 0 { 0 } else { 1 };
    let mut buf = [0u8; PAGE_HEADER + META_LEN];
    read_at(file, &mut buf, offset).map_err(|e| format!("cannot read meta page {number}: {e}"))?;
    let flags = u16_at(&buf, 10);
    if flags & P_META == 0 {
        return Err(format!(
            "page {number} is not a meta page (flags {flags:#06x})"
        ));
    }
    let m = &buf[PAGE_HEADER..];
    let magic = u32_at(m, 0);
    if magic != MAGIC {
        return Err(format!(
            "meta page {number} has magic {magic:#010x}, not LMDB's {MAGIC:#010x}"
        ));
    }
    let version = u32_at(m, 4);
    if version != DATA_VERSION {
        return Err(format!(
            "meta page {number} has LMDB data format version {version}, not {DATA_VERSION}"
        ));
    }
    // MDB_db records at 24 (free list) and 72 (main); the free list's pad is the page size.
    let page_size = u32_at(m, 24) as u64;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("meta page {number} has page size {page_size}"));
    }
    Ok(Meta {
        page_size,
        free_root: u64_at(m, 24 + 40),
        main_root: u64_at(m, 72 + 40),
        last_page: u64_at(m, 120),
        txn_id: u64_at(m, 128),
    })
}

/// Collects the free list's page numbers from `wanted_from` on.
struct FreeWalk<'f> {
    file: &'f File,
    page_size: u64,
    file_pages: u64,
    wanted_from: u64,
    found: HashSet<u64>,
    visited: u64,
}

impl FreeWalk<'_> {
    fn page(&mut self, number: u64, count: u64) -> Result<Vec<u8>, String> {
        self.visited += count;
        if self.visited > self.file_pages {
            return Err("the free list loops".into());
        }
        if number < 2 || number.saturating_add(count) > self.file_pages {
            return Err(format!("free list page {number} is outside the file"));
        }
        let mut buf = vec![0u8; (self.page_size * count) as usize];
        read_at(self.file, &mut buf, number * self.page_size)
            .map_err(|e| format!("cannot read page {number}: {e}"))?;
        Ok(buf)
    }

    fn tree(&mut self, number: u64, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the free list is deeper than LMDB allows".into());
        }
        let page = self.page(number, 1)?;
        let flags = u16_at(&page, 10);
        let lower = u16_at(&page, 12) as usize;
        if lower < PAGE_HEADER || lower > page.len() {
            return Err(format!("free list page {number} has a bad header"));
        }
        let keys = (lower - PAGE_HEADER) / 2;
        for i in 0..keys {
            let at = u16_at(&page, PAGE_HEADER + 2 * i) as usize;
            let node = page
                .get(at..at + 8)
                .ok_or_else(|| format!("free list page {number} has a node outside it"))?;
            let (lo, hi, nflags, ksize) = (
                u16_at(node, 0) as u64,
                u16_at(node, 2) as u64,
                u16_at(node, 4),
                u16_at(node, 6) as usize,
            );
            if flags & P_BRANCH != 0 {
                self.tree(lo | hi << 16 | (nflags as u64) << 32, depth + 1)?;
            } else if flags & P_LEAF != 0 {
                let size = (lo | hi << 16) as usize;
                let data_at = at + 8 + ksize;
                if nflags & F_BIGDATA != 0 {
                    let big = page
                        .get(data_at..data_at + 8)
                        .ok_or_else(|| format!("free list page {number} has a bad node"))?;
                    let first = u64_at(big, 0);
                    let count = (PAGE_HEADER + size).div_ceil(self.page_size as usize) as u64;
                    let over = self.page(first, count)?;
                    if u16_at(&over, 10) & P_OVERFLOW == 0 {
                        return Err(format!("free list page {first} is not an overflow page"));
                    }
                    self.ids(over.get(PAGE_HEADER..PAGE_HEADER + size))?;
                } else {
                    self.ids(page.get(data_at..data_at + size))?;
                }
            } else {
                return Err(format!("free list page {number} has flags {flags:#06x}"));
            }
        }
        Ok(())
    }

    /// One free list record: a count, then that many page numbers.
    fn ids(&mut self, data: Option<&[u8]>) -> Result<(), String> {
        let data = data
            .filter(|d| d.len() >= 8)
            .ok_or("a free list record runs past its page")?;
        let count = u64_at(data, 0);
        let listed = data.len() / 8 - 1;
        if count as usize > listed {
            return Err("a free list record is shorter than its count".into());
        }
        for i in 0..count as usize {
            let page = u64_at(data, 8 + 8 * i);
            if page >= self.wanted_from {
                self.found.insert(page);
            }
        }
        Ok(())
    }
}

pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lmdb-cache-meta-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes `rounds` transactions of puts and deletes straight into a store at `d`.
    fn churn(d: &Path, rounds: usize, check_each: bool) {
        let store = Store::open(d, &StoreOptions::default()).unwrap();
        let value = vec![b'"'; 3000];
        for round in 0..rounds {
            let (g, mut txn) = store.write_txn(None).unwrap();
            for i in 0..400 {
                let key = format!("k{:06}", (i * 7919 + round * 131) % 5000);
                if (i + round) % 3 == 0 {
                    store.entries.delete(&mut txn, key.as_bytes()).unwrap();
                } else {
                    store.entries.put(&mut txn, key.as_bytes(), &value).unwrap();
                }
            }
            txn.commit().unwrap();
            drop(g);
            if check_each {
                check_data_file(d).unwrap();
            }
        }
        store.close();
    }

    fn invalid_detail(d: &Path) -> String {
        match check_data_file(d) {
            Err(CacheError::InvalidDatabase { detail, .. }) => detail,
            other => panic!("expected ERR_INVALID_DATABASE, got {other:?}"),
        }
    }

    #[test]
    fn a_healthy_file_passes_after_every_commit_of_puts_and_deletes() {
        let d = dir("healthy");
        check_data_file(&d).unwrap(); // no data.mdb yet
        churn(&d, 60, true);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_truncated_file_is_refused_naming_its_length() {
        let d = dir("truncated");
        churn(&d, 10, false);
        let file = d.join("data.mdb");
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let detail = invalid_detail(&d);
        assert!(detail.contains("truncated"), "{detail}");
        // And Store::open refuses it before LMDB maps the file.
        let err = Store::open(&d, &StoreOptions::default()).err().unwrap();
        assert_eq!(err.code(), "ERR_INVALID_DATABASE");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_meta_fields_are_refused_naming_the_field() {
        let d = dir("meta");
        churn(&d, 3, false);
        let file = d.join("data.mdb");
        let healthy = std::fs::read(&file).unwrap();
        let page = u32_at(&healthy, PAGE_HEADER + 24) as usize;
        let cases: [(usize, &[u8], &str); 4] = [
            (PAGE_HEADER, &[0, 0, 0, 0], "magic"),
            (page + PAGE_HEADER + 4, &[9, 0, 0, 0], "version"),
            (page + 10, &[0, 0], "not a meta page"),
            (PAGE_HEADER + 24, &[0, 3, 0, 0], "page size"),
        ];
        for (at, bytes, expected) in cases {
            let mut damaged = healthy.clone();
            damaged[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&file, &damaged).unwrap();
            let detail = invalid_detail(&d);
            assert!(detail.contains(expected), "{expected}: {detail}");
        }
        // A root page past the last page, in the newest meta page.
        let mut damaged = healthy.clone();
        let newest =
            if u64_at(&healthy, page + PAGE_HEADER + 128) > u64_at(&healthy, PAGE_HEADER + 128) {
                page
            } else {
                0
            };
        let root = newest + PAGE_HEADER + 112;
        damaged[root..root + 8].copy_from_slice(&1_000_000u64.to_ne_bytes());
        std::fs::write(&file, &damaged).unwrap();
        let detail = invalid_detail(&d);
        assert!(detail.contains("root page 1000000"), "{detail}");
        std::fs::write(&file, &healthy).unwrap();
        check_data_file(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_ending_before_its_last_page_passes_when_the_missing_pages_are_free() {
        // Pages a transaction allocates and frees again are never written: here the puts of
        // each transaction are mostly (9 in 10) deleted before it commits.
        let d = dir("loose");
        let store = Store::open(&d, &StoreOptions::default()).unwrap();
        let value = vec![b'"'; 3000];
        let mut short = 0;
        for round in 0..20 {
            let (g, mut txn) = store.write_txn(None).unwrap();
            let keys: Vec<String> = (0..2000).map(|i| format!("t{round}-{i:05}")).collect();
            for key in &keys {
                store.entries.put(&mut txn, key.as_bytes(), &value).unwrap();
            }
            for key in keys.iter().filter(|k| !k.ends_with('0')) {
                store.entries.delete(&mut txn, key.as_bytes()).unwrap();
            }
            txn.commit().unwrap();
            drop(g);
            let file = File::open(d.join("data.mdb")).unwrap();
            let (_, newest) = read_metas(&file).unwrap();
            let len = file.metadata().unwrap().len();
            if len < (newest.last_page + 1) * newest.page_size {
                short += 1;
            }
            check_data_file(&d).unwrap();
        }
        store.close();
        assert!(
            short > 0,
            "no transaction left the file short of its last page"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
