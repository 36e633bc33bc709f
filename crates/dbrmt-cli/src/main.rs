//! `dbrmt`: run ARMT-LLaMA models over inputs of any length with diagonal batching.

mod args;
mod bench;
mod engine;
mod generate;
mod inspect;
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

/// The error and its causes on one line, skipping a cause whose text its parent already quotes.
fn describe(e: &anyhow::Error) -> String {
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
