//! Tag subscriptions: `*` (everything), or tags joined by `||`.
//!
//! Matching happens twice, as in RocketMQ: first on the 8-byte tag hash in the
//! ConsumeQueue entry, without reading the CommitLog; then on the exact tag of
//! a message that passed, so a hash collision never delivers a wrong message.

use weir_storage::tag_hash;

/// Why a tag expression is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagFilterError {
    /// An empty alternative, e.g. `A ||` or `A |||| B`.
    #[error("empty tag in {0:?}: write `*` or tags joined by `||`")]
    EmptyTag(String),
    /// `*` mixed with tags, e.g. `* || A`.
    #[error("`*` cannot be combined with tags in {0:?}")]
    MixedWildcard(String),
}

/// A compiled tag subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `None` means `*`; otherwise (hash, tag) pairs, sorted and without duplicates,
    /// so a long expression costs a binary search per message, not a scan.
    tags: Option<Vec<(u64, String)>>,
}

impl TagFilter {
    /// The subscription that accepts every message.
    pub const ALL: TagFilter = TagFilter { tags: None };

    /// Parses `*`, an empty expression (also everything, as RocketMQ), or `A || B || ...`.
    /// Tags are trimmed of surrounding spaces.
    pub fn parse(expression: &str) -> Result<Self, TagFilterError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(Self::ALL);
        }
        let mut tags = Vec::new();
        for tag in trimmed.split("||").map(str::trim) {
            match tag {
                "" => return Err(TagFilterError::EmptyTag(expression.to_owned())),
                "*" => return Err(TagFilterError::MixedWildcard(expression.to_owned())),
                tag => tags.push((tag_hash(tag), tag.to_owned())),
            }
        }
        // Sorted and deduplicated at once: checking each tag against the ones before
        // made a long expression quadratic.
        tags.sort_unstable();
        tags.dedup();
        Ok(Self { tags: Some(tags) })
    }

    /// Whether every message passes.
    pub fn is_all(&self) -> bool {
        self.tags.is_none()
    }

    /// Stage one: whether a message whose ConsumeQueue entry carries `hash` may match.
    pub fn may_match_hash(&self, hash: u64) -> bool {
        self.tags.as_ref().is_none_or(|tags| tags.binary_search_by_key(&hash, |(h, _)| *h).is_ok())
    }

    /// Stage two: whether a message with exactly this tag matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.tags.as_ref().is_none_or(|tags| {
            let hash = tag_hash(tag);
            tags.binary_search_by(|(h, t)| (*h, t.as_str()).cmp(&(hash, tag))).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_wildcards_and_alternatives() {
        assert!(TagFilter::parse("*").expect("valid").is_all());
        assert!(TagFilter::parse("  ").expect("valid").is_all());
        let f = TagFilter::parse("TagA || TagB ||TagA").expect("valid");
        assert!(f.matches("TagA") && f.matches("TagB") && !f.matches("TagC") && !f.matches(""));
        assert!(f.may_match_hash(tag_hash("TagB")) && !f.may_match_hash(tag_hash("TagC")));
        assert_eq!(TagFilter::parse("A ||"), Err(TagFilterError::EmptyTag("A ||".into())));
        assert_eq!(TagFilter::parse("A || *"), Err(TagFilterError::MixedWildcard("A || *".into())));
    }

    proptest! {
        /// The hash stage never rejects a message the exact stage accepts.
        #[test]
        fn hash_stage_has_no_false_negatives(tags in prop::collection::vec("[A-Za-z0-9]{1,8}", 1..5), tag in "[A-Za-z0-9]{0,8}") {
            let f = TagFilter::parse(&tags.join(" || ")).expect("valid");
            if f.matches(&tag) {
                prop_assert!(f.may_match_hash(tag_hash(&tag)));
            }
        }
    }
}
