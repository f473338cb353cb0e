/**
 * Accounts: registration. The user row and its `user.created` event are committed in one
 * transaction, so an account can never exist without its event, nor the event without it.
 */
import { randomUUID } from "node:crypto";
import bcrypt from "bcrypt";
import type pg from "pg";
import { conflict } from "../../lib/errors.ts";
import type { UserCreated } from "../../lib/events/catalog.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { enqueueEvent } from "../../lib/events/pg-outbox.ts";

export const EVENT_SOURCE = "/backplane/auth";

export interface User {
	id: string;
	email: string;
	name: string | null;
	emailVerified: boolean;
	createdAt: string;
}

export interface RegisterInput {
	email: string;
	password: string;
	name?: string;
}

interface UserRow {
	id: string;
	email: string;
	name: string | null;
	email_verified: boolean;
	created_at: Date;
}

const UNIQUE_VIOLATION = "23505";

export async function registerUser(pool: pg.Pool, input: RegisterInput, opts: { bcryptCost: number; requestId?: string }): Promise<User> {
	// Hash before taking a connection: bcrypt is the slow part and must not hold one.
	const passwordHash = await bcrypt.hash(input.password, opts.bcryptCost);
	const client = await pool.connect();
	try {
		await client.query("BEGIN");
		const { rows } = await client.query<UserRow>(
			`INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)
			 RETURNING id, email, name, email_verified, created_at`,
			[randomUUID(), input.email.trim().toLowerCase(), input.name?.trim() || null, passwordHash],
		);
		const user = toUser(rows[0]!);
		const data: UserCreated = { userId: user.id, email: user.email, name: user.name };
		await enqueueEvent(client, createCloudEvent({ type: "user.created", source: EVENT_SOURCE, subject: user.id, data }), opts.requestId);
		await client.query("COMMIT");
		return user;
	} catch (err) {
		await client.query("ROLLBACK").catch(() => undefined);
		if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
			throw conflict("An account with this e-mail address already exists.", "EMAIL_ALREADY_REGISTERED");
		}
		throw err;
	} finally {
		client.release();
	}
}

function toUser(row: UserRow): User {
	return { id: row.id, email: row.email, name: row.name, emailVerified: row.email_verified, createdAt: row.created_at.toISOString() };
}
