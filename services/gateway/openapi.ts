/**
 * Generates the OpenAPI 3.1 description of the public API from the same definitions that route
 * and validate requests: each operation's action (its fastest-validator `params`, `auth`,
 * `permissions` and `openapi` keys) and the route it is reached by. Nothing is kept by hand.
 */
export interface OperationSource {
	method: string;
	/** Express-style path, e.g. /api/v1/billing/invoices/:id */
	path: string;
	tag: string;
	operationId: string;
	params?: Record<string, unknown>;
	auth?: "required" | "none";
	permissions?: string[];
	rateLimited?: boolean;
	/** `created`: the action answers 201 with a `Location` header (`ctx.meta.$statusCode`, `$location`). */
	openapi?: { summary?: string; description?: string; responses?: Record<string, unknown>; created?: boolean };
	/** Status of a successful answer. */
	successStatus?: number;
	/** A 201 names what it created in a `Location` header. */
	createdLocation?: boolean;
	/** The request body is raw bytes (webhooks), not JSON. */
	rawBody?: boolean;
}

type Schema = Record<string, unknown>;

const PROBLEM_REF = { $ref: "#/components/schemas/Problem" };
const problem = (description: string) => ({ description, content: { "application/problem+json": { schema: PROBLEM_REF } } });

/** fastest-validator rule -> JSON Schema (2020-12, as OpenAPI 3.1 uses). */
export function ruleToSchema(rule: unknown): { schema: Schema; optional: boolean } {
	if (typeof rule === "string") return ruleToSchema({ type: rule.replace(/\|.*$/, ""), optional: rule.includes("optional") });
	if (Array.isArray(rule)) return { schema: { anyOf: rule.map((r) => ruleToSchema(r).schema) }, optional: rule.some((r) => ruleToSchema(r).optional) };
	const r = (rule ?? {}) as Record<string, unknown>;
	const optional = r.optional === true || r.default !== undefined;
	const s: Schema = {};
	switch (r.type) {
		case "string":
			s.type = "string";
			if (typeof r.min === "number") s.minLength = r.min;
			if (typeof r.max === "number") s.maxLength = r.max;
			if (typeof r.length === "number") s.minLength = s.maxLength = r.length;
			if (r.pattern instanceof RegExp) s.pattern = r.pattern.source;
			else if (typeof r.pattern === "string") s.pattern = r.pattern;
			if (Array.isArray(r.enum)) s.enum = r.enum;
			break;
		case "email":
			Object.assign(s, { type: "string", format: "email", maxLength: typeof r.max === "number" ? r.max : 254 });
			break;
		case "url":
			Object.assign(s, { type: "string", format: "uri" });
			break;
		case "uuid":
			Object.assign(s, { type: "string", format: "uuid" });
			break;
		case "date":
			Object.assign(s, { type: "string", format: "date-time" });
			break;
		case "number":
			s.type = r.integer ? "integer" : "number";
			if (typeof r.min === "number") s.minimum = r.min;
			if (typeof r.max === "number") s.maximum = r.max;
			if (r.positive) s.exclusiveMinimum = 0;
			break;
		case "boolean":
			s.type = "boolean";
			break;
		case "enum":
			s.enum = r.values;
			break;
		case "equal":
			s.const = r.value;
			break;
		case "array":
			s.type = "array";
			if (r.items !== undefined) s.items = ruleToSchema(r.items).schema;
			if (typeof r.min === "number") s.minItems = r.min;
			if (typeof r.max === "number") s.maxItems = r.max;
			if (r.unique) s.uniqueItems = true;
			break;
		case "object":
			Object.assign(s, objectSchema((r.props ?? r.properties ?? {}) as Record<string, unknown>, r.strict));
			break;
		case "record":
			Object.assign(s, { type: "object", additionalProperties: ruleToSchema(r.value).schema });
			break;
		default:
			break; // "any" and custom rules: no constraint
	}
	if (r.default !== undefined && typeof r.default !== "function") s.default = r.default;
	if (typeof r.description === "string") s.description = r.description;
	return { schema: s, optional };
}

