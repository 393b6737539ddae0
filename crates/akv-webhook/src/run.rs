//! The composition root: `akv-webhook`'s flags made into a running server.

use std::process::ExitCode;
use std::sync::Arc;

use tracing::{info, warn};

use crate::admission::{Admission, InjectSettings};
use crate::args::{Args, Command, ConnectionFlags, MetricsFlags};
use crate::check;
use crate::metrics::Metrics;
use crate::registry::{
    self, AcrTokenSource, KubePullSecrets, NoLookup, NoPullSecrets, PullSecretSource,
    RegistryOptions, RegistrySource, WorkloadIdentity, WorkloadIdentityAcr,
};
use crate::server::{self, Options, Server, ServerError, Tuning};
use crate::telemetry;
use crate::tls::{self, TlsSource};

impl Args {
    /// Sets up logging, puts the webhook together as the flags say and serves until
    /// SIGTERM or SIGINT; or, with `check`, checks manifests and says how that ended.
    pub async fn run(self) -> Result<ExitCode, ServerError> {
        let Self {
            listen,
            tls,
            env_image,
            metrics: MetricsFlags { metrics_listen },
            log_format,
            connections:
                ConnectionFlags {
                    max_connections,
                    idle_timeout,
                    max_streams_per_connection,
                },
            allow_vault_host,
            allow_managed_identity,
            registry,
            command,
        } = self;
        let allow_vault_hosts =
            akv_core::HostPolicy::new(&allow_vault_host).map_err(ServerError::AllowVaultHost)?;
        let settings = InjectSettings {
            env_image,
            allow_vault_hosts,
            allow_managed_identity,
        };
        if let Some(Command::Check(check)) = command {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            return Ok(check::run(&check, &settings, &mut out, &mut err).into());
        }
        telemetry::init(log_format).map_err(ServerError::Logging)?;
        let shutdown = server::shutdown_signal()?;
        tls::install_default_provider();
        let tls = tls.map_or(TlsSource::SelfSigned, TlsSource::from);
        info!(
            env_image = %settings.env_image,
            allow_vault_hosts = settings.allow_vault_hosts.to_list(),
            allow_managed_identity = settings.allow_managed_identity,
            "settings"
        );
        let metrics = Arc::new(Metrics::new());
        let admission = match registry.options().await? {
            None => Admission::new(settings, Arc::new(NoLookup)),
            Some(options) => {
                let deadline = options.lookup_timeout;
                let source = registry_source(options, &metrics).await?;
                Admission::new(settings, Arc::new(source)).with_lookup_deadline(deadline)
            }
        };
        let server = Server::bind(Options {
            listen,
            metrics_listen,
            tls,
            admission: Arc::new(admission),
            metrics,
            tuning: Tuning {
                max_connections: server::fit_fd_limit(max_connections),
                idle_timeout,
                max_streams_per_connection,
                ..Tuning::default()
            },
        })
        .await?;
        server.serve(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The registry lookups, with the pods' image pull secrets when a Kubernetes API is
/// configured and the webhook's workload identity for ACR when it has one.
async fn registry_source(
    options: RegistryOptions,
    metrics: &Metrics,
) -> Result<RegistrySource, ServerError> {
    let secrets: Arc<dyn PullSecretSource> = match kube::Client::try_default().await {
        Ok(client) => Arc::new(KubePullSecrets::new(client)),
        Err(e) => {
            warn!(
                error = %e,
                "no Kubernetes API configuration (in-cluster or kubeconfig): image pull secrets \
                 are unavailable, registry lookups are anonymous"
            );
            Arc::new(NoPullSecrets)
        }
    };
    let acr: Option<Arc<dyn AcrTokenSource>> = match WorkloadIdentity::from_env()? {
        Some(identity) => {
            let roots = match &options.ca_pem {
                Some(pem) => registry::oci::parse_ca_pem(pem)?,
                None => Vec::new(),
            };
            let http = registry::oci::http_client(&roots, &options)?;
            info!(client_id = %identity.client_id, "ACR registries without a matching pull secret are read with the webhook's workload identity");
            Some(Arc::new(WorkloadIdentityAcr::new(identity, http)))
        }
        None => None,
    };
    Ok(RegistrySource::new(options, secrets, acr, Some(metrics))?)
}
