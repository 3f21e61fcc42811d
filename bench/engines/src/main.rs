use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{KeyspaceCreateOptions, PersistMode};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

const NKEYS: u64 = 100_000;
const VLEN: usize = 100;
const RUN: Duration = Duration::from_secs(3);
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("crdt");

fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer: the "hash" used for the 8-byte prefix
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mix(i).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn key(&mut self) -> [u8; 16] {
        key(self.next() % NKEYS)
    }
}

/// "Merge": new ~100-byte value derived from the old one (so the read is used).
fn merge(old: Option<&[u8]>, ctr: u64, out: &mut [u8; VLEN]) {
    let seed = old.map(|o| o[0] as u64 ^ o.len() as u64).unwrap_or(0);
    let v = mix(ctr ^ seed);
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v >> ((i % 8) * 8)) as u8 ^ i as u8;
    }
}

// ---------------- redb with a write-ahead log (what Haze does) ----------------
/// redb commits without syncing; the group's keys and values are appended to a log that is
/// fdatasync'ed once per group.
struct RedbLog {
    redb: Redb,
    log: std::fs::File,
}
impl RedbLog {
    fn group(&mut self, rng: &mut Rng, b: usize, ctr: &mut u64) {
        use std::io::Write;
        let mut record = Vec::with_capacity(b * (16 + VLEN));
        let mut tx = self.redb.db.begin_write().unwrap();
        tx.set_durability(Durability::None).unwrap();
        {
            let mut t = tx.open_table(TABLE).unwrap();
            let mut v = [0u8; VLEN];
            for _ in 0..b {
                let k = rng.key();
                {
                    let old = t.get(&k[..]).unwrap();
                    merge(old.as_ref().map(|g| g.value()), *ctr, &mut v);
                }
                t.insert(&k[..], &v[..]).unwrap();
                record.extend_from_slice(&k);
                record.extend_from_slice(&v);
                *ctr += 1;
            }
        }
        self.log.write_all(&record).unwrap();
        self.log.sync_data().unwrap();
        tx.commit().unwrap();
    }
}

// ---------------- redb ----------------
struct Redb {
    db: redb::Database,
}
impl Redb {
    fn open(p: &Path) -> Self {
        let db = redb::Database::create(p).unwrap();
        let s = Redb { db };
        let mut tx = s.db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate).unwrap();
        {
            let mut t = tx.open_table(TABLE).unwrap();
            let mut v = [0u8; VLEN];
            for i in 0..NKEYS {
                merge(None, i, &mut v);
                t.insert(&key(i)[..], &v[..]).unwrap();
            }
        }
        tx.commit().unwrap();
        s
    }
    fn group(&self, rng: &mut Rng, b: usize, dur: Durability, ctr: &mut u64) {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_durability(dur).unwrap();
        {
            let mut t = tx.open_table(TABLE).unwrap();
            let mut v = [0u8; VLEN];
            for _ in 0..b {
                let k = rng.key();
                {
                    let old = t.get(&k[..]).unwrap();
                    merge(old.as_ref().map(|g| g.value()), *ctr, &mut v);
                }
                t.insert(&k[..], &v[..]).unwrap();
                *ctr += 1;
            }
        }
        tx.commit().unwrap(); // Immediate => fdatasync before returning
    }
    fn reads(&self, rng: &mut Rng) -> f64 {
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(TABLE).unwrap();
        let start = Instant::now();
        let mut n = 0u64;
        let mut acc = 0u64;
        while start.elapsed() < RUN {
            for _ in 0..1024 {
                let k = rng.key();
                let g = t.get(&k[..]).unwrap().unwrap();
                acc += g.value()[3] as u64;
            }
            n += 1024;
        }
        black_box(acc);
        n as f64 / start.elapsed().as_secs_f64()
    }
}

