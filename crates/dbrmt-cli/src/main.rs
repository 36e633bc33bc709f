//! `dbrmt`: run ARMT-LLaMA models over inputs of any length with diagonal batching.

mod args;
mod bench;
mod engine;
mod examples;
mod generate;
mod generate_many;
mod inspect;
mod numbers;
mod outputs;
mod progress;
mod run;
mod selftest;
mod serve;
mod text_chunks;
mod tokenize;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Run(a) => run::run(&a),
        args::Command::Inspect(a) => inspect::inspect(&a),
        args::Command::Generate(a) => generate::generate(&a),
        args::Command::Selftest(a) => selftest::selftest(&a),
        args::Command::Serve(a) => serve::serve(&a),
        args::Command::Tokenize(a) => tokenize::tokenize(&a),
        args::Command::Bench(a) => bench::bench(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// `s` with control characters escaped (`\u{1b}`): names and values from a hostile file must not reach the
/// terminal as escape sequences, nor break the one-line message.
pub fn terminal_safe(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}

/// The error and its causes on one line, skipping a cause whose text its parent already quotes; control
/// characters escaped.
fn describe(e: &anyhow::Error) -> String {
    terminal_safe(&describe_raw(e))
}

fn describe_raw(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !out.contains(&cause) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&cause);
        }
    }
    out
}
