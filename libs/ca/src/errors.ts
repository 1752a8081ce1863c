/** gRPC status codes used by the CA (numeric values of grpc.status). */
export const Code = {
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type CodeName = keyof typeof Code;

/** A refusal that maps to a gRPC status with a clear message. */
export class CaError extends Error {
  constructor(
    readonly codeName: CodeName,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
  get code(): number {
    return Code[this.codeName];
  }
}

export const invalid = (msg: string) => new CaError('INVALID_ARGUMENT', msg);
export const denied = (msg: string) => new CaError('PERMISSION_DENIED', msg);
export const unauthenticated = (msg: string) => new CaError('UNAUTHENTICATED', msg);
