import { z } from 'zod';

/**
 * networking.istio.io Gateway (v1, v1beta1, v1alpha3 share one schema). Field
 * names are Istio's; unknown fields are errors. Checks needing only this
 * object follow Istio's validation (pkg/config/validation) in plain words.
 */


export const GatewayPort = z.strictObject({
  number: z.int().min(1, { error: 'port number must be between 1 and 65535' }).max(65535, { error: 'port number must be between 1 and 65535' }),
  protocol: z.string().min(1, { error: 'port protocol is required' }),
  name: z.string().optional(),
  targetPort: z.int().min(0).max(65535).optional(),
});

const TLSVersion = z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']);

export const ServerTLSSettings = z
  .strictObject({
    httpsRedirect: z.boolean().optional(),
    mode: z.enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']).optional(),
    serverCertificate: z.string().optional(),
    privateKey: z.string().optional(),
    caCertificates: z.string().optional(),
    caCrl: z.string().optional(),
    credentialName: z.string().optional(),
    credentialNames: z.array(z.string()).max(2).optional(),
    tlsCertificates: z
      .array(z.strictObject({ serverCertificate: z.string().optional(), privateKey: z.string().optional(), caCertificates: z.string().optional() }))
      .max(2)
      .optional(),
    subjectAltNames: z.array(z.string()).optional(),
    verifyCertificateSpki: z.array(z.string()).optional(),
    verifyCertificateHash: z.array(z.string()).optional(),
    minProtocolVersion: TLSVersion.optional(),
    maxProtocolVersion: TLSVersion.optional(),
    cipherSuites: z.array(z.string()).optional(),
  })
  .superRefine((t, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: 'custom', message, input: t });
    if (t.mode === 'ISTIO_MUTUAL') {
      if (t.serverCertificate) bad('ISTIO_MUTUAL TLS cannot have associated server certificate');
      if (t.privateKey) bad('ISTIO_MUTUAL TLS cannot have associated private key');
      if (t.caCertificates) bad('ISTIO_MUTUAL TLS cannot have associated CA bundle');
      if (t.credentialName) bad('ISTIO_MUTUAL TLS cannot have associated credentialName');
    }
    if ((t.mode === 'SIMPLE' || t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL') && !t.credentialName && !t.credentialNames?.length && !t.tlsCertificates?.length) {
      if (!t.serverCertificate) bad(`${t.mode} TLS requires a credentialName, or serverCertificate and privateKey`);
      else if (!t.privateKey) bad(`${t.mode} TLS requires privateKey together with serverCertificate`);
    }
    if (t.credentialName && t.credentialNames?.length) bad('only one of credentialName or credentialNames may be set');
  });

const PLAINTEXT = new Set(['HTTP', 'HTTP2', 'GRPC', 'TCP', 'MONGO', 'REDIS', 'MYSQL']);

export const Server = z
  .strictObject({
    port: GatewayPort,
    bind: z.string().optional(),
    hosts: z.array(z.string()).min(1, { error: 'server config must contain at least one host' }),
    tls: ServerTLSSettings.optional(),
    defaultEndpoint: z.string().optional(),
    name: z.string().optional(),
  })
  .superRefine((s, ctx) => {
    const bad = (message: string, path: PropertyKey[]) => ctx.addIssue({ code: 'custom', message, path, input: s });
    const proto = s.port.protocol.toUpperCase();
    if (s.tls && !s.tls.httpsRedirect && PLAINTEXT.has(proto)) {
      bad(proto === 'HTTP' ? 'server cannot have TLS settings for plain text HTTP ports' : 'server cannot have TLS settings for non HTTPS/TLS ports', ['tls']);
    }
    if ((proto === 'HTTPS' || proto === 'TLS') && !s.tls) bad(`server on a ${proto} port must have tls settings`, ['tls']);
    s.hosts.forEach((h, i) => {
      const parts = h.split('/');
      if (parts.length > 2) bad(`${JSON.stringify(h)} is not a valid host: use "host" or "namespace/host"`, ['hosts', i]);
      const dns = parts[parts.length - 1]!;
      if (!/^(\*|(\*\.)?[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?)*|[0-9a-fA-F:.]+)$/.test(dns))
        bad(`${JSON.stringify(h)} is not a valid host: use a DNS name, optionally with a leading "*." wildcard`, ['hosts', i]);
      if (parts.length === 2 && parts[0] !== '*' && parts[0] !== '.' && parts[0] !== '~' && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(parts[0]!))
        bad(`${JSON.stringify(h)} has an invalid namespace "${parts[0]}"`, ['hosts', i]);
    });
  });

export const GatewaySpec = z
  .strictObject({
    servers: z.array(Server).min(1, { error: 'gateway must have at least one server' }),
    selector: z.record(z.string(), z.string()).optional(),
  })
  .superRefine((g, ctx) => {
    // Server names must be unique; port names must be unique per port (Istio: "port names must be unique").
    const names = new Map<string, number>();
    g.servers.forEach((s, i) => {
      if (s.name !== undefined) {
        if (names.has(s.name)) ctx.addIssue({ code: 'custom', message: `server name ${JSON.stringify(s.name)} is not unique`, path: ['servers', i, 'name'], input: s.name });
        names.set(s.name, i);
      }
    });
    const portNames = new Map<string, number>();
    g.servers.forEach((s, i) => {
      if (!s.port.name) return;
      const prev = portNames.get(s.port.name);
      if (prev !== undefined && prev !== s.port.number)
        ctx.addIssue({ code: 'custom', message: `port names in servers must be unique: duplicate name ${s.port.name}`, path: ['servers', i, 'port', 'name'], input: s.port.name });
      portNames.set(s.port.name, s.port.number);
    });
  });

export type GatewayPort = z.infer<typeof GatewayPort>;
export type ServerTLSSettings = z.infer<typeof ServerTLSSettings>;
export type Server = z.infer<typeof Server>;
export type GatewaySpec = z.infer<typeof GatewaySpec>;
