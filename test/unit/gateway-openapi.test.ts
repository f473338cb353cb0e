import { describe, expect, it } from "vitest";
import { buildSpec, ruleToSchema } from "../../services/gateway/openapi.ts";

describe("fastest-validator to JSON Schema", () => {
	it("maps the rules our actions use", () => {
		expect(ruleToSchema({ type: "email", max: 254 })).toEqual({ schema: { type: "string", format: "email", maxLength: 254 }, optional: false });
		expect(ruleToSchema({ type: "string", min: 8, max: 128, optional: true })).toEqual({ schema: { type: "string", minLength: 8, maxLength: 128 }, optional: true });
		expect(ruleToSchema({ type: "number", integer: true, min: 1, max: 100, default: 50 })).toEqual({ schema: { type: "integer", minimum: 1, maximum: 100, default: 50 }, optional: true });
		expect(ruleToSchema({ type: "array", items: "string", max: 10 }).schema).toEqual({ type: "array", items: { type: "string" }, maxItems: 10 });
		expect(ruleToSchema({ type: "enum", values: ["a", "b"] }).schema).toEqual({ enum: ["a", "b"] });
		expect(ruleToSchema("string|optional")).toEqual({ schema: { type: "string" }, optional: true });
		expect(ruleToSchema({ type: "object", props: { x: "number", y: { type: "boolean", optional: true } } }).schema).toEqual({
			type: "object",
			properties: { x: { type: "number" }, y: { type: "boolean" } },
			required: ["x"],
		});
	});
});

describe("buildSpec", () => {
	const spec = buildSpec({ title: "T", version: "1", description: "d" }, [
		{ method: "POST", path: "/api/v1/auth/register", tag: "auth", operationId: "auth_register", auth: "none", successStatus: 201, params: { $$strict: "remove", email: { type: "email" }, name: { type: "string", optional: true } } },
		{ method: "GET", path: "/api/v1/billing/invoices/:id", tag: "billing", operationId: "billing_getInvoice", params: { id: { type: "string", max: 64 } }, permissions: [] },
		{ method: "GET", path: "/api/v1/notifications", tag: "notifications", operationId: "notification_list", params: { limit: { type: "number", integer: true, optional: true } } },
	]) as { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>> };

	it("is OpenAPI 3.1 with path templates", () => {
		expect(spec.openapi).toBe("3.1.0");
		expect(Object.keys(spec.paths).sort()).toEqual(["/api/v1/auth/register", "/api/v1/billing/invoices/{id}", "/api/v1/notifications"]);
	});

	it("puts body params in a JSON body, path params in the path, others in the query", () => {
		const register = spec.paths["/api/v1/auth/register"]!.post!;
		expect(register.requestBody).toEqual({ required: true, content: { "application/json": { schema: { type: "object", properties: { email: { type: "string", format: "email", maxLength: 254 }, name: { type: "string" } }, required: ["email"] } } } });
		expect(register.security).toEqual([]);
		expect(Object.keys(register.responses as object)).toContain("201");
		const invoice = spec.paths["/api/v1/billing/invoices/{id}"]!.get!;
		expect(invoice.parameters).toEqual([{ name: "id", in: "path", required: true, schema: { type: "string", maxLength: 64 } }]);
		expect(invoice.security).toEqual([{ bearerAuth: [] }]);
		expect(Object.keys(invoice.responses as object)).toEqual(expect.arrayContaining(["200", "401", "403", "404", "429"]));
		expect(spec.paths["/api/v1/notifications"]!.get!.parameters).toEqual([{ name: "limit", in: "query", required: false, schema: { type: "integer" } }]);
	});
});
