//! The examples at the end of each command's `--help`. Every line runs as written from the repository's root
//! once `cargo xtask fetch-model smollm2` has fetched SmolLM2 (the test `first_hour` runs them all, in order, on
//! the CPU model), so a newcomer can paste them.

/// `dbrmt --help`.
pub const MAIN: &str = "\
Examples (from the repository, after `cargo xtask fetch-model smollm2`; on a 2-core CPU each takes seconds):
  dbrmt inspect models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --chat --prompt \"Name three colours.\" --max-new-tokens 16

A plain LLaMA checkpoint (as SmolLM2) runs as it is: its ARMT memory is initialised as the original does,
untrained, from seed 0 (--armt-init SEED picks another). `dbrmt COMMAND --help` has each command's examples.";

/// `dbrmt run --help`.
pub const RUN: &str = "\
Examples (from the repository, after `cargo xtask fetch-model smollm2`):
  dbrmt tokenize --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --file docs/demo/logbook.txt --out ids.npy
  dbrmt run --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --input-ids ids.npy --dump-state state.safetensors
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --load-state state.safetensors --prompt \" The first entry\" --max-new-tokens 8

A run of N tokens on the CPU model takes about N / 500 s on 2 cores (SmolLM2) and writes nothing unless asked;
--dump-state is the format `generate --load-state` continues from.";

/// `dbrmt generate --help`.
pub const GENERATE: &str = "\
Examples (from the repository, after `cargo xtask fetch-model smollm2`):
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --chat --prompt \"Name three colours.\" --max-new-tokens 16
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --chat --file docs/demo/logbook.txt --max-new-tokens 32
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"Once upon a time\" --max-new-tokens 8 --save-state story.safetensors
  dbrmt generate --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --load-state story.safetensors --prompt \" there was\" --max-new-tokens 8

A prefill that takes more than a second shows its progress on stderr (tokens, tokens/s, time left) when stderr is
a terminal.";

/// `dbrmt tokenize --help`.
pub const TOKENIZE: &str = "\
Examples (from the repository, after `cargo xtask fetch-model smollm2`):
  dbrmt tokenize --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --text \"Hello, world\"
  dbrmt tokenize --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --file docs/demo/logbook.txt --out ids.npy
  echo \"Hello from standard input\" | dbrmt tokenize --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --file - --out stdin.npy";

/// `dbrmt inspect --help`.
pub const INSPECT: &str = "\
Examples (from the repository, after `cargo xtask fetch-model smollm2`):
  dbrmt inspect models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  dbrmt inspect models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --segment-size 512 --armt-init 7
  dbrmt inspect testdata/fixtures/tiny-armt-names";
