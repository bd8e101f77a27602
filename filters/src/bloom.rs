//! Bloom filters over a message's *terms*: its property names and
//! `name=value` pairs, with the tag as the property `TAGS` (SPEC §4).
//!
//! A term is hashed once ([`TermHash`]) and placed in filters of any size by
//! double hashing, so one dispatch feeds both the per-message bloom and its
//! block's larger summary. Filters are plain bit arrays tested in place on
//! the mapped index file: nothing is allocated per message.
//!
//! Why not the `bloomfilter` crate: its serialised form carries a per-filter
//! header (seed and hash count), larger than the 32-byte arrays stored per
//! message; testing a stored filter means building a `Bloom` (an allocation
//! and SipHash keying per message); and its positions depend on the filter
//! size, so each term would be hashed again for the block summary.

use weir_sql92::{Condition, TAG_PROPERTY, Term};

/// Broker-wide seed of term hashes. Part of the index format: changing it
/// changes [`IndexShape::fingerprint`](crate::IndexShape::fingerprint), which makes the index rebuild.
pub const TERM_SEED: u64 = 0x5745_4952_424c_4f4f; // "WEIRBLOO"

/// Separates name and value in a `name=value` term. `0xFF` never occurs in
/// UTF-8, so a pair can never hash like a name or like another pair.
const PAIR_SEPARATOR: u8 = 0xFF;

/// A term hashed once; positions in any filter derive from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TermHash(u64);

impl TermHash {
    /// The term "the message has property `name`".
    pub fn name(name: &str) -> Self {
        Self(finish(fnv1a(TERM_SEED, name.as_bytes())))
    }

    /// The term "property `name` is exactly `value`".
    pub fn pair(name: &str, value: &str) -> Self {
        let h = fnv1a(fnv1a(TERM_SEED, name.as_bytes()), &[PAIR_SEPARATOR]);
        Self(finish(fnv1a(h, value.as_bytes())))
    }

    /// The hash of a condition term.
    pub fn of(term: &Term) -> Self {
        match term {
            Term::Has(name) => Self::name(name),
            Term::Equals { name, value } => Self::pair(name, value),
        }
    }

    /// Bit `i` (of `k`) in a filter of `bits` bits (not 0): `h1 + i·h2 mod bits`.
    fn position(self, i: u32, bits: u64) -> u64 {
        let (h1, h2) = (self.0 & 0xffff_ffff, (self.0 >> 32) | 1);
        h1.wrapping_add(u64::from(i).wrapping_mul(h2)) % bits
    }
}

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// MurmurHash3's 64-bit finaliser: spreads FNV's weak low bits over all 64.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Calls `f` with every term of a message: `TAGS` and `TAGS=tag` when it has
/// a tag, then each property's name and `name=value`.
pub fn message_terms<'a>(
    tag: &str,
    properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    mut f: impl FnMut(TermHash),
) {
    if !tag.is_empty() {
        f(TermHash::name(TAG_PROPERTY));
        f(TermHash::pair(TAG_PROPERTY, tag));
    }
    for (name, value) in properties {
        f(TermHash::name(name));
        f(TermHash::pair(name, value));
    }
}

/// The size of one bloom filter and its number of hash functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BloomShape {
    /// Bytes of the bit array (a multiple of 8).
    pub bytes: usize,
    /// Bits set per term; more than [`BloomShape::MAX_HASHES`] count as that many.
    pub hashes: u32,
}

impl BloomShape {
    /// The most hash functions a shape uses: past a few the false-positive rate
    /// only rises, and each costs every insert and probe.
    pub const MAX_HASHES: u32 = 64;

    fn bits(&self) -> u64 {
        (self.bytes as u64).saturating_mul(8)
    }

    /// Hash functions in use: none in a zero-byte shape (it knows nothing), at most
    /// [`BloomShape::MAX_HASHES`].
    fn hashes(&self) -> u32 {
        if self.bits() == 0 { 0 } else { self.hashes.min(Self::MAX_HASHES) }
    }