function objectSchema(props: Record<string, unknown>, strict?: unknown): Schema {
	const properties: Record<string, Schema> = {};
	const required: string[] = [];
	for (const [name, rule] of Object.entries(props)) {
		if (name.startsWith("$$")) continue;
		const { schema, optional } = ruleToSchema(rule);
		properties[name] = schema;
		if (!optional) required.push(name);
	}
	return { type: "object", properties, ...(required.length ? { required } : {}), ...(strict === true ? { additionalProperties: false } : {}) };
}

function operation(src: OperationSource): Schema {
	const pathParams = [...src.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
	const params = src.params ?? {};
	const bodyProps: Record<string, unknown> = {};
	const parameters: Schema[] = pathParams.map((name) => ({ name, in: "path", required: true, schema: params[name] ? ruleToSchema(params[name]).schema : { type: "string" } }));
	const hasBody = ["POST", "PUT", "PATCH"].includes(src.method);
	for (const [name, rule] of Object.entries(params)) {
		if (name.startsWith("$$") || pathParams.includes(name)) continue;
		if (hasBody) bodyProps[name] = rule;
		else {
			const { schema, optional } = ruleToSchema(rule);
			parameters.push({ name, in: "query", required: !optional, schema });
		}
	}
	const op: Schema = {
		operationId: src.operationId,
		tags: [src.tag],
		summary: src.openapi?.summary ?? src.operationId,
		...(src.openapi?.description ? { description: src.openapi.description } : {}),
		parameters,
	};
	if (src.rawBody) {
		op.requestBody = { required: true, content: { "application/json": { schema: { type: "object" } } } };
	} else if (hasBody) {
		op.requestBody = { required: true, content: { "application/json": { schema: objectSchema(bodyProps) } } };
	}
	const status = String(src.successStatus ?? 200);
	const responses: Record<string, unknown> = {
		[status]: status === "204" ? { description: "Done" } : { description: "Success", content: { "application/json": { schema: {} } }, ...(src.createdLocation ? { headers: { Location: { description: "The created resource", schema: { type: "string" } } } } : {}) },
		...src.openapi?.responses,
		"400": problem("The request is not valid (see `errors` for the fields)"),
		"413": problem("The body is too large"),
		"415": problem("The body is not JSON"),
		"429": { ...problem("Too many requests"), headers: { "Retry-After": { schema: { type: "integer" } } } },
		"500": problem("Unexpected error"),
		"503": problem("A service the request needs is unavailable"),
		"504": problem("A service did not answer in time"),
		default: problem("Any other error"),
	};
	if (src.auth !== "none") {
		op.security = [{ bearerAuth: [] }];
		responses["401"] = problem("Missing, invalid or expired access token");
		responses["403"] = problem(src.permissions?.length ? `Requires: ${src.permissions.join(", ")}` : "Not allowed");
	} else {
		op.security = [];
	}
	if (pathParams.length) responses["404"] = problem("Not found");
	responses["409"] = problem("Conflicts with the current state");
	responses["422"] = problem("Semantically invalid");
	op.responses = responses;
	return op;
}

export function buildSpec(info: { title: string; version: string; description: string }, operations: OperationSource[]): Schema {
	const paths: Record<string, Record<string, Schema>> = {};
	for (const src of [...operations].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method))) {
		const path = src.path.replace(/:(\w+)/g, "{$1}");
		(paths[path] ??= {})[src.method.toLowerCase()] = operation(src);
	}
	return {
		openapi: "3.1.0",
		info,
		servers: [{ url: "/" }],
		paths,
		components: {
			securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
			schemas: {
				Problem: {
					type: "object",
					description: "RFC 9457 problem details",
					required: ["type", "title", "status", "detail"],
					properties: {
						type: { type: "string", description: "URI reference naming the kind of problem" },
						code: { type: "string", description: "The same kind as an UPPER_SNAKE code" },
						title: { type: "string" },
						status: { type: "integer" },
						detail: { type: "string" },
						instance: { type: "string" },
						requestId: { type: "string" },
						errors: { type: "array", items: { type: "object", properties: { field: { type: "string" }, message: { type: "string" } } } },
					},
				},
			},
		},
	};
}