// ---------------- fjall ----------------
struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}
#[derive(Clone, Copy)]
enum FSync {
    None,
    Mode(PersistMode),
}
impl Fjall {
    fn open(p: &Path) -> Self {
        let db = fjall::Database::builder(p).open().unwrap();
        let ks = db.keyspace("crdt", KeyspaceCreateOptions::default).unwrap();
        let mut batch = db.batch();
        let mut v = [0u8; VLEN];
        for i in 0..NKEYS {
            merge(None, i, &mut v);
            batch.insert(&ks, key(i), v);
        }
        batch.commit().unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
        Fjall { db, ks }
    }
    fn group(&self, rng: &mut Rng, b: usize, sync: FSync, ctr: &mut u64, overlay: &mut HashMap<[u8; 16], [u8; VLEN]>) {
        // WriteBatch is write-only: keep an overlay so a key merged twice in one group sees its own write.
        overlay.clear();
        let mut batch = self.db.batch();
        let mut v = [0u8; VLEN];
        for _ in 0..b {
            let k = rng.key();
            if let Some(o) = overlay.get(&k) {
                merge(Some(&o[..]), *ctr, &mut v);
            } else {
                let old = self.ks.get(k).unwrap();
                merge(old.as_deref(), *ctr, &mut v);
            }
            batch.insert(&self.ks, k, v);
            overlay.insert(k, v);
            *ctr += 1;
        }
        batch.commit().unwrap(); // default: PersistMode::Buffer (write() to OS, no fsync)
        if let FSync::Mode(m) = sync {
            self.db.persist(m).unwrap(); // SyncAll => fsync of the journal
        }
    }
    fn reads(&self, rng: &mut Rng) -> f64 {
        let start = Instant::now();
        let mut n = 0u64;
        let mut acc = 0u64;
        while start.elapsed() < RUN {
            for _ in 0..1024 {
                let k = rng.key();
                let g = self.ks.get(k).unwrap().unwrap();
                acc += g[3] as u64;
            }
            n += 1024;
        }
        black_box(acc);
        n as f64 / start.elapsed().as_secs_f64()
    }
}

fn timed(mut f: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut groups = 0u64;
    while start.elapsed() < RUN {
        f();
        groups += 1;
    }
    (groups, start.elapsed().as_secs_f64())
}

fn main() {
    let dir = std::env::var("ENGINE_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("# {NKEYS} keys, {VLEN}-byte values, read-merge-write groups of B merges, {RUN:?} per case");

    let r = Redb::open(&dir.join("redb.db"));
    let f = Fjall::open(&dir.join("fjall"));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    println!("point reads        redb {:>10.0} gets/s   fjall {:>10.0} gets/s", r.reads(&mut rng), f.reads(&mut rng));

    let mut ctr = 0u64;
    let mut overlay = HashMap::new();
    let mut logged = RedbLog {
        redb: Redb::open(&dir.join("redb-log.db")),
        log: std::fs::File::create(dir.join("wal.log")).unwrap(),
    };
    let rate = |(g, s): (u64, f64), b: usize| (g * b as u64) as f64 / s;
    println!("durable groups (one fsync each), merges/s:");
    for &b in &[1usize, 16, 64, 256] {
        let redb = rate(timed(|| r.group(&mut rng, b, Durability::Immediate, &mut ctr)), b);
        let redb_log = rate(timed(|| logged.group(&mut rng, b, &mut ctr)), b);
        let fjall = rate(timed(|| f.group(&mut rng, b, FSync::Mode(PersistMode::SyncAll), &mut ctr, &mut overlay)), b);
        println!("  B={b:<3}  redb {redb:>9.0}   redb+log {redb_log:>9.0}   fjall {fjall:>9.0}");
    }
    println!("groups without fsync, merges/s:");
    for &b in &[1usize, 16, 64, 256] {
        let redb = rate(timed(|| r.group(&mut rng, b, Durability::None, &mut ctr)), b);
        let fjall = rate(timed(|| f.group(&mut rng, b, FSync::None, &mut ctr, &mut overlay)), b);
        println!("  B={b:<3}  redb {redb:>9.0}   fjall {fjall:>9.0}");
    }
    r.group(&mut rng, 1, Durability::Immediate, &mut ctr);
    println!("point reads after  redb {:>10.0} gets/s   fjall {:>10.0} gets/s", r.reads(&mut rng), f.reads(&mut rng));
    let _ = std::fs::remove_dir_all(&dir);
}
