//! What every handler shares ([`App`]: the scheduler, the tokenizer, the state store, the metrics, the model's
//! facts and the limits) and the router that maps each route to its handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::Router;
use dbrmt_runtime::Engine;
use dbrmt_tokenizer::Tokenizer;

use crate::config::{Limits, ServerConfig};
use crate::error::{ApiError, ServerError};
use crate::metrics::{Gauges, Metrics};
use crate::routes;
use crate::scheduler::{Scheduler, Shared};
use crate::states::StateStore;

/// What is known of the served model without asking the engine thread.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    pub name: String,
    /// What state files record, so a state of another model is refused.
    pub identity: String,
    pub layers: usize,
    pub d_key: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub segment_size: usize,
    pub mem_tokens: usize,
    /// Host bytes of one stored state (A, z of every layer and a full open segment).
    pub state_bytes: usize,
    /// Bytes of the largest state file: the tensors, and a header with the open ids and the metadata.
    pub state_file_bytes: usize,
    /// Unix seconds the server started (`created` of `/v1/models`).
    pub created: u64,
}

impl ModelFacts {
    fn of(engine: &Engine, name: String) -> Self {
        let cfg = engine.config();
        let (layers, d_key, hidden) = (cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size);
        Self {
            name,
            identity: engine.info().identity.clone(),
            layers,
            d_key,
            hidden,
            vocab: cfg.llama.vocab_size,
            segment_size: cfg.armt.segment_size,
            mem_tokens: cfg.armt.num_mem_tokens,
            state_bytes: 4 * (layers * d_key * (hidden + 1) + cfg.armt.segment_size),
            state_file_bytes: 4 * layers * d_key * (hidden + 1) + 16 * cfg.armt.segment_size + (64 << 10),
            created: unix_now(),
        }
    }
}

/// The server's shared state.
#[derive(Debug)]
pub struct App {
    pub scheduler: Scheduler,
    pub shared: Shared,
    pub model: ModelFacts,
    pub limits: Limits,
    /// Response ids (`cmpl-…`).
    next_id: AtomicU64,
}

impl App {
    /// Starts the engine's thread; the model's facts are read first.
    pub fn start(
        engine: Engine,
        tokenizer: Option<Tokenizer>,
        config: &ServerConfig,
    ) -> Result<Arc<Self>, ServerError> {
        let model = ModelFacts::of(&engine, config.model_name.clone());
        let limits = config.limits.clone();
        let shared = Shared {
            tokenizer: tokenizer.map(Arc::new),
            states: Arc::new(Mutex::new(StateStore::new(
                limits.max_states,
                limits.max_state_bytes,
                process_seed(),
            ))),
            metrics: Arc::new(Metrics::default()),
        };
        let scheduler = Scheduler::start(
            engine,
            shared.clone(),
            limits.max_concurrent,
            limits.max_queued,
            limits.max_device_bytes,
        )?;
        Ok(Arc::new(Self {
            scheduler,
            shared,
            model,
            limits,
            next_id: AtomicU64::new(0),
        }))
    }

    pub fn tokenizer(&self) -> Result<&Arc<Tokenizer>, ApiError> {
        self.shared.tokenizer.as_ref().ok_or_else(|| {
            ApiError::invalid("this model has no tokenizer (no GGUF metadata or tokenizer.json): send token ids")
        })
    }

    pub fn states(&self) -> Result<MutexGuard<'_, StateStore>, ApiError> {
        self.shared
            .states
            .lock()
            .map_err(|_| ApiError::internal("the state store is poisoned"))
    }

    /// A fresh response id with `prefix` (`cmpl`, `chatcmpl`).
    pub fn response_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The metrics text, with the gauges read now.
    pub fn render_metrics(&self) -> String {
        let admission = self.scheduler.admission();
        let (states, state_bytes, state_evictions) = self
            .states()
            .map(|s| (s.len(), s.bytes(), s.evictions()))
            .unwrap_or_default();
        self.shared.metrics.render(Gauges {
            running: admission.running(),
            waiting: admission.waiting(),
            states,
            state_bytes,
            state_evictions,
        })
    }
}

/// Every route. Handlers read bodies themselves, within `--max-body-mb` (a state upload: the size of a state file).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/completions", post(routes::generate::completions))
        .route("/v1/chat/completions", post(routes::generate::chat))
        .route("/v1/models", get(routes::info::models))
        .route("/health", get(routes::info::health))
        .route("/metrics", get(routes::info::metrics))
        .route("/tokenize", post(routes::tokenize::tokenize))
        .route("/detokenize", post(routes::tokenize::detokenize))
        .route("/v1/states", get(routes::states::list))
        .route(
            "/v1/states/{id}",
            get(routes::states::export)
                .put(routes::states::import)
                .delete(routes::states::delete),
        )
        .fallback(routes::info::no_route)
        .method_not_allowed_fallback(routes::info::no_method)
        .with_state(app)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A seed that differs between server runs (state ids, and sampling without a `seed`).
pub fn process_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (std::process::id() as u64) << 32
}
