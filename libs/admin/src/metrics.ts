import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Sextant's Prometheus metrics. Names follow istiod's (`pilot_*`, `citadel_*`)
 * where the meaning matches, so existing Istio dashboards and alerts work.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    xdsConnections: new Gauge({ name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS.', labelNames: ['version'], registers: [registry] }),
    xdsPushes: new Counter({ name: 'pilot_xds_pushes', help: 'Pilot build and send errors for lds, rds, cds and eds.', labelNames: ['type'], registers: [registry] }),
    xdsLimitExceeded: new Counter({ name: 'sextant_xds_limit_exceeded_total', help: 'ADS streams ended with RESOURCE_EXHAUSTED for going over a per-client limit, by limit.', labelNames: ['limit'], registers: [registry] }),
    xdsRejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'Total number of XDS responses from pilot rejected by proxy.', labelNames: ['type'], registers: [registry] }),
    pushTriggers: new Counter({ name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push.', labelNames: ['type'], registers: [registry] }),
    pushContextBuild: new Histogram({ name: 'sextant_push_context_build_seconds', help: 'Time to build a PushContext from the config store.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
    configEvents: new Counter({ name: 'pilot_k8s_cfg_events', help: 'Events from the config sources.', labelNames: ['type', 'event'], registers: [registry] }),
    configRejected: new Gauge({ name: 'sextant_config_rejected', help: 'Objects currently rejected by validation, by kind.', labelNames: ['kind'], registers: [registry] }),
    services: new Gauge({ name: 'pilot_services', help: 'Total services known to pilot.', registers: [registry] }),
    virtualServices: new Gauge({ name: 'pilot_virt_services', help: 'Total virtual services known to pilot.', registers: [registry] }),
    csrCount: new Counter({ name: 'citadel_server_csr_count', help: 'The number of CSRs received by Citadel server.', registers: [registry] }),
    certsIssued: new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'The number of certificates issuances that have succeeded.', registers: [registry] }),
    csrErrors: new Counter({ name: 'citadel_server_csr_error_count', help: 'CSRs refused, by gRPC status.', labelNames: ['code'], registers: [registry] }),
    webhookResults: new Counter({ name: 'sextant_webhook_results', help: 'Admission webhook outcomes.', labelNames: ['hook', 'outcome'], registers: [registry] }),
    rootCertExpiry: new Gauge({ name: 'citadel_server_root_cert_expiry_timestamp', help: 'The unix timestamp, in seconds, when Citadel root cert will expire.', registers: [registry] }),
  };
  return m;
}
export type Metrics = ReturnType<typeof createMetrics>;
