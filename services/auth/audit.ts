/** The audit trail of security-relevant events (table `audit_log`), written next to the change. */
import type { Db } from "./db.ts";
import type { RequestInfo } from "./deps.ts";
import { clientIpOrNull } from "./secrets.ts";

export interface AuditEntry {
	/** Dotted lower-case name: "login", "password.reset", "roles.set", ... */
	action: string;
	outcome: "success" | "failure";
	userId?: string | null;
	/** Who acted on `userId` when it was someone else (an administrator). */
	actorId?: string | null;
	sessionId?: string | null;
	/** Never a secret: no password, no token. */
	details?: Record<string, unknown>;
}

export async function audit(db: Db, entry: AuditEntry, request: RequestInfo, at: Date): Promise<void> {
	await db.query(
		`INSERT INTO audit_log (at, action, outcome, user_id, actor_id, session_id, client_ip, request_id, details)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		[
			at, entry.action, entry.outcome, entry.userId ?? null, entry.actorId ?? null, entry.sessionId ?? null,
			clientIpOrNull(request.clientIp), request.requestId?.slice(0, 200) ?? null, JSON.stringify(entry.details ?? {}),
		],
	);
}
