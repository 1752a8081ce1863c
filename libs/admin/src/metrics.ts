import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelCounter, LabelHistogram } from './label-series.js';

/** istiod's buckets (pilot/pkg/xds/monitoring.go), so dashboards' histogram_quantile reads the same boundaries. */
export const istiodBuckets = {
  pushTime: [0.01, 0.1, 1, 3, 5, 10, 20, 30],
  convergence: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
  configSize: [1, 10000, 1000000, 4000000, 10000000, 40000000],
  pushContextInit: [0.01, 0.1, 0.5, 1, 3, 5],
} as const;

/**
 * istiod's push trigger reasons (`pilot_push_triggers{type}`), from the kind
 * of what changed: Services and ServiceEntries are service updates, endpoint
 * sources endpoint updates, Secrets secret updates, the rest config updates.
 */
export function pushTriggerReason(kind: string): string {
  switch (kind) {
    case 'Service':
    case 'ServiceEntry':
      return 'service';
    case 'EndpointSlice':
    case 'Endpoints':
    case 'Pod':
    case 'WorkloadEntry':
      return 'endpoint';
    case 'Secret':
      return 'secret';
    case 'Namespace':
      return 'namespace';
    default:
      return 'config';
  }
}

/** istiod's `pilot_k8s_reg_events{type}` for the registry kinds; undefined for config kinds (`pilot_k8s_cfg_events`). */
export function registryEventType(kind: string): string | undefined {
  return ({ Service: 'Services', EndpointSlice: 'EndpointSlice', Pod: 'Pods', Node: 'Nodes', Namespace: 'Namespaces' } as Record<string, string>)[kind];
}

