//! Index hints: for a plugin whose logic honours its declared hints, skipping
//! the messages that lack a hinted term before calling it (what the broker's
//! bloom stage does) never changes what the subscription receives.

mod common;

use proptest::prelude::*;
use weir_filters::{FilterInput, MessageFilter};
use weir_plugins::{Limits, PluginHost, WasmFilter};
use weir_sql92::Term;

/// Whether `message` carries every hinted term (exactly, as the bloom stage
/// would after its check of the exact properties).
fn carries(hints: &[Term], message: &FilterInput<'_>) -> bool {
    hints.iter().all(|hint| match hint {
        Term::Has(name) => message.properties.iter().any(|(n, _)| *n == &**name),
        Term::Equals { name, value } => message.properties.iter().any(|(n, v)| *n == &**name && *v == &**value),
    })
}

fn properties() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![Just("region".to_owned()), Just("tenant".to_owned()), "[a-z]{1,6}"];
    let value = prop_oneof![Just("SH".to_owned()), Just("BJ".to_owned()), "[A-Z]{0,3}"];
    proptest::collection::vec((name, value), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_honoured_hint_never_changes_the_result(props in properties(), region in prop_oneof![Just(""), Just("region=BJ")]) {
        thread_local! {
            static FILTERS: std::cell::RefCell<Vec<(String, WasmFilter)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let host = PluginHost::new(Limits::default()).expect("host");
        let filter = FILTERS.with_borrow_mut(|filters| {
            if let Some((_, filter)) = filters.iter().find(|(params, _)| params == region) {
                return filter.clone();
            }
            let plugin = host.compile(&common::guest("region_filter"), None).expect("accepted");
            let filter = WasmFilter::new("region_filter", plugin, region).expect("a filter");
            filters.push((region.to_owned(), filter.clone()));
            filter
        });
        let hints = filter.index_hints().to_vec();
        prop_assert_eq!(&hints, &[Term::Has("region".into())]);
        let pairs: Vec<(&str, &str)> = props.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let message = common::message(&pairs, b"");
        let unhinted = filter.decide(&message).expect("decides");
        let hinted = carries(&hints, &message) && filter.decide(&message).expect("decides");
        prop_assert_eq!(unhinted, hinted);
    }
}
