//! The HTTP side of both listeners: routes, handlers and the errors they answer with.
//!
//! The handlers only decode and encode: [`Admission::review`] does the work. Every HTTP
//! error is an [`ApiError`], counted, logged and turned into a response in one place
//! ([`AppState::fail`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use thiserror::Error;
use tracing::{info, warn};

use crate::admission::{Admission, BadRequest};
use crate::metrics::{self, Metrics};

/// Largest accepted AdmissionReview. Kubernetes objects are at most ~1.5 MiB; the review
/// carries the object (and, for updates, the old one) plus a little more.
const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;

/// A request answered with an HTTP error rather than an AdmissionReview.
#[derive(Debug, Error)]
enum ApiError {
    #[error(transparent)]
    BadReview(#[from] BadRequest),
    #[error("request body too large: an AdmissionReview may be at most {MAX_REVIEW_BYTES} bytes")]
    TooLarge,
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("no Content-Type: POST the AdmissionReview as application/json")]
    NoContentType,
    #[error(
        "Content-Type {0:?} is not application/json: POST the AdmissionReview as application/json"
    )]
    WrongContentType(String),
    #[error("the request was not answered within {0:?}")]
    Timeout(Duration),
    #[error("not found")]
    NotFound,
    #[error("cannot encode the metrics: {0}")]
    Metrics(std::fmt::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadReview(_) | ApiError::Body(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoContentType | ApiError::WrongContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` label of `akv_webhook_bad_requests_total`.
    fn reason(&self) -> &'static str {
        match self {
            ApiError::BadReview(_) => "invalid_review",
            ApiError::TooLarge => "too_large",
            ApiError::Body(_) => "unreadable_body",
            ApiError::NoContentType | ApiError::WrongContentType(_) => "unsupported_media_type",
            ApiError::Timeout(_) => "timeout",
            ApiError::NotFound => "not_found",
            ApiError::Metrics(_) => "metrics",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let headers = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
        (self.status(), headers, self.to_string()).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::Body(rejection.body_text())
        }
    }
}

/// What the HTTPS handlers share.
#[derive(Clone)]
pub struct AppState {
    pub admission: Arc<Admission>,
    pub metrics: Arc<Metrics>,
    /// Longest time one request may take, body reading included (answered 408).
    pub request_timeout: Duration,
}

impl AppState {
    pub fn new(
        admission: Arc<Admission>,
        metrics: Arc<Metrics>,
        request_timeout: Duration,
    ) -> Self {
        AppState {
            admission,
            metrics,
            request_timeout,
        }
    }

    /// Counts, logs and answers an error.
    fn fail(&self, error: ApiError) -> Response {
        self.metrics.bad_request(error.reason());
        warn!(status = error.status().as_u16(), %error, "request refused");
        error.into_response()
    }
}

/// The HTTPS side: `POST /mutate`, `GET /healthz`, `GET /readyz`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/mutate",
            post(mutate).layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES)),
        )
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .with_state(state)
}

/// The metrics side (plain HTTP): `GET /metrics`, `GET /healthz`, `GET /readyz`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .with_state(metrics)
}

async fn ok() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::Metrics(e).into_response(),
    }
}

async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => state.fail(ApiError::Timeout(state.request_timeout)),
    }
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    match review(&state, request).await {
        Ok(response) => response,
        Err(error) => state.fail(error),
    }
}

async fn review(state: &AppState, request: Request) -> Result<Response, ApiError> {
    check_content_type(request.headers())?;
    let body = Bytes::from_request(request, &()).await?;
    let started = Instant::now();
    let reviewed = state.admission.review(&body).await?;
    let elapsed = started.elapsed();
    let patch_bytes = reviewed.patch_bytes;
    state
        .metrics
        .observe_review(reviewed.outcome, elapsed, patch_bytes);
    // Never log the body: a pod's env can hold values.
    info!(
        parent: &reviewed.span,
        uid = %reviewed.subject.uid,
        namespace = %reviewed.subject.namespace,
        pod = %reviewed.subject.pod,
        outcome = reviewed.outcome.as_str(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        patch_bytes,
        "review"
    );
    Ok(([(CONTENT_TYPE, "application/json")], reviewed.body).into_response())
}

/// Accepts `application/json` with or without parameters (`; charset=utf-8`).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(CONTENT_TYPE).ok_or(ApiError::NoContentType)?;
    let is_json = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::WrongContentType(
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ))
    }
}
