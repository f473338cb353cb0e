/**
 * Loads the gRPC contracts in `protos/` — the one place they are read, never copied. Plain module:
 * no Moleculer, so servers, clients, tests and benches share one loader and one set of options.
 */
import path from "node:path";
import { loadSync } from "@grpc/proto-loader";
import type { Options, PackageDefinition, ServiceDefinition } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

/** The repository's `protos/` folder; proto paths are relative to it (`auth/v1/auth.proto`). */
export const PROTOS_DIR = path.resolve(import.meta.dirname, "..", "protos");
/** grpc-health-check's own copy of `health/v1/health.proto`, so clients can load the standard health contract. */
export const HEALTH_PROTOS_DIR = path.resolve(path.dirname(healthProtoPath), "..", "..");

/**
 * How messages look in JavaScript:
 * - camelCase field names (`node_id` -> `nodeId`), like the rest of our JSON;
 * - int64 as Number: our int64 fields are epoch milliseconds and counters, far below 2^53, and
 *   Number keeps them usable as-is in JSON and arithmetic. Anything that could exceed 2^53 (opaque
 *   ids) is declared `string` in the contract instead;
 * - enums as their String names, unset fields filled with defaults, `oneof` cases named.
 */
export const PROTO_LOADER_OPTIONS: Options = {
	keepCase: false,
	longs: Number,
	enums: String,
	defaults: true,
	oneofs: true,
	includeDirs: [PROTOS_DIR, HEALTH_PROTOS_DIR],
};

const packages = new Map<string, PackageDefinition>();

/**
 * Loads (once) and returns the package definition of a proto file. `file` is relative to
 * `protos/` (or to grpc-health-check's proto folder); an absolute path also works, for test-only
 * contracts kept next to the tests.
 */
export function loadProto(file: string): PackageDefinition {
	let definition = packages.get(file);
	if (!definition) {
		try {
			definition = loadSync(file, PROTO_LOADER_OPTIONS);
		} catch (err) {
			throw new Error(`cannot load proto ${file} (looked in ${PROTO_LOADER_OPTIONS.includeDirs?.join(", ")}): ${(err as Error).message}`, { cause: err });
		}
		packages.set(file, definition);
	}
	return definition;
}

/**
 * The service definition for a fully-qualified service name (`auth.v1.AuthService`) declared in
 * `file`; usable as-is by `grpc.Server#addService` and for `grpc.Client#makeUnaryRequest`.
 * Throws naming the file and the services it does declare when the name is wrong.
 */
export function serviceDefinition(file: string, service: string): ServiceDefinition {
	const pkg = loadProto(file);
	const definition = pkg[service];
	if (!definition || "format" in definition) {
		const services = Object.entries(pkg)
			.filter(([, d]) => !("format" in d))
			.map(([name]) => name);
		throw new Error(`gRPC service '${service}' is not declared in ${file}; it declares: ${services.join(", ") || "none"}`);
	}
	return definition;
}
