/**
 * Serves and calls protobuf-es v2 services over @grpc/grpc-js.
 *
 * protobuf-es generates service descriptors (`GenService`) but no gRPC stubs.
 * This module derives the grpc-js `ServiceDefinition` from a descriptor, so
 * any generated service works without a further code generator:
 *
 *   server: addGrpcService(server, AgentService, { enroll, connect })
 *   client: const Client = makeGrpcClientConstructor(AgentService);
 *           new Client('host:port', credentials).enroll(request, callback)
 *
 * Methods are keyed by their protobuf-es local name (`enroll`), while the wire
 * path keeps the proto name (`/warden.v1.AgentService/Enroll`). Messages are
 * encoded with `toBinary` and decoded with `fromBinary`; anything you send may
 * be a message or a plain init object, anything you receive is a message.
 */
import * as grpc from '@grpc/grpc-js';
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';

/** What you receive for message type D: always a decoded message. */
export type GrpcReceived<D extends DescMessage> = MessageShape<D>;
/** What you may send for message type D: the message or its init shape. */
export type GrpcSendable<D extends DescMessage> = MessageShape<D> | MessageInitShape<D>;

type MethodsOf<S extends DescService> = S['method'];

/** The grpc-js server handler for one method, typed from its descriptor. */
export type GrpcServerHandler<M extends DescMethod> = M extends {
  methodKind: 'unary';
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? grpc.handleUnaryCall<GrpcReceived<I>, GrpcSendable<O>>
  : M extends { methodKind: 'server_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? grpc.handleServerStreamingCall<GrpcReceived<I>, GrpcSendable<O>>
    : M extends { methodKind: 'client_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? grpc.handleClientStreamingCall<GrpcReceived<I>, GrpcSendable<O>>
      : M extends { methodKind: 'bidi_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
        ? grpc.handleBidiStreamingCall<GrpcReceived<I>, GrpcSendable<O>>
        : never;

/** Handlers for every method of a service, keyed by local name (`enroll`). */
export type GrpcServiceImplementation<S extends DescService> = {
  [K in keyof MethodsOf<S>]: GrpcServerHandler<MethodsOf<S>[K]>;
};

export interface GrpcUnaryMethod<I, O> {
  (request: I, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (
    request: I,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientUnaryCall;
}

export interface GrpcServerStreamingMethod<I, O> {
  (request: I, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<O>;
  (request: I, metadata: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<O>;
}

export interface GrpcClientStreamingMethod<I, O> {
  (callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientWritableStream<I>;
}

export interface GrpcBidiStreamingMethod<I, O> {
  (options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<I, O>;
  (metadata: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<I, O>;
}

/** The client-side call signature of one method, typed from its descriptor. */
export type GrpcClientMethod<M extends DescMethod> = M extends {
  methodKind: 'unary';
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? GrpcUnaryMethod<GrpcSendable<I>, GrpcReceived<O>>
  : M extends { methodKind: 'server_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? GrpcServerStreamingMethod<GrpcSendable<I>, GrpcReceived<O>>
    : M extends { methodKind: 'client_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? GrpcClientStreamingMethod<GrpcSendable<I>, GrpcReceived<O>>
      : M extends { methodKind: 'bidi_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
        ? GrpcBidiStreamingMethod<GrpcSendable<I>, GrpcReceived<O>>
        : never;

/** A grpc-js client with one typed method per RPC, keyed by local name. */
export type GrpcServiceClient<S extends DescService> = grpc.Client & {
  [K in keyof MethodsOf<S>]: GrpcClientMethod<MethodsOf<S>[K]>;
};

export interface GrpcServiceClientConstructor<S extends DescService> {
  new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: Partial<grpc.ChannelOptions>,
  ): GrpcServiceClient<S>;
  readonly service: grpc.ServiceDefinition;
  readonly serviceName: string;
}

/**
 * Encodes a message, or an init object for one, to the bytes grpc-js sends.
 * A message of another type is refused rather than coerced field by field.
 */
function serializer(schema: DescMessage): grpc.serialize<unknown> {
  return (value: unknown): Buffer => {
    let message: MessageShape<DescMessage>;
    if (isMessage(value, schema)) {
      message = value;
    } else if (isMessage(value)) {
      throw new TypeError(`expected a ${schema.typeName} message, got ${value.$typeName}`);
    } else {
      message = create(schema, value as MessageInitShape<DescMessage>);
    }
    const bytes = toBinary(schema, message);
    // Share the encoder's memory instead of copying it into a new Buffer.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/**
 * Decodes received bytes. The Buffer is viewed as a plain Uint8Array (no copy)
 * so `bytes` fields come out as Uint8Array, as the generated types say, rather
 * than as Buffer slices.
 */
function deserializer(schema: DescMessage): grpc.deserialize<unknown> {
  return (bytes: Buffer) => fromBinary(schema, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/** The grpc-js definition of one RPC; path `/package.Service/Method`. */
export function grpcMethodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  const kind = method.methodKind;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: kind === 'client_streaming' || kind === 'bidi_streaming',
    responseStream: kind === 'server_streaming' || kind === 'bidi_streaming',
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.name,
  };
}

/**
 * The grpc-js `ServiceDefinition` of a protobuf-es service descriptor, keyed by
 * each method's local name, usable with `Server.addService` and
 * `makeGenericClientConstructor`.
 */
export function grpcServiceDefinition<S extends DescService>(
  service: S,
): grpc.ServiceDefinition<GrpcServiceImplementation<S>> {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = grpcMethodDefinition(method);
  }
  return definition as grpc.ServiceDefinition<GrpcServiceImplementation<S>>;
}

/** Registers a typed implementation of `service` on a grpc-js server. */
export function addGrpcService<S extends DescService>(
  server: grpc.Server,
  service: S,
  implementation: GrpcServiceImplementation<S>,
): void {
  server.addService(
    grpcServiceDefinition(service) as grpc.ServiceDefinition,
    implementation as unknown as grpc.UntypedServiceImplementation,
  );
}

/** A grpc-js client class for `service`, with typed methods. */
export function makeGrpcClientConstructor<S extends DescService>(service: S): GrpcServiceClientConstructor<S> {
  const ctor = grpc.makeGenericClientConstructor(
    grpcServiceDefinition(service) as grpc.ServiceDefinition,
    service.typeName,
  );
  return ctor as unknown as GrpcServiceClientConstructor<S>;
}

/** Shorthand for `new (makeGrpcClientConstructor(service))(address, credentials, options)`. */
export function createGrpcClient<S extends DescService>(
  service: S,
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ChannelOptions>,
): GrpcServiceClient<S> {
  const Client = makeGrpcClientConstructor(service);
  return new Client(address, credentials, options);
}
