import type * as grpc from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequestSchema,
  DiscoveryRequestSchema,
  fromBinary,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
} from '@sextant/envoy';
import { forEachField, limitNames, scanRequest, type XdsLimits } from './limits.js';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/**
 * A request as the deserializer hands it over: decoded, or the reason it could
 * not be. Deserializing never throws, so the handler (not grpc-js) decides the
 * status and the log line for a bad request.
 */
export type Decoded<T> =
  | { ok: true; msg: T; bytes: number }
  | { ok: false; error: string; oversized: boolean; bytes: number; limit?: { key: keyof XdsLimits; value: number } };

function decoder<T>(decode: (b: Uint8Array) => T, maxBytes: () => number, delta: boolean, limits?: () => XdsLimits) {
  return (buf: Buffer): Decoded<T> => {
    const max = maxBytes();
    if (buf.length > max) return { ok: false, error: `request of ${buf.length} bytes exceeds the limit of ${max} bytes`, oversized: true, bytes: buf.length };
    const lim = limits?.();
    const shape = lim ? scanRequest(buf, delta) : undefined;
    if (lim && shape) {
      // Refused before decoding: no string is made for a name of an over-limit request.
      const over = (key: keyof XdsLimits, value: number, what: string): Decoded<T> => ({
        ok: false,
        error: `${limitNames[key]} limit exceeded: ${what} ${value} > ${lim[key]}`,
        oversized: true,
        bytes: buf.length,
        limit: { key, value },
      });
      if (shape.names > lim.maxNamesPerRequest) return over('maxNamesPerRequest', shape.names, 'resource names in one request');
      if (shape.nodeBytes > lim.maxNodeBytes) return over('maxNodeBytes', shape.nodeBytes, 'node bytes');
    }
    try {
      return { ok: true, msg: decode(buf), bytes: buf.length };
    } catch (err) {
      return { ok: false, error: `malformed request: ${(err as Error).message}`, oversized: false, bytes: buf.length };
    }
  };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A DeltaDiscoveryRequest read directly when it has only type_url (2),
 * resource names to subscribe (3) and unsubscribe (4) and response_nonce (6):
 * every ACK and subscription change. Anything else (the node, initial
 * versions, an error detail, a field it does not know, text that is not
 * UTF-8) returns undefined and is decoded by protobuf-es. The result is the
 * object protobuf-es gives for the same bytes. protobuf-es's generic reader
 * cost tens of microseconds per request in the daemon, and every proxy ACKs
 * every push: a thousand ACKs per endpoint change at N = 1000.
 */
export function decodeDeltaRequestDirectly(b: Uint8Array): DeltaDiscoveryRequest | undefined {
  let typeUrl = '';
  let responseNonce = '';
  const subscribe: string[] = [];
  const unsubscribe: string[] = [];
  let read: boolean;
  try {
    read = forEachField(b, (field, wireType, start, end) => {
      if (wireType !== 2 || (field !== 2 && field !== 3 && field !== 4 && field !== 6)) return false;
      const text = strictUtf8.decode(b.subarray(start, end));
      if (field === 2) typeUrl = text;
      else if (field === 6) responseNonce = text;
      else (field === 3 ? subscribe : unsubscribe).push(text);
    });
  } catch {
    return undefined; // not UTF-8: protobuf-es gives the error
  }
  if (!read) return undefined;
  return {
    $typeName: 'envoy.service.discovery.v3.DeltaDiscoveryRequest',
    typeUrl,
    resourceNamesSubscribe: subscribe,
    resourceNamesUnsubscribe: unsubscribe,
    resourceLocatorsSubscribe: [],
    resourceLocatorsUnsubscribe: [],
    initialResourceVersions: {},
    responseNonce,
  };
}

const identity = (b: Buffer) => b;
const unsupported = (): never => {
  throw new Error('client side of the ADS service definition is not used');
};

/**
 * The ADS service, hand-written: requests are decoded by protobuf-es, and
 * responses are Buffers already framed from cached resource bytes, so the
 * serializer is the identity.
 */
export function adsServiceDefinition(maxBytes: () => number, limits?: () => XdsLimits): grpc.ServiceDefinition {
  return {
    StreamAggregatedResources: {
      path: `/${ADS_SERVICE}/StreamAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: unsupported,
      requestDeserialize: decoder<DiscoveryRequest>((b) => fromBinary(DiscoveryRequestSchema, b), maxBytes, false, limits),
      responseSerialize: identity,
      responseDeserialize: identity,
    },
    DeltaAggregatedResources: {
      path: `/${ADS_SERVICE}/DeltaAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: unsupported,
      requestDeserialize: decoder<DeltaDiscoveryRequest>((b) => decodeDeltaRequestDirectly(b) ?? fromBinary(DeltaDiscoveryRequestSchema, b), maxBytes, true, limits),
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  };
}
