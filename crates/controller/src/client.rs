//! A client of the controller's API, for nodes and the `haze cluster` commands: JSON over
//! HTTP/1 (`haze_http::HttpClient`: hyper), over TLS when given a configuration (a node's is
//! its own certificate, which the controller reads its identity from).

use std::sync::Arc;
use std::time::Duration;

use haze_http::{HttpClient, HttpError};

use crate::Plan;
use crate::api::{
    AddRequest, ApiError, CreateTokenRequest, CreatedToken, PlanRequest, RegisterRequest,
    Registered, SeenRequest, Status, TokenInfo, TokenList,
};
use crate::tokens::{TokenId, well_formed};

/// Why a controller request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The controller could not be reached, refused the TLS handshake, or did not answer in
    /// time.
    #[error("controller {addr}")]
    Unreachable {
        /// Its address.
        addr: String,
        /// What failed.
        #[source]
        source: HttpError,
    },
    /// The controller refused the request: `.0.error` is the API's stable code
    /// (`unknown_node`, ...).
    #[error("{}", .0.message)]
    Refused(ApiError),
    /// The answer was not the API's.
    #[error("controller {addr} answered something else than its API")]
    BadAnswer {
        /// Its address.
        addr: String,
        /// What was wrong.
        #[source]
        source: AnswerError,
    },
    /// The token given to [`ControllerClient::with_token`] is not a Haze token (the error
    /// does not quote it).
    #[error("the token given is not a Haze token (haze_ and 64 lowercase hex digits)")]
    BadToken,
    /// The request's body could not be written as JSON (the API's bodies always can).
    #[error("a request to controller {addr} could not be encoded")]
    Encode {
        /// Its address.
        addr: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// How an answer was not the API's ([`ClientError::BadAnswer`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// A success whose body is not the JSON asked for.
    #[error(transparent)]
    Json(serde_json::Error),
    /// A failure whose body is not an API error.
    #[error("HTTP status {status} without an API error")]
    NotAnApiError {
        /// The HTTP status.
        status: u16,
        /// Why the body is not an [`ApiError`].
        #[source]
        source: serde_json::Error,
    },
}

/// Talks to the controller at one address.
#[derive(Clone)]
pub struct ControllerClient {
    addr: String,
    timeout: Duration,
    /// TLS towards the controller (and this client's certificate, if it has one).
    tls: Option<Arc<haze_tls::rustls::ClientConfig>>,
    /// Sent as `Authorization: Bearer` with every request.
    token: Option<String>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .finish()
    }
}

impl ControllerClient {
    /// A client of the controller at `addr`, with a 10 s timeout per request.
    pub fn new(addr: impl Into<String>) -> ControllerClient {
        ControllerClient {
            addr: addr.into(),
            timeout: Duration::from_secs(10),
            tls: None,
            token: None,
        }
    }

    /// Speaks TLS to the controller with `config` (its roots, and this side's certificate if
    /// it has one: a node presents its own, which names it).
    #[must_use]
    pub fn with_tls(mut self, config: Arc<haze_tls::rustls::ClientConfig>) -> ControllerClient {
        self.tls = Some(config);
        self
    }

