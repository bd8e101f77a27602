//! One module per command family.

pub mod bench;
pub mod broker;
pub mod demo;
pub mod filter;
pub mod store;

/// A progress bar with rate and ETA on stderr; hidden for `--json` runs and
/// when stderr is not a terminal.
pub fn progress_bar(total: u64, json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta}").expect("valid template"),
    );
    bar
}
