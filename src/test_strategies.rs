//! proptest strategies shared by the property tests of the decoders that read untrusted bytes
//! (keys met while scanning in `keys`, requests from JS in `batch`): bytes biased towards the
//! values the formats give meaning to, lengths biased towards the key-form boundaries, and
//! damage done to a well-formed encoding.

use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Byte values the formats give meaning to: flags, op kinds, terminators, markers.
const INTERESTING: [u8; 14] = [
    0x00, 0x01, 0x02, 0x04, 0x07, 0x0f, 0x10, 0x11, 0x13, 0x17, 0x1f, 0x7f, 0x80, 0xff,
];
/// Lengths at the key forms' boundaries (DIRECT_KEY_MAX = 480, LONG_KEY_LEN = 497, LMDB 511).
const EDGE_LENGTHS: [usize; 12] = [0, 1, 2, 8, 13, 479, 480, 481, 496, 497, 498, 511];

/// A byte, three times in ten one the formats give meaning to.
pub fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![7 => any::<u8>(), 3 => select(&INTERESTING[..])]
}

/// A length up to `max`: mostly small, sometimes at the key-form edges, sometimes large.
pub fn length(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..40usize,
        2 => select(&EDGE_LENGTHS[..]),
        1 => 0..2048usize,
        1 => 0..70_000usize,
    ]
    .prop_map(move |n| n.min(max))
}

/// Past this many bytes, [`bytes`] repeats a drawn pattern instead of drawing every byte:
/// what matters in a long input is its length, and drawing 70,000 bytes one by one (each with
/// its own shrink tree) would cost more than the decoders under test.
const DRAWN_BYTES_MAX: usize = 2048;

/// Bytes of a length drawn by [`length`].
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    length(max).prop_flat_map(|n| {
        if n <= DRAWN_BYTES_MAX {
            proptest::collection::vec(byte(), n).boxed()
        } else {
            proptest::collection::vec(byte(), 1..64)
                .prop_map(move |pattern| pattern.iter().cycle().take(n).copied().collect())
                .boxed()
        }
    })
}

/// A value for a u32 length field: huge, off by one from the honest one, or random.
#[derive(Debug, Clone)]
pub enum HostileU32 {
    Max,
    MaxMinus3,
    HighBit,
    I32Max,
    OneMore,
    OneLess,
    Zero,
    Any(u32),
}

impl HostileU32 {
    fn value(&self, honest: u32) -> u32 {
        match self {
            HostileU32::Max => u32::MAX,
            HostileU32::MaxMinus3 => u32::MAX - 3,
            HostileU32::HighBit => 0x8000_0000,
            HostileU32::I32Max => 0x7fff_ffff,
            HostileU32::OneMore => honest.wrapping_add(1),
            HostileU32::OneLess => honest.wrapping_sub(1),
            HostileU32::Zero => 0,
            HostileU32::Any(n) => *n,
        }
    }
}

fn hostile_u32() -> impl Strategy<Value = HostileU32> {
    prop_oneof![
        Just(HostileU32::Max),
        Just(HostileU32::MaxMinus3),
        Just(HostileU32::HighBit),
        Just(HostileU32::I32Max),
        Just(HostileU32::OneMore),
        Just(HostileU32::OneLess),
        Just(HostileU32::Zero),
        any::<u32>().prop_map(HostileU32::Any),
    ]
}

/// One piece of damage to a well-formed encoding.
#[derive(Debug, Clone)]
pub enum Damage {
    Truncate(Index),
    Append(Vec<u8>),
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// A length field (one of the encoding's, by index) replaced by a hostile value.
    Clobber(Index, HostileU32),
}

/// One to three pieces of damage.
pub fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        proptest::collection::vec(byte(), 1..=8).prop_map(Damage::Append),
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        (any::<Index>(), byte()).prop_map(|(at, b)| Damage::SetByte(at, b)),
        (any::<Index>(), hostile_u32()).prop_map(|(at, h)| Damage::Clobber(at, h)),
    ];
    proptest::collection::vec(one, 1..=3)
}

/// `good` with `damage` done to it; `length_fields` are the offsets of its u32 length fields.
pub fn apply(good: &[u8], length_fields: &[usize], damage: &[Damage]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    for d in damage {
        match d {
            Damage::Truncate(at) if !bytes.is_empty() => {
                let cut = at.index(bytes.len());
                bytes.truncate(cut);
            }
            Damage::Append(extra) => bytes.extend_from_slice(extra),
            Damage::FlipBit(at, bit) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Damage::SetByte(at, b) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            Damage::Clobber(which, hostile) if !length_fields.is_empty() => {
                let at = length_fields[which.index(length_fields.len())];
                if at + 4 <= bytes.len() {
                    let honest = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                    bytes[at..at + 4].copy_from_slice(&hostile.value(honest).to_le_bytes());
                }
            }
            _ => {}
        }
    }
    bytes
}

/// Whether `inner` lies within `outer`'s memory (a decoder borrowed it, copied nothing).
pub fn is_subslice(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}