/**
 * Sextant's Prometheus metrics. Names, types, labels and buckets follow
 * istiod's (`pilot_*`, `citadel_*`, `galley_*`, `sidecar_injection_*`,
 * `istio_build`) where the meaning matches, so Istio's control-plane
 * dashboard and alerts work unchanged; Sextant's own are `sextant_*`.
 * Counters carry istiod's names without a `_total` suffix, as istiod exports them.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  /** Readers of counters kept elsewhere (the xDS server's own), bound by the daemon and read at scrape time. */
  const live: { expiredNonces?: () => number } = {};
  let nonceSeen = 0;
  const m = {
    registry,
    live,
    build: new Gauge({ name: 'istio_build', help: 'Istio component build info', labelNames: ['component', 'tag'], registers: r }),
    xdsConnections: new Gauge({ name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS.', labelNames: ['version'], registers: r }),
    // Recorded for every response written (label-series.ts says why these three are not prom-client's own).
    xdsPushes: new LabelCounter('pilot_xds_pushes', 'Pilot build and send errors for lds, rds, cds and eds.', 'type', registry),
    xdsPushTime: new LabelHistogram('pilot_xds_push_time', 'Total time in seconds Pilot takes to push lds, rds, cds and eds.', 'type', istiodBuckets.pushTime, registry),
    xdsConfigSize: new LabelHistogram('pilot_xds_config_size_bytes', 'Distribution of configuration sizes pushed to clients', 'type', istiodBuckets.configSize, registry),
    proxyConvergence: new Histogram({ name: 'pilot_proxy_convergence_time', help: 'Delay in seconds between config change and a proxy receiving all required configuration.', buckets: [...istiodBuckets.convergence], registers: r }),
    xdsLimitExceeded: new Counter({ name: 'sextant_xds_limit_exceeded_total', help: 'ADS streams ended with RESOURCE_EXHAUSTED for going over a per-client limit, by limit.', labelNames: ['limit'], registers: r }),
    xdsMemoryReclaims: new Counter({ name: 'sextant_xds_memory_reclaims_total', help: 'Times the daemon returned memory left by refused xDS requests or by pushes (young-generation GC and malloc_trim after a burst of limit hits or of pushes).', registers: r }),
    xdsRejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'Total number of XDS responses from pilot rejected by proxy.', labelNames: ['type'], registers: r }),
    xdsInternalErrors: new Counter({ name: 'pilot_total_xds_internal_errors', help: 'Total number of internal XDS errors in pilot.', registers: r }),
    expiredNonces: new Counter({
      name: 'pilot_xds_expired_nonce',
      help: 'Total number of XDS requests with an expired nonce.',
      registers: r,
      collect() {
        const n = live.expiredNonces?.() ?? nonceSeen;
        if (n > nonceSeen) this.inc(n - nonceSeen);
        nonceSeen = n;
      },
    }),
    pushTriggers: new Counter({ name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push.', labelNames: ['type'], registers: r }),
    pushContextInit: new Histogram({ name: 'pilot_pushcontext_init_seconds', help: 'Total time in seconds Pilot takes to init pushContext.', buckets: [...istiodBuckets.pushContextInit], registers: r }),
    pushContextBuild: new Histogram({ name: 'sextant_push_context_build_seconds', help: 'Time to build a PushContext from the config store.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: r }),
    configEvents: new Counter({ name: 'pilot_k8s_cfg_events', help: 'Events from k8s config.', labelNames: ['type', 'event'], registers: r }),
    registryEvents: new Counter({ name: 'pilot_k8s_reg_events', help: 'Events from k8s registry.', labelNames: ['type', 'event'], registers: r }),
    configRejected: new Gauge({ name: 'sextant_config_rejected', help: 'Objects currently rejected by validation, by kind.', labelNames: ['kind'], registers: r }),
    services: new Gauge({ name: 'pilot_services', help: 'Total services known to pilot.', registers: r }),
    virtualServices: new Gauge({ name: 'pilot_virt_services', help: 'Total virtual services known to pilot.', registers: r }),
    csrCount: new Counter({ name: 'citadel_server_csr_count', help: 'The number of CSRs received by Citadel server.', registers: r }),
    authnErrors: new Counter({ name: 'citadel_server_authentication_failure_count', help: 'The number of authentication failures.', registers: r }),
    csrParsingErrors: new Counter({ name: 'citadel_server_csr_parsing_err_count', help: 'The number of errors occurred when parsing the CSR.', registers: r }),
    idExtractionErrors: new Counter({ name: 'citadel_server_id_extraction_err_count', help: 'The number of errors occurred when extracting the ID from CSR.', registers: r }),
    certSignErrors: new Counter({ name: 'citadel_server_csr_sign_err_count', help: 'The number of errors occurred when signing the CSR.', labelNames: ['error'], registers: r }),
    certsIssued: new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'The number of certificates issuances that have succeeded.', registers: r }),
    csrErrors: new Counter({ name: 'citadel_server_csr_error_count', help: 'CSRs refused, by gRPC status (Sextant).', labelNames: ['code'], registers: r }),
    rootCertExpiry: new Gauge({ name: 'citadel_server_root_cert_expiry_timestamp', help: 'The unix timestamp, in seconds, when the root cert will expire.', registers: r }),
    rootCertExpirySeconds: new Gauge({ name: 'citadel_server_root_cert_expiry_seconds', help: 'The time remaining, in seconds, before the root cert will expire. A negative value indicates the cert is expired.', registers: r }),
    certChainExpiry: new Gauge({ name: 'citadel_server_cert_chain_expiry_timestamp', help: 'The unix timestamp, in seconds, when Istio generated cert chain will expire.', registers: r }),
    certChainExpirySeconds: new Gauge({ name: 'citadel_server_cert_chain_expiry_seconds', help: 'The time remaining, in seconds, before the Istio Generated cert chain will expire. A negative value indicates the cert is expired.', registers: r }),
    validationPassed: new Counter({ name: 'galley_validation_passed', help: 'Resource is valid', registers: r }),
    validationFailed: new Counter({ name: 'galley_validation_failed', help: 'Resource validation failed', registers: r }),
    injectionSuccess: new Counter({ name: 'sidecar_injection_success_total', help: 'Total number of successful sidecar injection requests.', registers: r }),
    injectionFailure: new Counter({ name: 'sidecar_injection_failure_total', help: 'Total number of failed sidecar injection requests.', registers: r }),
    injectionSkipped: new Counter({ name: 'sidecar_injection_skip_total', help: 'Total number of skipped sidecar injection requests.', registers: r }),
    webhookResults: new Counter({ name: 'sextant_webhook_results', help: 'Admission webhook outcomes.', labelNames: ['hook', 'outcome'], registers: r }),
    configRejections: new Gauge({ name: 'sextant_config_proxy_rejections', help: 'Config objects a connected proxy currently rejects config built from (NACK), by kind.', labelNames: ['kind'], registers: r }),
  };
  return m;
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Counts one admission webhook outcome under istiod's names too. */
export function recordWebhookResult(m: Metrics, hook: 'validate' | 'inject', outcome: string): void {
  m.webhookResults.inc({ hook, outcome });
  if (hook === 'validate') {
    if (outcome === 'allowed') m.validationPassed.inc();
    else if (outcome === 'denied') m.validationFailed.inc();
  } else if (outcome === 'injected') m.injectionSuccess.inc();
  else if (outcome === 'skipped') m.injectionSkipped.inc();
  else if (outcome === 'error' || outcome === 'denied') m.injectionFailure.inc();
}
