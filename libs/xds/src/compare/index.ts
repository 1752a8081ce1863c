export { builtinDecoder, loadDescriptorSet, type XdsDecoder } from './decode.js';
export {
  FetchError,
  clusterNamesOf,
  edsNamesOf,
  fetchXds,
  routeNamesOf,
  typeUrlOf,
  xdsTypes,
  type FetchOptions,
  type NodeJson,
  type XdsSnapshot,
  type XdsType,
} from './fetch.js';
export { diffSnapshots, generalize, normalize, sameSnapshot, type Difference, type DifferenceKind } from './diff.js';
export { ExpectedDifferences, loadExpectedDifferences, parseExpectedDifferences, type ExpectedDifference } from './expected.js';
export { classify, formatReport, type ComparisonReport, type FormatOptions, type ProxyComparison, type ProxyReport } from './report.js';
export { injectedAgentEnv, podNode, podProxyConfigDefaults, podNodeId, podWorkload, type PodLike, type PodProxyOptions, type ProxyKind } from './pod.js';
export { compareProxy, type CompareProxyOptions, type ControlPlaneAddress } from './compare.js';
