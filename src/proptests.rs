//! Property tests of the decoders that read untrusted bytes: `keys::classify` (stored keys
//! met while scanning) and `writer::parse_batch` / `writer::parse_flush` (requests encoded by JS).
//!
//! No crate: a deterministic PRNG (splitmix64, fixed seeds) drives many iterations over
//! varied lengths, random bytes, well-formed inputs and mutations of them (truncations,
//! appended bytes, flipped bits, length fields replaced by huge values). Every decoder must
//! return (Ok or Err), never panic, never allocate by a declared length, and what it accepts
//! must be consistent with the encoder.

use crate::batch::{parse_batch, parse_flush, Op};
use crate::keys::{self, StoredKey, StoredKind, DIRECT_KEY_MAX, LONG_KEY_LEN};
use crate::record::{expiry_from_js, Payload};

/// splitmix64: tiny, deterministic, good enough to drive inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// A byte biased towards the values the formats give meaning to.
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 14] = [
            0x00, 0x01, 0x02, 0x04, 0x07, 0x0f, 0x10, 0x11, 0x13, 0x17, 0x1f, 0x7f, 0x80, 0xff,
        ];
        if self.chance(30) {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
    /// A length: mostly small, sometimes at the key-form boundaries, sometimes large.
    fn len(&mut self) -> usize {
        const EDGES: [usize; 12] = [0, 1, 2, 8, 13, 479, 480, 481, 496, 497, 498, 511];
        match self.below(10) {
            0..=5 => self.below(40),
            6 | 7 => EDGES[self.below(EDGES.len())],
            8 => self.below(2048),
            _ => self.below(70_000),
        }
    }
    /// A u32 length field: huge, off by one, or random.
    fn hostile_u32(&mut self, honest: u32) -> u32 {
        match self.below(8) {
            0 => u32::MAX,
            1 => u32::MAX - 3,
            2 => 0x8000_0000,
            3 => 0x7fff_ffff,
            4 => honest.wrapping_add(1),
            5 => honest.wrapping_sub(1),
            6 => 0,
            _ => self.next() as u32,
        }
    }
}

/// Overwrites 4 bytes at `at` (when they fit) with a hostile little-endian u32.
fn clobber_u32(rng: &mut Rng, bytes: &mut [u8], at: usize) {
    if at + 4 <= bytes.len() {
        let honest = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&rng.hostile_u32(honest).to_le_bytes());
    }
}

/// Random damage to a well-formed encoding.
fn mutate(rng: &mut Rng, good: &[u8], length_fields: &[usize]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let cut = rng.below(bytes.len());
                bytes.truncate(cut);
            }
            1 => {
                let n = 1 + rng.below(8);
                let extra = rng.bytes(n);
                bytes.extend_from_slice(&extra);
            }
            2 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            3 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.byte();
            }
            _ if !length_fields.is_empty() => {
                let at = length_fields[rng.below(length_fields.len())];
                clobber_u32(rng, &mut bytes, at);
            }
            _ => {}
        }
    }
    bytes
}

