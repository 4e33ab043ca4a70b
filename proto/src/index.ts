/**
 * Warden's wire contract (package warden.v1): the generated protobuf-es
 * messages and services, plus the grpc-js adapter to serve and call them.
 */
export * from '../gen/warden/v1/bundle_pb.js';
export * from '../gen/warden/v1/audit_pb.js';
export * from '../gen/warden/v1/approval_pb.js';
export * from '../gen/warden/v1/agent_service_pb.js';
export * from './grpc.js';
export * from './hello.js';
export * from './approval-signature.js';
export * from './binary-to-json.js';
export * from './audit-event-identity.js';