    /// Sets the bits of `term` in `filter`, which should be `self.bytes` long. A
    /// shorter one keeps the bits that fall inside it: a probe reads the words it
    /// lacks as unknown, so nothing is skipped for them. A zero-byte shape records
    /// nothing, and its probes match everything.
    pub fn insert(&self, filter: &mut [u8], term: TermHash) {
        for i in 0..self.hashes() {
            let bit = term.position(i, self.bits());
            if let Some(byte) = usize::try_from(bit / 8).ok().and_then(|at| filter.get_mut(at)) {
                *byte |= 1 << (bit % 8);
            }
        }
    }

    /// The mask that tests `term`: a filter may contain it iff all these bits are set.
    pub fn probe(&self, term: TermHash) -> Probe {
        let hashes = self.hashes();
        let mut words: Vec<(u32, u64)> = Vec::with_capacity(hashes as usize);
        for i in 0..hashes {
            let bit = term.position(i, self.bits());
            // A word index past u32 (a filter over 32 GiB) saturates: read as unknown.
            let (word, mask) = (u32::try_from(bit / 64).unwrap_or(u32::MAX), 1u64 << (bit % 64));
            match words.iter_mut().find(|(w, _)| *w == word) {
                Some((_, m)) => *m |= mask,
                None => words.push((word, mask)),
            }
        }
        Probe { words }
    }

    /// Expected false-positive rate with `terms` terms per filter:
    /// `(1 - e^(-k·n/m))^k`.
    pub fn false_positive_rate(&self, terms: usize) -> f64 {
        if self.bits() == 0 {
            return 1.0;
        }
        let k = f64::from(self.hashes());
        (1.0 - (-k * terms as f64 / self.bits() as f64).exp()).powf(k)
    }
}

/// The bits one term sets, as (64-bit word index, mask) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    words: Vec<(u32, u64)>,
}

impl Probe {
    /// Whether `filter` may contain the term (no false negatives). A word the
    /// filter lacks (it is shorter than its shape) is unknown: it may contain it.
    pub fn may_be_in(&self, filter: &[u8]) -> bool {
        self.words.iter().all(|&(word, mask)| {
            let at = word as usize * 8;
            filter.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).is_none_or(|b| {
                let value = u64::from_le_bytes(b);
                value & mask == mask
            })
        })
    }
}

/// A [`Condition`] compiled against one [`BloomShape`]: terms replaced by
/// their probes, so testing a filter hashes nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum BloomCondition {
    /// Every message may match.
    Always,
    /// No message can match.
    Never,
    /// The filter must contain this term.
    Term(Probe),
    /// Every part must hold.
    All(Vec<BloomCondition>),
    /// Some part must hold.
    Any(Vec<BloomCondition>),
}

impl BloomCondition {
    /// Compiles `condition` for filters of `shape`.
    pub fn compile(condition: &Condition, shape: BloomShape) -> Self {
        match condition {
            Condition::Always => Self::Always,
            Condition::Never => Self::Never,
            Condition::Term(term) => Self::Term(shape.probe(TermHash::of(term))),
            Condition::All(parts) => Self::All(parts.iter().map(|p| Self::compile(p, shape)).collect()),
            Condition::Any(parts) => Self::Any(parts.iter().map(|p| Self::compile(p, shape)).collect()),
        }
    }

    /// Adds the requirement that every term of `terms` is present.
    pub fn and_all(self, terms: &[Term], shape: BloomShape) -> Self {
        if terms.is_empty() {
            return self;
        }
        let mut parts = vec![self];
        parts.extend(terms.iter().map(|t| Self::Term(shape.probe(TermHash::of(t)))));
        Self::All(parts)
    }

    /// Whether this condition never skips anything.
    pub fn is_always(&self) -> bool {
        matches!(self, Self::Always)
    }

