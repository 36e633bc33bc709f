//! Generated ids → the text a client sees: streaming detokenisation and stop strings.

mod output;
mod stop;

pub use output::TextOutput;
