//! Varied benchmark messages: `--props 'region=r%100,amount=%1000'` where `%N`
//! in a value stands for the message's 0-based index in the run modulo N,
//! `--tags 'A,B,C'` cycling tags, and `--shadow-every N` marking shadow traffic.

/// One piece of a property value: literal text or `%N`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    IndexModulo(u64),
}

/// A property whose value may depend on the message index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyTemplate {
    name: String,
    value: Vec<Piece>,
}

impl PropertyTemplate {
    /// Parses `name=value`, where each `%N` (N ≥ 1) in the value is the index modulo N
    /// and `%%` is a literal `%`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, raw) = crate::cmd::parse_property(s)?;
        let mut value = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            if chars.next_if_eq(&'%').is_some() {
                text.push('%');
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            let modulo: u64 = digits
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("in {s:?}: `%` must be followed by a positive number (or write `%%`)"))?;
            if !text.is_empty() {
                value.push(Piece::Text(std::mem::take(&mut text)));
            }
            value.push(Piece::IndexModulo(modulo));
        }
        if !text.is_empty() || value.is_empty() {
            value.push(Piece::Text(text));
        }
        Ok(Self { name, value })
    }

    /// The property of message `index`.
    pub fn render(&self, index: u64) -> (String, String) {
        let value = self
            .value
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::IndexModulo(n) => (index % n).to_string(),
            })
            .collect();
        (self.name.clone(), value)
    }
}

/// How message `index` of a run differs from the others.
#[derive(Debug, Clone, Default)]
pub struct Variation {
    /// Properties, rendered per message.
    pub props: Vec<PropertyTemplate>,
    /// Tags cycled through in order; none when empty.
    pub tags: Vec<String>,
    /// Every N-th message (the N-th, 2N-th, ...) is shadow traffic.
    pub shadow_every: Option<u64>,
}

impl Variation {
    /// Fills `message`'s tag and properties for message `index`.
    pub fn apply(&self, message: &mut weir_protocol::Message, index: u64) {
        message.properties = self.props.iter().map(|p| p.render(index)).collect();
        if !self.tags.is_empty() {
            message.tag = Some(self.tags[(index % self.tags.len() as u64) as usize].clone());
        }
        if self.shadow_every.is_some_and(|n| (index + 1).is_multiple_of(n)) {
            weir_client::mark_shadow(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_n_is_the_index_modulo_n() {
        let region = PropertyTemplate::parse("region=r%100").expect("valid");
        assert_eq!(region.render(107), ("region".into(), "r7".into()));
        let amount = PropertyTemplate::parse("amount=%1000").expect("valid");
        assert_eq!(amount.render(123_456).1, "456");
        assert_eq!(PropertyTemplate::parse("k=100%%").expect("valid").render(3).1, "100%");
        assert_eq!(PropertyTemplate::parse("k=").expect("valid").render(3).1, "");
        assert!(PropertyTemplate::parse("k=%0").is_err());
        assert!(PropertyTemplate::parse("k=%x").is_err());
    }

    #[test]
    fn tags_cycle_and_every_nth_message_is_shadow() {
        let v = Variation { props: Vec::new(), tags: vec!["A".into(), "B".into()], shadow_every: Some(3) };
        let mut m = weir_protocol::Message::new("t", Vec::new());
        let shadows: Vec<bool> = (0..6)
            .map(|i| {
                v.apply(&mut m, i);
                m.properties.iter().any(|(k, v)| k == weir_client::SHADOW_PROPERTY && v == "true")
            })
            .collect();
        assert_eq!(shadows, [false, false, true, false, false, true]);
        v.apply(&mut m, 3);
        assert_eq!(m.tag.as_deref(), Some("B"));
    }
}
