//! `dbrmt serve`: an OpenAI-compatible HTTP server (axum + tokio) over the dbrmt engine.
//!
//! Routes: `POST /v1/completions` (text or token ids), `POST /v1/chat/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics` (Prometheus), `POST /tokenize`, `POST /detokenize`, and the memory states
//! `GET /v1/states`, `GET / PUT / DELETE /v1/states/{id}`. Responses stream as server-sent events when asked.
//!
//! The engine runs on its own thread ([`scheduler`]), which interleaves the live requests; HTTP handlers only
//! read, check, tokenise and wait for events. [`scheduler::backend`] is the one seam to compute.

mod app;
mod config;
mod error;
mod metrics;
mod protocol;
mod routes;
pub mod scheduler;
mod server;
mod states;
mod text;

pub use config::{Limits, ServerConfig};
pub use error::{ApiError, ServerError};
pub use server::run;
