/** The four parts of a node ID (`type~ip~pod.namespace~namespace.svc.cluster.local`), unchecked; undefined unless there are four. */
export function splitNodeId(nodeId: string): { type: string; ip: string; id: string; dnsDomain: string; idNamespace: string | undefined } | undefined {
  const parts = nodeId.split('~');
  if (parts.length !== 4) return undefined;
  const [type, ip, id, dnsDomain] = parts as [string, string, string, string];
  return { type, ip, id, dnsDomain, idNamespace: id.includes('.') ? id.slice(id.indexOf('.') + 1) : undefined };
}
