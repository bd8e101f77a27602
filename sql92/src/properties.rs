//! The borrowed view of a message that a filter evaluates against.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

/// The name under which a message's tag is visible to expressions.
pub const TAG_PROPERTY: &str = "TAGS";

/// A message's user properties, looked up by name without allocating.
///
/// The tag must answer to [`TAG_PROPERTY`]; [`WithTag`] adds it to a view that
/// keeps the tag elsewhere. Implementations exist for slices and arrays of
/// `(name, value)` pairs (the first pair with a name wins), `HashMap` and
/// `BTreeMap`, so the broker can evaluate over properties decoded in place.
pub trait Properties {
    /// The value of property `name`, or `None` when the message lacks it.
    fn property(&self, name: &str) -> Option<&str>;
}

impl<P: Properties + ?Sized> Properties for &P {
    fn property(&self, name: &str) -> Option<&str> {
        (**self).property(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Properties for [(K, V)] {
    fn property(&self, name: &str) -> Option<&str> {
        self.iter().find(|(key, _)| key.as_ref() == name).map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Properties for [(K, V); N] {
    fn property(&self, name: &str) -> Option<&str> {
        self.as_slice().property(name)
    }
}

impl<K, V, S> Properties for HashMap<K, V, S>
where
    K: Borrow<str> + Hash + Eq,
    V: AsRef<str>,
    S: BuildHasher,
{
    fn property(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(AsRef::as_ref)
    }
}

impl<K: Borrow<str> + Ord, V: AsRef<str>> Properties for BTreeMap<K, V> {
    fn property(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(AsRef::as_ref)
    }
}

/// A property view plus a tag stored apart from it (as in a ConsumeQueue
/// entry): `TAGS` answers with the tag, every other name goes to `properties`.
#[derive(Debug, Clone, Copy)]
pub struct WithTag<'a, P: ?Sized> {
    /// The message's tag, if it has one.
    pub tag: Option<&'a str>,
    /// The other user properties.
    pub properties: &'a P,
}

impl<P: Properties + ?Sized> Properties for WithTag<'_, P> {
    fn property(&self, name: &str) -> Option<&str> {
        if name == TAG_PROPERTY { self.tag } else { self.properties.property(name) }
    }
}
