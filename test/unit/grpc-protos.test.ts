import { describe, expect, it } from "vitest";
import { loadProto, serviceDefinition } from "../../lib/protos.ts";

describe("proto loading", () => {
	it("loads auth.v1.AuthService with camelCase fields and int64 as Number", () => {
		const ping = serviceDefinition("auth/v1/auth.proto", "auth.v1.AuthService").Ping;
		expect(ping?.path).toBe("/auth.v1.AuthService/Ping");
		expect([ping?.requestStream, ping?.responseStream]).toEqual([false, false]);
		const wire = ping!.responseSerialize({ message: "hi", nodeId: "n1", serverTimeMs: 1_700_000_000_123 });
		expect(ping!.responseDeserialize(wire)).toEqual({ message: "hi", nodeId: "n1", serverTimeMs: 1_700_000_000_123 });
		// defaults: unset fields come back filled in
		expect(ping!.responseDeserialize(ping!.responseSerialize({}))).toEqual({ message: "", nodeId: "", serverTimeMs: 0 });
	});

	it("loads the standard health contract from grpc-health-check's proto folder", () => {
		expect(serviceDefinition("health/v1/health.proto", "grpc.health.v1.Health").Check?.path).toBe("/grpc.health.v1.Health/Check");
	});

	it("caches loaded packages", () => {
		expect(loadProto("auth/v1/auth.proto")).toBe(loadProto("auth/v1/auth.proto"));
	});

	it("names the declared services when the service name is wrong", () => {
		expect(() => serviceDefinition("auth/v1/auth.proto", "auth.v1.PingRequest")).toThrow(
			"gRPC service 'auth.v1.PingRequest' is not declared in auth/v1/auth.proto; it declares: auth.v1.AuthService",
		);
		expect(() => serviceDefinition("auth/v1/missing.proto", "auth.v1.AuthService")).toThrow(/^cannot load proto auth\/v1\/missing\.proto \(looked in \S+\/protos, /);
	});
});
