//! The page walk of `lmdb-cache verify`: every page of the B-trees in `data.mdb` (the main
//! database, the named databases it holds, their overflow pages, and the free list) read with
//! ordinary file reads, never through LMDB's map, so that a damaged page is reported by its
//! number ("damaged at page N: ...") instead of faulting. The layout is LMDB's (see
//! `meta_check`); a node is `[u16 lo][u16 hi][u16 flags][u16 key size][key][data]`, a branch
//! node's child page being `lo | hi << 16 | flags << 32`, a leaf node's data size `lo | hi <<
//! 16`, its data an overflow page number with F_BIGDATA and a database record (`MDB_db`,
//! root page at byte 40) with F_SUBDATA.
//!
//! Checked per page: it lies inside the database and the file, its header names it, its
//! flags fit where it was reached from, its node offsets and sizes stay inside it, its keys
//! ascend, and no page is reached twice. A damaged page's children are not followed.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use crate::meta_check::{
    read_at, read_metas, u16_at, u32_at, u64_at, F_BIGDATA, MAX_DEPTH, NO_PAGE, PAGE_HEADER,
    P_BRANCH, P_LEAF, P_OVERFLOW,
};

const F_SUBDATA: u16 = 0x02;
const NODE_HEADER: usize = 8;
/// The root page's offset in an `MDB_db` record.
const DB_ROOT_AT: usize = 40;
const DB_RECORD_LEN: usize = 48;
/// Damaged pages listed in full in a report (the rest are only counted).
const MAX_LISTED: usize = 100;

#[derive(Debug, Default)]
pub struct PageReport {
    /// Pages read (overflow pages counted one by one).
    pub pages: u64,
    /// (page number, what is wrong), at most [`MAX_LISTED`], in the order met.
    pub damaged: Vec<(u64, String)>,
    pub damaged_count: u64,
}

/// Walks the pages of `dir/data.mdb`. Fails only when the file or its meta pages cannot be
/// read at all (`meta_check` reports those).
pub fn walk(dir: &Path) -> Result<PageReport, String> {
    let file =
        File::open(dir.join("data.mdb")).map_err(|e| format!("cannot open data.mdb: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat data.mdb: {e}"))?
        .len();
    let (_, newest) = read_metas(&file)?;
    let mut walk = Walk {
        file: &file,
        page_size: newest.page_size,
        db_pages: newest.last_page + 1,
        file_pages: len / newest.page_size,
        seen: HashSet::new(),
        report: PageReport::default(),
    };
    if newest.main_root != NO_PAGE {
        walk.tree(None, newest.main_root, 0, Tree::Main);
    }
    if newest.free_root != NO_PAGE {
        walk.tree(None, newest.free_root, 0, Tree::FreeList);
    }
    Ok(walk.report)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// The main database: its leaves may hold named databases.
    Main,
    /// A named database (`expiries`, `meta`).
    Named,
    /// LMDB's free list: integer keys, not in byte order.
    FreeList,
}

struct Walk<'f> {
    file: &'f File,
    page_size: u64,
    /// Pages of the database: up to the newest meta page's last page.
    db_pages: u64,
    /// Pages the file holds.
    file_pages: u64,
    seen: HashSet<u64>,
    report: PageReport,
}