    /// Whether a message whose bloom filter is `filter` may satisfy the condition.
    pub fn may_match(&self, filter: &[u8]) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Term(probe) => probe.may_be_in(filter),
            Self::All(parts) => parts.iter().all(|p| p.may_match(filter)),
            Self::Any(parts) => parts.iter().any(|p| p.may_match(filter)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use weir_sql92::Filter;

    use super::*;

    const SHAPE: BloomShape = BloomShape { bytes: 32, hashes: 4 };

    fn filter_of(tag: &str, props: &[(&str, &str)], shape: BloomShape) -> Vec<u8> {
        let mut filter = vec![0; shape.bytes];
        message_terms(tag, props.iter().copied(), |t| shape.insert(&mut filter, t));
        filter
    }

    #[test]
    fn names_pairs_and_tags_are_distinct_terms() {
        assert_ne!(TermHash::name("a"), TermHash::pair("a", ""));
        assert_ne!(TermHash::pair("a", "bc"), TermHash::pair("ab", "c"));
        let filter = filter_of("TagA", &[("region", "SH")], SHAPE);
        let sql = |s: &str| BloomCondition::compile(Filter::parse(s).expect("valid").necessary_condition(), SHAPE);
        assert!(sql("region = 'SH'").may_match(&filter));
        assert!(sql("TAGS = 'TagA' AND region IS NOT NULL").may_match(&filter));
        assert!(!sql("region = 'BJ'").may_match(&filter), "a one-term message rarely collides");
        assert!(!sql("amount > 3").may_match(&filter));
    }

    #[test]
    fn a_zero_byte_shape_records_nothing_and_skips_nothing() {
        let empty = BloomShape { bytes: 0, hashes: 4 };
        let term = TermHash::name("region");
        let mut filter = [];
        empty.insert(&mut filter, term);
        assert!(empty.probe(term).may_be_in(&filter) && empty.probe(term).may_be_in(&[0u8; 32]));
        assert_eq!(empty.false_positive_rate(0), 1.0);
    }

    #[test]
    fn false_positive_rate_follows_the_formula() {
        // 11 terms (5 properties and a tag) in 32 bytes with 4 hashes: about 0.06 %.
        let rate = SHAPE.false_positive_rate(12);
        assert!((0.0005..0.0015).contains(&rate), "{rate}");
        let mut hits = 0;
        for i in 0..20_000 {
            let v = i.to_string();
            let filter = filter_of("T", &[("a", &v), ("b", "x"), ("c", "y"), ("d", "z"), ("e", &v)], SHAPE);
            hits += usize::from(SHAPE.probe(TermHash::pair("a", "absent")).may_be_in(&filter));
        }
        assert!(hits < 100, "{hits} false positives in 20000");
    }

    proptest! {
        /// Every inserted term is found, in filters of any shape.
        #[test]
        fn no_false_negatives(
            terms in prop::collection::vec(("[a-z]{1,6}", "[a-z0-9]{0,6}"), 0..20),
            bytes in prop::sample::select(vec![8usize, 16, 32, 64, 4096]),
            hashes in 1u32..8,
        ) {
            let shape = BloomShape { bytes, hashes };
            let props: Vec<(&str, &str)> = terms.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let filter = filter_of("", &props, shape);
            for (name, value) in &props {
                prop_assert!(shape.probe(TermHash::name(name)).may_be_in(&filter));
                prop_assert!(shape.probe(TermHash::pair(name, value)).may_be_in(&filter));
            }
        }

        /// Any shape (sizes off the 8-byte grid, absurd hash counts) over a filter of
        /// any length, even the wrong one: no panic, and still no false negatives.
        #[test]
        fn no_false_negatives_whatever_the_shape_or_filter(
            names in prop::collection::vec("[a-z]{1,6}", 0..12),
            bytes in prop_oneof![0usize..300, Just(usize::MAX)],
            hashes in prop_oneof![0u32..100, Just(u32::MAX)],
            len in 0usize..300,
        ) {
            let shape = BloomShape { bytes, hashes };
            let mut filter = vec![0; len];
            for name in &names {
                shape.insert(&mut filter, TermHash::name(name));
            }
            for name in &names {
                prop_assert!(shape.probe(TermHash::name(name)).may_be_in(&filter));
            }
        }
    }
}
