import { create, createRegistry, type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The reflection services themselves: they are listed alongside the services they describe. */
export const REFLECTION_SERVICES = [v1.ServerReflection, v1alpha.ServerReflection] as const;

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
/** A response's `message_response` (the two versions share their shape). */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * gRPC server reflection, v1 and v1alpha (grpcurl and `buf curl` use one or the other), built
 * from the descriptors protobuf-es generated into gen/: the files of the served services and
 * every file they import, as `google.protobuf.FileDescriptorProto`s.
 */
export function createReflectionServices(served: readonly DescService[]) {
  const services = [...served, ...REFLECTION_SERVICES];
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    const name = file.proto.name;
    if (files.has(name)) return;
    files.set(name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const service of services) visit(service.file);
  const registry = createRegistry(...files.values());
  const encoded = new Map<string, Uint8Array>();
  const bytesOf = (file: DescFile) => {
    let bytes = encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file.proto.name, bytes);
    }
    return bytes;
  };

  /** The file and, as the protocol asks, every file it imports (transitively). */
  const withDependencies = (file: DescFile): Answer => {
    const all = new Map<string, DescFile>();
    const add = (f: DescFile) => {
      if (all.has(f.proto.name)) return;
      all.set(f.proto.name, f);
      for (const dependency of f.dependencies) add(dependency);
    };
    add(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: [...all.values()].map(bytesOf) } };
  };
  const notFound = (what: string): Answer => ({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } });

  /** The file that declares a symbol: a type, a service, a method, an enum value or a field. */
  function fileOfSymbol(symbol: string): DescFile | undefined {
    const direct = registry.get(symbol);
    if (direct) return direct.file;
    // A method (`pkg.Service.Method`) or a field / enum value: its parent's file.
    const parent = registry.get(symbol.slice(0, symbol.lastIndexOf(".")));
    if (parent?.kind === "service" && parent.methods.some((m) => m.name === symbol.slice(symbol.lastIndexOf(".") + 1))) return parent.file;
    if (parent?.kind === "message" && parent.fields.some((f) => f.name === symbol.slice(symbol.lastIndexOf(".") + 1))) return parent.file;
    return undefined;
  }

  function answer(request: Request["messageRequest"]): Answer {
    switch (request.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: services.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename": {
        const file = files.get(request.value);
        return file ? withDependencies(file) : notFound(`file ${request.value}`);
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(request.value);
        return file ? withDependencies(file) : notFound(`symbol ${request.value}`);
      }
      case "fileContainingExtension": {
        const message = registry.getMessage(request.value.containingType);
        const extension = message && registry.getExtensionFor(message, request.value.extensionNumber);
        return extension ? withDependencies(extension.file) : notFound(`extension ${request.value.extensionNumber} of ${request.value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const message = registry.getMessage(request.value);
        if (!message) return notFound(`type ${request.value}`);
        const numbers: number[] = [];
        for (const desc of registry) if (desc.kind === "extension" && desc.extendee.typeName === message.typeName) numbers.push(desc.number);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: message.typeName, extensionNumber: numbers } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "no request kind set" } };
    }
  }

  const v1Impl: ServiceImpl<typeof v1.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield create(v1.ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse: answer(request.messageRequest) });
      }
    },
  };
  const v1alphaImpl: ServiceImpl<typeof v1alpha.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request.messageRequest),
        });
      }
    },
  };
  return { v1: v1Impl, v1alpha: v1alphaImpl };
}
