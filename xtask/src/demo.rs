//! `cargo xtask demo`: the main job. Fetches SmolLM2 if needed, builds the release `dbrmt`, and runs
//! `dbrmt generate` with the trained ARMT memory (`train/armt-smollm2-135m.safetensors`, applied on top of the GGUF)
//! on a 16K-token document (`docs/demo/magic-number.txt`, sixteen segments of 1024) whose only fact — "The special
//! magic number for NAME is NNNN." — sits in its first segment, and whose last words ask for it. The answer can only
//! come through the memory: fifteen segment boundaries lie between the fact and the question, and each segment's
//! attention sees its own segment alone. The demo checks the answer against the fact and fails if they differ;
//! `dbrmt generate` prints the prefill and decode speeds (on the GPU where there is one, else the CPU model).
//!
//! Extra arguments go to `dbrmt generate` (e.g. `--device cpu`).

use anyhow::{bail, Context, Result};

use crate::cargo::{self, repo_root};
use crate::fetch_model;

/// The demo's document and the trained memory it needs (both in the repository; see train/README.md).
pub const DOCUMENT: &str = "docs/demo/magic-number.txt";
pub const MEMORY: &str = "train/armt-smollm2-135m.safetensors";

/// The fact and the question of a demo document: (the name asked about, the number the document gives for it).
/// The question is the document's end, the cloze "The special magic number for NAME is"; the fact is the sentence
/// "The special magic number for NAME is NNNN." with the same name.
pub fn fact_and_question(text: &str) -> Result<(String, String)> {
    const PREFIX: &str = "The special magic number for ";
    let q = text.rfind(PREFIX).context("the document has no question")?;
    let name = text[q + PREFIX.len()..]
        .strip_suffix(" is")
        .context("the document does not end with its question")?
        .to_string();
    let fact = format!("{PREFIX}{name} is ");
    let at = text[..q]
        .find(&fact)
        .with_context(|| format!("the document states no number for {name}"))?;
    let number: String = text[at + fact.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if number.is_empty() {
        bail!("the fact about {name} has no number");
    }
    Ok((name, number))
}

pub fn run(args: &[String]) -> Result<()> {
    let model = fetch_model::ensure(&fetch_model::SMOLLM2)?;
    cargo::run(&["build", "-q", "--release", "-p", "dbrmt-cli"])?;
    let root = repo_root();
    // where cargo put it: CARGO_TARGET_DIR when set (relative to the root, as cargo runs there), else target/
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
    let binary = target.join("release/dbrmt");
    let model = model.strip_prefix(&root).unwrap_or(&model).to_path_buf();
    let text = std::fs::read_to_string(root.join(DOCUMENT)).with_context(|| format!("reading {DOCUMENT}"))?;
    let (name, number) = fact_and_question(&text)?;
    let fact_at = text.find(&format!("for {name} is {number}")).unwrap_or(0);
    println!(
        "xtask demo: {DOCUMENT} ({} characters) says once, {} characters in, that the special magic number for {name} \
         is {number}; its last words ask for it. With the trained memory ({MEMORY}):",
        text.len(),
        fact_at,
    );
    let mut line: Vec<String> = [
        "generate",
        "--model",
        &model.to_string_lossy(),
        "--armt",
        MEMORY,
        "--file",
        DOCUMENT,
        // " " and four digits
        "--max-new-tokens",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    line.extend(args.iter().cloned());
    // the command as a person would type it after `cargo install --locked --path crates/dbrmt-cli`
    println!("$ dbrmt {}", line.join(" "));
    let out = std::process::Command::new(&binary)
        .args(&line)
        .current_dir(&root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{answer}");
    if !out.status.success() {
        bail!("dbrmt generate failed ({})", out.status);
    }
    if answer.trim() != number {
        bail!("the answer {:?} is not the document's number {number}", answer.trim());
    }
    println!(
        "xtask demo: right — {number}, carried by the memory from the first segment to the last. The binary is {} \
         (`cargo install --locked --path crates/dbrmt-cli` puts `dbrmt` on PATH)",
        binary.strip_prefix(&root).unwrap_or(&binary).display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_document_has_one_fact_and_its_question() {
        let text = std::fs::read_to_string(repo_root().join(DOCUMENT)).unwrap();
        let (name, number) = fact_and_question(&text).unwrap();
        assert_eq!(number.len(), 4, "{name}: {number}");
        assert_eq!(
            text.matches(&format!("for {name} is")).count(),
            2,
            "the fact and the question, once each"
        );
        // the fact is near the start (first segment), the question at the very end
        assert!(text.find(&number).unwrap() < text.len() / 16);
        assert!(!text.ends_with('\n'), "a newline would be a token after the question");
    }

    #[test]
    fn fact_and_question_refuses_documents_without_them() {
        assert!(fact_and_question("no question here").is_err());
        assert!(fact_and_question("The special magic number for Ann is").is_err());
        assert!(
            fact_and_question("The special magic number for Ann is x. The special magic number for Ann is").is_err()
        );
        let (n, v) =
            fact_and_question(" The special magic number for Ann is 1234. Filler. The special magic number for Ann is")
                .unwrap();
        assert_eq!((n.as_str(), v.as_str()), ("Ann", "1234"));
    }
}