fn is_subslice(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

// ---------------------------------------------------------------------------------------
// keys::classify and the stored-key encoding

fn check_classify(stored: &[u8]) {
    match keys::classify(stored) {
        Some(StoredKind::Direct(k)) => {
            assert!(k.len() <= DIRECT_KEY_MAX);
            assert_eq!(stored.len(), k.len() + 1);
            assert_eq!(&stored[..k.len()], k);
            assert_eq!(stored[k.len()], 0x00);
            assert_eq!(StoredKey::encode(k).as_bytes(), stored);
        }
        Some(StoredKind::Long) => {
            assert_eq!(stored.len(), LONG_KEY_LEN);
            assert_eq!(stored[DIRECT_KEY_MAX], 0xff);
        }
        None => {}
    }
}

#[test]
fn classify_never_panics_and_agrees_with_the_encoder() {
    let mut rng = Rng::new(0x5eed_0003);
    for len in 0..=600usize {
        for _ in 0..10 {
            let mut bytes = rng.bytes(len);
            if !bytes.is_empty() && rng.chance(40) {
                *bytes.last_mut().unwrap() = 0x00;
            }
            if bytes.len() > DIRECT_KEY_MAX && rng.chance(40) {
                bytes[DIRECT_KEY_MAX] = 0xff;
            }
            check_classify(&bytes);
        }
    }
    for _ in 0..5_000 {
        let len = rng.len().min(2048);
        check_classify(&rng.bytes(len));
    }
}

#[test]
fn any_full_key_encodes_to_a_storable_key_that_classifies_back() {
    let mut rng = Rng::new(0x5eed_0004);
    for _ in 0..10_000 {
        let len = rng.len().min(4096);
        let full = rng.bytes(len);
        let stored = StoredKey::encode(&full);
        assert!(!stored.as_bytes().is_empty() && stored.as_bytes().len() <= 511);
        match keys::classify(stored.as_bytes()) {
            Some(StoredKind::Direct(k)) => assert_eq!(k, &full[..]),
            Some(StoredKind::Long) => {
                assert!(full.len() > DIRECT_KEY_MAX);
                assert!(stored.is_long());
            }
            None => panic!("our own stored key of a {len}-byte key is not recognised"),
        }
        // Every key with a given prefix is found by the prefix scan.
        let cut = rng.below(full.len() + 1);
        assert!(stored
            .as_bytes()
            .starts_with(&keys::scan_start(&full[..cut])));
    }
}

#[test]
fn stored_key_order_follows_full_key_order() {
    // Exact, except between two long keys sharing their first DIRECT_KEY_MAX bytes.
    let mut rng = Rng::new(0x5eed_0005);
    for _ in 0..20_000 {
        let base_len = rng.len().min(600);
        let base = rng.bytes(base_len);
        let mut other = base.clone();
        // Derive a near neighbour: change, drop or append bytes around a random position.
        match rng.below(3) {
            0 if !other.is_empty() => {
                let at = rng.below(other.len());
                other[at] = rng.byte();
            }
            1 => {
                let cut = rng.below(other.len() + 1);
                other.truncate(cut);
            }
            _ => {
                let n = 1 + rng.below(600);
                let extra = rng.bytes(n);
                other.extend_from_slice(&extra);
            }
        }
        let (a, b) = (StoredKey::encode(&base), StoredKey::encode(&other));
        let both_long_same_prefix =
            a.is_long() && b.is_long() && base[..DIRECT_KEY_MAX] == other[..DIRECT_KEY_MAX];
        if !both_long_same_prefix {
            assert_eq!(
                base.cmp(&other),
                a.as_bytes().cmp(b.as_bytes()),
                "order of {} and {} byte keys",
                base.len(),
                other.len()
            );
        } else if base != other {
            assert_ne!(
                a.as_bytes(),
                b.as_bytes(),
                "distinct long keys share a slot"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// writer::parse_batch / parse_flush

struct OwnedOp {
    put: bool,
    expiry: Option<f64>,
    key: Vec<u8>,
    json: Option<Vec<u8>>,
    msgpack: bool,
}

fn random_ops(rng: &mut Rng) -> Vec<OwnedOp> {
    let count = match rng.below(10) {
        0 => 0,
        1..=7 => 1 + rng.below(4),
        _ => rng.below(40),
    };
    (0..count)
        .map(|_| {
            let put = rng.chance(70);
            let key_len = if rng.chance(90) {
                rng.below(30)
            } else {
                rng.len()
            };
            OwnedOp {
                put,
                expiry: rng.chance(40).then(|| match rng.below(5) {
                    0 => f64::from_bits(rng.next()),
                    1 => f64::NAN,
                    2 => f64::INFINITY,
                    3 => -1e300,
                    _ => (rng.next() % 4_000_000_000_000) as f64,
                }),
                key: rng.bytes(key_len),
                msgpack: rng.chance(50),
                json: (put && rng.chance(85)).then(|| {
                    let n = if rng.chance(90) {
                        rng.below(50)
                    } else {
                        rng.len()
                    };
                    rng.bytes(n)
                }),
            }
        })
        .collect()
}

/// The JS encoding of a batch (index.cjs writeOps); returns the bytes and the offsets of
/// its length fields (count, key lengths, JSON lengths).
fn encode_ops(ops: &[OwnedOp]) -> (Vec<u8>, Vec<usize>) {
    let mut out = (ops.len() as u32).to_le_bytes().to_vec();
    let mut fields = vec![0];
    for op in ops {
        out.push(if op.put { 1 } else { 2 });
        let mut flags = 0u8;
        if op.expiry.is_some() {
            flags |= 1;
        }
        if op.put && op.json.is_none() {
            flags |= 2;
        }
        if op.msgpack {
            flags |= 4;
        }
        out.push(flags);
        if let Some(x) = op.expiry {
            out.extend_from_slice(&x.to_le_bytes());
        }
        fields.push(out.len());
        out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&op.key);
        if let (true, Some(json)) = (op.put, &op.json) {
            fields.push(out.len());
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(json);
        }
    }
    (out, fields)
}

fn check_batch(bytes: &[u8]) {
    if let Ok(ops) = parse_batch(bytes) {
        for op in &ops {
            match op {
                Op::Put {
                    full_key, value, ..
                } => {
                    assert!(is_subslice(full_key, bytes));
                    if let Some(j) = value.bytes() {
                        assert!(is_subslice(j, bytes));
                    }
                }
                Op::Del { full_key }
                | Op::DelLive { full_key }
                | Op::LeaseTake { full_key, .. }
                | Op::LeaseDrop { full_key, .. } => assert!(is_subslice(full_key, bytes)),
            }
        }
        // Each op takes at least 6 bytes: a declared count cannot exceed what is there.
        assert!(ops.len() * 6 <= bytes.len());
    }
}

#[test]
fn parse_batch_round_trips_what_js_encodes() {
    let mut rng = Rng::new(0x5eed_0006);
    for _ in 0..5_000 {
        let ops = random_ops(&mut rng);
        let (bytes, _) = encode_ops(&ops);
        let parsed = parse_batch(&bytes).expect("a well-formed batch parses");
        assert_eq!(parsed.len(), ops.len());
        for (got, want) in parsed.iter().zip(&ops) {
            let expiry = want.expiry.and_then(expiry_from_js);
            match got {
                Op::Put {
                    full_key,
                    expiry: e,
                    value,
                } => {
                    assert!(want.put);
                    assert_eq!(*full_key, &want.key[..]);
                    assert_eq!(*e, expiry);
                    assert_eq!(value.bytes().map(<[u8]>::to_vec), want.json);
                    let kind_ok = match value {
                        Payload::Undefined => want.json.is_none(),
                        Payload::MsgPack(_) => want.msgpack,
                        Payload::Json(_) => !want.msgpack,
                    };
                    assert!(kind_ok);
                }
                Op::Del { full_key } => {
                    assert!(!want.put);
                    assert_eq!(*full_key, &want.key[..]);
                }
                other => panic!("only puts and deletes were encoded, got {other:?}"),
            }
        }
        // Every strict prefix is refused (ops are self-delimiting), as is any extra byte.
        if !bytes.is_empty() {
            let cut = rng.below(bytes.len());
            assert!(parse_batch(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(rng.byte());
        assert!(parse_batch(&longer).is_err());
    }
}

#[test]
fn parse_batch_never_panics_on_random_or_damaged_input() {
    let mut rng = Rng::new(0x5eed_0007);
    for _ in 0..20_000 {
        let len = rng.len().min(4096);
        check_batch(&rng.bytes(len));
    }
    for _ in 0..6_000 {
        let (good, fields) = encode_ops(&random_ops(&mut rng));
        for _ in 0..4 {
            check_batch(&mutate(&mut rng, &good, &fields));
        }
    }
}

#[test]
fn parse_batch_with_huge_declared_counts_and_lengths_returns_quickly() {
    let started = std::time::Instant::now();
    for count in [u32::MAX, 0x8000_0000, 1_000_000, 2] {
        for key_len in [u32::MAX, 0x8000_0000, 0x7fff_ffff, 1 << 20, 3] {
            for kind in [0u8, 1, 2, 3, 0xff] {
                for flags in [0u8, 1, 2, 3, 0xff] {
                    let mut bytes = count.to_le_bytes().to_vec();
                    bytes.extend_from_slice(&[kind, flags]);
                    if flags & 1 != 0 {
                        bytes.extend_from_slice(&1e12f64.to_le_bytes());
                    }
                    bytes.extend_from_slice(&key_len.to_le_bytes());
                    bytes.extend_from_slice(b"abc");
                    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
                    check_batch(&bytes);
                    assert!(parse_batch(&bytes).is_err());
                }
            }
        }
    }
    // A declared count of 4 billion must not be looped over or allocated for.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A flush of requests, as index.cjs builds it; returns bytes and length-field offsets.
fn encode_flush(rng: &mut Rng) -> (Vec<u8>, Vec<usize>) {
    let count = rng.below(6);
    let mut out = (count as u32).to_le_bytes().to_vec();
    let mut fields = vec![0];
    for _ in 0..count {
        out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        let sweep = rng.chance(20);
        out.push(if sweep { 1 } else { 0 });
        out.extend_from_slice(&f64::from_bits(rng.next()).to_le_bytes());
        let payload = if sweep {
            Vec::new()
        } else {
            encode_ops(&random_ops(rng)).0
        };
        fields.push(out.len());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    (out, fields)
}

fn check_flush(bytes: &[u8]) {
    if let Ok(requests) = parse_flush(bytes) {
        assert!(requests.len() * 21 <= bytes.len());
        for request in &requests {
            assert!(is_subslice(request.payload, bytes));
            // The batch inside is untrusted too.
            check_batch(request.payload);
        }
    }
}

#[test]
fn parse_flush_never_panics_on_random_or_damaged_input() {
    let mut rng = Rng::new(0x5eed_0008);
    for _ in 0..10_000 {
        let len = rng.len().min(4096);
        check_flush(&rng.bytes(len));
    }
    for _ in 0..4_000 {
        let (good, fields) = encode_flush(&mut rng);
        assert!(parse_flush(&good).is_ok());
        for _ in 0..4 {
            check_flush(&mutate(&mut rng, &good, &fields));
        }
    }
}

#[test]
fn expiry_from_js_accepts_any_double() {
    let mut rng = Rng::new(0x5eed_0009);
    for _ in 0..100_000 {
        let ms = f64::from_bits(rng.next());
        match expiry_from_js(ms) {
            None => assert!(ms.is_nan() || ms == f64::INFINITY),
            Some(x) if ms > 0.0 && ms < u64::MAX as f64 => assert!(x as f64 >= ms),
            Some(_) => {}
        }
    }
}
