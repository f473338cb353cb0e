/**
 * The project's one error vocabulary. Domain modules throw AppError (they never import Moleculer);
 * the fields match what Moleculer serialises across the transporter (`code`, `type`, `data`,
 * `retryable`), so an AppError thrown on one node arrives intact on another, and the gateway turns
 * it into RFC 9457 problem+json with `type` as the stable machine-readable kind.
 */
export interface FieldError {
	field: string;
	message: string;
	type?: string;
}

export class AppError extends Error {
	/** HTTP status the edge answers with. */
	readonly code: number;
	/** Stable UPPER_SNAKE identifier; becomes the problem+json `type`. */
	readonly type: string;
	readonly data?: Record<string, unknown>;
	/** True when trying again later may succeed (dependency down, lock busy). */
	readonly retryable: boolean;

	constructor(code: number, type: string, message: string, data?: Record<string, unknown>, retryable = code >= 500) {
		super(message);
		this.name = "AppError";
		this.code = code;
		this.type = type;
		this.data = data;
		this.retryable = retryable;
	}
}

export const badRequest = (message: string, errors?: FieldError[]) =>
	new AppError(400, "VALIDATION_ERROR", message, errors ? { errors } : undefined);
export const unauthorized = (message = "Authentication is required.", type = "UNAUTHORIZED") => new AppError(401, type, message);
export const forbidden = (message = "You do not have permission to do this.", type = "FORBIDDEN") => new AppError(403, type, message);
export const notFound = (what: string) => new AppError(404, "NOT_FOUND", `${what} was not found.`);
export const conflict = (message: string, type = "CONFLICT") => new AppError(409, type, message);
export const unavailable = (message: string, type = "SERVICE_UNAVAILABLE") => new AppError(503, type, message, undefined, true);

/**
 * Errors that mean a server we depend on is unreachable or restarting, not a bug: Node socket
 * errors, PostgreSQL's connection-exception class (08) and its shutdown/starting states (57P0x),
 * the MongoDB driver's network errors. The edges answer them as 503 (try again), not 500.
 */
const OUTAGE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"]);
// The last three: an operation that was running while its client was closed and reopened
// (lib/mongo.ts watchMongoClient); we use no explicit sessions that could expire otherwise.
const OUTAGE_NAMES = new Set(["MongoNetworkError", "MongoNetworkTimeoutError", "MongoServerSelectionError", "MongoPoolClearedError", "MongoTopologyClosedError", "MongoNotConnectedError", "MongoExpiredSessionError"]);

export function isDependencyOutage(err: unknown): boolean {
	if (typeof err !== "object" || err === null) return false;
	const e = err as { code?: unknown; name?: unknown; message?: unknown };
	if (typeof e.code === "string" && OUTAGE_CODES.has(e.code)) return true;
	if (typeof e.name === "string" && OUTAGE_NAMES.has(e.name)) return true;
	// node-postgres, when the server ends a connection under a running query, and when a query
	// is sent on a client whose connection already failed (a PostgreSQL restart mid-transaction).
	return typeof e.message === "string" && (e.message.startsWith("Connection terminated") || PG_CLIENT_GONE.has(e.message));
}
const PG_CLIENT_GONE = new Set(["Client has encountered a connection error and is not queryable", "Client was closed and is not queryable"]);

/**
 * Moleculer's "no endpoint for this action right now" (its node starting or stopping, its circuit
 * open, the last node gone): the call never reached a handler. Moleculer calls it a 404; to a
 * caller it means "not now". The request never ran anywhere, so the broker retries exactly these
 * (trying again cannot do it twice); a gRPC server answers them as 503.
 */
const NOT_DELIVERED = new Set(["ServiceNotFoundError", "ServiceNotAvailableError"]);

export const isNotDelivered = (err: unknown): boolean => {
	const name = (err as { name?: unknown } | null)?.name;
	return typeof name === "string" && NOT_DELIVERED.has(name);
};

export const dependencyUnavailable = () => unavailable("A service this request needs is briefly unavailable. Try again shortly.", "DEPENDENCY_UNAVAILABLE");
