/**
 * Turns any error that reaches the edge into an RFC 9457 problem document. Client faults keep
 * their own status, stable `type` and message; everything else becomes a generic 500 whose
 * details stay in the logs (never a stack trace, never an internal message, to the client).
 * A dependency that is down or restarting is a 503 (try again), not a 500.
 */
import { dependencyUnavailable, isDependencyOutage } from "./errors.ts";

export interface Problem {
	/** URI reference naming the kind of problem; stable. */
	type: string;
	/** The same kind as a machine-friendly UPPER_SNAKE code. */
	code: string;
	title: string;
	status: number;
	detail: string;
	instance?: string;
	requestId?: string;
	errors?: { field: string; message: string }[];
	[extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
/** Base of every problem `type` (a relative URI reference the gateway documents). */
export const PROBLEM_TYPE_BASE = "/problems/";

interface ErrorLike {
	name?: string;
	message?: string;
	code?: unknown;
	type?: unknown;
	data?: unknown;
}

const TITLES: Record<number, string> = {
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
	429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

/**
 * Moleculer's own errors, by class name, mapped to what a client should see.
 * (Moleculer reports an unknown action as 404 and a full queue as 429; at the edge both mean
 * the platform cannot serve the request right now.)
 */
const MOLECULER_ERRORS: Record<string, { status: number; type: string; detail: string }> = {
	ServiceNotFoundError: { status: 503, type: "SERVICE_UNAVAILABLE", detail: "The service that handles this request is not available. Try again shortly." },
	ServiceNotAvailableError: { status: 503, type: "SERVICE_UNAVAILABLE", detail: "The service that handles this request is not available. Try again shortly." },
	RequestTimeoutError: { status: 504, type: "UPSTREAM_TIMEOUT", detail: "The service did not answer in time. Try again shortly." },
	QueueIsFullError: { status: 503, type: "OVERLOADED", detail: "The platform is busy. Try again shortly." },
	MaxCallLevelError: { status: 500, type: "INTERNAL_ERROR", detail: "The request could not be completed." },
	ValidationError: { status: 400, type: "VALIDATION_ERROR", detail: "The request is not valid." },
};

/** body-parser's errors (passed on by moleculer-web), by their dotted `type`. */
const BODY_ERRORS: Record<string, { status: number; type: string; detail: string }> = {
	"entity.too.large": { status: 413, type: "PAYLOAD_TOO_LARGE", detail: "The request body is larger than this endpoint accepts." },
	"entity.parse.failed": { status: 400, type: "MALFORMED_JSON", detail: "The request body is not valid JSON." },
	"entity.verify.failed": { status: 400, type: "MALFORMED_BODY", detail: "The request body could not be read." },
	"request.aborted": { status: 400, type: "REQUEST_ABORTED", detail: "The request body was not received completely." },
	"request.size.invalid": { status: 400, type: "MALFORMED_BODY", detail: "The request body does not match its Content-Length." },
	"charset.unsupported": { status: 415, type: "UNSUPPORTED_MEDIA_TYPE", detail: "Send the request body as UTF-8 JSON." },
	"encoding.unsupported": { status: 415, type: "UNSUPPORTED_MEDIA_TYPE", detail: "This Content-Encoding is not supported." },
};

/** The message of Moleculer's parameter validator, too generic to show: we name the fields instead. */
const MOLECULER_VALIDATION_MESSAGE = "Parameters validation error!";

const fieldsDetail = (errors: Problem["errors"]) =>
	errors?.length ? `These fields are not valid: ${[...new Set(errors.map((e) => e.field))].join(", ")}.` : "The request is not valid.";

export function toProblem(err: unknown, instance?: string, requestId?: string): Problem {
	const e: ErrorLike = isDependencyOutage(err) ? dependencyUnavailable() : typeof err === "object" && err !== null ? err : {};
	const known = (e.name ? MOLECULER_ERRORS[e.name] : undefined) ?? (typeof e.type === "string" ? BODY_ERRORS[e.type] : undefined);
	const code = typeof e.code === "number" ? e.code : 500;

	let status: number, type: string, detail: string;
	if (known) {
		({ status, type, detail } = known);
		if (type === "VALIDATION_ERROR") detail = fieldsDetail(validationErrors(e));
	} else if (e.type === "VALIDATION_ERROR") {
		// Moleculer's validator says 422, our own rules 400: one answer for "these fields are wrong".
		status = 400;
		type = "VALIDATION_ERROR";
		detail = e.message && e.message !== MOLECULER_VALIDATION_MESSAGE ? e.message : fieldsDetail(validationErrors(e));
	} else if (code >= 400 && code < 500 && typeof e.type === "string" && e.type) {
		// A client fault raised on purpose (AppError or a moleculer-web error): safe to show.
		status = code;
		type = e.type.toUpperCase();
		detail = e.message ?? TITLES[code] ?? "Request failed.";
	} else if (code === 503 || code === 504) {
		status = code;
		type = typeof e.type === "string" && e.type ? e.type.toUpperCase() : code === 503 ? "SERVICE_UNAVAILABLE" : "UPSTREAM_TIMEOUT";
		detail = code === 503 ? "A service this request needs is not available. Try again shortly." : "The service did not answer in time.";
	} else {
		status = 500;
		type = "INTERNAL_ERROR";
		detail = "The request could not be completed. The error has been logged.";
	}

	const problem: Problem = { type: PROBLEM_TYPE_BASE + type.toLowerCase().replaceAll("_", "-"), code: type, title: TITLES[status] ?? "Error", status, detail };
	if (instance) problem.instance = instance;
	if (requestId) problem.requestId = requestId;
	const errors = validationErrors(e);
	if (status === 400 && errors) problem.errors = errors;
	// Members a client needs to go on (an MFA challenge's token), set on purpose by the code that
	// raised the client fault; the reserved members above cannot be overwritten.
	const extensions = status < 500 ? (e.data as { extensions?: unknown } | undefined)?.extensions : undefined;
	if (extensions && typeof extensions === "object") {
		for (const [key, value] of Object.entries(extensions)) {
			if (!(key in problem) && ["string", "number", "boolean"].includes(typeof value)) problem[key] = value;
		}
	}
	return problem;
}

/** Field errors from our AppError (`data.errors`) or from Moleculer's validator (`data` array). */
function validationErrors(e: ErrorLike): Problem["errors"] {
	const raw = Array.isArray(e.data) ? e.data : (e.data as { errors?: unknown } | undefined)?.errors;
	if (!Array.isArray(raw)) return undefined;
	return raw.map((item: { field?: unknown; message?: unknown }) => ({
		field: typeof item.field === "string" ? item.field : "",
		message: typeof item.message === "string" ? item.message : "is invalid",
	}));
}