    /// Sends `token` (surrounding whitespace ignored) as `Authorization: Bearer` with every
    /// request: an admin token, for a controller that requires one for changes. A token of
    /// the wrong shape fails every call with [`ClientError::BadToken`], before connecting.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> ControllerClient {
        self.token = Some(token.into().trim().to_string());
        self
    }

    /// Creates a client token; the answer holds its text, which the controller never shows
    /// again.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; [`ClientError::Refused`] with `bad_request` for a scope the controller
    /// refuses, `unauthorized` or `forbidden` without an admin token where one is required.
    pub async fn create_token(
        &self,
        request: &CreateTokenRequest,
    ) -> Result<CreatedToken, ClientError> {
        self.call("POST", "/v1/tokens", Some(request)).await
    }

    /// Lists the client tokens, by id (never their texts).
    ///
    /// # Errors
    ///
    /// As [`create_token`](Self::create_token).
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        let list: TokenList = self.call::<(), _>("GET", "/v1/tokens", None).await?;
        Ok(list.tokens)
    }

    /// Revokes the token `id`, and returns what it was: nodes refuse it from their next poll.
    ///
    /// # Errors
    ///
    /// As [`create_token`](Self::create_token); `unknown_token` for no such token.
    pub async fn revoke_token(&self, id: TokenId) -> Result<TokenInfo, ClientError> {
        self.call::<(), _>("DELETE", &format!("/v1/tokens/{id}"), None)
            .await
    }

    /// Registers the node reachable at `addr`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn register(&self, addr: &str) -> Result<Registered, ClientError> {
        let body = RegisterRequest {
            addr: addr.to_string(),
        };
        self.call("POST", "/v1/nodes", Some(&body)).await
    }

    /// Gives standby `nodes` (ids or addresses) partitions: plans and commits the change,
    /// which then runs; returns the new status.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; [`ClientError::Refused`] when the change cannot be made (the API
    /// error's code says why).
    pub async fn add(&self, nodes: &[String]) -> Result<Status, ClientError> {
        let body = AddRequest {
            nodes: nodes.to_vec(),
        };
        self.call("POST", "/v1/cluster/add", Some(&body)).await
    }

    /// Moves the partitions of active `nodes` to the others, then releases them.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    pub async fn remove(&self, nodes: &[String]) -> Result<Status, ClientError> {
        let body = AddRequest {
            nodes: nodes.to_vec(),
        };
        self.call("POST", "/v1/cluster/remove", Some(&body)).await
    }

    /// Plans a change and keeps it for [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    pub async fn plan(&self, request: &PlanRequest) -> Result<Plan, ClientError> {
        self.call("POST", "/v1/cluster/plan", Some(request)).await
    }

    /// Commits the change last planned.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add); `nothing_proposed` without a plan.
    pub async fn commit(&self) -> Result<Status, ClientError> {
        self.call("POST", "/v1/cluster/commit", Some(&())).await
    }

    /// Returns the cluster's status.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call::<(), _>("GET", "/v1/cluster", None).await
    }

    /// Reports that a node has the table of an epoch (if any), with its streams' progress, and
    /// returns the cluster's status: how nodes poll for the table and the change under way, and
    /// how the controller learns who has which epoch.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; [`ClientError::Refused`] with `unknown_node` for a node that is not a
    /// member.
    pub async fn seen(&self, report: &SeenRequest) -> Result<Status, ClientError> {
        self.call("POST", "/v1/seen", Some(report)).await
    }

    async fn call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let unreachable = |source: HttpError| ClientError::Unreachable {
            addr: self.addr.clone(),
            source,
        };
        let bad = |source: AnswerError| ClientError::BadAnswer {
            addr: self.addr.clone(),
            source,
        };
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|source| ClientError::Encode {
                addr: self.addr.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        // Checked, so nothing but a token's characters ever goes into the header.
        let authorization = match &self.token {
            Some(token) if well_formed(token) => Some(format!("Bearer {token}")),
            Some(_) => return Err(ClientError::BadToken),
            None => None,
        };
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        let http = HttpClient::new(self.addr.clone(), self.tls.clone(), self.timeout);
        let answer = http
            .request(method, path, &headers, Some(body))
            .await
            .map_err(unreachable)?;
        let (status, body) = (answer.status, &answer.body[..]);
        if status == 200 {
            serde_json::from_slice(body).map_err(|e| bad(AnswerError::Json(e)))
        } else {
            let error: ApiError = serde_json::from_slice(body)
                .map_err(|source| bad(AnswerError::NotAnApiError { status, source }))?;
            Err(ClientError::Refused(error))
        }
    }
}