impl Walk<'_> {
    fn damaged(&mut self, page: u64, detail: String) {
        self.report.damaged_count += 1;
        if self.report.damaged.len() < MAX_LISTED {
            self.report.damaged.push((page, detail));
        }
    }

    /// Reads `count` pages from `number` if they exist and were not reached before; a
    /// reference to a page that does not is damage of the page holding it (`from`).
    fn read(&mut self, from: Option<u64>, number: u64, count: u64) -> Option<Vec<u8>> {
        let at = from.unwrap_or(number);
        let what = if from.is_some() {
            "refers to"
        } else {
            "has its root at"
        };
        let end = number.checked_add(count);
        if number < 2 || end.is_none_or(|end| end > self.db_pages) {
            let last = self.db_pages.saturating_sub(1);
            self.damaged(
                at,
                format!("{what} page {number}, outside the database's pages 2 to {last}"),
            );
            return None;
        }
        if end.is_none_or(|end| end > self.file_pages) {
            let last = self.file_pages.saturating_sub(1);
            self.damaged(
                at,
                format!(
                    "{what} page {number}, past the end of data.mdb (pages 0 to {last}: truncated)"
                ),
            );
            return None;
        }
        for p in number..number + count {
            if !self.seen.insert(p) {
                self.damaged(at, format!("refers to page {p}, which another page refers to too (the tree loops or shares pages)"));
                return None;
            }
        }
        let mut page = vec![0u8; (self.page_size * count) as usize];
        if let Err(e) = read_at(self.file, &mut page, number * self.page_size) {
            self.damaged(number, format!("cannot be read: {e}"));
            return None;
        }
        self.report.pages += count;
        let named = u64_at(&page, 0);
        if named != number {
            self.damaged(number, format!("its header names page {named}"));
            return None;
        }
        Some(page)
    }

    fn tree(&mut self, from: Option<u64>, number: u64, depth: usize, tree: Tree) {
        if depth > MAX_DEPTH {
            self.damaged(
                from.unwrap_or(number),
                "the tree is deeper than LMDB allows".into(),
            );
            return;
        }
        let Some(page) = self.read(from, number, 1) else {
            return;
        };
        let flags = u16_at(&page, 10);
        let (lower, upper) = (u16_at(&page, 12) as usize, u16_at(&page, 14) as usize);
        let kind = flags & (P_BRANCH | P_LEAF | P_OVERFLOW);
        if kind != P_BRANCH && kind != P_LEAF {
            self.damaged(
                number,
                format!("has flags {flags:#06x}, not those of a branch or leaf page"),
            );
            return;
        }
        if lower < PAGE_HEADER
            || lower > upper
            || upper > page.len()
            || !(lower - PAGE_HEADER).is_multiple_of(2)
        {
            self.damaged(
                number,
                format!("has free space bounds {lower}..{upper} outside the page"),
            );
            return;
        }
        let nodes = (lower - PAGE_HEADER) / 2;
        if nodes == 0 {
            self.damaged(number, "holds no nodes".into());
            return;
        }
        let mut previous_key: Option<&[u8]> = None;
        let mut children = Vec::new();
        for i in 0..nodes {
            let at = u16_at(&page, PAGE_HEADER + 2 * i) as usize;
            let Some(node) = page.get(at..at + NODE_HEADER).filter(|_| at >= upper) else {
                self.damaged(
                    number,
                    format!("node {i} starts at byte {at}, outside the page's nodes"),
                );
                return;
            };
            let (lo, hi, nflags) = (
                u16_at(node, 0) as u64,
                u16_at(node, 2) as u64,
                u16_at(node, 4),
            );
            let key_size = u16_at(node, 6) as usize;
            let key_at = at + NODE_HEADER;
            let Some(key) = page.get(key_at..key_at + key_size) else {
                self.damaged(number, format!("node {i}'s key runs past the page"));
                return;
            };
            // A branch page's first key is never compared (it stands for everything below).
            let compared = kind == P_LEAF || i > 0;
            if tree != Tree::FreeList && compared {
                if previous_key.is_some_and(|p| key <= p) {
                    self.damaged(
                        number,
                        format!("node {i}'s key is not after node {}'s", i - 1),
                    );
                    return;
                }
                previous_key = Some(key);
            }
            let data_at = key_at + key_size;
            if kind == P_BRANCH {
                children.push((lo | hi << 16 | (nflags as u64) << 32, tree));
                continue;
            }
            let size = (lo | hi << 16) as usize;
            if nflags & F_BIGDATA != 0 {
                let Some(first) = page.get(data_at..data_at + 8).map(|b| u64_at(b, 0)) else {
                    self.damaged(
                        number,
                        format!("node {i}'s overflow page number runs past the page"),
                    );
                    return;
                };
                let count = (PAGE_HEADER + size).div_ceil(self.page_size as usize) as u64;
                self.overflow(number, first, count);
                continue;
            }
            let Some(data) = page.get(data_at..data_at + size) else {
                self.damaged(number, format!("node {i}'s data runs past the page"));
                return;
            };
            if nflags & F_SUBDATA != 0 {
                if tree != Tree::Main || data.len() != DB_RECORD_LEN {
                    self.damaged(
                        number,
                        format!("node {i} holds a database record where none can be"),
                    );
                    return;
                }
                let root = u64_at(data, DB_ROOT_AT);
                if root != NO_PAGE {
                    children.push((root, Tree::Named));
                }
            }
        }
        let child_depth = if kind == P_BRANCH { depth + 1 } else { 0 };
        for (child, child_tree) in children {
            self.tree(Some(number), child, child_depth, child_tree);
        }
    }

    /// An overflow run of `count` pages from `first`, referred to by leaf page `from`.
    fn overflow(&mut self, from: u64, first: u64, count: u64) {
        let Some(run) = self.read(Some(from), first, count) else {
            return;
        };
        let flags = u16_at(&run, 10);
        if flags & P_OVERFLOW == 0 {
            self.damaged(
                first,
                format!("has flags {flags:#06x}, not those of an overflow page"),
            );
        } else if (u32_at(&run, 12) as u64) < count {
            self.damaged(
                first,
                format!(
                    "is an overflow run of {} pages, not the {count} its value needs",
                    u32_at(&run, 12)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};

    fn filled(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("lmdb-cache-pages-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let store = Store::open(&d, &StoreOptions::default()).unwrap();
        for round in 0..20 {
            let (g, mut txn) = store.write_txn(None).unwrap();
            for i in 0..500 {
                let key = format!("k{:06}", (i * 7919 + round * 131) % 8000);
                // Some values past a page: overflow runs too.
                let value = vec![b'v'; if i % 50 == 0 { 9000 } else { 200 }];
                if (i + round) % 4 == 0 {
                    store.entries.delete(&mut txn, key.as_bytes()).unwrap();
                } else {
                    store.entries.put(&mut txn, key.as_bytes(), &value).unwrap();
                }
            }
            txn.commit().unwrap();
            drop(g);
        }
        store.close();
        d
    }

    fn overwrite(d: &Path, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("data.mdb"))
            .unwrap();
        f.write_all_at(bytes, offset).unwrap();
    }

    #[test]
    fn a_healthy_file_has_no_damaged_pages_and_every_tree_page_is_read() {
        let d = filled("healthy");
        let report = walk(&d).unwrap();
        assert_eq!(report.damaged, vec![]);
        assert!(report.pages > 100, "{} pages", report.pages);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn damaged_pages_are_named_by_number() {
        let d = filled("damaged");
        let file = File::open(d.join("data.mdb")).unwrap();
        let (_, meta) = read_metas(&file).unwrap();
        let ps = meta.page_size;
        let root = meta.main_root;
        // The root's header names another page.
        overwrite(&d, root * ps, &12345u64.to_ne_bytes());
        assert_eq!(
            walk(&d).unwrap().damaged,
            vec![(root, "its header names page 12345".to_string())]
        );
        // The root's flags say overflow page.
        overwrite(&d, root * ps, &root.to_ne_bytes());
        overwrite(&d, root * ps + 10, &P_OVERFLOW.to_ne_bytes());
        let damaged = walk(&d).unwrap().damaged;
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].0, root);
        assert!(
            damaged[0].1.starts_with("has flags 0x0004"),
            "{}",
            damaged[0].1
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
